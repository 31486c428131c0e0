// Connection tracking in the worker: every decoded packet updates its flow in a bounded,
// bucketed table in shared memory, and what the host must record (a new flow, a changed verdict
// or name, an end with its counters) is written as a fixed-size event into the worker's ring.
// Nothing here waits or allocates: a full bucket evicts its least recently seen flow, a full
// ring drops the event; both are counted. Layout and timeouts: shared/layout.ts.

import { ld8, ldh16, ldh32, st8, sth16, sth32, copy, copy16, fill0x32, ltu, mul32, shru, atomicLoad32, atomicStore32 } from "../core/mem";
import {
  FT_NBUCKETS, FT_SEQ, FT_SWEEP, FT_EVICTED, FT_LIVE, FT_RING, FT_WORKER, FT_HDR_SIZE, FT_WAYS,
  FT_TAG_HASH, FT_TAG_LAST, FT_BUCKET_HDR, FT_BUCKET_SIZE,
  FL_STATE, FL_IPVER, FL_PROTO, FL_VERDICT, FL_MATCHBY, FL_DIR, FL_TCP, FL_NAMED, FL_SPORT, FL_DPORT, FL_PROFILE,
  FL_RULE, FL_LINE, FL_ID, FL_FIRST, FL_LAST, FL_PKTS_OUT, FL_PKTS_IN, FL_BYTES_OUT, FL_BYTES_IN, FL_HASH,
  FL_SRC, FL_DST, FL_FLAGS, FL_SIZE, FS_EMPTY, FS_OPEN, FS_CLOSING, FS_KERNEL, TS_SYN, TS_FIN_OUT, TS_FIN_IN, TS_RST,
  FT_TIMEOUT_TCP, FT_TIMEOUT_TCP_NEW, FT_TIMEOUT_CLOSING, FT_TIMEOUT_UDP, FT_TIMEOUT_OTHER, FT_TIMEOUT_KERNEL,
  FT_SWEEP_BUCKETS, RG_HEAD, RG_DROPPED, RG_CAP, RG_TAIL, RG_HDR_SIZE,
  EV_TYPE, EV_REASON, EV_IPVER, EV_PROTO, EV_VERDICT, EV_MATCHBY, EV_DIR, EV_HASMAC, EV_SPORT, EV_DPORT, EV_PROFILE,
  EV_NAMELEN, EV_RULE, EV_LINE, EV_ID, EV_FIRST, EV_LAST, EV_PKTS_OUT, EV_PKTS_IN, EV_BYTES_OUT, EV_BYTES_IN,
  EV_FLAGS, EV_SRC, EV_DST, EV_MAC, EV_NAME, EV_SIZE, EVT_NEW, EVT_UPDATE, EVT_END, EVR_CLOSED, EVR_TIMEOUT, EVR_EVICTED,
  BF_TRACK_FAST, REC_IPVER, REC_PROTO, REC_FLAGS, REC_SPORT, REC_DPORT, REC_SRC, REC_DST, REC_ICMPTYPE, REC_ICMPID,
  REC_TCPFLAGS, REC_VERDICT, REC_MATCHBY, REC_PROFILE, REC_RULE, REC_LINE, REC_NAME, REC_NAMELEN, REC_MAC, REC_IPLEN,
} from "../shared/layout";
import {
  PF_HAS_PORTS, PF_HAS_NAME, PF_HAS_MAC, PF_INBOUND, PF_PROVISIONAL, PF_IPDOM_MISS, IPP_TCP, IPP_UDP, IPP_ICMP, IPP_ICMPV6,
} from "../shared/events";
import { ipdomLookup } from "../match/ipdom";

const MIX_A = -1640531535; // 0x9e3779b1 as i32
const MIX_B = -2048144789; // 0x85ebca6b as i32
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const ICMP6_ECHO_REQUEST = 128;
const ICMP6_ECHO_REPLY = 129;
const MATCH_NONE = 0;
const MATCH_FORWARD = 1;
const MATCH_REVERSE = 2;

