// Property tests for the packet core: whatever bytes arrive, the decoder and matcher neither
// trap nor read outside the packet nor allocate, and the JS twin writes exactly the record the
// WASM build writes. Inputs are random byte strings and mutations (truncation, bit flips, byte
// overwrites) of every pcap fixture packet and of the test packet builders. Every fast-check
// run has a fixed seed, so a failure reproduces as it was reported.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import * as L from "../assembly/shared/layout.js";
import * as E from "../assembly/shared/events.js";
import { coreModule, createMemory, instantiateTwin, instantiateWasm, type Core } from "../src/engine/core.js";
import { parseRuleset } from "../src/rules/parse.js";
import { compileRuleset } from "../src/rules/image.js";
import { readPcap } from "./helpers/pcap.js";
import { fixtureCases, fixturePath } from "./helpers/fixtures.js";
import { PROTO, dnsQuery, dnsResponse, httpRequest, icmp, packet, tcp, tlsClientHello, udp, DNS_AAAA } from "./helpers/packets.js";

const WAT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "sluice.wat");

// ## A core on a memory laid out by hand
//
//   MEM_STATIC_END  records (BATCH_MAX x REC_SIZE)
//   DESCS           descriptors (BATCH_MAX x DESC_SIZE)
//   RESULTS         batch results (BATCH_MAX x RES_SIZE)
//   IPD             IP -> domain table (IPD_SETS sets)
//   IMG             rule image
//   MID             a packet with GUARD random bytes either side of it
//   end - n         packets that end exactly where the memory ends: reading one byte past traps

/** The module's declared minimum (asconfig initialMemory): 2 MiB. */
const PAGES = 32;
const BATCH_MAX = 32;
const RECS = L.MEM_STATIC_END;
const DESCS = 0x20000;
const RESULTS = 0x21000;
const IPD = 0x30000;
const IPD_SETS = 64;
const IPD_BYTES = L.IPD_HDR_SIZE + IPD_SETS * (L.IPD_SET_TAGS + L.IPD_WAYS * L.IPD_ENTRY_SIZE);
const IMG = 0x50000;
const MID = 0x100000;
const GUARD = 2048;
const MAX_RANDOM = 1600;
const NOW = 1_700_000_000;

const REC_FIELDS: [string, number][] = Object.entries(L)
  .filter(([k]) => k.startsWith("REC_") && k !== "REC_SIZE" && k !== "REC_HDR_END")
  .map(([k, v]) => [k, v as number] as [string, number])
  .sort((a, b) => a[1] - b[1]);

/** The record field holding byte `off` (the last field starting at or before it). */
function fieldAt(off: number): string {
  let name = "?";
  for (const [k, v] of REC_FIELDS) if (v <= off) name = k;
  return `${name}+${off - (L as unknown as Record<string, number>)[name]!}`;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  assert.fail(`${what}: differ first at byte ${i}: ${actual[i]} vs ${expected[i]}`);
}

/** Asserts two records are byte-identical; the message names the first field that differs. */
function sameRecord(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength))) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  assert.fail(`${what}: records differ first at byte ${i} (${fieldAt(i)}): ${actual[i]} vs ${expected[i]}`);
}

/** xorshift32: cheap deterministic filler for the bytes around a packet. */
function fillRandom(u8: Uint8Array, from: number, to: number, seed: number): void {
  let x = seed | 0 || 0x9e3779b9;
  for (let i = from; i < to; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    u8[i] = x & 0xff;
  }
}

class Lab {
  readonly memory: WebAssembly.Memory;
  readonly core: Core;
  readonly u8: Uint8Array;
  readonly size: number;

  constructor(kind: "wasm" | "twin") {
    this.memory = createMemory(PAGES);
    this.core = kind === "wasm" ? instantiateWasm(this.memory) : instantiateTwin(this.memory);
    this.u8 = new Uint8Array(this.memory.buffer);
    this.size = this.memory.buffer.byteLength;
    this.resetIpdom();
  }

