// Connection tracking in the packet core (assembly/flow/track.ts) and its host side (the ring
// reader and the live connection tracker): flows keyed both ways, lifecycle and timeouts,
// hand-off to the kernel, eviction and ring overflow under a flood, and the WASM build and the
// JS twin writing the same events.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as L from "../assembly/shared/layout.js";
import * as E from "../assembly/shared/events.js";
import { Engine } from "../src/engine/engine.js";
import { parseRuleset } from "../src/rules/parse.js";
import { compileRuleset } from "../src/rules/image.js";
import { RingReader, flowRegionSize, type FlowEvent } from "../src/flow/ring.js";
import { ConnectionTracker, type Change } from "../src/flow/tracker.js";
import { packet, tcp, udp, icmp, tlsClientHello, PROTO } from "./helpers/packets.js";

const T0 = 1_700_000_000;
const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;
const RST = 0x04;
const PSH_ACK = 0x18;
const RULES = "- 10.0.0.9 TCP/25\n- .blocked.example\n+ *\n";
const CLIENT = "192.168.1.10";
const SERVER = "10.0.0.9";

type Kind = "wasm" | "twin";

class Rig {
  readonly engine: Engine;
  readonly ft: number;
  readonly ring: RingReader;
  private readonly pkt: number;
  private readonly desc: number;
  private readonly rec: number;
  private readonly results: number;

  constructor(kind: Kind, rules: string, opts: { buckets?: number; ring?: number } = {}) {
    this.engine = new Engine({ core: kind });
    this.engine.loadImage(compileRuleset(parseRuleset(rules)));
    const buckets = opts.buckets ?? 64;
    const cap = opts.ring ?? 256;
    const a = this.engine.arena;
    this.ft = a.alloc(flowRegionSize(buckets, cap));
    this.engine.core.flowInit(this.ft, buckets, cap, 7);
    this.pkt = a.alloc(2048);
    this.desc = a.alloc(L.DESC_SIZE);
    this.rec = a.alloc(L.REC_SIZE);
    this.results = a.alloc(L.RES_SIZE);
    this.ring = new RingReader(this.engine.memory, this.ft);
  }

  /** Runs one packet through processBatch with tracking; returns its verdict. */
  send(p: Uint8Array, now: number, flags = L.BF_LEARN_DNS | L.BF_TRACK_FAST | L.BF_WAIT_NAME, inbound = false): number {
    const u8 = new Uint8Array(this.engine.memory.buffer);
    u8.set(p, this.pkt);
    const dv = new DataView(this.engine.memory.buffer);
    dv.setUint32(this.desc + L.DESC_OFF, this.pkt, true);
    dv.setUint16(this.desc + L.DESC_LEN, p.length, true);
    dv.setUint16(this.desc + L.DESC_FLAGS, inbound ? L.DF_INBOUND : 0, true);
    this.engine.core.processBatch(this.desc, 1, this.rec, this.results, this.engine.imageOffset, this.engine.ipdom, now, flags, this.ft);
    return u8[this.results + L.RES_VERDICT]!;
  }

  sweep(now: number, rounds = 8): void {
    for (let i = 0; i < rounds; i++) this.engine.core.processBatch(this.desc, 0, this.rec, 0, 0, this.engine.ipdom, now, 0, this.ft);
  }

  events(): FlowEvent[] {
    const out: FlowEvent[] = [];
    this.ring.drain((e) => out.push(e));
    return out;
  }

  /** The raw ring slots written so far (for comparing builds byte for byte). */
  rawRing(n: number): Uint8Array {
    const dv = new DataView(this.engine.memory.buffer);
    const ring = this.ft + dv.getUint32(this.ft + L.FT_RING, true);
    return new Uint8Array(this.engine.memory.buffer).slice(ring + L.RG_HDR_SIZE, ring + L.RG_HDR_SIZE + n * L.EV_SIZE);
  }
}

const seg = (src: string, dst: string, sport: number, dport: number, flags: number, payload?: Uint8Array) =>
  packet({ src, dst, proto: PROTO.tcp, sport, dport, tcpFlags: flags, payload });

