// The packet path with connection recording off and on, in one run: the WASM core's batch loop
// over the offline mix (10k rules) without a flow table, then with one (tracking, events into a
// ring that a stand-in consumer empties after every batch, as the main thread does). Rounds
// alternate off/on so drift on this shared machine hits both. Target: within 5%.
//   {"bench":"store","case":"packet-path-recording-off|on|ratio","value":x,"unit":"Mpps|ratio"}

import * as L from "../../assembly/shared/layout.js";
import { Engine, nowSeconds } from "../../src/engine/engine.js";
import { parseRuleset } from "../../src/rules/parse.js";
import { compileRuleset } from "../../src/rules/image.js";
import { flowRegionSize } from "../../src/flow/ring.js";
import { makeRules } from "./rules.js";
import { buildMix } from "./mix.js";
import { measure, BATCH } from "./loop.js";
import { emit, round } from "../lib/stats.js";

const RULES = 10_000;
/** Distinct packets walked round-robin: a connection's packets recur, as in real traffic. */
const PACKETS = Number(process.env.BENCH_PACKETS_COLD ?? 65536);
const ROUNDS = 4;
const ROUND_MS = Number(process.env.BENCH_MS ?? 1500);
const BUCKETS = 4096;
const RING = 8192;

const rules = makeRules(RULES);
const engine = new Engine({ core: "wasm" });
engine.loadImage(compileRuleset(parseRuleset(rules.text, "bench")));
const mix = buildMix(PACKETS, rules);
const n = Math.floor(mix.packets.length / BATCH) * BATCH;
const total = mix.packets.slice(0, n).reduce((s, p) => s + p.length, 0);
const data = engine.arena.alloc(total, 64);
const descBase = engine.arena.alloc(n * L.DESC_SIZE, 64);
const rec = engine.arena.alloc(L.REC_SIZE);
const results = engine.arena.alloc(BATCH * L.RES_SIZE);
const ft = engine.arena.alloc(flowRegionSize(BUCKETS, RING));
engine.core.flowInit(ft, BUCKETS, RING, 0);
{
  const u8 = engine.arena.u8();
  const dv = engine.arena.view();
  let off = data;
  for (let i = 0; i < n; i++) {
    const p = mix.packets[i]!;
    u8.set(p, off);
    dv.setUint32(descBase + i * L.DESC_SIZE + L.DESC_OFF, off, true);
    dv.setUint16(descBase + i * L.DESC_SIZE + L.DESC_LEN, p.length, true);
    off += p.length;
  }
}
const i32 = new Int32Array(engine.memory.buffer);
const ring = ft + new DataView(engine.memory.buffer).getUint32(ft + L.FT_RING, true);
const headIdx = (ring + L.RG_HEAD) >> 2;
const tailIdx = (ring + L.RG_TAIL) >> 2;
const nBatches = n / BATCH;
const now = nowSeconds();
/** As the gateway runs by default (BENCH_FLAGS overrides, e.g. 3 = without waiting for names). */
const flagsOn = Number(process.env.BENCH_FLAGS ?? L.BF_LEARN_DNS | L.BF_TRACK_FAST | L.BF_WAIT_NAME);

function run(flow: number): number {
  const r = measure(ROUND_MS, ROUND_MS / 4, (i) => {
    engine.core.processBatch(descBase + (i % nBatches) * BATCH * L.DESC_SIZE, BATCH, rec, results, engine.imageOffset, engine.ipdom, now, flow ? flagsOn : L.BF_LEARN_DNS, flow);
    if (flow) Atomics.store(i32, tailIdx, Atomics.load(i32, headIdx)); // the consumer keeps up
  });
  return r.packets / (r.elapsedNs / 1e9) / 1e6;
}

const off: number[] = [];
const on: number[] = [];
for (let k = 0; k < ROUNDS; k++) {
  off.push(run(0));
  on.push(run(ft));
}
const best = (a: number[]) => Math.max(...a);
emit({ bench: "store", case: "packet-path-recording-off", value: round(best(off), 3), unit: "Mpps", rounds: off.map((x) => round(x, 3)) });
emit({ bench: "store", case: "packet-path-recording-on", value: round(best(on), 3), unit: "Mpps", rounds: on.map((x) => round(x, 3)) });
emit({ bench: "store", case: "packet-path-recording-ratio", value: round(best(on) / best(off), 3), unit: "ratio", target: 0.95 });
const dv = new DataView(engine.memory.buffer);
process.stderr.write(`recording bench: flows live ${dv.getUint32(ft + L.FT_LIVE, true)}, evicted ${dv.getUint32(ft + L.FT_EVICTED, true)}, ring dropped ${dv.getUint32(ring + L.RG_DROPPED, true)}\n`);
