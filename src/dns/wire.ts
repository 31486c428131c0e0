// DNS wire format for the resolver's hot path: read a query into a reused view, write replies
// straight into an output buffer, and scan upstream replies once (TTL positions, negative TTL,
// addresses) so the cache can serve them later by copying bytes and patching a few fields.
// Nothing here allocates per query; every read is bounds-checked against the message's end.

import { randomBytes } from "node:crypto";

export const HEADER = 12;
export const F_QR = 0x8000;
export const F_AA = 0x0400;
export const F_TC = 0x0200;
export const F_RD = 0x0100;
export const F_RA = 0x0080;
export const F_AD = 0x0020;
export const F_CD = 0x0010;
const OPCODE_MASK = 0x7800;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended RCODE 16 (BADVERS): upper 8 bits go in the OPT TTL, lower 4 in the header. */
export const RCODE_BADVERS = 16;

export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const TYPE_IXFR = 251;
export const TYPE_AXFR = 252;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;

/** Largest UDP reply sluice sends (DNS flag day 2020: no IP fragmentation). */
export const MAX_UDP_PAYLOAD = 1232;
/** Without EDNS a UDP reply may not exceed this (RFC 1035). */
export const CLASSIC_UDP_PAYLOAD = 512;
export const MAX_NAME = 255;
/** OPT record without options: root name, type, class, TTL, RDLENGTH. */
export const OPT_SIZE = 11;
const EDE_OPTION = 15;
const EDE_BLOCKED = 15;
const EDE_TEXT = "blocked";
/** OPT + one EDE option carrying EDE_TEXT. */
export const OPT_EDE_SIZE = OPT_SIZE + 4 + 2 + EDE_TEXT.length;
const DO_BIT = 0x8000;

/** parseQuery outcomes besides an RCODE to send back. */
export const Q_OK = 0;
/** Not something to answer at all (too short, a response): answering could loop or amplify. */
export const Q_IGNORE = -1;

/** The fields of the query being answered. One instance is reused for every query. */
export class QueryView {
  id = 0;
  flags = 0;
  /** Offset just past the question name's root label (the name starts at HEADER). */
  nameEnd = 0;
  qtype = 0;
  qclass = 0;
  /** Offset just past the question. */
  questionEnd = 0;
  /** FNV-1a over the lower-cased name, type, class and the DO bit: the cache key. */
  hash = 0;
  /** Every label is letters, digits, '-', '_' or '*' (so the text form needs no escapes). */
  plain = true;
  labels = 0;
  edns = false;
  ednsVersion = 0;
  /** The requestor's UDP payload size as advertised (512 without EDNS). */
  udpSize = CLASSIC_UDP_PAYLOAD;
  dnssecOk = false;
}

/**
 * Start value of the query hash, random per process: the cache is keyed by this hash, and a
 * fixed one would let anyone precompute names that all land in one bucket.
 */
const HASH_SEED = randomBytes(4).readUInt32LE(0) | 1;

const U16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const U32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v & 255;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

function plainChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95 || c === 42;
}

/** Offset past a (possibly compressed) name starting at `o`, or -1 if it runs off the end. */
export function skipName(b: Uint8Array, o: number, end: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (o >= end) return -1;
    const l = b[o]!;
    if (l === 0) return o + 1;
    if ((l & 0xc0) === 0xc0) return o + 2 <= end ? o + 2 : -1;
    if ((l & 0xc0) !== 0) return -1;
    o += l + 1;
  }
  return -1;
}

/**
 * Reads the query in b[off, off+len) into q. Returns Q_OK, Q_IGNORE, or the RCODE to answer
 * with (FORMERR, NOTIMP, REFUSED, BADVERS); for an RCODE the header and, when it was readable,
 * the question are valid in q so the error reply can echo them.
 */
