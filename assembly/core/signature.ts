// A fingerprint of the shared layout as this build of the core sees it. The host compares the
// WASM module's value with its own, so a stale build/sluice.wasm is caught at load time.

import { mul32 } from "./mem";
import {
  DESC_SIZE, REC_SIZE, REC_HDR_END, REC_NAME, REC_ANS, REC_CNAMES, REC_VERDICT, REC_RULE, REC_LINE,
  REC_SRC, REC_DST, REC_FLAGS, REC_ANOMALY, ANS_SIZE, IMG_HDR_SIZE, IMG_FORMAT, PROF_SIZE, RULE_SIZE,
  DOM_SLOT_SIZE, MAC_SIZE, IT_INDEX, IPD_ENTRY_SIZE, IPD_HDR_SIZE, MEM_STATIC_END,
} from "../shared/layout";
import { NO_RULE, VERDICT_ACCEPT, VERDICT_BLOCK, VERDICT_DROP, AN_FRAG_BAD, PF_INBOUND } from "../shared/events";

function mix(h: i32, v: i32): i32 {
  return mul32(h ^ v, 16777619);
}

export function layoutSignature(): i32 {
  let h = -2128831035;
  h = mix(h, DESC_SIZE);
  h = mix(h, REC_SIZE);
  h = mix(h, REC_HDR_END);
  h = mix(h, REC_NAME);
  h = mix(h, REC_ANS);
  h = mix(h, REC_CNAMES);
  h = mix(h, REC_VERDICT);
  h = mix(h, REC_RULE);
  h = mix(h, REC_LINE);
  h = mix(h, REC_SRC);
  h = mix(h, REC_DST);
  h = mix(h, REC_FLAGS);
  h = mix(h, REC_ANOMALY);
  h = mix(h, ANS_SIZE);
  h = mix(h, IMG_HDR_SIZE);
  h = mix(h, IMG_FORMAT);
  h = mix(h, PROF_SIZE);
  h = mix(h, RULE_SIZE);
  h = mix(h, DOM_SLOT_SIZE);
  h = mix(h, MAC_SIZE);
  h = mix(h, IT_INDEX);
  h = mix(h, IPD_ENTRY_SIZE);
  h = mix(h, IPD_HDR_SIZE);
  h = mix(h, MEM_STATIC_END);
  h = mix(h, NO_RULE);
  h = mix(h, VERDICT_ACCEPT | (VERDICT_BLOCK << 8) | (VERDICT_DROP << 16));
  h = mix(h, AN_FRAG_BAD);
  h = mix(h, PF_INBOUND);
  return h;
}
