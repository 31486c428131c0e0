// Builds realistic packets (IP header first, as NFQUEUE hands them over) for the benchmarks:
// the field layouts follow the RFCs; checksums are left zero because nothing here checks them.

const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
const TCP_SYN = 0x02;
const enc = new TextEncoder();

export type Addr = Uint8Array; // 4 or 16 bytes

function ipHeader(src: Addr, dst: Addr, proto: number, payloadLen: number, ttl = 64): Uint8Array {
  if (src.length === 4) {
    const h = new Uint8Array(20);
    const total = 20 + payloadLen;
    h[0] = 0x45;
    h[2] = total >> 8;
    h[3] = total & 0xff;
    h[6] = 0x40; // DF
    h[8] = ttl;
    h[9] = proto;
    h.set(src, 12);
    h.set(dst, 16);
    return h;
  }
  const h = new Uint8Array(40);
  h[0] = 0x60;
  h[4] = payloadLen >> 8;
  h[5] = payloadLen & 0xff;
  h[6] = proto;
  h[7] = ttl;
  h.set(src, 8);
  h.set(dst, 24);
  return h;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function tcp(src: Addr, dst: Addr, sport: number, dport: number, payload: Uint8Array, flags = TCP_ACK | TCP_PSH): Uint8Array {
  const h = new Uint8Array(32); // 20 + 12 bytes of options (NOP NOP timestamps), as Linux sends
  h[0] = sport >> 8;
  h[1] = sport & 0xff;
  h[2] = dport >> 8;
  h[3] = dport & 0xff;
  h[7] = 1;
  h[11] = 1;
  h[12] = 8 << 4;
  h[13] = flags;
  h[14] = 0xfa;
  h[20] = 1;
  h[21] = 1;
  h[22] = 8;
  h[23] = 10;
  return concat(ipHeader(src, dst, 6, h.length + payload.length), h, payload);
}

export function tcpSyn(src: Addr, dst: Addr, sport: number, dport: number): Uint8Array {
  return tcp(src, dst, sport, dport, new Uint8Array(0), TCP_SYN);
}

export function udp(src: Addr, dst: Addr, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(8);
  const len = 8 + payload.length;
  h[0] = sport >> 8;
  h[1] = sport & 0xff;
  h[2] = dport >> 8;
  h[3] = dport & 0xff;
  h[4] = len >> 8;
  h[5] = len & 0xff;
  return concat(ipHeader(src, dst, 17, len), h, payload);
}

export function icmpEcho(src: Addr, dst: Addr, id: number, seq: number): Uint8Array {
  const v6 = src.length === 16;
  const h = new Uint8Array(8 + 56);
  h[0] = v6 ? 128 : 8;
  h[4] = id >> 8;
  h[5] = id & 0xff;
  h[6] = seq >> 8;
  h[7] = seq & 0xff;
  return concat(ipHeader(src, dst, v6 ? 58 : 1, h.length), h);
}

/** ICMP port unreachable about a UDP datagram `orig` (which starts at its IP header). */
export function icmpUnreachable(src: Addr, dst: Addr, orig: Uint8Array): Uint8Array {
  const v6 = src.length === 16;
  const quote = orig.subarray(0, Math.min(orig.length, v6 ? 1232 : 28));
  const h = new Uint8Array(8);
  h[0] = v6 ? 1 : 3;
  h[1] = v6 ? 4 : 3;
  return concat(ipHeader(src, dst, v6 ? 58 : 1, 8 + quote.length), h, quote);
}

function dnsName(name: string): Uint8Array {
  const parts: number[] = [];
  for (const label of name.split(".")) {
    parts.push(label.length, ...enc.encode(label));
  }
  parts.push(0);
  return Uint8Array.from(parts);
}

export function dnsQuery(id: number, name: string, qtype: number): Uint8Array {
  const hdr = Uint8Array.from([id >> 8, id & 0xff, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
  const opt = Uint8Array.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]); // EDNS0 OPT, 1232 bytes
  return concat(hdr, dnsName(name), Uint8Array.from([qtype >> 8, qtype & 0xff, 0, 1]), opt);
}

/**
 * A response as resolvers write it: the question, an optional CNAME whose owner is a pointer
 * to the question, then A/AAAA answers owned by a pointer to the CNAME target (or question).
 */
export function dnsResponse(id: number, name: string, qtype: number, addrs: Addr[], cname: string | null, ttl = 300): Uint8Array {
  const QNAME_OFF = 12;
  const q = dnsName(name);
  const parts: Uint8Array[] = [];
  const ttlB = [ttl >>> 24, (ttl >> 16) & 0xff, (ttl >> 8) & 0xff, ttl & 0xff];
  let owner = QNAME_OFF;
  let count = addrs.length;
  let offset = 12 + q.length + 4;
  if (cname) {
    count++;
    const target = dnsName(cname);
    const rr = Uint8Array.from([0xc0, QNAME_OFF, 0, 5, 0, 1, ...ttlB, target.length >> 8, target.length & 0xff]);
    parts.push(rr, target);
    owner = offset + rr.length;
    offset += rr.length + target.length;
  }
  for (const a of addrs) {
    const type = a.length === 4 ? 1 : 28;
    parts.push(Uint8Array.from([0xc0 | (owner >> 8), owner & 0xff, 0, type, 0, 1, ...ttlB, 0, a.length]), a);
  }
  const hdr = Uint8Array.from([id >> 8, id & 0xff, 0x81, 0x80, 0, 1, count >> 8, count & 0xff, 0, 0, 0, 0]);
  return concat(hdr, q, Uint8Array.from([qtype >> 8, qtype & 0xff, 0, 1]), ...parts);
}

/** A TLS 1.3 ClientHello in the shape browsers send: GREASE, SNI, groups, key shares, ALPN. */
export function tlsClientHello(sni: string, random: Uint8Array): Uint8Array {
  const u16 = (v: number) => [v >> 8, v & 0xff];
  const ext = (type: number, body: number[]) => [...u16(type), ...u16(body.length), ...body];
  const host = Array.from(enc.encode(sni));
  const keyShare = Array.from(random.subarray(0, 32));
  const exts = [
    ...ext(0x0a0a, []),
    ...ext(0x0000, [...u16(host.length + 3), 0, ...u16(host.length), ...host]),
    ...ext(0x0017, []),
    ...ext(0xff01, [0]),
    ...ext(0x000a, [...u16(8), 0x0a, 0x0a, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]),
    ...ext(0x000b, [1, 0]),
    ...ext(0x0023, []),
    ...ext(0x0010, [...u16(14), 2, ...enc.encode("h2"), 8, ...enc.encode("http/1.1")]),
    ...ext(0x0005, [1, 0, 0, 0, 0]),
    ...ext(0x000d, [...u16(8), 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03]),
    ...ext(0x0033, [...u16(38), 0x00, 0x1d, ...u16(32), ...keyShare]),
    ...ext(0x002d, [1, 1]),
    ...ext(0x002b, [6, 0x0a, 0x0a, 0x03, 0x04, 0x03, 0x03]),
    ...ext(0x001b, [2, 0, 2]),
    ...ext(0x0015, new Array<number>(120).fill(0)),
  ];
  const ciphers = [0x0a, 0x0a, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30];
  const body = [0x03, 0x03, ...random.subarray(0, 32), 32, ...random.subarray(0, 32), ...u16(ciphers.length), ...ciphers, 1, 0, ...u16(exts.length), ...exts];
  const hs = [1, 0, ...u16(body.length), ...body];
  return Uint8Array.from([0x16, 0x03, 0x01, ...u16(hs.length), ...hs]);
}

export function httpGet(host: string, path: string): Uint8Array {
  return enc.encode(
    `GET ${path} HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n` +
      `Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`,
  );
}

/** A QUIC v1 client Initial: long header, 8-byte DCID, padded to 1200 bytes (RFC 9000 14.1). */
export function quicInitial(random: Uint8Array): Uint8Array {
  const out = new Uint8Array(1200);
  out[0] = 0xc3;
  out.set([0, 0, 0, 1], 1);
  out[5] = 8;
  out.set(random.subarray(0, 8), 6);
  out[14] = 0;
  out[15] = 0;
  out.set([0x44, 0x9e], 16);
  out.set(random.subarray(8, 24), 18);
  return out;
}
