// QUIC long headers (RFC 9000 17.2): detection and version only. The SNI sits inside the
// Initial packet's encrypted CRYPTO frames; reading it needs the Initial keys (HKDF over the
// DCID) and AES-GCM, which this decoder does not do.

import { ld8, ld32, st8, sth32, shru } from "../core/mem";
import { REC_APP, REC_QUICVER } from "../shared/layout";
import { APP_QUIC } from "../shared/events";

const QUIC_LONG_HEADER = 0x80;
const QUIC_MIN_LONG = 7; // first byte, version, DCID length
const QUIC_CID_MAX = 20;
const QUIC_V1 = 0x00000001;
const QUIC_V2 = 0x6b3343cf;
const QUIC_DRAFT_PREFIX = 0xff0000; // 0xff0000xx: IETF drafts
const QUIC_VERSION_NEGOTIATION = 0;
const QUIC_GREASE_MASK = 0x0f0f0f0f; // versions 0x?a?a?a?a are reserved for greasing
const QUIC_GREASE_BITS = 0x0a0a0a0a;

function knownVersion(v: i32): bool {
  return v == QUIC_V1 || v == QUIC_V2 || v == QUIC_VERSION_NEGOTIATION ||
    shru(v, 8) == QUIC_DRAFT_PREFIX || (v & QUIC_GREASE_MASK) == QUIC_GREASE_BITS;
}

export function decodeQuic(p: i32, end: i32, rec: i32): void {
  if (end - p < QUIC_MIN_LONG) return;
  if ((ld8(p) & QUIC_LONG_HEADER) == 0) return;
  const version = ld32(p + 1);
  if (!knownVersion(version)) return;
  if (ld8(p + 5) > QUIC_CID_MAX) return;
  st8(rec + REC_APP, APP_QUIC);
  sth32(rec + REC_QUICVER, version);
}
