// The option registry: every setting of config.json as a typed, documented option with a
// Portmaster-style key (core/devMode, filter/mode, ...), so config/options can list them and
// the WebSocket `config:` database can read and write them. A write is checked by the option's
// own type and rules, then by the whole-config validator, then written atomically; options
// that only take effect on restart say so (RequiresRestart, and a restart-pending annotation).

import { renameSync, writeFileSync } from "node:fs";
import { defaults, readRawConfig, validate, type GatewayConfig } from "../gateway/config.js";
import { parseKeyEntry } from "../core/apikeys.js";
import { SluiceError } from "../core/errors.js";

export const OPT_STRING = 1;
export const OPT_STRING_ARRAY = 2;
export const OPT_INT = 3;
export const OPT_BOOL = 4;
type OptType = typeof OPT_STRING | typeof OPT_STRING_ARRAY | typeof OPT_INT | typeof OPT_BOOL;
export type OptionValue = string | string[] | number | boolean;

const EXPERTISE_USER = 0;
const EXPERTISE_EXPERT = 1;
const EXPERTISE_DEVELOPER = 2;
const RELEASE_STABLE = 0;
const RELEASE_BETA = 1;

const ANN_RESTART_PENDING = "safing/portbase:options:restart-pending";
const ANN_CATEGORY = "safing/portbase:ui:category";
const ANN_DISPLAY = "safing/portbase:ui:display-hint";
const ANN_UNIT = "safing/portbase:ui:unit";

interface OptionDef {
  key: string;
  name: string;
  description: string;
  type: OptType;
  expertise: number;
  release: number;
  requiresRestart: boolean;
  sensitive?: boolean;
  category: string;
  unit?: string;
  regex?: string;
  possible?: { Name: string; Description: string; Value: OptionValue }[];
  /** Where it lives in config.json. */
  path: string[];
  /** config.json value <-> option value, where they differ (ports are numbers in the file). */
  toOption?: (v: unknown) => OptionValue;
  toFile?: (v: OptionValue) => unknown;
  /** Per-value check beyond the type; returns the problem. */
  check?: (v: OptionValue) => string | null;
}

const listOfPorts = {
  toOption: (v: unknown) => (v as number[]).map(String),
  toFile: (v: OptionValue) => (v as string[]).map(Number),
};

