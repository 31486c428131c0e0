// The kernel's word on how connections end. Connections sluice has decided are fast-tracked by
// connmark and never reach userspace again, so their end time and final byte counts come from
// conntrack DESTROY events with accounting, read from a long-running
// `conntrack -E -e DESTROY -o extended,timestamp,ktimestamp,id -b <bytes>` child.
//
// What conntrack 1.4.7 prints (captured in a network namespace, see the tests):
//   [1795389326.998806]\t[DESTROY] ipv4 2 tcp 6 118 TIME_WAIT src=.. dst=.. sport=.. dport=.. packets=8 bytes=429
//     src=.. dst=.. sport=.. dport=.. packets=10 bytes=100528 [ASSURED] mark=512 delta-time=1
//     [start=Sun Nov 22 23:15:25 2026] [stop=Sun Nov 22 23:15:26 2026] id=391701100 [USERSPACE] portid=3559249667
// - `[sec.usec]` (-o timestamp) is when the tool received the event (userspace clock, µs).
// - The remaining timeout is missing when the entry expired (`... udp 17 src=...`).
// - `packets=`/`bytes=` only with net.netfilter.nf_conntrack_acct=1, `delta-time=`/`[start=]`/`[stop=]`
//   only with net.netfilter.nf_conntrack_timestamp=1, and both only for entries created after the
//   switch was turned on. `[start=]`/`[stop=]` (-o ktimestamp) are ctime(3) text in the tool's local
//   time zone with one-second resolution, so the child runs with TZ=UTC.
// - The kernel's stop time of an expired entry is its expiry time; the event itself arrives when
//   the conntrack garbage collector gets to the entry (seconds to a minute later).
// - Under load the netlink socket overflows: the tool prints "WARNING: We have hit ENOBUFS! We are
//   losing events." on stderr and (1.4.7) goes on. Events are lost then; listeners of "overflow"
//   should reconcile against the table (src/system/conntrack.ts).

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { parseConntrackLine } from "../system/conntrack.js";

const execFileAsync = promisify(execFile);

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** One direction of a flow. Ports are 0 for protocols without ports (ICMP, GRE, ...). */
export interface ConntrackDirection {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** 0 when the kernel did not count (accounting off when the entry was created); see `acct`. */
  packets: number;
  bytes: number;
}

export type ConntrackEventType = "NEW" | "UPDATE" | "DESTROY";

/** One conntrack event line. */
export interface ConntrackFlowEvent {
  type: ConntrackEventType;
  family: 4 | 6;
  /** IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, ... */
  proto: number;
  orig: ConntrackDirection;
  reply: ConntrackDirection;
  mark: number;
  /** The kernel's conntrack id (-o id). */
  id?: number;
  /** Kernel start/stop times, ms since the epoch, one-second resolution (nf_conntrack_timestamp=1). */
  start?: number;
  stop?: number;
  /** ICMP/ICMPv6 echo identifier, type and code of the original direction. */
  icmpId?: number;
  icmpType?: number;
  icmpCode?: number;
  /** True when the kernel reported packet/byte counters (nf_conntrack_acct=1 at creation). */
  acct: boolean;
  /** When the tool received the event (-o timestamp), ms since the epoch with µs precision. */
  time?: number;
  /** Seconds the entry had left; absent when it expired (or had less than a second left). */
  timeout?: number;
  /** TCP/SCTP/DCCP state, e.g. TIME_WAIT. */
  state?: string;
  /** Bracketed flags: ASSURED, UNREPLIED, USERSPACE (deleted by a conntrack -D/-F), ... */
  status: string[];
}

export interface ConntrackDestroyEvent extends ConntrackFlowEvent {
  type: "DESTROY";
}

const EVENT_PREFIX = /^\s*(?:\[(\d+)\.(\d{1,9})\]\s+)?\[(NEW|UPDATE|DESTROY)\]\s+/;
/** -o ktimestamp: `[start=Sun Nov 22 23:15:25 2026]` (ctime format; day may be space-padded). */
const KTIMESTAMP = /\[(start|stop)=([^\]]*)\]/g;
const CTIME = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const UINT = /^\d+$/;
const WHITESPACE = /\s+/;
const ICMP_PROTOS: ReadonlySet<number> = new Set([1, 58]);
/** Keys printed after both tuples: an `id=` after one of these is the conntrack id, not ICMP's. */
const TRAILER_KEYS: ReadonlySet<string> = new Set(["mark", "secmark", "secctx", "zone", "use", "labels", "helper", "delta-time"]);

