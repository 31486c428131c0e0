// The HTTP API's framework: the endpoint list in Portmaster's shape, readiness, the error
// envelope and status codes, methods, bodies (malformed, oversized, wrong type), origins,
// preflight, security headers, HEAD, /health and the dashboard mount.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { assertError, call, chunkedPost, keepAliveStatuses, rawRequest, startTestApi, type TestApi } from "./helpers/api.js";

let t: TestApi;
/** maxBodyKB 1: for the body-size tests. */
let small: TestApi;
let devApi: TestApi;

before(async () => {
  t = await startTestApi();
  small = await startTestApi({ maxBodyKB: 1 });
  devApi = await startTestApi({ devMode: true });
});
after(() => {
  t?.close();
  small?.close();
  devApi?.close();
});

/** Every endpoint sluice registers; a new one must be added here (and tested). */
const EXPECTED_PATHS = [
  "app/auth",
  "app/profile",
  "app/requests",
  "app/requests/{id:sluice:authorize-app-[0-9a-z-]{1,40}}",
  "auth/basic",
  "auth/bearer",
  "auth/permissions",
  "auth/reset",
  "auth/tokens",
  "auth/tokens/{id:[0-9a-f]{12}}",
  "broadcasts/matching-data",
  "broadcasts/reset-state",
  "broadcasts/simulate",
  "compat/self-check",
  "config/option/{key:[a-z]+/[A-Za-z0-9/]+}",
  "config/options",
  "core/restart",
  "core/shutdown",
  "debug/allocs",
  "debug/core",
  "debug/cpu",
  "debug/heap",
  "debug/info",
  "debug/network",
  "debug/network/state",
  "debug/platform",
  "debug/stack",
  "debug/stack/print",
  "dns/cache/{query:[a-z0-9_.*-]+\\.[A-Z]+}",
  "dns/clear",
  "dns/resolvers",
  "endpoints",
  "modules/{moduleName:[a-z]+}/trigger/{eventName:[a-z-]+}",
  "netquery/charts/bandwidth",
  "netquery/charts/connection-active",
  "netquery/history/cleanup",
  "netquery/history/clear",
  "netquery/query",
  "netquery/query/batch",
  "network/gateways",
  "network/location",
  "network/nameservers",
  "ping",
  "profiles",
  "profiles/{id:[A-Za-z0-9_.-]{1,64}}",
  "ready",
  "rules/validate",
  "spn/{rest:.+}",
  "stats/history",
  "stats/latest",
  "ui/reload",
  "updates/check",
];

/** A concrete request path for each registered path. */
export function samplePath(p: string): string {
  const samples: Record<string, string> = {
    "app/requests/{id:sluice:authorize-app-[0-9a-z-]{1,40}}": "app/requests/sluice:authorize-app-zzz",
    "auth/tokens/{id:[0-9a-f]{12}}": "auth/tokens/000000000000",
    "config/option/{key:[a-z]+/[A-Za-z0-9/]+}": "config/option/api/sessionTTL",
    "dns/cache/{query:[a-z0-9_.*-]+\\.[A-Z]+}": "dns/cache/example.com.A",
    "modules/{moduleName:[a-z]+}/trigger/{eventName:[a-z-]+}": "modules/filter/trigger/reload",
    "profiles/{id:[A-Za-z0-9_.-]{1,64}}": "profiles/default",
    "spn/{rest:.+}": "spn/map/main",
  };
  return samples[p] ?? p;
}

const FIELD_ORDER = ["Name", "Description", "Parameters", "Path", "MimeType", "Read", "ReadMethod", "Write", "WriteMethod", "WriteMethods"];

