// netquery's two charts (PM: service/netquery/{active_chart_handler,bandwidth_chart_handler}.go),
// over the live ("main") connections only, as Portmaster's run on its in-memory database.
// Their replies carry "query" and "params" as Portmaster's do; there is no SQL here, so "query"
// describes in words what was computed and "params" holds the inputs it was computed from.

import type { ConnRecord } from "../flow/types.js";
import { COLUMNS, QueryError, parseTextSearch, parseWhere, readFields, type TextSearch, type Where } from "./query.js";
import { columnValue, compileWhere, eachRow, normalize, render, type RowSource, type Row } from "./exec.js";

export interface ChartReply {
  results: Row[];
  query: string;
  params: Record<string, unknown>;
}

// --- connection-active ---------------------------------------------------------------------------

/** Seconds covered, and the bucket width (Portmaster's constants). */
export const ACTIVE_WINDOW_S = 600;
export const ACTIVE_BUCKET_S = 10;
/** Verdicts the chart counts as allowed: Accept, RerouteToNameserver, RerouteToTunnel. */
const ALLOWED_VERDICTS = new Set([2, 5, 6]);

export interface ActiveChartRequest {
  where: Where;
  textSearch: TextSearch | null;
}

/** {query?, textSearch?}; undefined (an empty body) is an empty request. */
export function parseActiveChartRequest(raw: unknown): ActiveChartRequest {
  if (raw === undefined || raw === null) return { where: {}, textSearch: null };
  const f = readFields(raw, ["query", "textSearch"], "the chart request");
  return { where: parseWhere(f.get("query")), textSearch: parseTextSearch(f.get("textSearch")) };
}

/**
 * For every second t of the last 600 (now-600 .. now-1), the connections active then (started
 * <= t, and ended null or >= t, in whole seconds) that match the request; summed per 10-second
 * bucket. As in Portmaster, `value` and `countBlocked` are sums over the bucket's seconds, i.e.
 * connection-seconds (a connection active through a whole bucket counts 10). Every bucket is
 * reported, including empty ones, keyed by its first second.
 */
export async function connectionActiveChart(req: ActiveChartRequest, main: RowSource, now: number): Promise<ChartReply> {
  const nowS = Math.floor(now / 1000);
  const t0 = nowS - ACTIVE_WINDOW_S;
  const t1 = nowS - 1;
  const allowed = new Float64Array(ACTIVE_WINDOW_S + 1);
  const blocked = new Float64Array(ACTIVE_WINDOW_S + 1);
  const pred = compileWhere(req.where, req.textSearch);
  // Any row that started by now may still be active: no lower bound on `started`.
  await eachRow([main], pred ? { to: now + 1, filter: pred } : { to: now + 1 }, pred, (r: ConnRecord) => {
    const s = Math.floor(r.started / 1000);
    const e = r.ended === null || r.ended === undefined ? t1 : Math.min(Math.floor(r.ended / 1000), t1);
    const a = Math.max(s, t0);
    if (a > e) return;
    const d = ALLOWED_VERDICTS.has(r.verdict) ? allowed : blocked;
    d[a - t0] += 1;
    d[e - t0 + 1] -= 1;
  });
  const results: Row[] = [];
  let ok = 0;
  let bad = 0;
  let cur: { timestamp: number; value: number; countBlocked: number } | null = null;
  for (let t = t0; t <= t1; t++) {
    ok += allowed[t - t0]!;
    bad += blocked[t - t0]!;
    const bucket = Math.floor(t / ACTIVE_BUCKET_S) * ACTIVE_BUCKET_S;
    if (cur === null || cur.timestamp !== bucket) {
      cur = { timestamp: bucket, value: 0, countBlocked: 0 };
      results.push(cur);
    }
    cur.value += ok;
    cur.countBlocked += bad;
  }
  return {
    results,
    query:
      `connection-active: for each second t from ${t0} to ${t1} (unix seconds), the connections of the live database ` +
      `active at t (started <= t and (ended is null or ended >= t), in whole seconds)` +
      (pred ? " that match params.query and params.textSearch" : "") +
      `; summed per ${ACTIVE_BUCKET_S}-second bucket (timestamp = the bucket's first second): ` +
      `value = connection-seconds with verdict 2, 5 or 6 (allowed), countBlocked = connection-seconds with any other verdict`,
    params: { from: t0, to: t1, bucketSeconds: ACTIVE_BUCKET_S, query: req.where, textSearch: req.textSearch },
  };
}

