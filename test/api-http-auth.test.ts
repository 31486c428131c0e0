// Every way to authenticate to the HTTP API, and every refusal: anonymous, API keys (Bearer,
// Basic), app tokens (Bearer, Basic, Sluice-Auth), dashboard sessions with CSRF, logout, dev
// mode, the failure rate limit, and app/auth's interactive access request.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { networkInterfaces } from "node:os";
import { assertError, basic, call, sessionCookie, startTestApi, until, type TestApi } from "./helpers/api.js";

const USER_KEY = "abcdefghijklmnop1234";
const ADMIN_KEY = "adminkey0000000000000";
const EXPIRED_KEY = "expiredkey0000000000";
const READONLY_KEY = "readonlykey000000000";

let t: TestApi;
let dev: TestApi;

before(async () => {
  // These tests present wrong credentials on purpose; the rate limit has its own tests below.
  t = await startTestApi({
    authFailLimit: 1_000_000,
    keys: [
      `${USER_KEY}?read=user&write=user`,
      `${ADMIN_KEY}?read=admin&write=admin`,
      `${EXPIRED_KEY}?read=admin&write=admin&expires=2000-01-01T00:00:00Z`,
      `${READONLY_KEY}?read=user`,
    ],
  });
  dev = await startTestApi({ devMode: true });
});
after(() => {
  t?.close();
  dev?.close();
});

test("the first run creates an admin token in a 0600 file, stored only as a hash", () => {
  assert.match(t.adminToken, /^slc_[A-Za-z0-9_-]{40,}$/);
  assert.equal(statSync(join(t.dir, "admin.token")).mode & 0o777, 0o600);
  const stored = readFileSync(join(t.dir, "auth", "tokens.json"), "utf8");
  assert.equal(statSync(join(t.dir, "auth", "tokens.json")).mode & 0o777, 0o600);
  assert.ok(!stored.includes(t.adminToken), "the secret is not stored");
  const list = JSON.parse(stored) as { name: string; read: string; write: string; hash: string }[];
  assert.equal(list.length, 1);
  assert.equal(list[0]!.name, "admin");
  assert.equal(list[0]!.read, "admin");
  assert.equal(list[0]!.write, "admin");
});

test("a request without credentials to an Admin endpoint gets 401 with WWW-Authenticate", async () => {
  const r = await call(t, "auth/tokens");
  const e = assertError(r, 401, "unauthorized");
  assert.equal(e.message, "Authorization required.");
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="sluice API" domain="/"');
});

test("auth/permissions reports the anonymous token for a request without credentials", async () => {
  const r = await call(t, "auth/permissions");
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { Read: 1, Write: 1, ReadRole: "Anyone", WriteRole: "Anyone", Via: "anonymous", Name: null });
});

test("auth/permissions reports the level of an API key, an admin token and a read-only key", async () => {
  let r = await call(t, "auth/permissions", { token: USER_KEY });
  assert.equal(r.status, 200);
  assert.equal(r.json.Read, 2);
  assert.equal(r.json.Write, 2);
  assert.equal(r.json.ReadRole, "User");
  assert.equal(r.json.Via, "key");
  assert.ok(!JSON.stringify(r.json).includes(USER_KEY), "the key is not echoed");
  r = await call(t, "auth/permissions", { token: t.adminToken });
  assert.deepEqual(r.json, { Read: 3, Write: 3, ReadRole: "Admin", WriteRole: "Admin", Via: "token", Name: "admin" });
  r = await call(t, "auth/permissions", { token: READONLY_KEY });
  assert.equal(r.json.Read, 2);
  assert.equal(r.json.Write, 1);
  assert.equal(r.json.WriteRole, "Anyone");
});

test("an API key as Bearer is accepted up to its role, and gets 403 (not 401) beyond it", async () => {
  assert.equal((await call(t, "profiles", { token: USER_KEY })).status, 200);
  const r = await call(t, "auth/tokens", { token: USER_KEY });
  const e = assertError(r, 403, "forbidden");
  assert.match(e.message, /Insufficient permissions/);
  assert.equal(r.headers.get("www-authenticate"), null);
  assert.equal((await call(t, "auth/tokens", { token: ADMIN_KEY })).status, 200);
  // Write does not imply read and read does not imply write.
  assertError(await call(t, "rules/validate", { token: READONLY_KEY, json: { Rules: [] } }), 403, "forbidden");
  assert.equal((await call(t, "profiles", { token: READONLY_KEY })).status, 200);
});

