// The Pi-hole v6 compatible routes under /api/: the reply envelope (took, error with hint),
// routing (404, OPTIONS, 405), login sessions (sid from body, header, cookie with CSRF, query;
// seats; logout; revocation; read-only credentials; the rate limit), blocking, domains, lists,
// gravity's streamed text, the stats and query log, info and endpoints — and that Portmaster's
// /api/v1 routes and the database WebSocket path answer as before.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { call, startTestApi, type CallOptions, type Res, type TestApi } from "./helpers/api.js";
import { DnsFilter } from "../src/dns/filter.js";
import { QueryLog } from "../src/dns/querylog.js";
import { DnsService } from "../src/dns/service.js";
import { Decide, QueryStatus, ReplyType, type BlockingState, type DnsControlApi, type DomainRow, type ListRow, type QueryFilter } from "../src/dns/types.js";

const READONLY_KEY = "readonlykey000000000";
const USER_WRITE_KEY = "userwritekey00000000";

// The real filter (lists fetched through a stand-in fetch) and query log (queries recorded here),
// in a small stand-in for the service (blocking state, cache flush).

/** What every list "download" returns: two hosts-file names and one ABP entry. */
const LIST_BODY = "0.0.0.0 ads1.example\n0.0.0.0 ads2.example\n||abp.example^\n";
/** How long a stand-in download takes, so two gravity requests overlap. */
const DOWNLOAD_MS = 50;
let downloads = 0;

const listFetch = (async () => {
  downloads++;
  await new Promise((r) => setTimeout(r, DOWNLOAD_MS));
  return new Response(LIST_BODY, { status: 200, headers: { "Content-Type": "text/plain" } });
}) as unknown as typeof fetch;

/** Names the query log gives client addresses. */
const CLIENT_NAMES: Record<string, string> = { "192.168.1.20": "laptop" };
const LAPTOP = "192.168.1.20";
const PHONE = "192.168.1.30";
const QUAD9 = "9.9.9.9#53";
const TYPE_A = 1;
const TYPE_AAAA = 28;
const GRAVITY_LIST_ID = 1;
const NO_LIST = -1;

/** Eight answered queries in the last minutes, oldest first: 4 forwarded, 1 cached, 3 blocked. */
function recordQueries(log: QueryLog): void {
  const now = Date.now();
  const q: [string, string, number, QueryStatus, ReplyType, number, string | null, number][] = [
    [LAPTOP, "example.com", TYPE_A, QueryStatus.FORWARDED, ReplyType.IP, 12, QUAD9, NO_LIST],
    [LAPTOP, "example.com", TYPE_A, QueryStatus.FORWARDED, ReplyType.IP, 14, QUAD9, NO_LIST],
    [LAPTOP, "example.com", TYPE_A, QueryStatus.FORWARDED, ReplyType.IP, 10, QUAD9, NO_LIST],
    [LAPTOP, "ads.example", TYPE_A, QueryStatus.GRAVITY, ReplyType.BLOB, 0, null, GRAVITY_LIST_ID],
    [LAPTOP, "ads.example", TYPE_A, QueryStatus.GRAVITY, ReplyType.BLOB, 0, null, GRAVITY_LIST_ID],
    [PHONE, "example.com", TYPE_A, QueryStatus.CACHE, ReplyType.IP, 0, null, NO_LIST],
    [PHONE, "example.org", TYPE_AAAA, QueryStatus.FORWARDED, ReplyType.IP, 20, QUAD9, NO_LIST],
    [PHONE, "tracker.example", TYPE_A, QueryStatus.DENYLIST, ReplyType.BLOB, 0, null, NO_LIST],
  ];
  q.forEach(([client, domain, qtype, status, reply, ms, upstream, listId], i) => {
    log.record(now - (q.length - i) * 1000, client, domain, qtype, status, reply, ms, upstream, listId, null);
  });
}

/** The service around the real filter and query log: blocking state and the cache flush. */
class TestDns implements DnsControlApi {
  running = true;
  flushes = 0;
  private state: BlockingState = { blocking: "enabled", timer: null };
  constructor(
    readonly filter: DnsFilter,
    readonly log: QueryLog,
  ) {}
  readonly perClient = new Map<string, BlockingState>();

  blocking(client?: string): BlockingState {
    return (client && this.perClient.get(client)) || this.state;
  }
  setBlocking(enabled: boolean, timerS: number | null, client?: string): BlockingState {
    const s: BlockingState = { blocking: enabled ? "enabled" : "disabled", timer: timerS !== null && timerS > 0 ? timerS : null };
    if (client) this.perClient.set(client, s);
    else this.state = s;
    return s;
  }
  flushCache(): number {
    this.flushes++;
    return 3;
  }
}

// ---------------------------------------------------------------------------------------------

let t: TestApi;
let dns: TestDns;
let admin: string;

before(async () => {
  t = await startTestApi({
    authFailLimit: 1_000_000,
    maxBodyKB: 4,
    keys: [`${READONLY_KEY}?read=user&write=anyone`, `${USER_WRITE_KEY}?read=user&write=user`],
  });
  const log = new QueryLog({ clientName: (ip) => CLIENT_NAMES[ip] ?? null });
  recordQueries(log);
  dns = new TestDns(DnsFilter.open(join(t.dir, "dns"), { fetch: listFetch }), log);
  t.control.dns = dns;
  admin = await login(t, t.adminToken);
});
after(() => t?.close());

/** Asserts `took` and returns the reply; `took` is in every JSON reply. */
function tookOk(r: Res): Res {
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/, r.text);
  assert.equal(typeof r.json.took, "number", `took in ${r.text}`);
  assert.ok(r.json.took >= 0 && r.json.took < 10);
  return r;
}

/** Asserts Pi-hole's error envelope: {"error":{"key","message","hint"},"took"}, and the status and key. */
function piError(r: Res, status: number, key: string): { key: string; message: string; hint: string | null } {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  tookOk(r);
  assert.ok("error" in r.json, r.text);
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ["hint", "key", "message"]);
  assert.equal(e.key, key, r.text);
  assert.equal(typeof e.message, "string");
  assert.ok(e.hint === null || typeof e.hint === "string");
  return e;
}

/** A request with the sid in the `sid` header (Pi-hole's header form). */
function pi(path: string, sid: string | null, o: CallOptions = {}): Promise<Res> {
  return call(t, path, { ...o, headers: { ...(sid ? { sid } : {}), ...(o.headers ?? {}) } });
}

async function login(api: TestApi, password: string): Promise<string> {
  const r = await call(api, "/api/auth", { json: { password } });
  assert.equal(r.status, 200, r.text);
  return r.json.session.sid as string;
}

function setCookies(r: Res): string[] {
  return r.headers.getSetCookie();
}

