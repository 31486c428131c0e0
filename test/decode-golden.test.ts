// Golden expectations for what the decoder makes of the pcap fixtures where tshark is no judge:
// anomalies, flags and fields it either shows differently or not at all. Written by hand from
// test/fixtures/pcap/README.md (what each capture contains), one test per behaviour. Real
// captures are matched by content rather than frame number where the README says their packet
// counts may vary between regenerations.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as L from "../assembly/shared/layout.js";
import * as E from "../assembly/shared/events.js";
import { Engine } from "../src/engine/engine.js";
import { createMemory, instantiateTwin, instantiateWasm, type Core } from "../src/engine/core.js";
import type { PacketInfo } from "../src/engine/record.js";
import { readPcap } from "./helpers/pcap.js";
import { fixtureCases, fixturePath } from "./helpers/fixtures.js";

const engine = new Engine({ ipdomSets: 64 });

interface Decoded extends PacketInfo {
  frame: number;
}

const cache = new Map<string, Decoded[]>();

/** Every frame of a fixture, decoded on the WASM core (index 0 is frame 1). */
function frames(name: string): Decoded[] {
  let out = cache.get(name);
  if (!out) {
    out = readPcap(fixturePath(name)).map((p) => ({ frame: p.frame, ...engine.decode(p.data) }));
    cache.set(name, out);
  }
  return out;
}

function frame(name: string, n: number): Decoded {
  const f = frames(name)[n - 1];
  assert.ok(f, `${name} has a frame ${n}`);
  return f;
}

/** The first frame that `pred` accepts. */
function find(name: string, what: string, pred: (d: Decoded) => boolean): Decoded {
  const f = frames(name).find(pred);
  assert.ok(f, `${name}: ${what}`);
  return f;
}

const has = (d: PacketInfo, flag: number) => (d.flags & flag) !== 0;

describe("golden decode: malformed IPv4 and TCP headers (crafted fixtures)", () => {
  it("flags both crafted_ipv4_bad_ihl frames (IHL 4, IHL 0) as bad_ihl and reads no ports", () => {
    const fs = frames("crafted_ipv4_bad_ihl");
    assert.equal(fs.length, 2);
    for (const f of fs) {
      assert.deepEqual(f.anomalies, ["bad_ihl"], `frame ${f.frame}`);
      assert.equal(f.ipVersion, 4);
      assert.equal(f.sport, null, `frame ${f.frame} sport`);
      assert.equal(f.dport, null, `frame ${f.frame} dport`);
      assert.equal(has(f, E.PF_L4_HDR), false, `frame ${f.frame} has no transport header`);
    }
  });

  it("flags crafted_ipv4_bad_total_length frame 1 (total length 1500, 36 bytes of IP captured) as capture_short and still reads its UDP ports", () => {
    const f = frame("crafted_ipv4_bad_total_length", 1);
    assert.deepEqual(f.anomalies, ["capture_short"]);
    assert.equal(f.ipLength, 1500);
    assert.deepEqual([f.proto, f.sport, f.dport], [E.IPP_UDP, 40004, 9999]);
  });

  it("flags crafted_ipv4_bad_total_length frame 2 (total length 16 < IHL * 4) as bad_total_len and reads no ports", () => {
    const f = frame("crafted_ipv4_bad_total_length", 2);
    assert.deepEqual(f.anomalies, ["bad_total_len"]);
    assert.equal(f.ipLength, 16);
    assert.equal(f.sport, null);
    assert.equal(has(f, E.PF_L4_HDR), false);
  });

  it("flags crafted_tcp_bad_data_offset frame 1 (data offset 3 words) as tcp_bad_doff, with ports and no payload", () => {
    const f = frame("crafted_tcp_bad_data_offset", 1);
    assert.deepEqual(f.anomalies, ["tcp_bad_doff"]);
    assert.deepEqual([f.sport, f.dport], [40005, 80]);
    assert.equal(f.payloadLength, 0);
    assert.equal(f.app, null);
  });

  it("flags crafted_tcp_bad_data_offset frame 2 (data offset 15 words, past the segment's end) as a cut-off transport header, not a data offset below 5", () => {
    const f = frame("crafted_tcp_bad_data_offset", 2);
    assert.deepEqual(f.anomalies, ["trunc_l4"]);
    assert.deepEqual([f.sport, f.dport], [40005, 80]);
    assert.equal(f.payloadLength, 0);
    assert.equal(f.app, null);
  });
});

