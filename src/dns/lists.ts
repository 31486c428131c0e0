// Blocklist parsing (hosts, plain domain lists, ABP `||domain^`, and `@@||domain^` exceptions for
// allow lists) in the manner of Pi-hole's gravity, and DomainSet: a compact, immutable set of the
// result with allocation-free lookups.
//
// The list path works on bytes, not strings: a 1M-line list is read as one Buffer, each valid
// name is lower-cased straight into a NameArena (one growing byte array plus per-name typed
// arrays), and DomainSet indexes the arena without copying it. Splitting a 40 MB list into
// line and word strings first cost ~2 s and ~300 MB; the byte path is several times cheaper.

import { closeSync, openSync, readSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { domainToASCII } from "node:url";

export type ListFormat = "hosts" | "plain" | "abp" | "mixed";

/** One blocked name; `subdomains` is true for ABP `||name^`, which also blocks every child. */
export interface DomainEntry {
  name: string;
  subdomains: boolean;
}

export interface SkippedLine {
  /** 1-based line number. */
  line: number;
  /** The offending line (trimmed), or for one bad name on a hosts line, that name. */
  text: string;
  why: string;
}

export interface ParsedList {
  /** Normalized names in file order; duplicates are kept (DomainSet.build removes them). */
  domains: string[];
  /** The same names with whether each covers subdomains, ready for DomainSet.build. */
  entries: DomainEntry[];
  /** `@@||name^` exception rules, when asked for with `{ exceptions: true }` (else they are skipped). */
  exceptions: DomainEntry[];
  skipped: SkippedLine[];
  format: ListFormat;
}

/** What scanning one list found; the numbers Pi-hole reports per list. */
export interface ListCounts {
  /** Valid names taken, exceptions included (duplicates within the list counted). */
  domains: number;
  /** Lines, or names on hosts lines, that were skipped. */
  invalid: number;
  /** ABP-style rules taken (`||name^`, and `@@||name^` when exceptions are collected). */
  abp: number;
  /** `@@||name^` rules taken. */
  exceptions: number;
  format: ListFormat;
}

/** Names that every stock hosts file maps; they are boilerplate, not block entries. */
const LOCAL_NAMES = ["localhost", "localhost.localdomain", "local", "broadcasthost"].map((s) => Buffer.from(s, "latin1"));
const IP6_PREFIX = Buffer.from("ip6-", "latin1");

export const EXCEPTION_WHY = "exception (allow) rule";
const UNSUPPORTED_ABP = "unsupported ABP rule (only ||domain^ is supported)";
const COSMETIC_WHY = "cosmetic (element hiding) rule";
const NO_HOST_WHY = "hosts entry without a host name";
const IP_NAME_WHY = "IP address, not a host name";
const MULTI_WORD_WHY = "unrecognised line: several words without a leading IP address";

/** RFC 1035 limits. */
const MAX_NAME = 253;
const MAX_LABEL = 63;
/** Room reserved in the arena before writing one name: the longest name plus slack. */
const NAME_ROOM = 256;

const CH_TAB = 9;
const CH_LF = 10;
const CH_VT = 11;
const CH_FF = 12;
const CH_CR = 13;
const CH_SPACE = 32;
const CH_BANG = 33;
const CH_HASH = 35;
const CH_DOLLAR = 36;
const CH_PERCENT = 37;
const CH_COMMA = 44;
const CH_DASH = 45;
const CH_DOT = 46;
const CH_SLASH = 47;
const CH_COLON = 58;
const CH_QUESTION = 63;
const CH_AT = 64;
const CH_LBRACKET = 91;
const CH_CARET = 94;
const CH_UNDERSCORE = 95;
const CH_PIPE = 124;
const CH_LOWER_B = 98;
const CH_LOWER_I = 105;
const CH_LOWER_L = 108;
/** UTF-8 byte order mark, which some Windows-made lists start with. */
const BOM = [0xef, 0xbb, 0xbf];

/**
 * Lower-cases, strips one trailing dot, converts IDN to punycode and validates a name.
 * Returns the normalized name, or `{ why }` saying what is wrong with it.
 */
export function normalizeDomain(text: string): string | { why: string } {
  let s = text;
  let len = s.length;
  if (len > 0 && s.charCodeAt(len - 1) === CH_DOT) len--;
  if (len === 0) return { why: "empty name" };
  if (len > MAX_NAME) return { why: "name longer than 253 characters" };
  let upper = false;
  let labelStart = 0;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : CH_DOT;
    if (c === CH_DOT) {
      const n = i - labelStart;
      if (n === 0) return { why: "empty label" };
      if (n > MAX_LABEL) return { why: "label longer than 63 characters" };
      if (s.charCodeAt(labelStart) === CH_DASH || s.charCodeAt(i - 1) === CH_DASH) {
        return { why: "label starts or ends with '-'" };
      }
      labelStart = i + 1;
    } else if (c >= 97 && c <= 122) {
      // The common case first.
    } else if (c >= 65 && c <= 90) {
      upper = true;
    } else if (c > 127) {
      return normalizeIdn(text);
    } else if (!((c >= 48 && c <= 57) || c === CH_DASH || c === CH_UNDERSCORE)) {
      return { why: `invalid character '${s[i]}'` };
    }
  }
  if (len !== s.length) s = s.slice(0, len);
  return upper ? s.toLowerCase() : s;
}

