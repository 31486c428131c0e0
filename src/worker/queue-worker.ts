// A Piscina worker that owns one NFQUEUE for as long as the gateway runs: receive a batch into
// shared memory -> decode and decide it in the WASM core -> send the verdicts, in one loop.
// Per batch it makes no objects, closures, promises or strings; the main thread never touches
// a packet. It returns when told to stop (WK_STOP) and throws on setup errors, which the
// gateway counts and answers by starting the queue again.

import { instantiateCore } from "../engine/core.js";
import { nfq } from "../capture/native.js";
import { CTL_IMAGE, CTL_GENERATION } from "../engine/engine.js";
import {
  WK_STOP, WK_HEARTBEAT, WK_GENERATION, WK_HANDLE, WK_STATE, WK_WORDS, WS_RUNNING, WS_STOPPED, WS_FAILED,
  type QueueArea,
} from "../capture/area.js";

export interface QueueTask {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  queue: number;
  area: QueueArea;
  /** Offset of the engine's control words (live image, generation). */
  engineCtl: number;
  ipdom: number;
  wan: number;
  copyRange: number;
  maxLen: number;
  rcvbuf: number;
  cfgFlags: number;
  marks: { mask: number; accept: number; block: number; drop: number; once: number };
  pollMs: number;
  /** What packets still queued get when the queue closes (fail-open: accept). */
  defaultVerdict: number;
  /** BF_* flags for every batch (learn DNS, hand decided flows to the kernel). */
  batchFlags: number;
}

const MS_PER_S = 1000;

export default function runQueue(t: QueueTask): { queue: number; batches: number } {
  const core = instantiateCore("wasm", t.memory, { module: t.module });
  const addon = nfq();
  const buffer = t.memory.buffer as unknown as SharedArrayBuffer;
  const ctl = new Int32Array(buffer, t.area.control, WK_WORDS);
  const engineCtl = new Int32Array(buffer, t.engineCtl, 2);
  const a = t.area;
  let handle = -1;
  try {
    handle = addon.open(
      t.queue, t.copyRange, t.maxLen, t.rcvbuf, t.cfgFlags, new Uint8Array(buffer), a.stats, t.wan,
      t.marks.mask, t.marks.accept, t.marks.block, t.marks.drop, t.marks.once,
    );
  } catch (err) {
    Atomics.store(ctl, WK_STATE, WS_FAILED);
    throw err;
  }
  Atomics.store(ctl, WK_HANDLE, handle);
  Atomics.store(ctl, WK_STATE, WS_RUNNING);
  let batches = 0;
  try {
    while (Atomics.load(ctl, WK_STOP) === 0) {
      Atomics.add(ctl, WK_HEARTBEAT, 1);
      const n = addon.recv(handle, a.slots, a.slotSize, a.nslots, a.desc, a.meta, t.pollMs);
      if (n <= 0) {
        // Timeout, or an error the addon counted: a quiet moment to expire idle flows.
        if (a.flow !== 0) core.processBatch(a.desc, 0, a.rec, 0, 0, t.ipdom, Math.floor(Date.now() / MS_PER_S), t.batchFlags, a.flow);
        continue;
      }
      // One image for the whole batch: read its offset once, say which generation is in use.
      Atomics.store(ctl, WK_GENERATION, Atomics.load(engineCtl, CTL_GENERATION / 4));
      const img = Atomics.load(engineCtl, CTL_IMAGE / 4);
      core.processBatch(a.desc, n, a.rec, a.results, img, t.ipdom, Math.floor(Date.now() / MS_PER_S), t.batchFlags, a.flow);
      addon.verdict(handle, a.meta, a.results, n);
      batches++;
    }
  } finally {
    // Whoever takes the handle out of the control word closes it: this worker, or the main
    // thread's watchdog if it got there first.
    if (Atomics.exchange(ctl, WK_HANDLE, -1) === handle) addon.close(handle, t.defaultVerdict);
    Atomics.store(ctl, WK_STATE, WS_STOPPED);
  }
  return { queue: t.queue, batches };
}
