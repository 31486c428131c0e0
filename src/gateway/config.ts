// Gateway settings: data/config.json, created with the defaults on first run. Every field is
// checked; an unknown or malformed one is an error that names it, never silently ignored.

import { availableParallelism } from "node:os";
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { isIP } from "node:net";
import { fileURLToPath } from "node:url";
import { SluiceError } from "../core/errors.js";
import { parseKeyEntry } from "../core/apikeys.js";
import type { Marks, Mode } from "./firewall.js";

export interface ApiConfig {
  host: string;
  port: number;
  /** Full access for loopback clients, no authentication (development only). */
  devMode: boolean;
  /** Portmaster-style API keys: <key>?read=<perm>&write=<perm>[&expires=<RFC3339>]. */
  keys: string[];
  /** A dashboard session ends after this long without a request. */
  sessionTtlS: number;
  /** The most app tokens one owner may hold. */
  tokensPerOwner: number;
  maxBodyKB: number;
  /** After this many failed authentications within the window, a client gets 429. */
  authFailLimit: number;
  authFailWindowS: number;
}

export type DnsBlockingMode = "NULL" | "NXDOMAIN" | "NODATA" | "IP";

export interface DnsConfig {
  enabled: boolean;
  /** Addresses to answer on; empty: every address of the LAN-side interfaces (and loopback). */
  listen: string[];
  port: number;
  /** 1.1.1.1, udp://.., tcp://.., tls://ip[:port]#name, https://host/dns-query; empty: /etc/resolv.conf's. */
  upstreams: string[];
  upstreamTimeoutMs: number;
  cacheSize: number;
  minTtl: number;
  maxTtl: number;
  negativeMaxTtl: number;
  /** Names without a dot get NXDOMAIN here instead of going upstream. */
  domainNeeded: boolean;
  /** Reverse lookups of private ranges get NXDOMAIN here instead of going upstream. */
  bogusPriv: boolean;
  blocking: { mode: DnsBlockingMode; ipv4: string; ipv6: string; ttl: number };
  /** Re-download subscribed lists this often (hours); 0: only on demand. */
  listRefreshHours: number;
  /** Rogue DNS from LAN devices is redirected here; DoT (853) and known DoH servers are refused. */
  interception: { redirect: boolean; blockDoT: boolean; blockDoH: boolean };
  queryLog: { enabled: boolean; memory: number; retentionDays: number };
}

export interface GatewayConfig {
  /** NFQUEUE numbers first..first+count-1, one worker each; count defaults to the cores. */
  queues: { first: number; count: number; copyRange: number; maxLen: number; rcvbufMB: number; batch: number };
  marks: Marks;
  /** Undecided packets (no worker bound) pass (false) or are dropped (true). */
  failClosed: boolean;
  /** Decided connections stay in the kernel (true); false sends every packet through sluice. */
  fastTrack: boolean;
  /** gateway: routed traffic (FORWARD); host: this machine's own (INPUT/OUTPUT); both. */
  mode: Mode;
  /** TCP ports host mode never filters, besides the health port (SSH by default). */
  exemptPorts: number[];
  ipv6: boolean;
  /** Interfaces on the WAN side; empty: those that carry a default route. */
  wanInterfaces: string[];
  /** The ruleset file, relative to the data directory. */
  rulesFile: string;
  /** The API (REST, database WebSocket, /health). */
  api: ApiConfig;
  /** Connection tracking in the workers: per queue, flowBuckets x 8 flows and a ring of events. */
  tracking: { enabled: boolean; flowBuckets: number; ringEvents: number; waitForName: boolean };
  /** Connection history in LMDB (data/history): retention by age and by count. */
  history: { enabled: boolean; retentionDays: number; maxRecords: number; statsIntervalS: number };
  /** The LAN's DNS server: resolver, cache, blocking, query log. */
  dns: DnsConfig;
  /** A queue whose worker shows no sign of life for this long is restarted. */
  watchdogMs: number;
}