function normalizeIdn(text: string): string | { why: string } {
  const ascii = domainToASCII(text);
  // An empty result is how domainToASCII reports failure; a non-ASCII result cannot happen,
  // but checking it keeps normalizeDomain from recursing forever.
  if (ascii === "" || /[^\x00-\x7f]/.test(ascii)) return { why: "invalid internationalized domain name" };
  return normalizeDomain(ascii);
}

// FNV-1a over the bytes from last to first: the running hash at each label boundary is then
// the hash of that suffix, so a suffix lookup gets every parent's hash in one pass.
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = end - 1; i >= start; i--) h = Math.imul(h ^ b[i]!, FNV_PRIME);
  return h >>> 0;
}

const ENTRY_HINT = 1024;
/** A typical name length, to size an arena from an entry count. */
const AVERAGE_NAME = 16;
/** Returned by putName when an in-place scan has no room for an IDN's longer punycode form. */
const DEFERRED = -2;

/**
 * Normalized names appended into one byte array, with each name's start, length, suffix hash,
 * flags and tag (the list it came from) in parallel typed arrays that grow by doubling.
 * DomainSet indexes an arena without copying its bytes, so sets for several groups share them.
 *
 * An arena can also be laid over the list text itself (NameArena.over): scanList then writes
 * each normalized name at `used`, which never passes the byte it is reading, so a 40 MB list
 * needs no second 40 MB array. The one exception, a punycode form longer than its UTF-8 text,
 * is deferred and appended after the scan (appendDeferred).
 */
export class NameArena {
  data: Uint8Array;
  used = 0;
  count = 0;
  starts: Uint32Array;
  lens: Uint8Array;
  hashes: Uint32Array;
  /** 1 where the name also covers subdomains. */
  flags: Uint8Array;
  tags: Int32Array;
  private deferred: { name: string; subdomains: boolean; tag: number }[] = [];

  /** `bytes`/`entries`: expected totals, to avoid regrowing (a list's file size is a good bound). */
  constructor(bytes = 4096, entries = ENTRY_HINT) {
    this.data = new Uint8Array(Math.max(bytes, NAME_ROOM));
    const e = Math.max(entries, 16);
    this.starts = new Uint32Array(e);
    this.lens = new Uint8Array(e);
    this.hashes = new Uint32Array(e);
    this.flags = new Uint8Array(e);
    this.tags = new Int32Array(e);
  }

  /** An arena whose bytes are `text`, to be scanned in place; `entries` as in the constructor. */
  static over(text: Uint8Array, entries = ENTRY_HINT): NameArena {
    const a = new NameArena(0, entries);
    a.data = text;
    return a;
  }

  /** Makes sure `len` more name bytes fit at data[used..]. */
  roomFor(len: number): void {
    if (this.used + len > this.data.length) {
      const next = new Uint8Array(Math.max(this.data.length * 2, this.used + len, NAME_ROOM));
      next.set(this.data.subarray(0, this.used));
      this.data = next;
    }
  }

  /** Makes sure `n` more entries fit without regrowing. */
  reserveEntries(n: number): void {
    if (this.count + n > this.starts.length) this.resizeEntries(Math.max(this.count + n, this.starts.length * 2));
  }

  private resizeEntries(e: number): void {
    this.starts = resize(this.starts, new Uint32Array(e));
    this.lens = resize(this.lens, new Uint8Array(e));
    this.hashes = resize(this.hashes, new Uint32Array(e));
    this.flags = resize(this.flags, new Uint8Array(e));
    this.tags = resize(this.tags, new Int32Array(e));
  }

  /** Takes the `len` bytes already written at data[used..] as one name. */
  commit(len: number, subdomains: boolean, tag: number): void {
    if (this.count === this.starts.length) this.resizeEntries(this.count * 2);
    const i = this.count++;
    const start = this.used;
    this.starts[i] = start;
    this.lens[i] = len;
    this.hashes[i] = hashBytes(this.data, start, start + len);
    this.flags[i] = subdomains ? 1 : 0;
    this.tags[i] = tag;
    this.used = start + len;
  }

  /** Appends an already normalized (lower-case ASCII) name. */
  push(name: string, subdomains: boolean, tag: number): void {
    this.roomFor(name.length);
    const o = this.used;
    for (let i = 0; i < name.length; i++) this.data[o + i] = name.charCodeAt(i);
    this.commit(name.length, subdomains, tag);
  }

  /** Keeps a name for appendDeferred (an in-place scan had no room for it). */
  defer(name: string, subdomains: boolean, tag: number): void {
    this.deferred.push({ name, subdomains, tag });
  }

  /** Appends the deferred names; call once the in-place scans are done. */
  appendDeferred(): void {
    for (const d of this.deferred) this.push(d.name, d.subdomains, d.tag);
    this.deferred = [];
  }

  nameAt(i: number): string {
    return latin1(this.data, this.starts[i]!, this.starts[i]! + this.lens[i]!);
  }

  /**
   * Releases unused capacity (name bytes when more than an eighth is unused, entry arrays when
   * more than a sixteenth), so sets built afterwards keep only what they need.
   */
  compact(): void {
    this.appendDeferred();
    if (this.data.length - this.used > this.data.length / 8) this.data = this.data.slice(0, this.used);
    if (this.starts.length - this.count > this.count / 16) this.resizeEntries(this.count);
  }
}

