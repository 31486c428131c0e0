// DNS messages: the first question (name, type) and, for responses, the A, AAAA and CNAME
// answers. Names follow compression pointers only backwards, each jump landing before the
// previous one, so a hostile message cannot make the walk loop; the wire length of a name is
// capped at 255 bytes (RFC 1035 2.3.4).

import { ld8, ld16, ld32, st8, sth16, sth32, ldh32, copy } from "../core/mem";
import {
  REC_ANOMALY, REC_FLAGS, REC_APP, REC_DNS_ID, REC_DNS_FLAGS, REC_DNS_QTYPE, REC_DNS_ANCOUNT,
  REC_DNS_NANS, REC_NAMESRC, REC_NAMELEN, REC_DNS_CNLEN, REC_NAME, NAME_MAX, REC_ANS, ANS_MAX,
  ANS_TYPE, ANS_LEN, ANS_TTL, ANS_DATA, ANS_SIZE, REC_CNAMES, CNAME_POOL,
} from "../shared/layout";
import {
  AN_DNS_TRUNC, AN_DNS_BAD_NAME, AN_DNS_ANS_CAPPED, PF_HAS_NAME, PF_DNS_RESPONSE, APP_DNS, NS_DNS,
} from "../shared/events";
import { copyLower } from "./name";

const DNS_HDR = 12;
const DNS_FLAG_QR = 0x8000;
const DNS_NAME_WIRE_MAX = 255;
const DNS_PTR_BITS = 0xc0;
const DNS_PTR_MASK = 0x3fff;
const DNS_CLASS_IN = 1;
export const DNS_TYPE_A = 1;
export const DNS_TYPE_CNAME = 5;
export const DNS_TYPE_AAAA = 28;
const RR_FIXED = 10; // type, class, ttl, rdlength
const QUESTION_FIXED = 4; // type, class
const NAME_ERR_TRUNC = -1;
const NAME_ERR_BAD = -2;
const ASCII_DOT = 0x2e;

/** Set by readName: bytes written to the output (valid when it returns >= 0). */
let nameLen: i32 = 0;
/** Set by readName: the name did not fit into the output capacity. */
let nameOverflow: bool = false;
/** Set by readName when skipping: the name ended in a pointer that does not point backwards. */
let nameBad: bool = false;

/**
 * Reads the name at p inside the message [msg, end). Writes it lower-cased and dotted to `out`
 * (up to `cap` bytes) unless out is 0. Returns the offset just past the name as it sits at p,
 * or NAME_ERR_TRUNC / NAME_ERR_BAD.
 */
function readName(msg: i32, end: i32, p: i32, out: i32, cap: i32): i32 {
  let len = 0;
  let after = -1;
  let wire = 1; // the terminating root label
  let jumpLimit = p;
  nameOverflow = false;
  nameBad = false;
  while (true) {
    if (p >= end) return NAME_ERR_TRUNC;
    const b = ld8(p);
    if (b == 0) {
      if (after < 0) after = p + 1;
      break;
    }
    const kind = b & DNS_PTR_BITS;
    if (kind == DNS_PTR_BITS) {
      if (p + 1 >= end) return NAME_ERR_TRUNC;
      const target = msg + (ld16(p) & DNS_PTR_MASK);
      if (after < 0) after = p + 2;
      // A name that is only skipped ends here: its suffix is not needed. A pointer that does not
      // point backwards is still reported, but the record after it can be read.
      if (out == 0) {
        nameLen = 0;
        nameBad = target >= jumpLimit;
        return after;
      }
      if (target >= jumpLimit) return NAME_ERR_BAD;
      jumpLimit = target;
      p = target;
      continue;
    }
    if (kind != 0) return NAME_ERR_BAD; // 0x40 / 0x80 label types are obsolete or unassigned
    wire += b + 1;
    if (wire > DNS_NAME_WIRE_MAX) return NAME_ERR_BAD;
    if (p + 1 + b > end) return NAME_ERR_TRUNC;
    if (out != 0) {
      const need = len > 0 ? b + 1 : b;
      if (len + need > cap) {
        nameOverflow = true;
      } else if (!nameOverflow) {
        if (len > 0) {
          st8(out + len, ASCII_DOT);
          len++;
        }
        copyLower(out + len, p + 1, b);
        len += b;
      }
    }
    p += 1 + b;
  }
  nameLen = len;
  return after;
}

