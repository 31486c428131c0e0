// Connections recorded on a live gateway (network namespaces): every connection through it
// shows up in netquery with its device, domain, verdict and rule; fast-tracked connections get
// their end and byte totals from the kernel; ended connections reach the LMDB history; charts
// and statistics count them.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { createTopology, type Topology } from "./helpers/netns.js";
import { apiIn, waitUntil } from "./helpers/live.js";
import { HistoryStore } from "../src/store/history.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SERVER = join(ROOT, "scripts", "lab", "server.mjs");
const CLIENT = join(ROOT, "scripts", "lab", "client.mjs");
const START_TIMEOUT_MS = 15000;
const READY_RE = /ready: API on http:\/\/127\.0\.0\.1:(\d+)/;
/** "within a second" of the issue: the ring is drained every 50 ms. */
const VISIBLE_MS = 1000;

const RULES = `- 10.80.2.2 TCP/8080
- *.learned.test TCP/443
+ *
`;

interface Row {
  [k: string]: unknown;
}

describe("recorded connections on a live gateway", () => {
  let t: Topology;
  let gw: ChildProcess;
  let srv: ChildProcess;
  let log = "";
  let port = 0;
  let token = "";
  let data = "";

  const probe = (...args: string[]) => JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, ...args], 20000).trim()) as Record<string, unknown>;
  const api = apiIn(() => t, () => port, () => token);
  const query = (q: unknown): Row[] => {
    const [status, body] = api("POST", "netquery/query", q);
    assert.equal(status, 200, body);
    return (JSON.parse(body) as { results: Row[] }).results;
  };
  const waitFor = <T>(what: () => T | null | undefined | false, ms: number, label: string): Promise<T> => waitUntil(what, ms, label, () => log);

  before(async () => {
    assert.equal(process.getuid?.(), 0, "the live tests run as root (network namespaces, NFQUEUE)");
    t = createTopology(`c${process.pid % 100000}`);
    srv = t.spawn(t.srv, process.execPath, [SERVER]);
    let srvOut = "";
    srv.stdout!.on("data", (d: Buffer) => (srvOut += d));
    await waitFor(() => srvOut.includes("ready"), START_TIMEOUT_MS, "the test server");
    data = mkdtempSync(join(tmpdir(), "sluice-conn-"));
    writeFileSync(join(data, "config.json"), JSON.stringify({ wanInterfaces: [t.gwWan], api: { host: "127.0.0.1", port: 0 }, queues: { count: 2 } }));
    writeFileSync(join(data, "sluice.rules"), RULES);
    gw = t.spawn(t.gw, process.execPath, [CLI, "run", "--data", data]);
    gw.stdout!.on("data", (d: Buffer) => (log += d));
    gw.stderr!.on("data", (d: Buffer) => (log += d));
    await waitFor(() => READY_RE.test(log), START_TIMEOUT_MS, "sluice to start");
    port = Number(READY_RE.exec(log)![1]);
    token = readFileSync(join(data, "admin.token"), "utf8").trim();
  });

  after(() => {
    if (gw && gw.exitCode === null) gw.kill("SIGKILL");
    if (srv && srv.exitCode === null) srv.kill("SIGKILL");
    try {
      t.exec(t.gw, process.execPath, [CLI, "recover"]);
    } catch {
      /* the namespace goes next anyway */
    }
    t?.destroy();
  });

  it("shows a connection in netquery within a second, with device, domain, verdict, profile and rule", async () => {
    const started = Date.now();
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200);
    const rows = await waitFor(() => {
      const r = query({ query: { remote_port: 80, domain: "ok.test." } });
      return r.length > 0 ? r : null;
    }, VISIBLE_MS, "the connection in netquery");
    assert.ok(Date.now() - started < VISIBLE_MS + 2000);
    const r = rows[0]!;
    assert.equal(r.local_ip, t.cli4);
    assert.equal(r.device_ip, t.cli4);
    assert.equal(r.remote_ip, t.srv4);
    assert.equal(r.direction, "outbound");
    assert.equal(r.verdict, 2);
    assert.equal(r.allowed, true);
    assert.equal(r.profile, "local/default");
    assert.equal(r.ip_protocol, 6);
    assert.equal(r.rule_line, 3);
    assert.match(String(r.started), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "times are RFC 3339");
    assert.equal(typeof r.device_mac, "string", "the gateway saw the device's MAC");
  });

  it("records a blocked connection with the rule that blocked it, over IPv4 and IPv6", async () => {
    assert.equal(probe("http", t.srv4, "8080", "ok.test").error, "ECONNREFUSED");
    const r = await waitFor(() => query({ query: { remote_port: 8080, verdict: 3 } })[0], VISIBLE_MS, "the blocked connection");
    assert.equal(r.rule_line, 1);
    assert.equal(r.matched_by, "ip");
    assert.equal(r.allowed, false);
    assert.equal(probe("http", t.srv6, "80", "ok.test").status, 200);
    const v6 = await waitFor(() => query({ query: { ip_version: 6, remote_port: 80 } })[0], VISIBLE_MS, "the IPv6 connection");
    assert.equal(v6.remote_ip, t.srv6);
  });

  it("names a plain connection after the DNS answer that crossed the gateway, and blocks it by that name", async () => {
    const answer = probe("dns", t.srv4, "53", "www.learned.test") as { answers?: string[] };
    assert.deepEqual(answer.answers, [t.srv4]);
    assert.equal(probe("tcp", t.srv4, "443").error, "ECONNREFUSED");
    const r = await waitFor(() => query({ query: { remote_port: 443, domain: "www.learned.test." } })[0], VISIBLE_MS, "the named connection");
    assert.equal(r.verdict, 3);
    assert.equal(r.matched_by, "ipdom");
    assert.equal(r.rule_line, 2);
    const dns = await waitFor(() => query({ query: { remote_port: 53, ip_protocol: 17 } })[0], VISIBLE_MS, "the DNS query itself");
    assert.equal(dns.domain, "www.learned.test.");
  });

  it("gives a fast-tracked connection its final byte counts and end time from the kernel", async () => {
    const held = probe("hold", t.srv4, "7000", "1500") as { echoes?: number };
    assert.ok((held.echoes ?? 0) >= 10);
    const r = await waitFor(() => query({ query: { remote_port: 7000 } })[0], VISIBLE_MS, "the held connection");
    const id = r.id as string;
    // The connection closed; make the kernel forget it now instead of after TIME_WAIT.
    t.exec(t.gw, "conntrack", ["-D", "-p", "tcp", "--dport", "7000"]);
    const ended = await waitFor(() => {
      const x = query({ query: { id } })[0];
      return x && x.ended !== null ? x : null;
    }, 10000, "the kernel's end");
    assert.equal(ended.active, false);
    assert.equal(ended.end_reason, "conntrack");
    // Each echo is a line each way (~6 bytes of payload + headers); far more than the first packets.
    assert.ok((ended.bytes_sent as number) > 400, `bytes sent ${String(ended.bytes_sent)}`);
    assert.ok((ended.bytes_received as number) > 400, `bytes received ${String(ended.bytes_received)}`);
    assert.ok((ended.packets_sent as number) >= 10);
    assert.ok(Date.parse(String(ended.ended)) >= Date.parse(String(ended.started)));
  });

  it("keeps ended connections in the history store and answers queries over it", async () => {
    const rows = await waitFor(() => {
      const r = query({ query: { remote_port: 7000 }, databases: ["history"] });
      return r.length > 0 && r[0]!.ended !== null ? r : null;
    }, 5000, "the history row");
    assert.equal(rows[0]!.end_reason, "conntrack");
    const grouped = query({ select: ["verdict", { $count: { field: "*", as: "n" } }], groupBy: ["verdict"], databases: ["main", "history"], orderBy: ["verdict"] });
    assert.ok(grouped.some((g) => g.verdict === 2 && (g.n as number) >= 3));
    assert.ok(grouped.some((g) => g.verdict === 3 && (g.n as number) >= 2));
  });

  it("charts active connections in ten-second buckets over ten minutes", () => {
    const [status, body] = api("POST", "netquery/charts/connection-active", {});
    assert.equal(status, 200, body);
    const c = JSON.parse(body) as { results: { timestamp: number; value: number; countBlocked: number }[] };
    assert.ok(c.results.length >= 59 && c.results.length <= 61);
    assert.ok(c.results.some((b) => b.value > 0));
    assert.ok(c.results.some((b) => b.countBlocked > 0));
  });

  it("counts connections, blocks and bytes in the gateway statistics", () => {
    const [status, body] = api("GET", "stats/latest");
    assert.equal(status, 200, body);
    const s = JSON.parse(body) as Record<string, number>;
    assert.ok(s.connectionsStarted! >= 5);
    assert.ok(s.blocked! >= 2);
    assert.ok(s.bytesSent! > 0);
    const [hs, hbody] = api("GET", "stats/history?hours=1");
    assert.equal(hs, 200, hbody);
    assert.ok((JSON.parse(hbody) as { points: unknown[] }).points.length >= 1, "a snapshot was taken at start");
  });

  it("restarts in place on core/restart, keeping its history and deciding again", async () => {
    const before = query({ select: [{ $count: { field: "*", as: "n" } }], databases: ["history"] })[0]!.n as number;
    assert.equal(api("POST", "core/restart")[0], 200);
    await waitFor(() => (log.match(/ready: API on/g) ?? []).length >= 2, START_TIMEOUT_MS, "the restart");
    // Port 0: the new API listens on a new port, named in the new ready line.
    port = Number([...log.matchAll(/ready: API on http:\/\/127\.0\.0\.1:(\d+)/g)].pop()![1]);
    const after = query({ select: [{ $count: { field: "*", as: "n" } }], databases: ["history"] })[0]!.n as number;
    assert.ok(after >= before, `history kept across the restart (${before} -> ${after})`);
    assert.equal(api("GET", "compat/self-check")[1].trim(), "self-check successful");
    assert.equal(probe("http", t.srv4, "8080", "ok.test").error, "ECONNREFUSED", "the rules are in force again");
    // The live view starts empty after a restart: the 8080 connection in it is the new one.
    await waitFor(() => query({ query: { remote_port: 8080, verdict: 3 } }).length === 1, VISIBLE_MS, "the new connection recorded");
  });

  it("ends what it was following when it stops, so nothing stays active forever", async () => {
    assert.ok(query({ query: { active: true } }).length >= 1);
    gw.kill("SIGTERM");
    await waitFor(() => gw.exitCode !== null, 10000, "sluice to stop");
    assert.equal(gw.exitCode, 0);
    // Everything it recorded is on disk, and none of it is left "active".
    const h = HistoryStore.open({ path: join(data, "history"), retentionIntervalMs: 0 });
    try {
      const rows = h.scanRange({ from: 0, to: Date.now() + 1000 });
      assert.ok(rows.length >= 6, `${rows.length} rows in the history`);
      assert.deepEqual(rows.filter((r) => r.active || r.ended === null).map((r) => r.id), []);
      assert.ok(rows.some((r) => r.end_reason === "shutdown" || r.end_reason === "conntrack"));
      assert.deepEqual(h.verify().problems, [], "indexes agree with the table");
    } finally {
      await h.close();
    }
  });
});