// --- bandwidth -----------------------------------------------------------------------------------

/** How many intervals back the bandwidth chart reaches (10 hours at the default 10 s). */
export const BANDWIDTH_MAX_BUCKETS = 3600;

export interface BandwidthRequest {
  /** Bucket width in seconds. */
  interval: number;
  where: Where;
  groupBy: string[];
}

/** {interval?, query?, groupBy?}; an interval of 0 or none is 10 s. */
export function parseBandwidthRequest(raw: unknown): BandwidthRequest {
  if (raw === undefined || raw === null) return { interval: 10, where: {}, groupBy: [] };
  const f = readFields(raw, ["interval", "query", "groupBy"], "the chart request");
  let interval = 10;
  if (f.has("interval")) {
    const v = f.get("interval");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new QueryError(`interval must be a whole number of seconds, not ${JSON.stringify(v)}`);
    if (v > 0) interval = v;
  }
  const groupBy: string[] = [];
  if (f.has("groupBy")) {
    const g = f.get("groupBy");
    if (!Array.isArray(g)) throw new QueryError(`groupBy must be an array of column names`);
    for (const c of g) {
      if (typeof c !== "string" || !COLUMNS.has(c)) throw new QueryError(`unsupported groupBy key: ${JSON.stringify(c)}`);
      groupBy.push(c);
    }
  }
  return { interval, where: parseWhere(f.get("query")), groupBy };
}

interface BwGroup {
  values: unknown[];
  /** Bytes that fall into part of a bucket (or samples), by bucket index: [incoming, outgoing]. */
  part: Map<number, [number, number]>;
  /** Rate changes for whole buckets, as a difference array: [incoming, outgoing] per bucket. */
  diff: Map<number, [number, number]>;
  lo: number;
  hi: number;
}

function add(m: Map<number, [number, number]>, i: number, a: number, b: number): void {
  const e = m.get(i);
  if (e) {
    e[0] += a;
    e[1] += b;
  } else m.set(i, [a, b]);
}

/**
 * Bytes received (incoming) and sent (outgoing) per `interval`-second bucket and per groupBy
 * values, ordered by time. Portmaster sums per-interval samples (main.bandwidth). sluice keeps
 * per-connection totals instead, so unless the source provides samples, each connection's
 * totals are spread evenly over its active time (started to ended, or to now while active): the
 * sums per bucket are right on average, but a burst inside a long connection is smoothed over
 * its whole life. Only the last BANDWIDTH_MAX_BUCKETS intervals are covered (the share of a
 * connection's bytes before that is left out); values are rounded to whole bytes.
 */
