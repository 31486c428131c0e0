// Conformance of the database WebSocket (/api/database/v1) with Portmaster's protocol, seen
// from a plain `ws` client against the real server (uWebSockets.js) started in-process:
// upgrade and auth, framing, get/query/sub/qsub/cancel, writes to config:, core:profiles/,
// notifications:all/ (answering an app/auth prompt), and the per-socket limits (a reader that
// stops reading is closed with 4008, too many subscriptions with 4009).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import WebSocket from "ws";
import { Control } from "../src/control/sluice.js";
import { startApi, type Api } from "../src/api/index.js";

// ---- a plain client ----

interface Reply {
  raw: string;
  binary: boolean;
  op: string;
  type: string;
  /** ok/upd/new/del: the full key. */
  key: string;
  /** error/warning: the message. */
  message: string;
  /** ok/upd/new: the payload after the format byte, parsed. */
  data: Record<string, unknown> | null;
  /** ok/upd/new: the format byte. */
  format: string;
}

function parseReply(raw: string, binary: boolean): Reply {
  const parts = raw.split("|");
  const op = parts[0] ?? "";
  const type = parts[1] ?? "";
  const r: Reply = { raw, binary, op, type, key: "", message: "", data: null, format: "" };
  if (type === "ok" || type === "upd" || type === "new" || type === "del") {
    r.key = parts[2] ?? "";
    const payload = parts.slice(3).join("|");
    if (payload !== "") {
      r.format = payload[0]!;
      try {
        r.data = JSON.parse(payload.slice(1)) as Record<string, unknown>;
      } catch {
        r.data = null;
      }
    }
  } else {
    r.message = parts.slice(2).join("|");
  }
  return r;
}