function resize<T extends Uint8Array | Uint32Array | Int32Array>(from: T, to: T): T {
  to.set(from.length <= to.length ? from : from.subarray(0, to.length));
  return to;
}

function latin1(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString("latin1");
}

const UTF8 = new TextDecoder();

function utf8(b: Uint8Array, start: number, end: number): string {
  return UTF8.decode(b.subarray(start, end));
}

/** Why the last putName failed, and the name it deferred. */
let lastWhy = "";
let deferredName = "";

/**
 * Validates b[start..end) as a name and writes it lower-cased into `out` at out.used. Returns
 * the written length, -1 with lastWhy set, or DEFERRED with deferredName set. The checks and
 * messages are normalizeDomain's; non-ASCII names take its IDN path. `inPlace`: b is out.data,
 * and out.used never passes `start`, so the ASCII path needs no room check.
 */
function putName(b: Uint8Array, start: number, end: number, out: NameArena, inPlace: boolean): number {
  let len = end - start;
  if (len > 0 && b[end - 1] === CH_DOT) len--;
  if (len === 0) {
    lastWhy = "empty name";
    return -1;
  }
  if (len > MAX_NAME) return putSlow(b, start, end, 0, out, inPlace);
  if (!inPlace) out.roomFor(len);
  const d = out.data;
  const o = out.used;
  let labelStart = 0;
  // Bytes already read are never read again: in place, they may be overwritten by now.
  let first = 0;
  let prev = 0;
  let c = 0;
  for (let i = 0; i <= len; i++) {
    prev = c;
    c = i < len ? b[start + i]! : CH_DOT;
    if (i === labelStart) first = c;
    if (c >= 97 && c <= 122) {
      d[o + i] = c;
    } else if (c === CH_DOT) {
      const n = i - labelStart;
      if (n === 0) return fail("empty label");
      if (n > MAX_LABEL) return fail("label longer than 63 characters");
      if (first === CH_DASH || prev === CH_DASH) return fail("label starts or ends with '-'");
      d[o + i] = c;
      labelStart = i + 1;
    } else if ((c >= 48 && c <= 57) || c === CH_DASH || c === CH_UNDERSCORE) {
      d[o + i] = c;
    } else if (c >= 65 && c <= 90) {
      d[o + i] = c | 32;
    } else if (c > 127) {
      return putSlow(b, start, end, i, out, inPlace);
    } else {
      return fail(`invalid character '${String.fromCharCode(c)}'`);
    }
  }
  return len;
}

function fail(why: string): number {
  lastWhy = why;
  return -1;
}

/**
 * The IDN (and over-long) path: decode and let normalizeDomain decide, for identical results.
 * The first `done` bytes were already copied (lower-cased) to out.data[used..]; in place they
 * may have overwritten their source, so they are taken from the copy.
 */
function putSlow(b: Uint8Array, start: number, end: number, done: number, out: NameArena, inPlace: boolean): number {
  const o = out.used;
  const n = normalizeDomain((done > 0 ? latin1(out.data, o, o + done) : "") + utf8(b, start + done, end));
  if (typeof n !== "string") return fail(n.why);
  if (inPlace) {
    // Writing past `end` would overwrite text not read yet.
    if (out.used + n.length > end) {
      deferredName = n;
      return DEFERRED;
    }
  } else {
    out.roomFor(n.length);
  }
  const d = out.data;
  for (let i = 0; i < n.length; i++) d[o + i] = n.charCodeAt(i);
  return n.length;
}

/** Takes what putName produced (a length or DEFERRED) as an entry of `to`. */
function take(to: NameArena, len: number, subdomains: boolean, tag: number): void {
  if (len === DEFERRED) to.defer(deferredName, subdomains, tag);
  else to.commit(len, subdomains, tag);
}

function isSpace(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB || c === CH_VT || c === CH_FF;
}

function bytesEqual(a: Uint8Array, at: number, len: number, b: Uint8Array): boolean {
  if (len !== b.length) return false;
  for (let i = 0; i < len; i++) if (a[at + i] !== b[i]) return false;
  return true;
}

const SINK_ZERO = [48, 46, 48, 46, 48, 46, 48]; // "0.0.0.0"
const SINK_LOOPBACK = [49, 50, 55, 46, 48, 46, 48, 46, 49]; // "127.0.0.1"

function isWord(b: Uint8Array, start: number, end: number, w: readonly number[]): boolean {
  if (end - start !== w.length) return false;
  for (let i = 0; i < w.length; i++) if (b[start + i] !== w[i]) return false;
  return true;
}

/** Whether b[start..end) is an IP address; the two common sinks without allocating. */
function isIpWord(b: Uint8Array, start: number, end: number): boolean {
  if (isWord(b, start, end, SINK_ZERO) || isWord(b, start, end, SINK_LOOPBACK)) return true;
  // Only digits and dots (IPv4), or hex digits and dots up to the first colon (IPv6; a zone
  // after `%` may hold anything), can start an address: a host name fails within a few bytes.
  let colon = false;
  for (let i = start; i < end && !colon; i++) {
    const c = b[i]!;
    const lower = c | 32;
    if (c === CH_COLON) colon = true;
    else if (!((c >= 48 && c <= 57) || c === CH_DOT || (lower >= 97 && lower <= 102 && c >= 65))) return false;
  }
  return isIP(latin1(b, start, end)) !== 0;
}