/** Prepares a zeroed region: `nbuckets` (a power of two) buckets, then a ring of `ringCap` events. */
export function flowInit(ft: i32, nbuckets: i32, ringCap: i32, worker: i32): void {
  sth32(ft + FT_NBUCKETS, nbuckets);
  const ring = FT_HDR_SIZE + nbuckets * FT_BUCKET_SIZE;
  sth32(ft + FT_RING, ring);
  sth32(ft + ring + RG_CAP, ringCap);
  sth32(ft + FT_WORKER, worker);
}

function endpointHash(ver: i32, addr: i32, port: i32): i32 {
  let h = mul32(port + 1, MIX_A) ^ ldh32(addr);
  if (ver == 6) {
    h = mul32(h, MIX_B) ^ ldh32(addr + 4);
    h = mul32(h, MIX_B) ^ ldh32(addr + 8);
    h = mul32(h, MIX_B) ^ ldh32(addr + 12);
  }
  h = mul32(h ^ shru(h, 16), MIX_B);
  return h ^ shru(h, 13);
}

/** The same for both directions of a flow: the endpoints' hashes are combined symmetrically. */
function flowHash(ver: i32, proto: i32, src: i32, sp: i32, dst: i32, dp: i32): i32 {
  let h = (endpointHash(ver, src, sp) + endpointHash(ver, dst, dp)) | 0;
  h = mul32(h ^ (proto << 8) ^ ver, MIX_A);
  h ^= shru(h, 15);
  return h == 0 ? 1 : h;
}

function same16(a: i32, b: i32): bool {
  return ldh32(a) == ldh32(b) && ldh32(a + 4) == ldh32(b + 4) && ldh32(a + 8) == ldh32(b + 8) && ldh32(a + 12) == ldh32(b + 12);
}

function matchEntry(e: i32, src: i32, sp: i32, dst: i32, dp: i32): i32 {
  const esp = ldh16(e + FL_SPORT);
  const edp = ldh16(e + FL_DPORT);
  if (esp == sp && edp == dp && same16(e + FL_SRC, src) && same16(e + FL_DST, dst)) return MATCH_FORWARD;
  if (esp == dp && edp == sp && same16(e + FL_SRC, dst) && same16(e + FL_DST, src)) return MATCH_REVERSE;
  return MATCH_NONE;
}

function addBytes(p: i32, n: i32): void {
  const lo = ldh32(p);
  const sum = (lo + n) | 0;
  sth32(p, sum);
  if (ltu(sum, lo)) sth32(p + 4, (ldh32(p + 4) + 1) | 0);
}

function timeoutOf(e: i32): i32 {
  const st = ld8(e + FL_STATE);
  if (st == FS_KERNEL) return FT_TIMEOUT_KERNEL;
  if (st == FS_CLOSING) return FT_TIMEOUT_CLOSING;
  const proto = ld8(e + FL_PROTO);
  if (proto == IPP_TCP) return (ldh32(e + FL_PKTS_IN) == 0) ? FT_TIMEOUT_TCP_NEW : FT_TIMEOUT_TCP;
  if (proto == IPP_UDP) return FT_TIMEOUT_UDP;
  return FT_TIMEOUT_OTHER;
}

/**
 * Writes an event for flow `e` into the ring; `rec` (0 = none) supplies the name and MAC.
 * A full ring drops the event and counts it: the worker never waits for the writer.
 */
