// netquery's endpoints: registered on a Registry and called two ways, through a Ctx as the
// server builds it, and over HTTP on an in-process ApiServer (with a stand-in authenticator:
// "Bearer user" is a User, no credentials anonymous), for statuses, headers and bodies.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ConnRecord } from "../src/flow/types.js";
import { connRecord } from "./helpers/conns.js";
import { Registry } from "../src/api/registry.js";
import { Ctx, Reply, type Headers } from "../src/api/http.js";
import { ApiError } from "../src/api/errors.js";
import { ApiServer } from "../src/api/server.js";
import type { Authenticator, AuthResult } from "../src/api/auth/authenticator.js";
import { ANONYMOUS, PERMIT_USER, type Token } from "../src/api/permissions.js";
import { registerNetquery, type NetquerySources } from "../src/netquery/api.js";
import type { RowSource } from "../src/netquery/exec.js";

const T0 = Date.UTC(2024, 4, 1, 10, 20, 30);
/** The charts' clock: 2024-05-01T12:00:00Z. */
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
let seq = 0;

function conn(o: Partial<ConnRecord> = {}): ConnRecord {
  const n = seq++;
  return connRecord(n, T0, { id: `c${n}`, ...o });
}

const live = [
  conn({ id: "a", domain: "a.example.", verdict: 2, started: NOW - 30_000 }),
  conn({ id: "b", domain: "b.example.", verdict: 3, started: NOW - 20_000 }),
];
const old = [conn({ id: "h", domain: "old.example.", active: false, ended: T0 + 1000 })];

interface Fake extends NetquerySources {
  cleared: string[][];
  cleanups: number;
}

function sources(history: RowSource | null = { name: "history", rows: () => old }): Fake {
  const f: Fake = {
    main: { name: "main", rows: () => live },
    history,
    cleared: [],
    cleanups: 0,
    async clearHistory(ids) {
      f.cleared.push(ids);
      return 1;
    },
    async cleanupHistory() {
      f.cleanups++;
      return 0;
    },
  };
  return f;
}

function registry(src: NetquerySources): Registry {
  const reg = new Registry();
  registerNetquery(reg, src, { now: () => NOW });
  return reg;
}

const USER: Token = { read: PERMIT_USER, write: PERMIT_USER, via: "key", id: "u", name: "user" };

function headers(o: Partial<Headers> = {}): Headers {
  return {
    authorization: "",
    cookie: "",
    sluiceAuth: "",
    csrf: "",
    contentType: "",
    contentLength: "",
    transferEncoding: "",
    accept: "",
    host: "127.0.0.1",
    origin: "",
    acrm: "",
    ...o,
  };
}

/** Calls an endpoint's handler the way the server does. */
async function invoke(reg: Registry, method: string, path: string, o: { query?: string; body?: unknown; raw?: string } = {}): Promise<{ ctx: Ctx; result: unknown }> {
  const found = reg.match(path);
  assert.ok(found, `registered: ${path}`);
  const ctx = new Ctx(method, path, found.vars, o.query ?? "", headers({ contentType: o.body !== undefined || o.raw !== undefined ? "application/json" : "" }), () => "127.0.0.1", USER);
  if (o.raw !== undefined) ctx.body = Buffer.from(o.raw);
  else if (o.body !== undefined) ctx.body = Buffer.from(JSON.stringify(o.body));
  return { ctx, result: await found.ep.handler(ctx) };
}

