// The endpoints themselves: options, profiles and rules, debug and network information,
// profiles of the process, broadcasts, updates, the dashboard cache, the self-check without a
// packet path, module events and restart.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertError, call, startTestApi, type TestApi } from "./helpers/api.js";
import { DnsFilter } from "../src/dns/filter.js";
import type { QueryLogApi } from "../src/dns/types.js";

let t: TestApi;
let admin: string;

before(async () => {
  t = await startTestApi();
  admin = t.adminToken;
});
after(() => t?.close());

const readConfig = () => JSON.parse(readFileSync(join(t.dir, "config.json"), "utf8")) as { api: Record<string, unknown> } & Record<string, unknown>;

// --- options ---------------------------------------------------------------------------------

test("config/options lists every option sorted by Key, with metadata and without values, to anyone", async () => {
  const r = await call(t, "config/options");
  assert.equal(r.status, 200);
  const list = r.json as Record<string, unknown>[];
  assert.ok(list.length >= 10);
  const keys = list.map((o) => o.Key as string);
  assert.deepEqual(keys, [...keys].sort());
  for (const o of list) {
    assert.ok(!("Value" in o), `${o.Key} carries no Value`);
    for (const f of ["Name", "Key", "Description", "Help", "Sensitive", "OptType", "ExpertiseLevel", "ReleaseLevel", "RequiresRestart", "DefaultValue", "ValidationRegex", "Annotations"]) {
      assert.ok(f in o, `${o.Key}.${f}`);
    }
    assert.ok([1, 2, 3, 4].includes(o.OptType as number));
  }
  const devMode = list.find((o) => o.Key === "core/devMode")!;
  assert.equal(devMode.OptType, 4);
  assert.equal(devMode.DefaultValue, false);
  assert.equal(list.find((o) => o.Key === "core/apiKeys")!.Sensitive, true);
  assert.deepEqual((list.find((o) => o.Key === "filter/mode")!.PossibleValues as { Value: string }[]).map((p) => p.Value), ["gateway", "host", "both"]);
});

test("config/option/{key} reads an option with its value; PUT sets it, persists it to config.json and returns the record", async () => {
  assertError(await call(t, "config/option/api/sessionTTL"), 401, "unauthorized");
  let r = await call(t, "config/option/api/sessionTTL", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.json.Key, "api/sessionTTL");
  assert.equal(r.json.DefaultValue, 900);
  assert.ok(!("Value" in r.json), "not set yet");
  r = await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: 600 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.Value, 600);
  assert.equal(readConfig().api.sessionTtlS, 600);
  assert.equal(readConfig().api.port, 0, "the rest of the file is kept");
  assert.equal(t.control.config.api.sessionTtlS, 600, "in force without a restart");
  r = await call(t, "config/option/api/sessionTTL", { token: admin });
  assert.equal(r.json.Value, 600);
  // null resets to the default and removes it from the file.
  r = await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: null } });
  assert.equal(r.status, 200);
  assert.ok(!("Value" in r.json));
  assert.ok(!("sessionTtlS" in readConfig().api));
  assert.equal(t.control.config.api.sessionTtlS, 900);
});