function emit(ft: i32, e: i32, type: i32, reason: i32, rec: i32): void {
  const ring = ft + ldh32(ft + FT_RING);
  const head = ldh32(ring + RG_HEAD);
  const cap = ldh32(ring + RG_CAP);
  if (!ltu((head - atomicLoad32(ring + RG_TAIL)) | 0, cap)) {
    sth32(ring + RG_DROPPED, (ldh32(ring + RG_DROPPED) + 1) | 0);
    return;
  }
  const s = ring + RG_HDR_SIZE + (head & (cap - 1)) * EV_SIZE;
  st8(s + EV_TYPE, type);
  st8(s + EV_REASON, reason);
  st8(s + EV_IPVER, ld8(e + FL_IPVER));
  st8(s + EV_PROTO, ld8(e + FL_PROTO));
  st8(s + EV_VERDICT, ld8(e + FL_VERDICT));
  st8(s + EV_MATCHBY, ld8(e + FL_MATCHBY));
  st8(s + EV_DIR, ld8(e + FL_DIR));
  sth16(s + EV_SPORT, ldh16(e + FL_SPORT));
  sth16(s + EV_DPORT, ldh16(e + FL_DPORT));
  sth16(s + EV_PROFILE, ldh16(e + FL_PROFILE));
  sth32(s + EV_RULE, ldh32(e + FL_RULE));
  sth32(s + EV_LINE, ldh32(e + FL_LINE));
  sth32(s + EV_ID, ldh32(e + FL_ID));
  sth32(s + EV_FIRST, ldh32(e + FL_FIRST));
  sth32(s + EV_LAST, ldh32(e + FL_LAST));
  sth32(s + EV_PKTS_OUT, ldh32(e + FL_PKTS_OUT));
  sth32(s + EV_PKTS_IN, ldh32(e + FL_PKTS_IN));
  sth32(s + EV_BYTES_OUT, ldh32(e + FL_BYTES_OUT));
  sth32(s + EV_BYTES_OUT + 4, ldh32(e + FL_BYTES_OUT + 4));
  sth32(s + EV_BYTES_IN, ldh32(e + FL_BYTES_IN));
  sth32(s + EV_BYTES_IN + 4, ldh32(e + FL_BYTES_IN + 4));
  sth32(s + EV_FLAGS, ldh32(e + FL_FLAGS));
  copy16(s + EV_SRC, e + FL_SRC);
  copy16(s + EV_DST, e + FL_DST);
  let namelen = 0;
  let hasmac = 0;
  if (rec != 0) {
    const pf = ldh32(rec + REC_FLAGS);
    if ((pf & PF_HAS_NAME) != 0) {
      namelen = ldh16(rec + REC_NAMELEN);
      copy(s + EV_NAME, rec + REC_NAME, namelen);
    }
    if ((pf & PF_HAS_MAC) != 0) {
      copy(s + EV_MAC, rec + REC_MAC, 6);
      hasmac = 1;
    }
  }
  sth16(s + EV_NAMELEN, namelen);
  st8(s + EV_HASMAC, hasmac);
  // Publish: the consumer reads slots below head only after it sees the new head.
  atomicStore32(ring + RG_HEAD, (head + 1) | 0);
}

function copyDecision(e: i32, rec: i32): void {
  st8(e + FL_VERDICT, ld8(rec + REC_VERDICT));
  st8(e + FL_MATCHBY, ld8(rec + REC_MATCHBY));
  sth16(e + FL_PROFILE, ldh16(rec + REC_PROFILE));
  sth32(e + FL_RULE, ldh32(rec + REC_RULE));
  sth32(e + FL_LINE, ldh32(rec + REC_LINE));
  sth32(e + FL_FLAGS, ldh32(rec + REC_FLAGS));
}

/** A decided (non-provisional) verdict under fast-track leaves the rest of the flow to the kernel. */
function settled(rec: i32, flags: i32): bool {
  return (flags & BF_TRACK_FAST) != 0 && ld8(rec + REC_VERDICT) != 0 && (ldh32(rec + REC_FLAGS) & PF_PROVISIONAL) == 0;
}

/**
 * Accounts one decided packet (the scratch record `rec`) to its flow, creating the flow on its
 * first packet. `len` is the packet's length on the wire as far as it is known.
 */