/** `#`, up to two of `@?$%`, `#`: an element-hiding selector (`##`, `#@#`, `#?#`, `#$#`, ...). */
function isCosmetic(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (b[i] !== CH_HASH) continue;
    let j = i + 1;
    for (let k = 0; k < 2 && j < end; k++) {
      const c = b[j];
      if (c === CH_AT || c === CH_QUESTION || c === CH_DOLLAR || c === CH_PERCENT) j++;
      else break;
    }
    if (j < end && b[j] === CH_HASH) return true;
  }
  return false;
}

export type SkipSink = (line: number, text: string, why: string) => void;

/** One scan's working state, so the per-line helpers need no closures. */
interface Scan {
  b: Uint8Array;
  out: NameArena;
  exc: NameArena | null;
  /** Whether out (and exc) write into b itself. */
  inPlace: boolean;
  excInPlace: boolean;
  tag: number;
  onSkip: SkipSink | null;
  line: number;
  counts: ListCounts;
  hosts: number;
  plain: number;
  abpLines: number;
}

function skip(sc: Scan, start: number, end: number, why: string): void {
  sc.counts.invalid++;
  if (sc.onSkip !== null) sc.onSkip(sc.line, utf8(sc.b, start, end), why);
}

/**
 * Scans a list's bytes b[from..to), appending every valid name to `out` with `tag`.
 * `exceptions`: where `@@||name^` rules go (null: they are skipped as EXCEPTION_WHY, as in a
 * block list). `onSkip` receives each skipped line; pass null when only the counts matter (no
 * strings are made then). When `b` is out.data (an arena laid over the text with
 * NameArena.over), names are written in place and `onSkip` must be null, as the text of a
 * skipped line may already be overwritten. Never throws on list content.
 */
export function scanList(
  b: Uint8Array,
  out: NameArena,
  tag: number,
  exceptions: NameArena | null = null,
  onSkip: SkipSink | null = null,
  from = 0,
  to = b.length,
): ListCounts {
  const inPlace = out.data === b;
  const excInPlace = exceptions !== null && exceptions.data === b;
  if ((inPlace || excInPlace) && onSkip !== null) throw new RangeError("scanList: skipped-line texts are not available in place");
  if ((inPlace || excInPlace) && (out.used > from || (exceptions !== null && exceptions.used > from))) {
    throw new RangeError("scanList: an in-place scan must start at or after the arena's end");
  }
  const counts: ListCounts = { domains: 0, invalid: 0, abp: 0, exceptions: 0, format: "plain" };
  const sc: Scan = { b, out, exc: exceptions, inPlace, excInPlace, tag, onSkip, line: 0, counts, hosts: 0, plain: 0, abpLines: 0 };
  const n = to;
  let p = from + BOM.length <= n && b[from] === BOM[0] && b[from + 1] === BOM[1] && b[from + 2] === BOM[2] ? from + BOM.length : from;
  const buf = Buffer.from(b.buffer, b.byteOffset, n);
  if (buf.indexOf(CH_CR, p) < 0) {
    // No CR anywhere (most lists): the native search finds line ends far faster than a loop.
    while (p <= n) {
      sc.line++;
      let e = buf.indexOf(CH_LF, p);
      if (e < 0) e = n;
      scanLine(sc, p, e);
      p = e + 1;
    }
  } else {
    while (p <= n) {
      sc.line++;
      let e = p;
      while (e < n) {
        const c = b[e];
        if (c === CH_LF || c === CH_CR) break;
        e++;
      }
      const next = e + 1 < n && b[e] === CH_CR && b[e + 1] === CH_LF ? e + 2 : e + 1;
      scanLine(sc, p, e);
      p = next;
    }
  }
  const kinds = (sc.hosts > 0 ? 1 : 0) + (sc.plain > 0 ? 1 : 0) + (sc.abpLines > 0 ? 1 : 0);
  counts.format = kinds > 1 ? "mixed" : sc.hosts > 0 ? "hosts" : sc.abpLines > 0 ? "abp" : "plain";
  return counts;
}

function scanLine(sc: Scan, s: number, e: number): void {
  const b = sc.b;
  while (s < e && isSpace(b[s]!)) s++;
  while (e > s && isSpace(b[e - 1]!)) e--;
  if (s === e) return;
  const c = b[s];
  // `[Adblock Plus 2.0]` style headers count as comments too.
  if (c === CH_HASH || c === CH_BANG || c === CH_LBRACKET) return;
  const exception = b[s] === CH_AT && b[s + 1] === CH_AT;
  if (exception && sc.exc === null) {
    sc.abpLines++;
    skip(sc, s, e, EXCEPTION_WHY);
    return;
  }
  let hash = s;
  while (hash < e && b[hash] !== CH_HASH) hash++;
  // Stripping a selector as a "comment" would leave the site's own domain behind, so the
  // whole line goes, as in Pi-hole.
  if (hash < e && isCosmetic(b, hash, e)) {
    sc.abpLines++;
    skip(sc, s, e, COSMETIC_WHY);
    return;
  }
  if (hash < e) {
    e = hash;
    while (e > s && isSpace(b[e - 1]!)) e--;
    if (s === e) return;
  }
  if (exception) {
    sc.abpLines++;
    scanAbp(sc, s, s + 2, e, sc.exc!, sc.excInPlace, true);
    return;
  }
  if (b[s] === CH_PIPE && b[s + 1] === CH_PIPE) {
    sc.abpLines++;
    scanAbp(sc, s, s, e, sc.out, sc.inPlace, false);
    return;
  }

  let w = s;
  while (w < e && !isSpace(b[w]!)) w++;
  if (isIpWord(b, s, w)) {
    sc.hosts++;
    scanHostNames(sc, s, w, e);
    return;
  }
  // URL and anchor syntax: an ABP network rule we cannot express as a domain.
  for (let i = s; i < e; i++) {
    const ch = b[i];
    if (ch === CH_SLASH || ch === CH_CARET || ch === CH_DOLLAR || ch === CH_PIPE) {
      sc.abpLines++;
      skip(sc, s, e, UNSUPPORTED_ABP);
      return;
    }
  }
  if (w < e) {
    skip(sc, s, e, MULTI_WORD_WHY);
    return;
  }
  sc.plain++;
  const len = putName(b, s, e, sc.out, sc.inPlace);
  if (len === -1) {
    skip(sc, s, e, lastWhy);
    return;
  }
  take(sc.out, len, false, sc.tag);
  sc.counts.domains++;
}