const DEFAULTS: GatewayConfig = {
  queues: { first: 0, count: availableParallelism(), copyRange: 1600, maxLen: 8192, rcvbufMB: 8, batch: 128 },
  marks: { mask: 0x0f000000, accept: 0x01000000, block: 0x02000000, drop: 0x03000000, once: 0x04000000 },
  failClosed: false,
  fastTrack: true,
  mode: "gateway",
  exemptPorts: [22],
  ipv6: true,
  wanInterfaces: [],
  rulesFile: "sluice.rules",
  tracking: { enabled: true, flowBuckets: 4096, ringEvents: 8192, waitForName: true },
  history: { enabled: true, retentionDays: 30, maxRecords: 10_000_000, statsIntervalS: 300 },
  api: {
    host: "127.0.0.1",
    port: 817,
    devMode: false,
    keys: [],
    sessionTtlS: 900,
    tokensPerOwner: 20,
    maxBodyKB: 1024,
    authFailLimit: 10,
    authFailWindowS: 60,
  },
  dns: {
    enabled: true,
    listen: [],
    port: 53,
    upstreams: [],
    upstreamTimeoutMs: 2000,
    cacheSize: 100_000,
    minTtl: 0,
    maxTtl: 86_400,
    negativeMaxTtl: 3600,
    domainNeeded: true,
    bogusPriv: true,
    blocking: { mode: "NULL", ipv4: "", ipv6: "", ttl: 2 },
    listRefreshHours: 24,
    interception: { redirect: false, blockDoT: false, blockDoH: false },
    queryLog: { enabled: true, memory: 500_000, retentionDays: 7 },
  },
  watchdogMs: 3000,
};

const STARTER_RULES = `# sluice rules: one per line, first match wins (see deploy/sluice.rules for a full example).
#   + allow / - block, then example.com | *.example.com | .example.com | IP | CIDR | *,
#   then optionally TCP/443, UDP/53, */8000-8080 ...
# Edit this file and send SIGHUP (systemctl reload sluice) to apply it without a restart.
+ *
`;

function fail(field: string, why: string): never {
  throw new SluiceError("CONFIG_INVALID", `config: ${field}: ${why}`, { field });
}

function int(v: unknown, field: string, min: number, max: number): number {
  const n = typeof v === "string" && /^0x[0-9a-f]+$/i.test(v) ? parseInt(v, 16) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) fail(field, `must be an integer ${min}..${max}`);
  return n;
}

function merge(base: Record<string, unknown>, over: unknown, path: string): Record<string, unknown> {
  if (over === undefined) return base;
  if (typeof over !== "object" || over === null || Array.isArray(over)) fail(path || "config", "must be an object");
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (!(k in base)) fail(`${path}${path ? "." : ""}${k}`, "unknown setting");
    const b = base[k];
    out[k] = b && typeof b === "object" && !Array.isArray(b) ? merge(b as Record<string, unknown>, v, `${path}${path ? "." : ""}${k}`) : v;
  }
  return out;
}