test("GET endpoints lists every registered endpoint, sorted by Path, in Portmaster's field order with empty fields left out", async () => {
  const r = await call(t, "endpoints");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^application\/json; charset=utf-8$/);
  const list = r.json as Record<string, unknown>[];
  assert.ok(Array.isArray(list));
  const paths = list.map((e) => e.Path as string);
  assert.deepEqual(paths, [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), "sorted by Path");
  assert.deepEqual(paths, EXPECTED_PATHS);
  for (const e of list) {
    const keys = Object.keys(e);
    const order = keys.map((k) => FIELD_ORDER.indexOf(k));
    assert.ok(order.every((i) => i >= 0), `only Portmaster's fields: ${keys.join(",")}`);
    assert.deepEqual(order, [...order].sort((a, b) => a - b), `field order of ${e.Path}: ${keys.join(",")}`);
    for (const k of ["Name", "Description", "Path", "MimeType"]) assert.equal(typeof e[k], "string", `${e.Path}.${k}`);
    assert.ok((e.Name as string).length > 0 && (e.Description as string).length > 0);
    assert.ok(!(e.Path as string).startsWith("/"), "paths are relative to /api/v1/");
    assert.ok(["application/json", "text/plain", "application/octet-stream"].includes(e.MimeType as string));
    assert.ok("Read" in e || "Write" in e, `${e.Path} is readable or writable`);
    if ("Read" in e) {
      assert.ok([-1, 1, 2, 3, 4].includes(e.Read as number), `${e.Path}.Read`);
      assert.equal(e.ReadMethod, "GET");
    } else assert.ok(!("ReadMethod" in e));
    if ("Write" in e) {
      assert.ok([-1, 1, 2, 3, 4].includes(e.Write as number), `${e.Path}.Write`);
      assert.ok(["POST", "PUT", "DELETE"].includes(e.WriteMethod as string));
    } else assert.ok(!("WriteMethod" in e) && !("WriteMethods" in e));
    if ("Parameters" in e) {
      const ps = e.Parameters as Record<string, unknown>[];
      assert.ok(ps.length > 0, "an empty Parameters list is left out");
      for (const p of ps) assert.deepEqual(Object.keys(p), ["Method", "Field", "Value", "Description"]);
    }
    for (const v of Object.values(e)) assert.ok(v !== null && v !== "" && v !== 0, `${e.Path}: no empty values`);
  }
  const byPath = new Map(list.map((e) => [e.Path, e]));
  assert.deepEqual(byPath.get("ping"), { Name: "Ping", Description: byPath.get("ping")!.Description, Path: "ping", MimeType: "text/plain", Read: 1, ReadMethod: "GET" });
  assert.deepEqual(Object.keys(byPath.get("core/restart")!), ["Name", "Description", "Path", "MimeType", "Write", "WriteMethod"]);
  assert.equal(byPath.get("core/restart")!.Write, 3);
  assert.equal(byPath.get("core/shutdown")!.Write, 4);
  assert.equal(byPath.get("auth/permissions")!.Read, -1);
  assert.equal(byPath.get("compat/self-check")!.ReadMethod, "GET");
  assert.deepEqual((byPath.get("debug/info")!.Parameters as { Field: string }[]).map((p) => p.Field), ["style"]);
  assert.equal(byPath.get("profiles/{id:[A-Za-z0-9_.-]{1,64}}")!.WriteMethod, "PUT");
  assert.deepEqual(byPath.get("profiles/{id:[A-Za-z0-9_.-]{1,64}}")!.WriteMethods, ["PUT", "DELETE"]);
  assert.equal(byPath.get("debug/cpu")!.MimeType, "application/octet-stream");
});

test("every endpoint refuses an anonymous read or write it requires credentials for with 401 and WWW-Authenticate", async () => {
  const list = (await call(t, "endpoints")).json as { Path: string; Read?: number; Write?: number; WriteMethod?: string }[];
  let checked = 0;
  for (const e of list) {
    const path = samplePath(e.Path);
    if ((e.Read ?? 0) >= 2) {
      const r = await call(t, path);
      const err = assertError(r, 401, "unauthorized");
      assert.equal(err.message, "Authorization required.");
      assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="sluice API" domain="/"', e.Path);
      checked++;
    }
    if ((e.Write ?? 0) >= 2) {
      const r = await call(t, path, { method: e.WriteMethod });
      assertError(r, 401, "unauthorized");
      assert.ok(r.headers.get("www-authenticate")?.startsWith("Bearer "), e.Path);
      checked++;
    }
  }
  assert.ok(checked > 30, `checked ${checked}`);
});

