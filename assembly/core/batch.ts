// The batch loop: one call from the host decodes and decides up to a few hundred packets, so
// the host pays the JS -> WASM crossing once per batch instead of once per packet.

import { ld8, ldh16, ldh32, st8, sth16, sth32, copy } from "./mem";
import {
  DESC_OFF, DESC_LEN, DESC_FLAGS, DESC_MAC, DESC_SIZE, DF_INBOUND, DF_HAS_MAC, REC_FLAGS, REC_MAC, REC_ANOMALY,
  REC_VERDICT, REC_MATCHBY, REC_PROFILE, REC_RULE, RES_VERDICT, RES_MATCHBY, RES_PROFILE, RES_RULE, RES_ANOMALY,
  RES_FLAGS, RES_SIZE, BF_LEARN_DNS, BF_WAIT_NAME, REC_PROTO, REC_PAYLEN,
} from "../shared/layout";
import { PF_HAS_MAC, PF_INBOUND, PF_DNS_RESPONSE, PF_HAS_NAME, PF_PROVISIONAL, IPP_TCP, VERDICT_ACCEPT } from "../shared/events";
import { decodePacket } from "../decode/ip";
import { matchPacket } from "../match/match";
import { ipdomLearn } from "../match/ipdom";
import { flowTrack, flowSweep } from "../flow/track";

const MAC_LEN = 6;

/** An accepted TCP packet without payload or name is passed once: the connection is recorded with its name. */
function waitForName(rec: i32): void {
  const pf = ldh32(rec + REC_FLAGS);
  if (ld8(rec + REC_VERDICT) != VERDICT_ACCEPT || ld8(rec + REC_PROTO) != IPP_TCP) return;
  if ((pf & PF_HAS_NAME) != 0 || ldh16(rec + REC_PAYLEN) != 0) return;
  sth32(rec + REC_FLAGS, pf | PF_PROVISIONAL);
}

/**
 * For each of the n descriptors at `desc`: decode the packet into the scratch record `rec`,
 * learn DNS answers (BF_LEARN_DNS), decide it against the image at `img` (0 = decode only) and
 * write its result to results[i] (`results` 0 = none), and account it to its flow in the
 * connection table at `flow` (0 = no tracking; then the table's expiry sweep runs once).
 * Returns the number of packets processed.
 */
export function processBatch(desc: i32, n: i32, rec: i32, results: i32, img: i32, ipd: i32, now: i32, flags: i32, flow: i32): i32 {
  for (let i = 0; i < n; i++) {
    const d = desc + i * DESC_SIZE;
    decodePacket(ldh32(d + DESC_OFF), ldh16(d + DESC_LEN), rec);
    const df = ldh16(d + DESC_FLAGS);
    if (df != 0) {
      let pf = ldh32(rec + REC_FLAGS);
      if ((df & DF_INBOUND) != 0) pf |= PF_INBOUND;
      if ((df & DF_HAS_MAC) != 0) {
        copy(rec + REC_MAC, d + DESC_MAC, MAC_LEN);
        pf |= PF_HAS_MAC;
      }
      sth32(rec + REC_FLAGS, pf);
    }
    if ((flags & BF_LEARN_DNS) != 0 && ipd != 0 && (ldh32(rec + REC_FLAGS) & PF_DNS_RESPONSE) != 0) {
      ipdomLearn(ipd, rec, now);
    }
    if (img != 0) {
      matchPacket(img, rec, ipd, now);
      if ((flags & BF_WAIT_NAME) != 0) waitForName(rec);
    }
    if (results != 0) {
      const r = results + i * RES_SIZE;
      st8(r + RES_VERDICT, ld8(rec + REC_VERDICT));
      st8(r + RES_MATCHBY, ld8(rec + REC_MATCHBY));
      sth16(r + RES_PROFILE, ldh16(rec + REC_PROFILE));
      sth32(r + RES_RULE, ldh32(rec + REC_RULE));
      sth32(r + RES_ANOMALY, ldh32(rec + REC_ANOMALY));
      sth32(r + RES_FLAGS, ldh32(rec + REC_FLAGS));
    }
    if (flow != 0) flowTrack(flow, rec, ipd, now, flags, ldh16(d + DESC_LEN));
  }
  if (flow != 0) flowSweep(flow, now);
  return n;
}
