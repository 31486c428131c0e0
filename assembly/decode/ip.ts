// IP and transport decoding, in place: reads the packet at [pkt, pkt + caplen) and fills the
// record at `rec`. Every read is preceded by a length check against `end`, so no input can make
// it read outside the packet or trap; malformed input sets AN_* bits and stops at that layer.
// Portable AssemblyScript: compiled to WASM by asc and to the JS twin by tsc.

import { ld8, ld16, ld32, ldh32, st8, sth16, sth32, copy4, copy16, fill0x32 } from "../core/mem";
import {
  REC_ANOMALY, REC_FLAGS, REC_IPVER, REC_PROTO, REC_TTL, REC_TCPFLAGS, REC_L4OFF, REC_PAYOFF,
  REC_PAYLEN, REC_IPLEN, REC_SPORT, REC_DPORT, REC_IPID, REC_FRAGOFF, REC_TCPWIN, REC_TCPSEQ,
  REC_TCPACK, REC_ICMPTYPE, REC_ICMPCODE, REC_INNER_PROTO, REC_EXTHDRS, REC_L3HLEN, REC_SRC,
  REC_DST, REC_INNER_SRC, REC_INNER_DST, REC_INNER_SPORT, REC_INNER_DPORT, REC_ICMPID, REC_HDR_END,
} from "../shared/layout";
import {
  AN_TRUNC_L3, AN_BAD_VERSION, AN_BAD_IHL, AN_BAD_TOTAL_LEN, AN_IP_OPT_BAD, AN_CAPTURE_SHORT,
  AN_V6_EXT_TRUNC, AN_V6_EXT_LIMIT, AN_V6_HBH_NOT_FIRST, AN_TRUNC_L4, AN_TCP_BAD_DOFF,
  AN_UDP_BAD_LEN, AN_ICMP_INNER_TRUNC, AN_FRAG_BAD,
  PF_FRAGMENT, PF_FIRST_FRAG, PF_MORE_FRAGS, PF_DONT_FRAG, PF_HAS_PORTS, PF_ICMP_ERROR,
  PF_INNER_PORTS, PF_ICMP_ECHO, PF_L4_HDR,
  EH_HOPOPTS, EH_ROUTING, EH_FRAGMENT, EH_DSTOPTS, EH_AH, EH_ESP, EH_NONE,
  IPP_HOPOPTS, IPP_ICMP, IPP_TCP, IPP_UDP, IPP_ROUTING, IPP_FRAGMENT, IPP_ESP, IPP_AH,
  IPP_ICMPV6, IPP_NONE, IPP_DSTOPTS, IPP_SCTP, IPP_UDPLITE,
} from "../shared/events";
import { decodePayload } from "./app";

const IPV4_MIN_HDR = 20;
const IPV6_HDR = 40;
const TCP_MIN_HDR = 20;
const UDP_HDR = 8;
const SCTP_COMMON_HDR = 12;
const ICMP_HDR = 8;
const PORTS_LEN = 4;
/** Extension headers followed before giving up (RFC 8200 allows any number; real chains are short). */
const V6_EXT_MAX = 8;
const IPV4_FLAG_DF = 0x4000;
const IPV4_FLAG_MF = 0x2000;
const IPV4_FRAG_MASK = 0x1fff;
const IPV4_OPT_EOL = 0;
const IPV4_OPT_NOP = 1;

// ICMP types whose body embeds the offending packet's IP header and first 8 bytes
const ICMP_ECHO_REPLY = 0;
const ICMP_UNREACH = 3;
const ICMP_SOURCE_QUENCH = 4;
const ICMP_REDIRECT = 5;
const ICMP_ECHO = 8;
const ICMP_TIME_EXCEEDED = 11;
const ICMP_PARAM_PROBLEM = 12;
const ICMP6_ERROR_MAX = 127; // ICMPv6 types 0..127 are errors (RFC 4443)
const ICMP6_ECHO_REQUEST = 128;
const ICMP6_ECHO_REPLY = 129;

function anomaly(rec: i32, bits: i32): void {
  sth32(rec + REC_ANOMALY, ldh32(rec + REC_ANOMALY) | bits);
}

function flag(rec: i32, bits: i32): void {
  sth32(rec + REC_FLAGS, ldh32(rec + REC_FLAGS) | bits);
}