/**
 * `||name^`, optionally `|` (end anchor) and `$important`; `r` is where `||` starts (after a
 * leading `@@` for exceptions). Other options change what the rule means, so such rules are
 * skipped rather than widened into a plain block.
 */
function scanAbp(sc: Scan, s: number, r: number, e: number, to: NameArena, inPlace: boolean, exception: boolean): void {
  const b = sc.b;
  if (!(b[r] === CH_PIPE && b[r + 1] === CH_PIPE)) {
    skip(sc, s, e, UNSUPPORTED_ABP);
    return;
  }
  const nameStart = r + 2;
  let i = nameStart;
  while (i < e) {
    const c = b[i];
    if (c === CH_CARET || c === CH_DOLLAR || c === CH_PIPE || c === CH_SLASH) break;
    i++;
  }
  const nameEnd = i;
  if (nameEnd === nameStart || b[i] !== CH_CARET) {
    skip(sc, s, e, UNSUPPORTED_ABP);
    return;
  }
  i++;
  if (i < e && b[i] === CH_PIPE) i++;
  if (i < e) {
    if (b[i] !== CH_DOLLAR) {
      skip(sc, s, e, UNSUPPORTED_ABP);
      return;
    }
    const other = abpOptionsOtherThanImportant(b, i + 1, e);
    if (other !== null) {
      skip(sc, s, e, `ABP rule with options other than $important: ${other}`);
      return;
    }
  }
  const len = putName(b, nameStart, nameEnd, to, inPlace);
  if (len === -1) {
    skip(sc, s, e, lastWhy);
    return;
  }
  take(to, len, true, sc.tag);
  sc.counts.domains++;
  sc.counts.abp++;
  if (exception) sc.counts.exceptions++;
}

/** The options other than `important`, comma-joined, or null when there are none. */
function abpOptionsOtherThanImportant(b: Uint8Array, s: number, e: number): string | null {
  let other: string[] | null = null;
  let i = s;
  while (i <= e) {
    let j = i;
    while (j < e && b[j] !== CH_COMMA) j++;
    const o = utf8(b, i, j).trim();
    if (o !== "" && o !== "important") (other ??= []).push(o);
    i = j + 1;
  }
  return other === null ? null : other.join(",");
}

/** The names after a hosts line's address: each one valid or skipped on its own. */
function scanHostNames(sc: Scan, s: number, w: number, e: number): void {
  const b = sc.b;
  const out = sc.out;
  let i = w;
  let any = false;
  while (i < e) {
    while (i < e && isSpace(b[i]!)) i++;
    if (i === e) break;
    const ws = i;
    while (i < e && !isSpace(b[i]!)) i++;
    any = true;
    if (isIpWord(b, ws, i)) {
      // `0.0.0.0 0.0.0.0` is boilerplate in StevenBlack-style lists.
      if (!isWord(b, ws, i, SINK_ZERO)) skip(sc, ws, i, IP_NAME_WHY);
      continue;
    }
    const len = putName(b, ws, i, out, sc.inPlace);
    if (len === -1) {
      skip(sc, ws, i, lastWhy);
      continue;
    }
    // Deferred names are punycode, never one of the local names.
    if (len !== DEFERRED && isLocalName(out.data, out.used, len)) continue;
    take(out, len, false, sc.tag);
    sc.counts.domains++;
  }
  if (!any) skip(sc, s, e, NO_HOST_WHY);
}

function isLocalName(d: Uint8Array, at: number, len: number): boolean {
  const c = d[at];
  // Every local name starts with `b`, `i` or `l`; most names are out after one compare.
  if (c !== CH_LOWER_B && c !== CH_LOWER_I && c !== CH_LOWER_L) return false;
  if (len >= IP6_PREFIX.length && bytesEqual(d, at, IP6_PREFIX.length, IP6_PREFIX)) return true;
  for (const n of LOCAL_NAMES) if (bytesEqual(d, at, len, n)) return true;
  return false;
}

/**
 * Parses a list's text; never throws: bad lines go to `skipped` with the reason. With
 * `{ exceptions: true }` (an allow list), `@@||name^` rules are collected in `exceptions`.
 */
