// The only importer of the UDP addon (native/dnsio.c): batched receive and send on Node's own
// event loop. Numbers in, numbers out; each datagram is one row of META_INTS int32s.

import { createRequire } from "node:module";
import { SluiceError } from "../core/errors.js";

export interface DnsioAddon {
  open(address: string, port: number, bufferBytes: number): number;
  port(handle: number): number;
  /** `onReadable(status)` runs on the loop whenever the socket has datagrams. */
  watch(handle: number, onReadable: (status: number) => void): void;
  /** Datagrams received into buf[i*slot], described in meta rows; 0 when none wait; -errno on error. */
  recv(handle: number, buf: Uint8Array, slot: number, max: number, meta: Int32Array): number;
  /** Sends rows 0..n-1 (a row with length 0 is skipped); returns how many went, or -errno. */
  send(handle: number, buf: Uint8Array, slot: number, n: number, meta: Int32Array): number;
  close(handle: number): void;
  layout(): number[];
}

// Row layout, repeated from native/dnsio.c (checked against layout() when the addon loads).
export const META_LEN = 0;
export const META_FAMILY = 1;
export const META_PORT = 2;
export const META_ADDR = 3;
export const META_FLAGS = 7;
export const META_INTS = 8;
export const MF_TRUNCATED = 1;
/** Most datagrams one recv/send moves. */
export const MAX_BATCH = 256;

const ADDON = new URL("../../../native/build/Release/dnsio.node", import.meta.url);
let addon: DnsioAddon | undefined;

export function dnsio(): DnsioAddon {
  if (!addon) {
    let a: DnsioAddon;
    try {
      a = createRequire(import.meta.url)(ADDON.pathname) as DnsioAddon;
    } catch (err) {
      throw new SluiceError("DNSIO_ADDON", `cannot load the DNS UDP addon (${ADDON.pathname}): run npm run build`, { cause: String(err) });
    }
    const want = [META_LEN, META_FAMILY, META_PORT, META_ADDR, META_FLAGS, META_INTS, MF_TRUNCATED, MAX_BATCH];
    if (a.layout().join() !== want.join()) throw new SluiceError("DNSIO_ADDON", "the DNS UDP addon was built from another layout: run npm run build");
    addon = a;
  }
  return addon;
}

/** Text form of the address in a meta row (for logs and the query log; not on the hot path per query). */
export function addressText(meta: Int32Array, row: number): string {
  const b = row * META_INTS + META_ADDR;
  if (meta[row * META_INTS + META_FAMILY] === 4) {
    const a = meta[b]! >>> 0;
    return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
  }
  const parts: string[] = [];
  for (let i = 0; i < 4; i++) {
    const w = meta[b + i]! >>> 0;
    parts.push((w >>> 16).toString(16), (w & 0xffff).toString(16));
  }
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(":");
  return `${parts.slice(0, best).join(":")}::${parts.slice(best + bestLen).join(":")}`;
}
