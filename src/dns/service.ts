// The DNS service as the rest of sluice sees it: starts the resolver on the LAN addresses with
// its upstreams, filter and query log; keeps the blocking state (global and per device, with
// timers, surviving restarts); maps clients to filter groups by the ruleset's profiles; feeds
// answers into the packet path's IP -> domain table; refreshes the lists on a schedule.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { isIP } from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { DnsConfig } from "../gateway/config.js";
import type { Ruleset, Source } from "../rules/types.js";
import type { HistoryStore } from "../store/history.js";
import { addrToBytes, parseIPv4, parseIPv4Number, parseIPv6, bytesToHex } from "../core/ip.js";
import { Upstreams, type UpstreamInfo } from "./upstream.js";
import { DnsFilter } from "./filter.js";
import { QueryLog } from "./querylog.js";
import { Resolver, type Learner } from "./resolver.js";
import { DnsServer } from "./server.js";
import { Clients, type ClientPolicy } from "./clients.js";
import { DEFAULT_GROUP, type BlockingState, type CachedAnswer, type DnsControlApi } from "./types.js";
import { systemNameservers } from "../system/nameservers.js";
import { DOH_NAMES } from "./bypass.js";

export interface DnsLogger {
  info(m: string): void;
  warn(m: string): void;
}

export interface DnsStartOptions {
  config: DnsConfig;
  /** data/dns is made inside it. */
  dataDir: string;
  log: DnsLogger;
  /** The live ruleset (its profiles are the filter groups). */
  ruleset: () => Ruleset;
  /** Where answers teach the packet path which name an address has; null without a packet path. */
  learn: Learner | null;
  /** Persisted query log goes here (null: memory only). */
  history: HistoryStore | null;
  /** Interfaces on the WAN side (never listened on, their clients refused). */
  wanInterfaces: string[];
}

interface Toggle {
  enabled: boolean;
  /** ms since the epoch when `enabled` flips, or null. */
  flipAt: number | null;
}

interface SavedState {
  blocking: Toggle;
  groups: Record<string, number>;
}

/**
 * While a profile is bound to a MAC address, the neighbour tables (IPv4 and IPv6) are read this
 * often and clients whose MAC changed get their group again: a device that joins, or an address
 * DHCP hands to another device, is filtered by its own profile within this time.
 */
const NEIGH_REFRESH_MS = 10_000;
const ARP_TABLE = "/proc/net/arp";
const HOUR_MS = 3_600_000;
const run = promisify(execFile);
/** How often LAN addresses are looked for again (listen addresses left to sluice). */
const ADDRESS_CHECK_MS = 30_000;
/** The cache's byte budget per allowed entry (typical replies are 50-300 bytes; big ones are rarer). */
const CACHE_BYTES_PER_ENTRY = 640;

export class DnsService implements DnsControlApi {
  private readonly clients: Clients;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly devices = new Map<string, Toggle>();
  private global: Toggle;
  private groupIds: Record<string, number>;
  private refreshTimer: NodeJS.Timeout | null = null;
  private addressTimer: NodeJS.Timeout | null = null;
  private readonly unbindable = new Set<string>();
  private neigh = readArp();
  private neighTimer: NodeJS.Timeout | null = null;
  private ruleset: Ruleset;
  private readonly statePath: string;
  readonly resolver: Resolver;
  readonly startedAt = Date.now();
  listening: string[] = [];

  private constructor(
    readonly config: DnsConfig,
    readonly filter: DnsFilter,
    readonly log: QueryLog,
    readonly upstreams: Upstreams,
    private readonly opts: DnsStartOptions,
    private readonly allowedNets: Net[],
  ) {
    const dir = join(opts.dataDir, "dns");
    this.statePath = join(dir, "state.json");
    const saved = readState(this.statePath);
    this.global = saved.blocking;
    this.groupIds = saved.groups;
    this.ruleset = opts.ruleset();
    const policy: ClientPolicy = {
      groupOf: (ip) => this.groupOf(ip),
      filteringFor: (ip) => this.blocking(ip).blocking === "enabled",
      allowed: (ip) => this.allowedNets.length === 0 || this.allowedNets.some((n) => inNet(n, ip)),
    };
    this.clients = new Clients(policy);
    const c = config;
    this.resolver = new Resolver(
      {
        cacheSize: c.cacheSize,
        cacheBytes: CACHE_BYTES_PER_ENTRY * c.cacheSize,
        minTtl: c.minTtl,
        maxTtl: c.maxTtl,
        negativeMaxTtl: c.negativeMaxTtl,
        blockingMode: c.blocking.mode,
        blockIPv4: c.blocking.ipv4 ? parseIPv4(c.blocking.ipv4) : null,
        blockIPv6: c.blocking.ipv6 ? parseIPv6(c.blocking.ipv6) : null,
        blockTtl: c.blocking.ttl,
        domainNeeded: c.domainNeeded,
        bogusPriv: c.bogusPriv,
        maxPending: 10_000,
        // Bypass prevention answers NXDOMAIN for DoH services, except the ones we forward to
        // ourselves (their names may be looked up through us).
        localNxdomain: new Set(c.interception.blockDoH ? DOH_NAMES.filter((n) => !upstreams.status().some((u) => u.host === n)) : []),
      },
      upstreams,
      filter,
      c.queryLog.enabled ? log : null,
      opts.learn,
    );
    this.armGlobalTimer();
    this.watchNeighbours();
  }