  private decodeAt(off: number, pkt: Uint8Array): Uint8Array {
    this.u8.fill(0, RECS, RECS + L.REC_SIZE);
    this.u8.set(pkt, off);
    try {
      this.core.decode(off, pkt.length, RECS);
    } catch (err) {
      assert.fail(`${this.core.kind} decode threw ${String(err)} on packet ${hex(pkt)}`);
    }
    return this.u8.slice(RECS, RECS + L.REC_SIZE);
  }

  /** Decodes with the packet's last byte at the last byte of memory; returns a copy of the record. */
  decodeAtEnd(pkt: Uint8Array): Uint8Array {
    return this.decodeAt(this.size - pkt.length, pkt);
  }

  /** Decodes at MID with the GUARD bytes before and after the packet set to `before` / `after`. */
  decodeSurrounded(pkt: Uint8Array, before: Uint8Array, after: Uint8Array): Uint8Array {
    this.u8.set(before, MID - GUARD);
    this.u8.set(after, MID + pkt.length);
    return this.decodeAt(MID, pkt);
  }

  loadImage(bytes: Uint8Array): void {
    this.u8.set(bytes, IMG);
  }

  /** Lays the packets end to end, the last one ending at the end of memory, with a descriptor each. */
  private place(batch: BatchPacket[]): void {
    const dv = new DataView(this.memory.buffer);
    let off = this.size - batch.reduce((n, b) => n + b.data.length, 0);
    batch.forEach((b, i) => {
      const d = DESCS + i * L.DESC_SIZE;
      this.u8.set(b.data, off);
      dv.setUint32(d + L.DESC_OFF, off, true);
      dv.setUint16(d + L.DESC_LEN, b.data.length, true);
      dv.setUint16(d + L.DESC_FLAGS, (b.inbound ? L.DF_INBOUND : 0) | (b.mac ? L.DF_HAS_MAC : 0), true);
      this.u8.fill(0, d + L.DESC_MAC, d + L.DESC_SIZE);
      if (b.mac) this.u8.set(b.mac, d + L.DESC_MAC);
      off += b.data.length;
    });
  }

  private processBatch(desc: number, n: number, rec: number, results: number, img: number, flags: number, batch: BatchPacket[]): void {
    try {
      this.core.processBatch(desc, n, rec, results, img, IPD, NOW, flags, 0);
    } catch (err) {
      assert.fail(`${this.core.kind} processBatch threw ${String(err)} on packets ${batch.map((b) => hex(b.data)).join(", ")}`);
    }
  }

  /**
   * One processBatch call over the whole batch (one scratch record, a result per packet);
   * scratch record and results are pre-filled with 0xee. Returns copies of the results and of
   * the scratch record (which holds the last packet).
   */
  batch(batch: BatchPacket[], img: number, flags: number): { results: Uint8Array; last: Uint8Array } {
    this.place(batch);
    this.u8.fill(0xee, RECS, RECS + L.REC_SIZE);
    this.u8.fill(0xee, RESULTS, RESULTS + batch.length * L.RES_SIZE);
    this.processBatch(DESCS, batch.length, RECS, RESULTS, img, flags, batch);
    return { results: this.u8.slice(RESULTS, RESULTS + batch.length * L.RES_SIZE), last: this.u8.slice(RECS, RECS + L.REC_SIZE) };
  }

  /**
   * processBatch over one packet at a time, each into a record of its own (pre-filled with
   * 0xee), so every packet's whole record can be looked at. Returns copies of the records.
   */
  batchRecords(batch: BatchPacket[], img: number, flags: number): Uint8Array[] {
    this.place(batch);
    this.u8.fill(0xee, RECS, RECS + batch.length * L.REC_SIZE);
    return batch.map((_, i) => {
      const rec = RECS + i * L.REC_SIZE;
      this.processBatch(DESCS + i * L.DESC_SIZE, 1, rec, RESULTS + i * L.RES_SIZE, img, flags, batch);
      return this.u8.slice(rec, rec + L.REC_SIZE);
    });
  }

  ipdomTable(): Uint8Array {
    return this.u8.slice(IPD, IPD + IPD_BYTES);
  }

