// A Piscina worker of the offline benchmark: instantiates the core on the shared memory it is
// handed (the packets are already there), waits at the start line, then runs the loop once.
// One task per worker for the whole run: no per-packet or per-batch messages.

import { instantiateCore, type CoreKind } from "../../src/engine/core.js";
import { runLoop, type LoopArgs } from "./loop.js";
import { percentile } from "../lib/stats.js";

export interface WorkerTask extends LoopArgs {
  core: CoreKind;
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  /** Int32Array over a SharedArrayBuffer: [0] ready count, [1] go flag. */
  startLine: SharedArrayBuffer;
  warmupMs: number;
}

export default function run(task: WorkerTask): { packets: number; elapsedNs: number; p999: number; batches: number } {
  const core = instantiateCore(task.core, task.memory, { module: task.module });
  const line = new Int32Array(task.startLine);
  Atomics.add(line, 0, 1);
  Atomics.notify(line, 0);
  Atomics.wait(line, 1, 0); // until the main thread says go
  const r = runLoop(core, task, task.warmupMs);
  return { packets: r.packets, elapsedNs: r.elapsedNs, batches: r.batches, p999: percentile(r.batchNs, Math.min(r.batches, r.batchNs.length), 99.9) };
}
