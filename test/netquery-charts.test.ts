// netquery's charts on synthetic connections with known start and end times: active
// connections per 10-second bucket over the last 600 s, and bandwidth per interval (spread from
// per-connection totals, or summed from samples when the source has them).

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import type { ConnRecord } from "../src/flow/types.js";
import { connRecord } from "./helpers/conns.js";
import { QueryError } from "../src/netquery/query.js";
import type { BandwidthSample, RowHint, RowSource } from "../src/netquery/exec.js";
import { BANDWIDTH_MAX_BUCKETS, bandwidthChart, connectionActiveChart, parseActiveChartRequest, parseBandwidthRequest } from "../src/netquery/charts.js";

/** "now" in unix seconds: 2024-05-01T12:00:00Z, a multiple of 10. */
const N = Date.UTC(2024, 4, 1, 12, 0, 0) / 1000;
const NOW = N * 1000;
let seq = 0;

function conn(o: Partial<ConnRecord> = {}): ConnRecord {
  const n = seq++;
  return connRecord(n, NOW, { id: `c${n}`, ...o });
}

const s = (sec: number): number => sec * 1000;

function source(rows: ConnRecord[], samples?: BandwidthSample[]): RowSource & { hints: RowHint[] } {
  const hints: RowHint[] = [];
  const src: RowSource & { hints: RowHint[] } = {
    name: "main",
    hints,
    rows(hint) {
      hints.push(hint);
      return rows;
    },
  };
  if (samples) src.bandwidth = () => samples;
  return src;
}

type Bucket = { timestamp: number; value: number; countBlocked: number };

describe("connection-active", () => {
  const rows = [
    // accepted, active through the whole window: 10 connection-seconds per bucket
    conn({ id: "A", verdict: 2, started: s(N - 1000), domain: "always.example." }),
    // blocked, active for the last 25 s
    conn({ id: "B", verdict: 3, started: s(N - 25), domain: "blocked.example." }),
    // rerouted to a tunnel (counted as allowed), N-100 .. N-95 inclusive: 6 seconds
    conn({ id: "C", verdict: 6, started: s(N - 100), ended: s(N - 95) + 500, active: false, domain: "short.example." }),
    // ended before the window
    conn({ id: "D", verdict: 2, started: s(N - 2000), ended: s(N - 700), active: false }),
    // starts after now
    conn({ id: "E", verdict: 5, started: s(N + 5) }),
  ];

  test("covers the last 600 seconds in 60 buckets keyed by their first second", async () => {
    const r = await connectionActiveChart(parseActiveChartRequest(undefined), source(rows), NOW);
    const b = r.results as Bucket[];
    assert.equal(b.length, 60);
    assert.equal(b[0]!.timestamp, N - 600);
    assert.equal(b[59]!.timestamp, N - 10);
    for (let i = 1; i < b.length; i++) assert.equal(b[i]!.timestamp - b[i - 1]!.timestamp, 10);
  });

  test("value sums allowed (verdict 2, 5, 6) connection-seconds per bucket and countBlocked the others, as Portmaster does", async () => {
    const r = await connectionActiveChart(parseActiveChartRequest({}), source(rows), NOW);
    const at = new Map((r.results as Bucket[]).map((x) => [x.timestamp, x]));
    assert.deepEqual(at.get(N - 600), { timestamp: N - 600, value: 10, countBlocked: 0 });
    assert.deepEqual(at.get(N - 100), { timestamp: N - 100, value: 16, countBlocked: 0 }, "A's 10 plus C's 6 seconds");
    assert.deepEqual(at.get(N - 90), { timestamp: N - 90, value: 10, countBlocked: 0 });
    assert.deepEqual(at.get(N - 30), { timestamp: N - 30, value: 10, countBlocked: 5 }, "B from N-25");
    assert.deepEqual(at.get(N - 20), { timestamp: N - 20, value: 10, countBlocked: 10 });
    assert.deepEqual(at.get(N - 10), { timestamp: N - 10, value: 10, countBlocked: 10 });
    const total = (r.results as Bucket[]).reduce((a, x) => a + x.value + x.countBlocked, 0);
    assert.equal(total, 600 + 6 + 25);
  });

  test("the query and textSearch filter the connections", async () => {
    let r = await connectionActiveChart(parseActiveChartRequest({ query: { verdict: 3 } }), source(rows), NOW);
    let b = r.results as Bucket[];
    assert.equal(b.reduce((a, x) => a + x.value, 0), 0);
    assert.equal(b.reduce((a, x) => a + x.countBlocked, 0), 25);
    r = await connectionActiveChart(parseActiveChartRequest({ textSearch: { fields: ["domain"], value: "SHORT" } }), source(rows), NOW);
    b = r.results as Bucket[];
    assert.equal(b.reduce((a, x) => a + x.value, 0), 6);
    assert.equal(b.length, 60, "empty buckets are reported too");
  });

  test("a now that is not on a 10-second boundary gives partial first and last buckets", async () => {
    const r = await connectionActiveChart(parseActiveChartRequest(undefined), source([rows[0]!]), NOW + 5000);
    const b = r.results as Bucket[];
    assert.equal(b.length, 61);
    assert.deepEqual(b[0], { timestamp: N - 600, value: 5, countBlocked: 0 }, "seconds N-595 .. N-591");
    assert.deepEqual(b[60], { timestamp: N, value: 5, countBlocked: 0 }, "seconds N .. N+4");
  });

  test("the reply describes what was computed and with which parameters; the source is told where to stop", async () => {
    const src = source(rows);
    const r = await connectionActiveChart(parseActiveChartRequest({ query: { verdict: [2, 3] } }), src, NOW);
    assert.match(r.query, /^connection-active: for each second t from \d+ to \d+/);
    assert.match(r.query, /connection-seconds/);
    assert.deepEqual(r.params, { from: N - 600, to: N - 1, bucketSeconds: 10, query: { verdict: [{ $eq: 2 }, { $eq: 3 }] }, textSearch: null });
    assert.equal(src.hints[0]!.to, NOW + 1, "[from, to): everything started by now");
    assert.equal(src.hints[0]!.from, undefined, "long-running connections started any time before");
  });

  test("the request takes query and textSearch only, with keys in any case", () => {
    assert.deepEqual(parseActiveChartRequest({ QUERY: { verdict: 2 }, TextSearch: { fields: ["domain"], value: "x" } }), { where: { verdict: [{ $eq: 2 }] }, textSearch: { fields: ["domain"], value: "x" } });
    assert.throws(() => parseActiveChartRequest({ query: {}, interval: 5 }), { message: 'the chart request: unknown field "interval" (allowed: query, textSearch)' });
    assert.throws(() => parseActiveChartRequest({ query: { colour: 1 } }), QueryError);
  });
});

