// npm run bench:api: throughput and p99 latency of sluice's API (uWebSockets.js) against a
// minimal Fastify server doing the same work, in the same run, plus the database WebSocket's
// subscription update rate.
//
// Layout (2 cores): each server runs in its own child process; the load generator is wrk
// (-t1, C, so it leaves a core to the server) in a third process, or autocannon in this process
// when wrk is missing (or BENCH_LOADGEN=autocannon). Cases, each 1 s of warm-up then BENCH_S
// seconds measured, alternating servers so drift hits both alike:
//   ping           GET /api/v1/ping, no auth; also against a bare uWebSockets.js server answering
//                  the same bytes with no routing or auth at all (server "uws-bare"): the ceiling
//                  this machine allows, to read sluice's figure against (BENCH_CEILING=0: skip);
//   auth-json      GET /api/v1/auth/permissions with a user-role app token (Bearer);
//   profile-write  PUT /api/v1/profiles/bench with the admin token (rewrites the rules file;
//                  sluice also parses and compiles the ruleset, the Fastify twin does not);
//   ws-sub-updates one socket subscribed to config:api/ while another pipelines
//                  `update config:api/sessionTTL` (each one rewrites config.json) for BENCH_WS_S s.
// Settings: BENCH_S (default 5), BENCH_CONNS (64), BENCH_WRITE_CONNS (8), BENCH_WS_S (3),
// BENCH_WS_WINDOW (32 updates in flight), BENCH_LOADGEN (wrk|autocannon), BENCH_CEILING (1),
// BENCH_VERBOSE=1.
// Output: JSON lines on stdout ({"bench":"api","server","case","rps","p99_ms",...}); notes on
// stderr. Everything is bounded in time; children are killed by pid, temp dirs removed.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { emit, round } from "../lib/stats.js";
import { childrenCpuSeconds, cpuSeconds, machineCpu, memoryMB } from "../lib/proc.js";
import { runBench } from "../lib/run.js";

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const DURATION_S = num("BENCH_S", 5);
const WARMUP_S = 1;
const CONNS = num("BENCH_CONNS", 64);
const WRITE_CONNS = num("BENCH_WRITE_CONNS", 8);
const WS_S = num("BENCH_WS_S", 3);
const WS_WINDOW = num("BENCH_WS_WINDOW", 32);
const CEILING = env.BENCH_CEILING !== "0";
const START_TIMEOUT_MS = 20_000;
/** The whole run is killed after this, whatever it is doing. */
const OVERALL_TIMEOUT_MS = 180_000;
const PROFILE_BODY = JSON.stringify({ Default: "block", Rules: ["+ example.com", "- 10.0.0.0/8"] });
const TARGET_PING_RPS = 100_000;
const TARGET_AUTH_RATIO = 3;

type ServerName = "sluice" | "fastify" | "uws-bare";

interface Server {
  name: ServerName;
  proc: ChildProcess;
  pid: number;
  port: number;
  exited: boolean;
}

interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
  seconds: number;
  loadgenCpu: number;
  serverUsPerReq?: number;
}

interface Case {
  name: string;
  method: "GET" | "PUT";
  path: string;
  headers: Record<string, string>;
  body?: string;
  conns: number;
  /** Also run against the bare uWS server (ping only). */
  ceiling?: boolean;
}