export function flowTrack(ft: i32, rec: i32, ipd: i32, now: i32, flags: i32, len: i32): void {
  const ver = ld8(rec + REC_IPVER);
  if (ver != 4 && ver != 6) return;
  const pf = ldh32(rec + REC_FLAGS);
  const proto = ld8(rec + REC_PROTO);
  let sp = 0;
  let dp = 0;
  if ((pf & PF_HAS_PORTS) != 0) {
    sp = ldh16(rec + REC_SPORT);
    dp = ldh16(rec + REC_DPORT);
  } else if (proto == IPP_ICMP || proto == IPP_ICMPV6) {
    // Echo flows are keyed by their identifier; ICMP errors belong to the flow they report on.
    const t = ld8(rec + REC_ICMPTYPE);
    if (t != ICMP_ECHO_REQUEST && t != ICMP_ECHO_REPLY && t != ICMP6_ECHO_REQUEST && t != ICMP6_ECHO_REPLY) return;
    sp = ldh16(rec + REC_ICMPID);
    dp = sp;
  } else if (proto == IPP_TCP || proto == IPP_UDP) {
    return; // a later fragment: no ports to key it by
  }
  const iplen = ldh16(rec + REC_IPLEN);
  const bytes = iplen > len ? iplen : len;
  const src = rec + REC_SRC;
  const dst = rec + REC_DST;
  const h = flowHash(ver, proto, src, sp, dst, dp);
  const bucket = ft + FT_HDR_SIZE + (h & (ldh32(ft + FT_NBUCKETS) - 1)) * FT_BUCKET_SIZE;
  let free = -1;
  let oldest = -1;
  for (let w = 0; w < FT_WAYS; w++) {
    const tag = ldh32(bucket + FT_TAG_HASH + w * 4);
    if (tag == 0) {
      if (free < 0) free = w;
      continue;
    }
    if (oldest < 0 || ltu(ldh32(bucket + FT_TAG_LAST + w * 4), ldh32(bucket + FT_TAG_LAST + oldest * 4))) oldest = w;
    if (tag != h) continue;
    const e = bucket + FT_BUCKET_HDR + w * FL_SIZE;
    if (ld8(e + FL_IPVER) != ver || ld8(e + FL_PROTO) != proto) continue;
    const m = matchEntry(e, src, sp, dst, dp);
    if (m == MATCH_NONE) continue;
    sth32(bucket + FT_TAG_LAST + w * 4, now);
    update(ft, e, rec, ipd, now, flags, m == MATCH_FORWARD, bytes);
    return;
  }
  let way = free;
  if (way < 0) {
    // A full bucket (a flood of new flows): the least recently seen flow makes room.
    way = oldest;
    const victim = bucket + FT_BUCKET_HDR + way * FL_SIZE;
    if (ld8(victim + FL_STATE) != FS_KERNEL) emit(ft, victim, EVT_END, EVR_EVICTED, 0);
    sth32(ft + FT_EVICTED, (ldh32(ft + FT_EVICTED) + 1) | 0);
  } else {
    sth32(ft + FT_LIVE, (ldh32(ft + FT_LIVE) + 1) | 0);
  }
  const e = bucket + FT_BUCKET_HDR + way * FL_SIZE;
  sth32(bucket + FT_TAG_HASH + way * 4, h);
  sth32(bucket + FT_TAG_LAST + way * 4, now);
  fill0x32(e, FL_SIZE);
  st8(e + FL_IPVER, ver);
  st8(e + FL_PROTO, proto);
  st8(e + FL_DIR, (pf & PF_INBOUND) != 0 ? 1 : 0);
  sth16(e + FL_SPORT, sp);
  sth16(e + FL_DPORT, dp);
  sth32(e + FL_HASH, h);
  copy16(e + FL_SRC, src);
  copy16(e + FL_DST, dst);
  const seq = (ldh32(ft + FT_SEQ) + 1) | 0;
  sth32(ft + FT_SEQ, seq);
  sth32(e + FL_ID, seq);
  sth32(e + FL_FIRST, now);
  sth32(e + FL_LAST, now);
  sth32(e + FL_PKTS_OUT, 1);
  sth32(e + FL_BYTES_OUT, bytes);
  if (proto == IPP_TCP && (ld8(rec + REC_TCPFLAGS) & TCP_SYN) != 0) st8(e + FL_TCP, TS_SYN);
  copyDecision(e, rec);
  // A flow that names nothing itself still gets the name DNS gave its remote address.
  if ((ldh32(rec + REC_FLAGS) & (PF_HAS_NAME | PF_IPDOM_MISS)) == 0 && ipd != 0) {
    ipdomLookup(ipd, ver, (pf & PF_INBOUND) != 0 ? src : dst, now, rec);
  }
  if ((ldh32(rec + REC_FLAGS) & PF_HAS_NAME) != 0) st8(e + FL_NAMED, 1);
  st8(e + FL_STATE, settled(rec, flags) ? FS_KERNEL : FS_OPEN);
  emit(ft, e, EVT_NEW, 0, rec);
}