/** Decodes one packet into the record. Returns the record's anomaly bits (0 = clean). */
export function decodePacket(pkt: i32, caplen: i32, rec: i32): i32 {
  fill0x32(rec, REC_HDR_END);
  if (caplen < 1) {
    anomaly(rec, AN_TRUNC_L3);
    return AN_TRUNC_L3;
  }
  const version = ld8(pkt) >> 4;
  if (version == 4) decodeIPv4(pkt, caplen, rec);
  else if (version == 6) decodeIPv6(pkt, caplen, rec);
  else anomaly(rec, AN_BAD_VERSION);
  return ldh32(rec + REC_ANOMALY);
}

function decodeIPv4(pkt: i32, caplen: i32, rec: i32): void {
  st8(rec + REC_IPVER, 4);
  if (caplen < IPV4_MIN_HDR) {
    anomaly(rec, AN_TRUNC_L3);
    return;
  }
  const ihl = (ld8(pkt) & 0xf) << 2;
  const total = ld16(pkt + 2);
  const fragWord = ld16(pkt + 6);
  const proto = ld8(pkt + 9);
  st8(rec + REC_PROTO, proto);
  st8(rec + REC_TTL, ld8(pkt + 8));
  sth16(rec + REC_IPLEN, total);
  sth32(rec + REC_IPID, ld16(pkt + 4));
  copy4(rec + REC_SRC, pkt + 12);
  copy4(rec + REC_DST, pkt + 16);
  if (ihl < IPV4_MIN_HDR) {
    anomaly(rec, AN_BAD_IHL);
    return;
  }
  if (ihl > caplen) {
    anomaly(rec, AN_TRUNC_L3);
    return;
  }
  sth16(rec + REC_L3HLEN, ihl);
  if (total < ihl) {
    anomaly(rec, AN_BAD_TOTAL_LEN);
    return;
  }
  // Bytes past the total length are link padding; fewer bytes than it are a snap length cut.
  let end = pkt + total;
  if (total > caplen) {
    anomaly(rec, AN_CAPTURE_SHORT);
    end = pkt + caplen;
  }
  if (ihl > IPV4_MIN_HDR) checkIPv4Options(pkt + IPV4_MIN_HDR, pkt + ihl, rec);

  const fragOff = fragWord & IPV4_FRAG_MASK;
  let flags = 0;
  if ((fragWord & IPV4_FLAG_DF) != 0) flags |= PF_DONT_FRAG;
  if ((fragWord & IPV4_FLAG_MF) != 0) flags |= PF_MORE_FRAGS | PF_FRAGMENT;
  if (fragOff != 0) flags |= PF_FRAGMENT;
  else if ((flags & PF_FRAGMENT) != 0) flags |= PF_FIRST_FRAG;
  sth16(rec + REC_FRAGOFF, fragOff);
  flag(rec, flags);

  const l4 = pkt + ihl;
  sth16(rec + REC_L4OFF, ihl);
  if (fragOff != 0) {
    // A non-first fragment carries no transport header: its bytes are payload.
    setPayload(pkt, l4, end, rec);
    return;
  }
  decodeTransport(pkt, proto, l4, end, rec);
}

function checkIPv4Options(p: i32, end: i32, rec: i32): void {
  while (p < end) {
    const type = ld8(p);
    if (type == IPV4_OPT_EOL) return;
    if (type == IPV4_OPT_NOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) {
      anomaly(rec, AN_IP_OPT_BAD);
      return;
    }
    const len = ld8(p + 1);
    if (len < 2 || p + len > end) {
      anomaly(rec, AN_IP_OPT_BAD);
      return;
    }
    p += len;
  }
}

