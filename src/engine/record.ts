// Reads a decode record into a plain object: for tests, the CLI and explanations. Never on the
// packet path, which reads single fields at layout offsets instead.

import * as L from "../../assembly/shared/layout.js";
import * as E from "../../assembly/shared/events.js";
import { formatIP } from "../core/ip.js";

export interface DnsAnswer {
  type: number;
  ttl: number;
  /** Address text for A / AAAA, target name for CNAME. */
  data: string;
}

export interface PacketInfo {
  anomalies: string[];
  flags: number;
  ipVersion: number;
  proto: number;
  ttl: number;
  src: string;
  dst: string;
  ipLength: number;
  ipId: number;
  fragmentOffset: number;
  headerLength: number;
  extHeaders: number;
  sport: number | null;
  dport: number | null;
  tcp: { flags: number; seq: number; ack: number; window: number } | null;
  icmp: { type: number; code: number; echoId: number | null } | null;
  inner: { proto: number; src: string; dst: string; sport: number | null; dport: number | null } | null;
  payloadOffset: number;
  payloadLength: number;
  app: "dns" | "tls" | "http" | "quic" | null;
  name: string | null;
  nameSource: "dns" | "sni" | "host" | "ipdom" | null;
  quicVersion: number | null;
  dns: { id: number; flags: number; qtype: number; ancount: number; answers: DnsAnswer[] } | null;
}

export interface MatchInfo {
  verdict: number;
  matchBy: number;
  profile: number;
  /** Global rule id, or null when the profile's default decided. */
  rule: number | null;
  line: number;
}

const ANOMALY_NAMES: [number, string][] = Object.entries(E)
  .filter(([k]) => k.startsWith("AN_"))
  .map(([k, v]) => [v as number, k.slice(3).toLowerCase()]);
const APPS = [null, "dns", "tls", "http", "quic"] as const;
const NAME_SOURCES = [null, "dns", "sni", "host", "ipdom"] as const;
const TCP_PROTO = 6;
const ICMP_PROTOS = new Set([E.IPP_ICMP, E.IPP_ICMPV6]);
const DNS_TYPE_CNAME = 5;

export function anomalyNames(bits: number): string[] {
  return ANOMALY_NAMES.filter(([bit]) => (bits & bit) !== 0).map(([, name]) => name);
}

export function readRecord(u8: Uint8Array, rec: number): PacketInfo {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const u16 = (o: number) => dv.getUint16(rec + o, true);
  const u32 = (o: number) => dv.getUint32(rec + o, true);
  const b = (o: number) => u8[rec + o]!;
  const flags = u32(L.REC_FLAGS);
  const ver = b(L.REC_IPVER);
  const proto = b(L.REC_PROTO);
  const addr = (o: number) => (ver === 4 || ver === 6 ? formatIP(ver, u8, rec + o) : "");
  const text = (off: number, len: number) => Buffer.from(u8.buffer, u8.byteOffset + rec + off, len).toString("latin1");
  const hasPorts = (flags & E.PF_HAS_PORTS) !== 0;
  const app = APPS[b(L.REC_APP)] ?? null;
  let dns: PacketInfo["dns"] = null;
  if (app === "dns") {
    const answers: DnsAnswer[] = [];
    for (let i = 0; i < b(L.REC_DNS_NANS); i++) {
      const a = L.REC_ANS + i * L.ANS_SIZE;
      const type = u16(a + L.ANS_TYPE);
      const len = u16(a + L.ANS_LEN);
      const data = type === DNS_TYPE_CNAME ? text(L.REC_CNAMES + u16(a + L.ANS_DATA), len) : formatIP(len === 4 ? 4 : 6, u8, rec + a + L.ANS_DATA);
      answers.push({ type, ttl: u32(a + L.ANS_TTL), data });
    }
    dns = { id: u16(L.REC_DNS_ID), flags: u16(L.REC_DNS_FLAGS), qtype: u16(L.REC_DNS_QTYPE), ancount: u16(L.REC_DNS_ANCOUNT), answers };
  }
  const isIcmp = ICMP_PROTOS.has(proto) && (flags & E.PF_L4_HDR) !== 0;
  return {
    anomalies: anomalyNames(u32(L.REC_ANOMALY)),
    flags,
    ipVersion: ver,
    proto,
    ttl: b(L.REC_TTL),
    src: addr(L.REC_SRC),
    dst: addr(L.REC_DST),
    ipLength: u16(L.REC_IPLEN),
    ipId: u32(L.REC_IPID),
    fragmentOffset: u16(L.REC_FRAGOFF),
    headerLength: u16(L.REC_L3HLEN),
    extHeaders: u16(L.REC_EXTHDRS),
    sport: hasPorts ? u16(L.REC_SPORT) : null,
    dport: hasPorts ? u16(L.REC_DPORT) : null,
    tcp:
      proto === TCP_PROTO && (flags & E.PF_L4_HDR) !== 0
        ? { flags: b(L.REC_TCPFLAGS), seq: u32(L.REC_TCPSEQ), ack: u32(L.REC_TCPACK), window: u16(L.REC_TCPWIN) }
        : null,
    icmp: isIcmp
      ? { type: b(L.REC_ICMPTYPE), code: b(L.REC_ICMPCODE), echoId: (flags & E.PF_ICMP_ECHO) !== 0 ? u16(L.REC_ICMPID) : null }
      : null,
    inner:
      (flags & E.PF_ICMP_ERROR) !== 0
        ? {
            proto: b(L.REC_INNER_PROTO),
            src: formatIP(proto === E.IPP_ICMP ? 4 : 6, u8, rec + L.REC_INNER_SRC),
            dst: formatIP(proto === E.IPP_ICMP ? 4 : 6, u8, rec + L.REC_INNER_DST),
            sport: (flags & E.PF_INNER_PORTS) !== 0 ? u16(L.REC_INNER_SPORT) : null,
            dport: (flags & E.PF_INNER_PORTS) !== 0 ? u16(L.REC_INNER_DPORT) : null,
          }
        : null,
    payloadOffset: u16(L.REC_PAYOFF),
    payloadLength: u16(L.REC_PAYLEN),
    app,
    name: (flags & E.PF_HAS_NAME) !== 0 ? text(L.REC_NAME, u16(L.REC_NAMELEN)) : null,
    nameSource: (flags & E.PF_HAS_NAME) !== 0 ? (NAME_SOURCES[b(L.REC_NAMESRC)] ?? null) : null,
    quicVersion: app === "quic" ? u32(L.REC_QUICVER) : null,
    dns,
  };
}

export function readMatch(u8: Uint8Array, rec: number): MatchInfo {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const rule = dv.getUint32(rec + L.REC_RULE, true);
  return {
    verdict: u8[rec + L.REC_VERDICT]!,
    matchBy: u8[rec + L.REC_MATCHBY]!,
    profile: dv.getUint16(rec + L.REC_PROFILE, true),
    rule: rule === E.NO_RULE ? null : rule,
    line: dv.getUint32(rec + L.REC_LINE, true),
  };
}
