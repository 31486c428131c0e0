// The DNS query log (src/dns/querylog.ts): how fast record() takes queries, what a held query costs
// in memory, how fast they reach LMDB through the history store's writer, and what the Pi-hole
// reads and a restart's reload cost with the ring full.
//
// Traffic is skewed like a real LAN's resolver load: Zipf-popular domains over a universe, a long
// tail of names seen once (CDN shards, random probes), a few hundred clients, A/AAAA/HTTPS mostly,
// about 15% blocked, a third answered from the cache, three upstreams. Inputs are generated before
// timing starts; record() is timed in ticks of TICK queries with a yield between ticks, the way a
// resolver calls it from its socket handler.
//
// Run: node --expose-gc dist/bench/dns/querylog.js
// Settings: BENCH_QLOG_QUERIES (default 2000000), BENCH_QLOG_CAPACITY (ring, default 500000),
// BENCH_QLOG_DOMAINS (universe, default 100000), BENCH_QLOG_RATE (simulated queries/s, which sets
// how many ten-minute slots the counters span; default 200), BENCH_STORE_DIR (parent of the
// temporary store, default the OS temp dir).
// Output: JSON lines {"bench":"dns","case":...}; progress on stderr.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QueryLog, RING_BYTES_PER_QUERY } from "../../src/dns/querylog.js";
import { QueryStatus, ReplyType } from "../../src/dns/types.js";
import { HistoryStore } from "../../src/store/index.js";
import { Rng, sampleRank, zipfTable } from "../lib/rng.js";
import { emit, round } from "../lib/stats.js";

const QUERIES = Number(process.env.BENCH_QLOG_QUERIES ?? 2_000_000);
const CAPACITY = Number(process.env.BENCH_QLOG_CAPACITY ?? 500_000);
const DOMAINS = Number(process.env.BENCH_QLOG_DOMAINS ?? 100_000);
const RATE = Number(process.env.BENCH_QLOG_RATE ?? 200);
const PARENT = process.env.BENCH_STORE_DIR ?? tmpdir();

const CLIENTS = 300;
const ZIPF_S = 1.0;
/** Share of queries for a name never seen before (long tail). */
const UNIQUE_SHARE = 0.05;
const CNAME_SHARE = 0.03;
const NXDOMAIN_SHARE = 0.08;
/** Distinct CNAME targets. */
const CNAMES = 500;
/** record() calls per event-loop turn. */
const TICK = 10_000;
/** Reads timed per read case. */
const READS = 20;
const T_START = Date.UTC(2024, 5, 1);
const A = 1;
const AAAA = 28;
const HTTPS = 65;
const TXT = 16;
const PTR = 12;
const UPSTREAMS = ["1.1.1.1#53", "9.9.9.9#53", "[2606:4700:4700::1111]:53"];
const WORDS = ["api", "cdn", "img", "static", "video", "mail", "push", "telemetry", "ads", "metrics", "update", "time", "shop", "news"];
const TLDS = ["com", "net", "org", "io", "de", "tv"];

const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function log(msg: string): void {
  process.stderr.write(`[bench:dns] ${msg}\n`);
}

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function heapBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** The queries to replay, as columns (strings shared from pools, except the unique tail). */
interface Inputs {
  n: number;
  time: Float64Array;
  client: string[];
  domain: string[];
  qtype: Uint16Array;
  status: Uint8Array;
  reply: Uint8Array;
  replyMs: Float32Array;
  upstream: (string | null)[];
  listId: Int32Array;
  cname: (string | null)[];
}


/**
 * A flat copy of a string. Template literals build V8 cons-strings (a node per part); a resolver's
 * names come flat out of the packet decoder, so the log should be charged for flat strings.
 */
function flat(s: string): string {
  return Buffer.from(s, "latin1").toString("latin1");
}