  /** An empty IP -> domain table again (what earlier batches learned is forgotten). */
  resetIpdom(): void {
    this.u8.fill(0, IPD, IPD + IPD_BYTES);
    this.core.ipdomInit(IPD, IPD_SETS);
  }
}

// One of each, for the whole file: the twin is one per thread (module state), so it gets its
// own memory and every packet is copied into both.
const wasm = new Lab("wasm");
const twin = new Lab("twin");

// ## Inputs

interface Sample {
  from: string;
  data: Uint8Array;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

function builderPackets(): Sample[] {
  const v4 = ["10.77.1.2", "10.77.2.2"] as const;
  const v6 = ["fd77:1::2", "fd77:2::2"] as const;
  const dnsTcp = (q: Uint8Array) => concat(Uint8Array.of(q.length >> 8, q.length & 0xff), q);
  const quicInitial = concat(Uint8Array.of(0xc3, 0, 0, 0, 1, 8), new Uint8Array(8).fill(0x5e), Uint8Array.of(0), new Uint8Array(40));
  const out: Sample[] = [];
  for (const [src, dst] of [v4, v6]) {
    const fam = src.includes(":") ? "v6" : "v4";
    const add = (name: string, data: Uint8Array) => out.push({ from: `builder ${name} ${fam}`, data });
    add("tcp syn", tcp(src, dst, 443));
    add("http get", tcp(src, dst, 80, httpRequest("www.example.test:8080")));
    add("http get ipv6 literal", tcp(src, dst, 8080, httpRequest("[fd77:2::2]:8080")));
    add("tls clienthello", tcp(src, dst, 443, tlsClientHello("www.example.test")));
    add("dns query", udp(src, dst, 53, dnsQuery("www.example.test")));
    add("dns aaaa response", udp(dst, src, 40000, dnsResponse("www.example.test", [{ addr: "fd77:2::2" }, { addr: "2001:db8::7" }]), 53));
    add("dns a response", udp(dst, src, 40000, dnsResponse("ads.example", [{ addr: "10.77.2.9" }, { addr: "93.184.216.34", ttl: 5 }]), 53));
    add("dns over tcp", tcp(src, dst, 53, dnsTcp(dnsQuery("www.example.test", DNS_AAAA))));
    add("quic initial", udp(src, dst, 443, quicInitial));
    add("icmp echo", icmp(src, dst));
    add("sctp", packet({ src, dst, proto: PROTO.sctp, sport: 5000, dport: 5001, payload: new Uint8Array(16) }));
    add("gre", packet({ src, dst, proto: PROTO.gre, payload: new Uint8Array(24).fill(0x45) }));
    const inner = udp(src, dst, 33434, new Uint8Array(8));
    add(
      "icmp port unreachable",
      packet({ src: dst, dst: src, proto: fam === "v4" ? PROTO.icmp : PROTO.icmpv6, icmpType: fam === "v4" ? 3 : 1, icmpCode: fam === "v4" ? 3 : 4, payload: inner }),
    );
  }
  return out;
}

const CORPUS: Sample[] = [
  ...fixtureCases().flatMap((c) => readPcap(fixturePath(c)).map((p) => ({ from: `${c} frame ${p.frame}`, data: p.data }))),
  ...builderPackets(),
];

const sampleArb = fc.constantFrom(...CORPUS);

const randomBytes = fc.uint8Array({ minLength: 0, maxLength: MAX_RANDOM }).map((data) => ({ from: "random", data }));

const truncated = fc.tuple(sampleArb, fc.nat()).map(([s, n]) => {
  const len = n % (s.data.length + 1);
  return { from: `${s.from} cut to ${len}`, data: s.data.slice(0, len) };
});

const flipped = fc.tuple(sampleArb, fc.array(fc.nat(), { minLength: 1, maxLength: 16 })).map(([s, bits]) => {
  const data = s.data.slice();
  if (data.length > 0) for (const b of bits) data[(b >> 3) % data.length] ^= 1 << (b & 7);
  return { from: `${s.from} with bits flipped`, data };
});

const overwritten = fc
  .tuple(sampleArb, fc.array(fc.tuple(fc.nat({ max: 79 }), fc.nat({ max: 255 })), { minLength: 1, maxLength: 12 }))
  .map(([s, writes]) => {
    const data = s.data.slice();
    for (const [pos, v] of writes) if (pos < data.length) data[pos] = v;
    return { from: `${s.from} with bytes overwritten`, data };
  });

/** Overwritten and then cut: a broken header that also ends early. */
const overwrittenAndCut = fc.tuple(overwritten, fc.nat()).map(([s, n]) => ({ from: `${s.from}, cut`, data: s.data.slice(0, n % (s.data.length + 1)) }));

const anyPacket = fc.oneof(randomBytes, truncated, flipped, overwritten, overwrittenAndCut);

interface BatchPacket {
  data: Uint8Array;
  inbound: boolean;
  mac: Uint8Array | null;
}

const MACS = [Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff), Uint8Array.of(0x02, 0, 0, 0, 0, 1)];

