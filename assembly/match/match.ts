// First-match rule evaluation over a compiled rule image (src/rules/image.ts writes it).
// Candidates come from three places: the remote address's interval (IP, CIDR and `*` rules),
// the name the packet carries or the IP -> domain table gives (domain rules), each as a list of
// ascending rule ids; the lowest id whose protocol and port fit wins, which is the first rule
// in the profile's order. Nothing here allocates.

import { ld8, ld32, ldh16, ldh32, st8, sth16, sth32 } from "../core/mem";
import {
  IMG_NPROFILES, IMG_PROFILES, IMG_RULES, IMG_DOM_MASK, IMG_DOM_SLOTS, IMG_BIND4, IMG_BIND6,
  IMG_NMACS, IMG_MACS, IMG_DEFAULT_PROFILE, IMG_DOM_FILTER, IMG_DOM_FILTER_MASK, PROF_DEFAULT, PROF_V4, PROF_V6, PROF_NDOMAIN, PROF_FIRST_DOMAIN, PROF_SIZE,
  RULE_VERDICT, RULE_PROTO, RULE_FLAGS, RULE_KIND, RULE_PORTLO, RULE_PORTHI, RULE_LINE, RULE_SIZE,
  RF_HAS_PORT, LIST_COUNT, LIST_IDS, DOM_HASH, DOM_PROFILE, DOM_NAMELEN, DOM_NAMEOFF, DOM_LIST_SELF,
  DOM_LIST_SUB, DOM_SLOT_SIZE, MAC_HI, MAC_LO, MAC_PROFILE, MAC_SIZE,
  REC_FLAGS, REC_IPVER, REC_PROTO, REC_SPORT, REC_DPORT, REC_SRC, REC_DST, REC_NAME, REC_NAMELEN,
  REC_NAMESRC, REC_MAC, REC_VERDICT, REC_MATCHBY, REC_PROFILE, REC_RULE, REC_LINE, REC_PAYLEN, REC_APP,
} from "../shared/layout";
import {
  PF_HAS_PORTS, PF_HAS_NAME, PF_HAS_MAC, PF_INBOUND, NO_RULE, MB_DEFAULT, MB_IP, MB_DOMAIN, MB_IPDOM,
  NS_IPDOM, PF_IPDOM_MISS, RK_DOMAIN, APP_DNS, IPP_TCP, IPP_ICMP, IPP_ICMPV6, PF_PROVISIONAL, VERDICT_ACCEPT, VERDICT_BLOCK, VERDICT_DROP,
} from "../shared/events";
import { lookup4, lookup6 } from "./interval";
import { hashSeed, hashStep, hashFinish, filterBit } from "./hash";
import { ipdomLookup } from "./ipdom";
import { ltu } from "../core/mem";

const ASCII_DOT = 0x2e;
const NO_PORT = -1;

/** The lowest rule id in `list` below `best` whose protocol and port fit, else `best`. */
function firstMatch(img: i32, list: i32, proto: i32, port: i32, best: i32): i32 {
  if (list == 0) return best;
  const rules = img + ldh32(img + IMG_RULES);
  const ids = img + list + LIST_IDS;
  const count = ldh32(img + list + LIST_COUNT);
  for (let i = 0; i < count; i++) {
    const id = ldh32(ids + (i << 2));
    if (id >= best) return best;
    const r = rules + id * RULE_SIZE;
    const rp = ld8(r + RULE_PROTO);
    if (rp != 0 && rp != proto) continue;
    if ((ld8(r + RULE_FLAGS) & RF_HAS_PORT) != 0) {
      if (port < ldh16(r + RULE_PORTLO) || port > ldh16(r + RULE_PORTHI)) continue;
    }
    return id;
  }
  return best;
}

function bytesEqual(a: i32, b: i32, n: i32): bool {
  let i = 0;
  for (; i + 4 <= n; i += 4) if (ldh32(a + i) != ldh32(b + i)) return false;
  for (; i < n; i++) if (ld8(a + i) != ld8(b + i)) return false;
  return true;
}

/** Domain rules for the name [name, name + len): the name itself, then every parent domain. */
function matchDomain(img: i32, prof: i32, name: i32, len: i32, proto: i32, port: i32, best: i32): i32 {
  if (len > 0 && ld8(name + len - 1) == ASCII_DOT) len--; // "example.com." is "example.com"
  const mask = ldh32(img + IMG_DOM_MASK);
  const slots = img + ldh32(img + IMG_DOM_SLOTS);
  const filter = img + ldh32(img + IMG_DOM_FILTER);
  const filterMask = ldh32(img + IMG_DOM_FILTER_MASK);
  let h = hashSeed(prof);
  for (let i = len - 1; i >= 0; i--) {
    h = hashStep(h, ld8(name + i));
    if (i > 0 && ld8(name + i - 1) != ASCII_DOT) continue;
    // [i, len) is a whole-label suffix: look it up.
    const fh = hashFinish(h);
    // Most suffixes ("com", "cdn.example.net") are in no rule: the filter, small enough to stay
    // in cache, rules them out without touching the slot table.
    const bit = filterBit(fh) & filterMask;
    if ((ld8(filter + (bit >> 3)) & (1 << (bit & 7))) == 0) continue;
    const slen = len - i;
    let s = fh & mask;
    while (true) {
      const e = slots + s * DOM_SLOT_SIZE;
      const eh = ldh32(e + DOM_HASH);
      if (eh == 0) break;
      if (eh == fh && ldh16(e + DOM_PROFILE) == prof && ldh16(e + DOM_NAMELEN) == slen &&
        bytesEqual(img + ldh32(e + DOM_NAMEOFF), name + i, slen)) {
        best = firstMatch(img, ldh32(e + (i == 0 ? DOM_LIST_SELF : DOM_LIST_SUB)), proto, port, best);
        break;
      }
      s = (s + 1) & mask;
    }
  }
  return best;
}

