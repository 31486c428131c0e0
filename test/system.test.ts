// The data-gathering modules under src/system: pure parsers on realistic tool output, the report
// formats, the V8 profiler wrappers, and live reads of this machine's routes and conntrack table.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultGateways, interfaces, routeTable } from "../src/system/routes.js";
import { parseResolvConf, systemNameservers } from "../src/system/nameservers.js";
import {
  conntrackStats,
  conntrackTable,
  parseConntrackLine,
  parseConntrackOutput,
  type ConntrackEntry,
} from "../src/system/conntrack.js";
import { cpuProfile, heapSnapshot, samplingHeapProfile, MAX_PROFILE_MS } from "../src/system/profiler.js";
import { stackReport } from "../src/system/stacks.js";
import { debugReport, platformInfo } from "../src/system/debuginfo.js";
import { ToolError } from "../src/system/exec.js";

// Lines as `conntrack -L -o extended` prints them (column padding included); the counters appear
// when net.netfilter.nf_conntrack_acct=1.
const TCP_V4 =
  "ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.23 dst=93.184.216.34 sport=51514 dport=443 packets=12 bytes=2034 src=93.184.216.34 dst=203.0.113.7 sport=443 dport=51514 packets=10 bytes=6180 [ASSURED] mark=0 use=1";
const UDP_V4 =
  "ipv4     2 udp      17 28 src=192.168.1.23 dst=1.1.1.1 sport=40123 dport=53 [UNREPLIED] src=1.1.1.1 dst=203.0.113.7 sport=53 dport=40123 mark=1792 zone=3 use=1";
const ICMP_V4 =
  "ipv4     2 icmp     1 29 src=192.168.1.23 dst=8.8.8.8 type=8 code=0 id=28666 src=8.8.8.8 dst=192.168.1.23 type=0 code=0 id=28666 mark=0 use=1";
const TCP_V6 =
  "ipv6     10 tcp      6 119 TIME_WAIT src=2001:db8::23 dst=2606:4700::6810:85e5 sport=55018 dport=443 src=2606:4700::6810:85e5 dst=2001:db8::23 sport=443 dport=55018 [ASSURED] mark=0 use=1";
const ICMP_V6 =
  "ipv6     10 icmpv6   58 29 src=2001:db8::23 dst=2001:db8::1 type=128 code=0 id=28667 src=2001:db8::1 dst=2001:db8::23 type=129 code=0 id=28667 mark=0 use=1";
const MALFORMED = [
  "ipv4     2 tcp      6 soon ESTABLISHED src=192.168.1.23 dst=93.184.216.34 sport=51514 dport=443",
  "ipv4     2 udp      17 28 src=192.168.1.23 dst=1.1.1.1 sport=40123 dport=53",
  "ipv6     10 tcp      6 119 TIME_WAIT src=192.168.1.23 dst=1.1.1.1 sport=1 dport=2 src=1.1.1.1 dst=192.168.1.23 sport=2 dport=1 mark=0",
  "ipv4     2 tcp      6 60 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=70000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=70000 mark=0",
  "conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.",
];

function parsed(line: string): ConntrackEntry {
  const entry = parseConntrackLine(line);
  assert.ok(entry, `expected a parse of: ${line}`);
  return entry;
}

describe("conntrack line parser", () => {
  it("reads an IPv4 TCP flow with state, counters and status flags", () => {
    assert.deepEqual(parsed(TCP_V4), {
      family: "ipv4",
      proto: "tcp",
      protoNum: 6,
      timeout: 431999,
      state: "ESTABLISHED",
      orig: { src: "192.168.1.23", dst: "93.184.216.34", sport: 51514, dport: 443, packets: 12, bytes: 2034 },
      reply: { src: "93.184.216.34", dst: "203.0.113.7", sport: 443, dport: 51514, packets: 10, bytes: 6180 },
      status: ["ASSURED"],
      mark: 0,
      use: 1,
    });
  });

  it("reads an unreplied UDP flow with its mark and zone, without a state", () => {
    const entry = parsed(UDP_V4);
    assert.equal(entry.state, undefined);
    assert.deepEqual(entry.status, ["UNREPLIED"]);
    assert.equal(entry.mark, 1792);
    assert.equal(entry.zone, 3);
    assert.deepEqual(entry.reply, { src: "1.1.1.1", dst: "203.0.113.7", sport: 53, dport: 40123 });
  });

  it("reads ICMP type, code and id instead of ports", () => {
    const entry = parsed(ICMP_V4);
    assert.equal(entry.protoNum, 1);
    assert.deepEqual(entry.orig, { src: "192.168.1.23", dst: "8.8.8.8", type: 8, code: 0, id: 28666 });
    assert.deepEqual(entry.reply, { src: "8.8.8.8", dst: "192.168.1.23", type: 0, code: 0, id: 28666 });
  });

  it("reads IPv6 TCP and ICMPv6 flows", () => {
    const tcp = parsed(TCP_V6);
    assert.equal(tcp.family, "ipv6");
    assert.equal(tcp.state, "TIME_WAIT");
    assert.equal(tcp.orig.dst, "2606:4700::6810:85e5");
    const icmp = parsed(ICMP_V6);
    assert.equal(icmp.proto, "icmpv6");
    assert.equal(icmp.protoNum, 58);
    assert.equal(icmp.reply.type, 129);
  });

  it("returns null for malformed lines instead of throwing", () => {
    for (const line of [...MALFORMED, "", "   ", "garbage"]) assert.equal(parseConntrackLine(line), null, line);
  });
});

