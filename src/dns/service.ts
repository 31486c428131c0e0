// The DNS service as the rest of sluice sees it: starts the resolver on the LAN addresses with
// its upstreams, filter and query log; keeps the blocking state (global and per device, with
// timers, surviving restarts); maps clients to filter groups by the ruleset's profiles; feeds
// answers into the packet path's IP -> domain table; refreshes the lists on a schedule.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isIP } from "node:net";
import type { DnsConfig } from "../gateway/config.js";
import type { Ruleset } from "../rules/types.js";
import { parseAddress } from "../rules/parse.js";
import type { HistoryStore } from "../store/history.js";
import { inPrefix, parseIPv4, parseIPv6 } from "../core/ip.js";
import { Upstreams, type UpstreamInfo } from "./upstream.js";
import { DnsFilter } from "./filter.js";
import { QueryLog } from "./querylog.js";
import { Resolver, type Learner } from "./resolver.js";
import { DnsServer } from "./server.js";
import { Clients, type ClientPolicy } from "./clients.js";
import { DEFAULT_GROUP, type BlockingState, type CachedAnswer, type DnsControlApi } from "./types.js";
import { systemNameservers } from "../system/nameservers.js";
import { interfaces, neighbours } from "../system/routes.js";
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
  /** The profile a device falls under, as the firewall decides it (Control.profileFor). */
  profileOf: (ip: string, mac: string | null) => string;
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
const HOUR_MS = 3_600_000;
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
  /** IP -> MAC from the neighbour tables, read at start and kept fresh while profiles bind MACs. */
  private neigh: Map<string, string>;
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
    neigh: Map<string, string>,
  ) {
    this.neigh = neigh;
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
    this.server = new DnsServer(this.resolver, this.clients);
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
    const neigh = await neighbours().catch(() => new Map<string, string>());
    const svc = new DnsService(c, filter, log, upstreams, opts, [...lan.nets, ...netsOf(all, listen), ...LOOPBACK], neigh);
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
    for (const n of lan.nets) if (!this.allowedNets.some((m) => sameNet(m, n))) this.allowedNets.push(n);
    this.clients.refresh();
    for (const a of fresh) {
      if (await this.listenOn(a, this.port)) this.opts.log.info(`dns: now also answering on ${hostPort(a, this.port)}`);
      else this.unbindable.add(a); // said once, not every ADDRESS_CHECK_MS
    }
  }

  /** Binds each address on its own: one that cannot be bound (in use, gone) is reported and skipped. */
  private async bind(addresses: string[], port: number): Promise<void> {
    for (const a of addresses) await this.listenOn(a, port === 0 ? this.server.port : port);
    if (this.listening.length === 0) throw new Error(`dns: could not listen on any of ${addresses.join(", ")} port ${port}`);
    this.opts.log.info(`dns: answering on ${this.listening.map((a) => hostPort(a, this.port)).join(", ")}`);
  }

  /** Adds one address; false (and a warning) if it cannot be bound. */
  private async listenOn(address: string, port: number): Promise<boolean> {
    try {
      await this.server.listen(address, port);
      this.listening.push(address);
      return true;
    } catch (err) {
      this.opts.log.warn(`dns: cannot listen on ${hostPort(address, port)}: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  private readonly server: DnsServer;

  /** The port the resolver answers on (the one configured, or the kernel's pick for 0). */
  get port(): number {
    return this.server.port;
  }

  get running(): boolean {
    return this.listening.length > 0;
  }

  /** UDP/TCP counters over every address. */
  serverCounters(): Record<string, number> {
    return { ...this.server.counters };
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

  /** The client's group: the profile the firewall puts it in (by MAC, else by address). */
  private groupOf(ip: string): number {
    return this.groupIdOf(this.opts.profileOf(ip, this.neigh.get(ip) ?? null));
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
      neighbours().then(
        (m) => {
          const changed = m.size !== this.neigh.size || [...m].some(([ip, mac]) => this.neigh.get(ip) !== mac);
          this.neigh = m;
          if (changed) this.clients.refresh();
        },
        () => undefined, // no ip(8): MAC-bound profiles keep the last table
      );
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
    this.server.stop();
    this.listening = [];
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

/** A subnet, with the address as the rules hold it (IPv4 a number, IPv6 32 hex digits). */
interface Net {
  version: 4 | 6;
  addr: number | string;
  prefix: number;
}

const LOOPBACK: Net[] = [netOf("127.0.0.0", 8)!, netOf("::1", 128)!];

function netOf(address: string, prefix: number): Net | null {
  const a = parseAddress(address);
  return typeof a === "string" ? null : { version: a.version, addr: a.addr, prefix };
}

function inNet(n: Net, ip: string): boolean {
  const a = parseAddress(ip);
  return typeof a !== "string" && a.version === n.version && inPrefix(a.addr, n.addr, n.prefix, n.version);
}

function sameNet(a: Net, b: Net): boolean {
  return a.version === b.version && a.prefix === b.prefix && inPrefix(a.addr, b.addr, b.prefix, b.version);
}

/**
 * Every address of every interface (`ip -j addr`: unlike os.networkInterfaces() it also lists a
 * port without carrier yet, whose addresses can be bound all the same), loopback and link-local
 * left out.
 */
async function interfaceAddresses(): Promise<{ ifname: string; address: string; net: Net | null }[]> {
  return (await interfaces()).flatMap((i) =>
    i.addresses
      .filter((a) => a.scope !== "host" && a.scope !== "link")
      .map((a) => ({ ifname: i.name, address: a.address, net: netOf(a.address, a.prefixLength) })),
  );
}

/** Addresses and subnets of the interfaces that are not on the WAN side. */
function lanAddresses(all: { ifname: string; address: string; net: Net | null }[], wan: Set<string>): { addresses: string[]; nets: Net[] } {
  const lan = all.filter((a) => !wan.has(a.ifname));
  return { addresses: lan.map((a) => a.address), nets: lan.flatMap((a) => (a.net === null ? [] : [a.net])) };
}

/** The subnets of the interfaces that hold these addresses (explicitly configured listen addresses). */
function netsOf(all: { address: string; net: Net | null }[], addresses: string[]): Net[] {
  const want = new Set(addresses);
  return all.flatMap((a) => (want.has(a.address) && a.net !== null ? [a.net] : []));
}

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