export function parseQuery(b: Uint8Array, off: number, len: number, q: QueryView): number {
  const end = off + len;
  if (len < HEADER) return Q_IGNORE;
  q.id = U16(b, off);
  q.flags = U16(b, off + 2);
  q.edns = false;
  q.ednsVersion = 0;
  q.udpSize = CLASSIC_UDP_PAYLOAD;
  q.dnssecOk = false;
  q.questionEnd = off + HEADER;
  q.nameEnd = off + HEADER;
  q.qtype = 0;
  q.qclass = 0;
  if ((q.flags & F_QR) !== 0) return Q_IGNORE;
  if ((q.flags & OPCODE_MASK) !== 0) return RCODE_NOTIMP;
  const qd = U16(b, off + 4);
  const an = U16(b, off + 6);
  const ns = U16(b, off + 8);
  const ar = U16(b, off + 10);
  if (qd !== 1 || an !== 0) return RCODE_FORMERR;

  // Question name: uncompressed labels (a query has nothing earlier to point at).
  let o = off + HEADER;
  let h = HASH_SEED;
  let plain = true;
  let labels = 0;
  for (;;) {
    if (o >= end) return RCODE_FORMERR;
    const l = b[o]!;
    h = Math.imul(h ^ l, 0x01000193);
    o++;
    if (l === 0) break;
    if (l > 63) return RCODE_FORMERR;
    if (o + l > end) return RCODE_FORMERR;
    for (let i = 0; i < l; i++) {
      const c = lower(b[o + i]!);
      if (!plainChar(c)) plain = false;
      h = Math.imul(h ^ c, 0x01000193);
    }
    o += l;
    labels++;
  }
  if (o - (off + HEADER) > MAX_NAME) return RCODE_FORMERR;
  q.nameEnd = o;
  if (o + 4 > end) return RCODE_FORMERR;
  q.qtype = U16(b, o);
  q.qclass = U16(b, o + 2);
  q.questionEnd = o + 4;
  q.plain = plain;
  q.labels = labels;

  // Authority (rare in queries) is skipped; the additional section is searched for OPT.
  o += 4;
  for (let i = 0; i < ns + ar; i++) {
    const nameStart = o;
    o = skipName(b, o, end);
    if (o < 0 || o + 10 > end) return RCODE_FORMERR;
    const type = U16(b, o);
    const rdlen = U16(b, o + 8);
    if (i >= ns && type === TYPE_OPT) {
      if (q.edns || b[nameStart] !== 0) return RCODE_FORMERR;
      q.edns = true;
      q.udpSize = Math.max(CLASSIC_UDP_PAYLOAD, U16(b, o + 2));
      q.ednsVersion = b[o + 5]!;
      q.dnssecOk = (U16(b, o + 6) & DO_BIT) !== 0;
    }
    o += 10 + rdlen;
    if (o > end) return RCODE_FORMERR;
  }
  if (q.dnssecOk) h = Math.imul(h ^ 0xd0, 0x01000193);
  h = Math.imul(h ^ (q.qtype >>> 8), 0x01000193);
  h = Math.imul(h ^ (q.qtype & 255), 0x01000193);
  h = Math.imul(h ^ (q.qclass & 255), 0x01000193);
  q.hash = h >>> 0;
  if (q.edns && q.ednsVersion > 0) return RCODE_BADVERS;
  if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) return RCODE_REFUSED;
  if (q.qtype === TYPE_AXFR || q.qtype === TYPE_IXFR || q.qtype === TYPE_OPT) return RCODE_NOTIMP;
  return Q_OK;
}

const SCRATCH = Buffer.allocUnsafeSlow(4 * MAX_NAME);

/**
 * The question name as lower-case dotted text without the trailing dot ("" for the root).
 * Labels with other bytes than the usual ones use RFC 1035 presentation escapes (\. and \DDD),
 * so no two different names share a text.
 */
export function nameText(b: Uint8Array, q: QueryView, off: number): string {
  let o = off + HEADER;
  let w = 0;
  for (;;) {
    const l = b[o++]!;
    if (l === 0) break;
    if (w > 0) SCRATCH[w++] = 46;
    for (let i = 0; i < l; i++) {
      const c = lower(b[o + i]!);
      if (q.plain || plainChar(c)) SCRATCH[w++] = c;
      else if (c === 46 || c === 92) {
        SCRATCH[w++] = 92;
        SCRATCH[w++] = c;
      } else {
        SCRATCH[w++] = 92;
        SCRATCH[w++] = 48 + Math.floor(c / 100);
        SCRATCH[w++] = 48 + (Math.floor(c / 10) % 10);
        SCRATCH[w++] = 48 + (c % 10);
      }
    }
    o += l;
  }
  return SCRATCH.toString("latin1", 0, w);
}

