// History store: ordering, replacement and coalescing of updates, every query primitive against a
// brute-force answer, rollups against a recount, retention and clear. Each test gets a fresh LMDB
// directory under the OS temp dir.

import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import type { ConnRecord } from "../src/flow/types.js";
import { HistoryStore, type HistoryOptions } from "../src/store/index.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A fixed, hour-aligned epoch for the test data (2024-01-01T00:00:00Z). */
const T0 = Date.UTC(2024, 0, 1);

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sluice-store-"));
  dirs.push(d);
  return d;
}

function openStore(opts: Partial<HistoryOptions> = {}, path = tempDir()): HistoryStore {
  return HistoryStore.open({ path, retentionIntervalMs: 0, batchMs: 5, ...opts });
}

let seq = 0;
function rec(over: Partial<ConnRecord> = {}): ConnRecord {
  const started = over.started ?? T0;
  const id = over.id ?? `0-${seq++}-${started}`;
  const verdict = over.verdict ?? 2;
  const device = over.device_ip ?? "192.168.1.10";
  return {
    id,
    profile: "local/default",
    profile_name: "Default",
    type: "ip",
    ip_version: 4,
    ip_protocol: 6,
    local_ip: device,
    local_port: 40000,
    remote_ip: "93.184.216.34",
    remote_port: 443,
    domain: "example.com.",
    scope: 4,
    verdict,
    started,
    ended: null,
    active: true,
    direction: "outbound",
    encrypted: true,
    internal: false,
    tunneled: false,
    external: true,
    allowed: verdict === 2,
    bytes_sent: 0,
    bytes_received: 0,
    packets_sent: 0,
    packets_received: 0,
    device_ip: device,
    device_mac: null,
    rule_line: 0,
    matched_by: "default",
    end_reason: null,
    extra_data: {},
    ...over,
  };
}

function ended(r: ConnRecord, sent: number, recv: number, at = r.started + 1000): ConnRecord {
  return { ...r, ended: at, active: false, bytes_sent: sent, bytes_received: recv, end_reason: "closed" };
}