describe("golden decode: malformed DNS names (crafted fixtures)", () => {
  it("flags crafted_dns_pointer_loop frame 1 (answer owner name points to itself) as dns_bad_name and keeps the question name", () => {
    const f = frame("crafted_dns_pointer_loop", 1);
    assert.deepEqual(f.anomalies, ["dns_bad_name"]);
    assert.equal(f.app, "dns");
    assert.equal(f.name, "loop.example.test");
    assert.equal(f.nameSource, "dns");
    // dns.ts: an owner name that is only skipped ends at its pointer, so the record after it is
    // still read (tshark shows the same A record).
    assert.deepEqual(f.dns?.answers, [{ type: 1, ttl: 60, data: "10.77.2.80" }]);
  });

  it("flags crafted_dns_pointer_loop frame 2 (question name 'a' + pointer back to itself) as dns_bad_name and keeps no name", () => {
    const f = frame("crafted_dns_pointer_loop", 2);
    assert.deepEqual(f.anomalies, ["dns_bad_name"]);
    assert.equal(f.app, "dns");
    assert.equal(f.name, null);
  });

  it("flags both crafted_dns_label_too_long frames (name of 321 wire bytes; label length 64) as dns_bad_name and keeps no name", () => {
    const fs = frames("crafted_dns_label_too_long");
    assert.equal(fs.length, 2);
    for (const f of fs) {
      assert.deepEqual(f.anomalies, ["dns_bad_name"], `frame ${f.frame}`);
      assert.equal(f.app, "dns", `frame ${f.frame}`);
      assert.equal(f.name, null, `frame ${f.frame}`);
    }
  });
});

describe("golden decode: a capture cut by the snap length", () => {
  it("flags every truncated_snaplen frame as trunc_l4 and capture_short and still reads the ports from the 16 captured TCP bytes", () => {
    const fs = frames("truncated_snaplen");
    assert.equal(fs.length, 13);
    for (const f of fs) {
      assert.deepEqual(f.anomalies, ["capture_short", "trunc_l4"], `frame ${f.frame}`);
      assert.equal(f.proto, E.IPP_TCP);
      assert.ok(f.sport !== null && f.dport !== null, `frame ${f.frame} has ports`);
      assert.ok(f.sport === 80 || f.dport === 80, `frame ${f.frame}: ${f.sport} -> ${f.dport} is the HTTP connection`);
      assert.equal(f.tcp, null, `frame ${f.frame}: no fields are read from a TCP header cut short`);
    }
  });
});

describe("golden decode: IPv6 extension headers", () => {
  it("stops at ESP in crafted_ipv6_esp: protocol 50, EH_ESP seen, no ports", () => {
    const f = frame("crafted_ipv6_esp", 1);
    assert.deepEqual(f.anomalies, []);
    assert.equal(f.proto, E.IPP_ESP);
    assert.equal(f.extHeaders, E.EH_ESP);
    assert.equal(f.sport, null);
    assert.equal(f.headerLength, 40);
  });

  it("reads next header 59 in crafted_ipv6_no_next_header as protocol 59 with EH_NONE, also after Destination Options", () => {
    const [f1, f2] = [frame("crafted_ipv6_no_next_header", 1), frame("crafted_ipv6_no_next_header", 2)];
    for (const f of [f1, f2]) {
      assert.deepEqual(f.anomalies, [], `frame ${f.frame}`);
      assert.equal(f.proto, E.IPP_NONE, `frame ${f.frame}`);
      assert.equal(f.sport, null, `frame ${f.frame}`);
    }
    assert.equal(f1.extHeaders, E.EH_NONE);
    assert.equal(f2.extHeaders, E.EH_DSTOPTS | E.EH_NONE);
  });

  it("follows crafted_ipv6_ext_chain through Hop-by-Hop, Destination Options, Routing and Fragment to the UDP ports", () => {
    const f = frame("crafted_ipv6_ext_chain", 1);
    assert.equal(f.extHeaders, E.EH_HOPOPTS | E.EH_DSTOPTS | E.EH_ROUTING | E.EH_FRAGMENT);
    assert.equal(f.proto, E.IPP_UDP);
    assert.deepEqual([f.sport, f.dport], [40001, 7777]);
    assert.equal(f.headerLength, 40 + 8 + 8 + 40 + 8);
    assert.equal(f.fragmentOffset, 0);
    assert.equal(f.ipId, 0x5eed);
    assert.equal(f.flags & (E.PF_FRAGMENT | E.PF_FIRST_FRAG | E.PF_MORE_FRAGS), E.PF_FRAGMENT | E.PF_FIRST_FRAG | E.PF_MORE_FRAGS);
  });

  it("does not flag the UDP length of crafted_ipv6_ext_chain's first fragment (32, the whole datagram's) as udp_bad_len", () => {
    // The fragment carries the UDP header and 8 of the datagram's 24 payload bytes (M=1): a UDP
    // length past this fragment's end is what every first fragment of a UDP datagram has.
    const f = frame("crafted_ipv6_ext_chain", 1);
    assert.deepEqual(f.anomalies, []);
  });

  it("skips the 12-byte ICV AH header in crafted_ipv6_ah and reads the TCP SYN behind it", () => {
    const f = frame("crafted_ipv6_ah", 1);
    assert.deepEqual(f.anomalies, []);
    assert.equal(f.extHeaders, E.EH_AH);
    assert.equal(f.proto, E.IPP_TCP);
    assert.deepEqual([f.sport, f.dport], [40002, 80]);
    assert.equal(f.tcp?.flags, 0x02);
  });

  it("reads the Hop-by-Hop Router Alert of mld_hop_by_hop and the MLDv2 report (ICMPv6 type 143) behind it", () => {
    const fs = frames("mld_hop_by_hop");
    assert.equal(fs.length, 2);
    for (const f of fs) {
      assert.deepEqual(f.anomalies, [], `frame ${f.frame}`);
      assert.equal(f.extHeaders, E.EH_HOPOPTS, `frame ${f.frame}`);
      assert.equal(f.proto, E.IPP_ICMPV6, `frame ${f.frame}`);
      assert.equal(f.icmp?.type, 143, `frame ${f.frame}`);
    }
  });
});