  /** Opens the filter and query log, binds the sockets. Throws if no address could be bound. */
  static async start(opts: DnsStartOptions): Promise<DnsService> {
    const c = opts.config;
    const dir = join(opts.dataDir, "dns");
    mkdirSync(dir, { recursive: true });
    const wan = new Set(opts.wanInterfaces);
    const all = await interfaceAddresses();
    const lan = lanAddresses(all, wan);
    const listen = c.listen.length > 0 ? c.listen : [...lan.addresses, "127.0.0.1", "::1"];
    let specs = c.upstreams;
    if (specs.length === 0) {
      // The system's resolvers, minus ourselves (forwarding to our own address would loop).
      const own = new Set(listen);
      specs = (await systemNameservers()).map((n) => n.IP).filter((ip) => !own.has(ip));
      if (specs.length === 0) opts.log.warn("dns: no upstream resolvers configured and none in /etc/resolv.conf: every forwarded query will fail");
    }
    const upstreams = new Upstreams(specs, { timeoutMs: c.upstreamTimeoutMs });
    const filter = DnsFilter.open(dir, { log: opts.log });
    const log = new QueryLog({ capacity: c.queryLog.memory, store: c.queryLog.enabled ? opts.history : null });
    const svc = new DnsService(c, filter, log, upstreams, opts, [...lan.nets, ...netsOf(all, listen), ...LOOPBACK]);
    try {
      await svc.bind(listen, c.port);
    } catch (err) {
      upstreams.close();
      throw err;
    }
    if (c.listRefreshHours > 0) {
      svc.refreshTimer = setInterval(() => void svc.updateLists("scheduled"), c.listRefreshHours * HOUR_MS);
      svc.refreshTimer.unref();
    }
    if (c.listen.length === 0) {
      // LAN addresses that appear later (an interface configured after sluice started) are
      // picked up: the network's DNS server must not stay on loopback only after a slow boot.
      svc.addressTimer = setInterval(() => void svc.bindNewLanAddresses(wan), ADDRESS_CHECK_MS);
      svc.addressTimer.unref();
    }
    return svc;
  }