type Bw = { timestamp: number; incoming: number; outgoing: number } & Record<string, unknown>;

describe("bandwidth", () => {
  const rows = [
    // 20 s, 2000 B in and 200 B out: 1000/100 in each of two buckets
    conn({ id: "P", profile: "local/lan", started: s(N - 100), ended: s(N - 80), active: false, bytes_received: 2000, bytes_sent: 200 }),
    // 10 s across a bucket boundary: half in each
    conn({ id: "Q", profile: "local/iot", started: s(N - 95), ended: s(N - 85), active: false, bytes_received: 1000 }),
    // active for 30 s until now: whole buckets through the middle
    conn({ id: "R", profile: "local/iot", started: s(N - 30), bytes_received: 3000, bytes_sent: 30 }),
    // no duration: all at its start
    conn({ id: "S", profile: "local/lan", started: s(N - 50), ended: s(N - 50), active: false, bytes_received: 70 }),
    // no traffic: nothing
    conn({ id: "T", profile: "local/lan", started: s(N - 40) }),
  ];

  test("spreads each connection's totals evenly over its active time, per 10-second bucket, ordered by time", async () => {
    const r = await bandwidthChart(parseBandwidthRequest({}), source(rows), NOW);
    assert.deepEqual(r.results, [
      { timestamp: N - 100, incoming: 1500, outgoing: 100 },
      { timestamp: N - 90, incoming: 1500, outgoing: 100 },
      { timestamp: N - 50, incoming: 70, outgoing: 0 },
      { timestamp: N - 30, incoming: 1000, outgoing: 10 },
      { timestamp: N - 20, incoming: 1000, outgoing: 10 },
      { timestamp: N - 10, incoming: 1000, outgoing: 10 },
    ]);
    assert.match(r.query, /approximation/);
    assert.deepEqual(r.params, { interval: 10, query: {}, groupBy: [], from: N - BANDWIDTH_MAX_BUCKETS * 10, to: N, samples: false });
  });

  test("groupBy adds the columns and splits the buckets", async () => {
    const r = await bandwidthChart(parseBandwidthRequest({ groupBy: ["profile"] }), source(rows), NOW);
    assert.deepEqual((r.results as Bw[]).filter((x) => x.timestamp <= N - 90), [
      { timestamp: N - 100, incoming: 1000, outgoing: 100, profile: "local/lan" },
      { timestamp: N - 100, incoming: 500, outgoing: 0, profile: "local/iot" },
      { timestamp: N - 90, incoming: 1000, outgoing: 100, profile: "local/lan" },
      { timestamp: N - 90, incoming: 500, outgoing: 0, profile: "local/iot" },
    ]);
    const both = await bandwidthChart(parseBandwidthRequest({ groupBy: ["profile", "active"] }), source(rows), NOW);
    assert.deepEqual((both.results as Bw[]).at(-1), { timestamp: N - 10, incoming: 1000, outgoing: 10, profile: "local/iot", active: true });
  });

  test("partial buckets get the share of the connection's time that falls into them", async () => {
    const u = conn({ started: s(N - 95) - 500, ended: s(N - 64) - 500, active: false, bytes_received: 3100 });
    const r = await bandwidthChart(parseBandwidthRequest({}), source([u]), NOW);
    assert.deepEqual(
      (r.results as Bw[]).map((x) => [x.timestamp, x.incoming]),
      [
        [N - 100, 550],
        [N - 90, 1000],
        [N - 80, 1000],
        [N - 70, 550],
      ],
    );
  });

  test("the interval sets the bucket width; the query filters the connections", async () => {
    let r = await bandwidthChart(parseBandwidthRequest({ interval: 60 }), source(rows), NOW);
    assert.deepEqual(r.results, [
      { timestamp: N - 120, incoming: 3000, outgoing: 200 },
      { timestamp: N - 60, incoming: 3070, outgoing: 30 },
    ]);
    r = await bandwidthChart(parseBandwidthRequest({ query: { profile: "local/iot" }, interval: 0 }), source(rows), NOW);
    assert.equal(r.params.interval, 10, "0 is the default");
    assert.deepEqual(
      (r.results as Bw[]).map((x) => x.incoming),
      [500, 500, 1000, 1000, 1000],
    );
  });

  test("only the last BANDWIDTH_MAX_BUCKETS intervals are covered", async () => {
    const old = conn({ started: s(N - 2 * BANDWIDTH_MAX_BUCKETS * 10), bytes_received: 2 * BANDWIDTH_MAX_BUCKETS * 10 });
    const r = await bandwidthChart(parseBandwidthRequest({}), source([old]), NOW);
    const b = r.results as Bw[];
    assert.equal(b.length, BANDWIDTH_MAX_BUCKETS);
    assert.equal(b[0]!.timestamp, N - BANDWIDTH_MAX_BUCKETS * 10);
    assert.ok(b.every((x) => x.incoming === 10));
  });

  test("a source's per-interval samples are summed instead, for the connections that match", async () => {
    const samples: BandwidthSample[] = [
      { id: "P", time: s(N - 99), incoming: 10, outgoing: 1 },
      { id: "P", time: s(N - 91), incoming: 20, outgoing: 2 },
      { id: "Q", time: s(N - 92), incoming: 300, outgoing: 0 },
      { id: "R", time: s(N - 5), incoming: 0, outgoing: 0 },
      { id: "gone", time: s(N - 5), incoming: 999, outgoing: 999 },
    ];
    const r = await bandwidthChart(parseBandwidthRequest({ groupBy: ["id"] }), source(rows, samples), NOW);
    assert.deepEqual(r.results, [
      { timestamp: N - 100, incoming: 30, outgoing: 3, id: "P" },
      { timestamp: N - 100, incoming: 300, outgoing: 0, id: "Q" },
      { timestamp: N - 10, incoming: 0, outgoing: 0, id: "R" },
    ]);
    assert.equal(r.params.samples, true);
    const lan = await bandwidthChart(parseBandwidthRequest({ query: { profile: "local/lan" } }), source(rows, samples), NOW);
    assert.deepEqual(lan.results, [{ timestamp: N - 100, incoming: 30, outgoing: 3 }]);
  });

  test("refuses unknown groupBy keys, bad intervals and unknown fields", () => {
    assert.throws(() => parseBandwidthRequest({ groupBy: ["colour"] }), { message: 'unsupported groupBy key: "colour"' });
    assert.throws(() => parseBandwidthRequest({ interval: -10 }), { message: "interval must be a whole number of seconds, not -10" });
    assert.throws(() => parseBandwidthRequest({ interval: 2.5 }), { message: "interval must be a whole number of seconds, not 2.5" });
    assert.throws(() => parseBandwidthRequest({ textSearch: {} }), { message: 'the chart request: unknown field "textSearch" (allowed: interval, query, groupBy)' });
    assert.deepEqual(parseBandwidthRequest({ Interval: 30, GROUPBY: ["profile"] }), { interval: 30, where: {}, groupBy: ["profile"] });
  });
});