function generate(n: number, seed: number): Inputs {
  const rng = new Rng(seed);
  const u = (): number => rng.u32() / 0x100000000;
  const domains: string[] = [];
  for (let d = 0; d < DOMAINS; d++) domains.push(flat(`${rng.pick(WORDS)}${d}.${rng.pick(WORDS)}.${rng.pick(TLDS)}`));
  const clients: string[] = [];
  for (let c = 0; c < CLIENTS; c++) clients.push(flat(`192.168.${c >> 8}.${c & 255}`));
  const cnames: string[] = [];
  for (let c = 0; c < CNAMES; c++) cnames.push(flat(`edge${c}.cdn.net`));
  const dCum = zipfTable(DOMAINS, ZIPF_S);
  const cCum = zipfTable(CLIENTS, ZIPF_S);
  const inp: Inputs = {
    n,
    time: new Float64Array(n),
    client: new Array<string>(n),
    domain: new Array<string>(n),
    qtype: new Uint16Array(n),
    status: new Uint8Array(n),
    reply: new Uint8Array(n),
    replyMs: new Float32Array(n),
    upstream: new Array<string | null>(n),
    listId: new Int32Array(n),
    cname: new Array<string | null>(n),
  };
  for (let i = 0; i < n; i++) {
    inp.time[i] = T_START + (i * 1000) / RATE;
    inp.client[i] = clients[sampleRank(cCum, u())]!;
    const fresh = rng.chance(UNIQUE_SHARE);
    const domain = fresh ? flat(`r${i.toString(36)}-${rng.u32().toString(36)}.shard.${rng.pick(TLDS)}`) : domains[sampleRank(dCum, u())]!;
    inp.domain[i] = domain;
    const t = u();
    inp.qtype[i] = t < 0.55 ? A : t < 0.85 ? AAAA : t < 0.95 ? HTTPS : t < 0.98 ? PTR : TXT;
    const s = u();
    let status: QueryStatus;
    if (s < 0.1) status = QueryStatus.GRAVITY;
    else if (s < 0.12) status = QueryStatus.REGEX;
    else if (s < 0.13) status = QueryStatus.DENYLIST;
    else if (s < 0.45) status = QueryStatus.CACHE;
    else if (s < 0.47) status = QueryStatus.CACHE_STALE;
    else if (s < 0.99) status = QueryStatus.FORWARDED;
    else status = QueryStatus.FAILED;
    inp.status[i] = status;
    const blocked = status === QueryStatus.GRAVITY || status === QueryStatus.REGEX || status === QueryStatus.DENYLIST;
    if (blocked) inp.reply[i] = ReplyType.BLOB;
    else if (status === QueryStatus.FAILED) inp.reply[i] = ReplyType.SERVFAIL;
    else inp.reply[i] = rng.chance(NXDOMAIN_SHARE) ? ReplyType.NXDOMAIN : ReplyType.IP;
    const forwarded = status === QueryStatus.FORWARDED || status === QueryStatus.FAILED;
    inp.replyMs[i] = forwarded ? 5 + u() * 60 : u() * 0.2;
    inp.upstream[i] = forwarded ? UPSTREAMS[rng.int(UPSTREAMS.length)]! : null;
    inp.listId[i] = status === QueryStatus.GRAVITY ? 1 + rng.int(5) : -1;
    inp.cname[i] = !blocked && rng.chance(CNAME_SHARE) ? cnames[rng.int(CNAMES)]! : null;
  }
  return inp;
}

/** Records every input, TICK per turn; returns the ms spent inside record() loops. */
async function replay(q: QueryLog, inp: Inputs): Promise<number> {
  let ms = 0;
  const { time, client, domain, qtype, status, reply, replyMs, upstream, listId, cname } = inp;
  for (let i = 0; i < inp.n; ) {
    const end = Math.min(inp.n, i + TICK);
    const t0 = performance.now();
    for (; i < end; i++) {
      q.record(time[i]!, client[i]!, domain[i]!, qtype[i]!, status[i]!, reply[i]!, replyMs[i]!, upstream[i]!, listId[i]!, cname[i]!);
    }
    ms += performance.now() - t0;
    await tick();
  }
  return ms;
}

function timeMs(fn: () => unknown): number {
  fn(); // warm
  const t0 = performance.now();
  for (let i = 0; i < READS; i++) fn();
  return (performance.now() - t0) / READS;
}

/** The Pi-hole reads with the ring full, ms each. */
function reads(q: QueryLog): Record<string, number> {
  return {
    summary: timeMs(() => q.summary()),
    top_domains: timeMs(() => q.topDomains(false, 10)),
    history_clients: timeMs(() => q.historyClients(10)),
    queries_page: timeMs(() => q.queries({ length: 100 })),
    queries_wildcard_full_scan: timeMs(() => q.queries({ domain: "*.shard.*", length: 100 })),
  };
}