test("Self endpoints refuse even the admin token with 403", async () => {
  assertError(await call(t, "modules/filter/trigger/reload", { method: "POST", token: t.adminToken }), 403, "forbidden");
  assertError(await call(t, "core/shutdown", { method: "POST", token: t.adminToken }), 403, "forbidden");
  assertError(await call(t, "core/shutdown", { method: "POST", token: ADMIN_KEY }), 403, "forbidden");
});

test("a wrong API key gets 401 saying the key is unknown", async () => {
  const r = await call(t, "profiles", { token: "thisisnotakeyatall000" });
  const e = assertError(r, 401, "unauthorized");
  assert.match(e.message, /unknown API key/);
  assert.ok(r.headers.get("www-authenticate"));
  const r2 = await call(t, "profiles", { token: "slc_notarealtoken" });
  assert.match(assertError(r2, 401, "unauthorized").message, /unknown or revoked token/);
  const r3 = await call(t, "profiles", { headers: { Authorization: "Digest abc" } });
  assert.match(assertError(r3, 401, "unauthorized").message, /unsupported Authorization scheme/);
});

test("an expired API key gets 401 saying it expired", async () => {
  const e = assertError(await call(t, "profiles", { token: EXPIRED_KEY }), 401, "unauthorized");
  assert.match(e.message, /expired/);
});

test("a wrong key on an endpoint open to anyone is treated as no credentials", async () => {
  assert.equal((await call(t, "ping", { token: "thisisnotakeyatall000" })).status, 200);
  const r = await call(t, "auth/permissions", { token: "thisisnotakeyatall000" });
  assert.equal(r.status, 200);
  assert.equal(r.json.Read, 1);
});

test("auth/bearer without credentials gets 401 with a Bearer challenge, auth/basic with a Basic one", async () => {
  let r = await call(t, "auth/bearer");
  assertError(r, 401, "unauthorized");
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="sluice API" domain="/"');
  assert.equal(sessionCookie(r), null);
  r = await call(t, "auth/basic");
  assertError(r, 401, "unauthorized");
  assert.equal(r.headers.get("www-authenticate"), 'Basic realm="sluice API" domain="/"');
});

test("auth/bearer with a valid token answers 200 and starts a session: an HttpOnly SameSite=Strict cookie and an X-CSRF-Token", async () => {
  const r = await call(t, "auth/bearer", { token: t.adminToken });
  assert.equal(r.status, 200);
  assert.equal(r.text, "Authenticated.\n");
  const cookies = r.headers.getSetCookie();
  assert.equal(cookies.length, 1);
  assert.match(cookies[0]!, /^Sluice-Session=[A-Za-z0-9_-]{40,}; Path=\/; HttpOnly; SameSite=Strict$/);
  assert.match(r.headers.get("x-csrf-token") ?? "", /^[A-Za-z0-9_-]{16,}$/);
});

test("auth/basic accepts an API key as the user name", async () => {
  const r = await call(t, "auth/basic", { headers: { Authorization: basic(USER_KEY, "") } });
  assert.equal(r.status, 200);
  assert.ok(sessionCookie(r));
  assert.ok(r.headers.get("x-csrf-token"));
  // Portmaster concatenates user and password into the key: any split works.
  assert.equal((await call(t, "profiles", { headers: { Authorization: basic(USER_KEY.slice(0, 5), USER_KEY.slice(5)) } })).status, 200);
  assertError(await call(t, "profiles", { headers: { Authorization: basic("notakey000000000000", "") } }), 401, "unauthorized");
});

test("auth/basic accepts a token's name as user and the token as password, and refuses a name that is not the token's", async () => {
  const r = await call(t, "auth/basic", { headers: { Authorization: basic("admin", t.adminToken) } });
  assert.equal(r.status, 200);
  assert.ok(sessionCookie(r));
  assert.equal((await call(t, "auth/tokens", { headers: { Authorization: basic("admin", t.adminToken) } })).status, 200);
  const e = assertError(await call(t, "auth/tokens", { headers: { Authorization: basic("someone-else", t.adminToken) } }), 401, "unauthorized");
  assert.match(e.message, /does not belong to that name/);
});

