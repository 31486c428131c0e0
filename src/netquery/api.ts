// netquery's endpoints (PM: service/netquery/module_api.go), on sluice's endpoint registry.
// Requests are parsed by query.ts, run by exec.ts and charts.ts. Errors use sluice's envelope
// ({"error":{"key","message","data"}}): 400 for a request Portmaster would refuse (and for the
// ones it would answer with an SQL error), 503 when the history store is asked for but not
// running, 500 when a source fails while the query runs.

import { performance } from "node:perf_hooks";
import { z } from "zod";
import type { Registry } from "../api/registry.js";
import { Reply, type Ctx } from "../api/http.js";
import { ApiError, Errors } from "../api/errors.js";
import { PERMIT_USER } from "../api/permissions.js";
import { QueryError, parseBatch, parseQuery, readFields, type NetQuery } from "./query.js";
import { executeQuery, type RowSource, type Row } from "./exec.js";
import { bandwidthChart, connectionActiveChart, parseActiveChartRequest, parseBandwidthRequest } from "./charts.js";

export interface NetquerySources {
  /** The live connections. */
  main: RowSource;
  /** The connection history; null while the store is not running (read on every request). */
  history: RowSource | null;
  /** Removes the history of these profiles ("local/<id>"), or all of it for an empty list; resolves to the number removed. */
  clearHistory(profileIDs: string[]): Promise<number>;
  /** Applies the retention settings; resolves to the number removed. */
  cleanupHistory(): Promise<number>;
}

export interface NetqueryOptions {
  /** The clock the charts use (ms since the epoch). */
  now?: () => number;
}

const HISTORY_DOWN = "the history store is not running (query the \"main\" database, or start history recording)";

function badQuery(err: unknown, name?: string): unknown {
  if (err instanceof QueryError) return Errors.badRequest(name === undefined ? err.message : `query ${JSON.stringify(name)}: ${err.message}`);
  return err;
}

