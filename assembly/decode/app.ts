// Which application parser a transport payload goes to. Detection is by port for DNS and by
// content for TLS, HTTP and QUIC, so services on unusual ports are still recognised.

import { ld8, ld16, ldh16 } from "../core/mem";
import { REC_SPORT, REC_DPORT } from "../shared/layout";
import { IPP_TCP } from "../shared/events";
import { decodeDns } from "./dns";
import { decodeTlsClientHello, TLS_CONTENT_HANDSHAKE } from "./tls";
import { decodeHttpRequest } from "./http";
import { decodeQuic } from "./quic";

const PORT_DNS = 53;
const PORT_MDNS = 5353;
/** DNS over TCP prefixes every message with its length. */
const DNS_TCP_PREFIX = 2;

export function decodePayload(proto: i32, p: i32, end: i32, rec: i32): void {
  if (p >= end) return;
  const sport = ldh16(rec + REC_SPORT);
  const dport = ldh16(rec + REC_DPORT);
  if (sport == PORT_DNS || dport == PORT_DNS || sport == PORT_MDNS || dport == PORT_MDNS) {
    if (proto == IPP_TCP) {
      if (end - p < DNS_TCP_PREFIX) return;
      const msgLen = ld16(p);
      const msgEnd = p + DNS_TCP_PREFIX + msgLen < end ? p + DNS_TCP_PREFIX + msgLen : end;
      decodeDns(p + DNS_TCP_PREFIX, msgEnd, rec);
    } else {
      decodeDns(p, end, rec);
    }
    return;
  }
  if (proto == IPP_TCP) {
    if (ld8(p) == TLS_CONTENT_HANDSHAKE) decodeTlsClientHello(p, end, rec);
    else decodeHttpRequest(p, end, rec);
    return;
  }
  decodeQuic(p, end, rec);
}
