// One running sluice instance, as the API sees it: the data directory and its stores
// (options, profiles, notifications), and the packet path when one runs. The API reads and
// changes sluice only through this object, so it works the same whether the packet path is up,
// still starting, or (in tests and `sluice api`) absent.

import { readFileSync } from "node:fs";
import { loadConfig, type GatewayConfig } from "../gateway/config.js";
import type { Gateway, Logger } from "../gateway/gateway.js";
import { parseRuleset, parseAddress } from "../rules/parse.js";
import { compileRuleset } from "../rules/image.js";
import { parseMAC, bytesToHex, inPrefix } from "../core/ip.js";
import { OptionStore } from "./options.js";
import { ProfileStore, DEFAULT_PROFILE } from "./profiles.js";
import { Notifications } from "./notifications.js";
import type { Recorder } from "./recorder.js";
import type { Change } from "../flow/tracker.js";
import type { StatsHistory, StatsSnapshot } from "./stats.js";
import type { HistoryStore } from "../store/history.js";
import type { RowSource } from "../netquery/exec.js";
import type { ConnRecord } from "../flow/types.js";
import type { DnsControlApi } from "../dns/types.js";

export const VERSION = "0.1.0";
const LOG_KEEP = 50;

export type Stop = "shutdown" | "restart";

export class Control {
  readonly started = Date.now();
  readonly options: OptionStore;
  readonly profiles: ProfileStore;
  readonly notifications = new Notifications();
  /** The most recent warnings, newest last (debug/info). */
  readonly recentWarnings: string[] = [];
  gateway: Gateway | null = null;
  /** Connection recording, when the packet path runs with tracking on. */
  recorder: Recorder | null = null;
  /** Who follows live connections (the network: database); attached when recording starts. */
  readonly connectionWatchers: ((c: Change) => void)[] = [];
  /** Periodic snapshots of the totals (stats/*). */
  stats: StatsHistory | null = null;
  /** Connection history in LMDB. */
  history: HistoryStore | null = null;
  /** The DNS resolver, its filter and query log (null until started, or when disabled). */
  dns: DnsControlApi | null = null;
  state: "starting" | "ready" | "stopping" = "starting";
  private stopRequested: ((why: Stop) => void) | null = null;
  readonly stopped: Promise<Stop>;
  readonly log: Logger;

  private constructor(
    readonly dataDir: string,
    readonly configPath: string,
    readonly rulesPath: string,
    config: GatewayConfig,
    log: Logger,
  ) {
    this.log = {
      info: (m) => log.info(m),
      warn: (m) => {
        this.recentWarnings.push(`${new Date().toISOString()} ${m}`);
        if (this.recentWarnings.length > LOG_KEEP) this.recentWarnings.shift();
        log.warn(m);
      },
    };
    this.options = new OptionStore(configPath, config);
    this.profiles = new ProfileStore(rulesPath, (text) => this.applyRules(text));
    this.stopped = new Promise((r) => (this.stopRequested = r));
  }

  /** Loads (or on first run creates) the data directory. */
  static open(dataDir: string, log: Logger): Control {
    const { config, path, rulesPath, dataDir: dir } = loadConfig(dataDir);
    return new Control(dir, path, rulesPath, config, log);
  }