  private async bindNewLanAddresses(wan: Set<string>): Promise<void> {
    const lan = lanAddresses(await interfaceAddresses(), wan);
    const fresh = lan.addresses.filter((a) => !this.listening.includes(a) && !this.unbindable.has(a));
    if (fresh.length === 0 || !this.running) return;
    for (const n of lan.nets) if (!this.allowedNets.some((m) => m.v === n.v && m.prefix === n.prefix && prefixEqual(m.bytes, n.bytes, n.prefix))) this.allowedNets.push(n);
    this.clients.refresh();
    for (const a of fresh) {
      const s = new DnsServer(this.resolver, this.clients);
      try {
        await s.start([a], this.port);
        this.servers.push(s);
        this.listening.push(a);
        this.opts.log.info(`dns: now also answering on ${a.includes(":") ? `[${a}]` : a}:${this.port}`);
      } catch (err) {
        this.unbindable.add(a); // said once, not every ADDRESS_CHECK_MS
        this.opts.log.warn(`dns: cannot listen on new address ${a} port ${this.port}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** Binds each address on its own: one that cannot be bound (in use, gone) is reported and skipped. */
  private async bind(addresses: string[], port: number): Promise<void> {
    let p = port;
    const bound: string[] = [];
    const servers: DnsServer[] = [];
    for (const a of addresses) {
      const s = new DnsServer(this.resolver, this.clients);
      try {
        await s.start([a], p);
        p = s.port;
        bound.push(a);
        servers.push(s);
      } catch (err) {
        this.opts.log.warn(`dns: cannot listen on ${a} port ${p}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (servers.length === 0) throw new Error(`dns: could not listen on any of ${addresses.join(", ")} port ${port}`);
    this.servers = servers;
    this.listening = bound;
    this.port = p;
    this.opts.log.info(`dns: answering on ${bound.map((a) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`)).join(", ")}`);
  }

  private servers: DnsServer[] = [];
  port = 0;

  get running(): boolean {
    return this.servers.length > 0;
  }

  /** UDP/TCP counters summed over the sockets. */
  serverCounters(): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const s of this.servers) for (const [k, v] of Object.entries(s.counters)) sum[k] = (sum[k] ?? 0) + v;
    return sum;
  }

  resolvers(): UpstreamInfo[] {
    return this.upstreams.status();
  }


  cached(name: string, qtype: number): CachedAnswer | null {
    const e = this.resolver.cache.lookup(name, qtype);
    if (e === null || e.reply === null || e.expiresAt <= Date.now()) return null;
    return { reply: e.reply, storedAt: e.storedAt, expiresAt: e.expiresAt, upstream: e.upstream };
  }

  // ---- blocking state ----

  blocking(client?: string): BlockingState {
    if (!this.running) return { blocking: "failure", timer: null };
    const t = (client !== undefined ? this.devices.get(client) : undefined) ?? this.global;
    return { blocking: t.enabled ? "enabled" : "disabled", timer: t.flipAt === null ? null : Math.max(0, (t.flipAt - Date.now()) / 1000) };
  }

  setBlocking(enabled: boolean, timerS: number | null, client?: string): BlockingState {
    const flipAt = timerS !== null && timerS > 0 ? Date.now() + timerS * 1000 : null;
    if (client === undefined) {
      this.global = { enabled, flipAt };
      this.armGlobalTimer();
      this.save();
    } else {
      if (isIP(client) === 0) throw new Error(`"${client}" is not an IP address`);
      // Back to what everyone gets, for good: the device simply follows the global state again.
      if (flipAt === null && enabled === this.global.enabled) this.devices.delete(client);
      else this.devices.set(client, { enabled, flipAt });
      this.armDeviceTimer(client);
    }
    this.clients.refresh();
    return this.blocking(client);
  }

  private armGlobalTimer(): void {
    this.arm("", this.global, () => {
      this.global = { enabled: !this.global.enabled, flipAt: null };
      this.save();
      this.clients.refresh();
    });
  }

  private armDeviceTimer(ip: string): void {
    const t = this.devices.get(ip);
    if (t === undefined) {
      this.arm(ip, { enabled: true, flipAt: null }, () => undefined);
      return;
    }
    this.arm(ip, t, () => {
      this.devices.delete(ip); // the pause is over: the device follows the global state
      this.clients.refresh();
    });
  }

  private arm(key: string, t: Toggle, onFlip: () => void): void {
    const old = this.timers.get(key);
    if (old !== undefined) clearTimeout(old);
    this.timers.delete(key);
    if (t.flipAt === null) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      onFlip();
    }, Math.max(0, t.flipAt - Date.now()));
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Settings that apply without a restart (blocking mode and TTL). Cached decisions stay valid: the reply is built per query. */
  applyLive(c: DnsConfig): void {
    this.resolver.opts.blockingMode = c.blocking.mode;
    this.resolver.opts.blockTtl = c.blocking.ttl;
  }

  flushCache(): number {
    return this.resolver.cache.clear();
  }

  /** Downloads the subscribed lists and swaps in the result (also run on the schedule). */
  async updateLists(why: string): Promise<void> {
    try {
      const r = await this.filter.update();
      this.opts.log.info(`dns: lists updated (${why}): ${r.domains} names from ${r.lists.length} list(s), built in ${Math.round(r.buildMs)} ms`);
    } catch (err) {
      this.opts.log.warn(`dns: list update failed (${why}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // ---- groups ----

  /** The ruleset changed: profiles (groups) and their sources may have. */
  rulesetChanged(r: Ruleset): void {
    this.ruleset = r;
    this.watchNeighbours();
    this.clients.refresh();
  }

  /** Stable numbers for the ruleset's profiles (Pi-hole group ids): the first profile is group 0. */
  groupIdOf(profile: string): number {
    if (profile === this.ruleset.profiles[0]?.name) return DEFAULT_GROUP;
    let id = this.groupIds[profile];
    if (id === undefined) {
      id = Math.max(0, ...Object.values(this.groupIds)) + 1;
      this.groupIds[profile] = id;
      this.save();
    }
    return id;
  }

  /** Groups as Pi-hole lists them. */
  groups(): { id: number; name: string; enabled: boolean; comment: string | null }[] {
    return this.ruleset.profiles.map((p) => ({ id: this.groupIdOf(p.name), name: p.name, enabled: true, comment: null }));
  }

  private groupOf(ip: string): number {
    const profiles = this.ruleset.profiles;
    let best = -1;
    let bestLen = -1;
    let mac: string | null | undefined;
    for (let i = 1; i < profiles.length; i++) {
      for (const s of profiles[i]!.sources) {
        if (s.kind === "mac") {
          if (mac === undefined) mac = this.macOf(ip);
          if (mac !== null && mac === bytesToHex(s.mac)) return this.groupIdOf(profiles[i]!.name); // a MAC binding beats any prefix
        } else if (s.prefix > bestLen && sourceCovers(s, ip)) {
          best = i;
          bestLen = s.prefix;
        }
      }
    }
    return best < 0 ? DEFAULT_GROUP : this.groupIdOf(profiles[best]!.name);
  }

  private macOf(ip: string): string | null {
    return this.neigh.get(ip) ?? null;
  }

  /** Keeps the neighbour tables fresh while some profile is bound to a MAC address. */
  private watchNeighbours(): void {
    const hasMac = this.ruleset.profiles.some((p) => p.sources.some((src) => src.kind === "mac"));
    if (!hasMac) {
      if (this.neighTimer !== null) clearInterval(this.neighTimer);
      this.neighTimer = null;
      return;
    }
    if (this.neighTimer !== null) return;
    this.neighTimer = setInterval(() => {
      void readNeighbours().then((m) => {
        const changed = m.size !== this.neigh.size || [...m].some(([ip, mac]) => this.neigh.get(ip) !== mac);
        this.neigh = m;
        if (changed) this.clients.refresh();
      });
    }, NEIGH_REFRESH_MS);
    this.neighTimer.unref();
  }


  private save(): void {
    const state: SavedState = { blocking: this.global, groups: this.groupIds };
    const tmp = `${this.statePath}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n");
    renameSync(tmp, this.statePath);
  }

  async stop(): Promise<void> {
    for (const s of this.servers) s.stop();
    this.servers = [];
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    if (this.refreshTimer !== null) clearInterval(this.refreshTimer);
    if (this.addressTimer !== null) clearInterval(this.addressTimer);
    if (this.neighTimer !== null) clearInterval(this.neighTimer);
    this.upstreams.close();
    try {
      await this.log.close();
    } catch (err) {
      // The resolver is stopped either way; what was not flushed is lost, and that is said.
      this.opts.log.warn(`dns: the query log could not be flushed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function readState(path: string): SavedState {
  const fallback: SavedState = { blocking: { enabled: true, flipAt: null }, groups: {} };
  if (!existsSync(path)) return fallback;
  try {
    const s = JSON.parse(readFileSync(path, "utf8")) as SavedState;
    const b = s.blocking;
    if (typeof b?.enabled !== "boolean") return fallback;
    // A timer that ran out while sluice was down has flipped by now.
    const blocking = b.flipAt !== null && b.flipAt <= Date.now() ? { enabled: !b.enabled, flipAt: null } : { enabled: b.enabled, flipAt: b.flipAt ?? null };
    return { blocking, groups: typeof s.groups === "object" && s.groups !== null ? s.groups : {} };
  } catch {
    return fallback;
  }
}

/** A subnet as family + network bytes + prefix length. */
interface Net {
  v: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
}

const LOOPBACK: Net[] = [
  { v: 4, bytes: new Uint8Array([127, 0, 0, 0]), prefix: 8 },
  { v: 6, bytes: parseIPv6("::1")!, prefix: 128 },
];

function ipBytes(ip: string): { v: 4 | 6; bytes: Uint8Array } | null {
  const v = isIP(ip);
  if (v === 4) return { v: 4, bytes: parseIPv4(ip)! };
  if (v === 6) {
    const b = parseIPv6(ip);
    if (b === null) return null;
    // An IPv4-mapped address is that IPv4 address.
    if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return { v: 4, bytes: b.slice(12) };
    return { v: 6, bytes: b };
  }
  return null;
}

function inNet(n: Net, ip: string): boolean {
  const a = ipBytes(ip);
  if (a === null || a.v !== n.v) return false;
  return prefixEqual(a.bytes, n.bytes, n.prefix);
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >>> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

function sourceCovers(s: Exclude<Source, { kind: "mac" }>, ip: string): boolean {
  if (s.version === 4) {
    if (isIP(ip) !== 4) return false;
    const a = parseIPv4Number(ip);
    const mask = s.prefix === 0 ? 0 : (0xffffffff << (32 - s.prefix)) >>> 0;
    return ((a & mask) >>> 0) === (((s.addr as number) & mask) >>> 0);
  }
  const b = isIP(ip) === 6 ? parseIPv6(ip) : null;
  if (b === null) return false;
  return prefixEqual(b, addrToBytes(s.addr), s.prefix);
}

interface IfAddr {
  ifname: string;
  address: string;
  prefix: number;
  /** Loopback or link-local: not a LAN address to answer on. */
  local: boolean;
}

/**
 * Every address of every interface, from `ip -j addr` (iproute2): unlike os.networkInterfaces(),
 * it also lists interfaces without carrier yet (a LAN port whose cable or peer comes up a moment
 * after sluice), whose addresses can be bound all the same.
 */
async function interfaceAddresses(): Promise<IfAddr[]> {
  try {
    const { stdout } = await run("ip", ["-j", "addr", "show"], { timeout: 5000 });
    const links = JSON.parse(stdout) as { ifname: string; addr_info?: { local?: string; prefixlen?: number; scope?: string }[] }[];
    return links.flatMap((l) =>
      (l.addr_info ?? [])
        .filter((a) => typeof a.local === "string" && isIP(a.local) !== 0)
        .map((a) => ({ ifname: l.ifname, address: a.local!, prefix: a.prefixlen ?? (isIP(a.local!) === 4 ? 32 : 128), local: a.scope === "host" || a.scope === "link" })),
    );
  } catch {
    // no ip(8): what libuv sees (interfaces that are up and running)
    return Object.entries(networkInterfaces()).flatMap(([ifname, list]) =>
      (list ?? []).map((a) => ({
        ifname,
        address: a.address,
        prefix: a.cidr ? Number(a.cidr.split("/")[1]) : a.family === "IPv4" ? 32 : 128,
        local: a.internal || (a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80")),
      })),
    );
  }
}

function netOf(a: IfAddr): Net | null {
  const b = ipBytes(a.address);
  return b === null ? null : { v: b.v, bytes: b.bytes, prefix: a.prefix };
}

/** Addresses and subnets of the interfaces that are neither loopback nor on the WAN side. */
function lanAddresses(all: IfAddr[], wan: Set<string>): { addresses: string[]; nets: Net[] } {
  const lan = all.filter((a) => !a.local && !wan.has(a.ifname));
  return { addresses: lan.map((a) => a.address), nets: lan.map(netOf).filter((n): n is Net => n !== null) };
}

/** The subnets of the interfaces that hold these addresses (explicitly configured listen addresses). */
function netsOf(all: IfAddr[], addresses: string[]): Net[] {
  const want = new Set(addresses);
  return all.filter((a) => want.has(a.address)).map(netOf).filter((n): n is Net => n !== null);
}

/** IPv4 neighbours (ARP table) and IPv6 ones (`ip -6 neigh`), IP -> MAC as 12 hex digits. */
async function readNeighbours(): Promise<Map<string, string>> {
  const m = readArp();
  try {
    const { stdout } = await run("ip", ["-6", "neigh", "show"], { timeout: 5000 });
    for (const line of stdout.split("\n")) {
      const f = /^(\S+) .*lladdr ([0-9a-f:]{17})/i.exec(line);
      if (f !== null && !line.includes("FAILED")) m.set(f[1]!, f[2]!.replace(/:/g, "").toLowerCase());
    }
  } catch {
    // no ip(8) or no IPv6: IPv6 clients are not matched by MAC
  }
  return m;
}

function readArp(): Map<string, string> {
  const m = new Map<string, string>();
  try {
    const lines = readFileSync(ARP_TABLE, "utf8").split("\n").slice(1);
    for (const l of lines) {
      const f = l.trim().split(/\s+/);
      if (f.length >= 4 && f[3] !== "00:00:00:00:00:00") m.set(f[0]!, f[3]!.replace(/:/g, "").toLowerCase());
    }
  } catch {
    // no ARP table (not Linux, or no /proc): MAC-bound profiles simply do not match
  }
  return m;
}
