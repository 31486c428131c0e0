// The live gateway on real traffic: client -- gw -- server in network namespaces, sluice running
// on gw as `sluice run` would on a router. Needs root (CI runs as root).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync, type ChildProcess } from "node:child_process";
import { createTopology, type Topology } from "./helpers/netns.js";
import { apiIn, waitUntil } from "./helpers/live.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SERVER = join(ROOT, "scripts", "lab", "server.mjs");
const CLIENT = join(ROOT, "scripts", "lab", "client.mjs");
const START_TIMEOUT_MS = 15000;
/** The line sluice prints once the packet path and the API are up. */
const READY_RE = /ready: API on http:\/\/127\.0\.0\.1:(\d+)/;

const RULES = `# line numbers matter to the tests
- 10.80.2.2 TCP/8080
- fd80:2::2 TCP/8080
- blocked.test
- .tracker.test
- *.learned.test TCP/443
+ *
`;

interface Probe {
  ok: boolean;
  error?: string;
  status?: number;
  echoes?: number;
  connected?: number;
}

/** Whatever happened in the tests: kill sluice, remove any chain it left, delete the namespaces. */
function teardown(t: Topology | undefined, gw: ChildProcess | undefined): void {
  if (gw && gw.exitCode === null) gw.kill("SIGKILL");
  if (!t) return;
  try {
    t.exec(t.gw, process.execPath, [CLI, "recover"]);
  } catch {
    /* the namespace is deleted next anyway */
  }
  t.destroy();
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

describe("live gateway", () => {
  let t: Topology;
  let gw: ChildProcess;
  let log = "";
  let healthPort = 0;
  let data = "";
  let token = "";

  const probe = (...args: string[]): Probe => JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, ...args], 20000).trim()) as Probe;
  const health = (): { received: number; restarts: number; status: string; reloads: number } =>
    JSON.parse(t.exec(t.gw, "curl", ["-s", "--max-time", "5", `http://127.0.0.1:${healthPort}/health`])) as never;
  const api = apiIn(() => t, () => healthPort, () => token);
  const waitFor = (what: () => boolean, ms: number, label: string) => waitUntil(what, ms, label, () => log);

  before(async () => {
    assert.equal(process.getuid?.(), 0, "the live gateway tests run as root (network namespaces, NFQUEUE)");
    t = createTopology(`t${process.pid % 100000}`);
    const srv = t.spawn(t.srv, process.execPath, [SERVER]);
    let srvOut = "";
    srv.stdout!.on("data", (d: Buffer) => (srvOut += d));
    await waitFor(() => srvOut.includes("ready"), START_TIMEOUT_MS, "the test server");
    data = mkdtempSync(join(tmpdir(), "sluice-live-"));
    writeFileSync(join(data, "config.json"), JSON.stringify({ wanInterfaces: [t.gwWan], api: { host: "127.0.0.1", port: 0 }, queues: { count: 2 }, watchdogMs: 1000 }));
    writeFileSync(join(data, "sluice.rules"), RULES);
    gw = t.spawn(t.gw, process.execPath, [CLI, "run", "--data", data]);
    gw.stdout!.on("data", (d: Buffer) => (log += d));
    gw.stderr!.on("data", (d: Buffer) => (log += d));
    await waitFor(() => READY_RE.test(log), START_TIMEOUT_MS, "sluice to start");
    healthPort = Number(READY_RE.exec(log)![1]);
    token = readFileSync(join(data, "admin.token"), "utf8").trim();
  });

  after(() => {
    if (process.env.SLUICE_TEST_LOG) process.stderr.write(`--- gateway log ---\n${log}\n`);
    teardown(t, gw);
  });

  it("passes TCP, UDP and ICMP under allow rules, over IPv4 and IPv6", () => {
    assert.deepEqual(probe("http", t.srv4, "80", "ok.test").status, 200);
    assert.deepEqual(probe("http", t.srv6, "80", "ok.test").status, 200);
    assert.equal(probe("udp", t.srv4, "9999").ok, true);
    assert.equal(probe("udp", t.srv6, "9999").ok, true);
    assert.match(t.exec(t.cli, "ping", ["-c", "1", "-W", "3", t.srv4]), /1 received/);
    assert.match(t.exec(t.cli, "ping", ["-6", "-c", "1", "-W", "3", t.srv6]), /1 received/);
  });

  it("refuses a connection to a blocked address and port with a TCP reset", () => {
    assert.equal(probe("http", t.srv4, "8080", "ok.test").error, "ECONNREFUSED");
    assert.equal(probe("http", t.srv6, "8080", "ok.test").error, "ECONNREFUSED");
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200, "the same host on another port still works");
  });

  it("blocks HTTPS by SNI and HTTP by Host, and lets other names through", () => {
    assert.equal(probe("tls", t.srv4, "443", "ok.test").ok, true);
    assert.equal(probe("tls", t.srv4, "443", "blocked.test").error, "ECONNRESET");
    assert.equal(probe("tls", t.srv4, "443", "www.tracker.test").error, "ECONNRESET");
    assert.equal(probe("http", t.srv4, "80", "blocked.test").error, "ECONNRESET");
    assert.equal(probe("http", t.srv4, "80", "notblocked.test").status, 200);
  });

  it("blocks by domain over IPv6 the same way", () => {
    assert.equal(probe("tls", t.srv6, "443", "ok.test").ok, true);
    assert.equal(probe("tls", t.srv6, "443", "tracker.test").error, "ECONNRESET");
    assert.equal(probe("http", t.srv6, "80", "blocked.test").error, "ECONNRESET");
  });

  it("learns names from DNS answers crossing the gateway and applies domain rules to plain connections", () => {
    assert.equal(probe("tcp", t.srv4, "443").ok, true, "before any DNS answer, nothing names 10.80.2.2");
    const answer = probe("dns", t.srv4, "53", "www.learned.test") as Probe & { answers?: string[] };
    assert.deepEqual(answer.answers, [t.srv4], "the DNS answer came back through the gateway");
    assert.equal(probe("tcp", t.srv4, "443").error, "ECONNREFUSED", "now 10.80.2.2 is www.learned.test: blocked on 443");
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200, "other ports and names still pass");
  });

  it("fast-tracks a decided connection: a long exchange queues only its first packets", () => {
    const before = health().received;
    const r = probe("hold", t.srv4, "7000", "2000");
    assert.equal(r.ok, true);
    assert.ok((r.echoes ?? 0) >= 15, `the connection carried traffic (${r.echoes} echoes)`);
    const queued = health().received - before;
    // About 40 packets each way crossed the gateway; only the opening ones were queued.
    assert.ok(queued <= 6, `${queued} packets of the connection reached the queue`);
  });

  it("keeps deciding under a flood of new connections", () => {
    const r = probe("flood", t.srv4, "80", "300");
    assert.equal(r.connected, 300);
    assert.equal(probe("http", t.srv4, "8080", "ok.test").error, "ECONNREFUSED", "and still blocks");
  });

  it("cuts an open connection when a rule change blocks it", async () => {
    const hold = t.spawn(t.cli, process.execPath, [CLIENT, "hold", t.srv4, "7000", "6000"]);
    let out = "";
    hold.stdout!.on("data", (d: Buffer) => (out += d));
    await sleep(1000);
    writeFileSync(join(data, "sluice.rules"), `- 10.80.2.2 TCP/7000\n${RULES}`);
    const reloads = health().reloads;
    gw.kill("SIGHUP");
    await waitFor(() => health().reloads > reloads, 5000, "the reload");
    await waitFor(() => out.length > 0, 10000, "the held connection to end");
    const r = JSON.parse(out) as Probe;
    assert.equal(r.ok, false, "the connection did not survive the new rule");
    assert.ok((r.echoes ?? 0) > 0, "it carried traffic before");
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200, "other traffic still flows");
    writeFileSync(join(data, "sluice.rules"), RULES);
    gw.kill("SIGHUP");
    await waitFor(() => health().reloads > reloads + 1, 5000, "the second reload");
  });

  it("keeps traffic flowing when its queue workers die, and restarts them", async () => {
    const restarts = health().restarts;
    gw.kill("SIGUSR2");
    await waitFor(() => health().restarts >= restarts + 2, 15000, "the workers to restart");
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200);
    await waitFor(() => health().status === "ok", 15000, "every queue running again");
    assert.equal(probe("http", t.srv4, "8080", "ok.test").error, "ECONNREFUSED", "deciding again");
  });

  it("passes the API's integration self-check: hooks first, workers bound, a probe packet decided by a worker", () => {
    const [status, body] = api("GET", "compat/self-check");
    assert.equal(status, 200, body);
    assert.equal(body.trim(), "self-check successful");
  });

  it("fails the self-check, saying which step, when a hook is missing", () => {
    t.exec(t.gw, "iptables", ["-t", "mangle", "-D", "OUTPUT", "-j", "SLUICE-PROBE"]);
    try {
      const [status, body] = api("GET", "compat/self-check");
      assert.equal(status, 500);
      const e = JSON.parse(body) as { error: { key: string; message: string } };
      assert.equal(e.error.key, "self_check_failed");
      assert.match(e.error.message, /self-check #1: firewall integration check failed/);
      assert.match(e.error.message, /self-check #3: packet integration check failed/);
    } finally {
      t.exec(t.gw, "iptables", ["-t", "mangle", "-I", "OUTPUT", "1", "-j", "SLUICE-PROBE"]);
    }
  });

  it("applies a profile created through the API to the next connection, and removing it lifts the block", () => {
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200);
    const [created, body] = api("POST", "profiles", { ID: "lan", Default: "allow", Sources: [t.cli4, t.cli6], Rules: ["- 10.80.2.2 TCP/80"] });
    assert.equal(created, 201, body);
    assert.equal(probe("http", t.srv4, "80", "ok.test").error, "ECONNREFUSED", "the new profile's rule decides the client's connections");
    assert.equal(probe("http", t.srv6, "80", "ok.test").status, 200, "its other traffic follows the profile's default");
    assert.equal(api("DELETE", "profiles/lan")[0], 204);
    assert.equal(probe("http", t.srv4, "80", "ok.test").status, 200, "back under the default profile");
    assert.match(readFileSync(join(data, "sluice.rules"), "utf8"), /blocked\.test/, "the file keeps the other profiles' rules");
  });

  it("reports the packet path through the API: queues running, packets counted", () => {
    const [status, body] = api("GET", "debug/core");
    assert.equal(status, 200);
    assert.match(body, /"status": "ok"/);
    assert.match(body, /iptables/);
  });

  it("refuses to run without the privilege to bind a queue, saying what is missing", () => {
    const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, CLI, "run", "--data", mkdtempSync(join(tmpdir(), "sluice-np-"))], { encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /CAP_NET_ADMIN/);
  });

  it("removes every rule it installed when stopped", async () => {
    gw.kill("SIGTERM");
    await waitFor(() => gw.exitCode !== null, 10000, "sluice to stop");
    assert.equal(gw.exitCode, 0);
    for (const save of ["iptables-save", "ip6tables-save"]) {
      assert.doesNotMatch(t.exec(t.gw, save, []), /SLUICE/, `${save} shows no sluice chain`);
    }
    assert.equal(probe("http", t.srv4, "8080", "ok.test").status, 200, "without sluice, nothing is blocked");
  });
});