/** ctime(3) text printed in UTC (the child runs with TZ=UTC) to ms since the epoch. */
function parseCtimeUtc(text: string): number | undefined {
  const m = CTIME.exec(text.trim());
  if (m === null) return undefined;
  const month = MONTHS.indexOf(m[1]);
  if (month < 0) return undefined;
  const ms = Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Parses one line of `conntrack -E -o extended[,timestamp][,ktimestamp][,id]`. Returns null (never
 * throws) for anything that is not a complete event line. The tuple/flag grammar is
 * parseConntrackLine's (`conntrack -L -o extended`); this adds the event prefix, the missing
 * timeout of expired entries, kernel timestamps and the conntrack id.
 */
export function parseConntrackEventLine(line: string): ConntrackFlowEvent | null {
  const prefix = EVENT_PREFIX.exec(line);
  if (prefix === null) return null;
  const [whole, sec, frac, type] = prefix;

  let start: number | undefined;
  let stop: number | undefined;
  const body = line.slice(whole.length).replace(KTIMESTAMP, (_m, which: string, text: string) => {
    const ms = parseCtimeUtc(text);
    if (which === "start") start = ms;
    else stop = ms;
    return " ";
  });

  const tokens = body.trim().split(WHITESPACE);
  // Expired entries come without the remaining timeout: `ipv4 2 udp 17 src=...`, `... tcp 6 TIME_WAIT src=...`.
  let timeout: number | undefined;
  if (tokens.length > 4 && UINT.test(tokens[4])) timeout = Number(tokens[4]);
  else if (tokens.length >= 4) tokens.splice(4, 0, "0");

  const entry = parseConntrackLine(tokens.join(" "));
  if (entry === null) return null;

  let id: number | undefined;
  let trailer = false;
  for (const token of tokens) {
    const eq = token.indexOf("=");
    if (eq <= 0) continue;
    const key = token.slice(0, eq);
    if (TRAILER_KEYS.has(key)) trailer = true;
    else if (trailer && key === "id") {
      const value = token.slice(eq + 1);
      if (UINT.test(value)) id = Number(value);
    }
  }

  const { orig, reply } = entry;
  const direction = (t: typeof orig): ConntrackDirection => ({
    src: t.src,
    dst: t.dst,
    sport: t.sport ?? 0,
    dport: t.dport ?? 0,
    packets: t.packets ?? 0,
    bytes: t.bytes ?? 0,
  });
  const event: ConntrackFlowEvent = {
    type: type as ConntrackEventType,
    family: entry.family === "ipv4" ? 4 : 6,
    proto: entry.protoNum,
    orig: direction(orig),
    reply: direction(reply),
    mark: entry.mark,
    acct: orig.bytes !== undefined && reply.bytes !== undefined,
    status: entry.status,
  };
  if (id !== undefined) event.id = id;
  if (start !== undefined) event.start = start;
  if (stop !== undefined) event.stop = stop;
  if (ICMP_PROTOS.has(entry.protoNum)) {
    if (orig.id !== undefined) event.icmpId = orig.id;
    if (orig.type !== undefined) event.icmpType = orig.type;
    if (orig.code !== undefined) event.icmpCode = orig.code;
  }
  if (sec !== undefined && frac !== undefined) event.time = Number(sec) * 1000 + Number(frac.padEnd(6, "0").slice(0, 6)) / 1000;
  if (timeout !== undefined) event.timeout = timeout;
  if (entry.state !== undefined) event.state = entry.state;
  return event;
}

/** A DESTROY event line, or null for anything else (other event types included). */
export function parseConntrackDestroyLine(line: string): ConntrackDestroyEvent | null {
  const event = parseConntrackEventLine(line);
  return event !== null && event.type === "DESTROY" ? (event as ConntrackDestroyEvent) : null;
}

// ---------------------------------------------------------------------------------------------
// Accounting switches

export interface AccountingStatus {
  /** State after the call: net.netfilter.nf_conntrack_acct is 1 (byte/packet counters). */
  acct: boolean;
  /** net.netfilter.nf_conntrack_timestamp is 1 (kernel start/stop times). */
  timestamp: boolean;
  /** The sysctl keys this call switched from 0 to 1. */
  changed: string[];
  /** Why a switch could not be turned on, one sentence each; empty when both are on. */
  problems: string[];
}

const ACCT_KEYS = [
  { field: "acct", key: "net.netfilter.nf_conntrack_acct", path: "/proc/sys/net/netfilter/nf_conntrack_acct" },
  { field: "timestamp", key: "net.netfilter.nf_conntrack_timestamp", path: "/proc/sys/net/netfilter/nf_conntrack_timestamp" },
] as const;

function describeFsError(err: unknown, path: string): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  if (code === "ENOENT") return `${path} does not exist: the nf_conntrack module is not loaded`;
  if (code === "EACCES" || code === "EPERM") return `permission denied writing ${path}: needs root (CAP_NET_ADMIN)`;
  if (code === "EROFS") return `${path} is read-only (/proc/sys mounted read-only, e.g. an unprivileged container)`;
  return `${path}: ${err instanceof Error ? err.message : String(err)}`;
}

