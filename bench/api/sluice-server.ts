// The sluice API as the benchmark's server process: opens a Control on a scratch data directory
// (no packet path, no root needed), starts the uWebSockets.js API on 127.0.0.1 and an ephemeral
// port, and prints one JSON line for the parent: {"ready":true,"port":N,"uws":{...},"pid":N}.
// The admin token is in <dir>/admin.token. Exits on SIGTERM/SIGINT or when stdin closes (the
// parent went away), so it never outlives the benchmark.
//
// Usage: node dist/bench/api/sluice-server.js <dataDir>

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Control } from "../../src/control/sluice.js";
import { startApi } from "../../src/api/index.js";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: sluice-server.js <dataDir>\n");
  process.exit(2);
}
const verbose = process.env.BENCH_VERBOSE === "1";
const log = {
  info: (m: string) => {
    if (verbose) process.stderr.write(`[sluice] ${m}\n`);
  },
  warn: (m: string) => process.stderr.write(`[sluice] warn: ${m}\n`),
};

const configPath = join(dir, "config.json");
if (!existsSync(configPath)) writeFileSync(configPath, JSON.stringify({ api: { port: 0 } }) + "\n");

const control = Control.open(dir, log);
const api = await startApi(control, log, { host: "127.0.0.1", port: 0 });
control.state = "ready";

let closing = false;
function shutdown(code: number): void {
  if (closing) return;
  closing = true;
  try {
    api.close();
  } catch (err) {
    process.stderr.write(`[sluice] close failed: ${(err as Error).message}\n`);
  }
  // uWS keeps the loop alive through open sockets; do not wait for clients to go.
  setTimeout(() => process.exit(code), 50).unref();
  process.exitCode = code;
}
process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));
process.stdin.on("end", () => shutdown(0));
process.stdin.on("error", () => shutdown(0));
process.stdin.resume();

process.stdout.write(JSON.stringify({ ready: true, port: api.port, uws: api.deps.uws, pid: process.pid }) + "\n");