function decodeIPv6(pkt: i32, caplen: i32, rec: i32): void {
  st8(rec + REC_IPVER, 6);
  if (caplen < IPV6_HDR) {
    anomaly(rec, AN_TRUNC_L3);
    return;
  }
  const payloadLen = ld16(pkt + 4);
  let next = ld8(pkt + 6);
  st8(rec + REC_TTL, ld8(pkt + 7));
  sth16(rec + REC_IPLEN, IPV6_HDR + payloadLen);
  copy16(rec + REC_SRC, pkt + 8);
  copy16(rec + REC_DST, pkt + 24);
  let end = pkt + IPV6_HDR + payloadLen;
  if (IPV6_HDR + payloadLen > caplen) {
    // Jumbograms (payload length 0 with a jumbo option) also land here: use what was captured.
    if (payloadLen != 0) anomaly(rec, AN_CAPTURE_SHORT);
    end = pkt + caplen;
  }

  let p = pkt + IPV6_HDR;
  let seen = 0;
  let count = 0;
  let nonFirstFragment = false;
  while (true) {
    if (next == IPP_HOPOPTS || next == IPP_ROUTING || next == IPP_DSTOPTS || next == IPP_AH) {
      if (count >= V6_EXT_MAX) {
        anomaly(rec, AN_V6_EXT_LIMIT);
        break;
      }
      if (next == IPP_HOPOPTS && count > 0) anomaly(rec, AN_V6_HBH_NOT_FIRST);
      if (p + 2 > end) {
        anomaly(rec, AN_V6_EXT_TRUNC);
        break;
      }
      // AH counts its length in 4-byte units minus 2; the others in 8-byte units minus 1.
      const len = next == IPP_AH ? (ld8(p + 1) + 2) << 2 : (ld8(p + 1) + 1) << 3;
      if (p + len > end) {
        anomaly(rec, AN_V6_EXT_TRUNC);
        break;
      }
      seen |= extBit(next);
      next = ld8(p);
      p += len;
      count++;
      continue;
    }
    if (next == IPP_FRAGMENT) {
      if (count >= V6_EXT_MAX) {
        anomaly(rec, AN_V6_EXT_LIMIT);
        break;
      }
      if (p + 8 > end) {
        anomaly(rec, AN_V6_EXT_TRUNC | AN_FRAG_BAD);
        break;
      }
      seen |= EH_FRAGMENT;
      const word = ld16(p + 2);
      const off = word >> 3;
      sth16(rec + REC_FRAGOFF, off);
      sth32(rec + REC_IPID, ld32(p + 4));
      let flags = PF_FRAGMENT;
      if ((word & 1) != 0) flags |= PF_MORE_FRAGS;
      if (off == 0) flags |= PF_FIRST_FRAG;
      else nonFirstFragment = true;
      flag(rec, flags);
      next = ld8(p);
      p += 8;
      count++;
      if (nonFirstFragment) break;
      continue;
    }
    if (next == IPP_ESP) seen |= EH_ESP;
    else if (next == IPP_NONE) seen |= EH_NONE;
    break;
  }
  st8(rec + REC_PROTO, next);
  sth16(rec + REC_EXTHDRS, seen);
  sth16(rec + REC_L3HLEN, p - pkt);
  sth16(rec + REC_L4OFF, p - pkt);
  if (nonFirstFragment || (ldh32(rec + REC_ANOMALY) & (AN_V6_EXT_TRUNC | AN_V6_EXT_LIMIT)) != 0) {
    setPayload(pkt, p, end, rec);
    return;
  }
  decodeTransport(pkt, next, p, end, rec);
}

function extBit(next: i32): i32 {
  if (next == IPP_HOPOPTS) return EH_HOPOPTS;
  if (next == IPP_ROUTING) return EH_ROUTING;
  if (next == IPP_DSTOPTS) return EH_DSTOPTS;
  return EH_AH;
}

function setPayload(pkt: i32, p: i32, end: i32, rec: i32): void {
  sth16(rec + REC_PAYOFF, p - pkt);
  sth16(rec + REC_PAYLEN, end > p ? end - p : 0);
}

