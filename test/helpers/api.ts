// Starts the API in-process on a fresh data directory (no packet path, no root) and offers
// small request helpers for the HTTP API tests.

import assert from "node:assert/strict";
import http from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Control } from "../../src/control/sluice.js";
import { startApi, type Api } from "../../src/api/index.js";

export interface TestApi {
  dir: string;
  control: Control;
  api: Api;
  port: number;
  /** http://127.0.0.1:<port> */
  origin: string;
  /** http://127.0.0.1:<port>/api/v1/ */
  base: string;
  adminToken: string;
  warnings: string[];
  close(): void;
}

/** A data directory whose config.json holds `api` (port 0 added), and the API started on it. */
export async function startTestApi(api: Record<string, unknown> = {}, listen: { host?: string } = {}): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-api-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ api: { port: 0, ...api } }));
  const warnings: string[] = [];
  const log = { info: () => {}, warn: (m: string) => void warnings.push(m) };
  const control = Control.open(dir, log);
  const a = await startApi(control, log, { host: listen.host ?? "127.0.0.1", port: 0 });
  control.state = "ready";
  const adminToken = readFileSync(join(dir, "admin.token"), "utf8").trim();
  const origin = `http://127.0.0.1:${a.port}`;
  return {
    dir,
    control,
    api: a,
    port: a.port,
    origin,
    base: `${origin}/api/v1/`,
    adminToken,
    warnings,
    close() {
      a.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (undefined if it is not JSON). */
  json: any;
}

export interface CallOptions {
  method?: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Serialized as the JSON body (Content-Type application/json). */
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One request; `path` is relative to /api/v1/ unless it starts with "/". */
export async function call(t: TestApi, path: string, o: CallOptions = {}): Promise<Res> {
  const url = path.startsWith("/") ? t.origin + path : t.base + path;
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token !== undefined) headers.Authorization = `Bearer ${o.token}`;
  let body: string | undefined = o.body;
  if (o.json !== undefined) {
    body = JSON.stringify(o.json);
    headers["Content-Type"] ??= "application/json";
  }
  const r = await fetch(url, { method: o.method ?? (body !== undefined ? "POST" : "GET"), headers, body, signal: o.signal });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** Asserts the Pi-hole-style error envelope, its status and key; returns the error object. */
export function assertError(r: Res, status: number, key?: string): { key: string; message: string; data: any } {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  assert.ok(r.json && typeof r.json === "object", `error body is JSON: ${r.text}`);
  assert.deepEqual(Object.keys(r.json), ["error"]);
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ["data", "key", "message"]);
  assert.equal(typeof e.key, "string");
  assert.equal(typeof e.message, "string");
  assert.ok(e.message.length > 0);
  assert.ok(e.data === null || typeof e.data === "object");
  if (key !== undefined) assert.equal(e.key, key, `error key for ${r.text}`);
  return e;
}

export function basic(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
}

/** The value of the Sluice-Session cookie a response sets (null if none). */
export function sessionCookie(r: Res): string | null {
  for (const c of r.headers.getSetCookie()) {
    const m = /^Sluice-Session=([^;]*)/.exec(c);
    if (m) return m[1]!;
  }
  return null;
}

/** Polls `f` until it returns a truthy value or `ms` pass. */
export async function until<T>(f: () => Promise<T | null | undefined | false>, ms = 3000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A POST whose body goes out with chunked transfer encoding (no Content-Length), one chunk every
 * few milliseconds, until the server answers or `chunks` are sent. Errors after the answer (the
 * server closing on a refused body) are ignored.
 */
export function chunkedPost(t: TestApi, path: string, headers: Record<string, string>, chunks: (string | Buffer)[]): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(t.base + path, { method: "POST", headers }, (res) => {
      answered = true;
      let b = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (b += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
    });
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    let i = 0;
    const pump = (): void => {
      if (answered || req.destroyed) return;
      if (i >= chunks.length) {
        req.end();
        return;
      }
      req.write(chunks[i++]!, () => setTimeout(pump, 2));
    };
    pump();
  });
}

/** A raw HTTP/1.1 exchange (for paths fetch would normalize). */
export function rawRequest(t: TestApi, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    import("node:net").then(({ connect }) => {
      const s = connect(t.port, "127.0.0.1", () => s.write(text));
      let out = "";
      s.setEncoding("utf8");
      s.on("data", (d: string) => {
        out += d;
        // One response is enough; its body is short JSON.
        if (/\r\n\r\n/.test(out)) {
          const m = /content-length: (\d+)/i.exec(out);
          const head = out.indexOf("\r\n\r\n") + 4;
          if (m && out.length - head >= Number(m[1])) {
            s.destroy();
            resolve(out);
          }
        }
      });
      s.on("error", reject);
      s.on("close", () => resolve(out));
    }, reject);
  });
}

/**
 * Sends raw requests one after another on one keep-alive connection; returns the status lines of
 * the responses received within `ms` (a response that never ends stalls the ones after it).
 */
export async function keepAliveStatuses(t: TestApi, requests: string[], ms = 1500): Promise<string[]> {
  const { connect } = await import("node:net");
  const s = connect(t.port, "127.0.0.1");
  let out = "";
  s.setEncoding("utf8");
  s.on("data", (d: string) => (out += d));
  s.on("error", () => undefined);
  // A response may follow the previous body on the same line.
  const statuses = () => out.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? [];
  try {
    for (const r of requests) {
      const want = statuses().length + 1;
      s.write(r);
      const end = Date.now() + ms;
      while (statuses().length < want && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
      if (statuses().length < want) break;
    }
    return statuses();
  } finally {
    s.destroy();
  }
}
