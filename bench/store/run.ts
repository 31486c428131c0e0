// npm run bench:store: the history store's ingest rate, query latency at 1M and 10M stored
// connections, memory per tracked connection and size on disk.
// Settings: BENCH_STORE_ROWS (comma list of stored rows, default 1000000,10000000),
// BENCH_STORE_INGEST (pushes in the ingest case, default 600000), BENCH_STORE_QUERIES (runs per
// query case, default 100), BENCH_STORE_SPAN_DAYS (history span the rows cover, default 7),
// BENCH_STORE_DIR (parent of the temporary store, default the OS temp dir).
// Output: JSON lines {"bench":"store","case":...,"value":...,"unit":...}; progress on stderr.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnRecord } from "../../src/flow/types.js";
import { HistoryStore, liveEntryOf, type HistoryOptions, type LiveEntry } from "../../src/store/index.js";
import { emit, percentile, round } from "../lib/stats.js";
import { Rng } from "../lib/rng.js";
import { ConnGen, makeUniverse, type Universe } from "./gen.js";

const ROWS = (process.env.BENCH_STORE_ROWS ?? "1000000,10000000").split(",").map(Number);
const INGEST = Number(process.env.BENCH_STORE_INGEST ?? 600_000);
const QUERIES = Number(process.env.BENCH_STORE_QUERIES ?? 100);
const SPAN_DAYS = Number(process.env.BENCH_STORE_SPAN_DAYS ?? 7);
const PARENT = process.env.BENCH_STORE_DIR ?? tmpdir();

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MB = 1024 * 1024;
const MILLION = 1_000_000;
/** The producer yields to the event loop after this many pushes (one "tick" of the flow tracker). */
const PUSHES_PER_TICK = 2000;
/** The producer waits while this many records are pending (the writer is the bottleneck then). */
const MAX_BACKLOG = 20_000;
/** Batch size used only to build the big stores for the query cases (fewer, larger transactions). */
const BUILD_BATCH = 20_000;
/** In the ingest stream, a connection's end comes up to about this many pushes after its start. */
const END_DISTANCE = 40_000;
const LIVE_ENTRIES = MILLION;
/** Rows the retention case deletes from the front of each store. */
const PRUNE_ROWS = 200_000;

const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function log(msg: string): void {
  process.stderr.write(`[bench:store] ${msg}\n`);
}

function out(kase: string, value: number, unit: string): void {
  emit({ bench: "store", case: kase, value: round(value, 3), unit });
}