// --- Portmaster's side is untouched ----------------------------------------------------------

test("Portmaster's /api/v1 routes answer as before, with sluice's envelope, beside the Pi-hole routes", async () => {
  const ping = await call(t, "ping");
  assert.equal(ping.status, 200);
  assert.equal(ping.text, "Pong.\n");
  const eps = await call(t, "endpoints");
  assert.equal(eps.status, 200);
  assert.ok(Array.isArray(eps.json) && eps.json.some((e: { Path: string }) => e.Path === "ping"));
  assert.ok(!eps.json.some((e: { Path: string }) => e.Path.startsWith("/") || e.Path.includes("dns/blocking")), "the Pi-hole routes are not in the Portmaster list");
  const missing = await call(t, "no/such/endpoint");
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json, { error: { key: "not_found", message: "Not found: /api/v1/no/such/endpoint", data: { path: "/api/v1/no/such/endpoint" } } });
  // Authentication on /api/v1 is its own: a Pi-hole sid is not a credential there.
  const tokens = await call(t, "auth/tokens", { headers: { sid: admin } });
  assert.equal(tokens.status, 401);
  assert.equal((await call(t, "auth/tokens", { token: t.adminToken })).status, 200);
});

test("a plain request to the database WebSocket path, or to /api/v1 without its slash, gets the server's own 404, not a Pi-hole reply", async () => {
  for (const path of ["/api/database/v1", "/api/database", "/api/database/v2", "/api/v1"]) {
    const r = await call(t, path);
    assert.equal(r.status, 404, path);
    assert.deepEqual(r.json, { error: { key: "not_found", message: `Not found: ${path}`, data: { path } } });
  }
});

// --- Routing and the envelope ----------------------------------------------------------------

test("an unknown /api/ route gets 404 not_found with the URI as the hint", async () => {
  for (const path of ["/api/nope", "/api/", "/api/stats/summaryx", "/api/auth/foo"]) {
    const e = piError(await pi(path, admin), 404, "not_found");
    assert.equal(e.hint, path);
  }
});

test("OPTIONS answers 204 with an Allow header listing the path's methods", async () => {
  const r = await call(t, "/api/domains/allow/exact", { method: "OPTIONS" });
  assert.equal(r.status, 204);
  assert.equal(r.text, "");
  assert.equal(r.headers.get("allow"), "GET, HEAD, POST, PUT, DELETE, OPTIONS");
  const b = await call(t, "/api/dns/blocking", { method: "OPTIONS" });
  assert.equal(b.headers.get("allow"), "GET, HEAD, POST, OPTIONS");
});

test("a method a route does not answer gets 405 method_not_allowed with Allow", async () => {
  const r = await pi("/api/stats/summary", admin, { method: "POST", json: {} });
  const e = piError(r, 405, "method_not_allowed");
  assert.equal(r.headers.get("allow"), "GET, HEAD, OPTIONS");
  assert.match(e.hint!, /GET/);
  piError(await pi("/api/action/gravity", admin), 405, "method_not_allowed");
});