export function validate(raw: unknown): GatewayConfig {
  const c = merge(structuredClone(DEFAULTS) as unknown as Record<string, unknown>, migrate(raw), "") as unknown as GatewayConfig;
  const q = c.queues;
  q.first = int(q.first, "queues.first", 0, 65535);
  q.count = int(q.count, "queues.count", 1, 64);
  if (q.first + q.count > 65536) fail("queues", "queue numbers must stay below 65536");
  q.copyRange = int(q.copyRange, "queues.copyRange", 128, 65535);
  q.maxLen = int(q.maxLen, "queues.maxLen", 16, 1 << 20);
  q.rcvbufMB = int(q.rcvbufMB, "queues.rcvbufMB", 1, 1024);
  q.batch = int(q.batch, "queues.batch", 1, 1024);
  const m = c.marks;
  m.mask = int(m.mask, "marks.mask", 1, 0xffffffff);
  for (const k of ["accept", "block", "drop", "once"] as const) {
    m[k] = int(m[k], `marks.${k}`, 1, 0xffffffff);
    if ((m[k] & ~m.mask) !== 0) fail(`marks.${k}`, "must lie inside marks.mask");
  }
  if (new Set([m.accept, m.block, m.drop, m.once]).size !== 4) fail("marks", "accept, block, drop and once must differ");
  if (typeof c.failClosed !== "boolean") fail("failClosed", "must be true or false");
  if (typeof c.ipv6 !== "boolean") fail("ipv6", "must be true or false");
  if (typeof c.fastTrack !== "boolean") fail("fastTrack", "must be true or false");
  if (c.mode !== "gateway" && c.mode !== "host" && c.mode !== "both") fail("mode", 'must be "gateway", "host" or "both"');
  if (!Array.isArray(c.exemptPorts)) fail("exemptPorts", "must be a list of TCP ports");
  c.exemptPorts = c.exemptPorts.map((p, i) => int(p, `exemptPorts[${i}]`, 1, 65535));
  if (!Array.isArray(c.wanInterfaces) || !c.wanInterfaces.every((s) => typeof s === "string" && /^[\w.@-]{1,15}$/.test(s))) {
    fail("wanInterfaces", "must be a list of interface names");
  }
  if (typeof c.rulesFile !== "string" || c.rulesFile.length === 0) fail("rulesFile", "must be a file name");
  const pow2 = (v: number) => v > 0 && (v & (v - 1)) === 0;
  if (typeof c.tracking.enabled !== "boolean") fail("tracking.enabled", "must be true or false");
  if (typeof c.tracking.waitForName !== "boolean") fail("tracking.waitForName", "must be true or false");
  c.tracking.flowBuckets = int(c.tracking.flowBuckets, "tracking.flowBuckets", 16, 1 << 20);
  if (!pow2(c.tracking.flowBuckets)) fail("tracking.flowBuckets", "must be a power of two");
  c.tracking.ringEvents = int(c.tracking.ringEvents, "tracking.ringEvents", 64, 1 << 20);
  if (!pow2(c.tracking.ringEvents)) fail("tracking.ringEvents", "must be a power of two");
  if (typeof c.history.enabled !== "boolean") fail("history.enabled", "must be true or false");
  c.history.retentionDays = int(c.history.retentionDays, "history.retentionDays", 1, 3650);
  c.history.maxRecords = int(c.history.maxRecords, "history.maxRecords", 1000, 1_000_000_000);
  c.history.statsIntervalS = int(c.history.statsIntervalS, "history.statsIntervalS", 10, 86400);
  const a = c.api;
  if (typeof a.host !== "string" || !isIP(a.host)) fail("api.host", "must be an IP address");
  a.port = int(a.port, "api.port", 0, 65535);
  if (typeof a.devMode !== "boolean") fail("api.devMode", "must be true or false");
  if (!Array.isArray(a.keys) || !a.keys.every((k) => typeof k === "string")) fail("api.keys", "must be a list of key entries");
  a.keys.forEach((k, i) => {
    const e = parseKeyEntry(k);
    if (typeof e === "string") fail(`api.keys[${i}]`, e);
  });
  a.sessionTtlS = int(a.sessionTtlS, "api.sessionTtlS", 10, 30 * 86400);
  a.tokensPerOwner = int(a.tokensPerOwner, "api.tokensPerOwner", 1, 1000);
  a.maxBodyKB = int(a.maxBodyKB, "api.maxBodyKB", 1, 1 << 20);
  a.authFailLimit = int(a.authFailLimit, "api.authFailLimit", 1, 1_000_000);
  a.authFailWindowS = int(a.authFailWindowS, "api.authFailWindowS", 1, 86400);
  validateDns(c.dns);
  c.watchdogMs = int(c.watchdogMs, "watchdogMs", 100, 600000);
  return c;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== "boolean") fail(field, "must be true or false");
  return v;
}

