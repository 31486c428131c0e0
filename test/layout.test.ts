// assembly/shared/layout.ts against itself and against the compiled module: the WASM build
// and the JS twin were compiled from the same layout, the static data fits below the host's
// region, the record's fields (sizes from layout.ts's own comments) fit and do not overlap,
// and a decoded packet's bytes sit where the layout says.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as L from "../assembly/shared/layout.js";
import { createMemory, instantiateTwin, instantiateWasm, type Core } from "../src/engine/core.js";
import { addrBytes, tcp, udp } from "./helpers/packets.js";

const LAYOUT_SOURCE = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "assembly", "shared", "layout.ts");
const CONSTS = L as unknown as Record<string, number>;

const wasmMemory = createMemory(32);
const wasm = instantiateWasm(wasmMemory);
const twinMemory = createMemory(32);
const twin = instantiateTwin(twinMemory);

interface Field {
  name: string;
  offset: number;
  size: number;
  /** The type word in the comment (u8, u16, u32), or null for byte runs. */
  type: string | null;
}

const TYPE_SIZES: Record<string, number> = { u8: 1, u16: 2, u32: 4 };

/**
 * The fields with a `prefix` from layout.ts, each sized by its comment: "u8", "u16", "u32",
 * "<n> bytes", "<CONST> bytes" or "<CONST> <...> entries" (CONST entries of <entrySize> bytes).
 * Names without a size comment are listed in `unsized`.
 */
function fieldsFromSource(prefix: string, skip: string[], entrySize: Record<string, number> = {}): { fields: Field[]; unsized: string[] } {
  const text = readFileSync(LAYOUT_SOURCE, "utf8");
  const fields: Field[] = [];
  const unsized: string[] = [];
  const re = new RegExp(`^export const (${prefix}\\w+) = [^;]+;(?:\\s*//\\s*(.*))?$`, "gm");
  for (const m of text.matchAll(re)) {
    const name = m[1]!;
    if (skip.includes(name)) continue;
    const comment = (m[2] ?? "").trim();
    const offset = CONSTS[name];
    assert.equal(typeof offset, "number", `${name} is exported`);
    let size: number | undefined;
    let type: string | null = null;
    let mm: RegExpMatchArray | null;
    if ((mm = /^(u8|u16|u32)\b/.exec(comment))) {
      type = mm[1]!;
      size = TYPE_SIZES[type];
    } else if ((mm = /^(\d+) bytes\b/.exec(comment))) size = Number(mm[1]);
    else if ((mm = /^([A-Z_]+) bytes\b/.exec(comment))) size = CONSTS[mm[1]!];
    else if ((mm = /^([A-Z_]+) [\w ]*entries\b/.exec(comment))) size = CONSTS[mm[1]!]! * (entrySize[name] ?? NaN);
    if (size === undefined || !Number.isFinite(size)) unsized.push(name);
    else fields.push({ name, offset: offset!, size, type });
  }
  return { fields: fields.sort((a, b) => a.offset - b.offset), unsized };
}

/** Asserts fields are in [0, limit), naturally aligned, and pairwise disjoint. */
function assertDisjoint(fields: Field[], limit: number, what: string): void {
  for (const f of fields) {
    assert.ok(f.offset >= 0 && f.offset + f.size <= limit, `${f.name} [${f.offset}, ${f.offset + f.size}) lies within ${what} (${limit} bytes)`);
    if (f.type !== null) assert.equal(f.offset % f.size, 0, `${f.name} (${f.type}) at ${f.offset} is aligned`);
  }
  for (let i = 1; i < fields.length; i++) {
    const a = fields[i - 1]!;
    const b = fields[i]!;
    assert.ok(a.offset + a.size <= b.offset, `${a.name} [${a.offset}, ${a.offset + a.size}) overlaps ${b.name} at ${b.offset}`);
  }
}

describe("layout: the compiled module agrees with layout.ts", () => {
  it("gives the same layout signature from the WASM core as from the JS twin", () => {
    assert.equal(wasm.layoutSignature(), twin.layoutSignature());
  });

  it("ends the WASM core's static data at or below MEM_STATIC_END, where the host's regions begin", () => {
    const end = wasm.staticEnd();
    assert.ok(end > 0, `staticEnd() = ${end}`);
    assert.ok(end <= L.MEM_STATIC_END, `staticEnd() = ${end} <= ${L.MEM_STATIC_END}`);
  });
});