test("Pi-hole replies carry the same security headers as the rest of the server", async () => {
  for (const r of [await pi("/api/stats/summary", admin), await pi("/api/nope", admin), await call(t, "/api/info/login")]) {
    assert.equal(r.headers.get("x-frame-options"), "deny");
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    assert.equal(r.headers.get("referrer-policy"), "same-origin");
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.match(r.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  }
});

test("a cross-origin page is refused with 403 forbidden", async () => {
  piError(await pi("/api/stats/summary", admin, { headers: { Origin: "http://evil.example" } }), 403, "forbidden");
  assert.equal((await pi("/api/stats/summary", admin, { headers: { Origin: t.origin } })).status, 200);
});

test("a missing or malformed JSON body gets 400 bad_request with Pi-hole's messages", async () => {
  const none = piError(await pi("/api/dns/blocking", admin, { method: "POST" }), 400, "bad_request");
  assert.equal(none.message, "No request body data");
  const bad = piError(await pi("/api/dns/blocking", admin, { body: '{"blocking": tru', headers: { "Content-Type": "application/json" } }), 400, "bad_request");
  assert.equal(bad.message, "Invalid request body data (no valid JSON), error at hint");
  assert.ok(bad.hint && bad.hint.length > 0);
});

test("a body over api/maxBodyKB gets 413 and the server still answers afterwards", async () => {
  const big = JSON.stringify({ domain: Array.from({ length: 400 }, (_, i) => `host${i}.example.com`) });
  assert.ok(big.length > 4 * 1024);
  const e = piError(await pi("/api/domains/deny/exact", admin, { body: big, headers: { "Content-Type": "application/json" } }), 413, "body_too_large");
  assert.match(e.hint!, /4096 bytes/);
  assert.equal(dns.filter.listDomains({}).length, 0, "nothing was added");
  assert.equal((await pi("/api/stats/summary", admin)).status, 200);
});

// --- Authentication --------------------------------------------------------------------------

test("POST /api/auth with an app token opens a session: sid, csrf, validity 1800 and an HttpOnly Lax cookie", async () => {
  const r = await call(t, "/api/auth", { json: { password: t.adminToken } });
  assert.equal(r.status, 200);
  tookOk(r);
  const s = r.json.session;
  assert.deepEqual(Object.keys(s).sort(), ["csrf", "message", "sid", "totp", "valid", "validity"]);
  assert.equal(s.valid, true);
  assert.equal(s.totp, false);
  assert.equal(s.validity, 1800);
  assert.equal(s.message, "password correct");
  assert.match(s.sid, /^[A-Za-z0-9_-]{22}$/);
  assert.match(s.csrf, /^[A-Za-z0-9_-]{22}$/);
  const cookie = setCookies(r).find((c) => c.startsWith("sid="))!;
  assert.ok(cookie, "the sid cookie is set");
  assert.match(cookie, new RegExp(`^sid=${s.sid}; `));
  assert.match(cookie, /SameSite=Lax/);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /Max-Age=1800/);
  assert.match(cookie, /Path=\//);
  await pi("/api/auth", s.sid, { method: "DELETE" });
});

test("a sid is accepted from the sid and X-FTL-SID headers, the query string and the JSON body", async () => {
  assert.equal((await call(t, "/api/stats/summary", { headers: { sid: admin } })).status, 200);
  assert.equal((await call(t, "/api/stats/summary", { headers: { "X-FTL-SID": admin } })).status, 200);
  assert.equal((await call(t, `/api/stats/summary?sid=${encodeURIComponent(admin)}`)).status, 200);
  const body = await call(t, "/api/dns/blocking", { json: { blocking: true, sid: admin } });
  assert.equal(body.status, 200, body.text);
  piError(await call(t, "/api/stats/summary"), 401, "unauthorized");
  piError(await call(t, "/api/stats/summary", { headers: { sid: "not-a-session" } }), 401, "unauthorized");
});

test("a sid from the cookie reads freely but writes only with the session's X-CSRF-TOKEN", async () => {
  const r = await call(t, "/api/auth", { json: { password: t.adminToken } });
  const { sid, csrf } = r.json.session;
  const cookie = `sid=${sid}`;
  const get = await call(t, "/api/dns/blocking", { headers: { Cookie: cookie } });
  assert.equal(get.status, 200);
  assert.ok(setCookies(get).some((c) => c.startsWith(`sid=${sid};`)), "the cookie is re-issued as the session slides");
  const e = piError(await call(t, "/api/dns/blocking", { json: { blocking: true }, headers: { Cookie: cookie } }), 401, "unauthorized");
  assert.match(e.hint!, /X-CSRF-TOKEN/);
  piError(await call(t, "/api/dns/blocking", { json: { blocking: true }, headers: { Cookie: cookie, "X-CSRF-TOKEN": "wrong" } }), 401, "unauthorized");
  const okWrite = await call(t, "/api/dns/blocking", { json: { blocking: true }, headers: { Cookie: cookie, "X-CSRF-TOKEN": csrf } });
  assert.equal(okWrite.status, 200, okWrite.text);
  // A header sid needs no CSRF token.
  assert.equal((await pi("/api/dns/blocking", sid, { json: { blocking: true } })).status, 200);
  // Logging in again while holding the cookie (no CSRF token) is not refused.
  const again = await call(t, "/api/auth", { json: { password: t.adminToken }, headers: { Cookie: cookie } });
  assert.equal(again.status, 200, again.text);
  assert.notEqual(again.json.session.sid, sid);
  // Logging out with the cookie needs the CSRF token too.
  const e2 = piError(await call(t, "/api/auth", { method: "DELETE", headers: { Cookie: cookie } }), 401, "unauthorized");
  assert.match(e2.hint!, /X-CSRF-TOKEN/);
  assert.equal((await call(t, "/api/auth", { method: "DELETE", headers: { Cookie: cookie, "X-CSRF-TOKEN": csrf } })).status, 204);
  await pi("/api/auth", again.json.session.sid, { method: "DELETE" });
});

test("GET /api/auth reports the session, or 401 with the session object saying why", async () => {
  const ok = await pi("/api/auth", admin);
  assert.equal(ok.status, 200);
  assert.equal(ok.json.session.valid, true);
  assert.equal(ok.json.session.sid, admin);
  assert.ok(ok.json.session.validity > 1790);
  const none = await call(t, "/api/auth");
  assert.equal(none.status, 401);
  tookOk(none);
  assert.deepEqual(none.json.session, { valid: false, totp: false, sid: null, csrf: null, validity: -1, message: "no SID provided" });
  assert.ok(setCookies(none).some((c) => /^sid=;.*Max-Age=0/.test(c)), "the cookie is deleted");
  const unknown = await pi("/api/auth", "AAAAAAAAAAAAAAAAAAAAAA");
  assert.equal(unknown.status, 401);
  assert.equal(unknown.json.session.message, "session unknown");
});

test("a wrong password gets 401 with the session object (password incorrect); a missing one gets 400", async () => {
  const r = await call(t, "/api/auth", { json: { password: "slc_wrong" } });
  assert.equal(r.status, 401);
  tookOk(r);
  assert.deepEqual(r.json.session, { valid: false, totp: false, sid: null, csrf: null, validity: -1, message: "password incorrect" });
  assert.ok(!("error" in r.json));
  piError(await call(t, "/api/auth", { json: {} }), 400, "bad_request");
  piError(await call(t, "/api/auth", { json: { password: 42 } }), 400, "bad_request");
});

test("logout answers 204 and the sid is refused afterwards (401)", async () => {
  const sid = await login(t, t.adminToken);
  const r = await pi("/api/auth", sid, { method: "DELETE" });
  assert.equal(r.status, 204);
  assert.equal(r.text, "");
  const after = await pi("/api/auth", sid);
  assert.equal(after.status, 401);
  assert.equal(after.json.session.message, "session unknown");
  piError(await pi("/api/stats/summary", sid), 401, "unauthorized");
  piError(await pi("/api/auth", sid, { method: "DELETE" }), 401, "unauthorized");
});

test("GET /api/auth/sessions lists the sessions and DELETE /api/auth/session/{id} ends one", async () => {
  const other = await login(t, t.adminToken);
  const r = await pi("/api/auth/sessions", admin, { headers: { "User-Agent": "pihole-test" } });
  assert.equal(r.status, 200);
  tookOk(r);
  const list = r.json.sessions as Record<string, any>[];
  const mine = list.find((s) => s.current_session)!;
  assert.ok(mine, "the current session is marked");
  assert.deepEqual(Object.keys(mine).sort(), ["app", "cli", "current_session", "id", "last_active", "login_at", "remote_addr", "tls", "user_agent", "valid", "valid_until", "x_forwarded_for"].sort());
  assert.equal(mine.valid, true);
  assert.equal(mine.app, true, "opened with an app token");
  assert.deepEqual(mine.tls, { login: false, mixed: false });
  assert.equal(mine.remote_addr, "127.0.0.1");
  assert.ok(mine.valid_until - mine.last_active === 1800);
  const seenByOther = (await pi("/api/auth/sessions", other)).json.sessions as Record<string, any>[];
  const otherId = seenByOther.find((s) => s.current_session)!.id as number;
  assert.notEqual(otherId, mine.id);
  const del = await pi(`/api/auth/session/${otherId}`, admin, { method: "DELETE" });
  assert.equal(del.status, 204);
  piError(await pi(`/api/auth/session/${otherId}`, admin, { method: "DELETE" }), 400, "bad_request");
  piError(await pi("/api/auth/session/99", admin, { method: "DELETE" }), 400, "bad_request");
  piError(await pi("/api/auth/session/x", admin, { method: "DELETE" }), 400, "bad_request");
  piError(await pi("/api/stats/summary", other), 401, "unauthorized");
});

test("the seventeenth session is refused with 429 api_seats_exceeded until one ends", async () => {
  const api = await startTestApi();
  try {
    const sids: string[] = [];
    for (let i = 0; i < 16; i++) sids.push(await login(api, api.adminToken));
    const r = await call(api, "/api/auth", { json: { password: api.adminToken } });
    const e = piError(r, 429, "api_seats_exceeded");
    assert.equal(e.message, "API seats exceeded");
    assert.equal((await call(api, "/api/auth", { method: "DELETE", headers: { sid: sids[3]! } })).status, 204);
    assert.equal((await call(api, "/api/auth", { json: { password: api.adminToken } })).status, 200);
  } finally {
    api.close();
  }
});

test("revoking the app token a session was opened with ends the session at once", async () => {
  const made = await call(t, "auth/tokens", { token: t.adminToken, json: { name: "pihole-client", role: "admin" } });
  assert.equal(made.status, 201, made.text);
  const sid = await login(t, made.json.token);
  assert.equal((await pi("/api/stats/summary", sid)).status, 200);
  assert.equal((await call(t, `auth/tokens/${made.json.id}`, { method: "DELETE", token: t.adminToken })).status, 204);
  piError(await pi("/api/stats/summary", sid), 401, "unauthorized");
  const r = await pi("/api/auth", sid);
  assert.equal(r.status, 401);
  assert.equal(r.json.session.valid, false);
});

test("a session opened with a read-only key reads but gets 403 forbidden on writes; User-level write is not enough either", async () => {
  const ro = await login(t, READONLY_KEY);
  assert.equal((await pi("/api/stats/summary", ro)).status, 200);
  assert.equal((await pi("/api/domains", ro)).status, 200);
  const e = piError(await pi("/api/dns/blocking", ro, { json: { blocking: false } }), 403, "forbidden");
  assert.match(e.message, /write level Admin/);
  piError(await pi("/api/domains/deny/exact", ro, { json: { domain: "x.example" } }), 403, "forbidden");
  piError(await pi("/api/action/gravity", ro, { method: "POST" }), 403, "forbidden");
  assert.equal(dns.blocking().blocking, "enabled", "the refused write did nothing");
  const uw = await login(t, USER_WRITE_KEY);
  piError(await pi("/api/dns/blocking", uw, { json: { blocking: false } }), 403, "forbidden");
  // Both may end their own session.
  assert.equal((await pi("/api/auth", ro, { method: "DELETE" })).status, 204);
  assert.equal((await pi("/api/auth", uw, { method: "DELETE" })).status, 204);
});

test("changing the API keys ends the sessions opened with a key", async () => {
  const ro = await login(t, READONLY_KEY);
  assert.equal((await pi("/api/stats/summary", ro)).status, 200);
  const set = await call(t, "config/option/core/apiKeys", { method: "PUT", token: t.adminToken, json: { Value: [`${READONLY_KEY}?read=user&write=anyone`, `${USER_WRITE_KEY}?read=user&write=user`] } });
  assert.equal(set.status, 200, set.text);
  piError(await pi("/api/stats/summary", ro), 401, "unauthorized");
  assert.equal((await pi("/api/stats/summary", admin)).status, 200, "a token session is unaffected");
});

test("sluice's own credentials work on the Pi-hole routes without a session; bad ones get 401", async () => {
  assert.equal((await call(t, "/api/stats/summary", { token: t.adminToken })).status, 200);
  const e = piError(await call(t, "/api/stats/summary", { token: "slc_nope" }), 401, "unauthorized");
  assert.match(e.hint!, /unknown or revoked token/);
  piError(await call(t, "/api/dns/blocking", { token: READONLY_KEY, json: { blocking: true } }), 403, "forbidden");
});

test("after repeated failed logins the client gets 429 rate_limiting even with the right password", async () => {
  const api = await startTestApi({ authFailLimit: 3, authFailWindowS: 60 });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await call(api, "/api/auth", { json: { password: `slc_wrong${i}` } });
      assert.equal(r.status, 401);
      assert.equal(r.json.session.message, "password incorrect");
    }
    const r = await call(api, "/api/auth", { json: { password: api.adminToken } });
    const e = piError(r, 429, "rate_limiting");
    assert.equal(e.message, "Rate-limiting login attempts");
    const wait = Number(r.headers.get("retry-after"));
    assert.ok(wait > 0 && wait <= 60, `Retry-After ${wait}`);
  } finally {
    api.close();
  }
});

