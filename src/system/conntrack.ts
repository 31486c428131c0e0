// The kernel's connection tracking table, read through `conntrack -L -o extended`, and its fill
// level from /proc. What the gateway forwards is tracked here even when sluice never saw it
// (fast-tracked or pre-existing flows), which makes it the ground truth for diagnostics.

import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { ToolError, runTool } from "./exec.js";

export type ConntrackFamily = "ipv4" | "ipv6";

/** One direction of a flow. Ports for TCP/UDP/SCTP/DCCP, type/code/id for ICMP. */
export interface ConntrackTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  id?: number;
  /** Counters are present only with accounting on (net.netfilter.nf_conntrack_acct=1). */
  packets?: number;
  bytes?: number;
}

export interface ConntrackEntry {
  family: ConntrackFamily;
  proto: string;
  protoNum: number;
  /** Seconds until the entry expires unless more packets arrive. */
  timeout: number;
  /** Protocol state (TCP ESTABLISHED, SCTP COOKIE_WAIT, ...); absent for stateless protocols. */
  state?: string;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  /** Status flags printed in brackets: ASSURED, UNREPLIED, OFFLOAD, HW_OFFLOAD, ... */
  status: string[];
  mark: number;
  zone?: number;
  use?: number;
}

export interface ConntrackTable {
  entries: ConntrackEntry[];
  /** True when there were more flows than `limit`, or the tool was stopped by a time/size limit. */
  truncated: boolean;
  /** Flow lines the tool printed (all of them, not only those returned). */
  count: number;
  /** Lines among those examined that could not be parsed. */
  skipped: number;
}

export interface ConntrackStats {
  count: number | null;
  max: number | null;
  buckets: number | null;
}

export const DEFAULT_CONNTRACK_LIMIT = 10_000;

const FAMILY_VERSION: Partial<Record<string, 4 | 6>> = { ipv4: 4, ipv6: 6 };
/** family, l3 number, protocol name, protocol number, timeout. */
const HEADER_TOKENS = 5;
const MAX_PROTO_NUM = 255;
const MAX_PORT = 65_535;
const WHITESPACE = /\s+/;
const UINT = /^\d+$/;
/** Hex marks appear with some conntrack versions/options; accept both spellings. */
const HEX_UINT = /^0x[0-9a-f]+$/i;

type TupleNumberKey = "sport" | "dport" | "type" | "code" | "id" | "packets" | "bytes";
const TUPLE_NUMBER_KEYS: ReadonlySet<string> = new Set<TupleNumberKey>(["sport", "dport", "type", "code", "id", "packets", "bytes"]);
const PORT_KEYS: ReadonlySet<string> = new Set<TupleNumberKey>(["sport", "dport"]);
/** Keys printed after both tuples; seeing one ends the reply tuple (so a later `id=` is not ICMP's). */
const TRAILER_KEYS: ReadonlySet<string> = new Set(["mark", "secmark", "secctx", "zone", "use", "labels", "helper", "delta-time", "timestamp"]);

function isTupleNumberKey(key: string): key is TupleNumberKey {
  return TUPLE_NUMBER_KEYS.has(key);
}

function toUint(text: string | undefined): number | null {
  if (text === undefined) return null;
  if (UINT.test(text) || HEX_UINT.test(text)) {
    const value = Number(text);
    return Number.isSafeInteger(value) ? value : null;
  }
  return null;
}

/** A tuple while its key=value tokens are being read. */
interface TupleDraft extends Partial<ConntrackTuple> {
  src: string;
}

function finishTuple(draft: TupleDraft | undefined, ipVersion: 4 | 6): ConntrackTuple | null {
  if (draft === undefined || draft.dst === undefined) return null;
  if (isIP(draft.src) !== ipVersion || isIP(draft.dst) !== ipVersion) return null;
  return { ...draft, dst: draft.dst };
}

/**
 * Parses one line of `conntrack -L -o extended`, e.g.
 * `ipv4 2 tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=.. dst=.. sport=.. dport=.. [ASSURED] mark=0 use=1`.
 * Returns null (never throws) for anything that is not a complete, consistent flow line.
 */
