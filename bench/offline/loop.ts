// The measured loop, shared by the main thread, the Piscina workers and the dns-packet case:
// run batches of BATCH packets until the deadline, timing every batch.

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

/** Runs `batch(i)` (which handles BATCH packets) for warmupMs, then measures it for durationMs. */
export function measure(durationMs: number, warmupMs: number, batch: (i: number) => void): LoopResult {
  const batchNs = new Float64Array(MAX_SAMPLES);
  const run = (ms: number, record: boolean): LoopResult => {
    let batches = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms) * 1000000n;
    let t0 = start;
    for (;;) {
      batch(batches);
      const t1 = process.hrtime.bigint();
      if (record && batches < MAX_SAMPLES) batchNs[batches] = Number(t1 - t0);
      batches++;
      t0 = t1;
      if (t1 >= deadline) return { packets: batches * BATCH, elapsedNs: Number(t1 - start), batchNs, batches };
    }
  };
  run(warmupMs, false);
  return run(durationMs, true);
}

export function runLoop(core: Core, a: LoopArgs, warmupMs: number): LoopResult {
  const nBatches = Math.floor(a.nDesc / BATCH);
  return measure(a.durationMs, warmupMs, (i) => {
    core.processBatch(a.descBase + (i % nBatches) * BATCH * DESC_SIZE, BATCH, a.rec, a.results, a.img, a.ipd, a.now, a.flags, 0);
  });
}