test("in dev mode a loopback client is treated as Pi-hole with no password set", async () => {
  const api = await startTestApi({ devMode: true });
  try {
    for (const r of [await call(api, "/api/auth"), await call(api, "/api/auth", { json: { password: "anything" } })]) {
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.session, { valid: true, totp: false, sid: null, csrf: null, validity: -1, message: "no password set" });
    }
    assert.deepEqual((await call(api, "/api/dns/blocking")).json.blocking, "unknown");
    assert.equal((await call(api, "/api/endpoints")).status, 200);
    assert.equal(r404(await call(api, "/api/auth", { method: "DELETE" })), true);
  } finally {
    api.close();
  }
});

function r404(r: Res): boolean {
  return r.status === 404 && JSON.stringify(Object.keys(r.json)) === '["took"]';
}

// --- Without a DNS service -------------------------------------------------------------------

test("without a DNS service, blocking reads unknown, info/login says dns false, and the other DNS routes answer 503 dns_failure", async () => {
  t.control.dns = null;
  try {
    const b = await pi("/api/dns/blocking", admin);
    assert.equal(b.status, 200);
    tookOk(b);
    assert.equal(b.json.blocking, "unknown");
    assert.equal(b.json.timer, null);
    assert.equal((await call(t, "/api/info/login")).json.dns, false);
    for (const [path, o] of [
      ["/api/stats/summary", {}],
      ["/api/domains", {}],
      ["/api/queries", {}],
      ["/api/dns/blocking", { json: { blocking: false } }],
      ["/api/action/restartdns", { method: "POST" }],
    ] as [string, CallOptions][]) {
      const e = piError(await pi(path, admin, o), 503, "dns_failure");
      assert.match(e.message, /not running/);
    }
  } finally {
    t.control.dns = dns;
  }
});

// --- Blocking ----------------------------------------------------------------------------------

test("GET/POST /api/dns/blocking read and set blocking with a timer; a non-boolean blocking is 400 body_error", async () => {
  const g = await pi("/api/dns/blocking", admin);
  assert.equal(g.status, 200);
  assert.deepEqual({ blocking: g.json.blocking, timer: g.json.timer }, { blocking: "enabled", timer: null });
  const off = await pi("/api/dns/blocking", admin, { json: { blocking: false, timer: 300 } });
  assert.equal(off.status, 200);
  tookOk(off);
  assert.deepEqual({ blocking: off.json.blocking, timer: off.json.timer }, { blocking: "disabled", timer: 300 });
  assert.equal((await pi("/api/dns/blocking", admin)).json.blocking, "disabled");
  const on = await pi("/api/dns/blocking", admin, { json: { blocking: true, timer: null } });
  assert.equal(on.json.blocking, "enabled");
  assert.equal(on.json.timer, null);
  for (const body of [{ blocking: "false" }, {}, { blocking: 0 }]) piError(await pi("/api/dns/blocking", admin, { json: body }), 400, "body_error");
  piError(await pi("/api/dns/blocking", admin, { json: { blocking: false, timer: "5m" } }), 400, "body_error");
  assert.equal(dns.blocking().blocking, "enabled");
});

