// The consumer side of a worker's event ring (the producer is assembly/flow/track.ts). Runs on
// the main thread: it copies each event out of shared memory into a FlowEvent and only then
// moves the tail, so the worker may reuse the slot; the worker never waits for us.

import * as L from "../../assembly/shared/layout.js";
import { formatIP } from "../core/ip.js";

export interface FlowEvent {
  type: number;
  reason: number;
  worker: number;
  id: number;
  ipVersion: 4 | 6;
  proto: number;
  verdict: number;
  matchedBy: number;
  inbound: boolean;
  /** Initiator -> responder, as the first packet went. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  profile: number;
  rule: number;
  line: number;
  /** Seconds (host clock). */
  first: number;
  last: number;
  packetsOut: number;
  packetsIn: number;
  bytesOut: number;
  bytesIn: number;
  flags: number;
  name: string | null;
  mac: string | null;
}

const TWO_32 = 2 ** 32;
const decoder = new TextDecoder();

/** The ring of the flow region at `ft`; `flowInit` must have run. */
export class RingReader {
  private readonly ring: number;
  private readonly cap: number;
  private readonly worker: number;

  constructor(private readonly memory: WebAssembly.Memory, readonly ft: number) {
    const dv = new DataView(memory.buffer);
    this.ring = ft + dv.getUint32(ft + L.FT_RING, true);
    this.cap = dv.getUint32(this.ring + L.RG_CAP, true);
    this.worker = dv.getUint32(ft + L.FT_WORKER, true);
  }

  /** Events dropped because the ring was full, and flows evicted from full buckets. */
  counters(): { dropped: number; evicted: number; live: number; pending: number } {
    const i32 = new Int32Array(this.memory.buffer);
    const head = Atomics.load(i32, (this.ring + L.RG_HEAD) >> 2);
    const tail = Atomics.load(i32, (this.ring + L.RG_TAIL) >> 2);
    const dv = new DataView(this.memory.buffer);
    return {
      dropped: dv.getUint32(this.ring + L.RG_DROPPED, true),
      evicted: dv.getUint32(this.ft + L.FT_EVICTED, true),
      live: dv.getUint32(this.ft + L.FT_LIVE, true),
      pending: (head - tail) >>> 0,
    };
  }

  /** Hands every waiting event (at most `max`) to `f`; returns how many. */
  drain(f: (e: FlowEvent) => void, max = Infinity): number {
    const buf = this.memory.buffer;
    const i32 = new Int32Array(buf);
    const u8 = new Uint8Array(buf);
    const dv = new DataView(buf);
    const headIdx = (this.ring + L.RG_HEAD) >> 2;
    const tailIdx = (this.ring + L.RG_TAIL) >> 2;
    const head = Atomics.load(i32, headIdx);
    let tail = Atomics.load(i32, tailIdx);
    let n = 0;
    while (tail !== head && n < max) {
      const s = this.ring + L.RG_HDR_SIZE + ((tail & (this.cap - 1)) >>> 0) * L.EV_SIZE;
      const ver = u8[s + L.EV_IPVER] === 6 ? 6 : 4;
      const namelen = dv.getUint16(s + L.EV_NAMELEN, true);
      const e: FlowEvent = {
        type: u8[s + L.EV_TYPE]!,
        reason: u8[s + L.EV_REASON]!,
        worker: this.worker,
        id: dv.getUint32(s + L.EV_ID, true),
        ipVersion: ver,
        proto: u8[s + L.EV_PROTO]!,
        verdict: u8[s + L.EV_VERDICT]!,
        matchedBy: u8[s + L.EV_MATCHBY]!,
        inbound: u8[s + L.EV_DIR] === 1,
        src: formatIP(ver, u8, s + L.EV_SRC),
        dst: formatIP(ver, u8, s + L.EV_DST),
        sport: dv.getUint16(s + L.EV_SPORT, true),
        dport: dv.getUint16(s + L.EV_DPORT, true),
        profile: dv.getUint16(s + L.EV_PROFILE, true),
        rule: dv.getUint32(s + L.EV_RULE, true),
        line: dv.getUint32(s + L.EV_LINE, true),
        first: dv.getUint32(s + L.EV_FIRST, true),
        last: dv.getUint32(s + L.EV_LAST, true),
        packetsOut: dv.getUint32(s + L.EV_PKTS_OUT, true),
        packetsIn: dv.getUint32(s + L.EV_PKTS_IN, true),
        bytesOut: dv.getUint32(s + L.EV_BYTES_OUT, true) + dv.getUint32(s + L.EV_BYTES_OUT + 4, true) * TWO_32,
        bytesIn: dv.getUint32(s + L.EV_BYTES_IN, true) + dv.getUint32(s + L.EV_BYTES_IN + 4, true) * TWO_32,
        flags: dv.getUint32(s + L.EV_FLAGS, true),
        name: namelen > 0 ? decoder.decode(u8.slice(s + L.EV_NAME, s + L.EV_NAME + namelen)) : null,
        mac: u8[s + L.EV_HASMAC] === 1 ? macText(u8, s + L.EV_MAC) : null,
      };
      tail = (tail + 1) | 0;
      // The slot is copied: give it back before calling out, so a slow consumer frees slots early.
      Atomics.store(i32, tailIdx, tail);
      f(e);
      n++;
    }
    return n;
  }
}

function macText(u8: Uint8Array, off: number): string {
  let s = "";
  for (let i = 0; i < 6; i++) s += (i ? ":" : "") + u8[off + i]!.toString(16).padStart(2, "0");
  return s;
}

/** Bytes of a flow region: header, buckets, ring header and slots. */
export function flowRegionSize(nbuckets: number, ringCap: number): number {
  return L.FT_HDR_SIZE + nbuckets * L.FT_BUCKET_SIZE + L.RG_HDR_SIZE + ringCap * L.EV_SIZE;
}