class Client {
  readonly all: Reply[] = [];
  private readonly queues = new Map<string, Reply[]>();
  private readonly waiters = new Map<string, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  closeInfo: { code: number; reason: string } | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextOp = 1;

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      const r = parseReply(data.toString("utf8"), isBinary);
      this.all.push(r);
      const w = this.waiters.get(r.op);
      if (w) {
        this.waiters.delete(r.op);
        w.resolve(r);
      } else {
        this.queue(r.op).push(r);
      }
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        for (const [op, w] of this.waiters) w.reject(new Error(`socket closed (${code} ${reason.toString("utf8")}) while waiting for op ${op}`));
        this.waiters.clear();
        resolve(this.closeInfo);
      });
    });
  }

  /** A fresh operation ID. */
  op(): string {
    return `o${this.nextOp++}`;
  }

  send(text: string): void {
    this.ws.send(text);
  }

  /** Sends `<op>|<rest>` with a fresh op and returns the op. */
  request(rest: string): string {
    const op = this.op();
    this.send(`${op}|${rest}`);
    return op;
  }

  private queue(op: string): Reply[] {
    let q = this.queues.get(op);
    if (!q) this.queues.set(op, (q = []));
    return q;
  }

  /** The next reply for an op, in order. */
  next(op: string, ms = 3000): Promise<Reply> {
    const q = this.queue(op);
    if (q.length > 0) return Promise.resolve(q.shift()!);
    if (this.closeInfo) return Promise.reject(new Error(`socket already closed (${this.closeInfo.code}) before a reply for op ${op}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(op);
        reject(new Error(`no reply for op ${JSON.stringify(op)} within ${ms} ms; last replies: ${JSON.stringify(this.all.slice(-5).map((r) => r.raw.slice(0, 200)))}`));
      }, ms);
      this.waiters.set(op, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** Replies for an op up to and including the first of type `last` (done, error, ...). */
  async until(op: string, last: string[] = ["done", "error"], ms = 3000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (;;) {
      const r = await this.next(op, ms);
      out.push(r);
      if (last.includes(r.type)) return out;
    }
  }

  /** Sends one request and returns its single reply. */
  async ask(rest: string): Promise<Reply> {
    return this.next(this.request(rest));
  }

  /** Replies received so far for an op that nobody has taken yet. */
  pending(op: string): Reply[] {
    return [...this.queue(op)];
  }

  async close(): Promise<void> {
    if (this.closeInfo) return;
    this.ws.close();
    await this.closed;
  }
}

// ---- the server ----

let dir = "";
let api: Api;
let control: Control;
let adminToken = "";
let userToken = "";
let base = "";
let wsUrl = "";
const clients: Client[] = [];

function admin(): Record<string, string> {
  return { Authorization: `Bearer ${adminToken}` };
}

/** Opens a socket; rejects with the HTTP status if the upgrade is refused. */
function connect(headers: Record<string, string> = admin()): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers });
    const c = new Client(ws);
    ws.once("open", () => {
      clients.push(c);
      resolve(c);
    });
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      reject(new Error(`upgrade refused with ${res.statusCode}`));
      res.resume();
      ws.terminate();
    });
    ws.once("error", (err) => reject(err));
  });
}

/** The HTTP status and body a refused upgrade gets (fails if the upgrade succeeds). */
function refusal(headers: Record<string, string>): Promise<{ status: number; body: string; headers: IncomingMessage["headers"] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers });
    ws.once("open", () => {
      ws.terminate();
      reject(new Error("the upgrade was accepted"));
    });
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
    ws.once("error", (err) => {
      if (!/Unexpected server response|closed before/.test(err.message)) reject(err);
    });
  });
}

async function http(method: string, path: string, body?: unknown, token = adminToken): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token === "" ? {} : { Authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

function rulesFile(): string {
  return readFileSync(control.rulesPath, "utf8");
}

function configFile(): Record<string, unknown> {
  return JSON.parse(readFileSync(control.configPath, "utf8")) as Record<string, unknown>;
}

/**
 * Asserts an op gets no further reply: `sentinel` is a promise for a reply that the server
 * sends after any reply the op could still get (same socket, later in the same fan-out).
 */
async function assertSilent(c: Client, op: string, sentinel: Promise<unknown>): Promise<void> {
  await sentinel;
  await sleep(50);
  assert.deepEqual(c.pending(op).map((r) => r.raw), [], `op ${op} must get no more replies`);
}

/** The promise's value, or null if it takes longer than ms (the timer is cleared either way). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-ws-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ api: { port: 0 } }));
  const log = { info: () => {}, warn: () => {} };
  control = Control.open(dir, log);
  api = await startApi(control, log, { host: "127.0.0.1", port: 0 });
  control.state = "ready";
  adminToken = readFileSync(join(dir, "admin.token"), "utf8").trim();
  base = `http://127.0.0.1:${api.port}`;
  wsUrl = `ws://127.0.0.1:${api.port}/api/database/v1`;
  const made = await http("POST", "/api/v1/auth/tokens", { name: "u", role: "user" });
  assert.equal(made.status, 201, made.text);
  userToken = (made.json as { token: string }).token;
  assert.match(userToken, /\S{16,}/);
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  api?.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---- upgrade and auth ----

describe("upgrading to /api/database/v1", () => {
  it("refuses an upgrade without credentials with 401", async () => {
    const r = await refusal({});
    assert.equal(r.status, 401);
    assert.match(r.headers["www-authenticate"] ?? "", /^Bearer/);
  });

  it("refuses an upgrade with an unknown token with 401", async () => {
    const r = await refusal({ Authorization: "Bearer slc_thisisnotatokenthisisnotatoken" });
    assert.equal(r.status, 401);
  });

  it("refuses an upgrade with a user-role token with 403, because the database needs Admin", async () => {
    const r = await refusal({ Authorization: `Bearer ${userToken}` });
    assert.equal(r.status, 403);
    assert.match(r.body, /Admin/);
  });

  it("refuses a cross-origin upgrade with 403 even with an admin token", async () => {
    const r = await refusal({ ...admin(), Origin: "http://evil.example" });
    assert.equal(r.status, 403);
    assert.match(r.body, /Cross-Origin/);
  });

  it("accepts a same-origin upgrade with an admin token", async () => {
    const c = await connect({ ...admin(), Origin: `http://127.0.0.1:${api.port}` });
    const r = await c.ask("get|core:status/versions");
    assert.equal(r.type, "ok");
    await c.close();
  });

  it("accepts Basic auth carrying the admin token as password", async () => {
    const basic = Buffer.from(`admin:${adminToken}`).toString("base64");
    const c = await connect({ Authorization: `Basic ${basic}` });
    assert.equal((await c.ask("get|core:status/versions")).type, "ok");
    await c.close();
  });

  it("counts open sockets and forgets closed ones", async () => {
    const before = api.deps.hub.connections;
    const c = await connect();
    assert.equal(api.deps.hub.connections, before + 1);
    await c.close();
    for (let i = 0; i < 50 && api.deps.hub.connections !== before; i++) await sleep(10);
    assert.equal(api.deps.hub.connections, before);
  });
});

// ---- framing and grammar ----

describe("framing and message grammar", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
  });

  it("sends every reply as a binary frame", async () => {
    const op = c.request("query|config:core/");
    const replies = await c.until(op);
    replies.push(await c.ask("get|config:does/not/exist"));
    replies.push(await c.ask("nonsense|x"));
    assert.ok(replies.length >= 4);
    for (const r of replies) assert.equal(r.binary, true, `${r.raw.slice(0, 60)} came as a text frame`);
  });

  it("accepts requests in text frames and in binary frames alike", async () => {
    const t = await c.ask("get|config:core/devMode");
    assert.equal(t.type, "ok");
    const op = c.op();
    c.ws.send(Buffer.from(`${op}|get|config:core/devMode`), { binary: true });
    const b = await c.next(op);
    assert.equal(b.type, "ok");
    assert.equal(b.raw, t.raw.replace(/^[^|]*/, op));
  });

  it("answers a message without a command with an error that has an empty op ID", async () => {
    c.send("justtext");
    const r = await c.next("");
    assert.equal(r.raw, "|error|bad request: malformed message");
  });

  it("answers a message with an empty op ID as malformed", async () => {
    c.send("|get|config:core/devMode");
    const r = await c.next("");
    assert.equal(r.raw, "|error|bad request: malformed message");
  });

  it("answers a write without the key|data separator as malformed, with an empty op ID", async () => {
    c.send("w1|update|config:core/devMode");
    const r = await c.next("");
    assert.equal(r.raw, "|error|bad request: malformed message");
    assert.deepEqual(c.pending("w1"), []);
  });

  it("answers a write payload shorter than two bytes as malformed, with the op ID", async () => {
    const r = await c.ask("update|config:core/devMode|J");
    assert.equal(r.type, "error");
    assert.equal(r.message, "bad request: malformed message");
  });

  it("refuses a payload in a format other than J (JSON)", async () => {
    const r = await c.ask('update|config:core/devMode|C{"Value":true}');
    assert.equal(r.type, "error");
    assert.match(r.message, /format/);
  });

  it("answers an unknown command with bad request: unknown method", async () => {
    const r = await c.ask("frobnicate|config:core/devMode");
    assert.equal(r.raw, `${r.op}|error|bad request: unknown method`);
  });

  it("knows cancel only in its two-part form: <op>|cancel|x is an unknown method", async () => {
    const r = await c.ask("cancel|x");
    assert.equal(r.raw, `${r.op}|error|bad request: unknown method`);
  });

  it("keeps the connection usable after protocol errors", async () => {
    c.send("garbage");
    await c.next("");
    const r = await c.ask("get|config:core/devMode");
    assert.equal(r.type, "ok");
  });
});