test("the client extension pauses blocking for one device only", async () => {
  const r = await pi("/api/dns/blocking", admin, { json: { blocking: false, timer: 60, client: "192.168.1.20" } });
  assert.equal(r.status, 200);
  assert.equal(r.json.blocking, "disabled");
  assert.equal((await pi("/api/dns/blocking?client=192.168.1.20", admin)).json.blocking, "disabled");
  assert.equal((await pi("/api/dns/blocking", admin)).json.blocking, "enabled", "everyone else still blocked");
  piError(await pi("/api/dns/blocking", admin, { json: { blocking: false, client: "laptop" } }), 400, "body_error");
  piError(await pi("/api/dns/blocking?client=nope", admin), 400, "bad_request");
});

test("POST /api/action/restartdns flushes the cache and answers status success", async () => {
  const before = dns.flushes;
  const r = await pi("/api/action/restartdns", admin, { method: "POST" });
  assert.equal(r.status, 200);
  tookOk(r);
  assert.equal(r.json.status, "success");
  assert.equal(dns.flushes, before + 1);
});

test("with the real DNS service: per-device pause, global timer, restartdns and info/login", async () => {
  const c = t.control.config.dns;
  // Loopback only, any free port; the upstream is never asked (nothing is resolved here).
  const svc = await DnsService.start({
    config: { ...c, listen: ["127.0.0.1"], port: 0, upstreams: ["127.0.0.1:9"], listRefreshHours: 0 },
    dataDir: join(t.dir, "real-dns"),
    log: { info: () => {}, warn: () => {} },
    ruleset: () => t.control.profiles.current,
    profileOf: (ip, mac) => t.control.profileFor(ip, mac),
    learn: null,
    history: null,
    wanInterfaces: [],
  });
  t.control.dns = svc;
  try {
    assert.equal((await call(t, "/api/info/login")).json.dns, true);
    const pause = await pi("/api/dns/blocking", admin, { json: { blocking: false, timer: 120, client: PHONE } });
    assert.equal(pause.status, 200, pause.text);
    assert.equal(pause.json.blocking, "disabled");
    assert.ok(pause.json.timer > 119 && pause.json.timer <= 120, `timer ${pause.json.timer}`);
    assert.equal((await pi(`/api/dns/blocking?client=${PHONE}`, admin)).json.blocking, "disabled");
    const global = await pi("/api/dns/blocking", admin);
    assert.equal(global.json.blocking, "enabled");
    assert.equal(global.json.timer, null);
    const off = await pi("/api/dns/blocking", admin, { json: { blocking: false, timer: 1 } });
    assert.equal(off.json.blocking, "disabled");
    await new Promise((r) => setTimeout(r, 1200));
    const back = await pi("/api/dns/blocking", admin);
    assert.deepEqual([back.json.blocking, back.json.timer], ["enabled", null], "the timer switched blocking back on");
    const flush = await pi("/api/action/restartdns", admin, { method: "POST" });
    assert.deepEqual([flush.status, flush.json.status], [200, "success"]);
    assert.equal((await pi("/api/stats/summary", admin)).json.queries.total, 0, "the service's own, empty query log");
  } finally {
    t.control.dns = dns;
    await svc.stop();
  }
});

// --- Domains -----------------------------------------------------------------------------------

test("POST /api/domains/{type}/{kind} answers 201 with Location, the rows and processed", async () => {
  const r = await pi("/api/domains/deny/exact", admin, { json: { domain: ["ads.example", "tracker.example"], comment: "test", groups: [0], enabled: true } });
  assert.equal(r.status, 201, r.text);
  tookOk(r);
  assert.equal(r.headers.get("location"), "/api/domains/deny/exact/ads.example");
  assert.deepEqual(r.json.domains.map((d: DomainRow) => d.domain), ["ads.example", "tracker.example"]);
  assert.equal(r.json.domains[0].comment, "test");
  assert.deepEqual(r.json.processed, { success: [{ item: "ads.example" }, { item: "tracker.example" }], errors: [] });
  // Partly failed: still 201, the failures in processed.errors.
  const partly = await pi("/api/domains/deny/exact", admin, { json: { domain: ["ads.example", "new.example"] } });
  assert.equal(partly.status, 201);
  assert.deepEqual(partly.json.processed.success, [{ item: "new.example" }]);
  assert.equal(partly.json.processed.errors[0].item, "ads.example");
});

test("a POST whose every item failed answers 400 bad_request with processed, not Pi-hole's 201", async () => {
  const r = await pi("/api/domains/deny/exact", admin, { json: { domain: "ads.example" } });
  const e = piError(r, 400, "bad_request");
  assert.equal(e.message, "No item could be added");
  assert.equal(e.hint, "ads.example: UNIQUE constraint failed: domainlist.domain, domainlist.type");
  assert.deepEqual(r.json.processed.success, []);
  assert.equal(r.json.processed.errors.length, 1);
  assert.deepEqual(Object.keys(r.json), ["error", "processed", "took"]);
  const bad = piError(await pi("/api/domains/deny/exact", admin, { json: { domain: ["not a domain!", "also bad!"] } }), 400, "bad_request");
  assert.match(bad.hint!, /^not a domain!: Invalid domain/);
});

