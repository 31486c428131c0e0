// The measured loop, shared by the main thread and the Piscina workers: process batches of
// BATCH packets through the core until the deadline, timing every batch.

import type { Core } from "../../src/engine/core.js";

export const BATCH = 256;

export interface LoopArgs {
  descBase: number;
  /** Descriptors available; batches walk through them round-robin. */
  nDesc: number;
  /** Scratch decode record. */
  rec: number;
  /** BATCH result slots. */
  results: number;
  img: number;
  ipd: number;
  now: number;
  flags: number;
  durationMs: number;
}

export interface LoopResult {
  packets: number;
  elapsedNs: number;
  batchNs: Float64Array;
  batches: number;
}

const MAX_SAMPLES = 1 << 21;
const DESC_SIZE = 16;

export function runLoop(core: Core, a: LoopArgs, warmupMs: number): LoopResult {
  const batchNs = new Float64Array(MAX_SAMPLES);
  const nBatches = Math.floor(a.nDesc / BATCH);
  const run = (ms: number, record: boolean): LoopResult => {
    let packets = 0;
    let batches = 0;
    let b = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms) * 1000000n;
    let t0 = start;
    while (true) {
      core.processBatch(a.descBase + b * BATCH * DESC_SIZE, BATCH, a.rec, a.results, a.img, a.ipd, a.now, a.flags);
      const t1 = process.hrtime.bigint();
      if (record && batches < MAX_SAMPLES) batchNs[batches] = Number(t1 - t0);
      batches++;
      packets += BATCH;
      t0 = t1;
      if (++b === nBatches) b = 0;
      if (t1 >= deadline) return { packets, elapsedNs: Number(t1 - start), batchNs, batches };
    }
  };
  run(warmupMs, false);
  return run(a.durationMs, true);
}
