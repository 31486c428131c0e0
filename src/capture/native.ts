// The only importer of the NFQUEUE addon (native/nfq.c). Numbers in, numbers out; the shared
// memory is registered once per queue in open().

import { createRequire } from "node:module";
import { SluiceError } from "../core/errors.js";

export interface NfqAddon {
  open(
    queue: number,
    copyRange: number,
    maxLen: number,
    rcvbuf: number,
    cfgFlags: number,
    /** A Uint8Array over the whole shared memory (registered once). */
    memory: Uint8Array,
    statsOff: number,
    wanOff: number,
    markMask: number,
    markAccept: number,
    markBlock: number,
    markDrop: number,
    markOnce: number,
  ): number;
  recv(handle: number, slotsOff: number, slotSize: number, nslots: number, descOff: number, metaOff: number, timeoutMs: number): number;
  verdict(handle: number, metaOff: number, resultsOff: number, n: number): number;
  /** Gives packets still queued `defaultVerdict` (VERDICT_ACCEPT passes them once, else drop), then closes. */
  close(handle: number, defaultVerdict: number): number;
  layout(): number[];
}

/** NFQA_CFG_F_* (linux/netfilter/nfnetlink_queue.h). */
export const CFG_FAIL_OPEN = 0x1;
export const CFG_GSO = 0x4;

const ADDON = new URL("../../../native/build/Release/nfq.node", import.meta.url);
let addon: NfqAddon | undefined;

export function nfq(): NfqAddon {
  if (!addon) {
    try {
      addon = createRequire(import.meta.url)(ADDON.pathname) as NfqAddon;
    } catch (err) {
      throw new SluiceError("NFQ_ADDON", `cannot load the NFQUEUE addon (${ADDON.pathname}): run npm run build`, { cause: String(err) });
    }
  }
  return addon;
}
