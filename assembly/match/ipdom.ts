// The IP -> domain table: which name an address was last given for in a DNS answer, so domain
// rules also apply to connections that carry no name of their own. Lives in shared memory and
// is read by every worker; writers and readers never block each other (per-way seqlock in the
// tag): a writer that finds a way busy skips the update, a reader that sees a write in progress
// treats the lookup as a miss. Layout and sizes: shared/layout.ts.

import { ld8, ldh16, ldh32, st8, sth32, sth16, copy, copy4, copy16, ltu, mul32, shru, atomicLoad32, atomicStore32, atomicCas32 } from "../core/mem";
import {
  IPD_NSETS, IPD_HDR_SIZE, IPD_WAYS, IPD_TAG_SIZE, IPD_TAG_SHIFT, IPD_SET_TAGS, IPD_SEQ, IPD_EXPIRY, IPD_HASH,
  IPD_VER, IPD_NAMELEN, IPD_ADDR, IPD_NAME, IPD_ENTRY_SIZE, IPD_MIN_TTL, IPD_MAX_TTL, REC_FLAGS, REC_ANOMALY,
  REC_NAME, REC_NAMELEN, REC_NAMESRC, REC_DNS_NANS, REC_ANS, ANS_TYPE, ANS_TTL, ANS_DATA, ANS_SIZE,
  NAME_MAX,
} from "../shared/layout";
import { PF_HAS_NAME, NS_IPDOM, AN_DNS_BAD_NAME } from "../shared/events";

const ADDR_MIX = -1640531535; // 0x9e3779b1 as i32
const DNS_TYPE_A = 1;
const DNS_TYPE_AAAA = 28;
const IPD_NAME_MAX = 255; // IPD_NAMELEN is one byte

/** Prepares an empty table of `nsets` sets (a power of two) at ipd; the memory must be zeroed. */
export function ipdomInit(ipd: i32, nsets: i32): void {
  sth32(ipd + IPD_NSETS, nsets);
}

function addrHash(ver: i32, addr: i32): i32 {
  let h = mul32(ldh32(addr), ADDR_MIX);
  if (ver == 6) {
    h = mul32(h ^ ldh32(addr + 4), ADDR_MIX);
    h = mul32(h ^ ldh32(addr + 8), ADDR_MIX);
    h = mul32(h ^ ldh32(addr + 12), ADDR_MIX);
  }
  return h ^ shru(h, 15);
}

function entryOf(ipd: i32, tag: i32): i32 {
  const nsets = ldh32(ipd + IPD_NSETS);
  const tags = ipd + IPD_HDR_SIZE;
  const index = (tag - tags) >> IPD_TAG_SHIFT; // set * ways + way
  return tags + nsets * IPD_SET_TAGS + index * IPD_ENTRY_SIZE;
}

function sameAddr(e: i32, ver: i32, addr: i32): bool {
  if (ldh32(e + IPD_ADDR) != ldh32(addr)) return false;
  if (ver == 4) return true;
  return ldh32(e + IPD_ADDR + 4) == ldh32(addr + 4) && ldh32(e + IPD_ADDR + 8) == ldh32(addr + 8) &&
    ldh32(e + IPD_ADDR + 12) == ldh32(addr + 12);
}

/**
 * Copies the name known for (ver, addr) into the record's name field. Returns 1 on a hit,
 * 0 on a miss, an expired entry, or an entry being rewritten at this moment.
 */
export function ipdomLookup(ipd: i32, ver: i32, addr: i32, now: i32, rec: i32): i32 {
  const h = addrHash(ver, addr);
  const set = ipd + IPD_HDR_SIZE + (h & (ldh32(ipd + IPD_NSETS) - 1)) * IPD_SET_TAGS;
  for (let w = 0; w < IPD_WAYS; w++) {
    const t = set + w * IPD_TAG_SIZE;
    if (ldh32(t + IPD_HASH) != h || ld8(t + IPD_VER) != ver) continue;
    const seq = atomicLoad32(t + IPD_SEQ);
    if (seq == 0 || (seq & 1) != 0) continue;
    const e = entryOf(ipd, t);
    if (!sameAddr(e, ver, addr)) continue;
    if (ltu(ldh32(t + IPD_EXPIRY), now)) return 0;
    const len = ld8(t + IPD_NAMELEN);
    copy(rec + REC_NAME, e + IPD_NAME, len);
    if (atomicLoad32(t + IPD_SEQ) != seq) return 0;
    sth16(rec + REC_NAMELEN, len);
    st8(rec + REC_NAMESRC, NS_IPDOM);
    sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_HAS_NAME);
    return 1;
  }
  return 0;
}