async function refused(p: Promise<unknown>, status: number, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApiError, `an ApiError, got ${String(err)}`);
    assert.equal(err.status, status);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe("registration", () => {
  test("six endpoints with Portmaster's paths and permissions", () => {
    const list = registry(sources()).export();
    const by = new Map(list.map((e) => [e.Path as string, e]));
    assert.deepEqual([...by.keys()].sort(), [
      "netquery/charts/bandwidth",
      "netquery/charts/connection-active",
      "netquery/history/cleanup",
      "netquery/history/clear",
      "netquery/query",
      "netquery/query/batch",
    ]);
    for (const p of ["netquery/query", "netquery/query/batch"]) {
      assert.equal(by.get(p)!.Read, PERMIT_USER);
      assert.equal(by.get(p)!.Write, PERMIT_USER);
      assert.deepEqual(by.get(p)!.WriteMethods, ["POST", "PUT"]);
    }
    for (const p of ["netquery/charts/connection-active", "netquery/charts/bandwidth", "netquery/history/clear", "netquery/history/cleanup"]) {
      assert.equal(by.get(p)!.Read, undefined, `${p} is write-only`);
      assert.equal(by.get(p)!.Write, PERMIT_USER);
      assert.equal(by.get(p)!.WriteMethod, "POST");
    }
    assert.equal(by.get("netquery/history/clear")!.MimeType, "text/plain");
  });
});