/** Sets one switch to 1 in this process's namespace; returns [was it changed, problem]. */
async function enableHere(path: string): Promise<[boolean, string | null]> {
  try {
    if ((await readFile(path, "utf8")).trim() === "1") return [false, null];
    await writeFile(path, "1\n");
    const after = (await readFile(path, "utf8")).trim();
    return after === "1" ? [true, null] : [false, `${path} reads ${after} after writing 1`];
  } catch (err) {
    return [false, describeFsError(err, path)];
  }
}

/** The same inside a named network namespace: /proc/sys/net is per namespace of the opener. */
async function enableInNetns(netns: string, path: string): Promise<[boolean, string | null]> {
  // Fixed paths only; the namespace name is an argument to ip, never part of the script.
  const script = `v=$(cat ${path}) || exit 3; [ "$v" = 1 ] && { echo unchanged; exit 0; }; echo 1 > ${path} || exit 4; cat ${path}`;
  try {
    const { stdout } = await execFileAsync("ip", ["netns", "exec", netns, "sh", "-c", script], { timeout: 5000, encoding: "utf8" });
    const out = stdout.trim();
    if (out === "unchanged") return [false, null];
    return out === "1" ? [true, null] : [false, `${path} in netns ${netns} reads ${out} after writing 1`];
  } catch (err) {
    const failure = err as { code?: unknown; stderr?: unknown };
    const stderr = typeof failure.stderr === "string" ? failure.stderr.trim() : "";
    if (failure.code === 3) return [false, `${path} does not exist in netns ${netns}: the nf_conntrack module is not loaded`];
    if (failure.code === 4) return [false, `cannot write ${path} in netns ${netns}: ${stderr || "permission denied or read-only"}`];
    return [false, `netns ${netns}: ${stderr || (err instanceof Error ? err.message : String(err))}`];
  }
}

/**
 * Turns on net.netfilter.nf_conntrack_acct and net.netfilter.nf_conntrack_timestamp (in `netns`
 * when given). Never throws: what could not be enabled is in `problems` (and logged as a warning).
 * Both apply only to conntrack entries created afterwards.
 */
export async function enableAccounting(options: { netns?: string; logger?: Logger } = {}): Promise<AccountingStatus> {
  const status: AccountingStatus = { acct: false, timestamp: false, changed: [], problems: [] };
  for (const { field, key, path } of ACCT_KEYS) {
    const [changed, problem] = options.netns === undefined ? await enableHere(path) : await enableInNetns(options.netns, path);
    if (problem === null) {
      status[field] = true;
      if (changed) status.changed.push(key);
    } else {
      status.problems.push(`${key} could not be enabled: ${problem}`);
    }
  }
  const where = options.netns === undefined ? "" : ` in netns ${options.netns}`;
  if (status.changed.length > 0) options.logger?.info(`conntrack: enabled ${status.changed.join(", ")}${where} (applies to connections tracked from now on)`);
  for (const problem of status.problems) options.logger?.warn(`conntrack: ${problem}${where}`);
  return status;
}

// ---------------------------------------------------------------------------------------------
// The event reader

export interface ConntrackEventsOptions {
  /** Run the child in this network namespace (`ip netns exec <netns> conntrack ...`). */
  netns?: string;
  /** Deliver only entries with (mark & markMask) != 0. A single-bit mask is also given to the tool. */
  markMask?: number;
  /** Netlink receive buffer (-b); the kernel doubles it. Default 8 MiB; 0 leaves the default. */
  bufferSize?: number;
  logger?: Logger;
  /** The conntrack executable (default "conntrack" on PATH). */
  conntrackPath?: string;
  /** First restart delay; doubles per quick exit up to maxRestartDelayMs. Default 500. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  /** A child that ran this long resets the restart delay. Default 10000. */
  stableAfterMs?: number;
  /** stop(): SIGTERM, then SIGKILL after this. Default 3000. */
  stopTimeoutMs?: number;
  /** start() resolves false if no child is listening by then (it keeps trying). Default 5000. */
  readyTimeoutMs?: number;
}

