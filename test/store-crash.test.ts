// Crash safety of the history store: a child process writes as fast as it can (new rows, updates,
// ends, and in one variant retention deleting behind it), prints what it knows is committed after
// each flush resolves, and is killed with SIGKILL at an arbitrary moment. The store must reopen,
// hold every row the child reported, decode them, and its indexes and rollups must agree with the
// main table exactly.

import { strict as assert } from "node:assert";
import { runAndKill } from "./helpers/crash.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { HistoryStore } from "../src/store/index.js";

const STORE_URL = pathToFileURL(join(fileURLToPath(import.meta.url), "../../src/store/index.js")).href;
const T0 = Date.UTC(2024, 0, 1);

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The child: record i has id "c-<i>", starts at T0 + i*50 ms; every round it creates ROUND new
// records, blocks some, and ends records created two rounds earlier (final bytes). After each
// round it asks for a flush and prints "C <n>" when it resolves: records 0..n-1 are committed.
const CHILD = `
import { HistoryStore } from ${JSON.stringify(STORE_URL)};
const [path, mode] = process.argv.slice(2);
const T0 = ${T0};
const ROUND = 1500;
const store = HistoryStore.open({
  path, batchRecords: 2000, batchMs: 10,
  retentionIntervalMs: mode === "retention" ? 5 : 0,
  maxRecords: mode === "retention" ? 6000 : undefined,
  pruneBatch: 700,
});
const w = store.writer;
function rec(i, endedAt) {
  const started = T0 + i * 50;
  return {
    id: "c-" + i, profile: "local/p" + (i % 4), profile_name: "P", type: "ip", ip_version: 4, ip_protocol: i % 3 ? 6 : 17,
    local_ip: "192.168.0." + (i % 50), local_port: 30000 + (i % 30000), remote_ip: "203.0.113." + (i % 250), remote_port: 443,
    domain: "h" + (i % 400) + ".example.", scope: 4, verdict: i % 9 === 0 ? 3 : 2, started,
    ended: endedAt, active: endedAt === null, direction: "outbound", encrypted: true, internal: false, tunneled: false,
    external: true, allowed: i % 9 !== 0, bytes_sent: endedAt === null ? 0 : i % 5000, bytes_received: endedAt === null ? 0 : i % 70000,
    packets_sent: 1, packets_received: 1, device_ip: "192.168.0." + (i % 50), device_mac: null, rule_line: 1,
    matched_by: "default", end_reason: endedAt === null ? null : "closed", extra_data: {},
  };
}
let next = 0;
async function main() {
  for (;;) {
    const first = next;
    for (let k = 0; k < ROUND; k++) w.push(rec(next++, null));
    for (let i = Math.max(0, first - 2 * ROUND); i < first - ROUND; i++) w.push(rec(i, T0 + i * 50 + 999));
    const n = next;
    w.flush().then(() => process.stdout.write("C " + n + "\\n"), (e) => process.stdout.write("E " + e.message + "\\n"));
    if (w.counters.pending > 20000) await w.flush().catch(() => {});
    await new Promise((r) => setImmediate(r));
  }
}
main();
`;

describe("history store crash safety", () => {
  test("a writer killed with SIGKILL mid-write leaves a store that opens, holds every reported commit and agrees with its indexes", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-crash-"));
    dirs.push(dir);
    const script = join(dir, "child.mjs");
    writeFileSync(script, CHILD);
    const path = join(dir, "db");
    let reported = 0;
    // Three lives of the same store: each run appends, then dies at a different moment.
    for (const [minReports, delay] of [
      [3, 0],
      [5, 37],
      [8, 111],
    ] as const) {
      const run = await runAndKill(script, [path, "plain"], minReports, delay);
      assert.ok(run.committed > 0, "the child committed something before it was killed");
      reported = run.committed; // each life restarts its ids at 0 and rewrites them
      const store = HistoryStore.open({ path, retentionIntervalMs: 0 });
      try {
        assert.ok(store.count() >= reported, `count ${store.count()} < reported ${reported}`);
        for (let i = 0; i < reported; i++) {
          const r = store.get(`c-${i}`);
          assert.ok(r, `c-${i} missing after the crash`);
          assert.equal(r.started, T0 + i * 50);
          assert.equal(r.device_ip, `192.168.0.${i % 50}`);
        }
        const v = store.verify();
        assert.deepEqual(v.problems, [], v.problems.join("\n"));
        assert.equal(v.byId, v.records);
        assert.equal(v.byDevice, v.records);
        t.diagnostic(`killed after ${run.lines} reports: ${reported} reported committed, ${v.records} rows on reopen`);
      } finally {
        await store.close();
      }
    }
  });

  test("a writer killed with SIGKILL while retention deletes behind it leaves consistent indexes and rollups", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-crash-"));
    dirs.push(dir);
    const script = join(dir, "child.mjs");
    writeFileSync(script, CHILD);
    const path = join(dir, "db");
    for (const [minReports, delay] of [
      [10, 13],
      [14, 71],
    ] as const) {
      const run = await runAndKill(script, [path, "retention"], minReports, delay);
      const store = HistoryStore.open({ path, retentionIntervalMs: 0 });
      try {
        const v = store.verify();
        assert.deepEqual(v.problems, [], v.problems.join("\n"));
        assert.ok(v.records > 0);
        // Retention kept it bounded (one round of slack per flush).
        assert.ok(v.records < 6000 + 20 * 1500, `records ${v.records}`);
        t.diagnostic(`killed after ${run.lines} reports (${run.committed} created): ${v.records} rows on reopen`);
      } finally {
        await store.close();
      }
    }
  });
});