export function parseList(text: string, opts: { exceptions?: boolean } = {}): ParsedList {
  const bytes = Buffer.from(text, "utf8");
  const out = new NameArena(bytes.length);
  const exc = opts.exceptions === true ? new NameArena() : null;
  const skipped: SkippedLine[] = [];
  const counts = scanList(bytes, out, 0, exc, (line, t, why) => skipped.push({ line, text: t, why }));
  const domains: string[] = [];
  const entries: DomainEntry[] = [];
  for (let i = 0; i < out.count; i++) {
    const name = out.nameAt(i);
    domains.push(name);
    entries.push({ name, subdomains: out.flags[i] === 1 });
  }
  const exceptions: DomainEntry[] = [];
  if (exc !== null) for (let i = 0; i < exc.count; i++) exceptions.push({ name: exc.nameAt(i), subdomains: true });
  return { domains, entries, exceptions, skipped, format: counts.format };
}

// Query scratch space, shared: lookups are synchronous, so no two can interleave.
const Q = new Uint8Array(256);
/** A name of 253 bytes has at most 127 labels. */
const MAX_LABELS = 128;
const SUFFIX_HASH = new Uint32Array(MAX_LABELS);
const SUFFIX_START = new Uint8Array(MAX_LABELS);
/** How many suffixes the prepared query has (0: nothing prepared or unlistable), and its length. */
let prepCount = 0;
let prepLen = 0;
/** Whether the last loaded query was already normalized, so a slice of it is the answer. */
let queryClean = true;

/**
 * Writes the normalized query into Q and returns its length, or -1 if it cannot be listed.
 * ASCII queries are lower-cased on the fly so the common path allocates nothing.
 */
function loadQuery(name: string): number {
  let len = name.length;
  if (len > 0 && name.charCodeAt(len - 1) === CH_DOT) len--;
  if (len === 0 || len > MAX_NAME) return -1;
  queryClean = true;
  for (let i = 0; i < len; i++) {
    let c = name.charCodeAt(i);
    if (c > 127) return loadSlow(name);
    if (c >= 65 && c <= 90) {
      c |= 32;
      queryClean = false;
    }
    Q[i] = c;
  }
  return len;
}

function loadSlow(name: string): number {
  const n = normalizeDomain(name);
  if (typeof n !== "string") return -1;
  queryClean = false;
  for (let i = 0; i < n.length; i++) Q[i] = n.charCodeAt(i);
  return n.length;
}

/**
 * Loads `name` (lower-cased, trailing dot dropped, IDN converted) for DomainSet.matchPrepared
 * and hashes every suffix once, so probing several sets costs one pass over the name.
 * Returns false if the name cannot be on a list (empty, too long, invalid IDN).
 */
export function prepareQuery(name: string): boolean {
  const len = loadQuery(name);
  if (len < 0) {
    prepCount = 0;
    return false;
  }
  let h = FNV_OFFSET;
  let count = 0;
  for (let i = len - 1; i >= 0; i--) {
    h = Math.imul(h ^ Q[i]!, FNV_PRIME);
    if (i === 0 || Q[i - 1] === CH_DOT) {
      SUFFIX_HASH[count] = h >>> 0;
      SUFFIX_START[count] = i;
      count++;
    }
  }
  prepCount = count;
  prepLen = len;
  return true;
}

/** Whether arena entries x and y have the same bytes. */
function sameName(a: NameArena, x: number, y: number): boolean {
  const len = a.lens[x]!;
  if (a.lens[y] !== len) return false;
  const d = a.data;
  const sx = a.starts[x]!;
  const sy = a.starts[y]!;
  for (let i = 0; i < len; i++) if (d[sx + i] !== d[sy + i]) return false;
  return true;
}

/**
 * At most this share of the table's slots is used, so a miss (the common query) usually ends
 * at the first or second slot, both in one cache line.
 */
const MAX_LOAD = 0.75;
/** Largest table: 2^27 slots, far beyond any real gravity set. */
const MAX_BITS = 27;
/** Knuth's multiplicative constant spreads FNV's hash over the slot index bits. */
const SLOT_MIX = 0x9e3779b1;
/** A slot's ref: entry index + 1 (0 is an empty slot), the top bit set if it covers subdomains. */
const SUBDOMAINS_BIT = 0x80000000;
const REF_INDEX = 0x7fffffff;

/**
 * An immutable set of domain names over an arena: an open-addressing table of [hash, ref]
 * pairs (linear probing) whose refs point at the arena's names. A lookup is one hash, usually
 * one cache line of the table, and for a hit one byte compare. Sets built from one arena share
 * its bytes; each entry keeps the tag (list id) of its first occurrence.
 */
export class DomainSet {
  private constructor(
    private readonly data: Uint8Array,
    private readonly starts: Uint32Array,
    private readonly lens: Uint8Array,
    private readonly tags: Int32Array,
    /** Pairs [hash, ref] per slot. */
    private readonly table: Uint32Array,
    private readonly shift: number,
    private readonly mask: number,
    /** Number of distinct names. */
    readonly size: number,
  ) {}

  static readonly EMPTY: DomainSet = DomainSet.fromArena(new NameArena(0, 0));

  /** Builds the set; duplicate names merge (covering subdomains if any duplicate does). Throws on invalid names. */
  static build(entries: readonly DomainEntry[]): DomainSet {
    const arena = new NameArena(entries.length * AVERAGE_NAME, entries.length);
    for (const e of entries) {
      const name = normalizeDomain(e.name);
      if (typeof name !== "string") throw new RangeError(`DomainSet.build: ${JSON.stringify(e.name)}: ${name.why}`);
      arena.push(name, e.subdomains, -1);
    }
    arena.compact();
    return DomainSet.fromArena(arena);
  }