describe("golden decode: fragments", () => {
  // README: first (MF, offset 0), middle, last, in both directions: frames 1-3 and 4-6.
  for (const [name, icmpTypes] of [
    ["ipv4_fragments", [8, 0]],
    ["ipv6_fragments", [128, 129]],
  ] as const) {
    it(`reads the ICMP echo header from the first fragments of ${name} and marks them PF_FIRST_FRAG`, () => {
      [1, 4].forEach((n, i) => {
        const f = frame(name, n);
        assert.deepEqual(f.anomalies, [], `frame ${n}`);
        assert.equal(f.fragmentOffset, 0, `frame ${n}`);
        assert.equal(f.flags & (E.PF_FRAGMENT | E.PF_FIRST_FRAG | E.PF_MORE_FRAGS), E.PF_FRAGMENT | E.PF_FIRST_FRAG | E.PF_MORE_FRAGS, `frame ${n} flags`);
        assert.equal(f.icmp?.type, icmpTypes[i], `frame ${n} ICMP type`);
        assert.ok(f.icmp?.echoId !== null && f.icmp?.echoId !== undefined, `frame ${n} echo id`);
        if (name === "ipv6_fragments") assert.equal(f.extHeaders, E.EH_FRAGMENT, `frame ${n}`);
      });
    });

    it(`reads no transport header from the later fragments of ${name}: no ports, no ICMP fields, a fragment offset above 0`, () => {
      for (const n of [2, 3, 5, 6]) {
        const f = frame(name, n);
        assert.deepEqual(f.anomalies, [], `frame ${n}`);
        assert.ok(f.fragmentOffset > 0, `frame ${n} offset ${f.fragmentOffset}`);
        assert.equal(has(f, E.PF_FRAGMENT), true, `frame ${n} is a fragment`);
        assert.equal(has(f, E.PF_FIRST_FRAG), false, `frame ${n} is not the first`);
        assert.equal(has(f, E.PF_MORE_FRAGS), n === 2 || n === 5, `frame ${n} MF`);
        assert.equal(has(f, E.PF_L4_HDR), false, `frame ${n} transport header`);
        assert.equal(f.sport, null, `frame ${n}`);
        assert.equal(f.icmp, null, `frame ${n}`);
        assert.ok(f.payloadLength > 0, `frame ${n} payload`);
      }
    });
  }
});

describe("golden decode: ICMP errors", () => {
  for (const [name, type, code] of [
    ["icmpv4_port_unreachable", 3, 3],
    ["icmpv6_port_unreachable", 1, 4],
  ] as const) {
    it(`ties the ${name} error to the UDP datagram of frame 1: inner protocol 17, its addresses and ports`, () => {
      const dgram = frame(name, 1);
      const err = frame(name, 2);
      assert.equal(dgram.proto, E.IPP_UDP);
      assert.deepEqual(err.anomalies, []);
      assert.deepEqual([err.icmp?.type, err.icmp?.code], [type, code]);
      assert.equal(has(err, E.PF_ICMP_ERROR), true);
      assert.deepEqual(err.inner, { proto: E.IPP_UDP, src: dgram.src, dst: dgram.dst, sport: dgram.sport, dport: dgram.dport });
      assert.equal(err.sport, null, "the error itself has no ports");
    });
  }
});