/** The request JSON: `?q=` on GET/HEAD, the body otherwise. `optional`: an empty body is undefined. */
function requestJson(ctx: Ctx, optional = false): unknown {
  if (ctx.method === "GET" || ctx.method === "HEAD") {
    const q = optional ? ctx.param("q", "") : ctx.param("q");
    if (q.trim() === "") return undefined;
    try {
      return JSON.parse(q);
    } catch (err) {
      throw Errors.badRequest(`invalid query: the q parameter is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (optional && (ctx.body === null || ctx.body.toString("utf8").trim() === "")) return undefined;
  return ctx.json(z.unknown());
}

/** Portmaster-style Server-Timing metrics, durations in ms. */
function serverTiming(metrics: [name: string, desc: string, ms: number][]): string {
  return metrics.map(([n, d, ms]) => `${n};desc="${d}";dur=${ms.toFixed(3)}`).join(", ");
}

/** Header values must be one line of visible ASCII. */
function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "?");
}

function needsHistory(q: NetQuery): boolean {
  return q.databases.includes("history");
}

export function registerNetquery(reg: Registry, sources: NetquerySources, opts: NetqueryOptions = {}): void {
  const now = opts.now ?? Date.now;
  const rowSources = () => ({ main: sources.main, history: sources.history });

  reg.register({
    name: "Query Connections",
    description:
      'Queries the connection list (Portmaster netquery): {"select", "query", "groupBy", "orderBy", "textSearch", "page", "pageSize", "databases"} ' +
      'as a POST/PUT body or GET ?q=<JSON>; replies {"results": [...]}. Databases: "main" (live, the default) and "history".',
    path: "netquery/query",
    parameters: [{ Method: "GET", Field: "q", Value: "JSON", Description: "The query, URL-encoded (instead of a body)." }],
    read: PERMIT_USER,
    write: PERMIT_USER,
    writeMethods: ["POST", "PUT"],
    handler: async (ctx) => {
      const t0 = performance.now();
      let q: NetQuery;
      try {
        q = parseQuery(requestJson(ctx));
      } catch (err) {
        throw badQuery(err);
      }
      if (needsHistory(q) && sources.history === null) throw Errors.unavailable(HISTORY_DOWN);
      const t1 = performance.now();
      let results: Row[];
      try {
        results = await executeQuery(q, rowSources());
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw Errors.internal(`Failed to execute query: ${(err as Error)?.message ?? String(err)}`);
      }
      const t2 = performance.now();
      ctx.setHeader("Server-Timing", serverTiming([["query_parsed", "Query has been parsed", t1 - t0], ["query_exec", "Query execution time", t2 - t1]]));
      return { results };
    },
  });

  reg.register({
    name: "Batch Query Connections",
    description:
      'Runs several netquery queries at once: {"<name>": <query>, ...} -> {"<name>": [rows], ...}. An invalid query fails the whole batch (400, naming it); ' +
      "a query that fails while running leaves null under its name, and the reply is 500 with an X-Query-Error header listing the failures.",
    path: "netquery/query/batch",
    parameters: [{ Method: "GET", Field: "q", Value: "JSON", Description: "The batch, URL-encoded (instead of a body)." }],
    read: PERMIT_USER,
    write: PERMIT_USER,
    writeMethods: ["POST", "PUT"],
    handler: async (ctx) => {
      const t0 = performance.now();
      let batch: Map<string, NetQuery>;
      try {
        batch = parseBatch(requestJson(ctx));
      } catch (err) {
        throw badQuery(err);
      }
      for (const [name, q] of batch) {
        if (needsHistory(q) && sources.history === null) throw Errors.unavailable(`query ${JSON.stringify(name)}: ${HISTORY_DOWN}`);
      }
      const t1 = performance.now();
      const out: Record<string, Row[] | null> = {};
      const failures: string[] = [];
      const srcs = rowSources();
      for (const [name, q] of batch) {
        try {
          out[name] = await executeQuery(q, srcs);
        } catch (err) {
          out[name] = null;
          failures.push(`${name}: ${(err as Error)?.message ?? String(err)}`);
        }
      }
      const t2 = performance.now();
      ctx.setHeader("Server-Timing", serverTiming([["query_parsed", "Query has been parsed", t1 - t0], ["query_exec", "Query execution time", t2 - t1]]));
      // One header carries every failure (comma-separated, the same as repeated headers to HTTP).
      if (failures.length > 0) return new Reply(500, out, { "X-Query-Error": headerSafe(failures.join(", ")) });
      return out;
    },
  });

  /** A chart endpoint: parse the request (400 on bad input), compute it over the live view, time it. */
  const chartHandler =
    <R>(parse: (raw: unknown) => R, chart: (req: R, main: RowSource, now: number) => Promise<unknown>) =>
    async (ctx: Ctx): Promise<unknown> => {
      const t0 = performance.now();
      let req: R;
      try {
        req = parse(requestJson(ctx, true));
      } catch (err) {
        throw badQuery(err);
      }
      try {
        const reply = await chart(req, sources.main, now());
        ctx.setHeader("Server-Timing", serverTiming([["query_exec", "Chart computation time", performance.now() - t0]]));
        return reply;
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw Errors.internal(`Failed to execute query: ${(err as Error)?.message ?? String(err)}`);
      }
    };

  reg.register({
    name: "Active Connections Chart",
    description:
      'Active connections over the last 10 minutes in 10-second buckets: {"query"?, "textSearch"?} (an empty body is fine) -> ' +
      '{"results": [{"timestamp", "value", "countBlocked"}], "query", "params"}; value and countBlocked are connection-seconds, as in Portmaster.',
    path: "netquery/charts/connection-active",
    write: PERMIT_USER,
    writeMethods: ["POST"],
    handler: chartHandler(parseActiveChartRequest, connectionActiveChart),
  });

  reg.register({
    name: "Bandwidth Chart",
    description:
      'Bytes received (incoming) and sent (outgoing) per interval: {"interval"? (seconds, default 10), "query"?, "groupBy"?} -> ' +
      '{"results": [{"timestamp", "incoming", "outgoing", ...groupBy columns}], "query", "params"}. Per-connection totals are spread over each connection\'s active time.',
    path: "netquery/charts/bandwidth",
    write: PERMIT_USER,
    writeMethods: ["POST"],
    handler: chartHandler(parseBandwidthRequest, bandwidthChart),
  });

  reg.register({
    name: "Remove connections from profile history",
    description: 'Removes the history of one or more profiles: {"profileIDs": ["local/<id>", ...]}; an empty list clears all history.',
    path: "netquery/history/clear",
    mimeType: "text/plain",
    write: PERMIT_USER,
    writeMethods: ["POST"],
    handler: async (ctx) => {
      let ids: string[] = [];
      try {
        const f = readFields(ctx.json(z.unknown()), ["profileIDs"], "the request");
        const v = f.get("profileIDs");
        if (v !== undefined) {
          if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new QueryError("profileIDs must be an array of profile IDs (strings)");
          ids = v as string[];
        }
      } catch (err) {
        if (err instanceof QueryError) throw Errors.badBody(err.message);
        throw err;
      }
      if (sources.history === null) throw Errors.unavailable(HISTORY_DOWN);
      await sources.clearHistory(ids);
      return "Successfully cleared history.";
    },
  });

  reg.register({
    name: "Apply connection history retention threshold",
    description: "Deletes history older than the retention settings allow.",
    path: "netquery/history/cleanup",
    mimeType: "text/plain",
    write: PERMIT_USER,
    writeMethods: ["POST"],
    handler: async () => {
      if (sources.history === null) throw Errors.unavailable(HISTORY_DOWN);
      await sources.cleanupHistory();
      return "Deleted outdated connections.";
    },
  });
}