  /**
   * Indexes the arena's entries whose tag is in `tags` (all entries when omitted). The set keeps
   * the arena's arrays, so compact() the arena first; entries added later are not seen.
   */
  static fromArena(arena: NameArena, tags?: ReadonlySet<number>): DomainSet {
    const count = arena.count;
    const hashes = arena.hashes;
    const flags = arena.flags;
    const entryTags = arena.tags;
    let n = count;
    if (tags !== undefined) {
      n = 0;
      for (let idx = 0; idx < count; idx++) if (tags.has(entryTags[idx]!)) n++;
    }
    let bits = 1;
    while (bits < MAX_BITS && (1 << bits) * MAX_LOAD < n) bits++;
    const mask = (1 << bits) - 1;
    const shift = 32 - bits;
    const table = new Uint32Array(2 << bits);
    let size = 0;
    for (let idx = 0; idx < count; idx++) {
      if (tags !== undefined && !tags.has(entryTags[idx]!)) continue;
      const h = hashes[idx]!;
      let i = Math.imul(h, SLOT_MIX) >>> shift;
      for (;;) {
        const ref = table[2 * i + 1]!;
        if (ref === 0) {
          table[2 * i] = h;
          table[2 * i + 1] = (idx + 1) | (flags[idx] === 1 ? SUBDOMAINS_BIT : 0);
          size++;
          break;
        }
        const first = (ref & REF_INDEX) - 1;
        if (table[2 * i] === h && sameName(arena, first, idx)) {
          // A duplicate: the entry with the lowest tag (list id) answers for the name, and
          // it covers subdomains if any occurrence does.
          const keep = entryTags[idx]! < entryTags[first]! ? idx : first;
          table[2 * i + 1] = (keep + 1) | ((ref & SUBDOMAINS_BIT) !== 0 || flags[idx] === 1 ? SUBDOMAINS_BIT : 0);
          break;
        }
        i = (i + 1) & mask;
      }
    }
    return new DomainSet(arena.data, arena.starts, arena.lens, arena.tags, table, shift, mask, size);
  }

  /** The arrays behind the set, to move it between threads (see fromParts). */
  get parts(): DomainSetParts {
    const { data, starts, lens, tags, table, shift, mask, size } = this;
    return { data, starts, lens, tags, table, shift, mask, size };
  }

  /** A set over arrays taken from `parts` (possibly after a transfer from another thread). */
  static fromParts(p: DomainSetParts): DomainSet {
    return new DomainSet(p.data, p.starts, p.lens, p.tags, p.table, p.shift, p.mask, p.size);
  }

  /** Bytes of the table plus the arena arrays it refers to (which other sets may share). */
  get bytes(): number {
    return this.table.byteLength + this.data.byteLength + this.starts.byteLength + this.lens.byteLength + this.tags.byteLength;
  }

  /** Whether exactly this name is listed (case-insensitive, trailing dot ignored, IDN accepted). */
  has(name: string): boolean {
    const len = loadQuery(name);
    if (len < 0) return false;
    return this.find(hashBytes(Q, 0, len), 0, len) !== 0;
  }

  /**
   * The longest listed name that blocks `name`: the name itself (any entry), or a parent
   * listed with subdomains (ABP). A parent listed exact-only does not block its children.
   */
  matchesSuffix(name: string): string | null {
    if (!prepareQuery(name)) return null;
    const k = this.matchPrepared();
    if (k < 0) return null;
    const start = prepLen - this.lens[k]!;
    return queryClean ? name.slice(start, prepLen) : latin1(Q, start, prepLen);
  }

  /**
   * matchesSuffix for the query loaded by prepareQuery(): the matching entry (see tagAt and
   * nameAt), or -1. Allocates nothing.
   */
  matchPrepared(): number {
    if (this.size === 0) return -1;
    // Recorded TLD first, so walk backwards: full name, then parents towards the TLD.
    for (let c = prepCount - 1; c >= 0; c--) {
      const start = SUFFIX_START[c]!;
      const ref = this.find(SUFFIX_HASH[c]!, start, prepLen);
      if (ref !== 0 && (start === 0 || (ref & SUBDOMAINS_BIT) !== 0)) return (ref & REF_INDEX) - 1;
    }
    return -1;
  }

  /** The tag (list id) of entry k's first occurrence. */
  tagAt(k: number): number {
    return this.tags[k]!;
  }

  /** Entry k's name. */
  nameAt(k: number): string {
    return latin1(this.data, this.starts[k]!, this.starts[k]! + this.lens[k]!);
  }

  /** The ref of the entry equal to Q[start..end) with hash h, or 0. */
  private find(h: number, start: number, end: number): number {
    const table = this.table;
    const len = end - start;
    let i = Math.imul(h, SLOT_MIX) >>> this.shift;
    for (;;) {
      const ref = table[2 * i + 1]!;
      if (ref === 0) return 0;
      if (table[2 * i] === h) {
        const k = (ref & REF_INDEX) - 1;
        if (this.lens[k] === len) {
          const data = this.data;
          const off = this.starts[k]!;
          let j = 0;
          while (j < len && data[off + j] === Q[start + j]) j++;
          if (j === len) return ref;
        }
      }
      i = (i + 1) & this.mask;
    }
  }
}