/**
 * Records that (ver, addr) belongs to the name at [name, name + len) until `expiry`.
 * Replaces the same address, else an empty or expired way, else the way expiring first.
 * Returns 1 if stored, 0 if the chosen way was busy or the name too long.
 */
export function ipdomPut(ipd: i32, ver: i32, addr: i32, name: i32, len: i32, expiry: i32, now: i32): i32 {
  if (len <= 0 || len > IPD_NAME_MAX || (ver != 4 && ver != 6)) return 0;
  const h = addrHash(ver, addr);
  const set = ipd + IPD_HDR_SIZE + (h & (ldh32(ipd + IPD_NSETS) - 1)) * IPD_SET_TAGS;
  let victim = -1;
  let victimExpiry = 0;
  for (let w = 0; w < IPD_WAYS; w++) {
    const t = set + w * IPD_TAG_SIZE;
    const seq = atomicLoad32(t + IPD_SEQ);
    if (seq != 0 && ldh32(t + IPD_HASH) == h && ld8(t + IPD_VER) == ver && sameAddr(entryOf(ipd, t), ver, addr)) {
      victim = t;
      break;
    }
    const exp = ldh32(t + IPD_EXPIRY);
    if (seq == 0 || ltu(exp, now)) {
      if (victim < 0 || victimExpiry != 0) {
        victim = t;
        victimExpiry = 0;
      }
      continue;
    }
    if (victim < 0 || (victimExpiry != 0 && ltu(exp, victimExpiry))) {
      victim = t;
      victimExpiry = exp;
    }
  }
  const seq = atomicLoad32(victim + IPD_SEQ);
  if ((seq & 1) != 0) return 0;
  if (atomicCas32(victim + IPD_SEQ, seq, seq + 1) != seq) return 0;
  const e = entryOf(ipd, victim);
  sth32(victim + IPD_EXPIRY, expiry);
  sth32(victim + IPD_HASH, h);
  st8(victim + IPD_VER, ver);
  st8(victim + IPD_NAMELEN, len);
  if (ver == 4) copy4(e + IPD_ADDR, addr);
  else copy16(e + IPD_ADDR, addr);
  copy(e + IPD_NAME, name, len);
  atomicStore32(victim + IPD_SEQ, seq + 2);
  return 1;
}

/**
 * Feeds every A / AAAA answer of a decoded DNS response into the table, under its question
 * name. A response with a malformed name teaches nothing: its answers cannot be trusted.
 */
export function ipdomLearn(ipd: i32, rec: i32, now: i32): i32 {
  if ((ldh32(rec + REC_ANOMALY) & AN_DNS_BAD_NAME) != 0) return 0;
  const n = ld8(rec + REC_DNS_NANS);
  const len = ldh16(rec + REC_NAMELEN);
  if (len == 0 || len >= NAME_MAX) return 0;
  let stored = 0;
  for (let i = 0; i < n; i++) {
    const ans = rec + REC_ANS + i * ANS_SIZE;
    const type = ldh16(ans + ANS_TYPE);
    if (type != DNS_TYPE_A && type != DNS_TYPE_AAAA) continue;
    let ttl = ldh32(ans + ANS_TTL);
    if (ltu(ttl, IPD_MIN_TTL)) ttl = IPD_MIN_TTL;
    else if (ltu(IPD_MAX_TTL, ttl)) ttl = IPD_MAX_TTL;
    stored += ipdomPut(ipd, type == DNS_TYPE_A ? 4 : 6, ans + ANS_DATA, rec + REC_NAME, len, now + ttl, now);
  }
  return stored;
}