const batchArb = fc.array(
  fc.record({
    data: anyPacket.map((s) => s.data),
    inbound: fc.boolean(),
    mac: fc.oneof(fc.constant(null), fc.constantFrom(...MACS), fc.uint8Array({ minLength: 6, maxLength: 6 })),
  }),
  { minLength: 1, maxLength: BATCH_MAX },
);

// ## A small rule image: domain, subdomain, tree, IP, CIDR and `*` rules, three profiles bound
// by source address and MAC, every default verdict (ask falls back to drop).
const RULES = [
  "fallback drop",
  "default allow",
  "- ads.example",
  "+ *.example.test TCP/443",
  "- www.example.test UDP",
  "+ .example.test",
  "- 10.77.2.0/24 TCP/80",
  "+ 10.77.0.0/16",
  "- fd77:2::/64 UDP/53",
  "- 93.184.216.34",
  "- * UDP/5353",
  "- 2001:db8::/32",
  "[profile kids]",
  "default block",
  "source 10.77.1.0/24",
  "source fd77:1::/64",
  "source aa:bb:cc:dd:ee:ff",
  "+ .example.test TCP",
  "- 10.77.2.9",
  "- *",
  "[profile iot]",
  "default ask",
  "source 192.168.1.200",
  "source 02:00:00:00:00:01",
  "- * TCP/23",
  "+ 192.168.0.0/16",
].join("\n");
const IMAGE = compileRuleset(parseRuleset(RULES));
assert.ok(IMG + IMAGE.bytes.length <= MID - GUARD, "the rule image fits below the packet area");
wasm.loadImage(IMAGE.bytes);
twin.loadImage(IMAGE.bytes);

describe("decoder properties: no traps", () => {
  it("decodes every prefix of every fixture and builder packet on the WASM core without trapping", () => {
    let decoded = 0;
    for (const s of CORPUS) {
      for (let len = 0; len <= s.data.length; len++) {
        const pkt = s.data.subarray(0, len);
        try {
          wasm.decodeAtEnd(pkt);
        } catch (err) {
          assert.fail(`${s.from} cut to ${len} bytes: ${String(err)}`);
        }
        decoded++;
      }
    }
    assert.ok(decoded > 10_000, `${decoded} prefixes decoded`);
  });

  it("decodes random byte strings of 0 to 1600 bytes on the WASM core without trapping", () => {
    fc.assert(fc.property(randomBytes, (s) => void wasm.decodeAtEnd(s.data)), { seed: 42, numRuns: 3000 });
  });

  it("decodes fixture and builder packets cut at random lengths on the WASM core without trapping", () => {
    fc.assert(fc.property(truncated, (s) => void wasm.decodeAtEnd(s.data)), { seed: 43, numRuns: 2000 });
  });

  it("decodes fixture and builder packets with random bit flips on the WASM core without trapping", () => {
    fc.assert(fc.property(flipped, (s) => void wasm.decodeAtEnd(s.data)), { seed: 44, numRuns: 3000 });
  });

  it("decodes fixture and builder packets with random bytes overwritten in their first 80 bytes on the WASM core without trapping", () => {
    fc.assert(fc.property(fc.oneof(overwritten, overwrittenAndCut), (s) => void wasm.decodeAtEnd(s.data)), { seed: 45, numRuns: 3000 });
  });
});