test("every endpoint answers a method it does not support with 405, an Allow header listing the ones it does, and the error envelope", async () => {
  const list = (await call(t, "endpoints")).json as { Path: string; Read?: number; Write?: number; WriteMethods?: string[]; WriteMethod?: string }[];
  for (const e of list) {
    const path = samplePath(e.Path);
    const allowed = [...(e.Read ? ["GET", "HEAD"] : []), ...(e.WriteMethods ?? (e.WriteMethod ? [e.WriteMethod] : []))];
    const wrong = e.Read ? (allowed.includes("PUT") ? "PATCH" : "PUT") : "GET";
    const r = await call(t, path, { method: wrong, token: t.adminToken });
    const err = assertError(r, 405, "method_not_allowed");
    assert.equal(r.headers.get("allow"), allowed.join(", "), e.Path);
    assert.deepEqual(err.data, { allowed });
  }
});

test("ping answers Pong. and ready says ready once sluice is ready; both give 503 with Retry-After while it starts", async () => {
  let r = await call(t, "ping");
  assert.equal(r.status, 200);
  assert.equal(r.text, "Pong.\n");
  assert.equal(r.headers.get("content-type"), "text/plain; charset=utf-8");
  r = await call(t, "ready");
  assert.equal(r.status, 200);
  assert.equal(r.text, "sluice is ready.\n");
  t.control.state = "starting";
  try {
    const p = await call(t, "ping");
    assertError(p, 503, "not_ready");
    assert.equal(p.headers.get("retry-after"), "1");
    const e = assertError(await call(t, "ready"), 503, "not_ready");
    assert.match(e.message, /not ready/);
  } finally {
    t.control.state = "ready";
  }
  assert.equal((await call(t, "ping")).status, 200);
});

test("an unknown path under /api/v1/ gets 404 with the error envelope naming the path", async () => {
  const e = assertError(await call(t, "no/such/endpoint"), 404, "not_found");
  assert.deepEqual(e.data, { path: "/api/v1/no/such/endpoint" });
  assertError(await call(t, "no/such/endpoint", { method: "POST", token: t.adminToken }), 404, "not_found");
  assertError(await call(t, "no/such/endpoint", { method: "OPTIONS", headers: { Origin: t.origin, "Access-Control-Request-Method": "GET" } }), 404, "not_found");
});

test("a path with empty, . or .. segments is refused with 400 instead of being resolved", async () => {
  const r = await call(t, "profiles//default", { token: t.adminToken });
  assertError(r, 400, "bad_request");
  const raw = await rawRequest(t, `GET /api/v1/debug/../ping HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nConnection: close\r\n\r\n`);
  assert.match(raw, /^HTTP\/1\.1 400 /);
  assert.match(raw, /"key":"bad_request"/);
});

test("a wrong method gets 405 with an Allow header, before any authentication", async () => {
  const r = await call(t, "ping", { method: "POST" });
  const e = assertError(r, 405, "method_not_allowed");
  assert.equal(r.headers.get("allow"), "GET, HEAD");
  assert.match(e.message, /POST/);
  const r2 = await call(t, "core/restart");
  assertError(r2, 405, "method_not_allowed");
  assert.equal(r2.headers.get("allow"), "POST");
  const r3 = await call(t, "profiles/default", { method: "POST", token: t.adminToken, json: {} });
  assertError(r3, 405);
  assert.equal(r3.headers.get("allow"), "GET, HEAD, PUT, DELETE");
});

test("a body that is not valid JSON gets 400 saying so", async () => {
  const r = await call(t, "rules/validate", { token: t.adminToken, body: '{"Rules": [', headers: { "Content-Type": "application/json" } });
  const e = assertError(r, 400, "bad_request");
  assert.match(e.message, /no valid JSON/);
});