const UPSTREAM_FORM = /^(?:(?:udp|tcp|tls):\/\/)?(?:\[[0-9a-f:.]+\]|[0-9.]+|[0-9a-f:]+)(?::\d{1,5})?(?:#[\w.-]+)?$|^https:\/\/[^\s]+$/i;

function validateDns(d: DnsConfig): void {
  bool(d.enabled, "dns.enabled");
  if (!Array.isArray(d.listen) || !d.listen.every((a) => typeof a === "string" && isIP(a))) fail("dns.listen", "must be a list of IP addresses");
  d.port = int(d.port, "dns.port", 0, 65535);
  if (!Array.isArray(d.upstreams)) fail("dns.upstreams", "must be a list of upstream resolvers");
  d.upstreams.forEach((u, i) => {
    if (typeof u !== "string" || !UPSTREAM_FORM.test(u)) fail(`dns.upstreams[${i}]`, "must be an IP[:port], udp://, tcp://, tls://IP[:port]#name or https:// URL");
  });
  d.upstreamTimeoutMs = int(d.upstreamTimeoutMs, "dns.upstreamTimeoutMs", 50, 60_000);
  d.cacheSize = int(d.cacheSize, "dns.cacheSize", 0, 10_000_000);
  d.minTtl = int(d.minTtl, "dns.minTtl", 0, 86_400);
  d.maxTtl = int(d.maxTtl, "dns.maxTtl", 0, 7 * 86_400);
  if (d.minTtl > d.maxTtl) fail("dns.minTtl", "must not exceed dns.maxTtl");
  d.negativeMaxTtl = int(d.negativeMaxTtl, "dns.negativeMaxTtl", 0, 86_400);
  bool(d.domainNeeded, "dns.domainNeeded");
  bool(d.bogusPriv, "dns.bogusPriv");
  const b = d.blocking;
  if (!["NULL", "NXDOMAIN", "NODATA", "IP"].includes(b.mode)) fail("dns.blocking.mode", 'must be "NULL", "NXDOMAIN", "NODATA" or "IP"');
  if (typeof b.ipv4 !== "string" || (b.ipv4 !== "" && isIP(b.ipv4) !== 4)) fail("dns.blocking.ipv4", "must be an IPv4 address or empty");
  if (typeof b.ipv6 !== "string" || (b.ipv6 !== "" && isIP(b.ipv6) !== 6)) fail("dns.blocking.ipv6", "must be an IPv6 address or empty");
  b.ttl = int(b.ttl, "dns.blocking.ttl", 0, 86_400);
  d.listRefreshHours = int(d.listRefreshHours, "dns.listRefreshHours", 0, 24 * 365);
  bool(d.interception.redirect, "dns.interception.redirect");
  bool(d.interception.blockDoT, "dns.interception.blockDoT");
  bool(d.interception.blockDoH, "dns.interception.blockDoH");
  bool(d.queryLog.enabled, "dns.queryLog.enabled");
  d.queryLog.memory = int(d.queryLog.memory, "dns.queryLog.memory", 1000, 50_000_000);
  d.queryLog.retentionDays = int(d.queryLog.retentionDays, "dns.queryLog.retentionDays", 1, 3650);
}

/** Files written before the API existed name its address `health`. */
function migrate(raw: unknown): unknown {
  if (!raw || typeof raw !== "object" || Array.isArray(raw) || !("health" in raw)) return raw;
  const { health, ...rest } = raw as Record<string, unknown>;
  const api = (rest.api ?? {}) as Record<string, unknown>;
  return { ...rest, api: { ...(health as object), ...api } };
}

/** The config file's own content (what the user set), for option records. */
export function readRawConfig(path: string): Record<string, unknown> {
  return migrate(JSON.parse(readFileSync(path, "utf8"))) as Record<string, unknown>;
}

export function defaults(): GatewayConfig {
  return structuredClone(DEFAULTS);
}

/** Reads dataDir/config.json, creating it (and a starter ruleset) on first run. */
export function loadConfig(dataDir: string): { config: GatewayConfig; path: string; rulesPath: string; dataDir: string } {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "config.json");
  if (!existsSync(path)) {
    const example = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "deploy", "config.example.json");
    if (existsSync(example)) copyFileSync(example, path);
    else writeFileSync(path, JSON.stringify({}, null, 2) + "\n");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new SluiceError("CONFIG_INVALID", `config: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const config = validate(raw);
  const rulesPath = resolve(dir, config.rulesFile);
  if (!existsSync(rulesPath)) writeFileSync(rulesPath, STARTER_RULES);
  return { config, path, rulesPath, dataDir: dir };
}
