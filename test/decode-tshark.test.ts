// Differential test: every field the decoder reads from every pcap fixture agrees with what
// tshark dissects from the same file. tshark is told not to reassemble (fragments, TCP streams)
// so both look at one packet at a time, and where TLS and QUIC run on test ports.

import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { Engine } from "../src/engine/engine.js";
import type { PacketInfo } from "../src/engine/record.js";
import { readPcap } from "./helpers/pcap.js";
import { fixtureCases, fixturePath } from "./helpers/fixtures.js";

const FIELDS = [
  "frame.number",
  "ip.src", "ip.dst", "ip.ttl", "ip.id", "ip.proto", "ip.frag_offset", "ip.flags.mf",
  "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
  "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.window_size_value",
  "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport",
  "icmp.type", "icmp.code", "icmp.ident", "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier",
  "dns.id", "dns.qry.name", "dns.qry.type", "dns.count.answers", "dns.a", "dns.aaaa", "dns.cname",
  "tls.handshake.extensions_server_name", "http.host", "quic.version",
] as const;
type Field = (typeof FIELDS)[number];
type Row = Partial<Record<Field, string[]>>;

const TSHARK_ARGS = [
  "-n",
  "-o", "ip.defragment:FALSE",
  "-o", "ipv6.defragment:FALSE",
  "-o", "tcp.desegment_tcp_streams:FALSE",
  "-o", "tcp.analyze_sequence_numbers:FALSE",
  "-d", "tcp.port==4433,tls",
  "-d", "udp.port==4443,quic",
  "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=/t",
];

function tshark(file: string): Row[] {
  const out = execFileSync("tshark", ["-r", file, ...TSHARK_ARGS, ...FIELDS.flatMap((f) => ["-e", f])], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  return out
    .split("\n")
    .filter((l) => l.length > 0)
    .map((line) => {
      const cols = line.split("\t");
      const row: Row = {};
      FIELDS.forEach((f, i) => {
        const v = cols[i];
        if (v !== undefined && v !== "") row[f] = v.split("|");
      });
      return row;
    });
}

const DECODED_L4 = new Set([1, 6, 17, 58, 132, 136]);
const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));

/** Host without port, as the decoder keeps it ("[fd77::2]:8080" -> "fd77::2"). */
function hostName(h: string): string {
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]"));
  const colon = h.indexOf(":");
  return (colon < 0 ? h : h.slice(0, colon)).toLowerCase();
}