test("the Sluice-Auth header takes <name>:<token>", async () => {
  const r = await call(t, "auth/tokens", { headers: { "Sluice-Auth": `admin:${t.adminToken}` } });
  assert.equal(r.status, 200);
  const p = await call(t, "auth/permissions", { headers: { "Sluice-Auth": `admin:${t.adminToken}` } });
  assert.equal(p.json.Via, "token");
  assert.equal(p.json.Name, "admin");
  assertError(await call(t, "auth/tokens", { headers: { "Sluice-Auth": `other:${t.adminToken}` } }), 401, "unauthorized");
  const e = assertError(await call(t, "auth/tokens", { headers: { "Sluice-Auth": t.adminToken } }), 401, "unauthorized");
  assert.match(e.message, /<token name>:<token>/);
});

test("a session cookie authenticates reads; cookie writes need the X-CSRF-Token and succeed with it", async () => {
  const login = await call(t, "auth/bearer", { token: t.adminToken });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  const csrf = login.headers.get("x-csrf-token")!;
  const perms = await call(t, "auth/permissions", { headers: { Cookie: cookie } });
  assert.equal(perms.status, 200);
  assert.equal(perms.json.Via, "session");
  assert.equal(perms.json.Read, 3);
  assert.equal(perms.json.CSRFToken, csrf);
  assert.equal((await call(t, "profiles", { headers: { Cookie: `theme=dark; ${cookie}` } })).status, 200);
  const noCsrf = await call(t, "rules/validate", { json: { Rules: ["+ example.com"] }, headers: { Cookie: cookie } });
  const e = assertError(noCsrf, 403, "forbidden");
  assert.match(e.message, /X-CSRF-Token/);
  assertError(await call(t, "rules/validate", { json: { Rules: [] }, headers: { Cookie: cookie, "X-CSRF-Token": "wrong" } }), 403, "forbidden");
  const ok = await call(t, "rules/validate", { json: { Rules: ["+ example.com"] }, headers: { Cookie: cookie, "X-CSRF-Token": csrf } });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json, { valid: true, problems: [] });
  // auth/bearer with only the cookie confirms the session and hands out its CSRF token again.
  const again = await call(t, "auth/bearer", { headers: { Cookie: cookie } });
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("x-csrf-token"), csrf);
  assert.equal(sessionCookie(again), null, "no second session");
});

test("auth/reset ends the session: 401, the cookie cleared with Max-Age=0, and the cookie no longer works", async () => {
  const login = await call(t, "auth/bearer", { token: t.adminToken });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  assert.equal((await call(t, "auth/tokens", { headers: { Cookie: cookie } })).status, 200);
  const r = await call(t, "auth/reset", { headers: { Cookie: cookie } });
  const e = assertError(r, 401, "unauthorized");
  assert.equal(e.message, "Session deleted.");
  const set = r.headers.getSetCookie();
  assert.equal(set.length, 1);
  assert.match(set[0]!, /^Sluice-Session=; /);
  assert.match(set[0]!, /Max-Age=0/);
  assert.equal(r.headers.get("clear-site-data"), "*");
  assert.match(r.headers.get("www-authenticate") ?? "", /^None realm=/);
  const after = await call(t, "auth/tokens", { headers: { Cookie: cookie } });
  const e2 = assertError(after, 401, "unauthorized");
  assert.match(e2.message, /session/);
  assertError(await call(t, "auth/reset"), 401, "unauthorized");
});

test("a session that went unused for its lifetime no longer authenticates", async () => {
  const login = await call(t, "auth/bearer", { token: t.adminToken });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  assert.equal((await call(t, "profiles", { headers: { Cookie: cookie } })).status, 200);
  // Move the clock instead of waiting: the session just used is the most recent one; expire it.
  const live = (t.api.deps.auth.sessions as unknown as { live: Map<string, { expiresAt: number }> }).live;
  const [, session] = [...live.entries()].at(-1)!;
  session.expiresAt = Date.now() - 1;
  const e = assertError(await call(t, "profiles", { headers: { Cookie: cookie } }), 401, "unauthorized");
  assert.match(e.message, /expired/);
});

test("a session's lifetime slides: each use extends it", async () => {
  const login = await call(t, "auth/bearer", { token: t.adminToken });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  const live = (t.api.deps.auth.sessions as unknown as { live: Map<string, { expiresAt: number }> }).live;
  const [, session] = [...live.entries()].at(-1)!;
  session.expiresAt = Date.now() + 1000;
  assert.equal((await call(t, "profiles", { headers: { Cookie: cookie } })).status, 200);
  const ttl = t.control.config.api.sessionTtlS * 1000;
  assert.ok(session.expiresAt > Date.now() + ttl - 60_000, "extended by the session lifetime");
});