test("a POST of a regex that does not compile is 400 regex_error with the compiler's message as hint", async () => {
  const e = piError(await pi("/api/domains/deny/regex", admin, { json: { domain: "(unclosed" } }), 400, "regex_error");
  assert.match(e.message, /\(unclosed/);
  assert.ok(e.hint && e.hint.length > 0);
  assert.equal(dns.filter.listDomains({ kind: "regex" }).length, 0);
});

test("GET /api/domains filters progressively by type, kind and domain; a missing item is 200 with an empty array", async () => {
  await pi("/api/domains/allow/exact", admin, { json: { domain: "good.example" } });
  const all = (await pi("/api/domains", admin)).json.domains as DomainRow[];
  assert.ok(all.some((d) => d.type === "allow") && all.some((d) => d.type === "deny"));
  const deny = (await pi("/api/domains/deny", admin)).json.domains as DomainRow[];
  assert.ok(deny.length >= 2 && deny.every((d) => d.type === "deny"));
  const exact = (await pi("/api/domains/allow/exact", admin)).json.domains as DomainRow[];
  assert.deepEqual(exact.map((d) => d.domain), ["good.example"]);
  const one = await pi("/api/domains/deny/exact/ads.example", admin);
  assert.equal(one.status, 200);
  tookOk(one);
  assert.deepEqual(Object.keys(one.json.domains[0]).sort(), ["comment", "date_added", "date_modified", "domain", "enabled", "groups", "id", "kind", "type", "unicode"]);
  // A domain right after /api/domains (Pi-hole's prefix reading).
  assert.deepEqual(((await pi("/api/domains/good.example", admin)).json.domains as DomainRow[]).map((d) => d.type), ["allow"]);
  const missing = await pi("/api/domains/deny/exact/nothing.example", admin);
  assert.equal(missing.status, 200);
  assert.deepEqual(missing.json.domains, []);
});

test("writes on a form that is not fully qualified, or with the item in the wrong place, get 400 uri_error", async () => {
  for (const path of ["/api/domains", "/api/domains/deny", "/api/domains/denied/exact", "/api/domains/deny/fuzzy"]) {
    piError(await pi(path, admin, { json: { domain: "x.example" } }), 400, "uri_error");
  }
  const e = piError(await pi("/api/domains/deny/exact/x.example", admin, { json: { domain: "x.example" } }), 400, "uri_error");
  assert.equal(e.message, "Specify item in payload, not as URI parameter");
  piError(await pi("/api/domains/deny/exact", admin, { method: "PUT", json: {} }), 400, "uri_error");
  piError(await pi("/api/domains/deny/exact", admin, { method: "DELETE" }), 400, "uri_error");
  piError(await pi("/api/domains/deny/exact", admin, { json: { domain: 5 } }), 400, "bad_request");
  piError(await pi("/api/domains/deny/exact", admin, { json: { domain: "y.example", groups: ["a"] } }), 400, "bad_request");
});

test("PUT creates or replaces a regex given URI-escaped in the path (200); a regex that does not compile is 400 regex_error with the message as hint", async () => {
  const re = "(^|\\.)doubleclick\\.net$";
  const r = await pi(`/api/domains/deny/regex/${encodeURIComponent(re)}`, admin, { method: "PUT", json: { comment: "dc", enabled: true } });
  assert.equal(r.status, 200, r.text);
  tookOk(r);
  assert.equal(r.json.domains[0].domain, re);
  assert.equal(r.json.domains[0].comment, "dc");
  assert.deepEqual(r.json.processed, { success: [{ item: re }], errors: [] });
  assert.equal(dns.filter.check("ad.doubleclick.net", 1, 0), Decide.DENY_REGEX, "the regex blocks at once");
  const moved = await pi(`/api/domains/deny/regex/${encodeURIComponent(re)}`, admin, { method: "PUT", json: { type: "allow" } });
  assert.equal(moved.json.domains[0].type, "allow");
  assert.equal(dns.filter.check("ad.doubleclick.net", 1, 0), Decide.ALLOW_REGEX, "moved to the allow list");
  const e = piError(await pi(`/api/domains/deny/regex/${encodeURIComponent("([bad")}`, admin, { method: "PUT", json: {} }), 400, "regex_error");
  assert.ok(e.hint && e.hint.length > 0, "the compile message is the hint");
  piError(await pi(`/api/domains/deny/regex/x`, admin, { method: "PUT", json: { kind: "glob" } }), 400, "bad_request");
});

test("DELETE answers 204, then 404 with only took; batchDelete answers 204 or 404", async () => {
  const r = await pi("/api/domains/deny/exact/new.example", admin, { method: "DELETE" });
  assert.equal(r.status, 204);
  assert.equal(r.text, "");
  const again = await pi("/api/domains/deny/exact/new.example", admin, { method: "DELETE" });
  assert.equal(again.status, 404);
  assert.deepEqual(Object.keys(again.json), ["took"]);
  const batch = await pi("/api/domains:batchDelete", admin, { json: [{ item: "ads.example", type: "deny", kind: "exact" }, { item: "nope.example", type: "deny", kind: "exact" }] });
  assert.equal(batch.status, 204);
  assert.equal(dns.filter.listDomains({ domain: "ads.example" }).length, 0);
  const none = await pi("/api/domains:batchDelete", admin, { json: [{ item: "ads.example", type: "deny", kind: "exact" }] });
  assert.equal(none.status, 404);
  assert.deepEqual(Object.keys(none.json), ["took"]);
  piError(await pi("/api/domains:batchDelete", admin, { json: { item: "x" } }), 400, "bad_request");
  piError(await pi("/api/domains:batchDelete", admin, { json: [{ item: "x", type: "deny" }] }), 400, "bad_request");
});

// --- Lists and gravity -------------------------------------------------------------------------

test("lists: POST needs ?type, answers 201 with processed; GET filters; PUT 200; DELETE 204 then 404; batchDelete", async () => {
  const url = "https://lists.example/hosts.txt";
  piError(await pi("/api/lists", admin, { json: { address: url } }), 400, "uri_error");
  piError(await pi("/api/lists?type=deny", admin, { json: { address: url } }), 400, "uri_error");
  const r = await pi("/api/lists?type=block", admin, { json: { address: url, comment: "hosts" } });
  assert.equal(r.status, 201, r.text);
  tookOk(r);
  assert.equal(r.headers.get("location"), `/api/lists/${encodeURIComponent(url)}?type=block`);
  assert.equal(r.json.lists[0].address, url);
  assert.deepEqual(r.json.processed, { success: [{ item: url }], errors: [] });
  const dup = await pi("/api/lists?type=block", admin, { json: { address: url } });
  piError(dup, 400, "bad_request");
  assert.equal(dup.json.processed.errors[0].item, url);
  await pi("/api/lists?type=allow", admin, { json: { address: "https://lists.example/allow.txt" } });
  const blocks = (await pi("/api/lists?type=block", admin)).json.lists as ListRow[];
  assert.deepEqual(blocks.map((l) => l.address), [url]);
  assert.equal(((await pi("/api/lists", admin)).json.lists as ListRow[]).length, 2);
  const one = await pi(`/api/lists/${encodeURIComponent(url)}`, admin);
  assert.deepEqual(Object.keys(one.json.lists[0]).sort(), ["abp_entries", "address", "comment", "date_added", "date_modified", "date_updated", "enabled", "groups", "id", "invalid_domains", "number", "status", "type"]);
  const put = await pi(`/api/lists/${encodeURIComponent(url)}?type=block`, admin, { method: "PUT", json: { enabled: false } });
  assert.equal(put.status, 200);
  assert.equal(put.json.lists[0].enabled, false);
  piError(await pi(`/api/lists/${encodeURIComponent(url)}`, admin, { method: "PUT", json: {} }), 400, "uri_error");
  piError(await pi("/api/lists?type=block", admin, { method: "PUT", json: {} }), 400, "uri_error");
  assert.equal((await pi(`/api/lists/${encodeURIComponent(url)}?type=block`, admin, { method: "DELETE" })).status, 204);
  const gone = await pi(`/api/lists/${encodeURIComponent(url)}?type=block`, admin, { method: "DELETE" });
  assert.equal(gone.status, 404);
  assert.deepEqual(Object.keys(gone.json), ["took"]);
  assert.equal((await pi("/api/lists:batchDelete", admin, { json: [{ item: "https://lists.example/allow.txt", type: "allow" }] })).status, 204);
  assert.equal((await pi("/api/lists:batchDelete", admin, { json: [{ item: "https://lists.example/allow.txt", type: "allow" }] })).status, 404);
  piError(await pi("/api/lists:batchDelete", admin, { json: [{ item: "x", type: "deny" }] }), 400, "bad_request");
});

/** A POST read as it arrives: the chunks, and whether it was chunked. */
async function streamed(path: string, sid: string): Promise<{ status: number; type: string | null; chunked: boolean; text: string }> {
  const r = await fetch(t.origin + path, { method: "POST", headers: { sid } });
  const text = await r.text();
  return { status: r.status, type: r.headers.get("content-type"), chunked: r.headers.get("transfer-encoding") === "chunked", text };
}

test("POST /api/action/gravity streams progress as chunked text/plain and ends with a line saying it succeeded", async () => {
  const add = await pi("/api/lists?type=block", admin, { json: { address: "https://lists.test/hosts.txt" } });
  assert.equal(add.status, 201, add.text);
  assert.equal(dns.filter.check("ads1.example", 1, 0), Decide.NONE, "adding a list does not download it");
  const r = await streamed("/api/action/gravity", admin);
  assert.equal(r.status, 200);
  assert.equal(r.type, "text/plain; charset=utf-8");
  assert.ok(r.chunked, "chunked transfer encoding");
  const lines = r.text.trimEnd().split("\n");
  assert.equal(lines[0], "[i] Gravity update started");
  assert.ok(lines.length > 3, r.text);
  assert.ok(lines.some((l) => l.includes("https://lists.test/hosts.txt")), r.text);
  assert.match(lines.at(-1)!, /^\[✓\] Gravity update succeeded: 3 domains blocked from 1 lists \(0 could not be downloaded\), built in \d+ ms$/);
  assert.equal(dns.filter.check("ads1.example", 1, 0), Decide.DENY_LIST);
  assert.equal(dns.filter.check("sub.abp.example", 1, 0), Decide.DENY_LIST);
  const listed = (await pi("/api/lists?type=block", admin)).json.lists as ListRow[];
  assert.equal(listed[0]!.number, 3);
  assert.ok(listed[0]!.date_updated > 0);
});

test("a failed gravity run still answers 200 (as Pi-hole) and its last line says FAILED", async () => {
  const filter = dns.filter as DnsFilter & { update: DnsFilter["update"] };
  filter.update = () => Promise.reject(new Error("disk full"));
  try {
    const r = await streamed("/api/action/gravity", admin);
    assert.equal(r.status, 200);
    assert.equal(r.text.trimEnd().split("\n").at(-1), "[✗] Gravity update FAILED: disk full");
  } finally {
    delete (filter as Partial<DnsFilter>).update;
  }
});

test("a gravity request during a running update follows it instead of starting a second download", async () => {
  const before = downloads;
  const [a, b] = await Promise.all([streamed("/api/action/gravity", admin), streamed("/api/action/gravity", admin)]);
  assert.equal(downloads, before + 1, "one download of the one list");
  for (const r of [a, b]) assert.match(r.text.trimEnd().split("\n").at(-1)!, /^\[✓\] Gravity update succeeded/);
});

// --- Stats, history, queries -------------------------------------------------------------------

test("GET /api/stats/summary is the query log's summary plus the gravity figures", async () => {
  const r = await pi("/api/stats/summary", admin);
  assert.equal(r.status, 200);
  tookOk(r);
  const c = dns.filter.counts();
  assert.deepEqual(r.json.gravity, { domains_being_blocked: c.gravity, last_update: c.lastUpdate });
  assert.ok(c.gravity > 0 && c.lastUpdate > 0, "after the gravity run");
  const q = r.json.queries;
  assert.deepEqual([q.total, q.blocked, q.forwarded, q.cached, q.unique_domains], [8, 3, 4, 1, 4]);
  assert.equal(q.percent_blocked, 37.5);
  assert.equal(q.types.A, 7);
  assert.equal(q.types.AAAA, 1);
  assert.equal(q.status.GRAVITY, 2);
  assert.equal(q.status.DENYLIST, 1);
  assert.deepEqual(r.json.clients, { active: 2, total: 2 });
  assert.deepEqual(Object.keys(r.json), ["queries", "clients", "gravity", "took"]);
});

test("top_domains and top_clients take blocked and count (default false and 10); a bad value is 400", async () => {
  let r = await pi("/api/stats/top_domains", admin);
  assert.equal(r.status, 200);
  tookOk(r);
  assert.deepEqual(r.json.domains, [
    { domain: "example.com", count: 4 },
    { domain: "example.org", count: 1 },
  ]);
  assert.equal(r.json.total_queries, 8);
  assert.equal(r.json.blocked_queries, 3);
  r = await pi("/api/stats/top_domains?blocked=true&count=1", admin);
  assert.deepEqual(r.json.domains, [{ domain: "ads.example", count: 2 }]);
  r = await pi("/api/stats/top_clients", admin);
  assert.deepEqual(r.json.clients, [
    { name: "laptop", ip: LAPTOP, count: 5 },
    { name: null, ip: PHONE, count: 3 },
  ]);
  r = await pi("/api/stats/top_clients?blocked=true&count=1", admin);
  assert.deepEqual(r.json.clients, [{ name: "laptop", ip: LAPTOP, count: 2 }]);
  piError(await pi("/api/stats/top_domains?blocked=maybe", admin), 400, "bad_request");
  piError(await pi("/api/stats/top_clients?count=-1", admin), 400, "bad_request");
});

test("query_types, upstreams, recent_blocked, history and history/clients answer in Pi-hole's shapes", async () => {
  const types = (await pi("/api/stats/query_types", admin)).json.types;
  assert.equal(types.A, 7);
  assert.equal(types.AAAA, 1);
  assert.ok("OTHER" in types && "HTTPS" in types);
  const up = await pi("/api/stats/upstreams", admin);
  tookOk(up);
  assert.deepEqual(up.json.upstreams.map((u: { ip: string; count: number }) => [u.ip, u.count]), [["blocklist", 3], ["cache", 1], ["9.9.9.9", 4]]);
  assert.equal(up.json.upstreams[2].port, 53);
  assert.equal(up.json.forwarded_queries, 4);
  assert.equal(up.json.total_queries, 8);
  assert.deepEqual((await pi("/api/stats/recent_blocked", admin)).json.blocked, ["tracker.example"]);
  assert.deepEqual((await pi("/api/stats/recent_blocked?count=2", admin)).json.blocked, ["tracker.example", "ads.example"]);
  const h = await pi("/api/history", admin);
  tookOk(h);
  const slots = h.json.history as { timestamp: number; total: number; cached: number; blocked: number; forwarded: number }[];
  assert.equal(slots.length, 145, "10-minute slots over 24 h");
  assert.deepEqual(Object.keys(slots[0]!), ["timestamp", "total", "cached", "blocked", "forwarded"]);
  assert.equal(slots.reduce((n, x) => n + x.total, 0), 8);
  assert.equal(slots.reduce((n, x) => n + x.blocked, 0), 3);
  const all = await pi("/api/history/clients", admin);
  assert.deepEqual(all.json.clients, { [LAPTOP]: { name: "laptop", total: 5 }, [PHONE]: { name: null, total: 3 } });
  assert.equal(all.json.history.length, 145);
  const one = await pi("/api/history/clients?N=1", admin);
  assert.ok("others" in one.json.clients, "the rest go under others");
  const data = one.json.history as { data: Record<string, number> }[];
  assert.equal(data.reduce((n, x) => n + (x.data.others ?? 0), 0), 8);
  piError(await pi("/api/history/clients?N=x", admin), 400, "bad_request");
});

test("GET /api/queries passes every filter from the query string and echoes draw; a bad cursor is 400 bad_request", async () => {
  const log = dns.log as QueryLog & { queries: QueryLog["queries"] };
  const real = log.queries.bind(log);
  let seen: QueryFilter | null = null;
  log.queries = (f) => {
    seen = f;
    return real(f);
  };
  try {
    const q = "from=1700000000.5&until=1700003600&domain=*.example&client_ip=192.168.1.20&client_name=laptop&upstream=blocklist&type=A&status=GRAVITY&reply=IP&cursor=3&start=20&length=10&disk=true&draw=7";
    const r = await pi(`/api/queries?${q}`, admin);
    assert.equal(r.status, 200, r.text);
    tookOk(r);
    assert.deepEqual(seen, {
      from: 1700000000.5,
      until: 1700003600,
      domain: "*.example",
      client_ip: LAPTOP,
      client_name: "laptop",
      upstream: "blocklist",
      type: "A",
      status: "GRAVITY",
      reply: "IP",
      cursor: 3,
      start: 20,
      length: 10,
      disk: true,
    });
    assert.equal(r.json.draw, 7);
  } finally {
    delete (log as Partial<QueryLog>).queries;
  }
  const all = await pi("/api/queries", admin);
  assert.equal(all.json.draw, 0);
  assert.equal(all.json.recordsTotal, 8);
  assert.equal(all.json.queries.length, 8);
  const row = all.json.queries[0];
  assert.deepEqual(Object.keys(row).sort(), ["client", "cname", "dnssec", "domain", "ede", "id", "list_id", "reply", "status", "time", "type", "upstream"]);
  const blocked = await pi(`/api/queries?domain=*.example&client_ip=${LAPTOP}`, admin);
  assert.equal(blocked.json.recordsFiltered, 2);
  assert.ok(blocked.json.queries.every((x: { domain: string; status: string; client: { ip: string; name: string } }) => x.domain === "ads.example" && x.status === "GRAVITY" && x.client.name === "laptop"));
  const newest = all.json.cursor as number;
  const e = piError(await pi(`/api/queries?cursor=${newest + 1}`, admin), 400, "bad_request");
  assert.equal(e.message, "Requested cursor is invalid");
  piError(await pi("/api/queries?from=yesterday", admin), 400, "bad_request");
  piError(await pi("/api/queries?length=1.5", admin), 400, "bad_request");
});

// --- Info and endpoints ------------------------------------------------------------------------

test("GET /api/info/login needs no session and says whether DNS runs", async () => {
  const r = await call(t, "/api/info/login");
  assert.equal(r.status, 200);
  tookOk(r);
  assert.deepEqual({ dns: r.json.dns, https_port: r.json.https_port }, { dns: true, https_port: 0 });
  dns.running = false;
  try {
    assert.equal((await call(t, "/api/info/login")).json.dns, false);
  } finally {
    dns.running = true;
  }
});

test("GET /api/info/version answers in Pi-hole's shape, labelled as sluice", async () => {
  piError(await call(t, "/api/info/version"), 401, "unauthorized");
  const r = await pi("/api/info/version", admin);
  assert.equal(r.status, 200);
  const v = r.json.version;
  for (const c of ["core", "web", "ftl"]) {
    assert.equal(v[c].local.branch, "sluice");
    assert.match(v[c].local.version, /^sluice-\d+\.\d+\.\d+/);
    assert.deepEqual(v[c].remote, { version: null, hash: null });
  }
  assert.ok("date" in v.ftl.local);
  assert.deepEqual(v.docker, { local: null, remote: null });
  assert.match(v.sluice.note, /not Pi-hole's/);
});

test("GET /api/endpoints lists every route by method as uri and parameters", async () => {
  piError(await call(t, "/api/endpoints"), 401, "unauthorized");
  const r = await pi("/api/endpoints", admin);
  assert.equal(r.status, 200);
  tookOk(r);
  const e = r.json.endpoints as Record<string, { uri: string; parameters: string }[]>;
  assert.deepEqual(Object.keys(e), ["get", "post", "put", "patch", "delete"]);
  const uris = (m: string) => e[m]!.map((x) => x.uri);
  for (const u of ["/api/auth", "/api/auth/sessions", "/api/dns/blocking", "/api/domains", "/api/lists", "/api/stats/summary", "/api/stats/top_domains", "/api/stats/top_clients", "/api/stats/query_types", "/api/stats/upstreams", "/api/stats/recent_blocked", "/api/history", "/api/history/clients", "/api/queries", "/api/info/login", "/api/info/version", "/api/endpoints", "/api/groups"]) {
    assert.ok(uris("get").includes(u), `GET ${u}`);
  }
  for (const u of ["/api/auth", "/api/dns/blocking", "/api/domains", "/api/domains:batchDelete", "/api/lists", "/api/lists:batchDelete", "/api/action/gravity", "/api/action/restartdns"]) assert.ok(uris("post").includes(u), `POST ${u}`);
  assert.deepEqual(uris("put"), ["/api/domains", "/api/lists"]);
  assert.deepEqual(uris("delete"), ["/api/auth", "/api/auth/session", "/api/domains", "/api/lists"]);
  assert.deepEqual(e.patch, []);
  assert.equal(e.get!.find((x) => x.uri === "/api/domains")!.parameters, "/{type}/{kind}/{domain}");
});

test("HEAD on a Pi-hole route returns GET's headers and no body", async () => {
  const r = await pi("/api/stats/summary", admin, { method: "HEAD" });
  assert.equal(r.status, 200);
  assert.equal(r.text, "");
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  assert.ok(Number(r.headers.get("content-length")) > 0);
});