export async function bandwidthChart(req: BandwidthRequest, main: RowSource, now: number): Promise<ChartReply> {
  const ims = req.interval * 1000;
  const windowStart = now - BANDWIDTH_MAX_BUCKETS * ims;
  const pred = compileWhere(req.where);
  const gb = req.groupBy.map((c) => ({ column: c, kind: COLUMNS.get(c)! }));
  const groups = new Map<string, BwGroup>();
  const groupOf = (r: ConnRecord): BwGroup => {
    const values = gb.map((c) => normalize(c.kind, columnValue(r, c.column)));
    const key = gb.length === 0 ? "" : JSON.stringify(values);
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { values, part: new Map(), diff: new Map(), lo: Infinity, hi: -Infinity }));
    return g;
  };
  const hint = pred ? { to: now + 1, filter: pred } : { to: now + 1 };
  const sampled = typeof main.bandwidth === "function";

  if (sampled) {
    const conns = new Map<string, ConnRecord>();
    await eachRow([main], hint, pred, (r) => {
      conns.set(r.id, r);
    });
    const samples = main.bandwidth!({ from: windowStart, to: now + 1 });
    const take = (s: { id: string; time: number; incoming: number; outgoing: number }): void => {
      const r = conns.get(s.id);
      if (r === undefined || s.time < windowStart) return;
      const g = groupOf(r);
      const i = Math.floor(s.time / ims);
      add(g.part, i, s.incoming, s.outgoing);
      g.lo = Math.min(g.lo, i);
      g.hi = Math.max(g.hi, i);
    };
    if (Symbol.asyncIterator in samples) for await (const s of samples as AsyncIterable<Parameters<typeof take>[0]>) take(s);
    else for (const s of samples as Iterable<Parameters<typeof take>[0]>) take(s);
  } else {
    await eachRow([main], hint, pred, (r) => {
      const bin = r.bytes_received || 0;
      const bout = r.bytes_sent || 0;
      if (bin === 0 && bout === 0) return;
      const start = r.started;
      const end = r.ended === null || r.ended === undefined ? now : r.ended;
      if (end <= start) {
        // No duration to spread over: everything at the start.
        if (start < windowStart || start > now) return;
        const g = groupOf(r);
        const i = Math.floor(start / ims);
        add(g.part, i, bin, bout);
        g.lo = Math.min(g.lo, i);
        g.hi = Math.max(g.hi, i);
        return;
      }
      const s = Math.max(start, windowStart);
      const e = Math.min(end, now);
      if (e <= s) return;
      const rin = bin / (end - start);
      const rout = bout / (end - start);
      const i0 = Math.floor(s / ims);
      const i1 = Math.ceil(e / ims) - 1;
      const g = groupOf(r);
      if (i0 === i1) add(g.part, i0, rin * (e - s), rout * (e - s));
      else {
        const head = (i0 + 1) * ims - s;
        const tail = e - i1 * ims;
        add(g.part, i0, rin * head, rout * head);
        add(g.part, i1, rin * tail, rout * tail);
        if (i1 > i0 + 1) {
          add(g.diff, i0 + 1, rin * ims, rout * ims);
          add(g.diff, i1, -rin * ims, -rout * ims);
        }
      }
      g.lo = Math.min(g.lo, i0);
      g.hi = Math.max(g.hi, i1);
    });
  }

  const out: { t: number; n: number; row: Row }[] = [];
  let n = 0;
  for (const g of groups.values()) {
    let runIn = 0;
    let runOut = 0;
    for (let i = g.lo; i <= g.hi; i++) {
      const d = g.diff.get(i);
      if (d) {
        runIn += d[0];
        runOut += d[1];
      }
      const p = g.part.get(i);
      const inc = runIn + (p ? p[0] : 0);
      const outg = runOut + (p ? p[1] : 0);
      // Samples are reported as they are; spread totals only where some bytes fell.
      if (!(p && sampled) && inc < 1e-6 && outg < 1e-6) continue;
      const row: Row = { timestamp: i * req.interval, incoming: Math.round(inc), outgoing: Math.round(outg) };
      for (let j = 0; j < gb.length; j++) row[gb[j]!.column] = render(gb[j]!.kind, g.values[j]);
      out.push({ t: i, n: n++, row });
    }
  }
  out.sort((a, b) => a.t - b.t || a.n - b.n);
  const by = req.groupBy.length > 0 ? ` and per ${req.groupBy.join(", ")}` : "";
  return {
    results: out.map((o) => o.row),
    query: sampled
      ? `bandwidth: the traffic samples of the live connections${pred ? " that match params.query" : ""}, summed per ${req.interval}-second bucket${by} (timestamp = the bucket's first second), ordered by time`
      : `bandwidth: bytes_received (incoming) and bytes_sent (outgoing) of the live connections${pred ? " that match params.query" : ""}, ` +
        `each spread evenly over the connection's active time (started to ended, or to now while active), summed per ${req.interval}-second bucket${by} ` +
        `(timestamp = the bucket's first second), ordered by time. sluice keeps per-connection byte totals, not per-interval samples, so this is an approximation: ` +
        `a burst is smoothed over its connection's life. Only the last ${BANDWIDTH_MAX_BUCKETS} buckets (from params.from) are covered.`,
    params: { interval: req.interval, query: req.where, groupBy: req.groupBy, from: Math.floor(windowStart / 1000), to: Math.floor(now / 1000), samples: sampled },
  };
}