export function parseConntrackLine(line: string): ConntrackEntry | null {
  const tokens = line.trim().split(WHITESPACE);
  if (tokens.length < HEADER_TOKENS) return null;
  const [familyName, l3Num, proto, protoNumText, timeoutText] = tokens;
  const ipVersion = FAMILY_VERSION[familyName];
  const protoNum = toUint(protoNumText);
  const timeout = toUint(timeoutText);
  if (ipVersion === undefined || toUint(l3Num) === null || protoNum === null || protoNum > MAX_PROTO_NUM || timeout === null) {
    return null;
  }

  let next = HEADER_TOKENS;
  let state: string | undefined;
  const maybeState = tokens[next];
  if (maybeState !== undefined && !maybeState.includes("=") && !maybeState.startsWith("[")) {
    state = maybeState;
    next++;
  }

  const tuples: TupleDraft[] = [];
  let inTrailer = false;
  const status: string[] = [];
  let mark = 0;
  let zone: number | undefined;
  let use: number | undefined;

  for (const token of tokens.slice(next)) {
    if (token.startsWith("[")) {
      // [ASSURED] and friends; bracketed key=value items (timestamps) are not status flags.
      if (token.endsWith("]") && !token.includes("=")) status.push(token.slice(1, -1));
      continue;
    }
    const eq = token.indexOf("=");
    if (eq <= 0) continue; // a stray word, e.g. from a timestamp with spaces: not ours to judge
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);

    if (key === "src") {
      if (tuples.length === 2) return null;
      tuples.push({ src: value });
      inTrailer = false; // a trailer-like key between the tuples belonged to the first one
      continue;
    }
    const tuple = inTrailer ? undefined : tuples.at(-1);
    if (tuple !== undefined && !TRAILER_KEYS.has(key)) {
      if (key === "dst") {
        tuple.dst = value;
      } else if (isTupleNumberKey(key)) {
        const n = toUint(value);
        if (n === null || (PORT_KEYS.has(key) && n > MAX_PORT)) return null;
        tuple[key] = n;
      }
      continue; // other per-tuple keys (GRE keys, SCTP vtags, zone-orig) are not modelled
    }
    inTrailer = true;

    if (key === "mark" || key === "zone" || key === "use") {
      const n = toUint(value);
      if (n === null) return null;
      if (key === "mark") mark = n;
      else if (key === "zone") zone = n;
      else use = n;
    }
  }

  const orig = finishTuple(tuples[0], ipVersion);
  const reply = finishTuple(tuples[1], ipVersion);
  if (orig === null || reply === null) return null;

  const entry: ConntrackEntry = { family: familyName === "ipv4" ? "ipv4" : "ipv6", proto, protoNum, timeout, orig, reply, status, mark };
  if (state !== undefined) entry.state = state;
  if (zone !== undefined) entry.zone = zone;
  if (use !== undefined) entry.use = use;
  return entry;
}

/**
 * Turns the tool's stdout into a table of at most `limit` entries. Lines past the limit are only
 * counted, not parsed, so a huge table costs little beyond the read. `cut` says the tool was
 * stopped early; its last line may then be incomplete and is dropped.
 */
export function parseConntrackOutput(stdout: string, limit: number, cut = false): ConntrackTable {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  if (cut && !stdout.endsWith("\n")) lines.pop();

  const entries: ConntrackEntry[] = [];
  let skipped = 0;
  let examined = 0;
  for (const line of lines) {
    if (entries.length === limit) break;
    examined++;
    const entry = parseConntrackLine(line);
    if (entry === null) skipped++;
    else entries.push(entry);
  }
  return { entries, truncated: cut || examined < lines.length, count: lines.length, skipped };
}

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`conntrack limit must be a positive integer, got ${limit}`);
}

/**
 * The conntrack table of this network namespace, both families. Throws a ToolError with code
 * TOOL_MISSING (and an install hint) when the conntrack tool is not installed.
 */
export async function conntrackTable(limit: number = DEFAULT_CONNTRACK_LIMIT): Promise<ConntrackTable> {
  checkLimit(limit);
  try {
    // stdout has the flows; the "N flow entries have been shown" summary goes to stderr.
    const { stdout, cut } = await runTool("conntrack", ["-L", "-o", "extended"], { allowPartial: true });
    return parseConntrackOutput(stdout, limit, cut);
  } catch (err) {
    if (err instanceof ToolError && err.code === "TOOL_MISSING") {
      throw new ToolError(err.code, err.tool, `${err.message}; install the Debian package "conntrack"`);
    }
    throw err;
  }
}

const PROC_NETFILTER = "/proc/sys/net/netfilter";

/** A number from a /proc file, or null if the file is missing (module not loaded) or odd. */
async function readProcNumber(name: string): Promise<number | null> {
  try {
    return toUint((await readFile(`${PROC_NETFILTER}/${name}`, "utf8")).trim());
  } catch {
    return null;
  }
}

/** How full the table is: entries now (this namespace), the maximum, and the hash size. */
export async function conntrackStats(): Promise<ConntrackStats> {
  const [count, max, buckets] = await Promise.all([
    readProcNumber("nf_conntrack_count"),
    readProcNumber("nf_conntrack_max"),
    readProcNumber("nf_conntrack_buckets"),
  ]);
  return { count, max, buckets };
}