test("POST auth/tokens creates a token: 201, Location, and the secret shown once", async () => {
  const r = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "grafana", role: "user", ttl: "7d" } });
  assert.equal(r.status, 201, r.text);
  const b = r.json;
  assert.equal(r.headers.get("location"), `/api/v1/auth/tokens/${b.id}`);
  assert.match(b.id, /^[0-9a-f]{12}$/);
  assert.match(b.token, /^slc_/);
  assert.equal(b.name, "grafana");
  assert.equal(b.owner, "admin");
  assert.equal(b.read, "user");
  assert.equal(b.write, "user");
  assert.equal(b.lastUsed, null);
  assert.ok(Math.abs(Date.parse(b.expires) - Date.now() - 7 * 86400_000) < 60_000);
  assert.ok(!("hash" in b));
  // Never again: not in the list, not in the record, not on disk.
  const list = await call(t, "auth/tokens", { token: t.adminToken });
  assert.equal(list.status, 200);
  assert.ok(!list.text.includes(b.token));
  assert.ok(!list.text.includes('"hash"'));
  assert.ok((list.json as { id: string }[]).some((x) => x.id === b.id));
  const one = await call(t, `auth/tokens/${b.id}`, { token: t.adminToken });
  assert.equal(one.status, 200);
  assert.ok(!("token" in one.json) && !("hash" in one.json));
  assert.equal(one.json.name, "grafana");
  assert.ok(!readFileSync(join(t.dir, "auth", "tokens.json"), "utf8").includes(b.token));
  // It works, up to its role, and its use is recorded.
  const use = await call(t, "profiles", { token: b.token });
  assert.equal(use.status, 200);
  assertError(await call(t, "auth/tokens", { token: b.token }), 403, "forbidden");
  assertError(await call(t, "config/option/api/sessionTTL", { token: b.token }), 403, "forbidden");
  const seen = await call(t, `auth/tokens/${b.id}`, { token: t.adminToken });
  assert.ok(seen.json.lastUsed !== null && Date.now() - Date.parse(seen.json.lastUsed) < 60_000);
});

test("a token with separate read and write roles gets exactly those", async () => {
  const r = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "reader-admin", read: "admin", write: "user" } });
  assert.equal(r.status, 201, r.text);
  const p = await call(t, "auth/permissions", { token: r.json.token });
  assert.equal(p.json.Read, 3);
  assert.equal(p.json.Write, 2);
  assert.equal(r.json.expires, null);
  assert.equal((await call(t, `auth/tokens/${r.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
});

test("creating a token with a name its owner already uses gets 409", async () => {
  const first = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "dup" } });
  assert.equal(first.status, 201);
  const e = assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "dup" } }), 409, "conflict");
  assert.match(e.message, /dup/);
  assert.equal((await call(t, `auth/tokens/${first.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
});

test("bad token requests get 400: unknown field, invalid name, role with read, bad ttl", async () => {
  const e = assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "x", scope: "all" } }), 400, "body_error");
  assert.equal(e.data.problems[0].field, "scope");
  assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "bad/name" } }), 400, "body_error");
  assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "x", role: "user", read: "admin" } }), 400, "body_error");
  assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "x", role: "root" } }), 400, "body_error");
  assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "x", ttl: "soon" } }), 400, "body_error");
  assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "x", ttl: "100000d" } }), 400, "body_error");
});