/** A DomainSet's arrays and table geometry. */
export interface DomainSetParts {
  data: Uint8Array;
  starts: Uint32Array;
  lens: Uint8Array;
  tags: Int32Array;
  table: Uint32Array;
  shift: number;
  mask: number;
  size: number;
}

// ---------------------------------------------------------------------------------------------
// Building the sets of a gravity run from the lists' local copies: pure (files in, sets out), so
// it can run on a worker thread and hand its arrays back without copying them.

/** One list's local copy. */
export interface ListSource {
  id: number;
  path: string;
}

export interface ListBuildJob {
  /** Block and allow lists, each in id order. */
  block: ListSource[];
  allow: ListSource[];
  /** The combinations of list ids to index, per type (groups seeing the same lists share one). */
  blockSets: number[][];
  allowSets: number[][];
}

export interface ListBuild {
  /** What each list with a readable copy held. */
  counts: [number, ListCounts][];
  /** Lists whose copy could not be read. */
  errors: [number, string][];
  /** One set per combination, in the job's order. */
  block: DomainSet[];
  allow: DomainSet[];
}

/** Reads up to `size` bytes of `file` into buf[off..]; returns how many were read. */
function readInto(file: string, buf: Uint8Array, off: number, size: number): number {
  const fd = openSync(file, "r");
  try {
    let n = 0;
    while (n < size) {
      const r = readSync(fd, buf, off + n, size - n, null);
      if (r === 0) break;
      n += r;
    }
    return n;
  } finally {
    closeSync(fd);
  }
}

/** Lines in buf[0..end), to size the entry arrays once (hosts lines with several names are rare). */
function countLines(buf: Buffer, end: number): number {
  let n = 1;
  for (let i = buf.indexOf(CH_LF); i >= 0 && i < end; i = buf.indexOf(CH_LF, i + 1)) n++;
  return n;
}

/**
 * Reads the copies of one type's lists into one buffer and scans them in place, so the names
 * end up compacted at its front and no second copy of the text is made. In allow lists,
 * `@@||name^` means what `||name^` does: allow the name and everything below it.
 */
function parseCopies(sources: ListSource[], allow: boolean, out: ListBuild): NameArena {
  const files: { src: ListSource; size: number }[] = [];
  for (const src of sources) {
    try {
      files.push({ src, size: statSync(src.path).size });
    } catch (e) {
      out.errors.push([src.id, (e as Error).message]);
    }
  }
  const text = Buffer.allocUnsafeSlow(files.reduce((n, f) => n + f.size, 0));
  const regions: { id: number; from: number; to: number }[] = [];
  let off = 0;
  for (const f of files) {
    try {
      const n = readInto(f.src.path, text, off, f.size);
      regions.push({ id: f.src.id, from: off, to: off + n });
      off += n;
    } catch (e) {
      out.errors.push([f.src.id, (e as Error).message]);
    }
  }
  const arena = NameArena.over(text, countLines(text, off));
  for (const r of regions) out.counts.push([r.id, scanList(text, arena, r.id, allow ? arena : null, null, r.from, r.to)]);
  arena.compact();
  return arena;
}

/** Parses the copies and indexes every requested combination of lists. Reads files; never throws on their content. */
export function buildListSets(job: ListBuildJob): ListBuild {
  const out: ListBuild = { counts: [], errors: [], block: [], allow: [] };
  const index = (sources: ListSource[], allow: boolean, combos: number[][]): DomainSet[] => {
    const arena = parseCopies(sources, allow, out);
    const all = sources.length;
    return combos.map((ids) => {
      if (ids.length === 0) return DomainSet.EMPTY;
      // Every list: no per-entry membership test needed.
      return ids.length === all ? DomainSet.fromArena(arena) : DomainSet.fromArena(arena, new Set(ids));
    });
  };
  out.block = index(job.block, false, job.blockSets);
  out.allow = index(job.allow, true, job.allowSets);
  return out;
}

/** A ListBuild as a message whose arrays move (not copy) to the receiving thread. */
export function packListBuild(b: ListBuild): { message: unknown; transfer: ArrayBuffer[] } {
  const buffers = new Set<ArrayBuffer>();
  const pack = (sets: DomainSet[]): DomainSetParts[] =>
    sets.map((set) => {
      const p = set.parts;
      for (const a of [p.data, p.starts, p.lens, p.tags, p.table]) buffers.add(a.buffer as ArrayBuffer);
      return p;
    });
  const message = { counts: b.counts, errors: b.errors, block: pack(b.block), allow: pack(b.allow) };
  return { message, transfer: [...buffers] };
}

export function unpackListBuild(m: unknown): ListBuild {
  const msg = m as { counts: [number, ListCounts][]; errors: [number, string][]; block: DomainSetParts[]; allow: DomainSetParts[] };
  const unpack = (parts: DomainSetParts[]): DomainSet[] => parts.map((p) => (p.size === 0 ? DomainSet.EMPTY : DomainSet.fromParts(p)));
  return { counts: msg.counts, errors: msg.errors, block: unpack(msg.block), allow: unpack(msg.allow) };
}

/** Entry point for the worker thread that runs buildListSets (see src/dns/filter.ts). */
export function buildListSetsMessage(job: ListBuildJob): { message: unknown; transfer: ArrayBuffer[] } {
  return packListBuild(buildListSets(job));
}