function decodeTransport(pkt: i32, proto: i32, l4: i32, end: i32, rec: i32): void {
  const avail = end - l4;
  if (proto == IPP_TCP) {
    if (avail >= PORTS_LEN) readPorts(l4, rec);
    if (avail < TCP_MIN_HDR) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    const doff = (ld8(l4 + 12) >> 4) << 2;
    sth32(rec + REC_TCPSEQ, ld32(l4 + 4));
    sth32(rec + REC_TCPACK, ld32(l4 + 8));
    st8(rec + REC_TCPFLAGS, ld8(l4 + 13));
    sth16(rec + REC_TCPWIN, ld16(l4 + 14));
    flag(rec, PF_L4_HDR);
    if (doff < TCP_MIN_HDR) {
      anomaly(rec, AN_TCP_BAD_DOFF);
      return;
    }
    if (doff > avail) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    setPayload(pkt, l4 + doff, end, rec);
    decodePayload(proto, l4 + doff, end, rec);
    return;
  }
  if (proto == IPP_UDP || proto == IPP_UDPLITE) {
    if (avail >= PORTS_LEN) readPorts(l4, rec);
    if (avail < UDP_HDR) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    flag(rec, PF_L4_HDR);
    let payEnd = end;
    const ulen = ld16(l4 + 4);
    // UDP's length bounds the datagram; UDP-Lite's field is the checksum coverage instead. In a
    // first fragment it is the whole datagram's length, longer than this packet by design.
    if (proto == IPP_UDP && (ldh32(rec + REC_FLAGS) & PF_FRAGMENT) == 0) {
      if (ulen < UDP_HDR) anomaly(rec, AN_UDP_BAD_LEN);
      else if (l4 + ulen < end) payEnd = l4 + ulen;
      else if (l4 + ulen > end && (ldh32(rec + REC_ANOMALY) & AN_CAPTURE_SHORT) == 0) {
        anomaly(rec, AN_UDP_BAD_LEN);
      }
    }
    setPayload(pkt, l4 + UDP_HDR, payEnd, rec);
    decodePayload(proto, l4 + UDP_HDR, payEnd, rec);
    return;
  }
  if (proto == IPP_SCTP) {
    if (avail >= PORTS_LEN) readPorts(l4, rec);
    if (avail < SCTP_COMMON_HDR) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    flag(rec, PF_L4_HDR);
    setPayload(pkt, l4 + SCTP_COMMON_HDR, end, rec);
    return;
  }
  if (proto == IPP_ICMP || proto == IPP_ICMPV6) {
    if (avail < 4) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    const type = ld8(l4);
    st8(rec + REC_ICMPTYPE, type);
    st8(rec + REC_ICMPCODE, ld8(l4 + 1));
    if (avail < ICMP_HDR) {
      anomaly(rec, AN_TRUNC_L4);
      return;
    }
    flag(rec, PF_L4_HDR);
    setPayload(pkt, l4 + ICMP_HDR, end, rec);
    if (proto == IPP_ICMP) {
      if (type == ICMP_ECHO || type == ICMP_ECHO_REPLY) echoId(l4, rec);
      else if (
        type == ICMP_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
        type == ICMP_TIME_EXCEEDED || type == ICMP_PARAM_PROBLEM
      ) {
        decodeInner(l4 + ICMP_HDR, end, rec, 4);
      }
    } else {
      if (type == ICMP6_ECHO_REQUEST || type == ICMP6_ECHO_REPLY) echoId(l4, rec);
      else if (type <= ICMP6_ERROR_MAX) decodeInner(l4 + ICMP_HDR, end, rec, 6);
    }
    return;
  }
  // Any other protocol: known by number; its bytes are payload.
  setPayload(pkt, l4, end, rec);
}

function readPorts(l4: i32, rec: i32): void {
  sth16(rec + REC_SPORT, ld16(l4));
  sth16(rec + REC_DPORT, ld16(l4 + 2));
  flag(rec, PF_HAS_PORTS);
}

function echoId(l4: i32, rec: i32): void {
  sth16(rec + REC_ICMPID, ld16(l4 + 4));
  flag(rec, PF_ICMP_ECHO);
}

/**
 * The header embedded in an ICMP error: protocol, addresses and ports of the packet the
 * error is about, so the error can be tied to that packet's connection.
 */
function decodeInner(p: i32, end: i32, rec: i32, ipver: i32): void {
  let l4 = 0;
  let proto = 0;
  if (ipver == 4) {
    if (p + IPV4_MIN_HDR > end || (ld8(p) >> 4) != 4) {
      anomaly(rec, AN_ICMP_INNER_TRUNC);
      return;
    }
    const ihl = (ld8(p) & 0xf) << 2;
    if (ihl < IPV4_MIN_HDR || p + ihl > end) {
      anomaly(rec, AN_ICMP_INNER_TRUNC);
      return;
    }
    proto = ld8(p + 9);
    copy4(rec + REC_INNER_SRC, p + 12);
    copy4(rec + REC_INNER_DST, p + 16);
    // Only the first fragment of the offending datagram has ports.
    if ((ld16(p + 6) & IPV4_FRAG_MASK) != 0) proto = proto | 0x100;
    l4 = p + ihl;
  } else {
    if (p + IPV6_HDR > end || (ld8(p) >> 4) != 6) {
      anomaly(rec, AN_ICMP_INNER_TRUNC);
      return;
    }
    proto = ld8(p + 6);
    copy16(rec + REC_INNER_SRC, p + 8);
    copy16(rec + REC_INNER_DST, p + 24);
    l4 = p + IPV6_HDR;
  }
  st8(rec + REC_INNER_PROTO, proto & 0xff);
  flag(rec, PF_ICMP_ERROR);
  if (proto == IPP_TCP || proto == IPP_UDP || proto == IPP_UDPLITE || proto == IPP_SCTP) {
    if (l4 + PORTS_LEN > end) {
      anomaly(rec, AN_ICMP_INNER_TRUNC);
      return;
    }
    sth16(rec + REC_INNER_SPORT, ld16(l4));
    sth16(rec + REC_INNER_DPORT, ld16(l4 + 2));
    flag(rec, PF_INNER_PORTS);
  }
}
