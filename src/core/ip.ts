// Address text <-> bytes, for rule parsing and for showing records. Not on the packet path.

const IPV4_PARTS = 4;
const IPV6_GROUPS = 8;

/** Parses dotted-quad IPv4 text to its 32-bit value; -1 unless exactly that (0-255, no leading zeros). */
export function parseIPv4Number(text: string): number {
  let value = 0;
  let parts = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const start = i;
    let octet = 0;
    while (i < n) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      octet = octet * 10 + c;
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && text.charCodeAt(start) === 48)) return -1;
    value = value * 256 + octet;
    parts++;
    if (i === n) break;
    if (text.charCodeAt(i) !== 46 || parts === IPV4_PARTS) return -1;
    i++;
    if (i === n) return -1;
  }
  return parts === IPV4_PARTS ? value : -1;
}

/** Parses dotted-quad IPv4 text to bytes; null if invalid. */
export function parseIPv4(text: string): Uint8Array | null {
  const v = parseIPv4Number(text);
  return v < 0 ? null : Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/** Parses IPv6 text (with `::` and an optional trailing dotted quad); null if invalid. */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.includes(".")) {
        if (i !== items.length - 1) return null;
        const v4 = parseIPv4(it);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return null;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  if (halves.length === 2 && halves[1]!.includes(".") && halves[0]!.includes(".")) return null;
  const missing = IPV6_GROUPS - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text: lower case, the longest run (>= 2) of zero groups as `::`. */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) g.push((b[off + i * 2]! << 8) | b[off + i * 2 + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < IPV6_GROUPS; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < IPV6_GROUPS && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function formatIP(version: number, b: Uint8Array, off = 0): string {
  return version === 4 ? formatIPv4(b, off) : formatIPv6(b, off);
}

/** Parses a MAC address written with `:` or `-` separators; null if invalid. */
export function parseMAC(text: string): Uint8Array | null {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text);
  if (!m) return null;
  return Uint8Array.from([m[1], m[3], m[4], m[5], m[6], m[7]].map((h) => parseInt(h!, 16)));
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** 16 address bytes as 32 lower-case hex digits. */
export function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}

/** 32 hex digits (or a 32-bit number) back to address bytes. */
export function addrToBytes(addr: number | string): Uint8Array {
  if (typeof addr === "number") return Uint8Array.of(addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(addr.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Whether `addr` lies in `net`/`prefix`; addresses as the rules hold them (IPv4 as a number,
 * IPv6 as 32 hex digits).
 */
export function inPrefix(addr: number | string, net: number | string, prefix: number, version: 4 | 6): boolean {
  if (version === 4) {
    if (prefix === 0) return true;
    const shift = 32 - prefix;
    return (addr as number) >>> shift === (net as number) >>> shift;
  }
  const a = BigInt(`0x${addr as string}`);
  const n = BigInt(`0x${net as string}`);
  const shift = BigInt(128 - prefix);
  return a >> shift === n >> shift;
}
