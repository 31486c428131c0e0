// The DNS resolver's blocking brain, with Pi-hole's semantics: exact and regex allow/deny
// entries, subscribed block ("gravity") and allow ("antigravity") lists, per-group application,
// and one decision per query in Pi-hole's order: exact allow, regex allow, exact deny, allow
// lists, block lists, regex deny. Allow beats deny, except that a user's exact deny entry
// outranks a subscribed allow list, as in FTL.
//
// Layout on disk (`dir`, e.g. data/dns):
//   filter.json       entries, list subscriptions, download metadata; written atomically
//   lists/<id>.txt    the last good copy of each list
// On open the sets are rebuilt from the local copies, so blocking works right after a restart
// without any network.
//
// Hot path: check() touches only prebuilt per-group views (two Maps, two regex arrays, two
// DomainSets) and allocates nothing. Every change builds new views and swaps them in with one
// assignment, so a query sees either the old decision structures or the new ones, never a mix.
// List sets are rebuilt on a short-lived worker thread (the arrays come back by transfer), so
// a million-name rebuild does not hold up queries; only open() builds on the calling thread.

import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { open as openFile, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { domainToUnicode, fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import {
  buildListSets,
  DomainSet,
  normalizeDomain,
  prepareQuery,
  unpackListBuild,
  type ListBuild,
  type ListBuildJob,
  type ListSource,
} from "./lists.js";
import {
  Decide,
  DEFAULT_GROUP,
  DnsInputError,
  ListStatus,
  QTYPE_NAMES,
  type DnsFilterApi,
  type DomainKind,
  type DomainRow,
  type DomainType,
  type EntryFields,
  type FilterCounts,
  type ListRow,
  type ListType,
  type ListUpdate,
  type Processed,
  type UpdateReport,
} from "./types.js";

export interface FilterLog {
  info(m: string): void;
  warn(m: string): void;
}

export interface DnsFilterOptions {
  /** Downloads lists; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  /** A list larger than this fails with "too large" (default 200 MiB). */
  maxListBytes?: number;
  /** Per-list download time limit (default 60 s). */
  downloadTimeoutMs?: number;
  log?: FilterLog;
  /**
   * Rebuild list sets on a worker thread (default true), so a 1M-name rebuild does not stall
   * the resolver for the second it takes; open() always builds on the calling thread.
   */
  buildInWorker?: boolean;
}

const STATE_FILE = "filter.json";
const LISTS_DIR = "lists";
const STATE_VERSION = 1;
const DEFAULT_MAX_LIST_BYTES = 200 * 1024 * 1024;
const DEFAULT_DOWNLOAD_TIMEOUT_MS = 60_000;
/** Lists downloaded at once: enough to hide latency, few enough to be polite to list hosts. */
const DOWNLOAD_CONCURRENCY = 4;
const USER_AGENT = "sluice-gravity/1";
/** Longer patterns are refused: a cheap bound on compile time and on backtracking surface. */
export const MAX_REGEX_LENGTH = 1024;
/** How much of an over-long pattern an error message quotes. */
const QUOTED_PREFIX = 64;
/** POSIX RE_DUP_MAX: the largest count in `{n,m}`. */
const MAX_REPEAT = 255;
const MS_PER_S = 1000;
/** Read size for local (file://) lists. */
const FILE_CHUNK = 1 << 20;
/** Pi-hole's messages for its UNIQUE(domain, type) and UNIQUE(address, type) constraints. */
const DUPLICATE_DOMAIN = "UNIQUE constraint failed: domainlist.domain, domainlist.type";
const DUPLICATE_LIST = "UNIQUE constraint failed: adlist.address, adlist.type";
const REGEX_FAILED = "Regex validity check failed";

const SILENT: FilterLog = { info() {}, warn() {} };

// ---------------------------------------------------------------------------------------------
// Regex: Pi-hole's POSIX ERE (TRE, case-insensitive) translated to a JS RegExp, plus its
// `;option` suffixes.

/** A compiled regex entry: what check() needs, nothing else. */
export interface FilterRegex {
  readonly re: RegExp;
  /** Query types the rule is limited to (null: all). */
  readonly qtypes: readonly number[] | null;
  /** `querytype=!...`: the rule applies to every type except `qtypes`. */
  readonly qtypesNegated: boolean;
  /** `invert`: the rule matches names the pattern does not match. */
  readonly invert: boolean;
  /** `reply=...`: nodata, nxdomain, refused, none, ip, or an IPv4/IPv6 address. */
  readonly reply: string | null;
}

const REPLY_KEYWORDS = new Set(["nodata", "nxdomain", "refused", "none", "ip"]);

/** Types a `querytype=` option may name besides QTYPE_NAMES. */
const EXTRA_QTYPES: ReadonlyMap<string, number> = new Map([
  ["CNAME", 5],
  ["NULL", 10],
  ["HINFO", 13],
  ["LOC", 29],
  ["DNAME", 39],
  ["SSHFP", 44],
  ["NSEC", 47],
  ["NSEC3", 50],
  ["TLSA", 52],
  ["SPF", 99],
  ["IXFR", 251],
  ["AXFR", 252],
  ["URI", 256],
  ["CAA", 257],
]);
const QTYPE_BY_NAME: ReadonlyMap<string, number> = new Map([
  ...[...QTYPE_NAMES].map(([n, name]) => [name, n] as [string, number]),
  ...EXTRA_QTYPES,
]);
const MAX_QTYPE = 65535;

/** POSIX bracket classes as JS class contents (ASCII, as domain names are). */
const POSIX_CLASSES: ReadonlyMap<string, string> = new Map([
  ["alpha", "a-zA-Z"],
  ["digit", "0-9"],
  ["alnum", "a-zA-Z0-9"],
  ["upper", "A-Z"],
  ["lower", "a-z"],
  ["space", " \\t\\n\\r\\f\\v"],
  ["blank", " \\t"],
  ["punct", "!-\\/:-@\\[-`{-~"],
  ["xdigit", "0-9A-Fa-f"],
  ["cntrl", "\\x00-\\x1f\\x7f"],
  ["print", "\\x20-\\x7e"],
  ["graph", "\\x21-\\x7e"],
]);

function regexError(pattern: string, why: string): DnsInputError {
  return new DnsInputError("regex_error", `${REGEX_FAILED}: ${pattern}`, why);
}

/**
 * Compiles a Pi-hole regex entry (pattern plus `;querytype=...`, `;invert`, `;reply=...`).
 * Throws DnsInputError("regex_error") with the reason as the hint.
 */
export function compileRegex(entry: string): FilterRegex {
  if (entry.length > MAX_REGEX_LENGTH) {
    throw regexError(`${entry.slice(0, QUOTED_PREFIX)}...`, `longer than ${MAX_REGEX_LENGTH} characters`);
  }
  const parts = entry.split(";");
  const body = parts[0]!;
  let qtypes: number[] | null = null;
  let negated = false;
  let invert = false;
  let reply: string | null = null;
  for (let k = 1; k < parts.length; k++) {
    const opt = parts[k]!.trim();
    const eq = opt.indexOf("=");
    const key = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? "" : opt.slice(eq + 1).trim();
    if (opt === "") continue;
    if (key === "invert" && eq < 0) {
      invert = true;
    } else if (key === "querytype" && eq >= 0) {
      if (qtypes !== null) throw regexError(entry, "querytype given twice");
      [qtypes, negated] = parseQtypes(entry, value);
    } else if (key === "reply" && eq >= 0) {
      if (reply !== null) throw regexError(entry, "reply given twice");
      const lower = value.toLowerCase();
      if (REPLY_KEYWORDS.has(lower)) reply = lower;
      else if (isIP(value) !== 0) reply = value;
      else throw regexError(entry, `invalid reply "${value}" (nodata, nxdomain, refused, none, ip or an IP address)`);
    } else {
      throw regexError(entry, `unknown option "${opt}"`);
    }
  }
  if (body === "") throw regexError(entry, "empty pattern");
  const source = translateEre(entry, body);
  let re: RegExp;
  try {
    re = new RegExp(source, "i");
  } catch (e) {
    throw regexError(entry, (e as Error).message);
  }
  return { re, qtypes, qtypesNegated: negated, invert, reply };
}

/** `A,AAAA`, `!A` or `!A,!AAAA` (negation applies to the whole list); names or numbers. */
function parseQtypes(entry: string, list: string): [number[], boolean] {
  const out: number[] = [];
  let negations = 0;
  for (const raw of list.split(",")) {
    let t = raw.trim().toUpperCase();
    if (t === "") continue;
    if (t.startsWith("!")) {
      negations++;
      t = t.slice(1).trim();
    }
    let n = QTYPE_BY_NAME.get(t);
    if (n === undefined) {
      const m = /^(?:TYPE)?(\d{1,5})$/.exec(t);
      if (m) n = Number(m[1]);
    }
    if (n === undefined || n < 1 || n > MAX_QTYPE) throw regexError(entry, `unknown query type "${raw.trim()}"`);
    out.push(n);
  }
  if (out.length === 0) throw regexError(entry, "querytype names no type");
  const negated = negations > 0;
  // `!A,AAAA` is read as "all but A and AAAA"; `A,!AAAA` has no sensible meaning.
  if (negated && negations !== out.length && !list.trim().startsWith("!")) throw regexError(entry, "querytype mixes negated and plain types");
  return [out, negated];
}

/** One parsed atom of an ERE, enough to emit JS source and to judge backtracking risk. */
interface ReNode {
  /** JS source of the atom, its quantifier excluded. */
  src: string;
  /** Quantifier source, "" if none. */
  q: string;
  /** The quantifier has no upper bound (`*`, `+`, `{n,}`). */
  unbounded: boolean;
  /** `.`, the one atom that also matches the separators other atoms rely on. */
  dot: boolean;
  /** A group's alternatives, else null. */
  alts: ReNode[][] | null;
}

/** Recursive-descent reader of POSIX ERE (as TRE takes it), emitting JS RegExp source. */
class EreTranslator {
  private i = 0;
  private groups = 0;
  private maxBackref = 0;

  constructor(
    private readonly entry: string,
    private readonly s: string,
  ) {}

  translate(): string {
    const alts = this.alternatives(0);
    if (this.i < this.s.length) throw this.fail("unmatched )");
    if (this.maxBackref > this.groups) throw this.fail(`back reference \\${this.maxBackref} to a group that does not exist`);
    if (backtracksBadly(alts)) {
      throw this.fail("nested unbounded repetition (like (a+)+ or (.*x)*) can take exponential time");
    }
    return emit(alts);
  }

  private fail(why: string): DnsInputError {
    return regexError(this.entry, why);
  }

  private alternatives(depth: number): ReNode[][] {
    const alts: ReNode[][] = [this.sequence(depth)];
    while (this.s[this.i] === "|") {
      this.i++;
      alts.push(this.sequence(depth));
    }
    return alts;
  }

  private sequence(depth: number): ReNode[] {
    const seq: ReNode[] = [];
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === "|" || (c === ")" && depth > 0)) break;
      if (c === ")") throw this.fail("unmatched )");
      if (c === "*" || c === "+" || c === "?" || c === "{") {
        const last = seq[seq.length - 1];
        if (last === undefined) throw this.fail(`nothing to repeat before '${c}' at ${this.i}`);
        this.quantifier(seq, last);
        continue;
      }
      const atom = this.atom(depth);
      if (atom !== null) seq.push(atom);
    }
    return seq;
  }

  private atom(depth: number): ReNode | null {
    const s = this.s;
    const c = s[this.i]!;
    if (c === "(") {
      if (s.startsWith("(?#", this.i)) {
        // TRE's comment extension: dropped, so it can contain anything but `)`.
        const end = s.indexOf(")", this.i);
        if (end < 0) throw this.fail("unterminated (?# comment");
        this.i = end + 1;
        return null;
      }
      let open = "(";
      if (s[this.i + 1] === "?") {
        if (s[this.i + 2] !== ":") throw this.fail(`unsupported group syntax at ${this.i}`);
        open = "(?:";
        this.i += 3;
      } else {
        this.groups++;
        this.i++;
      }
      const alts = this.alternatives(depth + 1);
      if (s[this.i] !== ")") throw this.fail("missing )");
      this.i++;
      return node(`${open}${emit(alts)})`, false, alts);
    }
    if (c === "[") return node(this.bracket(), false, null);
    if (c === "\\") return node(this.escape(), false, null);
    this.i++;
    if (c === ".") return node(".", true, null);
    return node(c, false, null);
  }

  /** Applies `*`, `+`, `?` or `{n,m}` to the last atom of `seq`. */
  private quantifier(seq: ReNode[], last: ReNode): void {
    const s = this.s;
    const c = s[this.i]!;
    let q: string;
    let unbounded: boolean;
    if (c === "{") {
      const close = s.indexOf("}", this.i);
      const inner = close < 0 ? "" : s.slice(this.i + 1, close);
      if (/^[~+\-#]/.test(inner)) throw this.fail("approximate matching ({~n}, {+n}, {-n}, {#n}) is not supported");
      const m = /^(\d{1,3})(,(\d{1,3})?)?$/.exec(inner);
      if (!m) throw this.fail(`invalid repetition {${inner}}`);
      const min = Number(m[1]);
      const max = m[3] === undefined ? (m[2] === undefined ? min : Infinity) : Number(m[3]);
      if (min > MAX_REPEAT || (max !== Infinity && (max > MAX_REPEAT || max < min))) throw this.fail(`invalid repetition {${inner}}`);
      q = `{${inner}}`;
      unbounded = max === Infinity;
      this.i = close + 1;
    } else {
      q = c;
      unbounded = c !== "?";
      this.i++;
    }
    let target = last;
    if (last.q !== "") {
      // `a**` or `a+?`: POSIX repeats the repetition (JS would read `+?` as lazy), so the
      // quantified atom becomes a group of its own.
      target = node(`(?:${last.src}${last.q})`, false, [[last]]);
      seq[seq.length - 1] = target;
    }
    target.q = q;
    target.unbounded = unbounded;
  }

  private escape(): string {
    const s = this.s;
    const d = s[this.i + 1];
    if (d === undefined) throw this.fail("trailing backslash");
    this.i += 2;
    if (d === "<") return "\\b(?=\\w)";
    if (d === ">") return "\\b(?<=\\w)";
    if ("wWsSdDbB".includes(d)) return `\\${d}`;
    if (d >= "1" && d <= "9") {
      this.maxBackref = Math.max(this.maxBackref, Number(d));
      return `\\${d}`;
    }
    if (/[A-Za-z0-9]/.test(d)) throw this.fail(`unsupported escape \\${d}`);
    return escapeLiteral(d);
  }

  /** `[...]` with POSIX rules: `]` first is literal, backslash is literal, `[:class:]`. */
  private bracket(): string {
    const s = this.s;
    let i = this.i + 1;
    let negate = false;
    if (s[i] === "^") {
      negate = true;
      i++;
    }
    type Item = { char: string } | { cls: string } | { dash: true };
    const items: Item[] = [];
    let first = true;
    for (;;) {
      if (i >= s.length) throw this.fail("unterminated [ ]");
      const c = s[i]!;
      if (c === "]" && !first) {
        i++;
        break;
      }
      first = false;
      const kind = s[i + 1];
      if (c === "[" && (kind === ":" || kind === "." || kind === "=")) {
        const end = s.indexOf(`${kind}]`, i + 2);
        if (end < 0) throw this.fail(`unterminated [${kind}`);
        const name = s.slice(i + 2, end);
        i = end + 2;
        if (kind === ":") {
          const cls = POSIX_CLASSES.get(name);
          if (cls === undefined) throw this.fail(`unknown character class [:${name}:]`);
          items.push({ cls });
        } else {
          if (name.length !== 1) throw this.fail(`unsupported collating element [${kind}${name}${kind}]`);
          items.push({ char: name });
        }
        continue;
      }
      items.push(c === "-" ? { dash: true } : { char: c });
      i++;
    }
    this.i = i;
    let out = "";
    let prevRangeEnd = false;
    for (let k = 0; k < items.length; k++) {
      const it = items[k]!;
      if ("dash" in it) {
        const prev = items[k - 1];
        const next = items[k + 1];
        const range: boolean = prev !== undefined && "char" in prev && !prevRangeEnd && next !== undefined && "char" in next;
        out += range ? "-" : "\\-";
        prevRangeEnd = range;
        if (range) {
          out += escapeClassChar((next as { char: string }).char);
          k++;
        }
        continue;
      }
      prevRangeEnd = false;
      out += "char" in it ? escapeClassChar(it.char) : it.cls;
    }
    return `[${negate ? "^" : ""}${out}]`;
  }
}

function node(src: string, dot: boolean, alts: ReNode[][] | null): ReNode {
  return { src, q: "", unbounded: false, dot, alts };
}

function emit(alts: ReNode[][]): string {
  return alts.map((seq) => seq.map((n) => n.src + n.q).join("")).join("|");
}

function escapeLiteral(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

function escapeClassChar(c: string): string {
  if (/[A-Za-z0-9]/.test(c)) return c;
  const code = c.charCodeAt(0);
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

function hasUnbounded(alts: ReNode[][]): boolean {
  return alts.some((seq) => seq.some((n) => n.unbounded || (n.alts !== null && hasUnbounded(n.alts))));
}

function hasUnboundedDot(alts: ReNode[][]): boolean {
  return alts.some((seq) => seq.some((n) => (n.dot && n.unbounded) || (n.alts !== null && hasUnboundedDot(n.alts))));
}

/**
 * The classic exponential shapes: a group repeated without bound that either contains `.`
 * repeated without bound (it can swallow whatever separates the iterations) or has an
 * alternative made only of repeated or optional parts, one of them unbounded (`(a+)+`,
 * `(a*b?)*`). `([^.]+\.)+` passes: its `\.` fixes where each iteration ends.
 */
function backtracksBadly(alts: ReNode[][]): boolean {
  for (const seq of alts) {
    for (const n of seq) {
      if (n.alts === null) continue;
      if (n.unbounded) {
        if (hasUnboundedDot(n.alts)) return true;
        for (const inner of n.alts) {
          const allRepeated = inner.length > 0 && inner.every((m) => m.q !== "");
          if (allRepeated && hasUnbounded([inner])) return true;
        }
      }
      if (backtracksBadly(n.alts)) return true;
    }
  }
  return false;
}

function translateEre(entry: string, body: string): string {
  return new EreTranslator(entry, body).translate();
}

// ---------------------------------------------------------------------------------------------
// State

interface StoredList extends ListRow {
  /** Validators of the last good download, sent back to get a cheap 304. */
  etag: string | null;
  lastModified: string | null;
  /** SHA-256 of the local copy: an unchanged download is recognised without reading it back. */
  sha256: string | null;
}

interface State {
  version: number;
  nextDomainId: number;
  nextListId: number;
  lastUpdate: number;
  domains: DomainRow[];
  lists: StoredList[];
}

/** A regex entry as check() runs it. */
interface Rule {
  id: number;
  re: RegExp;
  qtypes: readonly number[] | null;
  negated: boolean;
  invert: boolean;
  reply: string | null;
}

/** Everything check() needs for one group; immutable once built. */
interface View {
  allowExact: Map<string, number>;
  allowRegex: Rule[];
  denyExact: Map<string, number>;
  denyRegex: Rule[];
  anti: DomainSet;
  grav: DomainSet;
}

interface ListSets {
  grav: DomainSet;
  anti: DomainSet;
}

const EMPTY_SETS: ListSets = { grav: DomainSet.EMPTY, anti: DomainSet.EMPTY };

/** A build job and how its sets map back to groups. */
interface BuildPlan {
  job: ListBuildJob;
  /** Per group: the index of its block and allow set in the build. */
  perGroup: Map<number, { block: number; allow: number }>;
  /** Index of the set over all block lists. */
  union: number;
}

/** The compiled lists module, which the build worker imports. */
const LISTS_MODULE = new URL("./lists.js", import.meta.url).href;
// An eval'd CommonJS script keeps the worker free of any file of its own; it imports the lists
// module, builds, and hands the arrays back by transfer.
const BUILD_WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.module).then((m) => {
  const { message, transfer } = m.buildListSetsMessage(workerData.job);
  parentPort.postMessage(message, transfer);
});
`;

function buildInWorker(job: ListBuildJob): Promise<ListBuild> {
  return new Promise((resolve, reject) => {
    const w = new Worker(BUILD_WORKER_SOURCE, { eval: true, workerData: { module: LISTS_MODULE, job } });
    w.once("message", (m) => resolve(unpackListBuild(m)));
    w.once("error", reject);
    // After a message this is a no-op; without one it is the failure.
    w.once("exit", (code) => reject(new Error(`exited with code ${code} before answering`)));
  });
}

function emptyView(sets: ListSets): View {
  return { allowExact: new Map(), allowRegex: [], denyExact: new Map(), denyRegex: [], anti: sets.anti, grav: sets.grav };
}

function ruleApplies(r: Rule, name: string, qtype: number): boolean {
  if (r.qtypes !== null && r.qtypes.includes(qtype) === r.negated) return false;
  return r.re.test(name) !== r.invert;
}

function checkGroups(groups: unknown): number[] {
  if (!Array.isArray(groups) || !groups.every((g) => Number.isInteger(g) && g >= 0)) {
    throw new DnsInputError("body_error", "groups must be an array of non-negative integers");
  }
  return [...new Set(groups as number[])].sort((a, b) => a - b);
}

function checkFields(fields: EntryFields): void {
  if (fields.comment !== undefined && fields.comment !== null && typeof fields.comment !== "string") {
    throw new DnsInputError("body_error", "comment must be a string or null");
  }
  if (fields.enabled !== undefined && typeof fields.enabled !== "boolean") {
    throw new DnsInputError("body_error", "enabled must be a boolean");
  }
  if (fields.groups !== undefined) checkGroups(fields.groups);
}

/** Why an address cannot be subscribed, or null if it can. */
function addressProblem(address: string): string | null {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return "not a URL";
  }
  if (url.protocol === "http:" || url.protocol === "https:") return url.hostname === "" ? "no host" : null;
  if (url.protocol === "file:") {
    if (url.hostname !== "" && url.hostname !== "localhost") return "file URL with a host";
    return url.pathname.startsWith("/") ? null : "file URL without an absolute path";
  }
  return `unsupported scheme ${url.protocol} (http, https or file)`;
}

function publicList(l: StoredList): ListRow {
  return {
    id: l.id,
    address: l.address,
    comment: l.comment,
    groups: [...l.groups],
    enabled: l.enabled,
    type: l.type,
    date_added: l.date_added,
    date_modified: l.date_modified,
    date_updated: l.date_updated,
    number: l.number,
    invalid_domains: l.invalid_domains,
    abp_entries: l.abp_entries,
    status: l.status,
  };
}

function publicDomain(d: DomainRow): DomainRow {
  return { ...d, groups: [...d.groups] };
}

class TooLarge extends Error {
  constructor(limit: number) {
    super(`too large (over ${limit} bytes)`);
  }
}

interface Download {
  status: ListStatus;
  error: string | null;
  /** New validators/hash when the download succeeded. */
  etag?: string | null;
  lastModified?: string | null;
  sha256?: string;
  bytes?: number;
}

// ---------------------------------------------------------------------------------------------

export class DnsFilter implements DnsFilterApi {
  /** Bumped whenever anything that affects decisions changes; cached decisions older than it are stale. */
  generation = 0;
  /** For the last check(): a deny regex's `reply=` override, else null. */
  lastReply: string | null = null;
  /** For the last check(): the list that decided, else -1. */
  lastListId = -1;
  /** For the last check(): the domain entry that decided, else -1. */
  lastRuleId = -1;

  private views = new Map<number, View>();
  private readonly noView: View = emptyView(EMPTY_SETS);
  private listSets = new Map<number, ListSets>();
  private gravityCount = 0;
  private readonly rules = new Map<number, Rule>();
  private running: Promise<UpdateReport> | null = null;
  private progressSinks: ((line: string) => void)[] = [];
  private rebuildLoop: Promise<void> | null = null;
  private rebuildWanted = false;
  private lastBuildMs = 0;

  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly maxListBytes: number;
  private readonly timeoutMs: number;
  private readonly log: FilterLog;
  private readonly buildInWorker: boolean;

  private constructor(
    private readonly dir: string,
    private readonly state: State,
    opts: DnsFilterOptions,
  ) {
    this.fetchImpl = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
    this.maxListBytes = opts.maxListBytes ?? DEFAULT_MAX_LIST_BYTES;
    this.timeoutMs = opts.downloadTimeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS;
    this.log = opts.log ?? SILENT;
    this.buildInWorker = opts.buildInWorker ?? true;
  }

  /**
   * Opens (or creates) the filter in `dir` and builds the sets from the local list copies,
   * synchronously and without network, so the result blocks at once.
   */
  static open(dir: string, opts: DnsFilterOptions = {}): DnsFilter {
    mkdirSync(join(dir, LISTS_DIR), { recursive: true });
    const file = join(dir, STATE_FILE);
    let state: State;
    if (existsSync(file)) {
      try {
        state = JSON.parse(readFileSync(file, "utf8")) as State;
      } catch (e) {
        throw new Error(`DnsFilter: ${file} is not valid JSON (${(e as Error).message}); fix or remove it`);
      }
      if (state.version !== STATE_VERSION) throw new Error(`DnsFilter: ${file} has version ${state.version}, expected ${STATE_VERSION}`);
    } else {
      state = { version: STATE_VERSION, nextDomainId: 1, nextListId: 1, lastUpdate: 0, domains: [], lists: [] };
    }
    const f = new DnsFilter(dir, state, opts);
    f.removeStrayCopies();
    for (const d of state.domains) if (d.kind === "regex") f.compileRule(d);
    // Synchronous on purpose: the resolver should not answer before the lists apply.
    const plan = f.planBuild();
    f.applyBuild(plan, buildListSets(plan.job));
    f.compose();
    return f;
  }

  // --- hot path ------------------------------------------------------------------------------

  /**
   * Decides one query for a client in `group`, in Pi-hole's order: exact allow, regex allow,
   * exact deny, allow lists, block lists (ABP entries cover subdomains), regex deny. `name` is
   * lower-case ASCII without the trailing dot. Sets lastReply, lastListId and lastRuleId.
   */
  check(name: string, qtype: number, group: number): number {
    const v = this.views.get(group) ?? this.noView;
    this.lastReply = null;
    this.lastListId = -1;
    this.lastRuleId = -1;
    let id = v.allowExact.get(name);
    if (id !== undefined) {
      this.lastRuleId = id;
      return Decide.ALLOW_EXACT;
    }
    const allowRegex = v.allowRegex;
    for (let i = 0; i < allowRegex.length; i++) {
      const r = allowRegex[i]!;
      if (ruleApplies(r, name, qtype)) {
        this.lastRuleId = r.id;
        return Decide.ALLOW_REGEX;
      }
    }
    id = v.denyExact.get(name);
    if (id !== undefined) {
      this.lastRuleId = id;
      return Decide.DENY_EXACT;
    }
    if ((v.anti.size > 0 || v.grav.size > 0) && prepareQuery(name)) {
      let k = v.anti.matchPrepared();
      if (k >= 0) {
        this.lastListId = v.anti.tagAt(k);
        return Decide.ALLOW_LIST;
      }
      k = v.grav.matchPrepared();
      if (k >= 0) {
        this.lastListId = v.grav.tagAt(k);
        return Decide.DENY_LIST;
      }
    }
    const denyRegex = v.denyRegex;
    for (let i = 0; i < denyRegex.length; i++) {
      const r = denyRegex[i]!;
      if (ruleApplies(r, name, qtype)) {
        this.lastRuleId = r.id;
        this.lastReply = r.reply;
        return Decide.DENY_REGEX;
      }
    }
    return Decide.NONE;
  }

  // --- domains -------------------------------------------------------------------------------

  listDomains(q: { type?: DomainType; kind?: DomainKind; domain?: string }): DomainRow[] {
    let wanted: string | null = null;
    if (q.domain !== undefined) {
      const n = normalizeDomain(q.domain.trim());
      wanted = typeof n === "string" ? n : null;
    }
    return this.state.domains
      .filter((d) => (q.type === undefined || d.type === q.type) && (q.kind === undefined || d.kind === q.kind))
      .filter((d) => q.domain === undefined || d.domain === q.domain || (d.kind === "exact" && d.domain === wanted))
      .map(publicDomain);
  }

  addDomains(type: DomainType, kind: DomainKind, items: string[], fields: EntryFields): { rows: DomainRow[]; processed: Processed } {
    checkFields(fields);
    // Pi-hole refuses the whole request for a regex that does not compile.
    if (kind === "regex") for (const item of items) compileRegex(item);
    const processed: Processed = { success: [], errors: [] };
    const rows: DomainRow[] = [];
    const now = this.seconds();
    let changed = false;
    for (const item of items) {
      const key = this.entryKey(kind, item);
      if (typeof key !== "string") {
        processed.errors.push({ item, error: `Invalid domain: ${key.why}` });
        continue;
      }
      const existing = this.findDomain(type, kind, key);
      if (existing !== undefined) {
        processed.errors.push({ item, error: DUPLICATE_DOMAIN });
        rows.push(publicDomain(existing));
        continue;
      }
      const row: DomainRow = {
        id: this.state.nextDomainId++,
        domain: key,
        unicode: kind === "exact" ? domainToUnicode(key) || key : key,
        type,
        kind,
        comment: fields.comment ?? null,
        groups: fields.groups !== undefined ? checkGroups(fields.groups) : [DEFAULT_GROUP],
        enabled: fields.enabled ?? true,
        date_added: now,
        date_modified: now,
      };
      if (kind === "regex") this.compileRule(row);
      this.state.domains.push(row);
      processed.success.push({ item });
      rows.push(publicDomain(row));
      changed = true;
    }
    if (changed) this.commitDomains();
    return { rows, processed };
  }

  putDomain(
    type: DomainType,
    kind: DomainKind,
    domain: string,
    fields: EntryFields & { type?: DomainType; kind?: DomainKind },
  ): DomainRow {
    checkFields(fields);
    const toType = fields.type ?? type;
    const toKind = fields.kind ?? kind;
    const toKey = this.entryKey(toKind, domain);
    if (typeof toKey !== "string") throw new DnsInputError("bad_request", `Invalid domain ${domain}`, toKey.why);
    if (toKind === "regex") compileRegex(toKey);
    const fromKey = this.entryKey(kind, domain);
    const current = typeof fromKey === "string" ? this.findDomain(type, kind, fromKey) : undefined;
    const occupant = this.findDomain(toType, toKind, toKey);
    if (current !== undefined && occupant !== undefined && occupant !== current) {
      throw new DnsInputError("bad_request", DUPLICATE_DOMAIN, `${toKey} is already a ${toType}/${toKind} entry`);
    }
    const now = this.seconds();
    let row = current ?? occupant;
    if (row === undefined) {
      row = {
        id: this.state.nextDomainId++,
        domain: toKey,
        unicode: toKey,
        type: toType,
        kind: toKind,
        comment: null,
        groups: [DEFAULT_GROUP],
        enabled: true,
        date_added: now,
        date_modified: now,
      };
      this.state.domains.push(row);
    }
    row.domain = toKey;
    row.unicode = toKind === "exact" ? domainToUnicode(toKey) || toKey : toKey;
    row.type = toType;
    row.kind = toKind;
    if (fields.comment !== undefined) row.comment = fields.comment;
    if (fields.enabled !== undefined) row.enabled = fields.enabled;
    if (fields.groups !== undefined) row.groups = checkGroups(fields.groups);
    row.date_modified = now;
    this.rules.delete(row.id);
    if (toKind === "regex") this.compileRule(row);
    this.commitDomains();
    return publicDomain(row);
  }

  deleteDomain(type: DomainType, kind: DomainKind, domain: string): boolean {
    const deleted = this.removeDomain(type, kind, domain);
    if (deleted) this.commitDomains();
    return deleted;
  }

  batchDeleteDomains(items: { item: string; type: DomainType; kind: DomainKind }[]): number {
    let n = 0;
    for (const it of items) if (this.removeDomain(it.type, it.kind, it.item)) n++;
    if (n > 0) this.commitDomains();
    return n;
  }

  private removeDomain(type: DomainType, kind: DomainKind, domain: string): boolean {
    const key = this.entryKey(kind, domain);
    if (typeof key !== "string") return false;
    const row = this.findDomain(type, kind, key);
    if (row === undefined) return false;
    this.state.domains.splice(this.state.domains.indexOf(row), 1);
    this.rules.delete(row.id);
    return true;
  }

  /** How an entry is stored: exact names normalized (lower-case punycode), regexes as given. */
  private entryKey(kind: DomainKind, item: string): string | { why: string } {
    return kind === "exact" ? normalizeDomain(item.trim()) : item;
  }

  private findDomain(type: DomainType, kind: DomainKind, key: string): DomainRow | undefined {
    return this.state.domains.find((d) => d.type === type && d.kind === kind && d.domain === key);
  }

  private compileRule(row: DomainRow): void {
    try {
      const r = compileRegex(row.domain);
      this.rules.set(row.id, { id: row.id, re: r.re, qtypes: r.qtypes, negated: r.qtypesNegated, invert: r.invert, reply: r.reply });
    } catch (e) {
      // Only reachable for a stored pattern this version refuses; it stays listed but inert.
      this.log.warn(`dns filter: regex entry ${row.id} ${JSON.stringify(row.domain)} ignored: ${(e as DnsInputError).hint ?? (e as Error).message}`);
    }
  }

  private commitDomains(): void {
    this.save();
    this.compose();
  }

  // --- lists ---------------------------------------------------------------------------------

  listLists(q: { type?: ListType; address?: string }): ListRow[] {
    return this.state.lists
      .filter((l) => (q.type === undefined || l.type === q.type) && (q.address === undefined || l.address === q.address))
      .map(publicList);
  }

  addLists(type: ListType, addresses: string[], fields: EntryFields): { rows: ListRow[]; processed: Processed } {
    checkFields(fields);
    const processed: Processed = { success: [], errors: [] };
    const rows: ListRow[] = [];
    const now = this.seconds();
    let changed = false;
    for (const item of addresses) {
      const address = item.trim();
      const problem = addressProblem(address);
      if (problem !== null) {
        processed.errors.push({ item, error: `Invalid list address: ${problem}` });
        continue;
      }
      const existing = this.findList(type, address);
      if (existing !== undefined) {
        processed.errors.push({ item, error: DUPLICATE_LIST });
        rows.push(publicList(existing));
        continue;
      }
      const row = this.newList(type, address, fields, now);
      this.state.lists.push(row);
      processed.success.push({ item });
      rows.push(publicList(row));
      changed = true;
    }
    // A new list has no content until the next update(), so the sets stay as they are.
    if (changed) this.save();
    return { rows, processed };
  }

  putList(type: ListType, address: string, fields: EntryFields): ListRow {
    checkFields(fields);
    const addr = address.trim();
    const now = this.seconds();
    let row = this.findList(type, addr);
    if (row === undefined) {
      const problem = addressProblem(addr);
      if (problem !== null) throw new DnsInputError("bad_request", `Invalid list address ${address}`, problem);
      row = this.newList(type, addr, fields, now);
      this.state.lists.push(row);
      this.save();
      return publicList(row);
    }
    const before = `${row.enabled}|${row.groups.join(",")}`;
    if (fields.comment !== undefined) row.comment = fields.comment;
    if (fields.enabled !== undefined) row.enabled = fields.enabled;
    if (fields.groups !== undefined) row.groups = checkGroups(fields.groups);
    row.date_modified = now;
    this.save();
    if (before !== `${row.enabled}|${row.groups.join(",")}`) void this.requestRebuild();
    return publicList(row);
  }

  deleteList(type: ListType, address: string): boolean {
    const deleted = this.removeList(type, address.trim());
    if (deleted) {
      this.save();
      void this.requestRebuild();
    }
    return deleted;
  }

  batchDeleteLists(items: { item: string; type: ListType }[]): number {
    let n = 0;
    for (const it of items) if (this.removeList(it.type, it.item.trim())) n++;
    if (n > 0) {
      this.save();
      void this.requestRebuild();
    }
    return n;
  }

  private removeList(type: ListType, address: string): boolean {
    const row = this.findList(type, address);
    if (row === undefined) return false;
    this.state.lists.splice(this.state.lists.indexOf(row), 1);
    rmSync(this.copyPath(row.id), { force: true });
    return true;
  }

  private findList(type: ListType, address: string): StoredList | undefined {
    return this.state.lists.find((l) => l.type === type && l.address === address);
  }

  private newList(type: ListType, address: string, fields: EntryFields, now: number): StoredList {
    return {
      id: this.state.nextListId++,
      address,
      comment: fields.comment ?? null,
      groups: fields.groups !== undefined ? checkGroups(fields.groups) : [DEFAULT_GROUP],
      enabled: fields.enabled ?? true,
      type,
      date_added: now,
      date_modified: now,
      date_updated: 0,
      number: 0,
      invalid_domains: 0,
      abp_entries: 0,
      status: ListStatus.NEVER,
      etag: null,
      lastModified: null,
      sha256: null,
    };
  }

  /**
   * Resolves when list changes made so far are in effect (after a list is disabled, regrouped
   * or deleted, the sets are rebuilt from the local copies in the background) and no update runs.
   */
  async idle(): Promise<void> {
    while (this.rebuildLoop !== null || this.running !== null) {
      // A failed update is its caller's to report; here it only means "no longer running".
      await (this.rebuildLoop ?? this.running)!.catch(() => {});
    }
  }

  // --- update (gravity run) ------------------------------------------------------------------

  /**
   * Downloads every enabled list, then builds the new sets and swaps them in. Concurrent calls
   * share one run (a later caller's `progress` receives the lines from then on).
   */
  update(progress?: (line: string) => void): Promise<UpdateReport> {
    if (progress !== undefined) this.progressSinks.push(progress);
    if (this.running === null) {
      this.running = this.runUpdate().finally(() => {
        this.running = null;
        this.progressSinks = [];
      });
    }
    return this.running;
  }

  private say(line: string): void {
    for (const sink of this.progressSinks) {
      try {
        sink(line);
      } catch {
        // A failing progress consumer (a closed HTTP stream) must not stop the update.
      }
    }
  }

  private async runUpdate(): Promise<UpdateReport> {
    const lists = this.state.lists.filter((l) => l.enabled).sort((a, b) => a.id - b.id);
    this.say(`  [i] Updating ${lists.length} enabled list${lists.length === 1 ? "" : "s"}`);
    const results = new Map<number, Download>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < lists.length) {
        const l = lists[next++]!;
        results.set(l.id, await this.download(l));
      }
    };
    await Promise.all(Array.from({ length: Math.min(DOWNLOAD_CONCURRENCY, lists.length) }, worker));

    const now = this.seconds();
    for (const l of lists) {
      const r = results.get(l.id)!;
      if (!this.state.lists.includes(l)) {
        // Deleted while downloading: drop the copy it may have left.
        rmSync(this.copyPath(l.id), { force: true });
        continue;
      }
      l.status = r.status;
      if (r.sha256 !== undefined) {
        l.sha256 = r.sha256;
        l.etag = r.etag ?? null;
        l.lastModified = r.lastModified ?? null;
      }
      if (r.status === ListStatus.DOWNLOADED) l.date_updated = now;
      if (r.status === ListStatus.UNAVAILABLE) {
        l.number = 0;
        l.invalid_domains = 0;
        l.abp_entries = 0;
      }
    }

    this.say("  [i] Building the list sets");
    await this.requestRebuild();
    const buildMs = this.lastBuildMs;
    this.state.lastUpdate = now;
    this.save();
    for (const l of lists) {
      if (l.status !== ListStatus.UNAVAILABLE && this.state.lists.includes(l)) {
        this.say(`  [✓] ${l.address}: ${l.number} domains (${l.abp_entries} ABP-style), ${l.invalid_domains} invalid`);
      }
    }
    this.say(`  [✓] ${this.gravityCount} distinct domains on block lists (built in ${Math.round(buildMs)} ms)`);

    const reports: ListUpdate[] = lists
      .filter((l) => this.state.lists.includes(l))
      .map((l) => ({
        id: l.id,
        address: l.address,
        status: l.status,
        number: l.number,
        invalid_domains: l.invalid_domains,
        abp_entries: l.abp_entries,
        error: results.get(l.id)!.error,
      }));
    return { lists: reports, domains: this.gravityCount, buildMs };
  }

  /** Fetches one list into its local copy; never throws. */
  private async download(l: StoredList): Promise<Download> {
    const path = this.copyPath(l.id);
    const part = `${path}.part`;
    const hasCopy = existsSync(path);
    this.say(`  [i] Downloading ${l.address}`);
    try {
      let chunks: AsyncIterable<Uint8Array>;
      let etag: string | null = null;
      let lastModified: string | null = null;
      const url = new URL(l.address);
      if (url.protocol === "file:") {
        const file = fileURLToPath(url);
        const size = statSync(file).size;
        if (size > this.maxListBytes) throw new TooLarge(this.maxListBytes);
        chunks = readChunks(file);
      } else {
        const headers: Record<string, string> = { "user-agent": USER_AGENT };
        if (hasCopy && l.etag !== null) headers["if-none-match"] = l.etag;
        if (hasCopy && l.lastModified !== null) headers["if-modified-since"] = l.lastModified;
        const res = await this.fetchImpl(l.address, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
        const body = res.body;
        // For the answers whose body is not read: release the connection.
        const cancel = (): void => void body?.cancel().catch(() => {});
        if (res.status === 304 && hasCopy) {
          cancel();
          this.say(`  [✓] ${l.address}: not modified`);
          return { status: ListStatus.UNCHANGED, error: null };
        }
        if (!res.ok) {
          cancel();
          throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`);
        }
        const length = Number(res.headers.get("content-length") ?? NaN);
        if (length > this.maxListBytes) {
          cancel();
          throw new TooLarge(this.maxListBytes);
        }
        etag = res.headers.get("etag");
        lastModified = res.headers.get("last-modified");
        if (body === null) throw new Error("empty response");
        chunks = streamChunks(body);
      }
      const { sha256, bytes } = await this.writeCopy(chunks, part);
      if (hasCopy && sha256 === l.sha256) {
        await rm(part, { force: true });
        this.say(`  [✓] ${l.address}: unchanged (${bytes} bytes)`);
        return { status: ListStatus.UNCHANGED, error: null, sha256, etag, lastModified, bytes };
      }
      renameSync(part, path);
      this.say(`  [✓] ${l.address}: ${bytes} bytes`);
      return { status: ListStatus.DOWNLOADED, error: null, sha256, etag, lastModified, bytes };
    } catch (e) {
      await rm(part, { force: true }).catch(() => {});
      const error = e instanceof TooLarge ? e.message : describeError(e);
      const status = hasCopy ? ListStatus.CACHED : ListStatus.UNAVAILABLE;
      this.say(`  [✗] ${l.address}: ${error}; ${hasCopy ? "using the local copy" : "no local copy"}`);
      this.log.warn(`dns filter: list ${l.address}: ${error}`);
      return { status, error };
    }
  }

  /** Streams chunks into `part`, hashing them and enforcing the size cap. */
  private async writeCopy(chunks: AsyncIterable<Uint8Array>, part: string): Promise<{ sha256: string; bytes: number }> {
    const hash = createHash("sha256");
    const fh = await openFile(part, "w");
    let bytes = 0;
    try {
      for await (const chunk of chunks) {
        bytes += chunk.byteLength;
        if (bytes > this.maxListBytes) throw new TooLarge(this.maxListBytes);
        hash.update(chunk);
        await fh.write(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { sha256: hash.digest("hex"), bytes };
  }

  // --- building ------------------------------------------------------------------------------

  /**
   * What to build: one DomainSet per distinct combination of lists that some group sees (groups
   * seeing the same lists share a set, and every set shares its type's arena), plus the union of
   * all block lists for the gravity count.
   */
  private planBuild(): BuildPlan {
    const enabled = this.state.lists.filter((l) => l.enabled && existsSync(this.copyPath(l.id))).sort((a, b) => a.id - b.id);
    const sets: Record<ListType, number[][]> = { block: [], allow: [] };
    const known: Record<ListType, Map<string, number>> = { block: new Map(), allow: new Map() };
    const combo = (type: ListType, ids: number[]): number => {
      const key = ids.join(",");
      let i = known[type].get(key);
      if (i === undefined) {
        i = sets[type].push(ids) - 1;
        known[type].set(key, i);
      }
      return i;
    };
    const groups = new Set<number>([DEFAULT_GROUP]);
    for (const l of enabled) for (const g of l.groups) groups.add(g);
    const perGroup = new Map<number, { block: number; allow: number }>();
    for (const g of groups) {
      const of = (type: ListType): number[] => enabled.filter((l) => l.type === type && l.groups.includes(g)).map((l) => l.id);
      perGroup.set(g, { block: combo("block", of("block")), allow: combo("allow", of("allow")) });
    }
    const union = combo("block", enabled.filter((l) => l.type === "block").map((l) => l.id));
    const source = (type: ListType): ListSource[] =>
      enabled.filter((l) => l.type === type).map((l) => ({ id: l.id, path: this.copyPath(l.id) }));
    return { job: { block: source("block"), allow: source("allow"), blockSets: sets.block, allowSets: sets.allow }, perGroup, union };
  }

  /** Takes a finished build: list counts, the per-group sets, the gravity count. */
  private applyBuild(plan: BuildPlan, build: ListBuild): void {
    for (const [id, c] of build.counts) {
      // A list deleted while the build ran has no row to update.
      const l = this.state.lists.find((x) => x.id === id);
      if (l === undefined) continue;
      l.number = c.domains;
      l.invalid_domains = c.invalid;
      l.abp_entries = c.abp;
    }
    for (const [id, message] of build.errors) this.log.warn(`dns filter: cannot read the copy of list ${id}: ${message}`);
    const sets = new Map<number, ListSets>();
    for (const [g, i] of plan.perGroup) sets.set(g, { grav: build.block[i.block]!, anti: build.allow[i.allow]! });
    this.listSets = sets;
    this.gravityCount = build.block[plan.union]!.size;
  }

  /**
   * Rebuilds the list sets from the local copies and swaps them in. Requests made while a build
   * runs are served by one more build after it, so the last one always sees the latest lists.
   */
  private requestRebuild(): Promise<void> {
    this.rebuildWanted = true;
    if (this.rebuildLoop === null) {
      this.rebuildLoop = (async () => {
        // Edits made in the same turn (a batch delete, several PUTs) share one build.
        await new Promise<void>((resolve) => setImmediate(resolve));
        while (this.rebuildWanted) {
          this.rebuildWanted = false;
          try {
            await this.rebuild();
          } catch (e) {
            this.log.warn(`dns filter: rebuilding the list sets failed: ${(e as Error).message}`);
          }
        }
      })().finally(() => {
        this.rebuildLoop = null;
      });
    }
    return this.rebuildLoop;
  }

  private async rebuild(): Promise<void> {
    const plan = this.planBuild();
    const t0 = performance.now();
    let build: ListBuild;
    if (this.buildInWorker) {
      try {
        build = await buildInWorker(plan.job);
      } catch (e) {
        this.log.warn(`dns filter: list build worker failed (${(e as Error).message}); building on the main thread`);
        build = buildListSets(plan.job);
      }
    } else {
      build = buildListSets(plan.job);
    }
    this.lastBuildMs = performance.now() - t0;
    this.applyBuild(plan, build);
    this.save();
    this.compose();
  }

  /** Builds the per-group views from the entries and list sets, and swaps them in. */
  private compose(): void {
    const groups = new Set<number>([DEFAULT_GROUP, ...this.listSets.keys()]);
    const active = this.state.domains.filter((d) => d.enabled).sort((a, b) => a.id - b.id);
    for (const d of active) for (const g of d.groups) groups.add(g);
    const views = new Map<number, View>();
    for (const g of groups) views.set(g, emptyView(this.listSets.get(g) ?? EMPTY_SETS));
    for (const d of active) {
      const rule = d.kind === "regex" ? this.rules.get(d.id) : undefined;
      if (d.kind === "regex" && rule === undefined) continue;
      for (const g of d.groups) {
        const v = views.get(g)!;
        if (d.kind === "exact") (d.type === "allow" ? v.allowExact : v.denyExact).set(d.domain, d.id);
        else (d.type === "allow" ? v.allowRegex : v.denyRegex).push(rule!);
      }
    }
    this.views = views;
    this.generation++;
  }

  // --- misc ----------------------------------------------------------------------------------

  counts(): FilterCounts {
    const on = this.state.domains.filter((d) => d.enabled);
    const n = (type: DomainType, kind: DomainKind): number => on.filter((d) => d.type === type && d.kind === kind).length;
    return {
      gravity: this.gravityCount,
      lastUpdate: this.state.lastUpdate,
      allowExact: n("allow", "exact"),
      denyExact: n("deny", "exact"),
      allowRegex: n("allow", "regex"),
      denyRegex: n("deny", "regex"),
      lists: this.state.lists.filter((l) => l.enabled).length,
    };
  }

  /** The block-list set a group uses (groups that see the same lists share one); for diagnostics. */
  gravitySet(group: number): DomainSet {
    return (this.views.get(group) ?? this.noView).grav;
  }

  /** Drops half-written downloads and copies of lists no longer subscribed (left by a crash). */
  private removeStrayCopies(): void {
    const keep = new Set(this.state.lists.map((l) => `${l.id}.txt`));
    for (const name of readdirSync(join(this.dir, LISTS_DIR))) {
      if (!keep.has(name)) rmSync(join(this.dir, LISTS_DIR, name), { force: true, recursive: true });
    }
  }

  private copyPath(id: number): string {
    return join(this.dir, LISTS_DIR, `${id}.txt`);
  }

  private seconds(): number {
    return Math.floor(this.now() / MS_PER_S);
  }

  /** Writes the state to a temporary file, flushes it and renames it over the old one. */
  private save(): void {
    const file = join(this.dir, STATE_FILE);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, JSON.stringify(this.state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
}

async function* readChunks(file: string): AsyncIterable<Uint8Array> {
  const fh = await openFile(file, "r");
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(FILE_CHUNK);
      const { bytesRead } = await fh.read(buf, 0, FILE_CHUNK, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function* streamChunks(body: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = body.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    // Abandoned early (too large, disk error): cancelling closes the connection instead of
    // leaving the rest of the body to arrive for nobody.
    if (!done) await reader.cancel().catch(() => {});
  }
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === "TimeoutError") return "timed out";
  // fetch wraps the network cause ("fetch failed"); the cause says what actually happened.
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${e.message}: ${(cause as { code?: string }).code ?? cause.message}`;
  return e.message;
}