// ---- get ----

describe("get", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
  });

  it("returns a config record as ok|<key>|J<json> with Portmaster's fields and _meta", async () => {
    const r = await c.ask("get|config:core/devMode");
    assert.equal(r.type, "ok");
    assert.equal(r.key, "config:core/devMode");
    assert.equal(r.format, "J");
    assert.ok(r.data);
    assert.equal(r.data.Key, "core/devMode");
    assert.equal(r.data.OptType, 4);
    assert.equal(r.data.DefaultValue, false);
    assert.equal("Value" in r.data, false, "Value is only present once the user set it");
    assert.deepEqual(r.data._meta, { Created: 0, Modified: 0, Expires: 0, Deleted: 0, Key: "config:core/devMode" });
  });

  it("answers a missing key with storage entry not found", async () => {
    const r = await c.ask("get|config:does/not/exist");
    assert.equal(r.raw, `${r.op}|error|storage entry not found`);
  });

  it("answers a key in an unknown database with an error naming it", async () => {
    const r = await c.ask("get|nosuchdb:some/key");
    assert.equal(r.type, "error");
    assert.match(r.message, /nosuchdb/);
  });

  it("returns runtime:system/status", async () => {
    const r = await c.ask("get|runtime:system/status");
    assert.equal(r.type, "ok");
    assert.equal(r.key, "runtime:system/status");
    assert.ok(r.data && typeof r.data === "object");
    assert.equal((r.data._meta as { Key: string }).Key, "runtime:system/status");
  });

  it("returns core:status/versions with the sluice version", async () => {
    const r = await c.ask("get|core:status/versions");
    assert.equal(r.type, "ok");
    assert.equal(r.data?.sluice, "0.1.0");
    assert.equal(r.data?.node, process.versions.node);
  });

  it("returns the default profile under core:profiles/local/default", async () => {
    const r = await c.ask("get|core:profiles/local/default");
    assert.equal(r.type, "ok");
    assert.equal(r.data?.ID, "default");
    assert.equal(r.data?.Source, "local");
    assert.ok(Array.isArray(r.data?.Rules));
  });
});

// ---- query ----

describe("query", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
  });

  it("streams every record under the prefix as ok, sorted by key, then done", async () => {
    const replies = await c.until(c.request("query|query config:filter/"));
    const last = replies.pop()!;
    assert.equal(last.raw, `${last.op}|done`);
    assert.ok(replies.length >= 3, `expected several filter/ options, got ${replies.length}`);
    for (const r of replies) {
      assert.equal(r.type, "ok");
      assert.ok(r.key.startsWith("config:filter/"), r.key);
      assert.equal(r.data?.Key, r.key.slice("config:".length));
    }
    const keys = replies.map((r) => r.key);
    assert.deepEqual(keys, [...keys].sort());
  });

  it("accepts the query text with or without the leading word query", async () => {
    const a = await c.until(c.request("query|query config:core/"));
    const b = await c.until(c.request("query|config:core/"));
    assert.deepEqual(a.map((r) => r.key), b.map((r) => r.key));
    assert.ok(a.length > 1);
  });

  it("applies where conditions: OptType == 4 lists only boolean options", async () => {
    const all = (await c.until(c.request("query|query config:"))).filter((r) => r.type === "ok");
    const bools = (await c.until(c.request("query|query config: where OptType == 4"))).filter((r) => r.type === "ok");
    assert.ok(bools.length > 0);
    assert.ok(bools.length < all.length);
    for (const r of bools) assert.equal(r.data?.OptType, 4, r.key);
    assert.deepEqual(bools.map((r) => r.key), all.filter((r) => r.data?.OptType === 4).map((r) => r.key));
  });

  it("applies string conditions on profiles: Default sameas block", async () => {
    const made = await c.ask('create|core:profiles/local/qblock|J{"Default":"block","Rules":["+ example.com"]}');
    assert.equal(made.type, "success", made.raw);
    try {
      const replies = await c.until(c.request("query|query core:profiles/ where Default sameas block"));
      assert.deepEqual(replies.map((r) => `${r.type} ${r.key}`), ["ok core:profiles/local/qblock", "done "]);
      const allow = await c.until(c.request("query|query core:profiles/ where Default sameas allow"));
      assert.ok(allow.some((r) => r.key === "core:profiles/local/default"));
      assert.ok(!allow.some((r) => r.key === "core:profiles/local/qblock"));
    } finally {
      assert.equal((await c.ask("delete|core:profiles/local/qblock")).type, "success");
    }
  });

  it("combines conditions with and, or and not", async () => {
    const r = await c.until(c.request('query|query config: where (OptType == 4 and not Key startswith "filter/") or Key sameas "queues/count"'));
    const keys = r.filter((x) => x.type === "ok").map((x) => x.key);
    assert.ok(keys.includes("config:queues/count"));
    assert.ok(keys.includes("config:core/devMode"));
    assert.ok(!keys.includes("config:filter/ipv6"));
    assert.ok(!keys.includes("config:queues/first"));
  });

  it("answers a query that does not parse with an error and no done", async () => {
    const replies = await c.until(c.request("query|query config: where OptType =="));
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.type, "error");
    assert.match(replies[0]!.message, /query/);
  });

  it("refuses to mix and and or in one group", async () => {
    const r = await c.ask("query|query config: where OptType == 4 and OptType == 3 or OptType == 1");
    assert.equal(r.type, "error");
    assert.match(r.message, /mix/);
  });

  it("answers a query on an unknown database with an error", async () => {
    const r = await c.ask("query|query nosuchdb:x");
    assert.equal(r.type, "error");
    assert.match(r.message, /nosuchdb/);
  });

  it("sends just done for a prefix nothing lies under", async () => {
    const r = await c.until(c.request("query|query config:no/such/prefix"));
    assert.deepEqual(r.map((x) => x.type), ["done"]);
  });

  it("honours limit (with and without offset)", async () => {
    const all = (await c.until(c.request("query|query config:"))).filter((r) => r.type === "ok").map((r) => r.key);
    const limited = (await c.until(c.request("query|query config: limit 2"))).filter((r) => r.type === "ok").map((r) => r.key);
    assert.deepEqual(limited, all.slice(0, 2));
    const paged = (await c.until(c.request("query|query config: limit 2 offset 3"))).filter((r) => r.type === "ok").map((r) => r.key);
    assert.deepEqual(paged, all.slice(3, 5));
    const skipped = (await c.until(c.request("query|query config: offset 4"))).filter((r) => r.type === "ok").map((r) => r.key);
    assert.deepEqual(skipped, all.slice(4));
    const none = await c.until(c.request("query|query config: limit 0"));
    assert.deepEqual(none.map((r) => r.type), ["done"]);
    const bools = (await c.until(c.request("query|query config: where OptType == 4"))).filter((r) => r.type === "ok").map((r) => r.key);
    const firstBool = (await c.until(c.request("query|query config: where OptType == 4 limit 1"))).filter((r) => r.type === "ok").map((r) => r.key);
    assert.deepEqual(firstBool, bools.slice(0, 1), "limit counts matching records only");
  });

  it("keeps a | inside a quoted query value", async () => {
    const r = await c.until(c.request('query|query config: where Key sameas "a|b"'));
    assert.deepEqual(r.map((x) => x.type), ["done"]);
  });
});