describe("layout: the decode record", () => {
  const { fields, unsized } = fieldsFromSource("REC_", ["REC_SIZE", "REC_HDR_END"], { REC_ANS: L.ANS_SIZE });

  it("pads REC_SIZE to a multiple of 64 and REC_HDR_END to a multiple of 32 (the per-packet clear works in 32-byte steps)", () => {
    assert.equal(L.REC_SIZE % 64, 0, `REC_SIZE ${L.REC_SIZE}`);
    assert.equal(L.REC_HDR_END % 32, 0, `REC_HDR_END ${L.REC_HDR_END}`);
    assert.ok(L.REC_HDR_END <= L.REC_SIZE);
  });

  it("states a size in its comment for every REC_* field", () => {
    assert.deepEqual(unsized, []);
    const exported = Object.keys(CONSTS).filter((k) => k.startsWith("REC_") && k !== "REC_SIZE" && k !== "REC_HDR_END").sort();
    assert.deepEqual(fields.map((f) => f.name).sort(), exported, "every exported REC_* field was found in the source");
  });

  it("has record fields that lie within REC_SIZE, are naturally aligned and do not overlap", () => {
    assertDisjoint(fields, L.REC_SIZE, "the record");
  });

  it("keeps every field that is cleared per packet below REC_HDR_END and every field after it above", () => {
    for (const f of fields) {
      if (f.offset < L.REC_HDR_END) assert.ok(f.offset + f.size <= L.REC_HDR_END, `${f.name} ends by REC_HDR_END`);
    }
    // The name, answers and CNAME pool follow the header; their lengths live in the header.
    assert.deepEqual(
      fields.filter((f) => f.offset >= L.REC_HDR_END).map((f) => f.name),
      ["REC_NAME", "REC_ANS", "REC_CNAMES"],
    );
  });

  it("has answer entry fields that fill ANS_SIZE without overlapping", () => {
    const { fields: ans, unsized: u } = fieldsFromSource("ANS_", ["ANS_MAX", "ANS_SIZE"]);
    assert.deepEqual(u, []);
    assertDisjoint(ans, L.ANS_SIZE, "an answer entry");
    assert.equal(ans.reduce((n, f) => n + f.size, 0), L.ANS_SIZE);
  });

  it("has descriptor and batch result fields that lie within DESC_SIZE and RES_SIZE without overlapping", () => {
    const desc = fieldsFromSource("DESC_", ["DESC_SIZE"]);
    assert.deepEqual(desc.unsized, []);
    assertDisjoint(desc.fields, L.DESC_SIZE, "a descriptor");
    const res = fieldsFromSource("RES_", ["RES_SIZE"]);
    assert.deepEqual(res.unsized, []);
    assertDisjoint(res.fields, L.RES_SIZE, "a batch result");
  });
});

describe("layout: a decoded packet's bytes sit where layout.ts says", () => {
  const REC = L.MEM_STATIC_END;
  const PKT = REC + L.REC_SIZE;

  function decodeRaw(core: Core, memory: WebAssembly.Memory, pkt: Uint8Array): { u8: Uint8Array; dv: DataView } {
    const u8 = new Uint8Array(memory.buffer);
    u8.fill(0xee, REC, REC + L.REC_SIZE);
    u8.set(pkt, PKT);
    core.decode(PKT, pkt.length, REC);
    const rec = u8.slice(REC, REC + L.REC_SIZE);
    return { u8: rec, dv: new DataView(rec.buffer) };
  }

  for (const [kind, core, memory] of [
    ["wasm", wasm, wasmMemory],
    ["twin", twin, twinMemory],
  ] as const) {
    it(`reads an IPv4 TCP packet's addresses, ports (little-endian u16) and protocol back from REC_SRC, REC_DST, REC_SPORT, REC_DPORT and REC_PROTO (${kind})`, () => {
      const { u8, dv } = decodeRaw(core, memory, tcp("10.1.2.3", "192.0.2.250", 443, undefined, 51234));
      assert.equal(u8[L.REC_IPVER], 4);
      assert.equal(u8[L.REC_PROTO], 6);
      assert.deepEqual([...u8.subarray(L.REC_SRC, L.REC_SRC + 4)], [10, 1, 2, 3]);
      assert.deepEqual([...u8.subarray(L.REC_DST, L.REC_DST + 4)], [192, 0, 2, 250]);
      assert.equal(dv.getUint16(L.REC_SPORT, true), 51234);
      assert.equal(dv.getUint16(L.REC_DPORT, true), 443);
      assert.equal(u8[L.REC_TTL], 64);
      assert.equal(dv.getUint32(L.REC_ANOMALY, true), 0);
    });

    it(`reads an IPv6 UDP packet's 16-byte addresses, ports and protocol back from the record (${kind})`, () => {
      const src = "2001:db8::1:2";
      const dst = "fd00:abcd::99";
      const { u8, dv } = decodeRaw(core, memory, udp(src, dst, 5353, new Uint8Array(4), 40123));
      assert.equal(u8[L.REC_IPVER], 6);
      assert.equal(u8[L.REC_PROTO], 17);
      assert.deepEqual([...u8.subarray(L.REC_SRC, L.REC_SRC + 16)], [...addrBytes(src)]);
      assert.deepEqual([...u8.subarray(L.REC_DST, L.REC_DST + 16)], [...addrBytes(dst)]);
      assert.equal(dv.getUint16(L.REC_SPORT, true), 40123);
      assert.equal(dv.getUint16(L.REC_DPORT, true), 5353);
      assert.equal(dv.getUint16(L.REC_L4OFF, true), 40);
      assert.equal(dv.getUint16(L.REC_PAYOFF, true), 48);
      assert.equal(dv.getUint16(L.REC_PAYLEN, true), 4);
    });
  }
});
