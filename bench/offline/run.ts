// npm run bench:offline: decode+match throughput of the WASM core against its JS twin, on one
// thread and on every core through Piscina workers sharing one memory, with 10, 10k and 1M
// rules; DNS decoding against dns-packet; and the rule compiler's time and memory at 1M rules.
// Settings: BENCH_MS (measured time per case, default 2000), BENCH_PACKETS (hot mix, 4096),
// BENCH_PACKETS_COLD (cold mix, 65536),
// BENCH_RULES (comma list, default 10,10000,1000000), BENCH_THREADS (default: cores).
// Output: one JSON line per case (see the README of bench/).

import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import dnsPacket from "dns-packet";
import * as L from "../../assembly/shared/layout.js";
import { Engine, nowSeconds } from "../../src/engine/engine.js";
import { coreModule, type CoreKind } from "../../src/engine/core.js";
import { parseRuleset } from "../../src/rules/parse.js";
import { compileRuleset, type CompiledImage } from "../../src/rules/image.js";
import { makeRules } from "./rules.js";
import { buildMix, type Mix } from "./mix.js";
import { runLoop, measure, BATCH, type LoopArgs } from "./loop.js";
import type { WorkerTask } from "./worker.js";
import { emit, percentile, round } from "../lib/stats.js";

const DURATION_MS = Number(process.env.BENCH_MS ?? 2000);
const WARMUP_MS = Math.max(200, DURATION_MS / 4);
// "mix" cycles through a working set that stays in cache, as packets just copied out of an
// NFQUEUE socket are; "mix-cold" streams a mix far larger than the caches, so every packet
// header is a memory miss (a bound on the worst case, not how the live path sees packets).
const PACKETS = Number(process.env.BENCH_PACKETS ?? 4096);
const PACKETS_COLD = Number(process.env.BENCH_PACKETS_COLD ?? 65536);
const RULE_SIZES = (process.env.BENCH_RULES ?? "10,10000,1000000").split(",").map(Number);
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const IMPLS: { core: CoreKind; name: string }[] = [
  { core: "wasm", name: "wasm" },
  { core: "twin", name: "ts" },
];
const MB = 1024 * 1024;
const START_TIMEOUT_MS = 30000;

interface Placed {
  descBase: number;
  nDesc: number;
}

/** Copies packets into the engine's shared memory and writes one descriptor per packet. */
function place(engine: Engine, packets: Uint8Array[]): Placed {
  const n = Math.floor(packets.length / BATCH) * BATCH;
  const total = packets.slice(0, n).reduce((s, p) => s + p.length, 0);
  const data = engine.arena.alloc(total, 64);
  const descBase = engine.arena.alloc(n * L.DESC_SIZE, 64);
  const u8 = engine.arena.u8();
  const dv = engine.arena.view();
  let off = data;
  for (let i = 0; i < n; i++) {
    const p = packets[i]!;
    u8.set(p, off);
    dv.setUint32(descBase + i * L.DESC_SIZE + L.DESC_OFF, off, true);
    dv.setUint16(descBase + i * L.DESC_SIZE + L.DESC_LEN, p.length, true);
    off += p.length;
  }
  return { descBase, nDesc: n };
}

function row(c: string, impl: string, threads: number, rules: number, packets: number, elapsedNs: number, p999ns: number, extra: Record<string, unknown> = {}) {
  const mpps = packets / (elapsedNs / 1e3); // packets per microsecond = Mpps
  emit({
    bench: "offline",
    case: c,
    impl,
    threads,
    rules,
    mpps: round(mpps, 3),
    ns_per_packet: round(1e3 / mpps, 1),
    p999_batch_us: round(p999ns / 1e3, 1),
    ...extra,
  });
}

interface WorkArea {
  rec: number;
  results: number;
}

/** A scratch record and a batch of result slots, for each thread. */
function workAreas(engine: Engine, n: number): WorkArea[] {
  return Array.from({ length: n }, () => ({ rec: engine.arena.alloc(L.REC_SIZE), results: engine.arena.alloc(BATCH * L.RES_SIZE) }));
}

