// HTTP/1.x requests: the Host header (RFC 9112 3.2), without its port. Only payloads that start
// with a request method are looked at, and only the first HTTP_SCAN_MAX bytes of them.

import { ld8, ld32, st8, sth16, sth32, ldh32, ctz32 } from "../core/mem";
import { REC_ANOMALY, REC_FLAGS, REC_APP, REC_NAMESRC, REC_NAMELEN, REC_NAME } from "../shared/layout";
import { AN_HTTP_BAD_HOST, PF_HAS_NAME, APP_HTTP, NS_HOST } from "../shared/events";
import { copyLower } from "./name";

const HTTP_SCAN_MAX = 4096;
const HOST_MAX = 253;
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const CASE_BIT = 0x20;
// Word-at-a-time byte search (a zero byte in v has v - 0x01.. borrow into its top bit).
const LF_X4 = 0x0a0a0a0a;
const ONES_X4 = 0x01010101;
const HIGHS_X4 = -2139062144; // 0x80808080 as i32
// First four bytes of the request line, as big-endian words.
const M_GET = 0x47455420; // "GET "
const M_POST = 0x504f5354; // "POST"
const M_HEAD = 0x48454144; // "HEAD"
const M_PUT = 0x50555420; // "PUT "
const M_DELETE = 0x44454c45; // "DELE"
const M_OPTIONS = 0x4f505449; // "OPTI"
const M_PATCH = 0x50415443; // "PATC"
const M_CONNECT = 0x434f4e4e; // "CONN"
const M_TRACE = 0x54524143; // "TRAC"
// "host:" lower-cased, as bytes
const H_H = 0x68;
const H_O = 0x6f;
const H_S = 0x73;
const H_T = 0x74;

function isMethod(w: i32): bool {
  return w == M_GET || w == M_POST || w == M_HEAD || w == M_PUT || w == M_DELETE ||
    w == M_OPTIONS || w == M_PATCH || w == M_CONNECT || w == M_TRACE;
}

export function decodeHttpRequest(p: i32, end: i32, rec: i32): void {
  if (end - p < 16 || !isMethod(ld32(p))) return;
  st8(rec + REC_APP, APP_HTTP);
  const limit = end - p > HTTP_SCAN_MAX ? p + HTTP_SCAN_MAX : end;
  // Header lines start after a LF; "host:" needs 5 bytes.
  let q = findLF(p, limit);
  while (q >= 0 && q + 6 <= limit) {
    const h = q + 1;
    if (ld8(h) == CR || ld8(h) == LF) return; // end of headers: no Host
    if ((ld8(h) | CASE_BIT) == H_H && (ld8(h + 1) | CASE_BIT) == H_O && (ld8(h + 2) | CASE_BIT) == H_S &&
      (ld8(h + 3) | CASE_BIT) == H_T && ld8(h + 4) == COLON) {
      readHost(h + 5, limit, rec);
      return;
    }
    q = findLF(h, limit);
  }
}

/** Position of the first LF in [p, limit), or -1. */
function findLF(p: i32, limit: i32): i32 {
  while (p + 4 <= limit) {
    const v = ldh32(p) ^ LF_X4;
    const m = (v - ONES_X4) & ~v & HIGHS_X4;
    if (m != 0) return p + (ctz32(m) >> 3);
    p += 4;
  }
  while (p < limit) {
    if (ld8(p) == LF) return p;
    p++;
  }
  return -1;
}

function readHost(p: i32, limit: i32, rec: i32): void {
  while (p < limit && (ld8(p) == SP || ld8(p) == TAB)) p++;
  let start = p;
  let stop = p;
  if (p < limit && ld8(p) == LBRACKET) {
    // IPv6 literal: the name is what is inside the brackets.
    start = p + 1;
    stop = start;
    while (stop < limit && ld8(stop) != RBRACKET && ld8(stop) != CR && ld8(stop) != LF) stop++;
  } else {
    while (stop < limit) {
      const c = ld8(stop);
      if (c == COLON || c == CR || c == LF || c == SP || c == TAB) break;
      stop++;
    }
  }
  const len = stop - start;
  if (len <= 0 || len > HOST_MAX) {
    sth32(rec + REC_ANOMALY, ldh32(rec + REC_ANOMALY) | AN_HTTP_BAD_HOST);
    return;
  }
  copyLower(rec + REC_NAME, start, len);
  sth16(rec + REC_NAMELEN, len);
  st8(rec + REC_NAMESRC, NS_HOST);
  sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_HAS_NAME);
}
