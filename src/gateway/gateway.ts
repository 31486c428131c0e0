// The running gateway: one shared memory and WASM core, one Piscina worker per NFQUEUE, the
// firewall chains that feed them, a watchdog and rule reloads without a restart. The main
// thread never touches a packet. The API (src/api) and the stores (src/control) sit on top.

import { readFileSync } from "node:fs";
import { Piscina } from "piscina";
import * as L from "../../assembly/shared/layout.js";
import * as E from "../../assembly/shared/events.js";
import { Engine } from "../engine/engine.js";
import { coreModule } from "../engine/core.js";
import { parseRuleset } from "../rules/parse.js";
import { compileRuleset, type CompiledImage } from "../rules/image.js";
import { SluiceError } from "../core/errors.js";
import { nfq, CFG_FAIL_OPEN, CFG_GSO } from "../capture/native.js";
import {
  allocQueueArea, readStats, WK_STOP, WK_HEARTBEAT, WK_HANDLE, WK_STATE, WK_WORDS, WS_RUNNING,
  type QueueArea, type QueueStats,
} from "../capture/area.js";
import type { QueueTask } from "../worker/queue-worker.js";
import { RingReader, flowRegionSize, type FlowEvent } from "../flow/ring.js";
import { installFirewall, removeFirewall, forgetDecisions, hooksFirst, restoreHookOrder, nftQueueSupport, PROBE_ADDR, PROBE_PORT } from "./firewall.js";
import { createSocket } from "node:dgram";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { GatewayConfig } from "./config.js";
import { defaultRouteInterfaces, ifindex, hasNetAdmin } from "./netinfo.js";

const POLL_MS = 100;
/** Other software may insert rules above ours later (a firewall reload): check now and then. */
const HOOK_CHECK_MS = 30000;
const RESTART_DELAY_MS = 200;
const STOP_TIMEOUT_MS = 5000;
const MB = 1 << 20;
const WORKER_URL = new URL("../worker/queue-worker.js", import.meta.url).href;

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

interface QueueState {
  queue: number;
  area: QueueArea;
  ctl: Int32Array;
  abort: AbortController | null;
  running: Promise<void> | null;
  restarts: number;
  lastBeat: number;
  lastBeatAt: number;
  lastError: string | null;
  ring: RingReader | null;
}

export class Gateway {
  readonly config: GatewayConfig;
  readonly engine: Engine;
  private readonly rulesPath: string;
  private readonly log: Logger;
  private readonly pool: Piscina;
  private readonly queues: QueueState[] = [];
  private readonly wan: number;
  private readonly wanNames: string[];
  private stopping = false;
  private watchdog: NodeJS.Timeout | null = null;
  private hookCheck: NodeJS.Timeout | null = null;
  private image: CompiledImage;
  private reloads = 0;
  private beatsAtSwap: number[] = [];
  private backend = "";

  private constructor(config: GatewayConfig, rulesPath: string, log: Logger, image: CompiledImage, wanNames: string[]) {
    this.config = config;
    this.rulesPath = rulesPath;
    this.log = log;
    this.image = image;
    this.wanNames = wanNames;
    this.engine = new Engine({ core: "wasm" });
    this.engine.loadImage(image);
    this.wan = this.engine.arena.alloc(L.WAN_BITS / 8);
    const u8 = this.engine.arena.u8();
    for (const name of wanNames) {
      const idx = ifindex(name);
      if (idx !== null && idx < L.WAN_BITS) u8[this.wan + (idx >> 3)]! |= 1 << (idx & 7);
    }
    const q = config.queues;
    const tr = config.tracking;
    for (let i = 0; i < q.count; i++) {
      const area = allocQueueArea(this.engine.arena, q.batch, q.copyRange, tr.enabled ? flowRegionSize(tr.flowBuckets, tr.ringEvents) : 0);
      if (area.flow !== 0) this.engine.core.flowInit(area.flow, tr.flowBuckets, tr.ringEvents, i);
      this.queues.push({
        queue: q.first + i,
        area,
        ctl: new Int32Array(this.engine.memory.buffer, area.control, WK_WORDS),
        abort: null,
        running: null,
        restarts: 0,
        lastBeat: 0,
        lastBeatAt: Date.now(),
        lastError: null,
        ring: area.flow !== 0 ? new RingReader(this.engine.memory, area.flow) : null,
      });
    }
    this.pool = new Piscina({ filename: WORKER_URL, minThreads: q.count, maxThreads: q.count, idleTimeout: Infinity });
  }

