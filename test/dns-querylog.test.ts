// The DNS query log: Pi-hole's statistics (summary, top lists, 10-minute history, upstreams)
// after a known mix of queries, the 24 h window on an injected clock, the query log's filters,
// paging and cursor, the ring's eviction and interning, and persistence through the history
// store's writer (written, read back after reopening, pruned by age, cleared).

import { strict as assert } from "node:assert";
import { runAndKill } from "./helpers/crash.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { QueryLog, SLOT_MS, SLOTS, type QueryLogOptions } from "../src/dns/querylog.js";
import { DnsInputError, QUERY_STATUS_NAMES, QueryStatus, REPLY_TYPE_NAMES, ReplyType, type QueryRow } from "../src/dns/types.js";
import { HistoryStore, decodeQueryBlock, qlogRowsOf, type HistoryOptions } from "../src/store/index.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Slot-aligned (a multiple of 10 minutes): 2024-01-01T12:00:00Z. */
const T0 = Date.UTC(2024, 0, 1, 12);
const A = 1;
const AAAA = 28;
const HTTPS = 65;
const TYPE99 = 99;
const NO_LIST = -1;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function openStore(opts: Partial<HistoryOptions> = {}, path?: string): HistoryStore {
  const p = path ?? mkdtempSync(join(tmpdir(), "sluice-qlog-"));
  if (!path) dirs.push(p);
  return HistoryStore.open({ path: p, retentionIntervalMs: 0, batchMs: 5, warmRollups: false, ...opts });
}

class Clock {
  constructor(public t: number) {}
  readonly now = (): number => this.t;
}

function newLog(clock: Clock, opts: Partial<QueryLogOptions> = {}): QueryLog {
  return new QueryLog({ now: clock.now, ...opts });
}

/**
 * The known mix, all within the first minute of T0's slot:
 *   3x example.com A       10.0.0.1  FORWARDED  IP        via 1.1.1.1#53 (10, 20, 30 ms)
 *   2x ads.tracker.net A   10.0.0.2  GRAVITY    BLOB      list 7
 *   1x example.com AAAA    10.0.0.2  CACHE      IP
 *   1x weird.org TYPE99    10.0.0.3  CACHE_STALE NXDOMAIN
 *   1x regex.bad HTTPS     10.0.0.1  REGEX      NXDOMAIN
 */
function recordMix(log: QueryLog, t = T0): void {
  log.record(t + 1000, "10.0.0.1", "example.com", A, QueryStatus.FORWARDED, ReplyType.IP, 10, "1.1.1.1#53", NO_LIST, null);
  log.record(t + 2000, "10.0.0.1", "example.com", A, QueryStatus.FORWARDED, ReplyType.IP, 20, "1.1.1.1#53", NO_LIST, null);
  log.record(t + 3000, "10.0.0.1", "example.com", A, QueryStatus.FORWARDED, ReplyType.IP, 30, "1.1.1.1#53", NO_LIST, null);
  log.record(t + 4000, "10.0.0.2", "ads.tracker.net", A, QueryStatus.GRAVITY, ReplyType.BLOB, 0, null, 7, null);
  log.record(t + 5000, "10.0.0.2", "ads.tracker.net", A, QueryStatus.GRAVITY, ReplyType.BLOB, 0, null, 7, null);
  log.record(t + 6000, "10.0.0.2", "example.com", AAAA, QueryStatus.CACHE, ReplyType.IP, 0.5, null, NO_LIST, null);
  log.record(t + 7000, "10.0.0.3", "weird.org", TYPE99, QueryStatus.CACHE_STALE, ReplyType.NXDOMAIN, 0.5, null, NO_LIST, null);
  log.record(t + 8000, "10.0.0.1", "regex.bad", HTTPS, QueryStatus.REGEX, ReplyType.NXDOMAIN, 0, null, NO_LIST, null);
}

function roundStats<T extends { upstreams: { statistics: { response: number; variance: number } }[] }>(u: T): T {
  for (const e of u.upstreams) {
    e.statistics.response = Number(e.statistics.response.toFixed(9));
    e.statistics.variance = Number(e.statistics.variance.toFixed(9));
  }
  return u;
}

function ids(rows: QueryRow[]): number[] {
  return rows.map((r) => r.id);
}