const DEFS: OptionDef[] = [
  { key: "core/devMode", name: "Development Mode", description: "Loopback clients get full API access without credentials. Never on a shared machine.", type: OPT_BOOL, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: false, category: "Development", path: ["api", "devMode"] },
  { key: "core/listenAddress", name: "API Listen Address", description: "Address the API, the WebSocket and the dashboard listen on (host:port, IPv6 in brackets).", type: OPT_STRING, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: true, category: "Development", path: ["api"], regex: "^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:.]+\\]):\\d{1,5}$",
    toOption: (v) => { const a = v as { host: string; port: number }; return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`; },
    toFile: (v) => { const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(v as string)!; return { host: m[1], port: Number(m[2]) }; } },
  { key: "core/apiKeys", name: "API Keys", description: "Keys for third-party access: <key>?read=<anyone|user|admin>&write=<...>[&expires=<RFC3339>]. Prefer app tokens (auth/tokens), which are stored hashed.", type: OPT_STRING_ARRAY, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: false, sensitive: true, category: "Development", path: ["api", "keys"],
    check: (v) => { for (const e of v as string[]) { const p = parseKeyEntry(e); if (typeof p === "string") return p; } return null; } },
  { key: "api/sessionTTL", name: "Dashboard Session Lifetime", description: "A dashboard session ends after this long without a request.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: false, category: "API", unit: "seconds", path: ["api", "sessionTtlS"] },
  { key: "api/tokensPerOwner", name: "App Tokens per Owner", description: "The most app tokens one owner may hold at once.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: false, category: "API", path: ["api", "tokensPerOwner"] },
  { key: "api/maxBodyKB", name: "Largest Request Body", description: "Bodies larger than this are refused with 413.", type: OPT_INT, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: false, category: "API", unit: "KiB", path: ["api", "maxBodyKB"] },
  { key: "api/authFailureLimit", name: "Failed Logins Before Lockout", description: "After this many failed authentications within the window, a client gets 429 until the window ends.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: false, category: "API", path: ["api", "authFailLimit"] },
  { key: "api/authFailureWindow", name: "Failed Login Window", description: "The window failed authentications are counted in.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: false, category: "API", unit: "seconds", path: ["api", "authFailWindowS"] },
  { key: "filter/mode", name: "Filtering Scope", description: "Which traffic sluice decides: routed traffic (gateway), this machine's own (host), or both.", type: OPT_STRING, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", path: ["mode"],
    possible: [
      { Name: "Gateway", Description: "Everything routed through this machine (FORWARD).", Value: "gateway" },
      { Name: "Host", Description: "This machine's own connections (INPUT/OUTPUT).", Value: "host" },
      { Name: "Both", Description: "Routed traffic and this machine's own.", Value: "both" },
    ] },
  { key: "filter/failClosed", name: "Fail Closed", description: "Drop packets when no sluice worker can decide them (otherwise they pass).", type: OPT_BOOL, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", path: ["failClosed"] },
  { key: "filter/fastTrack", name: "Fast-Track Decided Connections", description: "Once a connection is decided, the kernel handles its remaining packets (connmark).", type: OPT_BOOL, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", path: ["fastTrack"] },
  { key: "filter/ipv6", name: "Filter IPv6", description: "Hook the IPv6 chains as well as IPv4.", type: OPT_BOOL, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", path: ["ipv6"] },
  { key: "filter/exemptPorts", name: "Exempt TCP Ports (host mode)", description: "TCP ports of this machine that host mode never filters, so the operator is never locked out.", type: OPT_STRING_ARRAY, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", regex: "^\\d{1,5}$", path: ["exemptPorts"], ...listOfPorts },
  { key: "filter/rulesFile", name: "Rules File", description: "The ruleset file, relative to the data directory.", type: OPT_STRING, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: true, category: "Filtering", path: ["rulesFile"] },
  { key: "network/wanInterfaces", name: "WAN Interfaces", description: "Interfaces on the Internet side; empty: those carrying a default route.", type: OPT_STRING_ARRAY, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Network", regex: "^[\\w.@-]{1,15}$", path: ["wanInterfaces"] },
  { key: "queues/count", name: "Packet Queues", description: "NFQUEUE queues, one worker thread each (default: one per core).", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "Performance", path: ["queues", "count"] },
  { key: "queues/first", name: "First Queue Number", description: "The first NFQUEUE number sluice binds.", type: OPT_INT, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: true, category: "Performance", path: ["queues", "first"] },
  { key: "queues/batch", name: "Packets per Batch", description: "Packets a worker receives and decides per system call.", type: OPT_INT, expertise: EXPERTISE_DEVELOPER, release: RELEASE_BETA, requiresRestart: true, category: "Performance", path: ["queues", "batch"] },
  { key: "dns/enabled", name: "DNS Resolver", description: "Answer DNS for the LAN: cache, forward to the upstreams, block by lists and rules, log every query.", type: OPT_BOOL, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "enabled"] },
  { key: "dns/listenAddresses", name: "DNS Listen Addresses", description: "Addresses the resolver answers on; empty: every LAN-side address and loopback.", type: OPT_STRING_ARRAY, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", regex: "^[0-9a-fA-F:.]+$", path: ["dns", "listen"] },
  { key: "dns/nameservers", name: "Upstream DNS Servers", description: "Where queries go when the cache cannot answer, tried in order: IP[:port], tcp://, tls://IP#name (DNS over TLS), https://host/dns-query (DNS over HTTPS). Empty: the system's.", type: OPT_STRING_ARRAY, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "upstreams"] },
  { key: "dns/blockingMode", name: "Blocking Mode", description: "How a blocked name is answered: NULL (0.0.0.0 / ::), NXDOMAIN, NODATA, or IP (the addresses set below).", type: OPT_STRING, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: false, category: "DNS", path: ["dns", "blocking", "mode"],
    possible: ["NULL", "NXDOMAIN", "NODATA", "IP"].map((v) => ({ Name: v, Description: v, Value: v })) },
  { key: "dns/blockTTL", name: "Blocked Reply TTL", description: "TTL of blocked replies: short, so unblocking takes effect quickly on devices.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: false, category: "DNS", unit: "seconds", path: ["dns", "blocking", "ttl"] },
  { key: "dns/cacheSize", name: "DNS Cache Size", description: "Most answers kept in the cache.", type: OPT_INT, expertise: EXPERTISE_EXPERT, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "cacheSize"] },
  { key: "filter/dnsQueryInterception", name: "Redirect Rogue DNS", description: "LAN devices' DNS queries to any other server are redirected to sluice.", type: OPT_BOOL, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "interception", "redirect"] },
  { key: "filter/preventBypassing", name: "Block Secure DNS Bypass", description: "Refuse DNS over TLS (853) and the well-known DNS-over-HTTPS servers, so devices use the network's DNS.", type: OPT_BOOL, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "interception", "blockDoH"] },
  { key: "filter/blockDoT", name: "Block DNS over TLS", description: "Refuse DNS over TLS and QUIC (port 853) from LAN devices.", type: OPT_BOOL, expertise: EXPERTISE_USER, release: RELEASE_STABLE, requiresRestart: true, category: "DNS", path: ["dns", "interception", "blockDoT"] },
  { key: "core/watchdog", name: "Worker Watchdog", description: "A queue worker with no sign of life for this long is restarted.", type: OPT_INT, expertise: EXPERTISE_DEVELOPER, release: RELEASE_STABLE, requiresRestart: true, category: "Performance", unit: "ms", path: ["watchdogMs"] },
];

export interface OptionRecord {
  Name: string;
  Key: string;
  Description: string;
  Help: string;
  Sensitive: boolean;
  OptType: OptType;
  ExpertiseLevel: number;
  ReleaseLevel: number;
  RequiresRestart: boolean;
  DefaultValue: OptionValue;
  ValidationRegex: string;
  PossibleValues?: { Name: string; Description: string; Value: OptionValue }[];
  Annotations: Record<string, unknown>;
  Value?: OptionValue;
}

export class OptionError extends SluiceError {
  constructor(message: string, data: Record<string, unknown> | null = null) {
    super("CONFIG_INVALID", message, data);
  }
}

function at(obj: unknown, path: string[]): unknown {
  let o = obj;
  for (const p of path) {
    if (o === null || typeof o !== "object" || !(p in (o as object))) return undefined;
    o = (o as Record<string, unknown>)[p];
  }
  return o;
}

export class OptionStore {
  private raw: Record<string, unknown>;
  private current: GatewayConfig;
  private readonly byKey = new Map(DEFS.map((d) => [d.key, d]));
  private readonly restartPending = new Set<string>();
  /** When each option was last written through sluice (unix s), so changes read as updates. */
  private readonly modified = new Map<string, number>();
  private readonly listeners: ((key: string, record: OptionRecord) => void)[] = [];

  constructor(private readonly path: string, config: GatewayConfig) {
    this.raw = readRawConfig(path);
    this.current = config;
  }

  /** The config in force (restart-only options keep their old effect until the restart). */
  get config(): GatewayConfig {
    return this.current;
  }

  onChange(f: (key: string, record: OptionRecord) => void): void {
    this.listeners.push(f);
  }

  /** Unix seconds of the last write through sluice; 0 if none since start. */
  modifiedAt(key: string): number {
    return this.modified.get(key) ?? 0;
  }

  keys(): string[] {
    return DEFS.map((d) => d.key).sort();
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Every option, sorted by key; `withValues` adds the values the user set (the config: db). */
  list(withValues: boolean): OptionRecord[] {
    return this.keys().map((k) => this.record(k, withValues)!);
  }

  record(key: string, withValue = true): OptionRecord | null {
    const d = this.byKey.get(key);
    if (!d) return null;
    const def = defaults();
    const conv = d.toOption ?? ((v: unknown) => v as OptionValue);
    const r: OptionRecord = {
      Name: d.name,
      Key: d.key,
      Description: d.description,
      Help: "",
      Sensitive: d.sensitive ?? false,
      OptType: d.type,
      ExpertiseLevel: d.expertise,
      ReleaseLevel: d.release,
      RequiresRestart: d.requiresRestart,
      DefaultValue: conv(at(def, d.path)),
      ValidationRegex: d.regex ?? "",
      Annotations: { [ANN_CATEGORY]: d.category, ...(d.unit ? { [ANN_UNIT]: d.unit } : {}), ...(d.possible ? { [ANN_DISPLAY]: "one-of" } : {}) },
    };
    if (d.possible) r.PossibleValues = d.possible;
    if (this.restartPending.has(key)) r.Annotations[ANN_RESTART_PENDING] = true;
    if (withValue) {
      const set = d.key === "core/listenAddress" ? at(this.raw, ["api", "host"]) ?? at(this.raw, ["api", "port"]) : at(this.raw, d.path);
      if (set !== undefined) r.Value = conv(at(this.pendingConfig(), d.path));
    }
    return r;
  }

  /** The config the file describes now (including restart-pending changes). */
  private pendingConfig(): GatewayConfig {
    return validate(this.raw);
  }

  /** Sets (or with null, resets to its default) one option. Throws OptionError saying why not. */
  set(key: string, value: unknown): OptionRecord {
    const d = this.byKey.get(key);
    if (!d) throw new OptionError(`unknown option "${key}"`, { key });
    const next = structuredClone(this.raw);
    if (value === null || value === undefined) {
      if (d.key === "core/listenAddress") {
        const api = (next.api ?? {}) as Record<string, unknown>;
        delete api.host;
        delete api.port;
      } else removeAt(next, d.path);
    } else {
      checkType(d, value);
      const fileValue = d.toFile ? d.toFile(value as OptionValue) : value;
      if (d.key === "core/listenAddress") {
        const api = ((next.api ??= {}) as Record<string, unknown>);
        Object.assign(api, fileValue as object);
      } else setAt(next, d.path, fileValue);
    }
    let cfg: GatewayConfig;
    try {
      cfg = validate(next);
    } catch (err) {
      throw new OptionError(`received invalid value in "Value": ${(err as Error).message}`, { key });
    }
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(next, null, 2) + "\n");
    renameSync(tmp, this.path);
    this.raw = next;
    this.modified.set(key, Math.floor(Date.now() / 1000));
    if (d.requiresRestart) this.restartPending.add(key);
    else this.applyLive(cfg);
    const rec = this.record(key)!;
    for (const f of this.listeners) f(key, rec);
    return rec;
  }

  /** Options that apply without a restart take effect in the running config object. */
  private applyLive(cfg: GatewayConfig): void {
    for (const d of DEFS) {
      if (d.requiresRestart) continue;
      setAt(this.current as unknown as Record<string, unknown>, d.path, structuredClone(at(cfg, d.path)));
    }
  }
}

function checkType(d: OptionDef, v: unknown): void {
  const bad = (what: string) => {
    throw new OptionError(`received invalid value in "Value": ${d.key} takes ${what}`, { key: d.key });
  };
  switch (d.type) {
    case OPT_BOOL:
      if (typeof v !== "boolean") bad("true or false");
      break;
    case OPT_INT:
      if (typeof v !== "number" || !Number.isInteger(v)) bad("an integer");
      break;
    case OPT_STRING:
      if (typeof v !== "string") bad("a string");
      break;
    case OPT_STRING_ARRAY:
      if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) bad("a list of strings");
      break;
  }
  if (d.regex) {
    const re = new RegExp(d.regex);
    const values = Array.isArray(v) ? (v as string[]) : [v as string];
    for (const s of values) if (!re.test(String(s))) bad(`values matching ${d.regex} ("${String(s)}" does not)`);
  }
  if (d.possible && !d.possible.some((p) => p.Value === v)) bad(`one of ${d.possible.map((p) => JSON.stringify(p.Value)).join(", ")}`);
  const problem = d.check?.(v as OptionValue);
  if (problem) bad(`valid entries: ${problem}`);
}

function setAt(obj: Record<string, unknown>, path: string[], v: unknown): void {
  let o = obj;
  for (const p of path.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
  o[path[path.length - 1]!] = v;
}

function removeAt(obj: Record<string, unknown>, path: string[]): void {
  let o: Record<string, unknown> | undefined = obj;
  for (const p of path.slice(0, -1)) o = o?.[p] as Record<string, unknown> | undefined;
  if (o) delete o[path[path.length - 1]!];
}