// ---- subscriptions ----

describe("sub, qsub and cancel", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
    control.options.set("core/devMode", null);
    control.options.set("api/maxBodyKB", null);
  });

  // Options carry Created 0 and Modified = their last write, so a changed option arrives as
  // `upd` (as in Portmaster's documented example session).
  it("sub sends no snapshot, then the changed option as upd when a matching record changes", async () => {
    const sub = c.request("sub|query config:core/");
    const probe = await c.ask("get|config:core/devMode"); // after this, any snapshot would have arrived
    assert.equal(probe.type, "ok");
    assert.deepEqual(c.pending(sub), [], "sub must not send a snapshot");
    const w = await c.ask('update|config:core/devMode|J{"Value":true}');
    assert.equal(w.type, "success", w.raw);
    const u = await c.next(sub);
    assert.equal(u.type, "upd", u.raw);
    assert.equal(u.key, "config:core/devMode");
    assert.equal(u.data?.Value, true);
    const m = u.data?._meta as { Created: number; Modified: number; Key: string };
    assert.equal(m.Created, 0);
    assert.ok(Math.abs(m.Modified - Date.now() / 1000) < 5, "Modified is the time of the write");
    assert.equal(m.Key, "config:core/devMode");
    const d = await c.ask("delete|config:core/devMode");
    assert.equal(d.type, "success");
    const u2 = await c.next(sub);
    assert.equal(u2.type, "upd", u2.raw); // a reset option is still there: not del
    assert.equal("Value" in (u2.data ?? {}), false);
    c.send(`${sub}|cancel`);
    assert.equal((await c.next(sub)).raw, `${sub}|done`);
  });

  it("qsub sends the snapshot as ok then done, then live updates", async () => {
    const op = c.request("qsub|query config:api/");
    const snap = await c.until(op, ["done"]);
    const done = snap.pop()!;
    assert.equal(done.raw, `${op}|done`);
    assert.ok(snap.length >= 3);
    assert.ok(snap.every((r) => r.type === "ok" && r.key.startsWith("config:api/")));
    const w = await c.ask('update|config:api/maxBodyKB|J{"Key":"api/maxBodyKB","Value":512}');
    assert.equal(w.type, "success", w.raw);
    const u = await c.next(op);
    assert.equal(u.key, "config:api/maxBodyKB");
    assert.equal(u.data?.Value, 512);
    assert.equal(u.data?.Key, "api/maxBodyKB");
    c.send(`${op}|cancel`);
    assert.equal((await c.next(op)).raw, `${op}|done`);
  });

  it("a subscription only delivers records its where clause matches", async () => {
    const bools = c.request("sub|query config: where OptType == 4");
    const all = c.request("sub|query config:");
    assert.equal((await c.ask('update|config:api/maxBodyKB|J{"Value":256}')).type, "success");
    const seen = await c.next(all);
    assert.equal(seen.key, "config:api/maxBodyKB");
    assert.equal((await c.ask('update|config:core/devMode|J{"Value":true}')).type, "success");
    // bools was registered first, so its reply for devMode comes before all's.
    const b = await c.next(bools);
    assert.equal(b.key, "config:core/devMode", "the int option must not reach the OptType == 4 subscription");
    assert.equal((await c.next(all)).key, "config:core/devMode");
    for (const op of [bools, all]) {
      c.send(`${op}|cancel`);
      assert.equal((await c.next(op)).type, "done");
    }
    assert.equal((await c.ask("delete|config:core/devMode")).type, "success");
  });

  it("after cancel (done) an op gets no more messages", async () => {
    const cancelled = c.request("sub|query config:core/");
    const sentinel = c.request("sub|query config:core/");
    c.send(`${cancelled}|cancel`);
    assert.equal((await c.next(cancelled)).raw, `${cancelled}|done`);
    assert.equal((await c.ask('update|config:core/devMode|J{"Value":true}')).type, "success");
    await assertSilent(c, cancelled, c.next(sentinel));
    assert.equal((await c.ask("delete|config:core/devMode")).type, "success");
    await assertSilent(c, cancelled, c.next(sentinel));
    c.send(`${sentinel}|cancel`);
    assert.equal((await c.next(sentinel)).type, "done");
  });

  it("cancel of an unknown op answers could not find subscription", async () => {
    c.send("nope|cancel");
    const r = await c.next("nope");
    assert.equal(r.raw, "nope|error|could not find subscription");
  });

  it("cancel of a finished query answers could not find subscription (Portmaster's quirk)", async () => {
    const op = c.request("query|query config:core/");
    await c.until(op);
    c.send(`${op}|cancel`);
    assert.equal((await c.next(op)).raw, `${op}|error|could not find subscription`);
  });

  it("cancel twice: done, then could not find subscription", async () => {
    const op = c.request("sub|query config:");
    c.send(`${op}|cancel`);
    c.send(`${op}|cancel`);
    assert.equal((await c.next(op)).type, "done");
    assert.equal((await c.next(op)).message, "could not find subscription");
  });

  it("a bad query in sub answers error and registers nothing", async () => {
    const op = c.request("sub|query config: where ((");
    assert.equal((await c.next(op)).type, "error");
    c.send(`${op}|cancel`);
    assert.equal((await c.next(op)).message, "could not find subscription");
  });

  it("a change made on one socket reaches the subscribers on another socket", async () => {
    const other = await connect();
    const op = other.request("sub|query config:core/");
    await other.ask("get|config:core/devMode");
    assert.equal((await c.ask('update|config:core/devMode|J{"Value":true}')).type, "success");
    const u = await other.next(op);
    assert.equal(u.data?.Value, true);
    assert.equal((await c.ask("delete|config:core/devMode")).type, "success");
    assert.equal("Value" in ((await other.next(op)).data ?? {}), false);
    await other.close();
  });
});