describe("decoder properties: no reads outside the packet", () => {
  // Packets placed to end at the last byte of memory: a read past the end traps (above). Here
  // the packet sits inside memory between random bytes; a read before it or past its end
  // would make the record depend on those bytes.
  const guards = [0x1234567, 0x7654321, 0x2468ace, 0x13579bd].map((seed) => {
    const g = new Uint8Array(GUARD);
    fillRandom(g, 0, GUARD, seed);
    return g;
  });

  it("writes the same record for every prefix of every fixture and builder packet whatever bytes surround it", () => {
    for (const s of CORPUS) {
      for (let len = 0; len <= s.data.length; len++) {
        const pkt = s.data.subarray(0, len);
        const atEnd = wasm.decodeAtEnd(pkt);
        const what = `${s.from} cut to ${len} bytes`;
        sameRecord(wasm.decodeSurrounded(pkt, guards[0]!, guards[1]!), atEnd, `${what}, surrounded by random bytes A`);
        sameRecord(wasm.decodeSurrounded(pkt, guards[2]!, guards[3]!), atEnd, `${what}, surrounded by random bytes B`);
      }
    }
  });

  it("writes the same record for random and mutated packets whatever bytes surround them", () => {
    const before = new Uint8Array(GUARD);
    const after = new Uint8Array(GUARD);
    fc.assert(
      fc.property(anyPacket, fc.integer(), fc.integer(), (s, seedA, seedB) => {
        const atEnd = wasm.decodeAtEnd(s.data);
        fillRandom(before, 0, GUARD, seedA);
        fillRandom(after, 0, GUARD, ~seedA);
        const a = wasm.decodeSurrounded(s.data, before, after);
        fillRandom(before, 0, GUARD, seedB ^ 0x55555555);
        fillRandom(after, 0, GUARD, ~seedB);
        const b = wasm.decodeSurrounded(s.data, before, after);
        sameRecord(a, b, `${s.from}: two different surroundings`);
        sameRecord(a, atEnd, `${s.from}: surrounded vs at the end of memory`);
      }),
      { seed: 46, numRuns: 2000 },
    );
  });
});