for (const kind of ["wasm", "twin"] as const) {
  describe(`flow tracking (${kind})`, () => {
    it("keys a flow by its first packet and accounts replies to the same flow", () => {
      const r = new Rig(kind, RULES);
      r.send(seg(CLIENT, SERVER, 40001, 443, SYN), T0, L.BF_TRACK_FAST);
      r.send(seg(SERVER, CLIENT, 443, 40001, SYN | ACK), T0, L.BF_TRACK_FAST);
      const ev = r.events();
      assert.equal(ev.length, 1, "one flow, one NEW");
      const e = ev[0]!;
      assert.equal(e.type, L.EVT_NEW);
      assert.deepEqual([e.src, e.sport, e.dst, e.dport, e.proto, e.ipVersion], [CLIENT, 40001, SERVER, 443, 6, 4]);
      assert.equal(e.verdict, E.VERDICT_ACCEPT);
      assert.equal(e.worker, 7);
      assert.equal(e.first, T0);
      assert.equal(r.ring.counters().live, 1);
    });

    it("waits for the TLS name before handing an accepted connection to the kernel, then reports it", () => {
      const r = new Rig(kind, RULES);
      r.send(seg(CLIENT, SERVER, 40002, 443, SYN), T0);
      r.send(seg(SERVER, CLIENT, 443, 40002, SYN | ACK), T0);
      r.send(seg(CLIENT, SERVER, 40002, 443, ACK), T0);
      r.send(seg(CLIENT, SERVER, 40002, 443, PSH_ACK, tlsClientHello("www.example.org")), T0 + 1);
      const ev = r.events();
      assert.deepEqual(ev.map((e) => e.type), [L.EVT_NEW, L.EVT_UPDATE]);
      assert.ok((ev[0]!.flags & E.PF_PROVISIONAL) !== 0, "the SYN was passed once");
      assert.equal(ev[1]!.name, "www.example.org");
      assert.equal((ev[1]!.flags & E.PF_PROVISIONAL), 0, "decided on the ClientHello");
      assert.equal(ev[1]!.packetsOut, 3);
      assert.equal(ev[1]!.packetsIn, 1);
      // Handed to the kernel: it leaves the table quietly (conntrack reports its end).
      r.sweep(T0 + 1 + L.FT_TIMEOUT_KERNEL + 1);
      assert.deepEqual(r.events(), []);
      assert.equal(r.ring.counters().live, 0);
    });

    it("reports a block decided on the name with the rule's line", () => {
      const r = new Rig(kind, RULES);
      r.send(seg(CLIENT, SERVER, 40003, 443, SYN), T0);
      r.send(seg(CLIENT, SERVER, 40003, 443, PSH_ACK, tlsClientHello("ads.blocked.example")), T0);
      const up = r.events().find((e) => e.type === L.EVT_UPDATE)!;
      assert.equal(up.verdict, E.VERDICT_BLOCK);
      assert.equal(up.line, 2);
      assert.equal(up.matchedBy, E.MB_DOMAIN);
    });

    it("follows a connection packet by packet without fast-track, and ends it after FIN both ways", () => {
      const r = new Rig(kind, RULES);
      const flags = L.BF_LEARN_DNS;
      r.send(seg(CLIENT, SERVER, 40004, 80, SYN), T0, flags);
      r.send(seg(SERVER, CLIENT, 80, 40004, SYN | ACK), T0, flags);
      r.send(seg(CLIENT, SERVER, 40004, 80, PSH_ACK, new Uint8Array(1000)), T0 + 1, flags);
      r.send(seg(SERVER, CLIENT, 80, 40004, PSH_ACK, new Uint8Array(3000)), T0 + 1, flags);
      r.send(seg(CLIENT, SERVER, 40004, 80, FIN | ACK), T0 + 2, flags);
      r.send(seg(SERVER, CLIENT, 80, 40004, FIN | ACK), T0 + 2, flags);
      r.sweep(T0 + 2 + L.FT_TIMEOUT_CLOSING - 1);
      assert.ok(!r.events().some((e) => e.type === L.EVT_END), "lingers a moment after the FINs");
      r.sweep(T0 + 2 + L.FT_TIMEOUT_CLOSING + 1);
      const end = r.events().find((e) => e.type === L.EVT_END)!;
      assert.ok(end, "ended");
      assert.equal(end.reason, L.EVR_CLOSED);
      assert.equal(end.packetsOut, 3);
      assert.equal(end.packetsIn, 3);
      assert.equal(end.bytesOut, 40 + 40 + 1040);
      assert.equal(end.bytesIn, 40 + 3040 + 40);
      assert.equal(end.last, T0 + 2);
    });

    it("ends a connection shortly after a reset", () => {
      const r = new Rig(kind, RULES);
      r.send(seg(CLIENT, SERVER, 40005, 80, SYN), T0, 0);
      r.send(seg(SERVER, CLIENT, 80, 40005, RST | ACK), T0, 0);
      r.sweep(T0 + L.FT_TIMEOUT_CLOSING + 1);
      assert.equal(r.events().find((e) => e.type === L.EVT_END)?.reason, L.EVR_CLOSED);
    });

    it("times out an idle UDP flow, and an ICMP echo flow keyed by its identifier", () => {
      const r = new Rig(kind, RULES);
      r.send(udp(CLIENT, SERVER, 9999, new Uint8Array(10), 5555), T0, 0);
      r.send(udp(SERVER, CLIENT, 5555, new Uint8Array(10), 9999), T0, 0);
      r.send(icmp(CLIENT, SERVER), T0, 0);
      r.send(icmp(SERVER, CLIENT, 0), T0, 0);
      assert.equal(r.events().filter((e) => e.type === L.EVT_NEW).length, 2, "request and reply share a flow");
      r.sweep(T0 + L.FT_TIMEOUT_OTHER + 1, 16);
      const icmpEnd = r.events();
      assert.deepEqual(icmpEnd.map((e) => [e.type, e.proto, e.reason]), [[L.EVT_END, 1, L.EVR_TIMEOUT]]);
      r.sweep(T0 + L.FT_TIMEOUT_UDP + 1, 16);
      const udpEnd = r.events();
      assert.deepEqual(udpEnd.map((e) => [e.type, e.proto, e.reason, e.packetsOut, e.packetsIn]), [[L.EVT_END, 17, L.EVR_TIMEOUT, 1, 1]]);
    });

    it("evicts the least recently seen flows under a flood and never grows, counting what it dropped", () => {
      const buckets = 16;
      const r = new Rig(kind, RULES, { buckets, ring: 64 });
      const flows = 2000;
      for (let i = 0; i < flows; i++) r.send(udp(CLIENT, SERVER, 53000, new Uint8Array(4), 1024 + i), T0 + Math.floor(i / 100), 0);
      const c = r.ring.counters();
      assert.equal(c.live, buckets * L.FT_WAYS, "the table is full, not larger");
      assert.equal(c.evicted, flows - buckets * L.FT_WAYS);
      assert.equal(c.pending, 64, "the ring is full");
      assert.ok(c.dropped > 0, "events beyond the ring were dropped and counted");
      const ev = r.events();
      assert.equal(ev.length, 64);
      // Once drained, new events flow again.
      r.send(udp(CLIENT, SERVER, 53001, new Uint8Array(4), 999), T0 + 30, 0);
      assert.ok(r.events().length >= 1);
    });

    it("records the name DNS gave the remote address for a connection that carries none", () => {
      const r = new Rig(kind, RULES);
      r.engine.learnDomain(SERVER, "mail.example.net", 3600, T0);
      r.send(seg(CLIENT, SERVER, 40006, 25, SYN), T0);
      const e = r.events()[0]!;
      assert.equal(e.name, "mail.example.net");
      assert.equal(e.verdict, E.VERDICT_BLOCK, "the IP rule still decides");
    });
  });
}