describe("live host mode", () => {
  let t: Topology;
  let gw: ChildProcess;
  let log = "";

  const probeFrom = (ns: string, ...args: string[]): Probe => JSON.parse(t.exec(ns, process.execPath, [CLIENT, ...args], 20000).trim()) as Probe;

  before(async () => {
    assert.equal(process.getuid?.(), 0, "the live gateway tests run as root (network namespaces, NFQUEUE)");
    t = createTopology(`h${process.pid % 100000}`);
    // Services on the gateway itself: "SSH" on 22 and something else on 8081.
    const svc = t.spawn(t.gw, process.execPath, ["-e", "const n=require('net');for(const p of [22,8081])n.createServer(c=>c.end()).listen(p,'::');setTimeout(()=>process.exit(0),120000);console.log('ready')"]);
    let svcOut = "";
    svc.stdout!.on("data", (d: Buffer) => (svcOut += d));
    const srv = t.spawn(t.srv, process.execPath, [SERVER]);
    let srvOut = "";
    srv.stdout!.on("data", (d: Buffer) => (srvOut += d));
    const data = mkdtempSync(join(tmpdir(), "sluice-host-"));
    writeFileSync(join(data, "config.json"), JSON.stringify({ mode: "host", wanInterfaces: [t.gwWan], api: { host: "127.0.0.1", port: 0 }, queues: { count: 1 } }));
    writeFileSync(join(data, "sluice.rules"), "- *\n");
    const until = Date.now() + START_TIMEOUT_MS;
    while (!(svcOut.includes("ready") && srvOut.includes("ready"))) {
      if (Date.now() > until) throw new Error("test services did not start");
      await sleep(50);
    }
    gw = t.spawn(t.gw, process.execPath, [CLI, "run", "--data", data]);
    gw.stdout!.on("data", (d: Buffer) => (log += d));
    gw.stderr!.on("data", (d: Buffer) => (log += d));
    while (!READY_RE.test(log)) {
      if (Date.now() > until) throw new Error(`sluice did not start:\n${log}`);
      await sleep(50);
    }
  });

  after(() => teardown(t, gw));

  it("never filters SSH to the gateway, even under a rule that blocks everything", () => {
    assert.equal(probeFrom(t.cli, "tcp", "10.80.1.1", "22").ok, true);
  });

  it("filters the gateway's other services and its own outgoing connections", () => {
    assert.equal(probeFrom(t.cli, "tcp", "10.80.1.1", "8081").error, "ECONNREFUSED");
    assert.equal(probeFrom(t.gw, "http", t.srv4, "80", "ok.test").ok, false);
  });

  it("leaves routed traffic alone when only the host is filtered", () => {
    assert.equal(probeFrom(t.cli, "http", t.srv4, "80", "ok.test").status, 200);
  });

  it("removes its host chains too when stopped", async () => {
    gw.kill("SIGTERM");
    const until = Date.now() + 10000;
    while (gw.exitCode === null && Date.now() < until) await sleep(50);
    assert.equal(gw.exitCode, 0);
    assert.doesNotMatch(t.exec(t.gw, "iptables-save", []), /SLUICE/);
  });
});