test("a user may hold only so many tokens: past api/tokensPerOwner creation gets 409", async () => {
  const list = (await call(t, "auth/tokens", { token: t.adminToken })).json as { owner: string; expires: string | null }[];
  const held = list.filter((x) => x.owner === "admin" && (x.expires === null || Date.parse(x.expires) > Date.now())).length;
  const set = await call(t, "config/option/api/tokensPerOwner", { method: "PUT", token: t.adminToken, json: { Value: held + 1 } });
  assert.equal(set.status, 200, set.text);
  try {
    const ok = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "last-one" } });
    assert.equal(ok.status, 201);
    const e = assertError(await call(t, "auth/tokens", { token: t.adminToken, json: { name: "one-too-many" } }), 409, "conflict");
    assert.deepEqual(e.data, { limit: held + 1 });
    assert.equal((await call(t, `auth/tokens/${ok.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
    assert.equal((await call(t, "auth/tokens", { token: t.adminToken, json: { name: "one-too-many" } })).status, 201);
  } finally {
    assert.equal((await call(t, "config/option/api/tokensPerOwner", { method: "PUT", token: t.adminToken, json: { Value: null } })).status, 200);
  }
});

test("an expired token gets 401 with a message saying it expired, and stays listed", async () => {
  const r = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "short-lived", ttl: "1s" } });
  assert.equal(r.status, 201, r.text);
  assert.equal((await call(t, "profiles", { token: r.json.token })).status, 200);
  const login = await call(t, "auth/bearer", { token: r.json.token });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  assert.equal((await call(t, "profiles", { headers: { Cookie: cookie } })).status, 200);
  await new Promise((res) => setTimeout(res, 1100));
  const e = assertError(await call(t, "profiles", { token: r.json.token }), 401, "unauthorized");
  assert.match(e.message, /expired/);
  // The session it opened ends with it, however recently it was used.
  assertError(await call(t, "profiles", { headers: { Cookie: cookie } }), 401, "unauthorized");
  assert.equal((await call(t, `auth/tokens/${r.json.id}`, { token: t.adminToken })).status, 200);
  assert.equal((await call(t, `auth/tokens/${r.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
});

test("DELETE revokes a token: 204, then 404; the token and its sessions stop working", async () => {
  const r = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "to-revoke", role: "admin" } });
  assert.equal(r.status, 201);
  const login = await call(t, "auth/bearer", { token: r.json.token });
  const cookie = `Sluice-Session=${sessionCookie(login)}`;
  assert.equal((await call(t, "auth/tokens", { headers: { Cookie: cookie } })).status, 200);
  const del = await call(t, `auth/tokens/${r.json.id}`, { method: "DELETE", token: t.adminToken });
  assert.equal(del.status, 204);
  assert.equal(del.text, "");
  assertError(await call(t, `auth/tokens/${r.json.id}`, { method: "DELETE", token: t.adminToken }), 404, "not_found");
  assertError(await call(t, `auth/tokens/${r.json.id}`, { token: t.adminToken }), 404, "not_found");
  const e = assertError(await call(t, "profiles", { token: r.json.token }), 401, "unauthorized");
  assert.match(e.message, /revoked/);
  assertError(await call(t, "auth/tokens", { headers: { Cookie: cookie } }), 401, "unauthorized");
  assert.ok(!((await call(t, "auth/tokens", { token: t.adminToken })).json as { id: string }[]).some((x) => x.id === r.json.id));
});

test("a user-role token cannot manage tokens", async () => {
  const r = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "plain-user" } });
  assert.equal(r.status, 201);
  assertError(await call(t, "auth/tokens", { token: r.json.token, json: { name: "escalate", role: "admin" } }), 403, "forbidden");
  const list = (await call(t, "auth/tokens", { token: t.adminToken })).json as { id: string }[];
  assertError(await call(t, `auth/tokens/${list[0]!.id}`, { method: "DELETE", token: r.json.token }), 403, "forbidden");
  assert.equal((await call(t, `auth/tokens/${r.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
});

test("in dev mode a loopback client has full (Self) access without credentials, Self endpoints included", async () => {
  const p = await call(dev, "auth/permissions");
  assert.equal(p.status, 200);
  assert.equal(p.json.Read, 4);
  assert.equal(p.json.Write, 4);
  assert.equal(p.json.ReadRole, "Self");
  assert.equal(p.json.Via, "dev");
  assert.equal((await call(dev, "auth/tokens")).status, 200);
  const r = await call(dev, "modules/filter/trigger/reload", { method: "POST" });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.text, "event successfully injected\n");
  const f = await call(dev, "modules/auth/trigger/flush", { method: "POST" });
  assert.equal(f.status, 200);
  assertError(await call(dev, "modules/core/trigger/nothing", { method: "POST" }), 404, "not_found");
  assert.equal(dev.control.notifications.list().length, 0);
  assert.equal(p.headers.get("content-security-policy"), null, "no CSP in dev mode");
});

test("dev mode gives nothing to a client that is not on loopback", async (ctx) => {
  const addr = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address;
  if (!addr) {
    ctx.skip("no non-loopback IPv4 address on this machine");
    return;
  }
  const wide = await startTestApi({ devMode: true }, { host: "0.0.0.0" });
  try {
    const url = `http://${addr}:${wide.port}/api/v1/`;
    const p = await fetch(url + "auth/permissions");
    assert.equal(p.status, 200);
    assert.deepEqual(await p.json(), { Read: 1, Write: 1, ReadRole: "Anyone", WriteRole: "Anyone", Via: "anonymous", Name: null });
    assert.equal((await fetch(url + "auth/tokens")).status, 401);
    assert.equal((await fetch(url + "auth/tokens", { headers: { Authorization: `Bearer ${wide.adminToken}` } })).status, 200);
    assert.equal((await fetch(url + "modules/filter/trigger/reload", { method: "POST", headers: { Authorization: `Bearer ${wide.adminToken}` } })).status, 403);
    assert.equal((await call(wide, "modules/filter/trigger/reload", { method: "POST" })).status, 200, "loopback still has Self");
  } finally {
    wide.close();
  }
});