export interface ConntrackEventCounters {
  /** DESTROY events delivered. */
  events: number;
  /** stdout lines that were not DESTROY event lines. */
  unparsed: number;
  /** Times the child was started again after it exited. */
  restarts: number;
  /** ENOBUFS reports: the netlink buffer overflowed and events were lost. */
  overflows: number;
  /** Events dropped because their mark is outside markMask. */
  filtered: number;
  /** A last line cut short when the tool ended (stopped mid-write): neither an event nor garbage. */
  cut: number;
}

export interface ConntrackEventsEventMap {
  destroy: [event: ConntrackDestroyEvent];
  /** Events were lost (ENOBUFS); the argument is the total overflow count. */
  overflow: [total: number];
  /** A child is listening (after start and after each restart: events in the gap are lost). */
  ready: [];
  /** A child exited (before a restart, or after stop()). */
  exit: [code: number | null, signal: NodeJS.Signals | null];
}

export const DEFAULT_BUFFER_SIZE = 8 * 1024 * 1024;
const DEFAULT_RESTART_DELAY_MS = 500;
const DEFAULT_MAX_RESTART_DELAY_MS = 30_000;
const DEFAULT_STABLE_AFTER_MS = 10_000;
const DEFAULT_STOP_TIMEOUT_MS = 3_000;
const DEFAULT_READY_TIMEOUT_MS = 5_000;
/** Without -b the tool prints nothing when it is listening; give it this long to subscribe. */
const READY_GUESS_MS = 250;
/** conntrack's exit code for a command-line problem (an option this version does not know). */
const PARAMETER_PROBLEM = 2;
/** A stdout line longer than this is garbage: dropped and counted as unparsed. */
const MAX_LINE = 64 * 1024;
const OVERFLOW_LOG_INTERVAL_MS = 10_000;
const MAX_MARK = 0xffff_ffff;

function isSingleBit(mask: number): boolean {
  return (mask & (mask - 1)) === 0;
}

/**
 * The tool's arguments. `minimal` leaves out what older versions may not know (-b, --mark on
 * events, ktimestamp, id).
 */
export function conntrackEventArgs(options: Pick<ConntrackEventsOptions, "markMask" | "bufferSize"> = {}, minimal = false): string[] {
  if (minimal) return ["-E", "-e", "DESTROY", "-o", "extended,timestamp"];
  const args = ["-E", "-e", "DESTROY", "-o", "extended,timestamp,ktimestamp,id"];
  const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
  if (bufferSize > 0) args.push("-b", String(bufferSize));
  const mask = options.markMask;
  if (mask !== undefined && isSingleBit(mask)) args.push("--mark", `0x${mask.toString(16)}/0x${mask.toString(16)}`);
  return args;
}

/**
 * Reads conntrack DESTROY events from a supervised `conntrack -E` child and delivers them as
 * "destroy" events. The child is restarted with backoff when it exits; its stderr is logged;
 * lines that do not parse are counted; overflows are counted and announced.
 */
export class ConntrackEvents extends EventEmitter<ConntrackEventsEventMap> {
  private readonly opts: ConntrackEventsOptions;
  private readonly logger: Logger | undefined;
  private child: ChildProcess | null = null;
  private childExited: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private readyTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private childReady = false;
  private nextDelay: number;
  private minimalArgs = false;
  private running = false;
  private readyWaiters: Array<(ready: boolean) => void> = [];
  private stdoutRest = "";
  private stdoutSkipping = false;
  private stderrRest = "";
  private lastStderr = "";
  private lastOverflowLog = 0;
  private overflowsSinceLog = 0;
  private readonly count: ConntrackEventCounters = { events: 0, unparsed: 0, restarts: 0, overflows: 0, filtered: 0, cut: 0 };

  constructor(options: ConntrackEventsOptions = {}) {
    super();
    const { markMask, bufferSize } = options;
    if (markMask !== undefined && (!Number.isInteger(markMask) || markMask < 1 || markMask > MAX_MARK)) {
      throw new RangeError(`markMask must be an integer in 1..0xffffffff, got ${markMask}`);
    }
    if (bufferSize !== undefined && (!Number.isSafeInteger(bufferSize) || bufferSize < 0)) {
      throw new RangeError(`bufferSize must be a non-negative integer, got ${bufferSize}`);
    }
    this.opts = { ...options };
    this.logger = options.logger;
    this.nextDelay = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
  }