describe("flow tracking: both builds", () => {
  it("lays a bucket out as one tag line and its ways", () => {
    assert.equal(L.FT_BUCKET_SIZE, L.FT_BUCKET_HDR + L.FT_WAYS * L.FL_SIZE);
    assert.ok(L.FT_TAG_LAST + L.FT_WAYS * 4 <= L.FT_BUCKET_HDR);
  });

  it("the WASM build and the JS twin write identical events for the same packets", () => {
    const rigs = [new Rig("wasm", RULES), new Rig("twin", RULES)];
    const pkts: [Uint8Array, number][] = [
      [seg(CLIENT, SERVER, 41000, 443, SYN), T0],
      [seg(SERVER, CLIENT, 443, 41000, SYN | ACK), T0],
      [seg(CLIENT, SERVER, 41000, 443, PSH_ACK, tlsClientHello("a.example.com")), T0 + 1],
      [udp(CLIENT, SERVER, 9999, new Uint8Array(100), 6000), T0 + 1],
      [tcp(CLIENT, SERVER, 25), T0 + 2],
    ];
    for (const rig of rigs) for (const [p, t] of pkts) rig.send(p, t, L.BF_LEARN_DNS | L.BF_TRACK_FAST | L.BF_WAIT_NAME);
    for (const rig of rigs) rig.sweep(T0 + 3600 * 2, 16);
    const n = rigs[0]!.ring.counters().pending;
    assert.ok(n >= 4);
    assert.deepEqual(rigs[1]!.rawRing(n), rigs[0]!.rawRing(n));
  });
});