// ---- writes to config: ----

describe("writing config: options", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
    control.options.set("core/devMode", null);
    control.options.set("api/maxBodyKB", null);
    control.options.set("filter/mode", null);
  });

  it("update sets the value: get shows it and config.json holds it", async () => {
    const r = await c.ask('update|config:core/devMode|J{"Key":"core/devMode","Value":true}');
    assert.equal(r.raw, `${r.op}|success`);
    const g = await c.ask("get|config:core/devMode");
    assert.equal(g.data?.Value, true);
    assert.equal((configFile().api as Record<string, unknown>).devMode, true);
    assert.equal(control.config.api.devMode, true);
  });

  it("delete resets the option to its default", async () => {
    const r = await c.ask("delete|config:core/devMode");
    assert.equal(r.raw, `${r.op}|success`);
    const g = await c.ask("get|config:core/devMode");
    assert.equal("Value" in (g.data ?? {}), false);
    assert.equal("devMode" in (configFile().api as Record<string, unknown>), false);
    assert.equal(control.config.api.devMode, false);
  });

  it("update with a value of the wrong type is refused and changes nothing", async () => {
    const r = await c.ask('update|config:core/devMode|J{"Value":"yes"}');
    assert.equal(r.type, "error");
    assert.match(r.message, /received invalid value in "Value"/);
    const g = await c.ask("get|config:core/devMode");
    assert.equal("Value" in (g.data ?? {}), false);
  });

  it("update outside the possible values is refused", async () => {
    const r = await c.ask('update|config:filter/mode|J{"Value":"sideways"}');
    assert.equal(r.type, "error");
    assert.match(r.message, /received invalid value in "Value"/);
  });

  it("update of an unknown option is refused", async () => {
    const r = await c.ask('update|config:no/such|J{"Value":1}');
    assert.equal(r.type, "error");
    assert.match(r.message, /no\/such/);
  });

  it("update whose Key names another option is refused", async () => {
    const r = await c.ask('update|config:core/devMode|J{"Key":"api/maxBodyKB","Value":true}');
    assert.equal(r.type, "error");
  });

  it("update with invalid JSON is refused", async () => {
    const r = await c.ask("update|config:core/devMode|J{Value:true");
    assert.equal(r.type, "error");
    assert.match(r.message, /JSON/);
  });

  it("update with a JSON array is refused: values must be in a map", async () => {
    const r = await c.ask("update|config:core/devMode|J[true]");
    assert.equal(r.raw, `${r.op}|error|values must be in a map`);
  });

  it("update with a null Value resets the option", async () => {
    assert.equal((await c.ask('update|config:api/maxBodyKB|J{"Value":300}')).type, "success");
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 300);
    assert.equal((await c.ask('update|config:api/maxBodyKB|J{"Value":null}')).type, "success");
    assert.equal("Value" in ((await c.ask("get|config:api/maxBodyKB")).data ?? {}), false);
  });

  it("update ignores the _meta a client echoes back", async () => {
    const r = await c.ask('update|config:api/maxBodyKB|J{"Key":"api/maxBodyKB","Value":320,"_meta":{"Created":1,"Modified":2,"Expires":0,"Deleted":0,"Key":"config:api/maxBodyKB"}}');
    assert.equal(r.type, "success", r.raw);
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 320);
  });

  it("create sets a value like update", async () => {
    assert.equal((await c.ask('create|config:api/maxBodyKB|J{"Value":333}')).type, "success");
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 333);
  });

  it("insert accepts the payload with a leading J (as the Angular client sends it) and without", async () => {
    const a = await c.ask('insert|config:api/maxBodyKB|J{"Value":400}');
    assert.equal(a.type, "success", a.raw);
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 400);
    const b = await c.ask('insert|config:api/maxBodyKB|{"Value":401}');
    assert.equal(b.type, "success", b.raw);
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 401);
  });

  it("insert sets only the fields it names: without Value the value stays", async () => {
    assert.equal((await c.ask('update|config:api/maxBodyKB|J{"Value":410}')).type, "success");
    const r = await c.ask('insert|config:api/maxBodyKB|{"Description":"ignored"}');
    assert.equal(r.type, "success", r.raw);
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 410);
  });

  it("insert without any field answers could not find any valid values", async () => {
    assert.equal((await c.ask('update|config:api/maxBodyKB|J{"Value":420}')).type, "success");
    const r = await c.ask("insert|config:api/maxBodyKB|{}");
    assert.equal(r.type, "error");
    assert.match(r.message, /could not find any valid values/);
    assert.equal((await c.ask("get|config:api/maxBodyKB")).data?.Value, 420);
  });

  it("writes to read-only databases are refused", async () => {
    const r = await c.ask('update|runtime:system/status|J{"x":1}');
    assert.equal(r.type, "error");
    assert.match(r.message, /read-only/);
    const d = await c.ask("delete|runtime:system/status");
    assert.equal(d.type, "error");
  });
});