describe("conntrack output parser", () => {
  const output = [TCP_V4, UDP_V4, MALFORMED[0], ICMP_V4, TCP_V6, ICMP_V6].join("\n") + "\n";

  it("counts unparseable lines as skipped", () => {
    const table = parseConntrackOutput(output, 100);
    assert.equal(table.entries.length, 5);
    assert.equal(table.skipped, 1);
    assert.equal(table.count, 6);
    assert.equal(table.truncated, false);
  });

  it("stops at the limit and says the table was truncated", () => {
    const table = parseConntrackOutput(output, 2);
    assert.deepEqual(
      table.entries.map((e) => e.proto),
      ["tcp", "udp"],
    );
    assert.equal(table.truncated, true);
    assert.equal(table.count, 6);
  });

  it("drops the incomplete last line of output that was cut off", () => {
    const table = parseConntrackOutput(`${TCP_V4}\n${UDP_V4.slice(0, 40)}`, 100, true);
    assert.equal(table.entries.length, 1);
    assert.equal(table.skipped, 0);
    assert.equal(table.truncated, true);
  });
});

describe("resolv.conf parser", () => {
  it("lists nameservers with the search domains, ignoring comments, options and bad addresses", () => {
    const text = [
      "# Generated by NetworkManager",
      "search lan example.com",
      "nameserver 192.168.1.1",
      "nameserver 2001:db8::53 # secondary",
      "; nameserver 10.9.9.9",
      "nameserver not-an-address",
      "nameserver 192.168.1.1",
      "options edns0 trust-ad",
      "",
    ].join("\n");
    assert.deepEqual(parseResolvConf(text), [
      { IP: "192.168.1.1", Search: ["lan", "example.com"] },
      { IP: "2001:db8::53", Search: ["lan", "example.com"] },
    ]);
  });

  it("takes the last search or domain line, as the resolver does", () => {
    const text = "search a.example b.example\nnameserver 10.0.0.53\ndomain corp.example\n";
    assert.deepEqual(parseResolvConf(text), [{ IP: "10.0.0.53", Search: ["corp.example"] }]);
  });

  it("returns no nameservers for an empty file", () => {
    assert.deepEqual(parseResolvConf(""), []);
  });

  it("reads a resolv.conf file and tolerates a missing one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sluice-resolv-"));
    try {
      const path = join(dir, "resolv.conf");
      await writeFile(path, "nameserver 9.9.9.9\n");
      assert.deepEqual(await systemNameservers(path), [{ IP: "9.9.9.9", Search: [] }]);
      assert.deepEqual(await systemNameservers(join(dir, "missing.conf")), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("debug report", () => {
  const sections = [
    { name: "Version 0.1.0", body: "sluice 0.1.0" },
    { name: "No Unexpected Logs", body: "", code: false },
  ];

  it("formats markdown sections with a bold name and a code block", () => {
    assert.equal(debugReport(sections, "markdown"), "**Version 0.1.0**:\n\n```\nsluice 0.1.0\n```\n\n\n**No Unexpected Logs**:\n\n");
  });

  it("wraps github sections in collapsible details", () => {
    assert.equal(
      debugReport(sections, "github"),
      "<details>\n<summary>Version 0.1.0</summary>\n\n```\nsluice 0.1.0\n```\n\n</details>\n\n" +
        "<details>\n<summary>No Unexpected Logs</summary>\n\n\n</details>",
    );
  });

  it("uses a longer fence when the body contains one", () => {
    const report = debugReport([{ name: "Log", body: "a ``` b" }], "markdown");
    assert.equal(report, "**Log**:\n\n````\na ``` b\n````\n");
  });

  it("describes the platform", () => {
    const info = platformInfo();
    assert.equal(info.node, process.version);
    assert.equal(info.platform, "linux");
    assert.ok(info.cpus >= 1);
    assert.equal(info.loadavg.length, 3);
    assert.ok(info.memory.heapUsed > 0);
    assert.ok(info.kernel.length > 0);
  });
});

describe("stack report", () => {
  it("shows the caller's stack, libuv handles and resource usage", function stackReportTest() {
    const text = stackReport();
    assert.match(text, /Main thread \(current stack\):/);
    assert.match(text, /stackReportTest/);
    assert.match(text, /libuv handles: \d+ \(\d+ active, \d+ referenced\)/);
    assert.match(text, /Resource usage:\n {2}\w+: /);
    assert.match(text, /Worker threads: \d+/);
  });
});

describe("profiler", () => {
  it("records a CPU profile that DevTools can open", async () => {
    const profile: unknown = JSON.parse(await cpuProfile(50));
    assert.ok(typeof profile === "object" && profile !== null);
    for (const key of ["nodes", "samples", "startTime", "endTime"]) assert.ok(key in profile, key);
  });

  it("records a sampling heap profile", async () => {
    const profile: unknown = JSON.parse(await samplingHeapProfile(50));
    assert.ok(typeof profile === "object" && profile !== null);
    assert.ok("head" in profile && "samples" in profile);
  });

  it("takes a heap snapshot", async () => {
    const snapshot: unknown = JSON.parse(await heapSnapshot());
    assert.ok(typeof snapshot === "object" && snapshot !== null);
    for (const key of ["snapshot", "nodes", "strings"]) assert.ok(key in snapshot, key);
  });

  it("rejects a second profile while one is running, then accepts again", async () => {
    const first = cpuProfile(200);
    await assert.rejects(heapSnapshot(), (err: unknown) => err instanceof Error && "code" in err && err.code === "PROFILER_BUSY");
    await assert.rejects(samplingHeapProfile(10), { code: "PROFILER_BUSY" });
    await first;
    JSON.parse(await cpuProfile(1));
  });

  it("rejects durations outside 1 ms to 60 s", async () => {
    for (const bad of [0, -5, MAX_PROFILE_MS + 1, Number.NaN]) {
      await assert.rejects(cpuProfile(bad), RangeError);
      await assert.rejects(samplingHeapProfile(bad), RangeError);
    }
  });
});

describe("live system", () => {
  it("lists the default gateways as IP addresses", async () => {
    const gateways = await defaultGateways();
    assert.ok(Array.isArray(gateways));
    for (const gw of gateways) assert.notEqual(isIP(gw), 0, gw);
  });

  it("includes the loopback routes of the local table", async () => {
    const routes = await routeTable();
    const loopback = routes.filter((r) => r.table === "local" && r.dev === "lo");
    assert.ok(loopback.some((r) => r.family === 4 && r.dst.startsWith("127.")), "IPv4 loopback route");
    for (const r of routes) assert.ok(r.family === 4 || r.family === 6);
  });

  it("lists the loopback interface with its address and prefix", async () => {
    const lo = (await interfaces()).find((i) => i.name === "lo");
    assert.ok(lo);
    assert.ok(lo.index > 0);
    assert.ok(lo.addresses.some((a) => a.family === 4 && a.address === "127.0.0.1" && a.prefixLength === 8));
  });

  it("reads the conntrack table, or says clearly that the tool is missing", async () => {
    try {
      const table = await conntrackTable(1000);
      assert.ok(Array.isArray(table.entries));
      assert.ok(table.entries.length <= 1000);
      assert.ok(table.count >= table.entries.length);
      assert.equal(typeof table.truncated, "boolean");
    } catch (err) {
      assert.ok(err instanceof ToolError && err.code === "TOOL_MISSING", String(err));
      assert.match(err.message, /conntrack/);
    }
  });

  it("reports a missing conntrack tool as TOOL_MISSING", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      await assert.rejects(conntrackTable(), (err: unknown) => {
        assert.ok(err instanceof ToolError);
        assert.equal(err.code, "TOOL_MISSING");
        assert.match(err.message, /conntrack is not installed.*install the Debian package "conntrack"/);
        return true;
      });
    } finally {
      process.env.PATH = path;
    }
  });

  it("reads the conntrack fill level, or null where the module is absent", async () => {
    const stats = await conntrackStats();
    for (const value of [stats.count, stats.max, stats.buckets]) assert.ok(value === null || Number.isInteger(value));
  });

  it("rejects a conntrack limit that is not a positive integer", async () => {
    await assert.rejects(conntrackTable(0), RangeError);
    await assert.rejects(conntrackTable(1.5), RangeError);
  });
});
