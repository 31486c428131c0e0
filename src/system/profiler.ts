// V8 profiles of this process for `debug/cpu`, `debug/heap` and `debug/allocs`, taken through an
// in-process inspector session. The results are the files Chrome DevTools opens directly
// (.cpuprofile in the Performance panel, .heapsnapshot and .heapprofile in the Memory panel),
// the Node counterpart of the pprof downloads Portmaster serves.

import { Session, type HeapProfiler } from "node:inspector/promises";
import { setTimeout as sleep } from "node:timers/promises";

export const MIN_PROFILE_MS = 1;
export const MAX_PROFILE_MS = 60_000;

export class ProfilerBusyError extends Error {
  readonly code = "PROFILER_BUSY";
  constructor() {
    super("another profile is being taken; try again when it has finished");
    this.name = "ProfilerBusyError";
  }
}

/**
 * The sampling options V8 has supported since before Node 20 but @types/node does not list.
 * Keeping collected objects makes the profile show all allocations in the window, like pprof's
 * "allocs", rather than only what is still alive when it stops.
 */
interface AllocationSamplingParams extends HeapProfiler.StartSamplingParameterType {
  includeObjectsCollectedByMajorGC?: boolean;
  includeObjectsCollectedByMinorGC?: boolean;
}

const ALLOCATION_SAMPLING: AllocationSamplingParams = {
  samplingInterval: 32 * 1024, // V8's default: a sample per 32 KiB on average
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
};

// Profiles distort each other (and a CPU profile of a heap snapshot measures the snapshot), and
// each one is costly, so one at a time process-wide.
let busy = false;

function checkDuration(durationMs: number): void {
  if (!Number.isFinite(durationMs) || durationMs < MIN_PROFILE_MS || durationMs > MAX_PROFILE_MS) {
    throw new RangeError(`profile duration must be ${MIN_PROFILE_MS}..${MAX_PROFILE_MS} ms, got ${durationMs}`);
  }
}

/** Runs `task` on a fresh inspector session unless another profile is in progress. */
async function exclusively<T>(task: (session: Session) => Promise<T>): Promise<T> {
  // Checked and set before the first await, so two calls in the same tick cannot both pass.
  if (busy) throw new ProfilerBusyError();
  busy = true;
  const session = new Session();
  try {
    session.connect();
    return await task(session);
  } finally {
    session.disconnect(); // also stops whatever the session left running
    busy = false;
  }
}

/** CPU profile over `durationMs`, as .cpuprofile JSON text. */
export async function cpuProfile(durationMs: number): Promise<string> {
  checkDuration(durationMs);
  return exclusively(async (session) => {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    await sleep(durationMs);
    const { profile } = await session.post("Profiler.stop");
    await session.post("Profiler.disable");
    return JSON.stringify(profile);
  });
}

/** Full heap snapshot, as .heapsnapshot JSON text. Blocks the event loop while V8 walks the heap. */
export async function heapSnapshot(): Promise<string> {
  return exclusively(async (session) => {
    const chunks: string[] = [];
    session.on("HeapProfiler.addHeapSnapshotChunk", (message) => chunks.push(message.params.chunk));
    await session.post("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    return chunks.join("");
  });
}

/** Sampled allocations over `durationMs`, as .heapprofile JSON text. */
export async function samplingHeapProfile(durationMs: number): Promise<string> {
  checkDuration(durationMs);
  return exclusively(async (session) => {
    await session.post("HeapProfiler.enable");
    await session.post("HeapProfiler.startSampling", ALLOCATION_SAMPLING);
    await sleep(durationMs);
    const { profile } = await session.post("HeapProfiler.stopSampling");
    await session.post("HeapProfiler.disable");
    return JSON.stringify(profile);
  });
}
