// A queue worker's region of the shared memory: receive slots (netlink messages land here and
// the core reads the packets inside them in place), one descriptor, meta entry and result per
// slot, a scratch decode record, the queue's counters and its control words.

import * as L from "../../assembly/shared/layout.js";
import type { Arena } from "../engine/arena.js";

/** Netlink, nfgenmsg and attribute headers in front of the copied packet bytes. */
const SLOT_HEADROOM = 512;
const CACHE_LINE = 64;

// Control words (i32), shared by the worker and the main thread.
export const WK_STOP = 0; // main -> worker: 1 = finish the batch in hand and return
export const WK_HEARTBEAT = 1; // worker -> main: bumped every loop turn (the watchdog reads it)
export const WK_GENERATION = 2; // worker -> main: image generation of the batch in hand
export const WK_HANDLE = 3; // worker -> main: open addon handle, -1 when none
export const WK_STATE = 4; // worker -> main: WS_*
export const WK_WORDS = 16;

export const WS_STARTING = 0;
export const WS_RUNNING = 1;
export const WS_STOPPED = 2;
export const WS_FAILED = 3;

export interface QueueArea {
  slots: number;
  slotSize: number;
  nslots: number;
  desc: number;
  meta: number;
  results: number;
  rec: number;
  stats: number;
  control: number;
  /** The worker's connection table and event ring (assembly/flow/track.ts); 0 = no tracking. */
  flow: number;
}

export function allocQueueArea(arena: Arena, nslots: number, copyRange: number, flowBytes = 0): QueueArea {
  const slotSize = (copyRange + SLOT_HEADROOM + CACHE_LINE - 1) & ~(CACHE_LINE - 1);
  const area: QueueArea = {
    slots: arena.alloc(slotSize * nslots),
    slotSize,
    nslots,
    desc: arena.alloc(L.DESC_SIZE * nslots),
    meta: arena.alloc(L.META_SIZE * nslots),
    results: arena.alloc(L.RES_SIZE * nslots),
    rec: arena.alloc(L.REC_SIZE),
    stats: arena.alloc(L.ST_SIZE),
    control: arena.alloc(WK_WORDS * 4),
    flow: flowBytes > 0 ? arena.alloc(flowBytes) : 0,
  };
  new Int32Array(arena.memory.buffer, area.control, WK_WORDS)[WK_HANDLE] = -1;
  return area;
}

export interface QueueStats {
  received: number;
  batches: number;
  enobufs: number;
  recvErrors: number;
  sendErrors: number;
  verdictMessages: number;
  skipped: number;
}

export function readStats(memory: WebAssembly.Memory, area: QueueArea): QueueStats {
  const u32 = new Uint32Array(memory.buffer, area.stats, L.ST_SIZE / 4);
  return {
    received: u32[L.ST_RECEIVED / 4]!,
    batches: u32[L.ST_BATCHES / 4]!,
    enobufs: u32[L.ST_ENOBUFS / 4]!,
    recvErrors: u32[L.ST_RECV_ERRORS / 4]!,
    sendErrors: u32[L.ST_SEND_ERRORS / 4]!,
    verdictMessages: u32[L.ST_VERDICT_MSGS / 4]!,
    skipped: u32[L.ST_SKIPPED / 4]!,
  };
}