function num(name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not "${v}"`);
  return n;
}

function note(msg: string): void {
  process.stderr.write(`bench:api: ${msg}\n`);
}

// ---- process bookkeeping: everything started here is tracked and killed by pid ----

const servers: Server[] = [];
const loadgens = new Set<ChildProcess>();
const tempDirs: string[] = [];
let cleanedUp = false;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function killPid(p: ChildProcess, signal: NodeJS.Signals): void {
  if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    // already gone
  }
}

async function cleanup(): Promise<void> {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const p of loadgens) killPid(p, "SIGKILL");
  for (const s of servers) killPid(s.proc, "SIGTERM");
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline && servers.some((s) => !s.exited)) await sleep(20);
  for (const s of servers) {
    if (!s.exited) {
      note(`${s.name} (pid ${s.pid}) did not stop on SIGTERM; SIGKILL`);
      killPid(s.proc, "SIGKILL");
    }
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `sluice-bench-api-${tag}-`));
  tempDirs.push(d);
  return d;
}


// ---- servers ----

async function startServer(name: ServerName, script: string, dataDir: string, extraEnv: Record<string, string> = {}): Promise<{ server: Server; hello: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [join(here, script), dataDir], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...env, ...extraEnv },
  });
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${script}`);
  const server: Server = { name, proc, pid: proc.pid, port: 0, exited: false };
  servers.push(server);
  proc.on("exit", (code, sig) => {
    server.exited = true;
    if (!cleanedUp) note(`${name} (pid ${server.pid}) exited early: ${sig ?? code}`);
  });
  const lines = createInterface({ input: proc.stdout! });
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not report ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    proc.once("exit", () => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready`));
    });
    lines.on("line", (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        process.stderr.write(`[${name}] ${line}\n`);
        return;
      }
      if (msg.ready === true) {
        clearTimeout(timer);
        resolve(msg);
      }
    });
  });
  server.port = Number(hello.port);
  return { server, hello };
}

async function call(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: Headers; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

// ---- load generators ----

function haveWrk(): boolean {
  if (env.BENCH_LOADGEN === "autocannon") return false;
  const r = spawnSync("wrk", ["--version"], { encoding: "utf8", timeout: 5000 });
  return !r.error;
}

function luaString(s: string): string {
  if (s.includes("]==]")) throw new Error("cannot quote this string for Lua");
  // Spaced so that an index like t[ [==[k]==] ] does not start a long string with "[[".
  return ` [==[${s}]==] `;
}

const LUA_DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

function wrkScript(dir: string, c: Case): string {
  const lines = [`wrk.method = ${luaString(c.method)}`];
  for (const [k, v] of Object.entries(c.headers)) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  if (c.body !== undefined) lines.push(`wrk.body = ${luaString(c.body)}`);
  const file = join(dir, `${c.name}.lua`);
  writeFileSync(file, lines.join("\n") + "\n" + LUA_DONE);
  return file;
}

async function runWrk(url: string, conns: number, seconds: number, script: string): Promise<LoadResult> {
  const args = ["-t1", `-c${conns}`, `-d${seconds}s`, "--timeout", "5s", "-s", script, url];
  const cpu0 = childrenCpuSeconds();
  const p = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
  loadgens.add(p);
  let out = "";
  let err = "";
  p.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const killer = setTimeout(() => killPid(p, "SIGKILL"), (seconds + 15) * 1000);
  const code = await new Promise<number | string>((resolve) => p.on("close", (c, s) => resolve(c ?? s ?? "?")));
  clearTimeout(killer);
  loadgens.delete(p);
  const cpu = childrenCpuSeconds() - cpu0;
  const line = out.split("\n").find((l) => l.startsWith("BENCHJSON "));
  if (code !== 0 || !line) throw new Error(`wrk ${args.join(" ")} failed (${code}): ${err.trim() || out.trim()}`);
  const j = JSON.parse(line.slice("BENCHJSON ".length)) as Record<string, number>;
  const secs = j.duration_us! / 1e6;
  const errors = j.connect! + j.read! + j.write! + j.status! + j.timeout!;
  return {
    rps: (j.requests! - j.status!) / secs,
    p50Ms: j.p50_us! / 1000,
    p99Ms: j.p99_us! / 1000,
    maxMs: j.max_us! / 1000,
    requests: j.requests!,
    errors,
    seconds: secs,
    loadgenCpu: cpu / secs,
  };
}

async function runAutocannon(url: string, c: Case, seconds: number): Promise<LoadResult> {
  const { default: autocannon } = await import("autocannon");
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = await new Promise<import("autocannon").Result>((resolve, reject) => {
    const inst = autocannon({ url, connections: c.conns, duration: seconds, method: c.method, headers: c.headers, body: c.body, timeout: 5 }, (err, res) => (err ? reject(err) : resolve(res)));
    const killer = setTimeout(() => (inst as unknown as { stop(): void }).stop(), (seconds + 15) * 1000);
    killer.unref();
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const u = process.cpuUsage(cpu0);
  const ok = r.requests.total - r.non2xx;
  return {
    rps: ok / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    requests: r.requests.total,
    errors: r.errors + r.non2xx,
    seconds: r.duration,
    loadgenCpu: (u.user + u.system) / 1e6 / wall,
  };
}

// ---- the WebSocket case ----

interface WsResult {
  sent: number;
  acked: number;
  errors: number;
  received: number;
  /** How many of them came as "new" rather than "upd". */
  receivedNew: number;
  seconds: number;
  firstError: string | null;
}

function openWs(port: number, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/database/v1`, { headers: { Authorization: `Bearer ${token}` }, handshakeTimeout: 5000 });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`WebSocket upgrade refused: ${res.statusCode}`)));
  });
}