async function multi(pool: Piscina, engine: Engine, core: CoreKind, threads: number, placed: Placed, areas: WorkArea[], flags: number): Promise<{ packets: number; elapsedNs: number; p999: number }> {
  const startLine = new SharedArrayBuffer(8);
  const line = new Int32Array(startLine);
  const module = coreModule();
  const tasks = Array.from({ length: threads }, (_, t) => {
    const task: WorkerTask = {
      core,
      memory: engine.memory,
      module,
      startLine,
      warmupMs: WARMUP_MS,
      descBase: placed.descBase,
      nDesc: placed.nDesc,
      rec: areas[t]!.rec,
      results: areas[t]!.results,
      img: engine.imageOffset,
      ipd: engine.ipdom,
      now: nowSeconds(),
      flags,
      durationMs: DURATION_MS,
    };
    return pool.run(task) as Promise<{ packets: number; elapsedNs: number; p999: number }>;
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Atomics.load(line, 0) < threads) {
    if (Date.now() > deadline) throw new Error(`only ${Atomics.load(line, 0)} of ${threads} workers started`);
    await new Promise((r) => setTimeout(r, 5));
  }
  Atomics.store(line, 1, 1);
  Atomics.notify(line, 1);
  const results = await Promise.all(tasks);
  return {
    packets: results.reduce((s, r) => s + r.packets, 0),
    elapsedNs: Math.max(...results.map((r) => r.elapsedNs)),
    p999: Math.max(...results.map((r) => r.p999)),
  };
}

function compileCase(size: number): { image: CompiledImage; rules: ReturnType<typeof makeRules> } {
  const rules = makeRules(size);
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  const t0 = performance.now();
  const parsed = parseRuleset(rules.text, "bench");
  const t1 = performance.now();
  const image = compileRuleset(parsed);
  const t2 = performance.now();
  const maxAfter = process.resourceUsage().maxRSS * 1024;
  emit({
    bench: "offline",
    case: "compile",
    rules: size,
    parse_ms: round(t1 - t0, 1),
    compile_ms: round(t2 - t1, 1),
    total_ms: round(t2 - t0, 1),
    image_mb: round(image.bytes.length / MB, 2),
    peak_rss_growth_mb: round(Math.max(0, maxAfter - Math.max(maxBefore, rssBefore)) / MB, 1),
    intervals4: image.stats.intervals4,
    intervals6: image.stats.intervals6,
    domain_entries: image.stats.domainEntries,
  });
  return { image, rules };
}

async function mixCases(size: number, image: CompiledImage, mix: Mix, pool: Piscina): Promise<void> {
  for (const impl of IMPLS) {
    const engine = new Engine({ core: impl.core });
    engine.loadImage(image);
    const cold = place(engine, mix.packets);
    const placed = place(engine, mix.packets.slice(0, PACKETS));
    const areas = workAreas(engine, Math.max(THREADS, 1));
    const args: LoopArgs = {
      descBase: placed.descBase,
      nDesc: placed.nDesc,
      rec: areas[0]!.rec,
      results: areas[0]!.results,
      img: engine.imageOffset,
      ipd: engine.ipdom,
      now: nowSeconds(),
      flags: L.BF_LEARN_DNS,
      durationMs: DURATION_MS,
    };
    const one = runLoop(engine.core, args, WARMUP_MS);
    row("mix", impl.name, 1, size, one.packets, one.elapsedNs, percentile(one.batchNs, Math.min(one.batches, one.batchNs.length), 99.9), { pool: false });
    for (const t of new Set([1, THREADS])) {
      const m = await multi(pool, engine, impl.core, t, placed, areas, L.BF_LEARN_DNS);
      row("mix", impl.name, t, size, m.packets, m.elapsedNs, m.p999, { pool: true });
    }
    const c = runLoop(engine.core, { ...args, descBase: cold.descBase, nDesc: cold.nDesc }, WARMUP_MS);
    row("mix-cold", impl.name, 1, size, c.packets, c.elapsedNs, percentile(c.batchNs, Math.min(c.batches, c.batchNs.length), 99.9), { pool: false, packets: cold.nDesc });
  }
}

function dnsCases(mix: Mix): void {
  const dnsPackets = mix.dns.map((i) => mix.packets[i]!);
  for (const impl of IMPLS) {
    const engine = new Engine({ core: impl.core });
    const placed = place(engine, dnsPackets);
    const area = workAreas(engine, 1)[0]!;
    const r = runLoop(engine.core, { descBase: placed.descBase, nDesc: placed.nDesc, ...area, img: 0, ipd: 0, now: 0, flags: 0, durationMs: DURATION_MS }, WARMUP_MS);
    row("dns-decode", impl.name, 1, 0, r.packets, r.elapsedNs, percentile(r.batchNs, Math.min(r.batches, r.batchNs.length), 99.9));
  }
  // dns-packet gets the DNS message alone (already sliced): it is spared the IP/UDP headers
  // that the core decodes on top.
  const IP4_UDP = 28;
  const IP6_UDP = 48;
  const msgs = dnsPackets.map((p) => Buffer.from(p.buffer, p.byteOffset + ((p[0]! >> 4) === 4 ? IP4_UDP : IP6_UDP)));
  const n = Math.floor(msgs.length / BATCH) * BATCH;
  let sink = 0;
  const r = measure(DURATION_MS, WARMUP_MS, (b) => {
    const base = (b * BATCH) % n;
    for (let k = 0; k < BATCH; k++) sink += dnsPacket.decode(msgs[base + k]!).answers?.length ?? 0;
  });
  row("dns-decode", "dns-packet", 1, 0, r.packets, r.elapsedNs, percentile(r.batchNs, Math.min(r.batches, r.batchNs.length), 99.9), { answers_seen: sink > 0 });
}

async function main(): Promise<void> {
  const pool = new Piscina({
    filename: new URL("./worker.js", import.meta.url).href,
    minThreads: THREADS,
    maxThreads: THREADS,
    idleTimeout: 60000,
  });
  try {
    // The biggest compile first, while the process is small, so its peak RSS growth is its own.
    const sizes = [...RULE_SIZES].sort((a, b) => b - a);
    const compiled = new Map<number, { image: CompiledImage; rules: ReturnType<typeof makeRules> }>();
    for (const size of sizes) compiled.set(size, compileCase(size));
    let dnsDone = false;
    for (const size of RULE_SIZES) {
      const { image, rules } = compiled.get(size)!;
      const mix = buildMix(Math.max(PACKETS, PACKETS_COLD), rules);
      await mixCases(size, image, mix, pool);
      if (!dnsDone) {
        dnsCases(mix);
        dnsDone = true;
      }
    }
  } finally {
    await pool.destroy();
  }
}

await main();