function macProfile(img: i32, mac: i32): i32 {
  const n = ldh32(img + IMG_NMACS);
  if (n == 0) return -1;
  const table = img + ldh32(img + IMG_MACS);
  const hi = ld32(mac);
  const lo = (ld8(mac + 4) << 8) | ld8(mac + 5);
  let a = 0;
  let b = n - 1;
  while (a <= b) {
    const mid = (a + b) >> 1;
    const e = table + mid * MAC_SIZE;
    const ehi = ldh32(e + MAC_HI);
    const elo = ldh16(e + MAC_LO);
    if (ehi == hi && elo == lo) return ldh16(e + MAC_PROFILE);
    if (ltu(ehi, hi) || (ehi == hi && elo < lo)) a = mid + 1;
    else b = mid - 1;
  }
  return -1;
}

/** The profile of the local device: by MAC, then by the longest bound prefix, else the default. */
function bindProfile(img: i32, rec: i32, ver: i32, local: i32, flags: i32): i32 {
  if ((flags & PF_HAS_MAC) != 0) {
    const p = macProfile(img, rec + REC_MAC);
    if (p >= 0) return p;
  }
  let v = 0;
  if (ver == 4) {
    const t = ldh32(img + IMG_BIND4);
    if (t != 0) v = lookup4(img + t, ld32(local));
  } else if (ver == 6) {
    const t = ldh32(img + IMG_BIND6);
    if (t != 0) v = lookup6(img + t, local);
  }
  if (v != 0) return v - 1;
  return ldh32(img + IMG_DEFAULT_PROFILE);
}

/**
 * Decides a decoded packet: writes verdict, deciding profile, rule and line into the record
 * and returns the verdict. `ipd` (0 = none) supplies names for packets that carry none.
 */
export function matchPacket(img: i32, rec: i32, ipd: i32, now: i32): i32 {
  const flags = ldh32(rec + REC_FLAGS);
  const ver = ld8(rec + REC_IPVER);
  const inbound = (flags & PF_INBOUND) != 0;
  const remote = rec + (inbound ? REC_SRC : REC_DST);
  const local = rec + (inbound ? REC_DST : REC_SRC);
  const proto = ld8(rec + REC_PROTO);
  const port = (flags & PF_HAS_PORTS) != 0 ? ldh16(rec + (inbound ? REC_SPORT : REC_DPORT)) : NO_PORT;

  let prof = bindProfile(img, rec, ver, local, flags);
  if (prof >= ldh32(img + IMG_NPROFILES)) prof = 0;
  const pe = img + ldh32(img + IMG_PROFILES) + prof * PROF_SIZE;
  let best = NO_RULE;
  if (ver == 4) {
    const t = ldh32(pe + PROF_V4);
    if (t != 0) best = firstMatch(img, lookup4(img + t, ld32(remote)), proto, port, best);
  } else if (ver == 6) {
    const t = ldh32(pe + PROF_V6);
    if (t != 0) best = firstMatch(img, lookup6(img + t, remote), proto, port, best);
  }
  // Domain rules: only profiles that have some pay for the name lookups.
  let provisional = false;
  if (ldh32(pe + PROF_NDOMAIN) != 0) {
    let hasName = (flags & PF_HAS_NAME) != 0;
    if (!hasName && ipd != 0 && (ver == 4 || ver == 6)) {
      hasName = ipdomLookup(ipd, ver, remote, now, rec) != 0;
      if (!hasName) sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_IPDOM_MISS);
    }
    if (hasName) best = matchDomain(img, prof, rec + REC_NAME, ldh16(rec + REC_NAMELEN), proto, port, best);
    // A TCP packet without payload names nothing yet: unless a rule before every domain rule
    // already decided, the connection waits for its first payload (SNI, Host).
    else if (proto == IPP_TCP && ldh16(rec + REC_PAYLEN) == 0 && best > ldh32(pe + PROF_FIRST_DOMAIN)) provisional = true;
  }

  sth16(rec + REC_PROFILE, prof);
  let verdict = ld8(pe + PROF_DEFAULT);
  if (best == NO_RULE) {
    st8(rec + REC_MATCHBY, MB_DEFAULT);
    sth32(rec + REC_RULE, NO_RULE);
    sth32(rec + REC_LINE, 0);
  } else {
    const r = img + ldh32(img + IMG_RULES) + best * RULE_SIZE;
    verdict = ld8(r + RULE_VERDICT);
    let by = MB_IP;
    if (ld8(r + RULE_KIND) >= RK_DOMAIN) by = ld8(rec + REC_NAMESRC) == NS_IPDOM ? MB_IPDOM : MB_DOMAIN;
    st8(rec + REC_MATCHBY, by);
    sth32(rec + REC_RULE, best);
    sth32(rec + REC_LINE, ldh32(r + RULE_LINE));
  }
  // DNS is never fast-tracked: its answers are what fills the IP -> domain table, and an answer
  // is a reply the kernel would otherwise keep from us once the query's verdict were saved.
  if (verdict == VERDICT_ACCEPT && ld8(rec + REC_APP) == APP_DNS) provisional = true;
  // Blocking ICMP means dropping it: answering ICMP with an ICMP error helps nobody, and the
  // kernel rules let ICMP in a blocked connection pass so the errors *we* send get out.
  if (verdict == VERDICT_BLOCK && (proto == IPP_ICMP || proto == IPP_ICMPV6)) verdict = VERDICT_DROP;
  if (provisional) {
    verdict = VERDICT_ACCEPT;
    sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | PF_PROVISIONAL);
  }
  st8(rec + REC_VERDICT, verdict);
  return verdict;
}