describe("handlers through a Ctx", () => {
  test("netquery/query reads GET ?q=<JSON> (ignoring origin) and POST/PUT bodies, and sets Server-Timing", async () => {
    const reg = registry(sources());
    const q = { select: ["id"], orderBy: { field: "started", desc: true } };
    const get = await invoke(reg, "GET", "netquery/query", { query: `q=${encodeURIComponent(JSON.stringify(q))}&origin=netquery-viewer` });
    assert.deepEqual(get.result, { results: [{ id: "b" }, { id: "a" }] });
    assert.match(get.ctx.out["Server-Timing"]!, /^query_parsed;desc="[^"]+";dur=\d+\.\d{3}, query_exec;desc="[^"]+";dur=\d+\.\d{3}$/);
    assert.deepEqual((await invoke(reg, "POST", "netquery/query", { body: q })).result, { results: [{ id: "b" }, { id: "a" }] });
    assert.deepEqual((await invoke(reg, "PUT", "netquery/query", { body: { ...q, databases: ["history"] } })).result, { results: [{ id: "h" }] });
  });

  test("invalid queries are 400s that say what is wrong", async () => {
    const reg = registry(sources());
    await refused(invoke(reg, "POST", "netquery/query", { body: { query: { colour: 1 } } }), 400, "column colour is not allowed");
    await refused(invoke(reg, "POST", "netquery/query", { body: { limit: 5 } }), 400, /^the query request: unknown field "limit"/);
    await refused(invoke(reg, "POST", "netquery/query", { raw: "{nope" }), 400, /^Invalid request body data \(no valid JSON\)/);
    await refused(invoke(reg, "POST", "netquery/query", { raw: "" }), 400, "No request body data");
    await refused(invoke(reg, "GET", "netquery/query"), 400, 'missing query parameter "q"');
    await refused(invoke(reg, "GET", "netquery/query", { query: "q=%7B" }), 400, /^invalid query: the q parameter is not valid JSON/);
  });

  test("asking for history while the history store is not running is a 503", async () => {
    const reg = registry(sources(null));
    await refused(invoke(reg, "POST", "netquery/query", { body: { databases: ["main", "history"] } }), 503, /^the history store is not running/);
    assert.equal(((await invoke(reg, "POST", "netquery/query", { body: { select: ["id"] } })).result as { results: unknown[] }).results.length, 2, "main still answers");
    await refused(invoke(reg, "POST", "netquery/history/clear", { body: { profileIDs: [] } }), 503, /^the history store is not running/);
    await refused(invoke(reg, "POST", "netquery/history/cleanup"), 503, /^the history store is not running/);
  });

  test("a source failing while the query runs is a 500", async () => {
    const src = sources();
    src.main = {
      name: "main",
      rows: () => {
        throw new Error("disk on fire");
      },
    };
    await refused(invoke(registry(src), "POST", "netquery/query", { body: {} }), 500, "Failed to execute query: disk on fire");
  });

  test("batch: named queries in, named rows out; an invalid one fails the batch with its name", async () => {
    const reg = registry(sources());
    const { result } = await invoke(reg, "POST", "netquery/query/batch", {
      body: { count: { select: [{ $count: { field: "*", as: "n" } }] }, blocked: { select: ["id"], query: { verdict: 3 } }, past: { select: ["id"], databases: ["history"] } },
    });
    assert.deepEqual(result, { count: [{ n: 2 }], blocked: [{ id: "b" }], past: [{ id: "h" }] });
    await refused(invoke(reg, "POST", "netquery/query/batch", { body: { ok: {}, broken: { orderBy: "colour" } } }), 400, /^query "broken": orderBy: column name "colour" not allowed/);
    await refused(invoke(registry(sources(null)), "POST", "netquery/query/batch", { body: { ok: {}, past: { databases: ["history"] } } }), 503, /^query "past": the history store is not running/);
  });

  test("batch: a query failing while it runs gives 500, null for it, the other results, and X-Query-Error", async () => {
    const src = sources({
      name: "history",
      rows: () => {
        throw new Error("history\nis broken");
      },
    });
    const { result } = await invoke(registry(src), "POST", "netquery/query/batch", { body: { live: { select: ["id"] }, past: { databases: ["history"] }, past2: { databases: ["history"] } } });
    assert.ok(result instanceof Reply);
    assert.equal(result.status, 500);
    assert.deepEqual(result.body, { live: [{ id: "a" }, { id: "b" }], past: null, past2: null });
    assert.equal(result.headers["X-Query-Error"], "past: history?is broken, past2: history?is broken");
  });

  test("charts take an empty body or a request, and answer results, query and params", async () => {
    const reg = registry(sources());
    const empty = (await invoke(reg, "POST", "netquery/charts/connection-active")).result as { results: { timestamp: number; value: number; countBlocked: number }[]; query: string; params: Record<string, unknown> };
    assert.equal(empty.results.length, 60);
    assert.deepEqual(empty.results.at(-1), { timestamp: NOW / 1000 - 10, value: 10, countBlocked: 10 });
    assert.equal(typeof empty.query, "string");
    assert.equal(empty.params.from, NOW / 1000 - 600);
    const filtered = (await invoke(reg, "POST", "netquery/charts/connection-active", { body: { query: { verdict: 3 } } })).result as typeof empty;
    assert.equal(filtered.results.reduce((a, b) => a + b.value, 0), 0);
    const bw = (await invoke(reg, "POST", "netquery/charts/bandwidth", { body: { interval: 60 } })).result as typeof empty;
    assert.deepEqual(bw.results, []);
    assert.equal(bw.params.interval, 60);
    await refused(invoke(reg, "POST", "netquery/charts/bandwidth", { body: { groupBy: ["colour"] } }), 400, 'unsupported groupBy key: "colour"');
  });

  test("history/clear passes the profile IDs (none: all) and answers text; history/cleanup applies retention", async () => {
    const src = sources();
    const reg = registry(src);
    assert.equal((await invoke(reg, "POST", "netquery/history/clear", { body: { profileIDs: ["local/lan", "local/iot"] } })).result, "Successfully cleared history.");
    assert.equal((await invoke(reg, "POST", "netquery/history/clear", { body: {} })).result, "Successfully cleared history.");
    assert.equal((await invoke(reg, "POST", "netquery/history/clear", { body: { profileids: [] } })).result, "Successfully cleared history.");
    assert.deepEqual(src.cleared, [["local/lan", "local/iot"], [], []]);
    await refused(invoke(reg, "POST", "netquery/history/clear", { body: { profileIDs: "local/lan" } }), 400, "profileIDs must be an array of profile IDs (strings)");
    await refused(invoke(reg, "POST", "netquery/history/clear", { body: { ids: [] } }), 400, 'the request: unknown field "ids" (allowed: profileIDs)');
    assert.equal((await invoke(reg, "POST", "netquery/history/cleanup")).result, "Deleted outdated connections.");
    assert.equal(src.cleanups, 1);
  });
});

