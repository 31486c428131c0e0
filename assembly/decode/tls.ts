// TLS ClientHello: the server_name extension (RFC 6066 3). Walks the record, handshake and
// extension lengths in order; a length that points past the captured bytes means the hello
// was cut off (AN_TLS_TRUNC), one that contradicts its container means a bad hello (AN_TLS_BAD).

import { ld8, ld16, st8, sth16, sth32, ldh32 } from "../core/mem";
import { REC_ANOMALY, REC_FLAGS, REC_APP, REC_NAMESRC, REC_NAMELEN, REC_NAME, NAME_MAX } from "../shared/layout";
import { AN_TLS_TRUNC, AN_TLS_BAD, PF_HAS_NAME, APP_TLS, NS_SNI } from "../shared/events";
import { copyLower } from "./name";

export const TLS_CONTENT_HANDSHAKE = 0x16;
const TLS_RECORD_HDR = 5;
const TLS_HS_HDR = 4;
const TLS_HS_CLIENT_HELLO = 1;
const TLS_MAJOR = 3;
const TLS_RANDOM_AND_VERSION = 34;
const TLS_EXT_SERVER_NAME = 0;
const TLS_SNI_HOST_NAME = 0;
const SNI_MAX = 253;

function fail(rec: i32, bits: i32): void {
  sth32(rec + REC_ANOMALY, ldh32(rec + REC_ANOMALY) | bits);
}

export function decodeTlsClientHello(p: i32, end: i32, rec: i32): void {
  if (end - p < TLS_RECORD_HDR + TLS_HS_HDR) return;
  if (ld8(p + 1) != TLS_MAJOR) return; // not TLS: leave the payload unclassified
  st8(rec + REC_APP, APP_TLS);
  if (ld8(p + TLS_RECORD_HDR) != TLS_HS_CLIENT_HELLO) return;
  const recEnd = p + TLS_RECORD_HDR + ld16(p + 3);
  const hsLen = (ld8(p + 6) << 16) | ld16(p + 7);
  let q = p + TLS_RECORD_HDR + TLS_HS_HDR;
  const hsEnd = q + hsLen;
  // A hello spread over several records is legal but rare: read what the first record holds.
  const bound = hsEnd < recEnd ? hsEnd : recEnd;
  const limit = bound < end ? bound : end;
  q += TLS_RANDOM_AND_VERSION;
  if (q + 1 > limit) return truncOrBad(rec, q + 1, end);
  q += 1 + ld8(q); // session id
  if (q + 2 > limit) return truncOrBad(rec, q + 2, end);
  q += 2 + ld16(q); // cipher suites
  if (q + 1 > limit) return truncOrBad(rec, q + 1, end);
  q += 1 + ld8(q); // compression methods
  if (q + 2 > limit) {
    if (q == bound) return; // a hello without extensions has no SNI
    return truncOrBad(rec, q + 2, end);
  }
  const extEnd = q + 2 + ld16(q);
  if (extEnd > bound) {
    fail(rec, AN_TLS_BAD);
    return;
  }
  q += 2;
  while (q + 4 <= extEnd) {
    if (q + 4 > end) return fail(rec, AN_TLS_TRUNC);
    const type = ld16(q);
    const len = ld16(q + 2);
    const body = q + 4;
    if (body + len > extEnd) return fail(rec, AN_TLS_BAD);
    if (type == TLS_EXT_SERVER_NAME) {
      if (body + len > end) return fail(rec, AN_TLS_TRUNC);
      readServerName(body, body + len, rec);
      return;
    }
    q = body + len;
  }
  if (q < extEnd && q >= end) fail(rec, AN_TLS_TRUNC);
}

function truncOrBad(rec: i32, need: i32, end: i32): void {
  fail(rec, need > end ? AN_TLS_TRUNC : AN_TLS_BAD);
}

function readServerName(p: i32, end: i32, rec: i32): void {
  if (p + 2 > end) return fail(rec, AN_TLS_BAD);
  const listEnd = p + 2 + ld16(p);
  if (listEnd > end) return fail(rec, AN_TLS_BAD);
  let q = p + 2;
  while (q + 3 <= listEnd) {
    const type = ld8(q);
    const len = ld16(q + 1);
    const name = q + 3;
    if (name + len > listEnd) return fail(rec, AN_TLS_BAD);
    if (type == TLS_SNI_HOST_NAME) {
      if (len == 0 || len > SNI_MAX || len >= NAME_MAX) return fail(rec, AN_TLS_BAD);
      copyLower(rec + REC_NAME, name, len);
      sth16(rec + REC_NAMELEN, len);
      st8(rec + REC_NAMESRC, NS_SNI);
      sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_HAS_NAME);
      return;
    }
    q = name + len;
  }
}