function update(ft: i32, e: i32, rec: i32, ipd: i32, now: i32, flags: i32, forward: bool, bytes: i32): void {
  sth32(e + FL_LAST, now);
  // Packets already queued when the flow was handed to the kernel: the kernel's totals replace
  // ours when it reports the end, so they are not counted (and the entry's second line stays cold).
  const st = ld8(e + FL_STATE);
  if (st == FS_KERNEL) return;
  if (forward) {
    sth32(e + FL_PKTS_OUT, (ldh32(e + FL_PKTS_OUT) + 1) | 0);
    addBytes(e + FL_BYTES_OUT, bytes);
  } else {
    sth32(e + FL_PKTS_IN, (ldh32(e + FL_PKTS_IN) + 1) | 0);
    addBytes(e + FL_BYTES_IN, bytes);
  }
  if (ld8(e + FL_PROTO) == IPP_TCP) {
    const tf = ld8(rec + REC_TCPFLAGS);
    let seen = ld8(e + FL_TCP);
    if ((tf & TCP_RST) != 0) seen |= TS_RST;
    if ((tf & TCP_FIN) != 0) seen |= forward ? TS_FIN_OUT : TS_FIN_IN;
    st8(e + FL_TCP, seen);
    if ((seen & TS_RST) != 0 || (seen & (TS_FIN_OUT | TS_FIN_IN)) == (TS_FIN_OUT | TS_FIN_IN)) st8(e + FL_STATE, FS_CLOSING);
  }
  const named = ld8(e + FL_NAMED) == 0 && (ldh32(rec + REC_FLAGS) & PF_HAS_NAME) != 0;
  const changed = ld8(e + FL_VERDICT) != ld8(rec + REC_VERDICT) || ldh32(e + FL_RULE) != ldh32(rec + REC_RULE) ||
    ((ldh32(e + FL_FLAGS) ^ ldh32(rec + REC_FLAGS)) & PF_PROVISIONAL) != 0;
  if (named || changed) {
    copyDecision(e, rec);
    if (named) st8(e + FL_NAMED, 1);
    if (settled(rec, flags) && ld8(e + FL_STATE) == FS_OPEN) st8(e + FL_STATE, FS_KERNEL);
    emit(ft, e, EVT_UPDATE, 0, named ? rec : 0);
  }
}

/**
 * Ends flows idle past their timeout, visiting FT_SWEEP_BUCKETS buckets from where the last
 * sweep stopped. Fast-tracked flows leave quietly: the kernel reports their end (conntrack).
 */
export function flowSweep(ft: i32, now: i32): void {
  const nb = ldh32(ft + FT_NBUCKETS);
  let b = ldh32(ft + FT_SWEEP);
  for (let i = 0; i < FT_SWEEP_BUCKETS; i++) {
    const bucket = ft + FT_HDR_SIZE + (b & (nb - 1)) * FT_BUCKET_SIZE;
    for (let w = 0; w < FT_WAYS; w++) {
      if (ldh32(bucket + FT_TAG_HASH + w * 4) == 0) continue;
      const e = bucket + FT_BUCKET_HDR + w * FL_SIZE;
      if (!ltu((ldh32(bucket + FT_TAG_LAST + w * 4) + timeoutOf(e)) | 0, now)) continue;
      const st = ld8(e + FL_STATE);
      if (st != FS_KERNEL) emit(ft, e, EVT_END, st == FS_CLOSING ? EVR_CLOSED : EVR_TIMEOUT, 0);
      st8(e + FL_STATE, FS_EMPTY);
      sth32(bucket + FT_TAG_HASH + w * 4, 0);
      sth32(ft + FT_LIVE, (ldh32(ft + FT_LIVE) - 1) | 0);
    }
    b = (b + 1) & (nb - 1);
  }
  sth32(ft + FT_SWEEP, b);
}