test("a body that is not JSON by its Content-Type gets 415", async () => {
  const r = await call(t, "rules/validate", { token: t.adminToken, body: "Rules=+ example.com", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  const e = assertError(r, 415, "unsupported_media_type");
  assert.deepEqual(e.data, { contentType: "application/x-www-form-urlencoded" });
  const r2 = await call(t, "profiles", { token: t.adminToken, body: "[profile x]", headers: { "Content-Type": "text/plain" } });
  assertError(r2, 415, "unsupported_media_type");
});

test("an unknown field in a body gets 400 naming the field", async () => {
  const r = await call(t, "rules/validate", { token: t.adminToken, json: { Rules: ["+ example.com"], Bogus: 1 } });
  const e = assertError(r, 400, "body_error");
  assert.match(e.message, /Bogus/);
  assert.equal(e.data.problems[0].field, "Bogus");
});

test("a write without a body where one is needed gets 400, and a body of the wrong shape names the field", async () => {
  const e = assertError(await call(t, "rules/validate", { method: "POST", token: t.adminToken }), 400, "body_error");
  assert.match(e.message, /No request body/);
  const e2 = assertError(await call(t, "rules/validate", { token: t.adminToken, json: { Rules: "+ example.com" } }), 400, "body_error");
  assert.equal(e2.data.problems[0].field, "Rules");
});

test("a body whose Content-Length exceeds the cap gets 413 without being read", async () => {
  const body = JSON.stringify({ Rules: Array.from({ length: 200 }, (_, i) => `+ host${i}.example.com`) });
  assert.ok(body.length > 1024);
  const r = await call(small, "rules/validate", { token: small.adminToken, body, headers: { "Content-Type": "application/json" } });
  const e = assertError(r, 413, "body_too_large");
  assert.deepEqual(e.data, { limit: 1024 });
  // The server still answers afterwards.
  assert.equal((await call(small, "ping")).status, 200);
});

test("a chunked body that grows past the cap gets 413", async () => {
  const chunk = " ".repeat(300);
  const r = await chunkedPost(small, "rules/validate", { Authorization: `Bearer ${small.adminToken}`, "Content-Type": "application/json" }, [
    '{"Rules": [',
    ...Array.from({ length: 20 }, () => chunk),
    "]}",
  ]);
  assert.equal(r.status, 413);
  assert.deepEqual(JSON.parse(r.body), { error: { key: "body_too_large", message: "the request body exceeds 1024 bytes", data: { limit: 1024 } } });
  assert.equal((await call(small, "ping")).status, 200);
});

test("a chunked body under the cap is reassembled from its chunks", async () => {
  const r = await chunkedPost(small, "rules/validate", { Authorization: `Bearer ${small.adminToken}`, "Content-Type": "application/json" }, [
    '{"Rules": ["+ exa',
    'mple.com", "- ads.ex',
    'ample.com"]}',
  ]);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { valid: true, problems: [] });
});

test("a chunked JSON body without a Content-Type is read like one with it", async () => {
  const r = await chunkedPost(small, "rules/validate", { Authorization: `Bearer ${small.adminToken}` }, ['{"Rules": ["+ exa', 'mple.com"]}']);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { valid: true, problems: [] });
});