describe("live connection tracker", () => {
  const ev = (over: Partial<FlowEvent>): FlowEvent => ({
    type: L.EVT_NEW, reason: 0, worker: 0, id: 1, ipVersion: 4, proto: 6, verdict: E.VERDICT_ACCEPT, matchedBy: E.MB_DOMAIN,
    inbound: false, src: CLIENT, dst: "93.184.216.34", sport: 40000, dport: 443, profile: 0, rule: 0, line: 3, first: T0, last: T0,
    packetsOut: 1, packetsIn: 0, bytesOut: 60, bytesIn: 0, flags: 0, name: "example.com", mac: "02:00:00:00:00:01", ...over,
  });

  it("turns a worker's flow into a Portmaster-style record from the device's point of view", () => {
    const t = new ConnectionTracker(() => "kids");
    const changes: Change[] = [];
    t.onChange((c) => changes.push(c));
    t.onFlow(ev({}));
    const r = changes[0]!.rec;
    assert.equal(r.id, `0-1-${T0 * 1000}`);
    assert.deepEqual([r.local_ip, r.local_port, r.remote_ip, r.remote_port, r.direction], [CLIENT, 40000, "93.184.216.34", 443, "outbound"]);
    assert.equal(r.domain, "example.com.");
    assert.equal(r.profile, "local/kids");
    assert.equal(r.scope, 4);
    assert.equal(r.external, true);
    assert.equal(r.encrypted, true);
    assert.equal(r.allowed, true);
    assert.equal(r.active, true);
    assert.equal(r.device_mac, "02:00:00:00:00:01");
    assert.equal(r.matched_by, "domain");
  });

  it("marks a connection's first record as first and its later changes as not", () => {
    const t = new ConnectionTracker(() => "default");
    const changes: Change[] = [];
    t.onChange((c) => changes.push(c));
    t.onFlow(ev({}));
    t.onFlow(ev({ type: L.EVT_UPDATE, verdict: E.VERDICT_BLOCK }));
    assert.deepEqual(changes.map((c) => [c.first, c.removed]), [[true, false], [false, false]]);
  });

  it("takes a fast-tracked connection's end and totals from the kernel, matched by its tuple", () => {
    const t = new ConnectionTracker(() => "default");
    t.onFlow(ev({ inbound: true, src: "203.0.113.5", dst: "192.168.1.20", sport: 50000, dport: 22, name: null }));
    const ok = t.onKernelEnd({ proto: 6, orig: { src: "203.0.113.5", dst: "192.168.1.20", sport: 50000, dport: 22, packets: 10, bytes: 1000 }, reply: { packets: 20, bytes: 50000 }, stop: T0 * 1000 + 5000 });
    assert.equal(ok, true);
    const r = [...t.values()][0]!;
    assert.equal(r.direction, "inbound");
    assert.equal(r.bytes_received, 1000, "inbound: what the remote initiator sent is received");
    assert.equal(r.bytes_sent, 50000);
    assert.equal(r.ended, T0 * 1000 + 5000);
    assert.equal(r.active, false);
    assert.equal(r.end_reason, "conntrack");
    assert.equal(t.onKernelEnd({ proto: 6, orig: { src: "203.0.113.5", dst: "192.168.1.20", sport: 50000, dport: 22 }, reply: {} }), false, "ended once");
  });

  it("drops ended connections from the live view after ten minutes, announcing their removal", () => {
    const t = new ConnectionTracker(() => "default");
    const removed: string[] = [];
    t.onChange((c) => c.removed && removed.push(c.rec.id));
    t.onFlow(ev({}));
    t.onFlow(ev({ type: L.EVT_END, reason: L.EVR_CLOSED, last: T0 + 2 }));
    assert.equal(t.expire(T0 * 1000 + 60_000), 0);
    assert.equal(t.expire(T0 * 1000 + 11 * 60_000), 1);
    assert.equal(removed.length, 1);
    assert.equal(t.size, 0);
  });
});