/** A small seeded PRNG so failures reproduce. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

function ids(rows: ConnRecord[]): string[] {
  return rows.map((r) => r.id);
}

function assertConsistent(store: HistoryStore): void {
  const v = store.verify();
  assert.deepEqual(v.problems, [], v.problems.join("\n"));
}

describe("history store", () => {
  test("rows come back ordered by start time, oldest first or newest first, within [from, to)", async () => {
    const store = openStore();
    const times = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4].map((k) => T0 + k * 1000);
    for (const t of times.slice(0, 5)) store.push(rec({ started: t, id: `a-${t}` }));
    await store.writer.flush();
    for (const t of times.slice(5)) store.push(rec({ started: t, id: `a-${t}` }));
    await store.writer.flush();
    const all = store.scanRange({ from: T0, to: T0 + 10_000 });
    assert.deepEqual(all.map((r) => r.started), [...times].sort((a, b) => a - b));
    const rev = store.scanRange({ from: T0, to: T0 + 10_000, reverse: true });
    assert.deepEqual(rev.map((r) => r.started), [...times].sort((a, b) => b - a));
    const window = store.scanRange({ from: T0 + 2000, to: T0 + 5000 });
    assert.deepEqual(window.map((r) => r.started - T0), [2000, 3000, 4000]);
    const newest2 = store.scanRange({ from: T0, to: T0 + 10_000, reverse: true, limit: 2 });
    assert.deepEqual(newest2.map((r) => r.started - T0), [9000, 8000]);
    // Same start time: the id breaks the tie.
    store.push(rec({ started: T0 + 20_000, id: "b" }));
    store.push(rec({ started: T0 + 20_000, id: "a" }));
    await store.writer.flush();
    assert.deepEqual(ids(store.scanRange({ from: T0 + 20_000, to: T0 + 20_001 })), ["a", "b"]);
    await store.close();
  });

  test("an update with the same id replaces the stored row under the same key", async () => {
    const store = openStore();
    const r = rec({ started: T0 + 500 });
    store.push(r);
    await store.writer.flush();
    assert.equal(store.get(r.id)?.active, true);
    store.push({ ...r, domain: "www.example.com.", verdict: 3, allowed: false });
    await store.writer.flush();
    store.push(ended({ ...r, domain: "www.example.com.", verdict: 3, allowed: false }, 100, 2000));
    await store.writer.flush();
    assert.equal(store.count(), 1);
    const got = store.get(r.id)!;
    assert.equal(got.active, false);
    assert.equal(got.bytes_received, 2000);
    assert.equal(got.domain, "www.example.com.");
    assert.deepEqual(ids(store.scanRange({ from: T0, to: T0 + HOUR })), [r.id]);
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 10)), [r.id]);
    assert.deepEqual(store.topDomains(T0, T0 + HOUR, 5).map((d) => [d.name, d.connections, d.bytes_received]), [
      ["www.example.com.", 1, 2000],
    ]);
    assertConsistent(store);
    await store.close();
  });

  test("updates to a record not yet committed coalesce in memory into one write", async () => {
    const store = openStore({ batchMs: 60_000 });
    const r = rec();
    store.push(r);
    store.push({ ...r, domain: "a.example." });
    store.push(ended({ ...r, domain: "b.example." }, 1, 2));
    const before = store.writer.counters;
    assert.equal(before.pushed, 3);
    assert.equal(before.pending, 1);
    assert.equal(before.committed, 0);
    await store.writer.flush();
    const c = store.writer.counters;
    assert.equal(c.committed, 1);
    assert.equal(c.pending, 0);
    assert.equal(c.commits, 1);
    assert.equal(c.errors, 0);
    assert.ok(c.lastCommitMs >= 0);
    assert.equal(store.get(r.id)?.domain, "b.example.");
    assert.equal(store.count(), 1);
    assertConsistent(store);
    await store.close();
  });

  test("the batch size triggers a commit without waiting for the timer", async () => {
    const store = openStore({ batchMs: 60_000, batchRecords: 100 });
    let commits = 0;
    store.writer.onCommit(() => commits++);
    for (let i = 0; i < 250; i++) store.push(rec({ started: T0 + i }));
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(commits >= 2, `commits: ${commits}`);
    assert.ok(store.count() >= 200);
    await store.close();
    assert.equal(store.writer.counters.committed, 250);
  });

  test("a connection's verdict, domain and bytes may change many times across batches without duplicates", async () => {
    const store = openStore();
    const r = rec({ started: T0 + 10 });
    store.push(r);
    await store.writer.flush();
    for (let i = 0; i < 5; i++) {
      store.push({ ...r, verdict: i % 2 ? 2 : 4, domain: `d${i}.example.`, bytes_sent: i * 10 });
      await store.writer.flush();
      assertConsistent(store);
    }
    assert.equal(store.count(), 1);
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 10)), [r.id]); // last verdict: 4 (drop)
    await store.close();
  });

  test("a tracker may keep one object per connection, change it and push it again", async () => {
    const store = openStore();
    const live = rec({ started: T0 + 7 });
    store.push(live);
    live.bytes_sent = 5;
    store.push(live); // coalesces with the first push: one row
    await store.writer.flush();
    live.verdict = 3;
    live.allowed = false;
    store.push(live);
    await store.writer.flush();
    live.ended = T0 + 9000;
    live.active = false;
    live.bytes_received = 77;
    store.push(live);
    await store.writer.flush();
    assert.equal(store.count(), 1);
    assert.deepEqual(store.get(live.id), live);
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 10)), [live.id]);
    assertConsistent(store);
    await store.close();
  });

  test("an end pushed again after its row was committed replaces the row instead of counting it twice", async () => {
    const store = openStore();
    const r = ended(rec({ started: T0 + 42, verdict: 3 }), 10, 20);
    store.push(r);
    await store.writer.flush();
    store.push({ ...r, bytes_received: 99 });
    await store.writer.flush();
    assert.equal(store.count(), 1);
    assert.equal(store.get(r.id)?.bytes_received, 99);
    assert.deepEqual(store.topDomains(T0, T0 + HOUR, 1).map((t) => [t.connections, t.blocked, t.bytes_received]), [[1, 1, 99]]);
    assertConsistent(store);
    await store.close();
  });

  test("an update whose start time differs moves the row to its new key with its index entries", async () => {
    const store = openStore();
    const r = rec({ started: T0 + 1000, verdict: 4 });
    store.push(r);
    await store.writer.flush();
    store.push({ ...r, started: T0 + 2 * HOUR });
    await store.writer.flush();
    assert.equal(store.count(), 1);
    assert.equal(store.get(r.id)?.started, T0 + 2 * HOUR);
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 10)), []);
    assert.deepEqual(ids(store.blocked(T0 + HOUR, T0 + 3 * HOUR, 10)), [r.id]);
    assert.deepEqual(ids(store.byDevice(r.device_ip, T0 + HOUR, T0 + 3 * HOUR, 10)), [r.id]);
    assertConsistent(store);
    await store.close();
  });

  test("records that cannot be keyed are refused and counted, and the rest of their batch is written", async () => {
    const store = openStore();
    const good = rec({ started: T0 + 1 });
    store.push(rec({ id: "bad\u0000id" }));
    store.push(rec({ domain: "x".repeat(300) }));
    store.push(rec({ started: Number.NaN }));
    store.push(good);
    await store.writer.flush();
    assert.equal(store.writer.counters.invalid, 3);
    assert.equal(store.count(), 1);
    assert.ok(store.get(good.id));
    assertConsistent(store);
    await store.close();
  });

  test("a maintenance job that fails before writing is reported to its caller and ingest carries on", async () => {
    const store = openStore();
    await assert.rejects(
      store.writer.maintain(() => {
        throw new Error("planned failure");
      }),
      /planned failure/,
    );
    store.push(rec({ started: T0 + 3 }));
    await store.writer.flush();
    assert.equal(store.count(), 1);
    assert.equal(store.writer.counters.errors, 1);
    await store.close();
  });

  test("a reopened store finds rows written by the previous run, so their ends replace them", async () => {
    const path = tempDir();
    let store = openStore({}, path);
    const rs = Array.from({ length: 50 }, (_, i) => rec({ started: T0 + i * 60_000, verdict: i % 5 ? 2 : 3 }));
    for (const r of rs) store.push(r);
    await store.close();
    store = openStore({}, path);
    assert.equal(store.count(), 50);
    for (const r of rs) store.push(ended({ ...r, verdict: 2 }, 5, 7));
    await store.writer.flush();
    assert.equal(store.count(), 50);
    assert.equal(store.blocked(T0, T0 + DAY, 100).length, 0);
    assert.equal(store.get(rs[3]!.id)?.bytes_received, 7);
    assertConsistent(store);
    await store.close();
  });

  test("byDevice returns one device's rows in the window, newest first, up to the limit", async () => {
    const store = openStore();
    const devs = ["192.168.1.2", "192.168.1.3", "fd00::5"];
    for (let i = 0; i < 60; i++) store.push(rec({ started: T0 + i * 60_000, device_ip: devs[i % 3]!, id: `r${i}` }));
    await store.writer.flush();
    const from = T0 + 10 * 60_000;
    const to = T0 + 40 * 60_000;
    const want = Array.from({ length: 60 }, (_, i) => i)
      .filter((i) => i % 3 === 1 && T0 + i * 60_000 >= from && T0 + i * 60_000 < to)
      .reverse()
      .map((i) => `r${i}`);
    assert.deepEqual(ids(store.byDevice("192.168.1.3", from, to, 100)), want);
    assert.deepEqual(ids(store.byDevice("192.168.1.3", from, to, 3)), want.slice(0, 3));
    assert.deepEqual(store.byDevice("10.0.0.1", T0, T0 + DAY, 10), []);
    // A prefix of another device's address is a different device.
    assert.equal(store.byDevice("192.168.1.", T0, T0 + DAY, 100).length, 0);
    await store.close();
  });

  test("blocked returns only block and drop verdicts, newest first, and follows verdict changes", async () => {
    const store = openStore();
    const rs = Array.from({ length: 30 }, (_, i) => rec({ started: T0 + i * 1000, verdict: [2, 3, 4][i % 3]!, id: `b${i}` }));
    for (const r of rs) store.push(r);
    await store.writer.flush();
    const want = rs.filter((r) => r.verdict !== 2).reverse();
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 100)), ids(want));
    assert.deepEqual(ids(store.blocked(T0, T0 + HOUR, 4)), ids(want.slice(0, 4)));
    assert.deepEqual(ids(store.blocked(T0 + 10_000, T0 + 13_000, 100)), ["b11", "b10"]);
    // Accepted after all, and blocked after all.
    store.push({ ...rs[1]!, verdict: 2 });
    store.push({ ...rs[0]!, verdict: 3 });
    await store.writer.flush();
    const now = ids(store.blocked(T0, T0 + HOUR, 100));
    assert.ok(!now.includes("b1"));
    assert.equal(now[now.length - 1], "b0");
    assertConsistent(store);
    await store.close();
  });

  test("topDomains and topDevices rank by connections, with blocked counts and bytes, at hour resolution", async () => {
    const store = openStore();
    const weights: [string, number][] = [
      ["a.example.", 9],
      ["b.example.", 5],
      ["c.example.", 7],
      ["", 20],
    ];
    let n = 0;
    for (const [domain, w] of weights) {
      for (let i = 0; i < w; i++) {
        const r = rec({ started: T0 + (n++ % 3) * HOUR + i, domain, verdict: i === 0 ? 3 : 2, device_ip: `10.0.0.${w}` });
        store.push(ended(r, 10, 100));
      }
    }
    // Outside the window: must not count.
    store.push(rec({ started: T0 + 5 * HOUR, domain: "b.example." }));
    await store.writer.flush();
    const top = store.topDomains(T0, T0 + 3 * HOUR, 2);
    assert.deepEqual(
      top.map((t) => [t.name, t.connections, t.blocked, t.bytes_sent, t.bytes_received]),
      [
        ["a.example.", 9, 1, 90, 900],
        ["c.example.", 7, 1, 70, 700],
      ],
    );
    assert.equal(store.topDomains(T0, T0 + 6 * HOUR, 10).find((t) => t.name === "b.example.")?.connections, 6);
    const devs = store.topDevices(T0, T0 + 3 * HOUR, 10);
    assert.deepEqual(devs.map((d) => [d.name, d.connections]), [
      ["10.0.0.20", 20],
      ["10.0.0.9", 9],
      ["10.0.0.7", 7],
      ["10.0.0.5", 5],
    ]);
    assert.deepEqual(store.topDomains(T0 + 10 * DAY, T0 + 11 * DAY, 10), []);
    await store.close();
  });

  test("search finds rows by a domain or remote address fragment, newest first, and reports an exhausted scan budget", async () => {
    const store = openStore();
    for (let i = 0; i < 300; i++) {
      store.push(
        rec({
          id: `s${i}`,
          started: T0 + i * 60_000,
          domain: i % 50 === 7 ? `rare${i}.tracker.example.` : `www${i % 10}.common.example.`,
          remote_ip: i % 100 === 42 ? "2001:db8::42" : `198.51.100.${i % 200}`,
        }),
      );
    }
    await store.writer.flush();
    const to = T0 + 300 * 60_000;
    const rare = store.search("Tracker", T0, to, 100);
    assert.deepEqual(ids(rare.records), ["s257", "s207", "s157", "s107", "s57", "s7"]);
    assert.equal(rare.complete, true);
    // The domain rollups' minute masks let it read only the minutes that had such a name.
    assert.equal(rare.scanned, 6);
    // A row renamed away from the match is not returned (its old minute is still read: masks only grow).
    store.push({ ...store.get("s57")!, domain: "renamed.example." });
    await store.writer.flush();
    assert.deepEqual(ids(store.search("tracker", T0, to, 100).records), ["s257", "s207", "s157", "s107", "s7"]);
    assert.deepEqual(ids(store.search("", T0, to, 2).records), ["s299", "s298"]);
    const ip = store.search("2001:db8", T0, to, 100);
    assert.deepEqual(ids(ip.records), ["s242", "s142", "s42"]);
    const common = store.search("common", T0, to, 5);
    assert.deepEqual(ids(common.records), ["s299", "s298", "s297", "s296", "s295"]);
    assert.equal(store.search("nowhere.invalid", T0, to, 10).records.length, 0);
    // Text that appears in other columns only (the profile id) does not match.
    assert.equal(store.search("local/default", T0, to, 10).records.length, 0);
    const budget = store.search("198.51.100.", T0, to, 1000, { maxScan: 50 });
    assert.equal(budget.complete, false);
    assert.equal(budget.scanned, 50);
    assert.ok(budget.resumeTo !== null && budget.resumeTo <= to);
    const rest = store.search("198.51.100.", T0, budget.resumeTo!, 1000);
    const seen = new Set([...ids(budget.records), ...ids(rest.records)]);
    assert.equal(seen.size, 297); // all but the three IPv6 rows
    await store.close();
  });

  test("get returns the committed row by id, or undefined; count counts rows", async () => {
    const store = openStore();
    assert.equal(store.get("nope"), undefined);
    assert.equal(store.count(), 0);
    const r = rec({ extra_data: { reason: { rule_line: 3, matched_by: "domain", profile: "local/default" } } });
    store.push(r);
    assert.equal(store.get(r.id), undefined); // not committed yet
    await store.writer.flush();
    assert.deepEqual(store.get(r.id), r);
    assert.equal(store.count(), 1);
    await store.close();
  });

  test("stats returns zero-filled per-bucket totals, from the minute rollups and from a row scan alike", async () => {
    const store = openStore();
    const r = rng(7);
    const rows: ConnRecord[] = [];
    for (let i = 0; i < 400; i++) {
      const x = ended(rec({ started: T0 + r(3 * HOUR), verdict: r(4) === 0 ? 3 : 2 }), r(1000), r(100_000));
      rows.push(x);
      store.push(x);
    }
    await store.writer.flush();
    const brute = (bucket: number, from: number, to: number) => {
      const first = Math.floor(from / bucket) * bucket;
      const n = Math.ceil((to - first) / bucket);
      const out = Array.from({ length: n }, (_, i) => ({ start: first + i * bucket, connections: 0, blocked: 0, bytes_sent: 0, bytes_received: 0 }));
      for (const x of rows) {
        if (x.started < first || x.started >= to) continue;
        const b = out[Math.floor((x.started - first) / bucket)]!;
        b.connections++;
        if (x.verdict !== 2) b.blocked++;
        b.bytes_sent += x.bytes_sent;
        b.bytes_received += x.bytes_received;
      }
      return out;
    };
    // Minute-multiple buckets (rollups), minute-aligned range.
    assert.deepEqual(store.stats(15 * 60_000, T0, T0 + 3 * HOUR), brute(15 * 60_000, T0, T0 + 3 * HOUR));
    assert.deepEqual(store.stats(HOUR, T0 - HOUR, T0 + 5 * HOUR), brute(HOUR, T0 - HOUR, T0 + 5 * HOUR));
    // Other bucket sizes (row scan), unaligned range.
    assert.deepEqual(store.stats(7_777, T0 + 12_345, T0 + HOUR), brute(7_777, T0 + 12_345, T0 + HOUR));
    const total = store.stats(DAY, T0, T0 + DAY);
    assert.equal(total.length, 1);
    assert.equal(total[0]!.connections, 400);
    assert.throws(() => store.stats(0, T0, T0 + 1), RangeError);
    assert.throws(() => store.stats(1, T0, T0 + DAY), RangeError);
    await store.close();
  });

  test("rollups and indexes match a brute-force recount after random inserts, updates, moves, ends and re-pushed ends", async () => {
    const store = openStore({ batchRecords: 97, batchMs: 1 });
    const r = rng(12345);
    const domains = ["a.", "b.", "c.", "d.", ""];
    const devices = ["10.0.0.1", "10.0.0.2", "fd00::1"];
    const latest = new Map<string, ConnRecord>();
    for (let step = 0; step < 3000; step++) {
      const pick = r(10);
      if (pick < 5 || latest.size === 0) {
        const x = rec({
          started: T0 + r(30 * HOUR),
          domain: domains[r(domains.length)]!,
          device_ip: devices[r(devices.length)]!,
          verdict: [2, 2, 3, 4][r(4)]!,
        });
        latest.set(x.id, x);
        store.push(x);
      } else {
        const keys = [...latest.keys()];
        const old = latest.get(keys[r(keys.length)]!)!;
        const x: ConnRecord = {
          ...old,
          started: r(20) === 0 ? T0 + r(30 * HOUR) : old.started,
          verdict: r(3) === 0 ? [2, 3, 4][r(3)]! : old.verdict,
          domain: r(4) === 0 ? domains[r(domains.length)]! : old.domain,
          bytes_sent: old.bytes_sent + r(500),
          bytes_received: old.bytes_received + r(5000),
          ended: r(2) ? old.started + 1 : null,
          active: false,
        };
        latest.set(x.id, x);
        store.push(x);
      }
      if (step % 400 === 0) await store.writer.flush();
      else if (step % 37 === 0) await new Promise((res) => setTimeout(res, 2)); // let batches overlap
    }
    await store.writer.flush();
    assertConsistent(store);
    assert.equal(store.count(), latest.size);
    // The public query answers agree with a recount of the pushed data.
    const rows = [...latest.values()];
    const from = T0 + 2 * HOUR;
    const to = T0 + 20 * HOUR;
    const inWin = rows.filter((x) => x.started >= from && x.started < to);
    const byDomain = new Map<string, number>();
    for (const x of inWin) if (x.domain !== "") byDomain.set(x.domain, (byDomain.get(x.domain) ?? 0) + 1);
    const top = store.topDomains(from, to, 10);
    for (const t of top) assert.equal(t.connections, byDomain.get(t.name), t.name);
    assert.equal(top.length, byDomain.size);
    const blocked = inWin.filter((x) => x.verdict === 3 || x.verdict === 4).sort((a, b) => b.started - a.started || (a.id < b.id ? 1 : -1));
    assert.deepEqual(ids(store.blocked(from, to, 10_000)), ids(blocked));
    const dev = inWin.filter((x) => x.device_ip === "fd00::1").sort((a, b) => b.started - a.started || (a.id < b.id ? 1 : -1));
    assert.deepEqual(ids(store.byDevice("fd00::1", from, to, 10_000)), ids(dev));
    for (const x of rows.slice(0, 50)) assert.deepEqual(store.get(x.id), x);
    const warm = [store.topDomains(from, to, 3), store.topDevices(T0, T0 + DAY, 5), store.stats(HOUR, T0, T0 + 2 * DAY)];
    await store.close();
    // The same answers from a cold cache (units loaded from disk by the queries).
    const again = HistoryStore.open({ path: store.diskPath, retentionIntervalMs: 0 });
    assert.deepEqual([again.topDomains(from, to, 3), again.topDevices(T0, T0 + DAY, 5), again.stats(HOUR, T0, T0 + 2 * DAY)], warm);
    assertConsistent(again);
    await again.close();
  });

  test("retention by age deletes rows older than maxAgeDays with their index entries and rollups", async () => {
    let now = T0 + 10 * DAY;
    const store = openStore({ maxAgeDays: 3, pruneBatch: 37, now: () => now });
    for (let d = 0; d < 10; d++) {
      for (let i = 0; i < 40; i++) store.push(rec({ started: T0 + d * DAY + i * 60_000, verdict: i % 4 ? 2 : 3, device_ip: `10.1.0.${i % 4}` }));
    }
    await store.writer.flush();
    assert.equal(store.count(), 400);
    const r = await store.cleanup();
    assert.equal(r.deleted, 280);
    assert.equal(store.count(), 120);
    assert.ok(store.scanRange({ from: 0, to: T0 + 7 * DAY, limit: 1 }).length === 0);
    assert.equal(store.topDomains(T0, T0 + 7 * DAY, 10).length, 0);
    assert.equal(store.stats(DAY, T0, T0 + 10 * DAY).reduce((s, b) => s + b.connections, 0), 120);
    assertConsistent(store);
    now += DAY;
    assert.equal((await store.cleanup()).deleted, 40);
    assertConsistent(store);
    await store.close();
  });

  test("retention by count keeps the newest maxRecords rows", async () => {
    const store = openStore({ maxRecords: 150, pruneBatch: 40 });
    const rs = Array.from({ length: 500 }, (_, i) => rec({ started: T0 + i * 1000, id: `k${i}` }));
    for (const r of rs) store.push(r);
    await store.writer.flush();
    const r = await store.cleanup();
    assert.equal(r.deleted, 350);
    assert.equal(store.count(), 150);
    assert.deepEqual(ids(store.scanRange({ from: 0, to: T0 + DAY })), ids(rs.slice(350)));
    assertConsistent(store);
    await store.close();
  });

  test("retention by size prunes the oldest rows until the live pages fit", async () => {
    const store = openStore({ maxBytes: 600_000, pruneBatch: 500 });
    for (let i = 0; i < 6000; i++) store.push(rec({ started: T0 + i * 1000, domain: `host${i % 300}.example.` }));
    await store.writer.flush();
    const before = store.diskStats();
    assert.ok(before.usedBytes > 600_000, `used ${before.usedBytes}`);
    const r = await store.cleanup();
    assert.ok(r.deleted > 0);
    assert.ok(r.usedBytes <= 600_000, `used ${r.usedBytes}`);
    // The oldest went first.
    const oldest = store.scanRange({ from: 0, to: T0 + DAY, limit: 1 })[0]!;
    assert.equal(oldest.started, T0 + r.deleted * 1000);
    assertConsistent(store);
    await store.close();
  });

  test("background retention runs on its timer and ingest continues meanwhile", async () => {
    const store = openStore({ maxRecords: 100, retentionIntervalMs: 20, pruneBatch: 50 });
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) store.push(rec({ started: T0 + round * 1000 + i }));
      await new Promise((r) => setTimeout(r, 15));
    }
    await store.writer.flush();
    await new Promise((r) => setTimeout(r, 100));
    await store.cleanup();
    assert.equal(store.count(), 100);
    assertConsistent(store);
    await store.close();
  });

  test("clear with profiles deletes only those profiles' rows, including ones not yet committed", async () => {
    const store = openStore({ pruneBatch: 25 });
    const profiles = ["local/kids", "local/tv", "local/default"];
    // Ten rows per start time, so clear's cursor often stops between rows of the same millisecond.
    for (let i = 0; i < 300; i++) store.push(rec({ started: T0 + Math.floor(i / 10) * 1000, profile: profiles[i % 3]!, verdict: i % 7 ? 2 : 3 }));
    await store.writer.flush();
    store.push(rec({ started: T0 + 999_999, profile: "local/kids" })); // pending at the time of clear
    const deleted = await store.clear(["local/kids", "local/tv"]);
    assert.equal(deleted, 200);
    await store.writer.flush();
    assert.equal(store.count(), 100);
    assert.ok(store.scanRange({ from: 0, to: T0 + DAY }).every((r) => r.profile === "local/default"));
    assertConsistent(store);
    await store.close();
  });

  test("clear with no profiles empties every table, and the store stays usable after reopening", async () => {
    const path = tempDir();
    let store = openStore({}, path);
    for (let i = 0; i < 100; i++) store.push(rec({ started: T0 + i, verdict: 3 }));
    await store.writer.flush();
    assert.equal(await store.clear([]), 100);
    assert.equal(store.count(), 0);
    assert.equal(store.blocked(0, T0 + DAY, 10).length, 0);
    assert.equal(store.topDomains(0, T0 + DAY, 10).length, 0);
    const again = rec({ started: T0 + 5, extra_data: { reason: { rule_line: 1, matched_by: "ip", profile: "local/x" } } });
    store.push(again);
    await store.close();
    store = openStore({}, path);
    assert.deepEqual(store.get(again.id), again);
    assertConsistent(store);
    await store.close();
  });
});