  /** Loads the config (creating it on first run), installs the chains and starts every queue. */
  static async start(config: GatewayConfig, rulesPath: string, log: Logger): Promise<Gateway> {
    if (!hasNetAdmin()) {
      throw new SluiceError("PRIVILEGES", "sluice run needs CAP_NET_ADMIN to bind NFQUEUE and install firewall rules: run it as root");
    }
    const image = compileRules(readFileSync(rulesPath, "utf8"), rulesPath);
    const wan = config.wanInterfaces.length > 0 ? config.wanInterfaces : await defaultRouteInterfaces();
    const gw = new Gateway(config, rulesPath, log, image, wan);
    try {
      const { backend } = await installFirewall(gw.firewallOptions());
      gw.backend = `${backend}, NFQUEUE target (nft's own queue statement: ${await nftQueueSupport()})`;
      const where = { gateway: "FORWARD", host: "INPUT and OUTPUT", both: "FORWARD, INPUT and OUTPUT" }[config.mode];
      log.info(`firewall: ${gw.backend}; chains hooked first into ${where} (IPv4${config.ipv6 ? " and IPv6" : ""})`);
      if (!forwarding()) log.warn("net.ipv4.ip_forward is 0: this host routes nothing, so nothing reaches sluice's queues");
      for (const q of gw.queues) gw.launch(q);
      gw.watchdog = setInterval(() => gw.checkWorkers(), Math.max(POLL_MS, config.watchdogMs / 4));
      gw.hookCheck = setInterval(() => void gw.keepHooksFirst(), HOOK_CHECK_MS);
      log.info(
        `sluice: ${config.queues.count} queue(s) ${config.queues.first}..${config.queues.first + config.queues.count - 1}, ` +
          `${image.stats.rules} rules, WAN: ${wan.join(", ") || "(none: every connection counts as outbound)"}`,
      );
      return gw;
    } catch (err) {
      await gw.stop().catch(() => undefined);
      throw err;
    }
  }

  /** The verdict packets get when their queue goes away with them in it: the failure policy. */
  private get defaultVerdict(): number {
    return this.config.failClosed ? E.VERDICT_DROP : E.VERDICT_ACCEPT;
  }

  private task(q: QueueState): QueueTask {
    const c = this.config;
    return {
      memory: this.engine.memory,
      module: coreModule(),
      queue: q.queue,
      area: q.area,
      engineCtl: this.engine.ctl,
      ipdom: this.engine.ipdom,
      wan: this.wan,
      copyRange: c.queues.copyRange,
      maxLen: c.queues.maxLen,
      rcvbuf: c.queues.rcvbufMB * MB,
      cfgFlags: (c.failClosed ? 0 : CFG_FAIL_OPEN) | CFG_GSO,
      // Without fast-track an accepted packet gets the pass-once mark, which is never saved to
      // the connmark: the next packet of the connection is queued again.
      marks: c.fastTrack ? c.marks : { ...c.marks, accept: c.marks.once },
      pollMs: POLL_MS,
      defaultVerdict: this.defaultVerdict,
      batchFlags: L.BF_LEARN_DNS | (c.fastTrack ? L.BF_TRACK_FAST : 0) | (c.tracking.enabled && c.tracking.waitForName ? L.BF_WAIT_NAME : 0),
    };
  }

  /** Runs a queue's worker; when it ends for any reason but a stop, starts it again. */
  private launch(q: QueueState): void {
    Atomics.store(q.ctl, WK_STOP, 0);
    const abort = new AbortController();
    q.abort = abort;
    q.lastBeatAt = Date.now();
    q.running = this.pool
      .run(this.task(q), { signal: abort.signal })
      .then(
        () => undefined,
        (err: unknown) => {
          q.lastError = err instanceof Error ? err.message : String(err);
          if (!this.stopping) this.log.warn(`queue ${q.queue}: worker ended: ${q.lastError}`);
        },
      )
      .then(() => {
        this.releaseHandle(q);
        if (this.stopping) return;
        q.restarts++;
        setTimeout(() => {
          if (!this.stopping) this.launch(q);
        }, RESTART_DELAY_MS);
      });
  }

  /** A worker that was killed leaves its queue bound: close it so the next one can bind. */
  private releaseHandle(q: QueueState): void {
    const h = Atomics.exchange(q.ctl, WK_HANDLE, -1);
    if (h >= 0) nfq().close(h, this.defaultVerdict);
  }