test("an option that needs a restart is written but marked restart-pending", async () => {
  const r = await call(t, "config/option/filter/mode", { method: "PUT", token: admin, json: { Value: "both" } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.Value, "both");
  assert.equal(r.json.RequiresRestart, true);
  assert.equal(r.json.Annotations["safing/portbase:options:restart-pending"], true);
  assert.equal(readConfig().mode, "both");
  assert.equal(t.control.config.mode, "gateway", "the running config keeps the old value");
  assert.equal((await call(t, "config/option/filter/mode", { method: "PUT", token: admin, json: { Value: null } })).status, 200);
});

test("option values of the wrong type or out of range get 400 and change nothing", async () => {
  const before = readFileSync(join(t.dir, "config.json"), "utf8");
  let e = assertError(await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: "ten" } }), 400, "body_error");
  assert.match(e.message, /integer/);
  e = assertError(await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: 1.5 } }), 400, "body_error");
  e = assertError(await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: 5 } }), 400, "body_error");
  assert.match(e.message, /sessionTtlS/);
  e = assertError(await call(t, "config/option/core/devMode", { method: "PUT", token: admin, json: { Value: "yes" } }), 400, "body_error");
  assert.match(e.message, /true or false/);
  assertError(await call(t, "config/option/filter/mode", { method: "PUT", token: admin, json: { Value: "router" } }), 400, "body_error");
  assertError(await call(t, "config/option/core/apiKeys", { method: "PUT", token: admin, json: { Value: ["short"] } }), 400, "body_error");
  assertError(await call(t, "config/option/filter/exemptPorts", { method: "PUT", token: admin, json: { Value: [22] } }), 400, "body_error");
  e = assertError(await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, json: { Value: 60, Key: "x" } }), 400, "body_error");
  assert.equal(e.data.problems[0].field, "Key");
  assertError(await call(t, "config/option/api/sessionTTL", { method: "PUT", token: admin, body: "600", headers: { "Content-Type": "text/plain" } }), 415);
  assert.equal(readFileSync(join(t.dir, "config.json"), "utf8"), before);
  assertError(await call(t, "config/option/api/nothing", { token: admin }), 404, "not_found");
  assertError(await call(t, "config/option/api/nothing", { method: "PUT", token: admin, json: { Value: 1 } }), 404, "not_found");
});

test("API keys set through core/apiKeys work at once, and stop working when removed", async () => {
  const key = "freshkey000000000000";
  assertError(await call(t, "profiles", { token: key }), 401);
  const r = await call(t, "config/option/core/apiKeys", { method: "PUT", token: admin, json: { Value: [`${key}?read=user&write=user`] } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await call(t, "profiles", { token: key })).status, 200);
  assert.equal((await call(t, "config/option/core/apiKeys", { method: "PUT", token: admin, json: { Value: null } })).status, 200);
  assertError(await call(t, "profiles", { token: key }), 401, "unauthorized");
});

// --- profiles and rules ----------------------------------------------------------------------

test("GET profiles lists the default profile for users", async () => {
  const r = await call(t, "profiles", { token: admin });
  assert.equal(r.status, 200);
  const d = (r.json as { ID: string }[]).find((p) => p.ID === "default") as Record<string, unknown>;
  assert.ok(d);
  assert.equal(d.Source, "local");
  assert.ok(["allow", "block", "drop", "ask"].includes(d.Default as string));
  assert.deepEqual(d.Sources, []);
  assert.ok(Array.isArray(d.Rules));
  assert.ok("Fallback" in d);
});

