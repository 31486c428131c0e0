// The gateway as the LAN's DNS server (network namespaces, real dig): answers forwarded and
// then cached, TCP fallback for big answers, every blocking mode, regex and ABP rules, allow
// over deny, pause with a timer (global and per device), per-profile lists, a subscribed list
// served over HTTP downloaded, updated and reported, and answers teaching the packet path.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChildProcess } from "node:child_process";
import { createTopology, type Topology } from "./helpers/netns.js";
import { apiIn, waitUntil } from "./helpers/live.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SERVER = join(ROOT, "scripts", "lab", "server.mjs");
const CLIENT = join(ROOT, "scripts", "lab", "client.mjs");
const FILES = join(ROOT, "scripts", "lab", "files.mjs");
const START_TIMEOUT_MS = 15000;
const READY_RE = /ready: API on http:\/\/127\.0\.0\.1:(\d+)/;
const GW = "10.80.1.1";
/** A second address of the client namespace: a second device, in the "kids" profile. */
const KID = "10.80.1.3";
const LIST_PORT = 18080;

const RULES = `- *.learned-dns.test TCP/7000
+ *

[profile kids]
source ${KID}/32
+ *
`;

interface Dig {
  status: string;
  flags: string[];
  answers: { name: string; ttl: number; type: string; data: string }[];
  server: string;
  ede: string | null;
}