test("after the allowed number of failed authentications a client gets 429 with Retry-After, even with a good token", async () => {
  const rl = await startTestApi({ authFailLimit: 3, authFailWindowS: 30 });
  try {
    for (let i = 0; i < 3; i++) assertError(await call(rl, "profiles", { token: `wrongkey-${i}-000000000000` }), 401, "unauthorized");
    const r = await call(rl, "profiles", { token: rl.adminToken });
    const e = assertError(r, 429, "rate_limiting");
    const wait = Number(r.headers.get("retry-after"));
    assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 30, `Retry-After ${r.headers.get("retry-after")}`);
    assert.equal(e.data.retryAfter, wait);
    assertError(await call(rl, "profiles", { headers: { "Sluice-Auth": `admin:${rl.adminToken}` } }), 429, "rate_limiting");
    // Move the window into the past: the lockout ends.
    const clients = (rl.api.deps.auth.limiter as unknown as { clients: Map<string, { windowStart: number }> }).clients;
    for (const c of clients.values()) c.windowStart -= 31_000;
    assert.equal((await call(rl, "profiles", { token: rl.adminToken })).status, 200);
  } finally {
    rl.close();
  }
});

test("good credentials do not count towards the rate limit", async () => {
  const rl = await startTestApi({ authFailLimit: 2 });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await call(rl, "profiles", { token: rl.adminToken })).status, 200);
    assertError(await call(rl, "profiles", { token: "wrongkey-000000000000" }), 401);
    assert.equal((await call(rl, "profiles", { token: rl.adminToken })).status, 200);
  } finally {
    rl.close();
  }
});

// --- app/auth: an app asks for access, an admin answers -------------------------------------

type Prompt = { EventID: string; Type: number; State: string; EventData: { app: string; read: string; write: string }; AvailableActions: { ID: string }[] };

async function pendingFor(app: string): Promise<Prompt> {
  return until(async () => {
    const r = await call(t, "app/requests", { token: t.adminToken });
    assert.equal(r.status, 200);
    return (r.json as Prompt[]).find((n) => n.EventData.app === app) ?? null;
  }, 3000, `the access request of ${app}`);
}

test("app/auth waits for an admin; allowing it returns a working key with its expiry", async () => {
  const waiting = call(t, "app/auth?app-name=Home%20Assistant&read=user&write=user&ttl=2h");
  void waiting.catch(() => undefined);
  const p = await pendingFor("Home Assistant");
  assert.equal(p.Type, 2);
  assert.equal(p.State, "active");
  assert.deepEqual(p.AvailableActions.map((a) => a.ID), ["allow", "deny"]);
  assert.equal(p.EventData.read, "user");
  const answer = await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "allow" } });
  assert.equal(answer.status, 200, answer.text);
  assert.equal(answer.json.SelectedActionID, "allow");
  const r = await waiting;
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ["key", "validUntil"]);
  assert.match(r.json.key, /^slc_/);
  assert.ok(Math.abs(Date.parse(r.json.validUntil) - Date.now() - 2 * 3600_000) < 60_000);
  const perms = await call(t, "auth/permissions", { token: r.json.key });
  assert.equal(perms.json.Read, 2);
  assert.equal(perms.json.Write, 2);
  assert.equal((await call(t, "profiles", { token: r.json.key })).status, 200);
  assertError(await call(t, "auth/tokens", { token: r.json.key }), 403, "forbidden");
  // It is an app token like any other: listed (owned by app/auth:<app>) and revocable.
  const listed = ((await call(t, "auth/tokens", { token: t.adminToken })).json as { id: string; owner: string; name: string }[]).find((x) => x.owner === "app/auth:Home Assistant");
  assert.ok(listed, "listed");
  assert.match(listed.name, /^Home Assistant /);
  // The prompt is answered: answering again is a conflict, and it is no longer pending.
  assertError(await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "deny" } }), 409, "conflict");
  assert.ok(!((await call(t, "app/requests", { token: t.adminToken })).json as Prompt[]).some((n) => n.EventID === p.EventID));
});