// ---- writes to core:profiles/ ----

describe("writing core:profiles/local/<id>", () => {
  let c: Client;
  let watcher: Client;
  let sub = "";
  before(async () => {
    c = await connect();
    watcher = await connect();
    sub = watcher.request("sub|query core:profiles/");
    await watcher.ask("get|core:status/versions");
  });
  after(async () => {
    await c.close();
    await watcher.close();
  });

  it("create with rules succeeds, writes the rules file and subscribers get the record", async () => {
    const r = await c.ask('create|core:profiles/local/kids|J{"Default":"block","Sources":["10.0.0.0/24"],"Rules":["+ example.com","- *.ads.example TCP/443"]}');
    assert.equal(r.raw, `${r.op}|success`);
    const text = rulesFile();
    assert.match(text, /^\[profile kids\]$/m);
    assert.match(text, /^default block$/m);
    assert.match(text, /^source 10\.0\.0\.0\/24$/m);
    assert.match(text, /^- \*\.ads\.example TCP\/443$/m);
    const n = await watcher.next(sub);
    assert.equal(n.type, "new", n.raw);
    assert.equal(n.key, "core:profiles/local/kids");
    assert.deepEqual(n.data?.Rules, ["+ example.com", "- *.ads.example TCP/443"]);
    const g = await c.ask("get|core:profiles/local/kids");
    assert.equal(g.data?.Default, "block");
    assert.deepEqual(g.data?.Sources, ["10.0.0.0/24"]);
  });

  it("create of a profile whose rules do not parse is refused with the line, and the file stays", async () => {
    const before = rulesFile();
    const r = await c.ask('create|core:profiles/local/broken|J{"Rules":["+ example.com","+ exa mple..com TCP/99999"]}');
    assert.equal(r.type, "error");
    assert.match(r.message, /line 2/);
    assert.equal(rulesFile(), before);
    assert.equal((await c.ask("get|core:profiles/local/broken")).message, "storage entry not found");
  });

  it("create with an unknown field is refused", async () => {
    const r = await c.ask('create|core:profiles/local/odd|J{"Colour":"red"}');
    assert.equal(r.type, "error");
    assert.equal((await c.ask("get|core:profiles/local/odd")).type, "error");
  });

  it("create with a profile ID that is not a valid name is refused and leaves the file alone", async () => {
    const before = rulesFile();
    for (const id of ["", "a b", "x]\\ndefault allow\\n[profile y", "x]\ndefault allow\n[profile y"]) {
      const r = await c.ask(`create|core:profiles/local/${id}|J{"Default":"allow"}`);
      assert.equal(r.type, "error", `ID ${JSON.stringify(id)} was accepted`);
    }
    assert.equal(rulesFile(), before);
    assert.equal((await c.ask("get|core:profiles/local/y")).type, "error");
  });

  it("update replaces the whole profile and the file follows", async () => {
    const r = await c.ask('update|core:profiles/local/kids|J{"ID":"kids","Default":"drop","Rules":["- tiktok.com"]}');
    assert.equal(r.type, "success", r.raw);
    const text = rulesFile();
    assert.match(text, /^default drop$/m);
    assert.match(text, /^- tiktok\.com$/m);
    assert.doesNotMatch(text, /example\.com/);
    const u = await watcher.next(sub);
    assert.ok(u.type === "upd" || u.type === "new", u.raw); // new if within the second it was created
    assert.equal(u.data?.Default, "drop");
    assert.deepEqual(u.data?.Sources, []);
  });

  it("insert (with a leading J) changes only the named fields", async () => {
    const r = await c.ask('insert|core:profiles/local/kids|J{"Default":"allow"}');
    assert.equal(r.type, "success", r.raw);
    const g = await c.ask("get|core:profiles/local/kids");
    assert.equal(g.data?.Default, "allow");
    assert.deepEqual(g.data?.Rules, ["- tiktok.com"]);
    await watcher.next(sub);
  });

  it("insert into a profile that does not exist is refused", async () => {
    const r = await c.ask('insert|core:profiles/local/ghost|{"Default":"allow"}');
    assert.equal(r.type, "error");
  });

  it("writes outside profiles/local/ are refused", async () => {
    const r = await c.ask('update|core:status/versions|J{"sluice":"9"}');
    assert.equal(r.type, "error");
  });

  it("delete removes the profile from the file and subscribers get del", async () => {
    const r = await c.ask("delete|core:profiles/local/kids");
    assert.equal(r.raw, `${r.op}|success`);
    assert.doesNotMatch(rulesFile(), /\[profile kids\]/);
    const d = await watcher.next(sub);
    assert.equal(d.raw, `${sub}|del|core:profiles/local/kids`);
    assert.equal((await c.ask("get|core:profiles/local/kids")).message, "storage entry not found");
  });

  it("delete of a profile that does not exist answers storage entry not found", async () => {
    const r = await c.ask("delete|core:profiles/local/kids");
    assert.equal(r.raw, `${r.op}|error|storage entry not found`);
  });

  it("delete of the default profile is refused", async () => {
    const before = rulesFile();
    const r = await c.ask("delete|core:profiles/local/default");
    assert.equal(r.type, "error");
    assert.match(r.message, /default/);
    assert.equal(rulesFile(), before);
    assert.equal((await c.ask("get|core:profiles/local/default")).type, "ok");
  });

  it("replies to operations on different ops interleave and each carries its own op ID", async () => {
    const slow = c.request('create|core:profiles/local/inter|J{"Rules":["+ example.org"]}');
    const gets = Array.from({ length: 5 }, () => c.request("get|config:core/devMode"));
    const query = c.request("query|query config:queues/");
    const bad = c.request("get|config:nope");
    for (const op of gets) assert.equal((await c.next(op)).type, "ok");
    const q = await c.until(query);
    assert.equal(q.at(-1)!.type, "done");
    assert.ok(q.slice(0, -1).every((r) => r.op === query && r.type === "ok"));
    assert.equal((await c.next(bad)).type, "error");
    assert.equal((await c.next(slow)).type, "success");
    const n = await watcher.next(sub);
    assert.equal(n.key, "core:profiles/local/inter");
    assert.equal((await c.ask("delete|core:profiles/local/inter")).type, "success");
    assert.equal((await watcher.next(sub)).type, "del");
  });
});