test("a POST with a Content-Type but no body gets 400 and the connection stays usable", async () => {
  const h = `Host: 127.0.0.1:${t.port}\r\nAuthorization: Bearer ${t.adminToken}\r\n`;
  const got = await keepAliveStatuses(t, [
    `POST /api/v1/rules/validate HTTP/1.1\r\n${h}Content-Type: application/json\r\n\r\n`,
    `POST /api/v1/ui/reload HTTP/1.1\r\n${h}Content-Type: text/plain\r\n\r\n`,
    `GET /api/v1/ping HTTP/1.1\r\n${h}\r\n`,
  ]);
  assert.deepEqual(got, ["HTTP/1.1 400 Bad Request", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
});

test("the body cap follows the api/maxBodyKB option without a restart", async () => {
  const body = JSON.stringify({ Rules: Array.from({ length: 200 }, (_, i) => `+ host${i}.example.com`) });
  const set = await call(small, "config/option/api/maxBodyKB", { method: "PUT", token: small.adminToken, json: { Value: 64 } });
  assert.equal(set.status, 200, set.text);
  try {
    const r = await call(small, "rules/validate", { token: small.adminToken, body, headers: { "Content-Type": "application/json" } });
    assert.equal(r.status, 200, r.text);
  } finally {
    const reset = await call(small, "config/option/api/maxBodyKB", { method: "PUT", token: small.adminToken, json: { Value: 1 } });
    assert.equal(reset.status, 200, reset.text);
  }
});

test("a client asking for something other than JSON from a JSON endpoint gets 406", async () => {
  const r = await call(t, "config/options", { headers: { Accept: "text/html" } });
  assertError(r, 406, "not_acceptable");
  assert.equal((await call(t, "config/options", { headers: { Accept: "application/json" } })).status, 200);
  assert.equal((await call(t, "config/options", { headers: { Accept: "*/*" } })).status, 200);
  // Refused before the handler runs: a write does not happen.
  const w = await call(t, "profiles", { token: t.adminToken, json: { ID: "not-acceptable" }, headers: { Accept: "text/html" } });
  assertError(w, 406, "not_acceptable");
  assertError(await call(t, "profiles/not-acceptable", { token: t.adminToken }), 404, "not_found");
});

test("a cross-origin request is refused with 403 before anything else runs", async () => {
  const r = await call(t, "ping", { headers: { Origin: "http://evil.example" } });
  const e = assertError(r, 403, "forbidden");
  assert.equal(e.message, "Cross-Origin Request Denied.");
  assert.equal(r.headers.get("access-control-allow-origin"), null);
  // Even with good credentials, and even for a write that would otherwise succeed.
  assertError(await call(t, "rules/validate", { token: t.adminToken, json: { Rules: [] }, headers: { Origin: "http://evil.example" } }), 403, "forbidden");
  // A page on another port of the same host is another origin.
  assertError(await call(t, "ping", { headers: { Origin: `http://127.0.0.1:${t.port + 1}` } }), 403, "forbidden");
  const bad = assertError(await call(t, "ping", { headers: { Origin: "null" } }), 403, "forbidden");
  assert.equal(bad.message, "Invalid Origin.");
});

test("a same-origin request (Origin matching Host) is allowed and its origin reflected with the CORS headers", async () => {
  const r = await call(t, "auth/permissions", { headers: { Origin: t.origin } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("access-control-allow-origin"), t.origin);
  assert.equal(r.headers.get("access-control-allow-credentials"), "true");
  assert.equal(r.headers.get("vary"), "Origin");
  // Errors after the origin check carry it too, so the page can read them.
  const e = await call(t, "profiles", { headers: { Origin: t.origin } });
  assertError(e, 401);
  assert.equal(e.headers.get("access-control-allow-origin"), t.origin);
});

test("an OPTIONS preflight from the same origin gets 204 with the CORS headers and no body; without an origin or method to check it gets 405", async () => {
  const r = await call(t, "profiles", { method: "OPTIONS", headers: { Origin: t.origin, "Access-Control-Request-Method": "POST" } });
  assert.equal(r.status, 204);
  assert.equal(r.text, "");
  assert.equal(r.headers.get("access-control-allow-origin"), t.origin);
  assert.equal(r.headers.get("access-control-allow-methods"), "*");
  assert.equal(r.headers.get("access-control-allow-headers"), "*");
  assert.equal(r.headers.get("access-control-max-age"), "60");
  assert.equal(r.headers.get("x-frame-options"), "deny");
  assertError(await call(t, "profiles", { method: "OPTIONS", headers: { Origin: t.origin } }), 405, "method_not_allowed");
  assertError(await call(t, "profiles", { method: "OPTIONS", headers: { "Access-Control-Request-Method": "POST" } }), 405, "method_not_allowed");
  assertError(await call(t, "profiles", { method: "OPTIONS", headers: { Origin: "http://evil.example", "Access-Control-Request-Method": "POST" } }), 403, "forbidden");
});

test("dev mode also allows pages on other localhost ports, and drops the CSP", async () => {
  const other = `http://localhost:${devApi.port + 1}`;
  const r = await call(devApi, "ping", { headers: { Origin: other } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("access-control-allow-origin"), other);
  assert.equal(r.headers.get("content-security-policy"), null);
  assertError(await call(devApi, "ping", { headers: { Origin: "http://evil.example" } }), 403, "forbidden");
});

const SECURITY = {
  "referrer-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "x-frame-options": "deny",
  "x-xss-protection": "1; mode=block",
  "x-dns-prefetch-control": "off",
};

test("responses carry the security headers and a CSP, on success and on error", async () => {
  for (const r of [await call(t, "ping"), await call(t, "profiles"), await call(t, "nope"), await call(t, "endpoints")]) {
    for (const [k, v] of Object.entries(SECURITY)) assert.equal(r.headers.get(k), v, `${k} on ${r.status}`);
    assert.match(r.headers.get("content-security-policy") ?? "", /default-src 'self'/);
    assert.equal(r.headers.get("cache-control"), "no-store");
  }
});

test("HEAD returns the headers of GET and no body", async () => {
  const r = await call(t, "endpoints", { method: "HEAD" });
  assert.equal(r.status, 200);
  assert.equal(r.text, "");
  assert.match(r.headers.get("content-type")!, /^application\/json/);
  const get = await call(t, "endpoints");
  assert.equal(r.headers.get("content-length"), String(Buffer.byteLength(get.text)));
  const p = await call(t, "ping", { method: "HEAD" });
  assert.equal(p.status, 200);
  assert.equal(p.text, "");
  const e = await call(t, "profiles", { method: "HEAD" });
  assert.equal(e.status, 401);
  assert.equal(e.text, "");
});

test("a HEAD response ends, so the next request on the same keep-alive connection is answered", async () => {
  const host = `Host: 127.0.0.1:${t.port}\r\n`;
  const got = await keepAliveStatuses(t, [
    `HEAD /api/v1/ping HTTP/1.1\r\n${host}\r\n`,
    `HEAD /api/v1/profiles HTTP/1.1\r\n${host}\r\n`,
    `GET /api/v1/ping HTTP/1.1\r\n${host}\r\n`,
  ]);
  assert.deepEqual(got, ["HTTP/1.1 200 OK", "HTTP/1.1 401 Unauthorized", "HTTP/1.1 200 OK"]);
  assert.equal((await call(t, "ping")).status, 200, "the server is still up");
});

test("GET /health returns JSON about the instance without credentials", async () => {
  const r = await call(t, "/health");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^application\/json/);
  assert.deepEqual(r.json, { status: "ready", packetPath: "not running" });
  assert.equal((await call(t, "/health", { method: "POST", body: "x" })).status, 404);
});

test("GET / serves the dashboard's index.html, and unknown files get 404", async (ctx) => {
  const missing = await call(t, "/no-such-file.js");
  assertError(missing, 404, "not_found");
  assert.equal(missing.headers.get("x-frame-options"), "deny");
  assertError(await call(t, "/../etc/passwd"), 404);
  const index = fileURLToPath(new URL("../../ui/index.html", import.meta.url));
  if (!existsSync(index)) {
    ctx.skip("ui/index.html does not exist yet");
    return;
  }
  const r = await call(t, "/");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(r.text, readFileSync(index, "utf8"));
  assert.match(r.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  assert.equal(r.headers.get("x-frame-options"), "deny");
  const h = await call(t, "/index.html", { method: "HEAD" });
  assert.equal(h.status, 200);
  assert.equal(h.text, "");
  assert.equal(h.headers.get("content-length"), String(Buffer.byteLength(r.text)));
  const host = `Host: 127.0.0.1:${t.port}\r\n`;
  assert.deepEqual(await keepAliveStatuses(t, [`HEAD / HTTP/1.1\r\n${host}\r\n`, `GET /health HTTP/1.1\r\n${host}\r\n`]), ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
  assert.equal((await call(t, "/", { method: "POST", body: "x" })).status, 405);
});

test("spn endpoints answer 404 with the key spn_unavailable", async () => {
  for (const method of ["GET", "POST", "PUT", "DELETE"]) {
    const e = assertError(await call(t, "spn/map/main/pins", { method }), 404, "spn_unavailable");
    assert.match(e.message, /SPN/);
  }
});