describe("the gateway's DNS resolver, asked by a LAN device with dig", () => {
  let t: Topology;
  let gw: ChildProcess;
  let srv: ChildProcess;
  let lists: ChildProcess | null = null;
  let log = "";
  let srvLog = "";
  let port = 0;
  let token = "";
  let data = "";
  let sid = "";
  let listDir = "";

  const api = apiIn(() => t, () => port, () => token);
  /** A Pi-hole route (/api/...), with the session id in the `sid` header. */
  const pihole = (method: string, path: string, body?: unknown): [number, any] => {
    const args = ["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", `sid: ${sid}`];
    if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body));
    const out = t.exec(t.gw, "curl", [...args, `http://127.0.0.1:${port}/api/${path}`], 40000);
    const nl = out.lastIndexOf("\n");
    const text = out.slice(0, nl);
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* text replies (gravity) stay text */
    }
    return [Number(out.slice(nl + 1)), json];
  };
  const dig = (name: string, type = "A", ...opts: string[]): Dig => {
    const out = t.exec(t.cli, "dig", [`@${GW}`, "+tries=1", "+time=3", ...opts, name, type], 15000);
    const status = /status: (\w+)/.exec(out)?.[1] ?? "NONE";
    const flags = (/;; flags: ([a-z ]+);/.exec(out)?.[1] ?? "").trim().split(" ");
    const answers: Dig["answers"] = [];
    const section = out.split(";; ANSWER SECTION:\n")[1]?.split("\n\n")[0] ?? "";
    for (const line of section.split("\n")) {
      const f = line.split(/\s+/);
      if (f.length >= 5) answers.push({ name: f[0]!, ttl: Number(f[1]), type: f[3]!, data: f.slice(4).join(" ") });
    }
    return { status, flags, answers, server: /;; SERVER: .*\((\w+)\)/.exec(out)?.[1] ?? "", ede: /; EDE: (.*)/.exec(out)?.[1] ?? null };
  };
  /** How many queries for `name` the upstream logged (after a moment for its log to arrive). */
  const upstreamSaw = async (name: string): Promise<number> => {
    await new Promise((r) => setTimeout(r, 300));
    return srvLog.split("\n").filter((l) => l.startsWith(`dns ${name} `)).length;
  };
  const lastQuery = (domain: string): any => {
    const [status, body] = pihole("GET", `queries?domain=${encodeURIComponent(domain)}&length=1`);
    assert.equal(status, 200);
    return body.queries[0];
  };
  const setOption = (key: string, value: unknown): void => {
    const [status, body] = api("PUT", `config/option/${key}`, { Value: value });
    assert.equal(status, 200, body);
  };

  before(async () => {
    assert.equal(process.getuid?.(), 0, "the live tests run as root (network namespaces)");
    t = createTopology(`d${process.pid % 100000}`);
    t.exec(t.cli, "ip", ["addr", "add", `${KID}/24`, "dev", "cli0"]);
    srv = t.spawn(t.srv, process.execPath, [SERVER]);
    srv.stdout!.on("data", (d: Buffer) => (srvLog += d));
    await waitUntil(() => srvLog.includes("ready"), START_TIMEOUT_MS, "the test server", () => srvLog);
    data = mkdtempSync(join(tmpdir(), "sluice-dns-"));
    writeFileSync(
      join(data, "config.json"),
      JSON.stringify({ wanInterfaces: [t.gwWan], api: { host: "127.0.0.1", port: 0 }, queues: { count: 1 }, dns: { upstreams: ["10.80.2.2"], interception: { redirect: true, blockDoT: true, blockDoH: true } } }),
    );
    writeFileSync(join(data, "sluice.rules"), RULES);
    gw = t.spawn(t.gw, process.execPath, [CLI, "run", "--data", data]);
    gw.stdout!.on("data", (d: Buffer) => (log += d));
    gw.stderr!.on("data", (d: Buffer) => (log += d));
    await waitUntil(() => READY_RE.test(log), START_TIMEOUT_MS, "sluice to start", () => log);
    port = Number(READY_RE.exec(log)![1]);
    assert.match(log, /dns: answering on 10\.80\.1\.1:53/, log);
    token = readFileSync(join(data, "admin.token"), "utf8").trim();
    const [status, body] = pihole("POST", "auth", { password: token });
    assert.equal(status, 200, JSON.stringify(body));
    sid = body.session.sid;
    listDir = mkdtempSync(join(tmpdir(), "sluice-lists-"));
  });

  after(() => {
    for (const c of [gw, srv, lists]) if (c && c.exitCode === null) c.kill("SIGKILL");
    try {
      t.exec(t.gw, process.execPath, [CLI, "recover"]);
    } catch {
      /* the namespace goes next anyway */
    }
    t?.destroy();
  });

  it("answers on the LAN address, forwarding a new name once and then answering it from the cache", async () => {
    const first = dig("fresh.example.test");
    assert.equal(first.status, "NOERROR");
    assert.deepEqual(first.answers.map((a) => a.data), ["10.80.2.2"]);
    assert.equal(lastQuery("fresh.example.test").status, "FORWARDED");
    await new Promise((r) => setTimeout(r, 1100));
    const second = dig("FRESH.Example.TEST");
    assert.deepEqual(second.answers.map((a) => a.data), ["10.80.2.2"]);
    assert.ok(second.answers[0]!.ttl < first.answers[0]!.ttl, `the cached TTL counts down (${first.answers[0]!.ttl} then ${second.answers[0]!.ttl})`);
    assert.equal(await upstreamSaw("fresh.example.test"), 1, "the upstream was asked once");
    const q = lastQuery("fresh.example.test");
    assert.equal(q.status, "CACHE");
    assert.equal(q.client.ip, "10.80.1.2");
  });

  it("caches NXDOMAIN for the SOA's negative TTL and answers names without a dot itself", async () => {
    assert.equal(dig("nope.nxdomain.test").status, "NXDOMAIN");
    const again = dig("nope.nxdomain.test");
    assert.equal(again.status, "NXDOMAIN");
    assert.equal(await upstreamSaw("nope.nxdomain.test"), 1);
    assert.equal(dig("printer").status, "NXDOMAIN");
    assert.equal(await upstreamSaw("printer"), 0, "a single-label name never leaves the network");
  });

  it("sets TC on an answer too big for UDP, and dig gets all of it over TCP", () => {
    const udpOnly = dig("big.test", "A", "+ignore", "+notcp");
    assert.ok(udpOnly.flags.includes("tc"), `flags: ${udpOnly.flags.join(" ")}`);
    const full = dig("big.test");
    assert.equal(full.server, "TCP");
    assert.equal(full.answers.length, 120);
    assert.equal(dig("example.org", "A", "+tcp").status, "NOERROR");
  });

  it("blocks an exact deny entry with 0.0.0.0 and :: (NULL mode) and an EDE 'Blocked'", () => {
    const [status, body] = pihole("POST", "domains/deny/exact", { domain: "ads.shop.test" });
    assert.equal(status, 201, JSON.stringify(body));
    const a = dig("ads.shop.test");
    assert.deepEqual(a.answers.map((x) => x.data), ["0.0.0.0"]);
    assert.match(a.ede ?? "", /15 \(Blocked\)/);
    assert.deepEqual(dig("ads.shop.test", "AAAA").answers.map((x) => x.data), ["::"]);
    assert.equal(dig("shop.test").answers[0]?.data, "10.80.2.2", "the parent is not blocked by an exact entry");
    assert.equal(lastQuery("ads.shop.test").status, "DENYLIST");
  });

  it("answers blocked names as each blocking mode says, switched at run time", () => {
    setOption("dns/blockingMode", "NXDOMAIN");
    assert.equal(dig("ads.shop.test").status, "NXDOMAIN");
    setOption("dns/blockingMode", "NODATA");
    const nodata = dig("ads.shop.test");
    assert.equal(nodata.status, "NOERROR");
    assert.equal(nodata.answers.length, 0);
    setOption("dns/blockingMode", "NULL");
    assert.equal(dig("ads.shop.test").answers[0]?.data, "0.0.0.0");
  });

  it("blocks by regex, with the rule's own reply, and lets an exact allow beat it", () => {
    let [status] = pihole("POST", "domains/deny/regex", { domain: "(^|\\.)tracker\\.;reply=nxdomain" });
    assert.equal(status, 201);
    assert.equal(dig("pixel.tracker.test").status, "NXDOMAIN");
    assert.equal(lastQuery("pixel.tracker.test").status, "REGEX");
    [status] = pihole("POST", "domains/allow/exact", { domain: "ok.tracker.test" });
    assert.equal(status, 201);
    assert.equal(dig("ok.tracker.test").answers[0]?.data, "10.80.2.2");
  });

  it("downloads a subscribed ABP list over HTTP, blocks its names and their subdomains, and reports each update", async () => {
    const file = join(listDir, "list.txt");
    writeFileSync(file, "||adnet.test^\n||metrics.test^\nnot a domain line!\n");
    lists = t.spawn(t.gw, process.execPath, [FILES, listDir, String(LIST_PORT)]);
    let filesOut = "";
    lists.stdout!.on("data", (d: Buffer) => (filesOut += d));
    await waitUntil(() => filesOut.includes("ready"), 10000, "the list server", () => log);
    const address = `http://127.0.0.1:${LIST_PORT}/list.txt`;
    let [status, body] = pihole("POST", "lists?type=block", { address });
    assert.equal(status, 201, JSON.stringify(body));
    const update = (): any => {
      const [s, text] = pihole("POST", "action/gravity");
      assert.equal(s, 200);
      assert.equal(typeof text, "string");
      const [ls, lb] = pihole("GET", "lists");
      assert.equal(ls, 200);
      return { text, row: lb.lists.find((l: any) => l.address === address) };
    };
    let u = update();
    assert.equal(u.row.status, 1, `downloaded; gravity said:\n${u.text}`);
    assert.equal(u.row.number, 2);
    assert.equal(u.row.invalid_domains, 1);
    assert.equal(u.row.abp_entries, 2);
    assert.equal(dig("adnet.test").answers[0]?.data, "0.0.0.0");
    assert.equal(dig("cdn.adnet.test").answers[0]?.data, "0.0.0.0", "ABP entries cover subdomains");
    assert.equal(lastQuery("cdn.adnet.test").status, "GRAVITY");
    [status, body] = pihole("GET", "stats/summary");
    assert.equal(body.gravity.domains_being_blocked, 2);

    u = update();
    assert.equal(u.row.status, 2, "unchanged");
    writeFileSync(file, "||adnet.test^\n||metrics.test^\n||beacon.test^\n");
    u = update();
    assert.equal(u.row.status, 1);
    assert.equal(u.row.number, 3);
    assert.equal(dig("beacon.test").answers[0]?.data, "0.0.0.0");
    lists.kill("SIGKILL");
    lists = null;
    u = update();
    assert.equal(u.row.status, 3, "unavailable, the local copy is used");
    assert.equal(dig("beacon.test").answers[0]?.data, "0.0.0.0", "blocking goes on from the local copy");
  });

  it("lets an allow entry beat a list entry for the same name", () => {
    const [status] = pihole("POST", "domains/allow/exact", { domain: "good.adnet.test" });
    assert.equal(status, 201);
    assert.equal(dig("good.adnet.test").answers[0]?.data, "10.80.2.2");
    assert.equal(dig("bad.adnet.test").answers[0]?.data, "0.0.0.0");
  });

  it("pauses blocking for a while and resumes by itself when the timer runs out", async () => {
    const [status, body] = pihole("POST", "dns/blocking", { blocking: false, timer: 2 });
    assert.equal(status, 200);
    assert.equal(body.blocking, "disabled");
    assert.ok(body.timer > 0 && body.timer <= 2);
    assert.equal(dig("ads.shop.test").answers[0]?.data, "10.80.2.2", "paused: the name resolves");
    await waitUntil(() => pihole("GET", "dns/blocking")[1].blocking === "enabled", 5000, "blocking to resume", () => log);
    assert.equal(dig("ads.shop.test").answers[0]?.data, "0.0.0.0");
  });

  it("applies an entry only to the profile (group) it is assigned to", () => {
    const [gs, groups] = pihole("GET", "groups");
    assert.equal(gs, 200, JSON.stringify(groups));
    const kids = groups.groups.find((g: any) => g.name === "kids");
    assert.ok(kids, JSON.stringify(groups));
    const [status] = pihole("POST", "domains/deny/exact", { domain: "games.test", groups: [kids.id] });
    assert.equal(status, 201);
    assert.equal(dig("games.test", "A", "-b", KID).answers[0]?.data, "0.0.0.0");
    assert.equal(dig("games.test").answers[0]?.data, "10.80.2.2");
  });

  it("pauses blocking for one device only", () => {
    assert.equal(dig("games.test", "A", "-b", KID).answers[0]?.data, "0.0.0.0");
    const [status, body] = pihole("POST", "dns/blocking", { blocking: false, timer: 60, client: KID });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.blocking, "disabled");
    assert.equal(dig("games.test", "A", "-b", KID).answers[0]?.data, "10.80.2.2", "paused for this device");
    assert.equal(dig("ads.shop.test").answers[0]?.data, "0.0.0.0", "the other device is still filtered");
    pihole("POST", "dns/blocking", { blocking: true, timer: null, client: KID });
    assert.equal(dig("games.test", "A", "-b", KID).answers[0]?.data, "0.0.0.0");
  });

  it("teaches the packet path: a connection to an address the resolver gave is decided by the name's rule", () => {
    assert.equal(dig("web.learned-dns.test").answers[0]?.data, "10.80.2.2");
    const blocked = JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, "tcp", "10.80.2.2", "7000"], 10000).trim());
    assert.equal(blocked.ok, false, "the rule for *.learned-dns.test blocks the connection by its learned name");
    assert.equal(dig("other.example.test").answers[0]?.data, "10.80.2.2");
    const allowed = JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, "tcp", "10.80.2.2", "7000"], 10000).trim());
    assert.equal(allowed.ok, true, "the same address under another name is allowed");
  });

  it("lists its upstream and cached entries on the Portmaster routes, and clears the cache", () => {
    let [status, body] = api("GET", "dns/resolvers");
    assert.equal(status, 200, body);
    const resolvers = JSON.parse(body);
    assert.equal(resolvers[0].Info.IP, "10.80.2.2");
    assert.equal(resolvers[0].Failing, false);
    [status, body] = api("GET", "dns/cache/fresh.example.test.A");
    assert.equal(status, 200, body);
    assert.match(JSON.parse(body).Answer[0], /^fresh\.example\.test\.\t\d+\tIN\tA\t10\.80\.2\.2$/);
    [status, body] = api("POST", "dns/clear");
    assert.equal(status, 200);
    assert.match(body, /^cleared \d+ dns cache entries/);
    [status] = api("GET", "dns/cache/fresh.example.test.A");
    assert.equal(status, 404);
  });

  it("answers a query sent to another DNS server itself (rogue port 53 is redirected)", async () => {
    const r = t.exec(t.cli, "dig", ["@10.80.2.77", "+tries=1", "+time=3", "rogue.example.test", "A"], 15000);
    assert.match(r, /status: NOERROR/);
    assert.match(r, /rogue\.example\.test\.\s+\d+\s+IN\s+A\s+10\.80\.2\.2/);
    assert.equal(lastQuery("rogue.example.test").client.ip, "10.80.1.2");
  });

  it("refuses DNS over TLS and answers the known DNS-over-HTTPS names and Firefox's canary with NXDOMAIN", () => {
    const dot = JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, "tcp", "10.80.2.2", "853"], 10000).trim());
    assert.equal(dot.ok, false, "port 853 is refused");
    assert.equal(dig("dns.google").status, "NXDOMAIN");
    assert.equal(dig("use-application-dns.net").status, "NXDOMAIN");
  });

  it("refuses malformed queries with FORMERR and keeps answering", () => {
    const junk = t.exec(t.cli, process.execPath, ["-e", `
      const s = require("node:dgram").createSocket("udp4");
      const q = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x61]);
      s.on("message", (m) => { console.log(m[3] & 15); process.exit(0); });
      s.send(q, 53, "${GW}");
      setTimeout(() => { console.log("none"); process.exit(0); }, 2000);
    `]).trim();
    assert.equal(junk, "1", "FORMERR");
    assert.equal(dig("still.example.test").status, "NOERROR");
  });
});