// ---- notifications ----

describe("notifications:all/", () => {
  let c: Client;
  before(async () => {
    c = await connect();
  });
  after(async () => {
    await c.close();
  });

  it("an app/auth request shows up as a prompt and is answered by update: the request gets a key", async () => {
    const op = c.request("qsub|query notifications:all/");
    await c.until(op, ["done"]);
    const pending = http("GET", "/api/v1/app/auth?app-name=t&read=user&write=user", undefined, "");
    const n = await c.next(op, 5000);
    assert.equal(n.type, "new", n.raw);
    assert.match(n.key, /^notifications:all\//);
    const id = n.data?.EventID as string;
    assert.equal(n.key, `notifications:all/${id}`);
    assert.equal(n.data?.Type, 2);
    assert.equal(n.data?.State, "active");
    assert.deepEqual((n.data?.AvailableActions as { ID: string }[]).map((a) => a.ID).sort(), ["allow", "deny"]);
    const got = await c.ask(`get|notifications:all/${id}`);
    assert.equal(got.type, "ok");

    const r = await c.ask(`update|notifications:all/${id}|J{"EventID":"${id}","SelectedActionID":"allow"}`);
    assert.equal(r.raw, `${r.op}|success`);
    const res = await pending;
    assert.equal(res.status, 200, res.text);
    const body = res.json as { key: string; validUntil: string };
    assert.equal(typeof body.key, "string");
    assert.ok(body.key.length >= 16);
    assert.ok(Date.parse(body.validUntil) > Date.now() + 23 * 3600_000, body.validUntil);
    const u = await c.next(op);
    assert.equal(u.key, n.key);
    assert.equal(u.data?.State, "executed");
    assert.equal(u.data?.SelectedActionID, "allow");
    // The key works, with the rights asked for: user, so no database access.
    assert.equal((await http("GET", "/api/v1/auth/bearer", undefined, body.key)).status, 200);
    assert.equal((await refusal({ Authorization: `Bearer ${body.key}` })).status, 403);

    const again = await c.ask(`update|notifications:all/${id}|J{"SelectedActionID":"deny"}`);
    assert.equal(again.type, "error");
    assert.match(again.message, /already answered/);
    c.send(`${op}|cancel`);
    assert.equal((await c.next(op)).type, "done");
  });

  it("a denied app/auth request gets 403", async () => {
    const op = c.request("sub|query notifications:all/");
    await c.ask("get|core:status/versions");
    const pending = http("GET", "/api/v1/app/auth?app-name=t2&read=user&write=user", undefined, "");
    const n = await c.next(op, 5000);
    const id = n.data?.EventID as string;
    const r = await c.ask(`update|notifications:all/${id}|J{"SelectedActionID":"deny"}`);
    assert.equal(r.type, "success", r.raw);
    assert.equal((await pending).status, 403);
    c.send(`${op}|cancel`);
    await c.until(op, ["done"]);
  });

  it("an answer that is not one of the actions, or has no SelectedActionID, is refused", async () => {
    const n = control.notifications.post({ EventID: "test:ask", Type: 2, Title: "t", Category: "c", Message: "m", ShowOnSystem: false, EventData: null, Expires: 0, AvailableActions: [{ ID: "ok", Text: "OK", Type: "", Payload: null }] });
    const bad = await c.ask('update|notifications:all/test:ask|J{"SelectedActionID":"nuke"}');
    assert.equal(bad.type, "error");
    assert.match(bad.message, /nuke/);
    const none = await c.ask('update|notifications:all/test:ask|J{"EventID":"test:ask"}');
    assert.equal(none.type, "error");
    assert.equal(control.notifications.get(n.EventID)?.State, "active");
  });

  it("answering an unknown notification is refused", async () => {
    const r = await c.ask('update|notifications:all/nope|J{"SelectedActionID":"allow"}');
    assert.equal(r.type, "error");
    assert.match(r.message, /nope/);
  });

  it("delete removes a notification and subscribers get del", async () => {
    const op = c.request("sub|query notifications:all/test:");
    await c.ask("get|core:status/versions");
    const r = await c.ask("delete|notifications:all/test:ask");
    assert.equal(r.type, "success", r.raw);
    assert.equal((await c.next(op)).raw, `${op}|del|notifications:all/test:ask`);
    assert.equal((await c.ask("get|notifications:all/test:ask")).message, "storage entry not found");
    assert.equal((await c.ask("delete|notifications:all/test:ask")).type, "error");
    c.send(`${op}|cancel`);
    await c.until(op, ["done"]);
  });
});

// ---- per-socket limits ----

describe("per-socket limits", () => {
  it("a subscriber that stops reading is closed with 4008 as too slow, and the server stops buffering for it", async () => {
    const hub = api.deps.hub;
    const slow = await connect();
    const fast = await connect();
    const slowSub = slow.request("sub|query notifications:flood/");
    const fastSub = fast.request("sub|query notifications:flood/");
    await slow.ask("get|core:status/versions");
    await fast.ask("get|core:status/versions");
    const sock = (slow.ws as unknown as { _socket: Socket })._socket;
    sock.pause();

    const closedBefore = hub.counters.slowClosed;
    const connectionsBefore = hub.connections;
    const blob = "x".repeat(128 * 1024);
    // The socket may hold 4 MiB in uWS plus what the kernel buffers: the close must come well
    // before 64 MiB were published, whatever the record count.
    const LIMIT = 64 << 20;
    let published = 0;
    let n = 0;
    while (hub.counters.slowClosed === closedBefore && published < LIMIT) {
      for (let i = 0; i < 4; i++, n++) {
        hub.publish("notifications", `flood/${n % 16}`, { key: `flood/${n % 16}`, value: { blob, n }, created: 1, modified: 2 });
        published += blob.length;
      }
      // The reading client gets each batch before the next is published, however loaded the
      // machine is (test files run in parallel): only the paused one may fall behind.
      for (let waited = 0; fast.pending(fastSub).length < n && waited < 5000; waited += 2) await sleep(2);
    }
    assert.equal(hub.counters.slowClosed, closedBefore + 1, `no slow close after ${published >> 20} MiB`);
    // The slow socket is gone from the hub: more updates are not queued for it.
    assert.equal(hub.connections, connectionsBefore - 1);
    for (let i = 0; i < 64; i++) {
      hub.publish("notifications", "flood/x", { key: "flood/x", value: { blob }, created: 1, modified: 2 });
      // As above: the reading client keeps up, so only the slow socket could be behind.
      for (let waited = 0; fast.pending(fastSub).length < n + i + 1 && waited < 5000; waited += 2) await sleep(2);
    }
    assert.equal(hub.connections, connectionsBefore - 1);

    sock.resume();
    const closed = await within(slow.closed, 10_000);
    assert.ok(closed, "the slow client never saw the close");
    assert.equal(closed.code, 4008);
    assert.match(closed.reason, /too slow/);
    assert.ok(slow.all.length > 0 && slow.all.every((r) => r.op !== slowSub || r.type === "upd"));

    // The client that kept reading is still served and got everything.
    const r = await fast.ask("get|core:status/versions");
    assert.equal(r.type, "ok");
    assert.equal(fast.closeInfo, null);
    assert.equal(fast.pending(fastSub).length, n + 64, "the reading client must get every update");
    await fast.close();
  });

  it("256 subscriptions on one socket are fine; the 257th closes it with 4009", async () => {
    const c = await connect();
    for (let i = 0; i < 256; i++) c.send(`s${i}|sub|query config:core/`);
    assert.equal((await c.ask("get|core:status/versions")).type, "ok");
    assert.equal(c.closeInfo, null);
    c.send("s256|sub|query config:core/");
    const closed = await within(c.closed, 5000);
    assert.ok(closed, "the socket was not closed");
    assert.equal(closed.code, 4009);
    assert.match(closed.reason, /256/);
  });

  it("cancelled subscriptions free their slots", async () => {
    const c = await connect();
    for (let i = 0; i < 256; i++) c.send(`s${i}|sub|query config:core/`);
    for (let i = 0; i < 10; i++) c.send(`s${i}|cancel`);
    for (let i = 0; i < 10; i++) assert.equal((await c.next(`s${i}`)).type, "done");
    for (let i = 0; i < 10; i++) c.send(`t${i}|sub|query config:core/`);
    assert.equal((await c.ask("get|core:status/versions")).type, "ok");
    assert.equal(c.closeInfo, null);
    await c.close();
  });

  it("queries do not count against the subscription limit", async () => {
    const c = await connect();
    for (let i = 0; i < 300; i++) c.send(`q${i}|query|query config:core/devMode`);
    for (let i = 0; i < 300; i++) await c.until(`q${i}`);
    assert.equal(c.closeInfo, null);
    await c.close();
  });
});

describe("shutting down", () => {
  it("closing the API closes open database sockets with 1001", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "sluice-ws-"));
    writeFileSync(join(dir2, "config.json"), JSON.stringify({ api: { port: 0 } }));
    const log = { info: () => {}, warn: () => {} };
    const control2 = Control.open(dir2, log);
    const api2 = await startApi(control2, log, { host: "127.0.0.1", port: 0 });
    try {
      const token = readFileSync(join(dir2, "admin.token"), "utf8").trim();
      const ws = new WebSocket(`ws://127.0.0.1:${api2.port}/api/database/v1`, { headers: { Authorization: `Bearer ${token}` } });
      const c = new Client(ws);
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      const op = c.request("sub|query config:");
      assert.equal((await c.ask("get|core:status/versions")).type, "ok");
      api2.close();
      const closed = await within(c.closed, 5000);
      assert.ok(closed, "the socket was not closed");
      assert.equal(closed.code, 1001);
      assert.deepEqual(c.pending(op), []);
      assert.equal(api2.deps.hub.connections, 0);
    } finally {
      api2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