test("app/auth for an app name with characters a token name cannot hold still yields a key", async () => {
  const waiting = call(t, `app/auth?app-name=${encodeURIComponent("Grafana (Büro)")}&read=admin&write=user`);
  void waiting.catch(() => undefined);
  const p = await pendingFor("Grafana (Büro)");
  assert.equal((await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "allow" } })).status, 200);
  const r = await waiting;
  assert.equal(r.status, 200, r.text);
  const perms = await call(t, "auth/permissions", { token: r.json.key });
  assert.equal(perms.json.Read, 3);
  assert.equal(perms.json.Write, 2);
});

test("app/auth for an app name starting with a character a token name cannot start with still yields a key", async () => {
  const waiting = call(t, `app/auth?app-name=${encodeURIComponent("(beta) tool")}`);
  void waiting.catch(() => undefined);
  const p = await pendingFor("(beta) tool");
  assert.equal((await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "allow" } })).status, 200);
  const r = await waiting;
  assert.equal(r.status, 200, r.text);
  assert.equal((await call(t, "profiles", { token: r.json.key })).status, 200);
});

test("app/auth denied by the admin gets 403", async () => {
  const waiting = call(t, "app/auth?app-name=intruder");
  void waiting.catch(() => undefined);
  const p = await pendingFor("intruder");
  const answer = await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "deny" } });
  assert.equal(answer.status, 200);
  const e = assertError(await waiting, 403, "forbidden");
  assert.match(e.message, /denied/);
});

test("an app/auth client that goes away withdraws its prompt", async () => {
  const ac = new AbortController();
  const waiting = call(t, "app/auth?app-name=impatient", { signal: ac.signal }).catch((err: Error) => err);
  void waiting.catch(() => undefined);
  const p = await pendingFor("impatient");
  ac.abort();
  assert.ok((await waiting) instanceof Error);
  await until(async () => !((await call(t, "app/requests", { token: t.adminToken })).json as Prompt[]).some((n) => n.EventID === p.EventID), 3000, "the prompt to go");
  assert.equal(t.control.notifications.get(p.EventID), null);
  assertError(await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "allow" } }), 404, "not_found");
});

test("app/auth refuses bad parameters with 400 at once", async () => {
  let e = assertError(await call(t, "app/auth?app-name=x&read=root"), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "read" });
  e = assertError(await call(t, "app/auth?app-name=x&write=anyone"), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "write" });
  e = assertError(await call(t, "app/auth"), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "app-name" });
  e = assertError(await call(t, "app/auth?app-name=x&ttl=forever"), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "ttl" });
  e = assertError(await call(t, "app/auth?app-name=%3Cscript%3E"), 400, "bad_request");
  assert.equal(((await call(t, "app/requests", { token: t.adminToken })).json as unknown[]).length, 0, "nothing was posted");
});

test("answering access requests needs Admin, a valid action and an existing request", async () => {
  assertError(await call(t, "app/requests"), 401, "unauthorized");
  assertError(await call(t, "app/requests", { token: USER_KEY }), 403, "forbidden");
  assertError(await call(t, "app/requests/sluice:authorize-app-none", { token: t.adminToken, json: { action: "allow" } }), 404, "not_found");
  const waiting = call(t, "app/auth?app-name=picky");
  void waiting.catch(() => undefined);
  const p = await pendingFor("picky");
  assertError(await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "maybe" } }), 400, "body_error");
  assertError(await call(t, `app/requests/${p.EventID}`, { token: USER_KEY, json: { action: "allow" } }), 403, "forbidden");
  assert.equal((await call(t, `app/requests/${p.EventID}`, { token: t.adminToken, json: { action: "deny" } })).status, 200);
  assertError(await waiting, 403, "forbidden");
});
