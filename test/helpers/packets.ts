// A small packet builder for tests: IPv4 / IPv6 with TCP, UDP, ICMP, ICMPv6 or any other
// protocol number, and application payloads (HTTP request, TLS ClientHello, DNS query and
// response). Every packet starts at the IP header, the way NFQUEUE hands packets over.
// Checksums are left zero: the decoder does not check them.

import { parseIPv4, parseIPv6 } from "../../src/core/ip.js";

export const PROTO = { icmp: 1, tcp: 6, udp: 17, gre: 47, icmpv6: 58, sctp: 132 } as const;

/** An address as text ("10.0.0.1", "2001:db8::1") or as 4 / 16 network-order bytes. */
export type Addr = string | Uint8Array;

export function addrBytes(a: Addr): Uint8Array {
  if (typeof a !== "string") {
    if (a.length !== 4 && a.length !== 16) throw new Error(`address of ${a.length} bytes`);
    return a;
  }
  const b = parseIPv4(a) ?? parseIPv6(a);
  if (!b) throw new Error(`not an IP address: ${a}`);
  return b;
}

export interface PacketSpec {
  src: Addr;
  dst: Addr;
  /** Protocol number (PROTO.*); default TCP. */
  proto?: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte; default PSH|ACK with a payload, SYN without. */
  tcpFlags?: number;
  /** ICMP / ICMPv6 type; default echo request (8 / 128). */
  icmpType?: number;
  icmpCode?: number;
  ttl?: number;
  payload?: Uint8Array;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function transport(proto: number, spec: PacketSpec, v6: boolean): Uint8Array {
  const payload = spec.payload ?? new Uint8Array(0);
  const sport = spec.sport ?? 40000;
  const dport = spec.dport ?? 80;
  if (proto === PROTO.tcp) {
    const h = new Uint8Array(20);
    const dv = new DataView(h.buffer);
    dv.setUint16(0, sport);
    dv.setUint16(2, dport);
    dv.setUint32(4, 1000); // seq
    dv.setUint32(8, payload.length > 0 ? 2000 : 0); // ack
    h[12] = 5 << 4; // data offset: 5 words
    h[13] = spec.tcpFlags ?? (payload.length > 0 ? 0x18 : 0x02);
    dv.setUint16(14, 65535); // window
    return concat([h, payload]);
  }
  if (proto === PROTO.udp) {
    const h = new Uint8Array(8);
    const dv = new DataView(h.buffer);
    dv.setUint16(0, sport);
    dv.setUint16(2, dport);
    dv.setUint16(4, 8 + payload.length);
    return concat([h, payload]);
  }
  if (proto === PROTO.sctp) {
    const h = new Uint8Array(12);
    const dv = new DataView(h.buffer);
    dv.setUint16(0, sport);
    dv.setUint16(2, dport);
    return concat([h, payload]);
  }
  if (proto === PROTO.icmp || proto === PROTO.icmpv6) {
    const h = new Uint8Array(8);
    h[0] = spec.icmpType ?? (v6 ? 128 : 8);
    h[1] = spec.icmpCode ?? 0;
    new DataView(h.buffer).setUint16(4, 0x1234); // echo identifier
    new DataView(h.buffer).setUint16(6, 1); // echo sequence
    return concat([h, payload]);
  }
  return payload;
}

/** Builds one IP packet (IPv4 or IPv6, by the address family of src / dst). */
export function packet(spec: PacketSpec): Uint8Array {
  const src = addrBytes(spec.src);
  const dst = addrBytes(spec.dst);
  if (src.length !== dst.length) throw new Error("source and destination are different families");
  const v6 = src.length === 16;
  const proto = spec.proto ?? PROTO.tcp;
  const l4 = transport(proto, spec, v6);
  if (!v6) {
    const h = new Uint8Array(20);
    const dv = new DataView(h.buffer);
    h[0] = 0x45;
    dv.setUint16(2, 20 + l4.length);
    dv.setUint16(4, 0x4242); // identification
    dv.setUint16(6, 0x4000); // DF
    h[8] = spec.ttl ?? 64;
    h[9] = proto;
    h.set(src, 12);
    h.set(dst, 16);
    return concat([h, l4]);
  }
  const h = new Uint8Array(40);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0x60000000);
  dv.setUint16(4, l4.length);
  h[6] = proto;
  h[7] = spec.ttl ?? 64;
  h.set(src, 8);
  h.set(dst, 24);
  return concat([h, l4]);
}

export function tcp(src: Addr, dst: Addr, dport: number, payload?: Uint8Array, sport = 40000): Uint8Array {
  return packet({ src, dst, proto: PROTO.tcp, sport, dport, payload });
}