describe("query log statistics", () => {
  test("summary counts a known mix by status, type and reply, with Pi-hole's keys", () => {
    const clock = new Clock(T0 + 5 * MIN);
    const log = newLog(clock);
    recordMix(log);
    const s = log.summary();
    assert.equal(s.queries.total, 8);
    assert.equal(s.queries.blocked, 3);
    assert.equal(s.queries.percent_blocked, 37.5);
    assert.equal(s.queries.unique_domains, 4);
    assert.equal(s.queries.forwarded, 3);
    assert.equal(s.queries.cached, 2);
    assert.deepEqual(Object.keys(s.queries.types), [
      "A", "AAAA", "ANY", "SRV", "SOA", "PTR", "TXT", "NAPTR", "MX", "DS", "RRSIG", "DNSKEY", "NS", "SVCB", "HTTPS", "OTHER",
    ]);
    assert.equal(s.queries.types.A, 5);
    assert.equal(s.queries.types.AAAA, 1);
    assert.equal(s.queries.types.HTTPS, 1);
    assert.equal(s.queries.types.OTHER, 1);
    assert.equal(s.queries.types.MX, 0);
    assert.deepEqual(Object.keys(s.queries.status), [...QUERY_STATUS_NAMES]);
    assert.equal(s.queries.status.FORWARDED, 3);
    assert.equal(s.queries.status.GRAVITY, 2);
    assert.equal(s.queries.status.CACHE, 1);
    assert.equal(s.queries.status.CACHE_STALE, 1);
    assert.equal(s.queries.status.REGEX, 1);
    assert.equal(s.queries.status.UNKNOWN, 0);
    assert.deepEqual(Object.keys(s.queries.replies), [...REPLY_TYPE_NAMES]);
    assert.equal(s.queries.replies.IP, 4);
    assert.equal(s.queries.replies.BLOB, 2);
    assert.equal(s.queries.replies.NXDOMAIN, 2);
    assert.deepEqual(s.clients, { active: 3, total: 3 });
    // 8 queries over the last ten minutes, counted up to now: 9 whole minutes (540 s) behind the current one.
    assert.ok(Math.abs(s.queries.frequency - 8 / 540) < 1e-9, `frequency ${s.queries.frequency}`);
  });

  test("top domains rank permitted and blocked queries separately", () => {
    const clock = new Clock(T0 + 5 * MIN);
    const log = newLog(clock);
    recordMix(log);
    log.record(T0 + 9000, "10.0.0.4", "mixed.com", A, QueryStatus.FORWARDED, ReplyType.IP, 5, "9.9.9.9#53", NO_LIST, null);
    log.record(T0 + 9100, "10.0.0.4", "mixed.com", A, QueryStatus.FORWARDED, ReplyType.IP, 5, "9.9.9.9#53", NO_LIST, null);
    log.record(T0 + 9200, "10.0.0.4", "mixed.com", A, QueryStatus.DENYLIST, ReplyType.BLOB, 0, null, NO_LIST, null);
    const permitted = log.topDomains(false, 10);
    assert.deepEqual(permitted.domains, [
      { domain: "example.com", count: 4 },
      { domain: "mixed.com", count: 2 },
      { domain: "weird.org", count: 1 },
    ]);
    assert.equal(permitted.total_queries, 11);
    assert.equal(permitted.blocked_queries, 4);
    const blocked = log.topDomains(true, 10);
    assert.deepEqual(blocked.domains, [
      { domain: "ads.tracker.net", count: 2 },
      { domain: "mixed.com", count: 1 },
      { domain: "regex.bad", count: 1 },
    ]);
    assert.deepEqual(log.topDomains(true, 1).domains, [{ domain: "ads.tracker.net", count: 2 }]);
    assert.deepEqual(log.topDomains(false, 0).domains, []);
  });

  test("top clients rank by all queries or by blocked queries, with names from the resolver", () => {
    const clock = new Clock(T0 + 5 * MIN);
    const names = new Map([["10.0.0.1", "laptop"]]);
    const log = newLog(clock, { clientName: (ip) => names.get(ip) ?? null });
    recordMix(log);
    assert.deepEqual(log.topClients(false, 10).clients, [
      { name: "laptop", ip: "10.0.0.1", count: 4 },
      { name: null, ip: "10.0.0.2", count: 3 },
      { name: null, ip: "10.0.0.3", count: 1 },
    ]);
    assert.deepEqual(log.topClients(true, 10).clients, [
      { name: null, ip: "10.0.0.2", count: 2 },
      { name: "laptop", ip: "10.0.0.1", count: 1 },
    ]);
    const rows = log.queries({ client_name: "lap*" }).queries;
    assert.deepEqual(ids(rows), [8, 3, 2, 1]);
    assert.equal(rows[0]!.client.name, "laptop");
  });

  test("history puts queries in ten-minute slots stamped at their middle and drops them after 24 hours", () => {
    const clock = new Clock(T0);
    const log = newLog(clock);
    log.record(T0 + SLOT_MS - 1, "10.0.0.1", "a.com", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    log.record(T0 + SLOT_MS, "10.0.0.1", "b.com", A, QueryStatus.FORWARDED, ReplyType.IP, 3, "1.1.1.1#53", NO_LIST, null);
    log.record(T0 + SLOT_MS + 1, "10.0.0.2", "c.com", A, QueryStatus.GRAVITY, ReplyType.BLOB, 0, null, 1, null);
    const h = log.history(T0 + SLOT_MS + 1);
    assert.equal(h.length, SLOTS);
    const last = h[SLOTS - 1]!;
    const prev = h[SLOTS - 2]!;
    assert.deepEqual(last, { timestamp: (T0 + SLOT_MS + SLOT_MS / 2) / 1000, total: 2, cached: 0, blocked: 1, forwarded: 1 });
    assert.deepEqual(prev, { timestamp: (T0 + SLOT_MS / 2) / 1000, total: 1, cached: 1, blocked: 0, forwarded: 0 });
    assert.equal(h[0]!.timestamp, last.timestamp - (SLOTS - 1) * 600);
    for (let i = 0; i < SLOTS - 2; i++) assert.equal(h[i]!.total, 0);

    // T0's slot is the oldest one still shown 144 slots later, and gone one slot after that.
    assert.equal(log.summary(T0 + 144 * SLOT_MS).queries.total, 3);
    assert.equal(log.history(T0 + 144 * SLOT_MS)[0]!.total, 1);
    assert.equal(log.summary(T0 + 145 * SLOT_MS).queries.total, 2);
    const later = log.summary(T0 + 146 * SLOT_MS);
    assert.equal(later.queries.total, 0);
    assert.equal(later.clients.active, 0);
    assert.equal(later.clients.total, 2, "clients seen earlier still count in the total");
    // Domains expire by the hour, as FTL's hourly garbage collection drops queries: T0's hour
    // stays while any of it is inside the window, and goes once the window starts at 13:00.
    assert.equal(later.queries.unique_domains, 3);
    clock.t = T0 + 146 * SLOT_MS;
    assert.deepEqual(log.topDomains(false, 10).domains.map((d) => d.domain), ["a.com", "b.com"]);
    assert.deepEqual(log.topDomains(true, 10).domains.map((d) => d.domain), ["c.com"]);
    assert.deepEqual(log.topClients(false, 10).clients, []);
    assert.equal(log.summary(T0 + 149 * SLOT_MS).queries.unique_domains, 3);
    assert.equal(log.summary(T0 + 150 * SLOT_MS).queries.unique_domains, 0);
    clock.t = T0 + 150 * SLOT_MS;
    assert.deepEqual(log.topDomains(false, 10).domains, []);
    assert.deepEqual(log.topDomains(true, 10).domains, []);

    // A query already older than the window is kept in the log but counted nowhere.
    log.record(T0, "10.0.0.1", "old.com", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    assert.equal(log.summary().queries.total, 0);
    assert.equal(log.counters.statsLate, 1);
    assert.equal(log.queries({}).queries[0]!.domain, "old.com");
  });

  test("queries logged late count in their own slot and hour, merged with the names already there", () => {
    const clock = new Clock(T0);
    const log = newLog(clock);
    const rec = (t: number, client: string, domain: string): void =>
      log.record(t, client, domain, A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    // 11:50-12:00 holds x.com twice from .1; then the clock crosses into the next slot (and hour)
    // and answers for queries that arrived just before the boundary come in.
    rec(T0 - 20_000, "10.0.0.1", "x.com");
    rec(T0 - 10_000, "10.0.0.1", "x.com");
    rec(T0 + 1000, "10.0.0.2", "y.com");
    rec(T0 - 5000, "10.0.0.1", "x.com");
    rec(T0 - 4000, "10.0.0.2", "x.com");
    rec(T0 + 2000, "10.0.0.1", "x.com");
    const h = log.history(T0 + 3000);
    assert.deepEqual([h[SLOTS - 2]!.total, h[SLOTS - 1]!.total], [4, 2]);
    const hc = log.historyClients(0, T0 + 3000);
    assert.deepEqual(hc.history[SLOTS - 2]!.data, { "10.0.0.1": 3, "10.0.0.2": 1, others: 0 });
    assert.deepEqual(hc.history[SLOTS - 1]!.data, { "10.0.0.1": 1, "10.0.0.2": 1, others: 0 });
    clock.t = T0 + 3000;
    assert.deepEqual(log.topDomains(false, 10).domains, [
      { domain: "x.com", count: 5 },
      { domain: "y.com", count: 1 },
    ]);
    // When the 11:00 hour leaves the window, exactly its four x.com queries go with it.
    clock.t = T0 + DAY + SLOT_MS;
    assert.deepEqual(log.topDomains(false, 10).domains, [
      { domain: "x.com", count: 1 },
      { domain: "y.com", count: 1 },
    ]);
  });

  test("history/clients names the busiest clients per slot and sums the rest as others", () => {
    const clock = new Clock(T0 + SLOT_MS + 1);
    const log = newLog(clock);
    const counts: [string, number][] = [["10.0.0.1", 5], ["10.0.0.2", 3], ["10.0.0.3", 2], ["10.0.0.4", 1]];
    for (const [ip, n] of counts) {
      for (let i = 0; i < n; i++) {
        // Even queries in T0's slot, odd ones in the next.
        const t = i % 2 === 0 ? T0 + i : T0 + SLOT_MS + i;
        log.record(t, ip, "x.com", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
      }
    }
    const top = log.historyClients(3);
    assert.deepEqual(top.clients, {
      "10.0.0.1": { name: null, total: 5 },
      "10.0.0.2": { name: null, total: 3 },
      others: { name: "other clients", total: 3 },
    });
    assert.equal(top.history.length, SLOTS);
    assert.deepEqual(top.history[SLOTS - 2]!.data, { "10.0.0.1": 3, "10.0.0.2": 2, others: 2 });
    assert.deepEqual(top.history[SLOTS - 1]!.data, { "10.0.0.1": 2, "10.0.0.2": 1, others: 1 });
    assert.deepEqual(top.history[0]!.data, { "10.0.0.1": 0, "10.0.0.2": 0, others: 0 });

    const all = log.historyClients(0);
    assert.deepEqual(Object.keys(all.clients).sort(), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    assert.deepEqual(all.history[SLOTS - 2]!.data, { "10.0.0.1": 3, "10.0.0.2": 2, "10.0.0.3": 1, "10.0.0.4": 1, others: 0 });
  });

  test("upstreams lists the blocklist and cache pseudo-upstreams, then upstreams by count with response statistics", () => {
    const clock = new Clock(T0 + 5 * MIN);
    const log = newLog(clock);
    recordMix(log);
    log.record(T0 + 9000, "10.0.0.4", "v6.com", AAAA, QueryStatus.FORWARDED, ReplyType.IP, 40, "[2620:fe::fe]:53", NO_LIST, null);
    const u = log.upstreams();
    assert.equal(u.total_queries, 9);
    assert.equal(u.forwarded_queries, 4);
    assert.deepEqual(u.upstreams.slice(0, 2), [
      { ip: "blocklist", name: "blocklist", port: -1, count: 3, statistics: { response: 0, variance: 0 } },
      { ip: "cache", name: "cache", port: -1, count: 2, statistics: { response: 0, variance: 0 } },
    ]);
    const cf = u.upstreams[2]!;
    assert.deepEqual([cf.ip, cf.port, cf.count], ["1.1.1.1", 53, 3]);
    assert.ok(Math.abs(cf.statistics.response - 0.02) < 1e-9);
    // Uncertainty of the mean of 10/20/30 ms: sqrt(((0.01)^2 + 0 + (0.01)^2) / 3 / 2).
    assert.ok(Math.abs(cf.statistics.variance - Math.sqrt(0.0002 / 6)) < 1e-9, `variance ${cf.statistics.variance}`);
    const q9 = u.upstreams[3]!;
    assert.deepEqual([q9.ip, q9.port, q9.count, q9.statistics.variance], ["2620:fe::fe", 53, 1, 0]);
    assert.ok(Math.abs(q9.statistics.response - 0.04) < 1e-6);
  });

  test("recent blocked lists the newest blocked domains first", () => {
    const log = newLog(new Clock(T0 + 5 * MIN));
    recordMix(log);
    assert.deepEqual(log.recentBlocked(1), ["regex.bad"]);
    assert.deepEqual(log.recentBlocked(5), ["regex.bad", "ads.tracker.net", "ads.tracker.net"]);
  });
});

describe("query log filters and paging", () => {
  test("rows come newest first in Pi-hole's shape", () => {
    const log = newLog(new Clock(T0 + 5 * MIN));
    recordMix(log);
    const cname = "tracker.cdn.net";
    log.record(T0 + 9000, "10.0.0.5", "blocked-by-cname.com", A, QueryStatus.GRAVITY_CNAME, ReplyType.BLOB, 12.5, "1.1.1.1#53", 3, cname);
    const r = log.queries({});
    assert.deepEqual(ids(r.queries), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
    assert.equal(r.cursor, 9);
    assert.equal(r.recordsTotal, 9);
    assert.equal(r.recordsFiltered, 9);
    assert.deepEqual(r.queries[0], {
      id: 9,
      time: (T0 + 9000) / 1000,
      type: "A",
      domain: "blocked-by-cname.com",
      cname: "tracker.cdn.net",
      status: "GRAVITY_CNAME",
      client: { ip: "10.0.0.5", name: null },
      dnssec: "UNKNOWN",
      reply: { type: "BLOB", time: 0.0125 },
      list_id: 3,
      upstream: "1.1.1.1#53",
      ede: { code: -1, text: null },
    });
    const other = r.queries.find((q) => q.domain === "weird.org")!;
    assert.equal(other.type, "TYPE99");
    assert.equal(other.list_id, null);
    assert.equal(other.upstream, null);
    assert.equal(other.cname, null);
  });

  test("exact and wildcard filters on domain, client and upstream, and exact type, status and reply", () => {
    const log = newLog(new Clock(T0 + 5 * MIN));
    recordMix(log);
    const q = (f: Parameters<QueryLog["queries"]>[0]): number[] => {
      const r = log.queries(f);
      assert.equal(r.recordsFiltered, r.queries.length);
      assert.equal(r.recordsTotal, 8);
      return ids(r.queries);
    };
    assert.deepEqual(q({ domain: "example.com" }), [6, 3, 2, 1]);
    assert.deepEqual(q({ domain: "EXAMPLE.com" }), [6, 3, 2, 1]);
    assert.deepEqual(q({ domain: "example" }), []);
    assert.deepEqual(q({ domain: "*.tracker.*" }), [5, 4]);
    assert.deepEqual(q({ domain: "*e*.*" }), [8, 7, 6, 5, 4, 3, 2, 1]);
    assert.deepEqual(q({ client_ip: "10.0.0.2" }), [6, 5, 4]);
    assert.equal(q({ client_ip: "10.0.0.*" }).length, 8);
    assert.deepEqual(q({ client_ip: "*.3" }), [7]);
    assert.deepEqual(q({ upstream: "1.1.1.1#53" }), [3, 2, 1]);
    assert.deepEqual(q({ upstream: "1.1.*" }), [3, 2, 1]);
    assert.deepEqual(q({ upstream: "blocklist" }), [8, 5, 4]);
    assert.deepEqual(q({ upstream: "cache" }), [7, 6]);
    assert.deepEqual(q({ upstream: "permitted" }), [7, 6, 3, 2, 1]);
    assert.deepEqual(q({ type: "AAAA" }), [6]);
    assert.deepEqual(q({ type: "https" }), [8]);
    assert.deepEqual(q({ type: "OTHER" }), [7]);
    assert.deepEqual(q({ type: "TYPE99" }), [7]);
    assert.deepEqual(q({ status: "GRAVITY" }), [5, 4]);
    assert.deepEqual(q({ reply: "NXDOMAIN" }), [8, 7]);
    assert.deepEqual(q({ status: "GRAVITY", upstream: "cache" }), []);
    assert.deepEqual(q({ client_ip: "10.0.0.1", type: "A", reply: "IP" }), [3, 2, 1]);
    // from inclusive, until exclusive (unix seconds).
    assert.deepEqual(q({ from: (T0 + 2000) / 1000, until: (T0 + 4000) / 1000 }), [3, 2]);
    assert.deepEqual(q({ from: (T0 + 8000) / 1000 }), [8]);
  });

  test("unknown type, status and reply names are refused as bad requests", () => {
    const log = newLog(new Clock(T0));
    for (const f of [{ type: "AXFRX" }, { status: "BLOCKED" }, { reply: "OK" }]) {
      assert.throws(
        () => log.queries(f),
        (e: unknown) => e instanceof DnsInputError && e.key === "bad_request",
      );
    }
  });

  test("start and length page through the matches", () => {
    const log = newLog(new Clock(T0));
    for (let i = 0; i < 30; i++) log.record(T0 + i, "10.0.0.1", `d${i}.com`, A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    assert.equal(log.queries({}).queries.length, 30);
    assert.deepEqual(ids(log.queries({ start: 5, length: 3 }).queries), [25, 24, 23]);
    assert.deepEqual(ids(log.queries({ start: 28, length: 10 }).queries), [2, 1]);
    assert.equal(log.queries({ length: 0 }).queries.length, 0);
    assert.equal(log.queries({ length: -1 }).queries.length, 30);
  });

  test("a cursor freezes the snapshot so new queries do not shift the pages", () => {
    const log = newLog(new Clock(T0));
    const rec = (i: number): void =>
      log.record(T0 + i, "10.0.0.1", `d${i}.com`, A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    for (let i = 1; i <= 250; i++) rec(i);
    const first = log.queries({ length: 100 });
    assert.equal(first.cursor, 250);
    assert.deepEqual(ids(first.queries).slice(0, 2), [250, 249]);
    for (let i = 251; i <= 300; i++) rec(i);
    const second = log.queries({ cursor: first.cursor!, start: 100, length: 100 });
    assert.equal(second.cursor, 250);
    assert.deepEqual([second.queries[0]!.id, second.queries.at(-1)!.id], [150, 51]);
    assert.equal(second.recordsFiltered, 250);
    assert.equal(second.recordsTotal, 300);
    assert.equal(log.queries({ length: 1 }).queries[0]!.id, 300);
    assert.equal(log.queries({ length: 1 }).cursor, 300);
  });

  test("a cursor above the newest id is refused as invalid", () => {
    const log = newLog(new Clock(T0));
    recordMix(log);
    assert.equal(log.queries({ cursor: 8 }).queries.length, 8);
    for (const cursor of [9, -1, 2.5]) {
      assert.throws(
        () => log.queries({ cursor }),
        (e: unknown) => e instanceof DnsInputError && e.key === "bad_request" && e.message === "Requested cursor is invalid",
      );
    }
  });
});

describe("query log memory", () => {
  test("the ring evicts the oldest queries while ids keep counting and statistics keep everything", () => {
    const log = newLog(new Clock(T0), { capacity: 100 });
    for (let i = 1; i <= 250; i++) {
      log.record(T0 + i, "10.0.0.1", `d${i % 7}.com`, A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    }
    const r = log.queries({ length: -1 });
    assert.equal(r.recordsTotal, 100);
    assert.equal(r.queries.length, 100);
    assert.deepEqual([r.queries[0]!.id, r.queries.at(-1)!.id], [250, 151]);
    assert.equal(r.queries.at(-1)!.domain, `d${151 % 7}.com`);
    assert.equal(log.counters.evicted, 150);
    assert.equal(log.counters.held, 100);
    assert.equal(log.summary().queries.total, 250);
    // A cursor that predates the ring is valid; it just has nothing left in memory.
    assert.deepEqual(log.queries({ cursor: 100 }).queries, []);
  });

  test("interned strings are released once no row and no slot refers to them", () => {
    const clock = new Clock(T0);
    const capacity = 1000;
    const slotCap = 50;
    const log = newLog(clock, { capacity, maxHourDomains: slotCap, maxSlotClients: slotCap });
    const distinct = 20_000;
    for (let i = 0; i < distinct; i++) {
      // One per second: ~33 ten-minute slots.
      const client = `10.1.${i >> 8}.${i & 255}`;
      log.record(T0 + i * 1000, client, `host${i}.example`, A, QueryStatus.FORWARDED, ReplyType.IP, 1, "1.1.1.1#53", NO_LIST, null);
    }
    const slots = Math.ceil((distinct * 1000) / SLOT_MS);
    const hours = Math.ceil((distinct * 1000) / HOUR);
    const c = log.counters;
    assert.ok(c.internDomains <= capacity + hours * slotCap, `domains interned: ${c.internDomains}`);
    assert.ok(c.internClients <= capacity + slots * slotCap, `clients interned: ${c.internClients}`);
    assert.ok(c.domainsUnranked > 0, "queries beyond the per-hour cap are counted as unranked");
    assert.ok(c.clientsUnranked > 0, "queries beyond the per-slot cap are counted as unranked");
    const s = log.summary(T0 + distinct * 1000);
    assert.equal(s.queries.total, distinct, "every query counts in the totals");
    assert.equal(s.queries.unique_domains, hours * slotCap);
    assert.equal(s.clients.active, slots * slotCap);

    // A day (and the hour buckets' hour) later, after the ring has been refilled with one name,
    // nothing else is left.
    clock.t = T0 + distinct * 1000 + DAY + HOUR + SLOT_MS;
    for (let i = 0; i < capacity; i++) {
      log.record(clock.t + i, "10.9.9.9", "only.example", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    }
    const after = log.counters;
    assert.equal(after.internDomains, 1);
    assert.equal(after.internClients, 1);
    assert.equal(after.internUpstreams, 0);
  });
});

describe("query log persistence", () => {
  function recordVariety(log: QueryLog, n: number, t0: number): void {
    const statuses = [QueryStatus.FORWARDED, QueryStatus.CACHE, QueryStatus.GRAVITY, QueryStatus.REGEX_CNAME, QueryStatus.CACHE_STALE];
    for (let i = 0; i < n; i++) {
      const st = statuses[i % statuses.length]!;
      const blocked = st === QueryStatus.GRAVITY || st === QueryStatus.REGEX_CNAME;
      log.record(
        t0 + i * 1000,
        `192.168.1.${i % 13}`,
        `site${i % 37}.example.org`,
        i % 3 === 0 ? AAAA : A,
        st,
        blocked ? ReplyType.BLOB : ReplyType.IP,
        (i % 50) + 0.25,
        st === QueryStatus.FORWARDED ? `10.0.0.${1 + (i % 2)}#53` : null,
        blocked ? i % 4 : NO_LIST,
        st === QueryStatus.REGEX_CNAME ? `cname${i % 5}.tracker.net` : null,
      );
    }
  }

  test("recorded queries are written through the store and read back, with statistics, after reopening", async () => {
    const clock = new Clock(T0 + HOUR);
    const path = mkdtempSync(join(tmpdir(), "sluice-qlog-"));
    dirs.push(path);
    let store = openStore({ now: clock.now }, path);
    let log = newLog(clock, { store, capacity: 1000 });
    recordVariety(log, 300, T0);
    await log.flush();
    assert.equal(store.queryLogRows(), 300);
    assert.equal(store.writer.counters.queryRows, 300);
    const mem = log.queries({ length: -1 });
    const disk = log.queries({ length: -1, disk: true });
    assert.deepEqual(disk.queries, mem.queries);
    assert.equal(disk.recordsTotal, 300);
    const filters = [
      { domain: "site1*" },
      { upstream: "cache" },
      { upstream: "10.0.0.2#53" },
      { type: "AAAA", status: "REGEX_CNAME" },
      { from: (T0 + 100_000) / 1000, until: (T0 + 200_000) / 1000 },
    ];
    for (const f of filters) {
      const a = log.queries({ ...f, length: -1 });
      const b = log.queries({ ...f, length: -1, disk: true });
      assert.deepEqual(b.queries, a.queries, JSON.stringify(f));
      assert.equal(b.recordsFiltered, a.recordsFiltered);
    }
    const summary = log.summary();
    const history = log.history();
    const top = log.topDomains(false, 5);
    const upstreams = roundStats(log.upstreams());
    await log.close();
    await store.close();

    store = openStore({ now: clock.now }, path);
    log = newLog(clock, { store, capacity: 1000 });
    assert.equal(log.counters.loadedRows, 300);
    assert.equal(log.counters.loadComplete, true);
    assert.equal(log.counters.newestId, 300);
    assert.deepEqual(log.summary(), summary);
    assert.deepEqual(log.history(), history);
    assert.deepEqual(log.topDomains(false, 5), top);
    // Response sums are added in another order when read back: equal to rounding.
    assert.deepEqual(roundStats(log.upstreams()), upstreams);
    assert.deepEqual(log.queries({ length: -1 }).queries, mem.queries);
    log.record(T0 + 400_000, "192.168.1.99", "new.example", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    assert.equal(log.queries({ length: 1 }).queries[0]!.id, 301, "ids continue after the persisted maximum");
    await log.flush();
    assert.equal(store.queryLogRows(), 301);
    await log.close();

    // A smaller ring takes only the newest rows back; the statistics still see all of them.
    const small = newLog(clock, { store, capacity: 50 });
    const r = small.queries({ length: -1 });
    assert.equal(r.queries.length, 50);
    assert.deepEqual([r.queries[0]!.id, r.queries.at(-1)!.id], [301, 252]);
    assert.equal(small.summary().queries.total, 301);
    await small.close();
    await store.close();
  });

  test("a disk query without filters stops at the page and counts from the stored total", async () => {
    const clock = new Clock(T0 + HOUR);
    const store = openStore({ now: clock.now });
    const log = newLog(clock, { store, capacity: 5000 });
    // Two flushes, two blocks: ids 1..3000 and 3001..6000.
    recordVariety(log, 3000, T0 - HOUR);
    await log.flush();
    recordVariety(log, 3000, T0);
    await log.flush();
    const page = log.queries({ disk: true, cursor: 4000, start: 10, length: 5 });
    assert.deepEqual(ids(page.queries), [3990, 3989, 3988, 3987, 3986]);
    assert.equal(page.recordsTotal, 6000);
    assert.equal(page.recordsFiltered, 4000);
    await log.close();
    await store.close();
  });

  test("retention by age removes query-log blocks whose newest query is too old", async () => {
    const clock = new Clock(T0);
    const store = openStore({ now: clock.now, queryLogMaxAgeDays: 1 });
    const log = newLog(clock, { store, capacity: 1000 });
    recordVariety(log, 100, T0 - 3 * DAY);
    await log.flush();
    recordVariety(log, 100, T0 - HOUR);
    await log.flush();
    assert.equal(store.queryLogRows(), 200);
    const r = await store.cleanup();
    assert.equal(r.queryRowsDeleted, 100);
    assert.equal(store.queryLogRows(), 100);
    assert.equal(store.diskStats().queryLogRows, 100);
    const disk = log.queries({ disk: true, length: -1 });
    assert.equal(disk.queries.length, 100);
    assert.deepEqual([disk.queries[0]!.id, disk.queries.at(-1)!.id], [200, 101]);
    assert.equal((await store.cleanup()).queryRowsDeleted, 0);
    await log.close();
    await store.close();
  });

  test("clear empties memory and disk, and ids keep counting, also after reopening", async () => {
    const clock = new Clock(T0 + HOUR);
    const path = mkdtempSync(join(tmpdir(), "sluice-qlog-"));
    dirs.push(path);
    let store = openStore({ now: clock.now }, path);
    let log = newLog(clock, { store });
    recordVariety(log, 50, T0);
    await log.flush();
    recordVariety(log, 20, T0 + 60_000);
    // Handed to the writer and in flight while clear runs: clear must take these too.
    const inFlight = log.flush();
    await log.clear();
    await inFlight;
    assert.equal(log.queries({}).queries.length, 0);
    assert.equal(log.queries({ disk: true }).queries.length, 0);
    assert.equal(log.summary().queries.total, 0);
    assert.equal(log.counters.internDomains, 0);
    assert.equal(store.queryLogRows(), 0);
    log.record(T0 + 120_000, "10.0.0.1", "after.example", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    assert.equal(log.queries({}).queries[0]!.id, 71);
    // A query logged and flushed while the next clear is still running is not taken with it.
    recordVariety(log, 10, T0 + 130_000);
    const clearing = log.clear();
    log.record(T0 + 200_000, "10.0.0.1", "during.example", A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST, null);
    await log.flush();
    await clearing;
    assert.deepEqual(log.queries({ disk: true }).queries.map((q) => [q.id, q.domain]), [[82, "during.example"]]);
    assert.equal(store.queryLogRows(), 1);
    await log.close();
    await store.close();
    store = openStore({ now: clock.now }, path);
    log = newLog(clock, { store });
    assert.equal(log.counters.newestId, 82);
    assert.equal(log.summary().queries.total, 1);
    await log.close();
    await store.close();
  });

  test("the writer refuses query blocks beyond its pending limit and counts their rows", async () => {
    const store = openStore({ maxPendingQueryRows: 100, batchMs: 60_000 });
    // The writer does not read block values; the keys carry the row counts.
    assert.equal(store.pushQueryBlock([1, 80, T0, T0 + 1, T0 + 1], Buffer.alloc(16)), true);
    assert.equal(store.pushQueryBlock([81, 160, T0 + 2, T0 + 3, T0 + 3], Buffer.alloc(16)), false);
    assert.equal(store.writer.counters.queryRowsDropped, 80);
    assert.equal(store.writer.counters.queryRowsPending, 80);
    await store.writer.flush();
    assert.equal(store.queryLogRows(), 80);
    assert.equal(store.queryLogMaxId(), 80);
    assert.equal(store.writer.counters.queryRowsPending, 0);
    await store.close();
  });
});

const HERE = fileURLToPath(import.meta.url);
const STORE_URL = pathToFileURL(join(HERE, "../../src/store/index.js")).href;
const QLOG_URL = pathToFileURL(join(HERE, "../../src/dns/querylog.js")).href;

// The child: one store shared by connection records and the query log, written as fast as it
// goes. After each round it asks the query log for a flush and prints "C <id>" once it resolves:
// every query up to that id is committed.
const CHILD = `
import { HistoryStore } from ${JSON.stringify(STORE_URL)};
import { QueryLog } from ${JSON.stringify(QLOG_URL)};
const [path] = process.argv.slice(2);
const store = HistoryStore.open({ path, batchRecords: 2000, batchMs: 10, retentionIntervalMs: 0, warmRollups: false });
const log = new QueryLog({ store, capacity: 50000, flushMs: 5 });
let n = 0;
function conn(i) {
  const started = Date.now();
  return {
    id: "c-" + process.pid + "-" + i, profile: "local/default", profile_name: "Default", type: "ip", ip_version: 4, ip_protocol: 6,
    local_ip: "192.168.0." + (i % 50), local_port: 40000, remote_ip: "203.0.113." + (i % 250), remote_port: 443,
    domain: "d" + (i % 97) + ".example", scope: 4, verdict: i % 9 === 0 ? 3 : 2, started, ended: null, active: true,
    direction: "outbound", encrypted: true, internal: false, tunneled: false, external: true, allowed: i % 9 !== 0,
    bytes_sent: 0, bytes_received: 0, packets_sent: 1, packets_received: 1, device_ip: "192.168.0." + (i % 50),
    device_mac: null, rule_line: 1, matched_by: "default", end_reason: null, extra_data: {},
  };
}
async function main() {
  for (;;) {
    for (let k = 0; k < 3000; k++) {
      const blocked = k % 7 === 0;
      log.record(Date.now(), "192.168.0." + (k % 50), "d" + (k % 997) + ".example", 1, blocked ? 1 : 2, 4, 3, blocked ? null : "1.1.1.1#53", -1, null);
    }
    for (let k = 0; k < 300; k++) store.push(conn(n++));
    const newest = log.counters.newestId;
    log.flush().then(() => process.stdout.write("C " + newest + "\\n"), (e) => process.stdout.write("E " + e.message + "\\n"));
    await new Promise((r) => setImmediate(r));
  }
}
main();
`;

describe("query log crash safety", () => {
  test("a store killed mid-write reopens with every reported query and counts that match its blocks", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-qlog-crash-"));
    dirs.push(dir);
    const script = join(dir, "child.mjs");
    writeFileSync(script, CHILD);
    const path = join(dir, "db");
    let reported = 0;
    // Three lives of the same store; each continues the ids of the one before.
    for (const [minReports, delay] of [
      [3, 0],
      [5, 23],
      [8, 97],
    ] as const) {
      const { committed } = await runAndKill(script, [path], minReports, delay);
      assert.ok(committed > reported, `life reported ${committed}, the one before ${reported}`);
      reported = committed;
      const store = HistoryStore.open({ path, retentionIntervalMs: 0, warmRollups: false });
      try {
        const v = store.verify();
        assert.deepEqual(v.problems, [], v.problems.join("\n"));
        assert.ok(v.queryBlocks > 0);
        // Blocks tile the ids from 1 without overlap, and the stored counts describe them exactly.
        let rows = 0;
        let last = 0;
        for (const { key, value } of store.queryLogBlocks(false)) {
          assert.equal(key[0], last + 1, `block ${JSON.stringify(key)} after id ${last}`);
          const b = decodeQueryBlock(value);
          assert.equal(b.firstId, key[0]);
          assert.equal(b.n, qlogRowsOf(key));
          rows += b.n;
          last = key[1];
        }
        assert.equal(store.queryLogRows(), rows);
        assert.equal(store.queryLogMaxId(), last);
        assert.ok(last >= reported, `ids up to ${last} stored, ${reported} reported committed`);
        const log = new QueryLog({ store });
        assert.equal(log.counters.newestId, last, "a new query log continues after the stored maximum");
        await log.close();
        t.diagnostic(`reported ${reported}, ${rows} queries and ${v.records} connections on reopen`);
      } finally {
        await store.close();
      }
    }
  });
});
