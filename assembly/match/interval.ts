// Interval tables: the address space cut into disjoint, sorted intervals, each carrying one
// value (see layout.ts). A direct index on the top bits narrows the binary search to a few
// entries, and each entry keeps its value beside its start: a lookup is one index read plus a
// short search over one or two cache lines.

import { ldh32, ld32, ltu, leu, shru } from "../core/mem";
import { IT_COUNT, IT_KBITS, IT_ENTRIES, IT_INDEX, IT4_ENTRY_SHIFT, IT4_VALUE, IT6_ENTRY_SHIFT, IT6_VALUE } from "../shared/layout";

/** Value of the interval holding the IPv4 address `addr` (host-order bits in an i32). */
export function lookup4(tbl: i32, addr: i32): i32 {
  const n = ldh32(tbl + IT_COUNT);
  if (n == 0) return 0;
  const k = ldh32(tbl + IT_KBITS);
  const entries = tbl + ldh32(tbl + IT_ENTRIES);
  let lo = 0;
  let hi = n - 1;
  if (k > 0) {
    const b = shru(addr, 32 - k);
    lo = ldh32(tbl + IT_INDEX + (b << 2));
    hi = ldh32(tbl + IT_INDEX + ((b + 1) << 2));
  }
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (leu(ldh32(entries + (mid << IT4_ENTRY_SHIFT)), addr)) lo = mid;
    else hi = mid - 1;
  }
  return ldh32(entries + (lo << IT4_ENTRY_SHIFT) + IT4_VALUE);
}

/** start (4 host-order words at s) <= address (a0..a3)? */
function le128(s: i32, a0: i32, a1: i32, a2: i32, a3: i32): bool {
  const s0 = ldh32(s);
  if (s0 != a0) return ltu(s0, a0);
  const s1 = ldh32(s + 4);
  if (s1 != a1) return ltu(s1, a1);
  const s2 = ldh32(s + 8);
  if (s2 != a2) return ltu(s2, a2);
  return leu(ldh32(s + 12), a3);
}

/** Value of the interval holding the IPv6 address stored (network order) at `addr`. */
export function lookup6(tbl: i32, addr: i32): i32 {
  const n = ldh32(tbl + IT_COUNT);
  if (n == 0) return 0;
  const a0 = ld32(addr);
  const a1 = ld32(addr + 4);
  const a2 = ld32(addr + 8);
  const a3 = ld32(addr + 12);
  const k = ldh32(tbl + IT_KBITS);
  const entries = tbl + ldh32(tbl + IT_ENTRIES);
  let lo = 0;
  let hi = n - 1;
  if (k > 0) {
    const b = shru(a0, 32 - k);
    lo = ldh32(tbl + IT_INDEX + (b << 2));
    hi = ldh32(tbl + IT_INDEX + ((b + 1) << 2));
  }
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (le128(entries + (mid << IT6_ENTRY_SHIFT), a0, a1, a2, a3)) lo = mid;
    else hi = mid - 1;
  }
  return ldh32(entries + (lo << IT6_ENTRY_SHIFT) + IT6_VALUE);
}