  /** Subscribes to DESTROY events; returns the unsubscribe function. */
  onDestroy(cb: (event: ConntrackDestroyEvent) => void): () => void {
    this.on("destroy", cb);
    return () => {
      this.off("destroy", cb);
    };
  }

  /** A copy of the counters. */
  get counters(): ConntrackEventCounters {
    return { ...this.count };
  }

  /** The current child's pid, if one is running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The command line the next child is started with. */
  get commandLine(): string[] {
    const tool = [this.opts.conntrackPath ?? "conntrack", ...conntrackEventArgs(this.opts, this.minimalArgs)];
    return this.opts.netns === undefined ? tool : ["ip", "netns", "exec", this.opts.netns, ...tool];
  }

  /** enableAccounting() for this reader's namespace, logging to its logger. */
  enableAccounting(): Promise<AccountingStatus> {
    return enableAccounting({ netns: this.opts.netns, logger: this.logger });
  }

  /**
   * Starts the child. Resolves true once it is listening, false if it is not by readyTimeoutMs
   * (it keeps being restarted in the background) or stop() came first. Never rejects.
   */
  start(): Promise<boolean> {
    if (this.running) return this.childReady ? Promise.resolve(true) : this.waitReady();
    this.running = true;
    this.nextDelay = this.opts.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
    const ready = this.waitReady();
    this.spawnChild();
    return ready;
  }

