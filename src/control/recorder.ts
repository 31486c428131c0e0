// Connection recording: drains the workers' event rings into the live connection tracker,
// feeds it the kernel's conntrack ends, and hands every change to the history writer and to
// whoever watches live connections (the WebSocket network: database). The rings are drained
// every DRAIN_MS; a worker never waits for this: a full ring drops events and counts them.

import type { Gateway, Logger } from "../gateway/gateway.js";
import { ConnectionTracker, type Change, type KernelEnd } from "../flow/tracker.js";

const DRAIN_MS = 50;
const EXPIRE_MS = 10_000;

/** Where records go (the LMDB history writer). */
export interface RecordSink {
  push(rec: Change["rec"]): void;
}

/** The kernel's connection ends (conntrack DESTROY events). */
export interface KernelEnds {
  onDestroy(f: (k: KernelEnd) => void): void;
  stop(): Promise<void>;
}

export class Recorder {
  readonly tracker: ConnectionTracker;
  private drainTimer: NodeJS.Timeout | null = null;
  private expireTimer: NodeJS.Timeout | null = null;
  private sink: RecordSink | null = null;
  private kernel: KernelEnds | null = null;

  constructor(private readonly gateway: Gateway, private readonly log: Logger) {
    this.tracker = new ConnectionTracker((i) => gateway.profileName(i));
    this.tracker.onChange((c) => {
      if (!c.removed) this.sink?.push(c.rec);
    });
  }

  start(sink: RecordSink | null, kernel: KernelEnds | null): void {
    this.sink = sink;
    this.kernel = kernel;
    kernel?.onDestroy((k) => this.tracker.onKernelEnd(k));
    this.drainTimer = setInterval(() => this.drain(), DRAIN_MS);
    this.expireTimer = setInterval(() => this.tracker.expire(), EXPIRE_MS);
    this.expireTimer.unref();
  }

  /** Moves every waiting flow event into the tracker now. */
  drain(): number {
    try {
      return this.gateway.drainFlows((e) => this.tracker.onFlow(e));
    } catch (err) {
      this.log.warn(`flow events: ${(err as Error).message}`);
      return 0;
    }
  }

  async stop(): Promise<void> {
    if (this.drainTimer) clearInterval(this.drainTimer);
    if (this.expireTimer) clearInterval(this.expireTimer);
    this.drain();
    await this.kernel?.stop();
    // sluice stops following these connections: record them as ended now.
    this.tracker.endAll("shutdown");
  }

  counters(): Record<string, number> {
    return { ...this.tracker.counters, live: this.tracker.size, ...prefixed(this.gateway.flowCounters()) };
  }
}

function prefixed(c: Record<string, number>): Record<string, number> {
  return { ringDropped: c.dropped!, flowsEvicted: c.evicted!, flowsInWorkers: c.live!, ringPending: c.pending! };
}