describe("decoder properties: no allocation", () => {
  const wat = readFileSync(WAT, "utf8");

  it("has no call to an allocator (__new, __alloc, __renew) in the release module's text", () => {
    const calls = wat.match(/\b(?:call|return_call)\s+\$\S*(?:__new|__alloc|__renew)\b/g) ?? [];
    assert.deepEqual(calls, []);
    assert.doesNotMatch(wat, /\$~lib\/rt\//, "no runtime (rt) functions are compiled in");
  });

  it("has no memory.grow in the release module's text", () => {
    assert.doesNotMatch(wat, /memory\.grow/);
  });

  it("imports nothing but the memory, so it cannot call out to grow or allocate", () => {
    assert.deepEqual(WebAssembly.Module.imports(coreModule()), [{ module: "env", name: "memory", kind: "memory" }]);
  });

  it("leaves the memory size unchanged after decoding and matching thousands of random packets", () => {
    const before = [wasm.memory.buffer.byteLength, twin.memory.buffer.byteLength];
    let packets = 0;
    fc.assert(
      fc.property(batchArb, (batch) => {
        for (const b of batch) wasm.decodeAtEnd(b.data);
        wasm.batch(batch, IMG, L.BF_LEARN_DNS);
        wasm.batchRecords(batch, IMG, L.BF_LEARN_DNS);
        wasm.batch(batch, 0, 0);
        packets += batch.length;
      }),
      { seed: 47, numRuns: 500 },
    );
    assert.ok(packets >= 2000, `${packets} packets`);
    assert.deepEqual([wasm.memory.buffer.byteLength, twin.memory.buffer.byteLength], before);
  });
});

describe("decoder properties: the JS twin agrees with the WASM core", () => {
  it("writes byte-identical records for every prefix of every fixture and builder packet", () => {
    for (const s of CORPUS) {
      for (let len = 0; len <= s.data.length; len++) {
        const pkt = s.data.subarray(0, len);
        sameRecord(twin.decodeAtEnd(pkt), wasm.decodeAtEnd(pkt), `${s.from} cut to ${len} bytes: twin vs wasm`);
      }
    }
  });

  it("writes byte-identical records for random and mutated packets", () => {
    fc.assert(
      fc.property(anyPacket, (s) => sameRecord(twin.decodeAtEnd(s.data), wasm.decodeAtEnd(s.data), `${s.from}: twin vs wasm`)),
      { seed: 48, numRuns: 4000 },
    );
  });

  it("writes byte-identical records and IP -> domain tables when batches of random packets are decoded and matched", () => {
    // Both tables start empty and then learn from the same batches in the same order.
    wasm.resetIpdom();
    twin.resetIpdom();
    fc.assert(
      fc.property(batchArb, (batch) => {
        const w = wasm.batch(batch, IMG, L.BF_LEARN_DNS);
        const t = twin.batch(batch, IMG, L.BF_LEARN_DNS);
        sameBytes(t.results, w.results, "batch results: twin vs wasm");
        sameRecord(t.last, w.last, `scratch record after the batch (last packet ${hex(batch[batch.length - 1]!.data)}): twin vs wasm`);
        const wr = wasm.batchRecords(batch, IMG, L.BF_LEARN_DNS);
        const tr = twin.batchRecords(batch, IMG, L.BF_LEARN_DNS);
        batch.forEach((b, i) => sameRecord(tr[i]!, wr[i]!, `packet ${i} of the batch (${hex(b.data)}) alone: twin vs wasm`));
        sameBytes(twin.ipdomTable(), wasm.ipdomTable(), "IP -> domain table: twin vs wasm");
      }),
      { seed: 49, numRuns: 300 },
    );
  });
});

describe("matcher properties: every packet gets a verdict", () => {
  const verdicts = new Set([E.VERDICT_ACCEPT, E.VERDICT_BLOCK, E.VERDICT_DROP]);

  it("writes accept, block or drop, a profile in range and a real rule or none into every result and record of batches of random packets", () => {
    const seen = new Set<number>();
    const deciders = new Set<number>();
    fc.assert(
      fc.property(batchArb, (batch) => {
        const check = (what: string, verdict: number, profile: number, rule: number) => {
          assert.ok(verdicts.has(verdict), `${what}: verdict ${verdict}`);
          assert.ok(profile < IMAGE.profiles.length, `${what}: profile ${profile}`);
          assert.ok(rule === E.NO_RULE || rule < IMAGE.rules.length, `${what}: rule ${rule}`);
          seen.add(verdict);
        };
        const { results, last } = wasm.batch(batch, IMG, L.BF_LEARN_DNS);
        const rv = new DataView(results.buffer);
        batch.forEach((b, i) => {
          const r = i * L.RES_SIZE;
          check(`result ${i} (${hex(b.data)})`, results[r + L.RES_VERDICT]!, rv.getUint16(r + L.RES_PROFILE, true), rv.getUint32(r + L.RES_RULE, true));
          deciders.add(results[r + L.RES_MATCHBY]!);
        });
        assert.equal(last[L.REC_VERDICT], results[(batch.length - 1) * L.RES_SIZE + L.RES_VERDICT], "the scratch record holds the last packet's verdict");
        wasm.batchRecords(batch, IMG, L.BF_LEARN_DNS).forEach((rec, i) => {
          const dv = new DataView(rec.buffer);
          check(`record ${i} (${hex(batch[i]!.data)})`, rec[L.REC_VERDICT]!, dv.getUint16(L.REC_PROFILE, true), dv.getUint32(L.REC_RULE, true));
        });
      }),
      { seed: 50, numRuns: 400 },
    );
    assert.deepEqual([...seen].sort(), [...verdicts].sort(), "the image and inputs reach all three verdicts");
    assert.deepEqual(
      [...deciders].sort(),
      [E.MB_DEFAULT, E.MB_IP, E.MB_DOMAIN, E.MB_IPDOM].sort(),
      "the inputs are decided by defaults, IP rules, domain rules on carried names and on learned names",
    );
  });
});