// --- over HTTP -----------------------------------------------------------------------------------

class StubAuth {
  authenticate(h: Headers): AuthResult {
    const token = h.authorization === "Bearer user" ? USER : ANONYMOUS;
    return { token, failure: null, sessionKey: null, csrf: null, retryAfter: 0 };
  }
}

describe("over HTTP", () => {
  let server: ApiServer;
  let base: string;
  let src: Fake;

  before(async () => {
    src = sources();
    server = new ApiServer({
      host: "127.0.0.1",
      port: 0,
      registry: registry(src),
      auth: new StubAuth() as unknown as Authenticator,
      devMode: () => false,
      maxBody: () => 1 << 20,
      log: { info: () => {}, warn: () => {} },
    });
    const port = await server.listen();
    base = `http://127.0.0.1:${port}/api/v1/`;
  });
  after(() => server?.close());

  const call = async (path: string, o: { method?: string; json?: unknown; user?: boolean } = {}) => {
    const h: Record<string, string> = {};
    if (o.user !== false) h.Authorization = "Bearer user";
    if (o.json !== undefined) h["Content-Type"] = "application/json";
    const r = await fetch(base + path, { method: o.method ?? (o.json !== undefined ? "POST" : "GET"), headers: h, body: o.json === undefined ? undefined : JSON.stringify(o.json) });
    const text = await r.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, headers: r.headers, text, json };
  };

  test("GET with ?q= and POST with a body answer 200 with results and a Server-Timing header", async () => {
    const q = encodeURIComponent(JSON.stringify({ select: ["id", "started", "active"], query: { verdict: 2 } }));
    let r = await call(`netquery/query?q=${q}&origin=ui`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { results: [{ id: "a", started: "2024-05-01T11:59:30Z", active: true }] });
    assert.match(r.headers.get("server-timing") ?? "", /query_exec;desc="Query execution time";dur=/);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    r = await call("netquery/query", { json: { select: [{ $count: { field: "*", as: "n" } }], databases: ["main", "history"] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { results: [{ n: 3 }] });
  });

  test("needs a User: anonymous requests are 401", async () => {
    const r = await call("netquery/query", { json: {}, user: false });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.key, "unauthorized");
  });

  test("errors come in sluice's envelope with their status", async () => {
    const r = await call("netquery/query", { json: { query: { verdict: { $foo: 1 } } } });
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: { key: "bad_request", message: "unknown operator $foo on column verdict (allowed: $eq, $ne, $in, $notIn, $like, $gt, $ge, $lt, $le)", data: null } });
  });

  test("the charts are write-only: GET is 405, POST (even without a body) answers", async () => {
    let r = await call("netquery/charts/connection-active");
    assert.equal(r.status, 405);
    r = await call("netquery/charts/connection-active", { method: "POST" });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.results.length, 60);
    assert.deepEqual(Object.keys(r.json), ["results", "query", "params"]);
    r = await call("netquery/charts/bandwidth", { json: { groupBy: ["profile"] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.results, []);
  });

  test("batch over HTTP, and history/clear answering text", async () => {
    let r = await call("netquery/query/batch", { method: "PUT", json: { a: { select: ["id"], pageSize: 1 }, h: { select: ["domain"], databases: ["history"] } } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { a: [{ id: "a" }], h: [{ domain: "old.example." }] });
    r = await call("netquery/history/clear", { json: { profileIDs: ["local/lan"] } });
    assert.equal(r.status, 200);
    assert.equal(r.text, "Successfully cleared history.\n");
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
    assert.deepEqual(src.cleared.at(-1), ["local/lan"]);
    r = await call("netquery/history/cleanup", { method: "POST" });
    assert.equal(r.text, "Deleted outdated connections.\n");
  });
});