async function memoryCase(): Promise<void> {
  const base = heapBytes();
  // Held through one object so the inputs can be dropped before measuring.
  const held: { inp: Inputs | null; q: QueryLog | null } = { inp: generate(QUERIES, 7), q: null };
  const lastTime = held.inp!.time[QUERIES - 1]!;
  const now = (): number => lastTime;
  log(`generated ${QUERIES} queries over ${round((lastTime - T_START) / 3_600_000, 2)} h simulated`);
  held.q = new QueryLog({ capacity: CAPACITY, now });
  const ms = await replay(held.q, held.inp!);
  const perS = (QUERIES / ms) * 1000;
  const timings = reads(held.q);
  const c = held.q.counters;

  // What the log retains: the heap with only the log alive, minus the heap before the inputs were
  // made (strings the log shares with the inputs are charged to the log).
  held.inp = null;
  const retained = heapBytes() - base;
  const perQuery = retained / CAPACITY;
  // Beyond the fixed ring columns, memory follows the distinct names held (ring and 24 h counters).
  const perName = (retained - RING_BYTES_PER_QUERY * CAPACITY) / Math.max(1, c.internDomains + c.internClients);
  emit({
    bench: "dns",
    case: "querylog_record",
    per_s: Math.round(perS),
    bytes_per_query: round(perQuery, 1),
    ring_column_bytes_per_query: RING_BYTES_PER_QUERY,
    bytes_per_held_name: round(perName, 1),
    queries: QUERIES,
    capacity: CAPACITY,
    intern_domains: c.internDomains,
    domains_unranked: c.domainsUnranked,
  });
  for (const [k, v] of Object.entries(timings)) emit({ bench: "dns", case: `querylog_read_${k}`, ms: round(v, 3) });
}

async function persistCase(): Promise<void> {
  const inp = generate(QUERIES, 11);
  const lastTime = inp.time[QUERIES - 1]!;
  const now = (): number => lastTime;
  const dir = mkdtempSync(join(PARENT, "sluice-bench-qlog-"));
  try {
    let store = HistoryStore.open({ path: dir, retentionIntervalMs: 0, warmRollups: false, now });
    let q = new QueryLog({ capacity: CAPACITY, store, now });
    const t0 = performance.now();
    const recordMs = await replay(q, inp);
    await q.flush();
    const wall = performance.now() - t0;
    const w = store.writer.counters;
    const disk = store.diskStats();
    emit({
      bench: "dns",
      case: "querylog_persist",
      per_s: Math.round((QUERIES / wall) * 1000),
      record_per_s: Math.round((QUERIES / recordMs) * 1000),
      disk_bytes_per_query: round(disk.queryLogBytes / Math.max(1, disk.queryLogRows), 1),
      rows: disk.queryLogRows,
      blocks: w.queryBlocks,
      dropped: w.queryRowsDropped + q.counters.diskLost,
    });
    await q.close();
    await store.close();

    // A restart: reopen, and read the last 24 h back into the counters and the ring.
    store = HistoryStore.open({ path: dir, retentionIntervalMs: 0, warmRollups: false, now });
    const l0 = performance.now();
    q = new QueryLog({ capacity: CAPACITY, store, now });
    const loadMs = performance.now() - l0;
    const c = q.counters;
    emit({
      bench: "dns",
      case: "querylog_load",
      ms: round(loadMs, 1),
      rows: c.loadedRows,
      per_s: Math.round((c.loadedRows / loadMs) * 1000),
      complete: c.loadComplete,
    });
    const dq = q;
    emit({ bench: "dns", case: "querylog_read_disk_page", ms: round(timeMs(() => dq.queries({ disk: true, length: 100 })), 3) });
    emit({
      bench: "dns",
      case: "querylog_read_disk_filtered_1h",
      ms: round(timeMs(() => dq.queries({ disk: true, domain: "*.shard.*", from: (lastTime - 3_600_000) / 1000, length: 100 })), 3),
    });
    await q.close();
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!(globalThis as { gc?: unknown }).gc) log("run with --expose-gc for a meaningful bytes_per_query");
  await memoryCase();
  await persistCase();
}

void main();
