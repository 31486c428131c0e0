// The batch loop: one call from the host decodes and decides up to a few hundred packets, so
// the host pays the JS -> WASM crossing once per batch instead of once per packet.

import { ldh16, ldh32, sth32, copy } from "./mem";
import { DESC_OFF, DESC_LEN, DESC_FLAGS, DESC_MAC, DESC_SIZE, DF_INBOUND, DF_HAS_MAC, REC_FLAGS, REC_MAC, REC_SIZE, BF_LEARN_DNS } from "../shared/layout";
import { PF_HAS_MAC, PF_INBOUND, PF_DNS_RESPONSE } from "../shared/events";
import { decodePacket } from "../decode/ip";
import { matchPacket } from "../match/match";
import { ipdomLearn } from "../match/ipdom";

const MAC_LEN = 6;

/**
 * For each of the n descriptors at `desc`: decode the packet into record i at `recs`, learn
 * DNS answers (BF_LEARN_DNS), and decide it against the image at `img` (0 = decode only).
 * Returns the number of packets processed.
 */
export function processBatch(desc: i32, n: i32, recs: i32, img: i32, ipd: i32, now: i32, flags: i32): i32 {
  for (let i = 0; i < n; i++) {
    const d = desc + i * DESC_SIZE;
    const rec = recs + i * REC_SIZE;
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
    if (img != 0) matchPacket(img, rec, ipd, now);
  }
  return n;
}