/** op and reply type of a reply frame ("<op>|<type>|..."). */
function replyHead(data: Buffer): { op: string; type: string } {
  const a = data.indexOf(124);
  const b = a < 0 ? -1 : data.indexOf(124, a + 1);
  return { op: data.toString("latin1", 0, a < 0 ? data.length : a), type: a < 0 ? "" : data.toString("latin1", a + 1, b < 0 ? data.length : b) };
}

async function wsSubUpdates(port: number, admin: string, seconds: number): Promise<WsResult> {
  const sub = await openWs(port, admin);
  const writer = await openWs(port, admin);
  try {
    let received = 0;
    let receivedNew = 0;
    let lastRecv = 0;
    let ready: (() => void) | null = null;
    sub.on("message", (data: Buffer) => {
      const { op, type } = replyHead(data);
      if (op === "1" && (type === "upd" || type === "new")) {
        received++;
        if (type === "new") receivedNew++;
        lastRecv = performance.now();
      } else if (op === "2" && type === "ok") ready?.();
    });
    // sub sends nothing back; a get after it on the same socket proves it is registered.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no reply to the subscription's get")), 5000);
      ready = () => {
        clearTimeout(t);
        resolve();
      };
      sub.send("1|sub|query config:api/");
      sub.send("2|get|config:api/sessionTTL");
    });

    let sent = 0;
    let acked = 0;
    let errors = 0;
    let firstError: string | null = null;
    let lastAck = 0;
    const start = performance.now();
    const stopAt = start + seconds * 1000;
    let finish: (() => void) | null = null;
    const sendOne = () => {
      sent++;
      writer.send(`${sent + 10}|update|config:api/sessionTTL|J{"Value":${10 + (sent % 100_000)}}`);
    };
    writer.on("message", (data: Buffer) => {
      const { type } = replyHead(data);
      if (type === "success") acked++;
      else {
        errors++;
        firstError ??= data.toString("utf8").slice(0, 200);
      }
      lastAck = performance.now();
      if (lastAck < stopAt) sendOne();
      else if (acked + errors >= sent) finish?.();
    });
    const drained = new Promise<void>((resolve) => {
      finish = resolve;
      setTimeout(resolve, seconds * 1000 + 3000);
    });
    for (let i = 0; i < WS_WINDOW; i++) sendOne();
    await drained;
    // Let the last subscription messages arrive (they are sent before each success).
    await sleep(100);
    const elapsed = (Math.max(lastAck, lastRecv) - start) / 1000;
    return { sent, acked, errors, received, receivedNew, seconds: elapsed, firstError };
  } finally {
    sub.terminate();
    writer.terminate();
  }
}

// ---- main ----