  get config(): GatewayConfig {
    return this.options.config;
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  /** Puts a ruleset text in force: the packet path swaps its image; without one, it is compiled to check it. */
  private async applyRules(text: string): Promise<{ rules: number }> {
    if (this.gateway) return this.gateway.reload(text);
    const image = compileRuleset(parseRuleset(text, "profiles"));
    return { rules: image.stats.rules };
  }

  /** The rules file changed on disk (SIGHUP, modules/filter/trigger/reload). */
  async reloadRulesFile(): Promise<{ rules: number }> {
    const text = readFileSync(this.rulesPath, "utf8");
    const r = await this.applyRules(text);
    this.profiles.reread();
    return r;
  }

  /** netquery's "history" database: a lazy, time-ordered scan of the store. */
  historySource(): RowSource | null {
    const h = this.history;
    if (!h) return null;
    return {
      name: "history",
      ordered: true,
      rows: (hint) => historyRows(h, hint.from ?? 0, hint.to ?? Date.now() + DAY_MS, hint.order === "desc"),
    };
  }

  async clearHistory(profileIDs: string[]): Promise<number> {
    if (!this.history) return 0;
    return this.history.clear(profileIDs.length > 0 ? profileIDs : undefined);
  }

  async cleanupHistory(): Promise<number> {
    if (!this.history) return 0;
    return (await this.history.cleanup()).deleted;
  }

  /** The totals now, for stats snapshots and stats/latest. */
  currentStats(): Omit<StatsSnapshot, "timestamp"> {
    const h = this.gateway?.health() as { received?: number; enobufs?: number; restarts?: number } | undefined;
    const r = this.recorder?.counters() ?? {};
    return {
      liveConnections: r.live ?? 0,
      connectionsStarted: r.started ?? 0,
      connectionsEnded: r.ended ?? 0,
      blocked: r.blocked ?? 0,
      bytesSent: r.bytesSent ?? 0,
      bytesReceived: r.bytesReceived ?? 0,
      packetsQueued: h?.received ?? 0,
      queueOverflows: h?.enobufs ?? 0,
      eventsDropped: r.ringDropped ?? 0,
      workerRestarts: h?.restarts ?? 0,
    };
  }

  /** Asks the process to stop (or stop and start again); the CLI acts on `stopped`. */
  requestStop(why: Stop): void {
    this.stopRequested?.(why);
  }

  /**
   * The profile a device falls under, the way the packet path picks it: its MAC first, then the
   * longest bound prefix of its address, else the default profile.
   */
  profileFor(ip: string, mac: string | null): string {
    const ruleset = this.profiles.current;
    const macBytes = mac ? parseMAC(mac) : null;
    if (macBytes) {
      const want = bytesToHex(macBytes);
      for (const p of ruleset.profiles) for (const s of p.sources) if (s.kind === "mac" && bytesToHex(s.mac) === want) return p.name;
    }
    const a = parseAddress(ip);
    if (typeof a === "string") return DEFAULT_PROFILE;
    let best = DEFAULT_PROFILE;
    let bestLen = -1;
    for (const p of ruleset.profiles) {
      for (const s of p.sources) {
        if (s.kind === "mac" || s.version !== a.version || s.prefix <= bestLen) continue;
        if (inPrefix(a.addr, s.addr, s.prefix, a.version)) {
          best = p.name;
          bestLen = s.prefix;
        }
      }
    }
    return best;
  }
}

const DAY_MS = 86_400_000;
/** History is read in windows of this much time: each window is one bounded LMDB range read. */
const HISTORY_WINDOW_MS = 5 * 60_000;

/** Rows with started in [from, to), lazily, window by window, oldest or newest first. */
function* historyRows(h: HistoryStore, from: number, to: number, newestFirst: boolean): Generator<ConnRecord> {
  const oldest = h.scanRange({ from, to, limit: 1 })[0];
  if (!oldest) return;
  const newest = h.scanRange({ from, to, limit: 1, reverse: true })[0]!;
  const lo = Math.max(from, oldest.started);
  const hi = Math.min(to, newest.started + 1);
  if (newestFirst) {
    for (let end = hi; end > lo; end -= HISTORY_WINDOW_MS) yield* h.scanRange({ from: Math.max(lo, end - HISTORY_WINDOW_MS), to: end, reverse: true });
  } else {
    for (let start = lo; start < hi; start += HISTORY_WINDOW_MS) yield* h.scanRange({ from: start, to: Math.min(hi, start + HISTORY_WINDOW_MS) });
  }
}