function label(n: number): string {
  return n >= MILLION && n % MILLION === 0 ? `${n / MILLION}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function tempStore(opts: Partial<HistoryOptions>): { store: HistoryStore; dir: string } {
  const dir = mkdtempSync(join(PARENT, "sluice-bench-store-"));
  return { store: HistoryStore.open({ path: dir, retentionIntervalMs: 0, ...opts }), dir };
}

/** Pushes `n` records as a flow tracker would (bursts per tick, backing off while the writer is behind). */
async function feed(store: HistoryStore, n: number, recAt: (i: number) => ConnRecord): Promise<void> {
  const w = store.writer;
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + PUSHES_PER_TICK);
    for (; i < end; i++) w.push(recAt(i));
    while (w.counters.pending > MAX_BACKLOG) await tick();
    await tick();
  }
  await w.flush();
}

/** RSS and heap growth of holding LIVE_ENTRIES writer live entries in a Map keyed by id. */
function liveMemory(u: Universe): void {
  const gen = new ConnGen(u, 99);
  const t0 = Date.now();
  gc();
  gc();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const live = new Map<string, LiveEntry>();
  for (let i = 0; i < LIVE_ENTRIES; i++) {
    const r = gen.next(t0 + i, true);
    live.set(r.id, liveEntryOf(r, 1));
  }
  gc();
  gc();
  const rss = process.memoryUsage().rss - rss0;
  const heap = process.memoryUsage().heapUsed - heap0;
  out("live_entries_rss_per_1M", (rss / MB) * (MILLION / live.size), "MB");
  out("live_entries_heap_per_1M", (heap / MB) * (MILLION / live.size), "MB");
  live.clear();
  gc();
}

/** Sustained ingest through the writer in its default configuration. */
async function ingest(u: Universe): Promise<void> {
  // A realistic stream: every connection is pushed when it starts (active) and again when it ends;
  // ends follow their start by up to END_DISTANCE pushes, so some coalesce in memory and most
  // update a committed row. Generated before timing.
  const gen = new ConnGen(u, 7);
  const rng = new Rng(3);
  const conns = INGEST / 2;
  const endsAfter: ConnRecord[][] = Array.from({ length: conns }, () => []);
  const t0 = Date.now() - HOUR;
  const stream: ConnRecord[] = [];
  for (let c = 0; c < conns; c++) {
    const start = gen.next(t0 + c * 10, true);
    endsAfter[Math.min(conns - 1, c + rng.int(END_DISTANCE / 2))]!.push(gen.end(start));
    stream.push(start);
    for (const e of endsAfter[c]!) stream.push(e);
    endsAfter[c] = [];
  }
  const insertOnly: ConnRecord[] = [];
  for (let c = 0; c < conns; c++) insertOnly.push(gen.next(t0 + c * 10, false));
  gc();

  {
    const { store, dir } = tempStore({});
    const t = performance.now();
    await feed(store, stream.length, (i) => stream[i]!);
    const s = (performance.now() - t) / 1000;
    const c = store.writer.counters;
    log(`ingest: ${c.pushed} pushes -> ${c.committed} row writes in ${c.commits} commits, ${s.toFixed(2)} s, dropped ${c.dropped}`);
    out("ingest_start_and_end_records_per_s", c.pushed / s, "records/s");
    out("ingest_row_writes_per_s", c.committed / s, "rows/s");
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  gc();
  {
    const { store, dir } = tempStore({});
    const t = performance.now();
    await feed(store, insertOnly.length, (i) => insertOnly[i]!);
    const s = (performance.now() - t) / 1000;
    out("ingest_insert_only_records_per_s", insertOnly.length / s, "records/s");
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function timeIt(runs: number, fn: (i: number) => unknown): { p50: number; p99: number; last: unknown } {
  const samples = new Float64Array(runs);
  let last: unknown;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    last = fn(i);
    samples[i] = performance.now() - t;
  }
  return { p50: percentile(samples, runs, 50), p99: percentile(samples, runs, 99), last };
}

async function queries(u: Universe, rows: number): Promise<void> {
  const tag = label(rows);
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const span = SPAN_DAYS * DAY;
  const first = end - span;
  const gen = new ConnGen(u, 11);
  let { store, dir } = tempStore({ batchRecords: BUILD_BATCH });
  log(`${tag}: building ${rows} rows over ${SPAN_DAYS} days in ${dir}`);
  const t = performance.now();
  let next = 0;
  const step = span / rows;
  const progressEvery = Math.max(MILLION, Math.floor(rows / 10));
  await feed(store, rows, (i) => {
    if (i >= next) {
      log(`${tag}: ${i} rows, ${((performance.now() - t) / 1000).toFixed(0)} s`);
      next += progressEvery;
    }
    return gen.next(first + Math.floor(i * step), false);
  });
  const buildS = (performance.now() - t) / 1000;
  out(`build_records_per_s_${tag}`, rows / buildS, "records/s");
  log(`${tag}: built in ${buildS.toFixed(1)} s`);
  const disk = store.diskStats();
  out(`disk_used_bytes_per_1M_at_${tag}`, (disk.usedBytes / MB) * (MILLION / rows), "MB");
  out(`disk_file_bytes_per_1M_at_${tag}`, (disk.fileBytes / MB) * (MILLION / rows), "MB");
  // Reopen: the rollup cache starts empty, as after a restart.
  await store.close();
  store = HistoryStore.open({ path: dir, retentionIntervalMs: 0 });
  gc();

  const rng = new Rng(5);
  const day = end - DAY;
  const jitter = (): number => rng.int(10) * 60_000;

  const cold = timeIt(1, () => store.topDomains(day, end, 10));
  out(`top_domains_24h_cold_ms_${tag}`, cold.p50, "ms");
  const top = cold.last as { name: string; connections: number }[];
  log(`${tag}: top domain ${top[0]?.name} ${top[0]?.connections}`);

  let returned = 0;
  const dev = timeIt(QUERIES, () => {
    const j = jitter();
    const r = store.byDevice(u.devices[rng.int(u.devices.length)]!, end - HOUR - j, end - j, 1000);
    returned += r.length;
    return r;
  });
  log(`${tag}: device last hour: ${(returned / QUERIES).toFixed(0)} rows on average`);
  out(`device_last_hour_p50_ms_${tag}`, dev.p50, "ms");
  out(`device_last_hour_p99_ms_${tag}`, dev.p99, "ms");

  const topq = timeIt(QUERIES, () => {
    const j = jitter();
    return store.topDomains(day - j, end - j, 10);
  });
  out(`top_domains_24h_p50_ms_${tag}`, topq.p50, "ms");
  out(`top_domains_24h_p99_ms_${tag}`, topq.p99, "ms");

  const blk = timeIt(QUERIES, () => {
    const j = jitter();
    return store.blocked(day - j, end - j, 100);
  });
  out(`blocked_24h_p50_ms_${tag}`, blk.p50, "ms");
  out(`blocked_24h_p99_ms_${tag}`, blk.p99, "ms");

  const stats = timeIt(Math.max(1, QUERIES / 4), () => store.stats(60_000, day, end));
  out(`stats_24h_per_minute_p50_ms_${tag}`, stats.p50, "ms");

  // Search: fragments of popular names (found at once), one tail domain (a few rows a day, the
  // rollups rule most hours out), a name that does not exist (every hour ruled out), and a
  // remote address (IP-like text cannot use the domain rollups: a scan up to the budget).
  const common = ["google", "netflix", "cdn", "api", "static"];
  const rare = u.domains[12_345]!.split(".")[0]!;
  const ip = u.domainIps[777]![0]!;
  const cases: [string, (i: number) => string][] = [
    ["search_common", (i) => common[i % common.length]!],
    ["search_rare_domain", () => rare],
    ["search_missing", () => "no-such-name.invalid"],
    ["search_remote_ip", () => ip],
  ];
  for (const [name, term] of cases) {
    let scanned = 0;
    let found = 0;
    let incomplete = 0;
    const runs = name === "search_remote_ip" ? Math.max(3, QUERIES / 10) : QUERIES;
    const r = timeIt(runs, (i) => {
      const res = store.search(term(i), day, end, 100);
      scanned += res.scanned;
      found += res.records.length;
      if (!res.complete) incomplete++;
      return res;
    });
    log(`${tag}: ${name} "${term(0)}": ${(found / runs).toFixed(0)} found, ${(scanned / runs).toFixed(0)} rows scanned, ${incomplete} incomplete`);
    out(`${name}_24h_p50_ms_${tag}`, r.p50, "ms");
    out(`${name}_24h_p99_ms_${tag}`, r.p99, "ms");
  }
  await store.close();

  // Retention: prune the oldest PRUNE_ROWS rows in the default small transactions.
  const pruned = HistoryStore.open({ path: dir, retentionIntervalMs: 0, maxRecords: rows - PRUNE_ROWS, warmRollups: false });
  const tp = performance.now();
  const r = await pruned.cleanup();
  const ps = (performance.now() - tp) / 1000;
  log(`${tag}: retention deleted ${r.deleted} rows in ${ps.toFixed(1)} s`);
  out(`retention_prune_records_per_s_${tag}`, r.deleted / ps, "records/s");
  await pruned.close();
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const t = performance.now();
  const u = makeUniverse(1);
  liveMemory(u);
  await ingest(u);
  for (const n of ROWS) {
    gc();
    await queries(u, n);
  }
  log(`done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
