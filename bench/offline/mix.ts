// The offline traffic mix: what a home or office gateway forwards, by share of packets.
// Mostly mid-connection TCP (the bulk of any link), then UDP, DNS, connection openers that carry
// names (TLS ClientHello, HTTP requests, QUIC Initials) and some ICMP. Destinations are drawn
// partly from the rule set's own CIDRs and names, so matches happen as they would.

import { Rng } from "../lib/rng.js";
import * as C from "../lib/craft.js";
import type { BenchRules } from "./rules.js";

export interface Mix {
  packets: Uint8Array[];
  /** Indexes of DNS packets (queries and responses), for the dns-decode case. */
  dns: number[];
  bytes: number;
}

const SHARES: [string, number][] = [
  ["tcp4", 34],
  ["tcp6", 14],
  ["udp4", 9],
  ["udp6", 4],
  ["dnsq", 9],
  ["dnsr", 9],
  ["tls", 8],
  ["http", 5],
  ["quic", 4],
  ["icmp", 4],
];

function lan(rng: Rng, v6: boolean): Uint8Array {
  return v6 ? Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 1, ...rng.bytes(8)]) : Uint8Array.from([192, 168, 1, 2 + rng.int(200)]);
}

function remote(rng: Rng, rules: BenchRules, v6: boolean): Uint8Array {
  // A third of remote addresses fall inside some rule's prefix.
  const pool = v6 ? rules.sample6 : rules.sample4;
  if (pool.length > 0 && rng.chance(0.33)) {
    const a = Uint8Array.from(rng.pick(pool));
    a[a.length - 1] = rng.int(256);
    return a;
  }
  return v6 ? Uint8Array.from([0x20 + rng.int(16), ...rng.bytes(15)]) : Uint8Array.from([1 + rng.int(222), rng.int(256), rng.int(256), 1 + rng.int(254)]);
}

function name(rng: Rng, rules: BenchRules): string {
  if (rules.sampleNames.length > 0 && rng.chance(0.4)) {
    const n = rng.pick(rules.sampleNames);
    return rng.chance(0.5) ? `www.${n}` : n;
  }
  return `host${rng.int(100000)}.site${rng.int(5000)}.${rng.pick(["com", "net", "org", "io", "de"])}`;
}

export function buildMix(count: number, rules: BenchRules, seed = 7): Mix {
  const rng = new Rng(seed);
  const total = SHARES.reduce((n, [, w]) => n + w, 0);
  const packets: Uint8Array[] = [];
  const dns: number[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    let r = rng.int(total);
    let kind = SHARES[0]![0];
    for (const [k, w] of SHARES) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    const v6 = kind.endsWith("6") || (!kind.endsWith("4") && rng.chance(0.3));
    const src = lan(rng, v6);
    const dst = remote(rng, rules, v6);
    const sport = 32768 + rng.int(28000);
    let p: Uint8Array;
    switch (kind) {
      case "tcp4":
      case "tcp6": {
        const size = rng.chance(0.45) ? 0 : rng.chance(0.6) ? 1388 : 40 + rng.int(1300);
        p = rng.chance(0.03) ? C.tcpSyn(src, dst, sport, rng.pick([443, 80, 22, 993])) : C.tcp(src, dst, sport, rng.pick([443, 443, 443, 80, 22, 8080]), rng.bytes(size));
        break;
      }
      case "udp4":
      case "udp6":
        p = C.udp(src, dst, sport, rng.pick([51820, 3478, 1194, 123, 5004]), rng.bytes(60 + rng.int(1100)));
        break;
      case "dnsq": {
        p = C.udp(src, dst, sport, 53, C.dnsQuery(rng.int(65536), name(rng, rules), rng.chance(0.5) ? 1 : 28));
        dns.push(i);
        break;
      }
      case "dnsr": {
        const q = name(rng, rules);
        const want6 = rng.chance(0.4);
        const addrs = Array.from({ length: 1 + rng.int(4) }, () => remote(rng, rules, want6));
        const cname = rng.chance(0.35) ? `edge${rng.int(900)}.cdn${rng.int(40)}.net` : null;
        p = C.udp(dst, src, 53, sport, C.dnsResponse(rng.int(65536), q, want6 ? 28 : 1, addrs, cname, 30 + rng.int(3600)));
        dns.push(i);
        break;
      }
      case "tls":
        p = C.tcp(src, dst, sport, 443, C.tlsClientHello(name(rng, rules), rng.bytes(32)));
        break;
      case "http":
        p = C.tcp(src, dst, sport, 80, C.httpGet(name(rng, rules), `/path/${rng.int(1000)}`));
        break;
      case "quic":
        p = C.udp(src, dst, sport, 443, C.quicInitial(rng.bytes(24)));
        break;
      default: {
        if (rng.chance(0.5)) p = C.icmpEcho(src, dst, rng.int(65536), rng.int(100));
        else p = C.icmpUnreachable(dst, src, C.udp(src, dst, sport, 33434 + rng.int(30), rng.bytes(32)));
      }
    }
    packets.push(p);
    bytes += p.length;
  }
  return { packets, dns, bytes };
}