describe("golden decode: application names", () => {
  it("recognises the quic_initial client Initial as QUIC version 1 without a name (the SNI is encrypted; Initial decryption is not done)", () => {
    const f = frame("quic_initial", 1);
    assert.equal(f.app, "quic");
    assert.equal(f.quicVersion, 1);
    assert.equal(f.name, null);
    assert.equal(f.nameSource, null);
  });

  it("reads version 0 from the Version Negotiation packet of quic_version_negotiation and the unknown version from the client's", () => {
    const client = frame("quic_version_negotiation", 1);
    const vn = frame("quic_version_negotiation", 2);
    assert.deepEqual([client.app, client.quicVersion], ["quic", 0x1a2a3a4a]);
    assert.deepEqual([vn.app, vn.quicVersion], ["quic", 0]);
    assert.equal(vn.name, null);
  });

  it("reads the question name of the DNS-over-TCP query in dns_tcp past the 2-byte length prefix", () => {
    const q = find("dns_tcp", "a query segment with payload to port 53", (d) => d.dport === 53 && d.payloadLength > 0);
    assert.deepEqual(q.anomalies, []);
    assert.equal(q.app, "dns");
    assert.equal(q.name, "www.example.test");
    assert.equal(q.nameSource, "dns");
    assert.equal(has(q, E.PF_DNS_RESPONSE), false);
  });

  for (const name of ["tls_clienthello_v4", "tls_clienthello_v6", "tls13_curl_sni"]) {
    it(`reads the SNI www.example.test from the ClientHello in ${name}`, () => {
      const hello = find(name, "the client's first segment with payload", (d) => d.payloadLength > 0);
      assert.deepEqual(hello.anomalies, []);
      assert.equal(hello.app, "tls");
      assert.equal(hello.name, "www.example.test");
      assert.equal(hello.nameSource, "sni");
      assert.deepEqual(
        frames(name).filter((d) => d.name !== null).map((d) => d.frame),
        [hello.frame],
        "only the ClientHello carries a name",
      );
    });
  }

  it("strips the port from the Host header www.example.test:8080 in http_host_with_port", () => {
    const req = find("http_host_with_port", "the GET request", (d) => d.app === "http");
    assert.equal(req.name, "www.example.test");
    assert.equal(req.nameSource, "host");
    assert.equal(req.dport, 8080);
  });

  it("strips the brackets and port from the Host header [fd77:2::2]:8080 in http_host_ipv6_literal", () => {
    const req = find("http_host_ipv6_literal", "the GET request", (d) => d.app === "http");
    assert.equal(req.name, "fd77:2::2");
    assert.equal(req.nameSource, "host");
  });
});

describe("golden decode: all fixtures", () => {
  it("decodes every fixture packet into the same record bytes on the WASM core and the JS twin", () => {
    // Own memories (not the engine's): the twin is one per thread.
    const REC = L.MEM_STATIC_END;
    const PKT = REC + L.REC_SIZE * 2;
    const cores: [Core, Uint8Array][] = [instantiateWasm, instantiateTwin].map((make) => {
      const memory = createMemory(32);
      return [make(memory), new Uint8Array(memory.buffer)] as [Core, Uint8Array];
    });
    let packets = 0;
    for (const name of fixtureCases()) {
      for (const p of readPcap(fixturePath(name))) {
        const [w, t] = cores.map(([core, u8]) => {
          u8.fill(0, REC, REC + L.REC_SIZE);
          u8.set(p.data, PKT);
          core.decode(PKT, p.data.length, REC);
          return Buffer.from(u8.slice(REC, REC + L.REC_SIZE));
        });
        if (!w!.equals(t!)) {
          let i = 0;
          while (w![i] === t![i]) i++;
          assert.fail(`${name} frame ${p.frame}: records differ first at byte ${i}: wasm ${w![i]}, twin ${t![i]}`);
        }
        packets++;
      }
    }
    assert.ok(packets >= 200, `${packets} packets`);
  });

  it("finds no anomaly in any real capture (every fixture but crafted_* and truncated_snaplen, none of which the README says is cut)", () => {
    const real = fixtureCases().filter((c) => !c.startsWith("crafted_") && c !== "truncated_snaplen");
    assert.ok(real.length >= 30, `${real.length} real captures`);
    const found = real.flatMap((c) => frames(c).filter((d) => d.anomalies.length > 0).map((d) => `${c} frame ${d.frame}: ${d.anomalies.join(", ")}`));
    assert.deepEqual(found, []);
    for (const c of real) for (const d of frames(c)) assert.ok(d.ipVersion === 4 || d.ipVersion === 6, `${c} frame ${d.frame} is IP`);
  });
});