async function main(): Promise<void> {
  const useWrk = haveWrk();
  note(`load generator: ${useWrk ? "wrk -t1 (separate process)" : `autocannon (in this process; ${env.BENCH_LOADGEN === "autocannon" ? "BENCH_LOADGEN=autocannon" : "wrk not found, apt-get install wrk"})`}; ${DURATION_S} s per case after ${WARMUP_S} s warm-up; ${CONNS} connections (${WRITE_CONNS} for profile-write)`);

  const sluiceDir = tempDir("sluice");
  const fastifyDir = tempDir("fastify");
  const luaDir = tempDir("lua");
  writeFileSync(join(sluiceDir, "config.json"), JSON.stringify({ api: { port: 0 } }) + "\n");

  const { server: sluice, hello } = await startServer("sluice", "sluice-server.js", sluiceDir);
  const uwsInfo = hello.uws as { native: boolean; detail: string };
  note(`api.deps.uws: ${uwsInfo.native ? "native" : "FALLBACK (pure JS)"}: ${uwsInfo.detail}`);
  emit({ bench: "api", server: "sluice", case: "uws", native: uwsInfo.native, detail: uwsInfo.detail });

  const admin = readFileSync(join(sluiceDir, "admin.token"), "utf8").trim();
  const made = await call(sluice.port, "POST", "/api/v1/auth/tokens", { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" }, JSON.stringify({ name: "bench", role: "user" }));
  if (made.status !== 201) throw new Error(`creating the user token failed: ${made.status} ${made.text}`);
  const userToken = (JSON.parse(made.text) as { token: string }).token;

  const { server: fastify } = await startServer("fastify", "fastify-server.js", fastifyDir, {
    BENCH_TOKENS: JSON.stringify([
      { secret: admin, name: "admin", role: "admin" },
      { secret: userToken, name: "bench", role: "user" },
    ]),
  });
  const bare = CEILING ? (await startServer("uws-bare", "uws-bare-server.js", "-")).server : null;
  note(`servers: sluice pid ${sluice.pid} port ${sluice.port}; fastify pid ${fastify.pid} port ${fastify.port}${bare ? `; uws-bare pid ${bare.pid} port ${bare.port}` : ""}`);

  const cases: Case[] = [
    { name: "ping", method: "GET", path: "/api/v1/ping", headers: {}, conns: CONNS, ceiling: true },
    { name: "auth-json", method: "GET", path: "/api/v1/auth/permissions", headers: { Authorization: `Bearer ${userToken}` }, conns: CONNS },
    {
      name: "profile-write",
      method: "PUT",
      path: "/api/v1/profiles/bench",
      headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
      body: PROFILE_BODY,
      conns: WRITE_CONNS,
    },
  ];

  // Both servers must answer each case alike before it is measured.
  const secHeaders = ["referrer-policy", "x-content-type-options", "x-frame-options", "x-xss-protection", "x-dns-prefetch-control", "cache-control", "content-security-policy", "content-type"];
  for (const c of cases) {
    const a = await call(sluice.port, c.method, c.path, c.headers, c.body);
    const b = await call(fastify.port, c.method, c.path, c.headers, c.body);
    if (a.status >= 300 || b.status >= 300) throw new Error(`${c.name}: sluice ${a.status} ${a.text.slice(0, 200)}; fastify ${b.status} ${b.text.slice(0, 200)}`);
    const diffs = secHeaders.filter((h) => a.headers.get(h) !== b.headers.get(h)).map((h) => `${h}: ${a.headers.get(h)} | ${b.headers.get(h)}`);
    if (c.name !== "profile-write" && a.text !== b.text) diffs.push(`body: ${a.text} | ${b.text}`);
    if (diffs.length > 0) note(`${c.name}: the servers' replies differ: ${diffs.join("; ")}`);
    else note(`${c.name}: same status class, security headers${c.name !== "profile-write" ? " and body" : ""} from both (${a.text.trim().slice(0, 90)})`);
  }
  note("profile-write: sluice validates, parses and compiles the ruleset and swaps it in before renaming the file; the Fastify twin only validates the body and writes the file (tmp + .bak copy + rename), so it does less work per request");

  const results = new Map<string, LoadResult>();
  for (const c of cases) {
    const script = useWrk ? wrkScript(luaDir, c) : "";
    const targets = c.ceiling && bare ? [bare, sluice, fastify] : [sluice, fastify];
    for (const s of targets) {
      const url = `http://127.0.0.1:${s.port}${c.path}`;
      const load = (secs: number) => (useWrk ? runWrk(url, c.conns, secs, script) : runAutocannon(url, c, secs));
      await load(WARMUP_S);
      const cpu0 = cpuSeconds(s.pid);
      const m0 = machineCpu();
      const r = await load(DURATION_S);
      const serverCpu = (cpuSeconds(s.pid) - cpu0) / r.seconds;
      // Whatever else ran meanwhile (this process, other tenants of the machine), in cores.
      const m1 = machineCpu();
      // Busy here includes interrupt time: on loopback the packets are processed there.
      const otherCpu = Math.max(0, (m1.busy + m1.irq - m0.busy - m0.irq) / r.seconds - serverCpu - r.loadgenCpu);
      const steal = (m1.steal - m0.steal) / r.seconds;
      results.set(`${s.name}/${c.name}`, { ...r, serverUsPerReq: (serverCpu * 1e6) / r.rps });
      emit({
        bench: "api",
        server: s.name,
        case: c.name,
        rps: round(r.rps, 0),
        p99_ms: round(r.p99Ms, 3),
        p50_ms: round(r.p50Ms, 3),
        conns: c.conns,
        errors: r.errors,
        server_cpu: round(serverCpu, 2),
        // Server CPU per good reply: steadier than req/s when other work shares the machine.
        server_us_per_req: round((serverCpu * 1e6) / r.rps, 1),
        loadgen_cpu: round(r.loadgenCpu, 2),
        other_cpu: round(otherCpu, 2),
        steal_cpu: round(steal, 2),
        loadgen: useWrk ? "wrk" : "autocannon",
      });
      note(`${s.name} ${c.name}: ${Math.round(r.rps)} req/s, p50 ${round(r.p50Ms, 3)} ms, p99 ${round(r.p99Ms, 3)} ms, max ${round(r.maxMs, 1)} ms, ${r.errors} errors; CPU: server ${Math.round(serverCpu * 100)}%, ${useWrk ? "wrk" : "autocannon"} ${Math.round(r.loadgenCpu * 100)}% of a core, everything else ${Math.round(otherCpu * 100)}%, hypervisor steal ${Math.round(steal * 100)}%`);
      if (otherCpu > 0.25) note(`${s.name} ${c.name}: other work used ${Math.round(otherCpu * 100)}% of a core meanwhile; this figure is depressed by it`);
      if (r.errors > 0) note(`${s.name} ${c.name}: ${r.errors} errors (non-2xx, timeouts, socket errors) -- the figure counts only good replies`);
      await sleep(200);
    }
  }

  const cpu0 = cpuSeconds(sluice.pid);
  const m0 = machineCpu();
  const self0 = process.cpuUsage();
  const ws = await wsSubUpdates(sluice.port, admin, WS_S);
  const wsCpu = (cpuSeconds(sluice.pid) - cpu0) / ws.seconds;
  const self = process.cpuUsage(self0);
  // The WebSocket clients run in this process.
  const wsClientCpu = (self.user + self.system) / 1e6 / ws.seconds;
  const m1 = machineCpu();
  const wsOther = Math.max(0, (m1.busy + m1.irq - m0.busy - m0.irq) / ws.seconds - wsCpu - wsClientCpu);
  emit({
    bench: "api",
    server: "sluice",
    case: "ws-sub-updates",
    msgs_per_s: round(ws.received / ws.seconds, 0),
    updates_per_s: round(ws.acked / ws.seconds, 0),
    updates_sent: ws.sent,
    updates_acked: ws.acked,
    update_errors: ws.errors,
    msgs_received: ws.received,
    window: WS_WINDOW,
    server_cpu: round(wsCpu, 2),
    loadgen_cpu: round(wsClientCpu, 2),
    other_cpu: round(wsOther, 2),
  });
  note(`ws-sub-updates: ${ws.acked} updates acknowledged (${ws.errors} errors) and ${ws.received} subscription messages received in ${round(ws.seconds, 2)} s, ${WS_WINDOW} updates in flight; each update rewrites config.json (tmp + rename); CPU: sluice ${Math.round(wsCpu * 100)}%, the ws clients (this process) ${Math.round(wsClientCpu * 100)}%, everything else ${Math.round(wsOther * 100)}%`);
  if (ws.receivedNew > 0) note(`ws-sub-updates: ${ws.receivedNew} of the ${ws.received} subscription messages were "new", not "upd" (config: records carry Created = Modified = 0, which the hub reads as a new record)`);
  if (ws.firstError) note(`ws-sub-updates: first error reply: ${ws.firstError}`);
  if (ws.received !== ws.acked) note(`ws-sub-updates: ${ws.acked} acks but ${ws.received} subscription messages`);

  for (const s of servers) {
    const m = memoryMB(s.pid);
    if (!m) continue;
    emit({ bench: "api", server: s.name, case: "rss", rss_mb: m.rss, peak_rss_mb: m.peak });
    note(`${s.name} memory after the run: RSS ${m.rss} MB, peak ${m.peak} MB`);
  }

  const ping = results.get("sluice/ping")!.rps;
  const authRatio = results.get("sluice/auth-json")!.rps / results.get("fastify/auth-json")!.rps;
  const pingRatio = ping / results.get("fastify/ping")!.rps;
  const writeRatio = results.get("sluice/profile-write")!.rps / results.get("fastify/profile-write")!.rps;
  const ceiling = results.get("uws-bare/ping")?.rps;
  const ofCeiling = ceiling ? `, ${Math.round((ping / ceiling) * 100)}% of the bare uWS server's ${Math.round(ceiling)} on this machine` : "";
  note(`target ping >= ${TARGET_PING_RPS} req/s: ${Math.round(ping)} (${ping >= TARGET_PING_RPS ? "met" : "MISSED"}); ${round(pingRatio, 2)}x Fastify${ofCeiling}`);
  const cpuRatio = (c: string) => round(results.get(`fastify/${c}`)!.serverUsPerReq! / results.get(`sluice/${c}`)!.serverUsPerReq!, 2);
  note(`target auth-json >= ${TARGET_AUTH_RATIO}x Fastify: ${round(authRatio, 2)}x (${authRatio >= TARGET_AUTH_RATIO ? "met" : "MISSED"})`);
  note(`server CPU per request, Fastify / sluice: ping ${cpuRatio("ping")}x, auth-json ${cpuRatio("auth-json")}x, profile-write ${cpuRatio("profile-write")}x`);
  note(`profile-write: sluice ${round(writeRatio, 2)}x Fastify (sluice compiles the ruleset on every write, the twin does not)`);
}

await runBench({ main, cleanup, cleaningUp: () => cleanedUp, timeoutMs: OVERALL_TIMEOUT_MS, note });