function anomaly(rec: i32, bits: i32): void {
  sth32(rec + REC_ANOMALY, ldh32(rec + REC_ANOMALY) | bits);
}

function nameError(rec: i32, code: i32): void {
  anomaly(rec, code == NAME_ERR_TRUNC ? AN_DNS_TRUNC : AN_DNS_BAD_NAME);
}

export function decodeDns(msg: i32, end: i32, rec: i32): void {
  st8(rec + REC_APP, APP_DNS);
  if (end - msg < DNS_HDR) {
    anomaly(rec, AN_DNS_TRUNC);
    return;
  }
  const flags = ld16(msg + 2);
  const qdcount = ld16(msg + 4);
  const ancount = ld16(msg + 6);
  sth16(rec + REC_DNS_ID, ld16(msg));
  sth16(rec + REC_DNS_FLAGS, flags);
  sth16(rec + REC_DNS_ANCOUNT, ancount);
  let p = msg + DNS_HDR;
  for (let q = 0; q < qdcount; q++) {
    const first = q == 0;
    const after = readName(msg, end, p, first ? rec + REC_NAME : 0, NAME_MAX - 1);
    if (after < 0) {
      nameError(rec, after);
      return;
    }
    if (after + QUESTION_FIXED > end) {
      anomaly(rec, AN_DNS_TRUNC);
      return;
    }
    if (first) {
      sth16(rec + REC_NAMELEN, nameLen);
      st8(rec + REC_NAMESRC, NS_DNS);
      sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_HAS_NAME);
      sth16(rec + REC_DNS_QTYPE, ld16(after));
    }
    p = after + QUESTION_FIXED;
  }
  if ((flags & DNS_FLAG_QR) == 0) return;
  sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_DNS_RESPONSE);
  let stored = 0;
  let pool = 0;
  for (let a = 0; a < ancount; a++) {
    const after = readName(msg, end, p, 0, 0);
    if (after < 0) {
      nameError(rec, after);
      break;
    }
    if (nameBad) nameError(rec, NAME_ERR_BAD);
    if (after + RR_FIXED > end) {
      anomaly(rec, AN_DNS_TRUNC);
      break;
    }
    const type = ld16(after);
    const klass = ld16(after + 2);
    const ttl = ld32(after + 4);
    const rdlen = ld16(after + 8);
    const rd = after + RR_FIXED;
    if (rd + rdlen > end) {
      anomaly(rec, AN_DNS_TRUNC);
      break;
    }
    p = rd + rdlen;
    if (klass != DNS_CLASS_IN) continue;
    const isAddr = (type == DNS_TYPE_A && rdlen == 4) || (type == DNS_TYPE_AAAA && rdlen == 16);
    if (!isAddr && type != DNS_TYPE_CNAME) continue;
    if (stored >= ANS_MAX) {
      anomaly(rec, AN_DNS_ANS_CAPPED);
      continue;
    }
    const ans = rec + REC_ANS + stored * ANS_SIZE;
    if (isAddr) {
      copy(ans + ANS_DATA, rd, rdlen);
      sth16(ans + ANS_LEN, rdlen);
    } else {
      const r = readName(msg, end, rd, rec + REC_CNAMES + pool, CNAME_POOL - pool);
      if (r < 0) {
        nameError(rec, r);
        continue;
      }
      if (nameOverflow) {
        anomaly(rec, AN_DNS_ANS_CAPPED);
        continue;
      }
      sth16(ans + ANS_DATA, pool);
      sth16(ans + ANS_LEN, nameLen);
      pool += nameLen;
    }
    sth16(ans + ANS_TYPE, type);
    sth32(ans + ANS_TTL, ttl);
    stored++;
  }
  st8(rec + REC_DNS_NANS, stored);
  sth16(rec + REC_DNS_CNLEN, pool);
}
