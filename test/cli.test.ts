// The sluice command line, run as a user would run it.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { fixturePath } from "./helpers/fixtures.js";
import { readPcap } from "./helpers/pcap.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");

function sluice(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("sluice command line", () => {
  it("lists its commands under help", () => {
    const r = sluice("help");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /rules check FILE/);
    assert.match(r.stdout, /decode PCAP/);
  });

  it("exits with a usage error and the help text on an unknown command", () => {
    const r = sluice("frobnicate");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command/);
  });

  it("accepts the example ruleset shipped in deploy/", () => {
    const r = sluice("rules", "check", join(ROOT, "deploy", "sluice.rules"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok: 8 rules in 3 profile\(s\)/);
  });

  it("reports every problem in a ruleset as file:line:column and exits 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));
    const file = join(dir, "bad.rules");
    writeFileSync(file, "+ example.com\n- 10.0.0.0/33\n[profile p]\nsource 1.2.3.4\n+ *.x.org TCP/99999\n");
    const r = sluice("rules", "check", file);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2:3: prefix length "33" must be 0-32`));
    assert.match(lines[1]!, /:5:15: "99999" is not a port or port range .*\[profile p\]$/);
  });

  it("decodes a pcap into one JSON line per packet, with verdicts when given rules", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));
    const rules = join(dir, "r.rules");
    writeFileSync(rules, "+ 10.0.0.0/8 TCP/443\n- .example.test UDP/53\n");
    const pcap = fixturePath("dns_udp_a");
    const r = sluice("decode", pcap, rules);
    assert.equal(r.code, 0, r.stderr);
    type Row = { frame: number; name: string; verdict: number; rule: { line: number; profile: string } | null };
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Row);
    assert.equal(rows.length, readPcap(pcap).length);
    // The query goes to port 53 and is blocked by line 2. The answer comes from port 53; read
    // as a packet of its own going out, its remote port is the client's, so no rule applies
    // (live, it belongs to the query's connection and shares its verdict).
    assert.deepEqual(
      rows.map((x) => [x.name, x.verdict, x.rule?.line ?? null]),
      [["www.example.test", 3, 2], ["www.example.test", 2, null]],
    );
  });
});