  /** The watchdog: a running worker whose heartbeat stalls is terminated (and restarted). */
  private checkWorkers(): void {
    const now = Date.now();
    for (const q of this.queues) {
      const beat = Atomics.load(q.ctl, WK_HEARTBEAT);
      if (beat !== q.lastBeat) {
        q.lastBeat = beat;
        q.lastBeatAt = now;
        continue;
      }
      if (Atomics.load(q.ctl, WK_STATE) === WS_RUNNING && now - q.lastBeatAt > this.config.watchdogMs && q.abort) {
        this.log.warn(`queue ${q.queue}: no heartbeat for ${now - q.lastBeatAt} ms: restarting its worker`);
        q.lastBeatAt = now;
        q.abort.abort();
      }
    }
  }

  /**
   * Compiles the rules file again and swaps the image in. The new image goes into the slot the
   * workers left two swaps ago: before reusing it, every running worker must have finished a
   * loop turn since the last swap (so none still reads it). Then the kernel forgets decided
   * connections, which are decided again by the new rules on their next packet.
   */
  async reload(text?: string): Promise<{ rules: number; forgotten: number }> {
    const image = text === undefined ? compileRules(readFileSync(this.rulesPath, "utf8"), this.rulesPath) : compileRules(text, "profiles");
    const deadline = Date.now() + this.config.watchdogMs;
    while (this.beatsAtSwap.length > 0) {
      const pending = this.queues.some(
        (q, i) => Atomics.load(q.ctl, WK_STATE) === WS_RUNNING && Atomics.load(q.ctl, WK_HEARTBEAT) === this.beatsAtSwap[i],
      );
      if (!pending || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, POLL_MS / 4));
    }
    this.engine.loadImage(image);
    this.beatsAtSwap = this.queues.map((q) => Atomics.load(q.ctl, WK_HEARTBEAT));
    this.image = image;
    this.reloads++;
    let forgotten = 0;
    try {
      forgotten = await forgetDecisions({ marks: this.config.marks, ipv6: this.config.ipv6 });
    } catch (err) {
      this.log.warn(`rules reloaded, but open connections keep their earlier decisions: ${err instanceof Error ? err.message : String(err)}`);
      return { rules: image.stats.rules, forgotten };
    }
    this.log.info(`rules reloaded: ${image.stats.rules} rules; ${forgotten} decided connection(s) will be decided again`);
    return { rules: image.stats.rules, forgotten };
  }

  private firewallOptions() {
    const c = this.config;
    // The API port is exempt like SSH: in host mode the operator can always reach it.
    const exemptPorts = [...new Set([...c.exemptPorts, ...(c.api.port > 0 ? [c.api.port] : [])])];
    return { firstQueue: c.queues.first, queues: c.queues.count, marks: c.marks, failClosed: c.failClosed, ipv6: c.ipv6, mode: c.mode, exemptPorts };
  }

  /** Puts our hooks back in first position if something was inserted above them. */
  async keepHooksFirst(): Promise<boolean> {
    const opts = this.firewallOptions();
    try {
      if (await hooksFirst(opts)) return true;
      const moved = await restoreHookOrder(opts);
      this.log.warn(`another rule was inserted above sluice's hooks: moved ${moved} back to the top`);
      return false;
    } catch (err) {
      this.log.warn(`hook check failed: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  /** Hands every flow event the workers wrote since the last call to `f`. */
  drainFlows(f: (e: FlowEvent) => void): number {
    let n = 0;
    for (const q of this.queues) if (q.ring) n += q.ring.drain(f);
    return n;
  }

  /** Connection tracking counters over every queue. */
  flowCounters(): { dropped: number; evicted: number; live: number; pending: number } {
    const t = { dropped: 0, evicted: 0, live: 0, pending: 0 };
    for (const q of this.queues) {
      if (!q.ring) continue;
      const c = q.ring.counters();
      t.dropped += c.dropped;
      t.evicted += c.evicted;
      t.live += c.live;
      t.pending += c.pending;
    }
    return t;
  }

  /** The profile names of the rules in force (flow events carry the index). */
  profileName(index: number): string {
    return this.image.profiles[index] ?? "default";
  }

  /** Terminates every queue worker as a crash would (they are started again); for drills. */
  killWorkers(): void {
    for (const q of this.queues) q.abort?.abort();
  }

  health(): Record<string, unknown> {
    const queues = this.queues.map((q) => ({
      queue: q.queue,
      running: Atomics.load(q.ctl, WK_STATE) === WS_RUNNING,
      restarts: q.restarts,
      lastError: q.lastError,
      ...readStats(this.engine.memory, q.area),
    }));
    const total = (k: keyof QueueStats) => queues.reduce((n, q) => n + q[k], 0);
    return {
      status: queues.every((q) => q.running) ? "ok" : "degraded",
      queues,
      received: total("received"),
      enobufs: total("enobufs"),
      restarts: queues.reduce((n, q) => n + q.restarts, 0),
      rules: this.image.stats.rules,
      reloads: this.reloads,
      wanInterfaces: this.wanNames,
      firewall: this.backend,
      failClosed: this.config.failClosed,
      tracking: this.config.tracking.enabled ? this.flowCounters() : null,
    };
  }

  /** Whether every hook is in place and first in its chain (compat/self-check). */
  hooksInPlace(): Promise<boolean> {
    return hooksFirst(this.firewallOptions());
  }

  /**
   * Sends one UDP datagram from this host through the queue (the probe chains) and checks that
   * a worker decided it: the connmark of its flow carries one of our verdicts, or, without
   * fast-track (nothing saved), the datagram arrived and a queue counted it. Null when it did;
   * otherwise what went wrong.
   */
  async probe(): Promise<string | null> {
    const m = this.config.marks;
    const queuedBefore = this.queues.reduce((n, q) => n + readStats(this.engine.memory, q.area).received, 0);
    const rx = createSocket("udp4");
    const tx = createSocket("udp4");
    let arrived = false;
    try {
      const listening = await new Promise<boolean>((resolve) => {
        rx.once("error", () => resolve(false));
        rx.bind(PROBE_PORT, PROBE_ADDR, () => resolve(true));
      });
      rx.on("message", (msg) => {
        if (msg.toString() === "sluice-probe") arrived = true;
      });
      await new Promise<void>((resolve, reject) => tx.bind(0, "127.0.0.1", () => resolve()).once("error", reject));
      const sport = tx.address().port;
      await new Promise<void>((resolve, reject) => tx.send("sluice-probe", PROBE_PORT, PROBE_ADDR, (err) => (err ? reject(err) : resolve())));
      const deadline = Date.now() + PROBE_TIMEOUT_MS;
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, PROBE_POLL_MS));
        const mark = await flowMark(sport);
        const verdict = mark === null ? 0 : mark & m.mask;
        if (verdict === m.accept || verdict === m.block || verdict === m.drop) return null;
        const queued = this.queues.reduce((n, q) => n + readStats(this.engine.memory, q.area).received, 0) > queuedBefore;
        if (!this.config.fastTrack && queued && (arrived || !listening)) return null;
      }
      return `a test packet to ${PROBE_ADDR}:${PROBE_PORT} got no verdict from a queue worker within ${PROBE_TIMEOUT_MS / 1000} s`;
    } finally {
      rx.close();
      tx.close();
    }
  }

  /** The firewall backend in use, as logged at start. */
  get firewallBackend(): string {
    return this.backend;
  }

  /** Stops every worker, removes the chains. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.hookCheck) clearInterval(this.hookCheck);
    for (const q of this.queues) Atomics.store(q.ctl, WK_STOP, 1);
    const running = this.queues.map((q) => q.running).filter((p): p is Promise<void> => p !== null);
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), STOP_TIMEOUT_MS).unref());
    if ((await Promise.race([Promise.all(running), timeout])) === "timeout") {
      for (const q of this.queues) q.abort?.abort();
    }
    for (const q of this.queues) this.releaseHandle(q);
    await removeFirewall({ ipv6: this.config.ipv6 });
    await this.pool.destroy();
  }
}

const PROBE_TIMEOUT_MS = 3000;
const PROBE_POLL_MS = 100;
const exec = promisify(execFile);

/** The connmark of the probe's flow (udp 127.0.0.1:sport -> probe), or null if none. */
async function flowMark(sport: number): Promise<number | null> {
  try {
    const { stdout } = await exec("conntrack", ["-L", "-p", "udp", "-s", "127.0.0.1", "-d", PROBE_ADDR, "--sport", String(sport), "--dport", String(PROBE_PORT)], { timeout: 2000 });
    const m = /mark=(\d+)/.exec(stdout);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function forwarding(): boolean {
  try {
    return readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() === "1";
  } catch {
    return true;
  }
}

function compileRules(text: string, source: string): CompiledImage {
  return compileRuleset(parseRuleset(text, source));
}
