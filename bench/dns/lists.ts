// The DNS filter with a 1M-name block list: how long a gravity build from a local list takes,
// how much RSS it adds, how long a restart takes to rebuild from the local copy, and what a
// check() that misses costs with a handful of regexes in place.
// Run: node --expose-gc dist/bench/dns/lists.js   (BENCH_DNS_NAMES, default 1000000)
// rss_mb is the growth once the load settled; rss_peak_mb the highest RSS seen during it (the
// worker's transient arrays included), both against the RSS before opening the filter.
// Output: JSON lines {"bench":"dns","case":...}; progress on stderr.

import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { DnsFilter } from "../../src/dns/filter.js";
import { Decide } from "../../src/dns/types.js";
import { emit, round } from "../lib/stats.js";

const NAMES = Number(process.env.BENCH_DNS_NAMES ?? 1_000_000);
const QUERIES = 1_000_000;
const MB = 1024 * 1024;
/** Distinct miss names cycled through, so the loop measures lookups rather than one cached string. */
const MISS_POOL = 4096;
const A = 1;
const WRITE_SLICE = 10_000;
const RSS_SAMPLE_MS = 5;
/** Regexes in the style of popular Pi-hole regex lists, none matching the miss names. */
const REGEXES = [
  "^ad([sxv]?[0-9]*|system)[_.-]([^.[:space:]]+\\.){1,}|[_.-]ad([sxv]?[0-9]*|system)[_.-]",
  "^(.+[_.-])?adse?rv(er?|ice)?s?[0-9]*[_.-]",
  "^(.+[_.-])?telemetry[_.-]",
  "^adim(age|g)s?[0-9]*[_.-]",
  "^mads\\.",
];

function hostName(i: number): string {
  return `ad${i}.tracker${i % 997}.example${i % 13}.net`;
}

function rssMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / MB;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-dns-"));
  try {
    // Written in slices so generating the list does not itself inflate the RSS measured below.
    const listFile = join(dir, "big-hosts.txt");
    const fd = openSync(listFile, "w");
    writeSync(fd, "# a hosts-style list, like StevenBlack's but larger\n");
    for (let i = 0; i < NAMES; i += WRITE_SLICE) {
      let chunk = "";
      for (let j = i; j < Math.min(NAMES, i + WRITE_SLICE); j++) chunk += `0.0.0.0 ${hostName(j)}\n`;
      writeSync(fd, chunk);
    }
    closeSync(fd);
    const data = join(dir, "data");

    await new Promise((r) => setTimeout(r, 100));
    const rss0 = rssMb();
    const f = DnsFilter.open(data);
    f.addLists("block", [pathToFileURL(listFile).href], {});
    // The build runs on a worker thread, so the main thread is free to sample the peak.
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss() / MB)), RSS_SAMPLE_MS);
    const t0 = performance.now();
    const report = await f.update();
    const ms = performance.now() - t0;
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 100));
    const rss1 = rssMb();
    process.stderr.write(`update(): ${ms.toFixed(0)} ms total, build ${report.buildMs.toFixed(0)} ms, RSS +${(rss1 - rss0).toFixed(0)} MB (peak +${(peak - rss0).toFixed(0)} MB)\n`);
    emit({
      bench: "dns",
      case: "list_load_1m",
      ms: round(ms, 1),
      build_ms: round(report.buildMs, 1),
      rss_mb: round(rss1 - rss0, 1),
      rss_peak_mb: round(peak - rss0, 1),
      domains: report.domains,
    });

    // The same list again: the old sets stay live until the new ones are swapped in.
    await new Promise((r) => setTimeout(r, 100));
    const rss2 = rssMb();
    let peak2 = rss2;
    const sampler2 = setInterval(() => (peak2 = Math.max(peak2, process.memoryUsage.rss() / MB)), RSS_SAMPLE_MS);
    f.putList("block", pathToFileURL(listFile).href, { groups: [0, 1] });
    await f.idle();
    clearInterval(sampler2);
    emit({ bench: "dns", case: "list_rebuild_1m", rss_peak_mb: round(peak2 - rss0, 1), rss_mb: round(rssMb() - rss0, 1) });

    const t1 = performance.now();
    const g = DnsFilter.open(data);
    const openMs = performance.now() - t1;
    emit({ bench: "dns", case: "open_from_copy_1m", ms: round(openMs, 1), domains: g.counts().gravity });

    const misses: string[] = [];
    for (let i = 0; i < MISS_POOL; i++) misses.push(`www${i}.shop${i % 101}.example${i % 7}.org`);
    const hits: string[] = [];
    for (let i = 0; i < MISS_POOL; i++) hits.push(hostName((i * 7919) % NAMES));
    const measure = (kind: string, pool: string[], want: number, regexes: number): void => {
      for (let i = 0; i < MISS_POOL; i++) g.check(pool[i]!, A, 0);
      const t = performance.now();
      let agree = 0;
      for (let i = 0; i < QUERIES; i++) if (g.check(pool[i & (MISS_POOL - 1)]!, A, 0) === want) agree++;
      const ns = ((performance.now() - t) * 1e6) / QUERIES;
      if (agree !== QUERIES) throw new Error(`check ${kind}: ${QUERIES - agree} unexpected decisions`);
      emit({ bench: "dns", case: `check_${kind}_1m`, ns: round(ns, 0), regexes });
    };
    measure("miss", misses, Decide.NONE, 0);
    for (const r of REGEXES) g.addDomains("deny", "regex", [r], {});
    measure("miss", misses, Decide.NONE, REGEXES.length);
    measure("hit", hits, Decide.DENY_LIST, REGEXES.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