/** Compares one packet; returns the differences as "field: ours vs tshark". */
function compare(d: PacketInfo, t: Row): string[] {
  const diffs: string[] = [];
  const check = (name: string, ours: unknown, theirs: unknown) => {
    if (theirs === undefined) return;
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) diffs.push(`${name}: ${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);
  };
  const first = (f: Field) => t[f]?.[0];
  if (t["ip.src"]) {
    check("ip version", d.ipVersion, 4);
    check("src", d.src, first("ip.src"));
    check("dst", d.dst, first("ip.dst"));
    check("ttl", d.ttl, num(first("ip.ttl")));
    check("ip id", d.ipId, num(first("ip.id")));
    check("frag offset", d.fragmentOffset, num(first("ip.frag_offset")));
    check("more fragments", (d.flags & 0x4) !== 0, first("ip.flags.mf") === undefined ? undefined : first("ip.flags.mf") === "1" || first("ip.flags.mf") === "True");
    if (d.headerLength > 0) check("proto", d.proto, num(first("ip.proto")));
  } else if (t["ipv6.src"]) {
    check("ip version", d.ipVersion, 6);
    check("src", d.src, first("ipv6.src"));
    check("dst", d.dst, first("ipv6.dst"));
    check("hop limit", d.ttl, num(first("ipv6.hlim")));
    check("frag offset", d.fragmentOffset, num(first("ipv6.fraghdr.offset")));
    check("frag id", d.ipId, num(first("ipv6.fraghdr.ident")));
  }
  // Other protocols are known by number only: tshark goes on into tunnels (GRE, IP-in-IP),
  // the decoder stops at the outer header.
  if (!DECODED_L4.has(d.proto)) return diffs;
  // Transport: the first occurrence is the outer header except inside ICMP errors, where the
  // outer packet has none and tshark's first one is the embedded header.
  const inner = d.inner !== null;
  // A transport header cut off by the snap length yields its ports only: the decoder does not
  // read fields out of a header it could not read whole; tshark shows what bytes there are.
  const cut = d.anomalies.includes("trunc_l4");
  const tcpSport = num(first("tcp.srcport"));
  const udpSport = num(first("udp.srcport"));
  const sctpSport = num(first("sctp.srcport"));
  if (!inner) {
    if (tcpSport !== undefined) {
      check("tcp ports", [d.sport, d.dport], [tcpSport, num(first("tcp.dstport"))]);
      if (t["tcp.flags"] && !cut) {
        check("tcp flags", d.tcp?.flags, num(first("tcp.flags")));
        check("tcp seq", d.tcp?.seq, num(first("tcp.seq_raw")));
        check("tcp ack", d.tcp?.ack, num(first("tcp.ack_raw")));
        check("tcp window", d.tcp?.window, num(first("tcp.window_size_value")));
      }
    }
    if (udpSport !== undefined) check("udp ports", [d.sport, d.dport], [udpSport, num(first("udp.dstport"))]);
    if (sctpSport !== undefined) check("sctp ports", [d.sport, d.dport], [sctpSport, num(first("sctp.dstport"))]);
  } else {
    const ver = d.ipVersion;
    check("inner src", d.inner!.src, t[ver === 4 ? "ip.src" : "ipv6.src"]?.[1]);
    check("inner dst", d.inner!.dst, t[ver === 4 ? "ip.dst" : "ipv6.dst"]?.[1]);
    const ip = tcpSport ?? udpSport ?? sctpSport;
    if (ip !== undefined) check("inner sport", d.inner!.sport, ip);
  }
  const icmpType = num(first("icmp.type")) ?? num(first("icmpv6.type"));
  if (icmpType !== undefined && d.fragmentOffset === 0) {
    check("icmp type", d.icmp?.type, icmpType);
    check("icmp code", d.icmp?.code, num(first("icmp.code")) ?? num(first("icmpv6.code")));
    const id = num(first("icmp.ident")) ?? num(first("icmpv6.echo.identifier"));
    if (d.icmp?.echoId !== null && d.icmp?.echoId !== undefined) check("icmp echo id", d.icmp.echoId, id);
  }
  if (t["dns.id"] && !inner) {
    check("dns id", d.dns?.id, num(first("dns.id")));
    const qname = first("dns.qry.name");
    if (qname !== undefined && /^<.*>$/.test(qname)) {
      // tshark's placeholder for a name it could not read ("<name too long>"): ours flags it.
      check("dns bad name flagged", d.anomalies.includes("dns_bad_name"), true);
      check("dns name", d.name, null);
    } else {
      check("dns name", d.name, qname?.toLowerCase().replace(/\.$/, ""));
      check("dns qtype", d.dns?.qtype, num(first("dns.qry.type")));
    }
    check("dns answer count", d.dns?.ancount, num(first("dns.count.answers")));
    // tshark lists the additional section's addresses too: ours (answers only) come first.
    const a = d.dns?.answers.filter((x) => x.type === 1).map((x) => x.data) ?? [];
    const aaaa = d.dns?.answers.filter((x) => x.type === 28).map((x) => x.data) ?? [];
    const cname = d.dns?.answers.filter((x) => x.type === 5).map((x) => x.data) ?? [];
    check("dns A", a, (t["dns.a"] ?? []).slice(0, a.length));
    check("dns AAAA", aaaa, (t["dns.aaaa"] ?? []).slice(0, aaaa.length));
    check("dns answers within the answer count", (d.dns?.answers.length ?? 0) <= (d.dns?.ancount ?? 0), true);
    check("dns CNAME", cname, t["dns.cname"]?.map((c) => c.toLowerCase()));
  }
  if (d.app === "quic") {
    // tshark decrypts the QUIC Initial to show its SNI; the decoder does not decrypt (README).
    check("quic carries no name here", d.name, null);
  } else {
    check("tls sni", d.name, first("tls.handshake.extensions_server_name")?.toLowerCase());
  }
  const host = first("http.host");
  if (host !== undefined) check("http host", d.name, hostName(host));
  const quic = first("quic.version");
  if (quic !== undefined) check("quic version", d.quicVersion, Number(quic));
  return diffs;
}

describe("decoder against tshark", () => {
  let engine: Engine;
  before(() => {
    engine = new Engine({ core: "wasm" });
  });

  it("has tshark to compare with (installed by .ci/run)", () => {
    const v = execFileSync("tshark", ["--version"], { encoding: "utf8" });
    assert.match(v, /TShark/);
  });

  for (const name of fixtureCases()) {
    it(`agrees with tshark on every packet of ${name}`, () => {
      const packets = readPcap(fixturePath(name));
      const rows = tshark(fixturePath(name));
      assert.equal(rows.length, packets.length, "tshark and the pcap reader see the same frames");
      const diffs: string[] = [];
      packets.forEach((p, i) => {
        for (const diff of compare(engine.decode(p.data), rows[i]!)) diffs.push(`frame ${p.frame}: ${diff}`);
      });
      assert.deepEqual(diffs, []);
    });
  }
});