export function udp(src: Addr, dst: Addr, dport: number, payload?: Uint8Array, sport = 40000): Uint8Array {
  return packet({ src, dst, proto: PROTO.udp, sport, dport, payload });
}

/** ICMP echo request for IPv4 sources, ICMPv6 echo request for IPv6 ones. */
export function icmp(src: Addr, dst: Addr, type?: number): Uint8Array {
  const v6 = addrBytes(src).length === 16;
  return packet({ src, dst, proto: v6 ? PROTO.icmpv6 : PROTO.icmp, icmpType: type });
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** An HTTP/1.1 GET request with the given Host header value (written as given). */
export function httpRequest(host: string, path = "/"): Uint8Array {
  return ascii(`GET ${path} HTTP/1.1\r\nUser-Agent: sluice-test\r\nHost: ${host}\r\nAccept: */*\r\n\r\n`);
}

/** A TLS 1.2-framed ClientHello whose only extension is server_name = sni. */
export function tlsClientHello(sni: string): Uint8Array {
  const name = ascii(sni);
  // server_name extension body: list length, entry type 0 (host_name), name length, name
  const sniBody = new Uint8Array(2 + 3 + name.length);
  const sv = new DataView(sniBody.buffer);
  sv.setUint16(0, 3 + name.length);
  sniBody[2] = 0;
  sv.setUint16(3, name.length);
  sniBody.set(name, 5);
  const ext = new Uint8Array(4 + sniBody.length);
  const ev = new DataView(ext.buffer);
  ev.setUint16(0, 0); // type server_name
  ev.setUint16(2, sniBody.length);
  ext.set(sniBody, 4);
  const hello = concat([
    Uint8Array.of(3, 3), // client_version
    new Uint8Array(32).fill(0x5a), // random
    Uint8Array.of(0), // session id length
    Uint8Array.of(0, 2, 0x13, 0x01), // cipher suites: TLS_AES_128_GCM_SHA256
    Uint8Array.of(1, 0), // compression methods: null
    Uint8Array.of(ext.length >> 8, ext.length & 0xff),
    ext,
  ]);
  const hs = concat([Uint8Array.of(1, hello.length >> 16, (hello.length >> 8) & 0xff, hello.length & 0xff), hello]);
  return concat([Uint8Array.of(0x16, 3, 1, hs.length >> 8, hs.length & 0xff), hs]);
}

function dnsName(name: string): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const label of name.replace(/\.$/, "").split(".")) {
    if (label === "") continue;
    const b = ascii(label);
    parts.push(Uint8Array.of(b.length), b);
  }
  parts.push(Uint8Array.of(0));
  return concat(parts);
}

export const DNS_A = 1;
export const DNS_AAAA = 28;

/** A DNS query (RD set) for one question. */
export function dnsQuery(name: string, qtype = DNS_A, id = 0x1234): Uint8Array {
  const h = new Uint8Array(12);
  const dv = new DataView(h.buffer);
  dv.setUint16(0, id);
  dv.setUint16(2, 0x0100);
  dv.setUint16(4, 1);
  const q = new Uint8Array(4);
  new DataView(q.buffer).setUint16(0, qtype);
  new DataView(q.buffer).setUint16(2, 1);
  return concat([h, dnsName(name), q]);
}

export interface DnsAnswerSpec {
  /** An IPv4 address makes an A record, an IPv6 address an AAAA record. */
  addr: string;
  ttl?: number;
}

/** A DNS response to a question for `name`, with A / AAAA answers owned by the question name. */
export function dnsResponse(name: string, answers: DnsAnswerSpec[], id = 0x1234): Uint8Array {
  const first = answers[0] ? addrBytes(answers[0].addr) : new Uint8Array(4);
  const qtype = first.length === 16 ? DNS_AAAA : DNS_A;
  const h = new Uint8Array(12);
  const dv = new DataView(h.buffer);
  dv.setUint16(0, id);
  dv.setUint16(2, 0x8180); // QR, RD, RA
  dv.setUint16(4, 1);
  dv.setUint16(6, answers.length);
  const q = new Uint8Array(4);
  new DataView(q.buffer).setUint16(0, qtype);
  new DataView(q.buffer).setUint16(2, 1);
  const rrs = answers.map((a) => {
    const data = addrBytes(a.addr);
    const rr = new Uint8Array(2 + 10 + data.length);
    const rv = new DataView(rr.buffer);
    rv.setUint16(0, 0xc00c); // pointer to the question name
    rv.setUint16(2, data.length === 16 ? DNS_AAAA : DNS_A);
    rv.setUint16(4, 1); // class IN
    rv.setUint32(6, a.ttl ?? 300);
    rv.setUint16(10, data.length);
    rr.set(data, 12);
    return rr;
  });
  return concat([h, dnsName(name), q, ...rrs]);
}