/** Whether the lower-cased question of `q` in `b` equals the stored name `name` (lower-case wire). */
export function sameName(b: Uint8Array, off: number, q: QueryView, name: Uint8Array): boolean {
  const start = off + HEADER;
  const n = q.nameEnd - start;
  if (n !== name.length) return false;
  for (let i = 0; i < n; i++) if (lower(b[start + i]!) !== name[i]) return false;
  return true;
}

/**
 * Writes a reply header and the query's question (as the client sent it: 0x20 case is kept)
 * at out[o]. Returns the offset after the question.
 */
export function writeHead(out: Uint8Array, o: number, src: Uint8Array, srcOff: number, q: QueryView, rcode: number, an: number, ns: number, ar: number): number {
  put16(out, o, q.id);
  put16(out, o + 2, F_QR | F_RA | (q.flags & (F_RD | F_CD)) | (rcode & 15));
  const hasQuestion = q.questionEnd > srcOff + HEADER;
  put16(out, o + 4, hasQuestion ? 1 : 0);
  put16(out, o + 6, an);
  put16(out, o + 8, ns);
  put16(out, o + 10, ar);
  let w = o + HEADER;
  for (let i = srcOff + HEADER; i < q.questionEnd; i++) out[w++] = src[i]!;
  return w;
}

/** Appends an OPT record (our payload size, the client's DO bit, extended RCODE bits). */
export function writeOpt(out: Uint8Array, o: number, q: QueryView, extRcode: number, blocked: boolean): number {
  out[o] = 0;
  put16(out, o + 1, TYPE_OPT);
  put16(out, o + 3, MAX_UDP_PAYLOAD);
  out[o + 5] = extRcode >>> 4;
  out[o + 6] = 0;
  put16(out, o + 7, q.dnssecOk ? DO_BIT : 0);
  if (!blocked) {
    put16(out, o + 9, 0);
    return o + OPT_SIZE;
  }
  // Extended DNS Error 15 "Blocked" (RFC 8914), as Pi-hole sends by default.
  put16(out, o + 9, 4 + 2 + EDE_TEXT.length);
  put16(out, o + 11, EDE_OPTION);
  put16(out, o + 13, 2 + EDE_TEXT.length);
  put16(out, o + 15, EDE_BLOCKED);
  for (let i = 0; i < EDE_TEXT.length; i++) out[o + 17 + i] = EDE_TEXT.charCodeAt(i);
  return o + OPT_EDE_SIZE;
}

/** An answer-less reply with `rcode` (errors, NXDOMAIN, NODATA). Returns its length. */
export function writeEmpty(out: Uint8Array, o: number, src: Uint8Array, srcOff: number, q: QueryView, rcode: number, blocked = false): number {
  const withOpt = q.edns;
  let w = writeHead(out, o, src, srcOff, q, rcode, 0, 0, withOpt ? 1 : 0);
  if (withOpt) w = writeOpt(out, w, q, rcode, blocked);
  return w - o;
}

/**
 * A reply carrying one address record for the question (blocking modes NULL and IP):
 * `addr` holds 4 (A) or 16 (AAAA) bytes at addrOff. Returns its length.
 */
export function writeAddress(out: Uint8Array, o: number, src: Uint8Array, srcOff: number, q: QueryView, addr: Uint8Array, addrOff: number, ttl: number, blocked: boolean): number {
  const alen = q.qtype === TYPE_A ? 4 : 16;
  let w = writeHead(out, o, src, srcOff, q, RCODE_NOERROR, 1, 0, q.edns ? 1 : 0);
  put16(out, w, 0xc000 | HEADER); // the question's name
  put16(out, w + 2, q.qtype);
  put16(out, w + 4, CLASS_IN);
  put32(out, w + 6, ttl);
  put16(out, w + 10, alen);
  w += 12;
  for (let i = 0; i < alen; i++) out[w++] = addr[addrOff + i]!;
  if (q.edns) w = writeOpt(out, w, q, 0, blocked);
  return w - o;
}

/** Header plus question with TC set: "ask again over TCP". */
export function writeTruncated(out: Uint8Array, o: number, src: Uint8Array, srcOff: number, q: QueryView): number {
  const n = writeEmpty(out, o, src, srcOff, q, RCODE_NOERROR);
  out[o + 2]! |= F_TC >>> 8;
  return n;
}

// ---- upstream replies ----