  /** Stops the child (SIGTERM by pid, SIGKILL after stopTimeoutMs); resolves when it has exited. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.settleReady(false);
    const child = this.child;
    const exited = this.childExited;
    if (child === null || exited === null) return;
    const pid = child.pid;
    if (pid !== undefined) {
      signal(pid, "SIGTERM");
      signal(pid, "SIGCONT"); // a stopped process would not act on SIGTERM until continued
    }
    const kill = setTimeout(() => {
      if (pid !== undefined && this.child === child) signal(pid, "SIGKILL");
    }, this.opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    try {
      await exited;
    } finally {
      clearTimeout(kill);
    }
  }

  private waitReady(): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(false);
      }, this.opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
      const done = (ready: boolean) => {
        clearTimeout(timer);
        resolve(ready);
      };
      this.readyWaiters.push(done);
    });
  }

  private settleReady(ready: boolean): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w(ready);
  }

  private markReady(): void {
    if (this.childReady) return;
    this.childReady = true;
    if (this.readyTimer !== null) clearTimeout(this.readyTimer);
    this.readyTimer = null;
    this.settleReady(true);
    this.safely("ready", () => this.emit("ready"));
  }

  private spawnChild(): void {
    const [file, ...args] = this.commandLine;
    const usesBuffer = args.includes("-b");
    this.childReady = false;
    this.stdoutRest = "";
    this.stdoutSkipping = false;
    this.stderrRest = "";
    this.lastStderr = "";
    this.startedAt = Date.now();
    // TZ=UTC: -o ktimestamp prints local time. LC_ALL=C: messages we match on stay in English.
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TZ: "UTC", LC_ALL: "C" } });
    this.child = child;
    this.childExited = new Promise((resolve) => {
      child.on("close", (code, sig) => {
        this.onChildClosed(child, code, sig);
        resolve();
      });
    });
    child.on("error", (err) => this.logger?.warn(`conntrack events: ${file}: ${err.message}`));
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => this.onStdout(chunk));
    child.stderr?.on("data", (chunk: string) => this.onStderr(chunk));
    if (!usesBuffer) {
      // Only -b makes the tool say it is listening (the NOTICE comes after it subscribed).
      this.readyTimer = setTimeout(() => {
        this.readyTimer = null;
        if (this.child === child && child.exitCode === null && child.pid !== undefined) this.markReady();
      }, READY_GUESS_MS);
    }
  }

  private onChildClosed(child: ChildProcess, code: number | null, sig: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    // Output without its newline at exit is a line the tool was stopped in the middle of: an
    // event if it happens to be whole, else counted as cut, not as something it cannot read.
    if (this.stdoutRest.trim() !== "") {
      if (parseConntrackDestroyLine(this.stdoutRest) !== null) this.onStdoutLine(this.stdoutRest);
      else this.count.cut++;
    }
    if (this.stderrRest !== "") this.onStderrLine(this.stderrRest);
    this.stdoutRest = this.stderrRest = "";
    if (this.readyTimer !== null) clearTimeout(this.readyTimer);
    this.readyTimer = null;
    this.child = null;
    const wasReady = this.childReady;
    this.childReady = false;
    this.safely("exit", () => this.emit("exit", code, sig));
    if (!this.running) {
      this.logger?.info(`conntrack events: stopped (${code !== null ? `code ${code}` : `signal ${sig}`})`);
      return;
    }

    const ranMs = Date.now() - this.startedAt;
    const initial = this.opts.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
    if (ranMs >= (this.opts.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS)) this.nextDelay = initial;
    let delay = this.nextDelay;
    this.nextDelay = Math.min(this.nextDelay * 2, this.opts.maxRestartDelayMs ?? DEFAULT_MAX_RESTART_DELAY_MS);
    const how = code !== null ? `exited with code ${code}` : `was killed by ${sig}`;
    const why = this.lastStderr !== "" ? `: ${this.lastStderr}` : "";
    if (code === PARAMETER_PROBLEM && !wasReady && !this.minimalArgs) {
      // An older conntrack that does not know -b, --mark on events or an output option.
      this.minimalArgs = true;
      delay = initial;
      this.logger?.warn(`conntrack events: ${how}${why}; retrying without -b/--mark/ktimestamp/id: ${this.commandLine.join(" ")}`);
    } else {
      this.logger?.warn(`conntrack events: ${how}${why}; restarting in ${delay} ms`);
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.running) return;
      this.count.restarts++;
      this.spawnChild();
    }, delay);
  }

  private onStdout(chunk: string): void {
    let text = chunk;
    if (this.stdoutSkipping) {
      // The rest of an overlong line that was already counted.
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      text = text.slice(nl + 1);
      this.stdoutSkipping = false;
    }
    const lines = (this.stdoutRest + text).split("\n");
    this.stdoutRest = lines.pop() ?? "";
    for (const line of lines) this.onStdoutLine(line);
    if (this.stdoutRest.length > MAX_LINE) {
      this.count.unparsed++;
      this.stdoutRest = "";
      this.stdoutSkipping = true;
    }
  }

  private onStdoutLine(line: string): void {
    if (line.trim() === "") return;
    const event = parseConntrackDestroyLine(line);
    if (event === null) {
      this.count.unparsed++;
      return;
    }
    const mask = this.opts.markMask;
    if (mask !== undefined && (event.mark & mask) === 0) {
      this.count.filtered++;
      return;
    }
    this.count.events++;
    this.safely("destroy", () => this.emit("destroy", event));
  }

  /** Runs an emit; a listener that throws is logged, never thrown into the stream handlers. */
  private safely(event: string, emit: () => void): void {
    try {
      emit();
    } catch (err) {
      this.logger?.warn(`conntrack events: a ${event} listener threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private onStderr(chunk: string): void {
    const lines = (this.stderrRest + chunk).split("\n");
    this.stderrRest = lines.pop() ?? "";
    if (this.stderrRest.length > MAX_LINE) this.stderrRest = this.stderrRest.slice(0, MAX_LINE);
    for (const line of lines) this.onStderrLine(line);
  }

  private onStderrLine(raw: string): void {
    const line = raw.trim();
    if (line === "") return;
    if (/ENOBUFS/.test(line)) {
      this.count.overflows++;
      this.overflowsSinceLog++;
      const now = Date.now();
      if (now - this.lastOverflowLog >= OVERFLOW_LOG_INTERVAL_MS) {
        this.logger?.warn(
          `conntrack events: netlink buffer overflow (ENOBUFS), events were lost (${this.overflowsSinceLog} since last report, ${this.count.overflows} in all)`,
        );
        this.lastOverflowLog = now;
        this.overflowsSinceLog = 0;
      }
      const total = this.count.overflows;
      this.safely("overflow", () => this.emit("overflow", total));
      return;
    }
    // The rest of the ENOBUFS warning.
    if (line.startsWith("This message means") || line.startsWith("Please, check --buffer-size")) return;
    if (line.startsWith("NOTICE: Netlink socket buffer size")) {
      this.logger?.info(`conntrack events: ${line}`);
      if (this.child !== null) this.markReady();
      return;
    }
    if (line.startsWith("Try `conntrack -h'")) return;
    if (/flow events have been shown/.test(line)) {
      this.logger?.info(`conntrack events: ${line}`);
      return;
    }
    this.lastStderr = line.length > 500 ? `${line.slice(0, 500)}...` : line;
    this.logger?.warn(`conntrack events: ${this.lastStderr}`);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