test("profiles CRUD: POST creates (201, Location), GET reads, PUT replaces (200) or creates (201), DELETE removes (204, then 404)", async () => {
  let r = await call(t, "profiles", { token: admin, json: { ID: "kids", Default: "block", Sources: ["192.168.1.64/26"], Rules: ["+ example.com", "- *.ads.example.com TCP/443"] } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get("location"), "/api/v1/profiles/kids");
  assert.equal(r.json.ID, "kids");
  assert.equal(r.json.Default, "block");
  assert.deepEqual(r.json.Sources, ["192.168.1.64/26"]);
  assert.deepEqual(r.json.Rules, ["+ example.com", "- *.ads.example.com TCP/443"]);
  assert.ok(!("Fallback" in r.json));
  const rules = readFileSync(t.control.rulesPath, "utf8");
  assert.match(rules, /\[profile kids\]/);
  assert.match(rules, /source 192\.168\.1\.64\/26/);
  assertError(await call(t, "profiles", { token: admin, json: { ID: "kids" } }), 409, "conflict");

  r = await call(t, "profiles/kids", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.json.Default, "block");

  r = await call(t, "profiles/kids", { method: "PUT", token: admin, json: { Default: "allow", Sources: ["192.168.1.64/26"], Rules: ["- tiktok.com"] } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get("location"), null);
  assert.equal(r.json.Default, "allow");
  assert.deepEqual(r.json.Rules, ["- tiktok.com"]);
  assert.deepEqual((await call(t, "profiles/kids", { token: admin })).json.Rules, ["- tiktok.com"]);

  r = await call(t, "profiles/guests", { method: "PUT", token: admin, json: { Sources: ["10.9.0.0/16"] } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get("location"), "/api/v1/profiles/guests");
  assert.deepEqual(((await call(t, "profiles", { token: admin })).json as { ID: string }[]).map((p) => p.ID).sort(), ["default", "guests", "kids"]);

  for (const id of ["kids", "guests"]) {
    const del = await call(t, `profiles/${id}`, { method: "DELETE", token: admin });
    assert.equal(del.status, 204);
    assert.equal(del.text, "");
    assertError(await call(t, `profiles/${id}`, { token: admin }), 404, "not_found");
    assertError(await call(t, `profiles/${id}`, { method: "DELETE", token: admin }), 404, "not_found");
  }
  assert.doesNotMatch(readFileSync(t.control.rulesPath, "utf8"), /\[profile kids\]/);
});

test("a profile with an invalid rule gets 400 with the problems and their line and column, and nothing is saved", async () => {
  const before = readFileSync(t.control.rulesPath, "utf8");
  const r = await call(t, "profiles/broken", { method: "PUT", token: admin, json: { Rules: ["+ example.com", "? what"] } });
  const e = assertError(r, 400, "body_error");
  assert.ok(Array.isArray(e.data.problems) && e.data.problems.length >= 1);
  assert.equal(e.data.problems[0].line, 2);
  assert.equal(typeof e.data.problems[0].column, "number");
  assert.ok(e.data.problems[0].column >= 1);
  assert.match(e.message, /line 2/);
  assertError(await call(t, "profiles/broken", { token: admin }), 404);
  assert.equal(readFileSync(t.control.rulesPath, "utf8"), before);
  assertError(await call(t, "profiles", { token: admin, json: { ID: "bad", Sources: ["not-an-address"] } }), 400, "body_error");
});

test("profile bodies are checked: unknown fields, a mismatched ID, a bad Default, Sources on default", async () => {
  let e = assertError(await call(t, "profiles/x", { method: "PUT", token: admin, json: { Rulez: [] } }), 400, "body_error");
  assert.equal(e.data.problems[0].field, "Rulez");
  e = assertError(await call(t, "profiles/x", { method: "PUT", token: admin, json: { ID: "y" } }), 400, "body_error");
  assert.match(e.message, /does not match/);
  assertError(await call(t, "profiles/x", { method: "PUT", token: admin, json: { Default: "maybe" } }), 400, "body_error");
  assertError(await call(t, "profiles/default", { method: "PUT", token: admin, json: { Sources: ["10.0.0.1"] } }), 400, "body_error");
  assertError(await call(t, "profiles", { token: admin, json: { ID: "has space" } }), 400, "body_error");
  assertError(await call(t, "profiles", { token: admin, json: { Default: "allow" } }), 400, "body_error");
});

test("deleting the default profile gets 409", async () => {
  const e = assertError(await call(t, "profiles/default", { method: "DELETE", token: admin }), 409, "conflict");
  assert.match(e.message, /default/);
  assert.equal((await call(t, "profiles/default", { token: admin })).status, 200);
});

test("replacing the default profile's rules and fallback works and is kept in the rules file", async () => {
  const before = (await call(t, "profiles/default", { token: admin })).json;
  const r = await call(t, "profiles/default", { method: "PUT", token: admin, json: { Default: "allow", Rules: ["- doubleclick.net", "+ *"], Fallback: "drop" } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.Fallback, "drop");
  assert.match(readFileSync(t.control.rulesPath, "utf8"), /fallback drop/);
  const restore = await call(t, "profiles/default", { method: "PUT", token: admin, json: { Default: before.Default, Rules: before.Rules, Fallback: before.Fallback } });
  assert.equal(restore.status, 200, restore.text);
});

test("profile writes need Admin; reads need User", async () => {
  const user = await call(t, "auth/tokens", { token: admin, json: { name: "profile-user" } });
  assert.equal(user.status, 201);
  assert.equal((await call(t, "profiles", { token: user.json.token })).status, 200);
  assertError(await call(t, "profiles", { token: user.json.token, json: { ID: "nope" } }), 403, "forbidden");
  assertError(await call(t, "profiles/default", { method: "DELETE", token: user.json.token }), 403, "forbidden");
  assert.equal((await call(t, `auth/tokens/${user.json.id}`, { method: "DELETE", token: admin })).status, 204);
});

test("rules/validate reports each problem with line and column without saving anything", async () => {
  let r = await call(t, "rules/validate", { token: admin, json: { Rules: ["+ example.com", "- 10.0.0.0/8", "- *.tracker.example UDP/53"] } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { valid: true, problems: [] });
  r = await call(t, "rules/validate", { token: admin, json: { Rules: ["+ example.com", "! bad", "+ example.org TCP/99999"] } });
  assert.equal(r.status, 200);
  assert.equal(r.json.valid, false);
  const lines = (r.json.problems as { line: number; column: number; message: string }[]).map((p) => p.line);
  assert.ok(lines.includes(2), JSON.stringify(r.json));
  for (const p of r.json.problems) {
    assert.equal(typeof p.column, "number");
    assert.equal(typeof p.message, "string");
  }
  assertError(await call(t, "rules/validate", { json: { Rules: [] } }), 401);
});

test("app/profile returns the default profile for 127.0.0.1, and a profile bound to 127.0.0.1 once there is one", async () => {
  let r = await call(t, "app/profile", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.json.profile, "default");
  assert.equal(r.json.source, "local");
  assert.equal(r.json.name, "default");
  assert.equal(r.json.address, "127.0.0.1");
  const put = await call(t, "profiles/this-host", { method: "PUT", token: admin, json: { Sources: ["127.0.0.1"], Rules: ["+ *"] } });
  assert.equal(put.status, 201, put.text);
  try {
    r = await call(t, "app/profile", { token: admin });
    assert.equal(r.json.profile, "this-host");
    assert.equal(r.json.name, "this-host");
  } finally {
    assert.equal((await call(t, "profiles/this-host", { method: "DELETE", token: admin })).status, 204);
  }
  assert.equal((await call(t, "app/profile", { token: admin })).json.profile, "default");
  assertError(await call(t, "app/profile"), 401);
});

// --- debug -----------------------------------------------------------------------------------

test("debug/info is a Markdown report; style=github wraps sections in <details>; another style gets 400", async () => {
  let r = await call(t, "debug/info", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.match(r.text, /^\*\*Version\*\*:\n\n```\nsluice \d+\.\d+\.\d+\n```/);
  assert.match(r.text, /\*\*Stack\*\*:/);
  assert.doesNotMatch(r.text, /<details>/);
  r = await call(t, "debug/info?style=github", { token: admin });
  assert.equal(r.status, 200);
  assert.match(r.text, /^<details>\n<summary>Version<\/summary>\n\n```\nsluice /);
  assert.match(r.text, /<\/details>\n?$/);
  const e = assertError(await call(t, "debug/info?style=html", { token: admin }), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "style" });
});

test("debug/core adds status, firewall, configuration and profiles, and says the packet path is not running", async () => {
  const r = await call(t, "debug/core?style=github", { token: admin });
  assert.equal(r.status, 200);
  for (const s of ["Version", "Status", "Firewall", "Profiles"]) assert.match(r.text, new RegExp(`<summary>${s}`));
  assert.match(r.text, /packet path not running/);
  assert.match(r.text, /default: default /);
  assert.ok(!r.text.includes(admin), "no secrets");
});

test("debug/network is a report with conntrack and routes; a bad where condition gets 400", async () => {
  const r = await call(t, "debug/network", { token: admin });
  assert.equal(r.status, 200);
  assert.match(r.text, /\*\*Conntrack\*\*:/);
  assert.match(r.text, /\*\*Routes\*\*:/);
  const f = await call(t, `debug/network?where=${encodeURIComponent("proto sameas tcp and orig.dport == 443")}`, { token: admin });
  assert.equal(f.status, 200);
  const e = assertError(await call(t, `debug/network?where=${encodeURIComponent("proto ==== ")}`, { token: admin }), 400, "bad_request");
  assert.deepEqual(e.data, { parameter: "where" });
});

test("debug/network/state returns JSON with conntrack, routes and interfaces", async (ctx) => {
  const r = await call(t, "debug/network/state", { token: admin });
  if (r.status === 500 && process.getuid?.() !== 0) {
    ctx.skip(`conntrack needs CAP_NET_ADMIN: ${r.json?.error?.message}`);
    return;
  }
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.conntrack && typeof r.json.conntrack === "object");
  assert.ok(Array.isArray(r.json.conntrack.entries));
  assert.equal(typeof r.json.conntrack.truncated, "boolean");
  assert.ok(Array.isArray(r.json.routes));
  assert.ok(Array.isArray(r.json.interfaces));
  assert.ok((r.json.interfaces as { name: string }[]).some((i) => i.name === "lo"), "the loopback interface is listed");
});

test("debug/stack returns the stack report and debug/stack/print writes it to stdout", async () => {
  const r = await call(t, "debug/stack", { token: admin });
  assert.equal(r.status, 200);
  assert.match(r.text, /Main thread/);
  const written: string[] = [];
  const orig = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  let p;
  try {
    p = await call(t, "debug/stack/print", { token: admin });
  } finally {
    process.stdout.write = orig;
  }
  assert.equal(p.status, 200);
  assert.equal(p.text, "stack printed to stdout\n");
  assert.match(written.join(""), /Main thread/);
});

test("debug/platform returns JSON about Node and the machine", async () => {
  const r = await call(t, "debug/platform", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.json.node, process.version);
  assert.equal(r.json.platform, process.platform);
});

test("debug/cpu?duration=200ms returns a .cpuprofile as a JSON download", async () => {
  const started = Date.now();
  const r = await call(t, "debug/cpu?duration=200ms", { token: admin });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  assert.ok(Date.now() - started >= 190);
  assert.match(r.headers.get("content-type")!, /^application\/json/);
  assert.match(r.headers.get("content-disposition") ?? "", /^attachment; filename="sluice-[^"]+\.cpuprofile"$/);
  assert.ok(Array.isArray(r.json.nodes) && r.json.nodes.length > 0);
  assert.equal(typeof r.json.startTime, "number");
  assert.ok(r.json.endTime > r.json.startTime);
});

test("debug/allocs?duration=200ms returns a .heapprofile", async () => {
  const r = await call(t, "debug/allocs?duration=200ms", { token: admin });
  assert.equal(r.status, 200, r.text.slice(0, 200));
  assert.match(r.headers.get("content-disposition") ?? "", /\.heapprofile"$/);
  assert.ok(r.json.head && typeof r.json.head === "object");
});

test("debug/heap streams a whole .heapsnapshot", async () => {
  const r = await call(t, "debug/heap", { token: admin });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-disposition") ?? "", /\.heapsnapshot"$/);
  assert.ok(r.text.length > 256 * 1024, "large enough to be streamed");
  assert.equal(Number(r.headers.get("content-length")), Buffer.byteLength(r.text));
  assert.ok(r.json.snapshot?.meta, "parses as a heap snapshot");
});

test("profile durations are checked, and a second profile while one runs gets 409", async () => {
  for (const d of ["0ms", "2m", "soon", "-1s"]) {
    const e = assertError(await call(t, `debug/cpu?duration=${d}`, { token: admin }), 400, "bad_request");
    assert.deepEqual(e.data, { parameter: "duration" });
  }
  const first = call(t, "debug/cpu?duration=300ms", { token: admin });
  await new Promise((r) => setTimeout(r, 50));
  assertError(await call(t, "debug/allocs?duration=100ms", { token: admin }), 409, "conflict");
  assert.equal((await first).status, 200);
  assertError(await call(t, "debug/cpu?duration=100ms", { token: (await userToken()).token }), 403);
});

async function userToken(): Promise<{ token: string; id: string }> {
  const r = await call(t, "auth/tokens", { token: admin, json: { name: `user-${Date.now()}` } });
  assert.equal(r.status, 201);
  return r.json;
}

// --- network ---------------------------------------------------------------------------------

test("network/gateways returns the default routes' next hops as a list of addresses", async () => {
  const r = await call(t, "network/gateways", { token: admin });
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json));
  for (const g of r.json) assert.equal(typeof g, "string");
});

test("network/nameservers returns the system's nameservers", async () => {
  const r = await call(t, "network/nameservers", { token: admin });
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json));
  for (const n of r.json) assert.equal(typeof n.IP, "string");
});

test("network/location says the location is unknown and lists only public addresses", async () => {
  const r = await call(t, "network/location", { token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.json.Location, "unknown");
  assert.equal(typeof r.json.Reason, "string");
  assert.ok(Array.isArray(r.json.All));
  for (const a of r.json.All) assert.doesNotMatch(a.IP, /^(127\.|10\.|192\.168\.|fe80)/);
});

// --- broadcasts, updates, ui -----------------------------------------------------------------

test("broadcasts/matching-data returns what broadcasts are matched against, to admins", async () => {
  const r = await call(t, "broadcasts/matching-data", { token: admin });
  assert.equal(r.status, 200);
  for (const k of ["Version", "NumericVersion", "Install", "Config", "UptimeHours", "Current"]) assert.ok(k in r.json, k);
  assert.equal(r.json.Current.Profiles, 1);
  assert.equal(r.json.Current.PacketPath, "not running");
  assert.ok(!("core/apiKeys" in r.json.Config), "sensitive options are left out");
  const user = await userToken();
  assertError(await call(t, "broadcasts/matching-data", { token: user.token }), 403);
});

test("broadcasts/simulate shows what matches; with state=true what was shown is skipped; reset-state forgets it", async () => {
  const file = {
    Notifications: {
      "welcome-1": { Title: "Welcome", Message: "Hello", Match: "Current.Profiles > 0" },
      "big-install": { Title: "Big", Message: "Many profiles", Match: "Current.Profiles > 1000", Importance: true },
    },
  };
  let r = await call(t, "broadcasts/simulate", { token: admin, json: file });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(r.text, "welcome-1: displayed\nbig-install: no match\n");
  const n = t.control.notifications.get("broadcasts:welcome-1");
  assert.ok(n, "the notification was posted");
  assert.equal(n.Title, "Welcome");
  assert.equal(t.control.notifications.get("broadcasts:big-install"), null);
  r = await call(t, "broadcasts/simulate?state=true", { token: admin, json: file });
  assert.equal(r.text, "welcome-1: already displayed\nbig-install: no match\n");
  r = await call(t, "broadcasts/reset-state", { method: "POST", token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.text, "Reset complete.\n");
  r = await call(t, "broadcasts/simulate?state=true", { token: admin, json: file });
  assert.equal(r.text, "welcome-1: displayed\nbig-install: no match\n");
  // Expired and broken ones say so.
  r = await call(t, "broadcasts/simulate", { token: admin, json: { Notifications: { old: { Title: "Old", Message: "", Expires: 1 }, broken: { Title: "B", Message: "", Match: "((" } } } });
  assert.match(r.text, /^old: expired\nFAILED broken: /);
});

test("broadcasts/simulate refuses a malformed file with 400 naming the field", async () => {
  const e = assertError(await call(t, "broadcasts/simulate", { token: admin, json: { Notifications: { x: { Title: "T", Message: "M", Colour: "red" } } } }), 400, "body_error");
  assert.match(e.message, /Colour/);
  assertError(await call(t, "broadcasts/simulate", { token: admin, json: { Notifications: { x: { Message: "M" } } } }), 400, "body_error");
  assertError(await call(t, "broadcasts/reset-state", { method: "POST" }), 401);
});

test("updates/check re-reads the rules file and reports each step", async () => {
  const r = await call(t, "updates/check", { method: "POST", token: admin });
  assert.equal(r.status, 200, r.text);
  const lines = r.text.trim().split("\n");
  assert.equal(lines[0], "update check done");
  assert.match(r.text, /^rules: \d+ rules, unchanged$/m);
  assert.match(r.text, /^broadcasts: no broadcasts\.json in the data directory$/m);
  assert.match(r.text, /^filter lists: the DNS resolver is not running$/m);
});

test("updates/check downloads the DNS filter lists and reports each one", async () => {
  const listFile = join(t.dir, "block.txt");
  writeFileSync(listFile, "0.0.0.0 ads.one.test\n0.0.0.0 ads.two.test\n");
  const filter = DnsFilter.open(join(t.dir, "dns-updates"));
  filter.addLists("block", [`file://${listFile}`], {});
  const unused = () => {
    throw new Error("not used by updates/check");
  };
  t.control.dns = { filter, log: {} as QueryLogApi, running: true, blocking: unused, setBlocking: unused, flushCache: unused };
  try {
    const r = await call(t, "updates/check", { method: "POST", token: admin });
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^filter lists: 1 list\(s\), 2 names blocked \(built in \d+ ms\)$/m);
    assert.match(r.text, new RegExp(`^list file://${listFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: downloaded, 2 names$`, "m"));
    assert.equal(filter.check("ads.two.test", 1, 0) >= 16, true, "the list blocks after the update");
  } finally {
    t.control.dns = null;
  }
});

test("ui/reload empties the dashboard cache", async () => {
  const r = await call(t, "ui/reload", { method: "POST", token: admin });
  assert.equal(r.status, 200);
  assert.match(r.text, /^all ui assets reloaded \(\d+ cached files dropped\)\n$/);
  assertError(await call(t, "ui/reload", { method: "POST" }), 401);
});

test("compat/self-check answers 503 when the packet path is not running", async () => {
  const e = assertError(await call(t, "compat/self-check", { token: admin }), 503, "not_ready");
  assert.match(e.message, /not running/);
});

test("modules/.../trigger needs Self: the admin token gets 403", async () => {
  assertError(await call(t, "modules/filter/trigger/reload", { method: "POST", token: admin }), 403, "forbidden");
  assertError(await call(t, "modules/core/trigger/restart", { method: "POST", token: admin }), 403, "forbidden");
});

test("a handler that fails unexpectedly gets 500 with the error envelope, and the failure is logged", async () => {
  // A handler whose file access fails the way a real one would (app/profile no longer reads files).
  t.api.deps.registry.register({
    name: "Test: failing handler",
    description: "Reads a file that is not there.",
    path: "test/unexpected-failure",
    read: 2,
    handler: () => readFileSync(`${t.control.rulesPath}.missing`, "utf8"),
  });
  const moved = `${t.control.rulesPath}.away`;
  renameSync(t.control.rulesPath, moved);
  try {
    const e = assertError(await call(t, "test/unexpected-failure", { token: admin }), 500, "internal_error");
    assert.match(e.message, /ENOENT/);
    assert.ok(t.warnings.some((w) => w.startsWith("API handler failed")), "logged");
    // updates/check reports the same problem as a step that failed, not as a failure of its own.
    const u = await call(t, "updates/check", { method: "POST", token: admin });
    assert.equal(u.status, 200);
    assert.match(u.text, /^rules: the file does not load, the previous rules stay: /m);
  } finally {
    renameSync(moved, t.control.rulesPath);
  }
  assert.equal((await call(t, "app/profile", { token: admin })).status, 200);
});

test("core/restart as admin answers restart initiated and asks the process to restart", async () => {
  const r = await call(t, "core/restart", { method: "POST", token: admin });
  assert.equal(r.status, 200);
  assert.equal(r.text, "restart initiated\n");
  const why = await Promise.race([t.control.stopped, new Promise((res) => setTimeout(() => res("timeout"), 2000))]);
  assert.equal(why, "restart");
});