/** Most TTL fields a cached reply may carry; longer replies are served but not cached. */
export const MAX_TTLS = 512;
/** Most addresses of one reply fed to the IP -> domain table. */
export const MAX_ADDRS = 32;

/** What scanReply found. One instance is reused. */
export class ReplyScan {
  rcode = 0;
  flags = 0;
  an = 0;
  /** Offsets of every TTL field outside OPT. */
  readonly ttlAt = new Uint16Array(MAX_TTLS);
  ttls = 0;
  /** Smallest TTL of the answer section (positive replies) or the SOA-derived one (negative). */
  minTtl = 0;
  /** RFC 2308: min(SOA TTL, SOA MINIMUM) from the authority section, -1 without a SOA. */
  negTtl = -1;
  /** Where the OPT record starts and ends (0 if none): the cache keeps replies without it. */
  optStart = 0;
  optEnd = 0;
  /** Offsets of A/AAAA rdata in the answer section, with their TTLs. */
  readonly addrAt = new Uint16Array(MAX_ADDRS);
  readonly addrLen = new Uint8Array(MAX_ADDRS);
  readonly addrTtl = new Uint32Array(MAX_ADDRS);
  addrs = 0;
  cname = false;
  /** The reply holds more TTLs than MAX_TTLS (not cacheable). */
  overflow = false;
}

/**
 * Checks an upstream reply for the question in `q` (sent from `qsrc`) and records what the
 * cache needs. Returns false for a reply that is malformed or answers another question.
 */
export function scanReply(b: Uint8Array, len: number, qsrc: Uint8Array, qOff: number, q: QueryView, s: ReplyScan): boolean {
  if (len < HEADER) return false;
  s.flags = U16(b, 2);
  if ((s.flags & F_QR) === 0) return false;
  s.rcode = s.flags & 15;
  const qd = U16(b, 4);
  const an = U16(b, 6);
  const ns = U16(b, 8);
  const ar = U16(b, 10);
  if (qd !== 1) return false;
  // The question must be ours (case-insensitively: upstreams may change case).
  const qlen = q.questionEnd - (qOff + HEADER);
  if (HEADER + qlen > len) return false;
  for (let i = 0; i < qlen; i++) if (lower(b[HEADER + i]!) !== lower(qsrc[qOff + HEADER + i]!)) return false;
  let o = HEADER + qlen;
  s.an = an;
  s.ttls = 0;
  s.addrs = 0;
  s.minTtl = 0x7fffffff;
  s.negTtl = -1;
  s.optStart = s.optEnd = 0;
  s.cname = false;
  s.overflow = false;
  const total = an + ns + ar;
  for (let i = 0; i < total; i++) {
    const start = o;
    o = skipName(b, o, len);
    if (o < 0 || o + 10 > len) return false;
    const type = U16(b, o);
    const raw = U32(b, o + 4);
    const ttl = raw > 0x7fffffff ? 0 : raw; // RFC 2181 8: a TTL with the top bit set counts as zero
    const rdlen = U16(b, o + 8);
    const rd = o + 10;
    if (rd + rdlen > len) return false;
    if (type === TYPE_OPT) {
      if (i < an + ns || s.optStart !== 0) return false;
      s.optStart = start;
      s.optEnd = rd + rdlen;
    } else {
      if (s.ttls < MAX_TTLS) s.ttlAt[s.ttls++] = o + 4;
      else s.overflow = true;
      if (i < an) {
        if (ttl < s.minTtl) s.minTtl = ttl;
        if (type === TYPE_CNAME) s.cname = true;
        else if ((type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16)) {
          if (s.addrs < MAX_ADDRS) {
            s.addrAt[s.addrs] = rd;
            s.addrLen[s.addrs] = rdlen;
            s.addrTtl[s.addrs] = ttl;
            s.addrs++;
          }
        }
      } else if (i < an + ns && type === TYPE_SOA && rdlen >= 22) {
        // The SOA MINIMUM is the last 32 bits of its rdata.
        const min = U32(b, rd + rdlen - 4);
        s.negTtl = Math.min(ttl, min);
      }
    }
    o = rd + rdlen;
  }
  if (an === 0 || s.minTtl === 0x7fffffff) s.minTtl = 0;
  return true;
}

/** Reads the 16-bit ID / flags of a message. */
export function readU16(b: Uint8Array, o: number): number {
  return U16(b, o);
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  put16(b, o, v);
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  put32(b, o, v);
}
