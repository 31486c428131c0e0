// Blocklist parsing (hosts, plain domain lists, ABP `||domain^`) in the manner of Pi-hole's
// gravity, and DomainSet: a compact, immutable, allocation-free-lookup set of the result.

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
  skipped: SkippedLine[];
  format: ListFormat;
}

/** Names that every stock hosts file maps; they are boilerplate, not block entries. */
const LOCAL_NAMES = new Set([
  "localhost",
  "localhost.localdomain",
  "local",
  "broadcasthost",
]);

export const EXCEPTION_WHY = "exception (allow) rule";
const UNSUPPORTED_ABP = "unsupported ABP rule (only ||domain^ is supported)";

/**
 * Lower-cases, strips one trailing dot, converts IDN to punycode and validates a name.
 * Returns the normalized name, or `{ why }` saying what is wrong with it.
 */
export function normalizeDomain(text: string): string | { why: string } {
  let s = text;
  let len = s.length;
  if (len > 0 && s.charCodeAt(len - 1) === 46) len--;
  if (len === 0) return { why: "empty name" };
  if (len > 253) return { why: "name longer than 253 characters" };
  let upper = false;
  let labelStart = 0;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : 46;
    if (c === 46) {
      const n = i - labelStart;
      if (n === 0) return { why: "empty label" };
      if (n > 63) return { why: "label longer than 63 characters" };
      if (s.charCodeAt(labelStart) === 45 || s.charCodeAt(i - 1) === 45) {
        return { why: "label starts or ends with '-'" };
      }
      labelStart = i + 1;
    } else if (c >= 97 && c <= 122) {
      // The common case first.
    } else if (c >= 65 && c <= 90) {
      upper = true;
    } else if (c > 127) {
      return normalizeIdn(text);
    } else if (!((c >= 48 && c <= 57) || c === 45 || c === 95)) {
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

// `||domain^`, optionally `|` (end anchor) and `$options`.
const ABP_RULE = /^\|\|([^^$|/]+)\^\|?(?:\$(.*))?$/;
// Element-hiding selectors (`##`, `#@#`, `#?#`, `#$#`): stripping them as "comments" would
// leave the site's own domain behind, so Pi-hole drops the whole line.
const COSMETIC = /#[@?$%]{0,2}#/;

/** Parses a blocklist; never throws: bad lines go to `skipped` with the reason. */
export function parseList(text: string): ParsedList {
  const domains: string[] = [];
  const entries: DomainEntry[] = [];
  const skipped: SkippedLine[] = [];
  let hosts = 0;
  let plain = 0;
  let abp = 0;

  const add = (line: number, raw: string, name: string, subdomains: boolean): void => {
    const n = normalizeDomain(name);
    if (typeof n === "string") {
      domains.push(n);
      entries.push({ name: n, subdomains });
    } else {
      skipped.push({ line, text: raw, why: n.why });
    }
  };

  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let s = lines[i]!.trim();
    if (s === "") continue;
    const c = s[0];
    // `[Adblock Plus 2.0]` style headers count as comments too.
    if (c === "#" || c === "!" || c === "[") continue;
    const skip = (why: string): void => {
      skipped.push({ line, text: s, why });
    };
    if (s.startsWith("@@")) {
      abp++;
      skip(EXCEPTION_WHY);
      continue;
    }
    if (COSMETIC.test(s)) {
      abp++;
      skip("cosmetic (element hiding) rule");
      continue;
    }
    const hash = s.indexOf("#");
    if (hash >= 0) {
      s = s.slice(0, hash).trimEnd();
      if (s === "") continue;
    }

    if (s.startsWith("||")) {
      abp++;
      const m = ABP_RULE.exec(s);
      if (!m) {
        skip(UNSUPPORTED_ABP);
        continue;
      }
      const options = (m[2] ?? "").split(",").map((o) => o.trim()).filter((o) => o !== "");
      const other = options.filter((o) => o !== "important");
      if (other.length > 0) {
        skip(`ABP rule with options other than $important: ${other.join(",")}`);
        continue;
      }
      add(line, s, m[1]!, true);
      continue;
    }

    const words = s.split(/\s+/);
    const first = words[0]!;
    if (isIP(first) !== 0) {
      hosts++;
      if (words.length === 1) {
        skip("hosts entry without a host name");
        continue;
      }
      for (let w = 1; w < words.length; w++) {
        const name = words[w]!;
        if (isIP(name) !== 0) {
          // `0.0.0.0 0.0.0.0` is boilerplate in StevenBlack-style lists.
          if (name !== "0.0.0.0") skipped.push({ line, text: name, why: "IP address, not a host name" });
          continue;
        }
        const n = normalizeDomain(name);
        if (typeof n !== "string") {
          skipped.push({ line, text: name, why: n.why });
        } else if (!LOCAL_NAMES.has(n) && !n.startsWith("ip6-")) {
          domains.push(n);
          entries.push({ name: n, subdomains: false });
        }
      }
      continue;
    }
    // URL and anchor syntax: an ABP network rule we cannot express as a domain.
    if (/[/^$|]/.test(s)) {
      abp++;
      skip(UNSUPPORTED_ABP);
      continue;
    }
    if (words.length > 1) {
      skip("unrecognised line: several words without a leading IP address");
      continue;
    }
    plain++;
    add(line, s, s, false);
  }

  const kinds = (hosts > 0 ? 1 : 0) + (plain > 0 ? 1 : 0) + (abp > 0 ? 1 : 0);
  const format: ListFormat =
    kinds > 1 ? "mixed" : hosts > 0 ? "hosts" : abp > 0 ? "abp" : "plain";
  return { domains, entries, skipped, format };
}

// FNV-1a over the bytes from last to first: the running hash at each label boundary is then
// the hash of that suffix, so matchesSuffix gets every parent's hash in one pass.
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = s.length - 1; i >= 0; i--) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// Query scratch space, shared: lookups are synchronous, so no two can interleave.
const Q = new Uint8Array(256);
const SUFFIX_HASH = new Uint32Array(128);
const SUFFIX_START = new Uint8Array(128);
const ASCII = new TextDecoder("latin1");
/** Whether the last loaded query was already normalized, so a slice of it is the answer. */
let queryClean = true;

/**
 * Writes the normalized query into Q and returns its length, or -1 if it cannot be listed.
 * ASCII queries are lower-cased on the fly so the common path allocates nothing.
 */
function loadQuery(name: string): number {
  let len = name.length;
  if (len > 0 && name.charCodeAt(len - 1) === 46) len--;
  if (len === 0 || len > 253) return -1;
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

/** Indices 0..n-1 ordered by hash: a stable two-pass LSD radix sort, keys carried along. */
function sortByHash(hashes: Uint32Array): Uint32Array {
  const n = hashes.length;
  let keys = hashes.slice();
  let idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  let keys2 = new Uint32Array(n);
  let idx2 = new Uint32Array(n);
  const count = new Uint32Array(65537);
  for (let shift = 0; shift <= 16; shift += 16) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[((keys[i]! >>> shift) & 0xffff) + 1]!++;
    for (let k = 1; k <= 65536; k++) count[k]! += count[k - 1]!;
    for (let i = 0; i < n; i++) {
      const key = keys[i]!;
      const to = count[(key >>> shift) & 0xffff]!++;
      keys2[to] = key;
      idx2[to] = idx[i]!;
    }
    [keys, keys2] = [keys2, keys];
    [idx, idx2] = [idx2, idx];
  }
  return idx;
}

/**
 * Normalizes every name into `names`, its hash into `hashes` and its subdomain flag into
 * `subs`; returns the total length (summed here, in input order, as random access to the
 * strings later is what dominates the build).
 */
function normalizeAll(entries: readonly DomainEntry[], names: string[], hashes: Uint32Array, subs: Uint8Array): number {
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const name = normalizeDomain(e.name);
    if (typeof name !== "string") {
      throw new RangeError(`DomainSet.build: ${JSON.stringify(e.name)}: ${name.why}`);
    }
    names[i] = name;
    hashes[i] = hashString(name);
    subs[i] = e.subdomains ? 1 : 0;
    total += name.length;
  }
  return total;
}

/**
 * Drops duplicate names, writing the kept indices over `order`'s front and their merged
 * flags into `flags`; duplicates can only sit in a run of equal hashes (nearly always length 1).
 * Returns the number kept and the bytes the duplicates took.
 */
function dedup(order: Uint32Array, hashes: Uint32Array, names: string[], subs: Uint8Array, flags: Uint8Array): [number, number] {
  const n = order.length;
  let m = 0;
  let dupBytes = 0;
  for (let i = 0; i < n; ) {
    const h = hashes[order[i]!]!;
    const runStart = m;
    for (; i < n && hashes[order[i]!] === h; i++) {
      const idx = order[i]!;
      let dup = -1;
      for (let k = runStart; k < m; k++) {
        if (names[order[k]!] === names[idx]) {
          dup = k;
          break;
        }
      }
      if (dup >= 0) {
        flags[dup]! |= subs[idx]!;
        dupBytes += names[idx]!.length;
      } else {
        order[m] = idx;
        flags[m] = subs[idx]!;
        m++;
      }
    }
  }
  return [m, dupBytes];
}

/**
 * An immutable set of domain names: all names in one byte array, ordered by a 32-bit hash,
 * with a bucket table on the hash's top bits so a lookup is one hash, a short scan of
 * hashes and usually one byte compare.
 */
export class DomainSet {
  private constructor(
    private readonly data: Uint8Array,
    /** offsets[k]..offsets[k+1] are entry k's bytes. */
    private readonly offsets: Uint32Array,
    private readonly hashes: Uint32Array,
    /** 1 where the entry also covers subdomains (ABP). */
    private readonly flags: Uint8Array,
    /** buckets[b]..buckets[b+1] are the entries whose hash's top `bits` bits are b. */
    private readonly buckets: Uint32Array,
    private readonly bits: number,
  ) {}

  /** Builds the set; duplicate names merge (covering subdomains if any duplicate does). Throws on invalid names. */
  static build(entries: readonly DomainEntry[]): DomainSet {
    const n = entries.length;
    const names = new Array<string>(n);
    const hashes = new Uint32Array(n);
    const subs = new Uint8Array(n);
    const allBytes = normalizeAll(entries, names, hashes, subs);
    const order = sortByHash(hashes);
    const flags = new Uint8Array(n);
    const [m, dupBytes] = dedup(order, hashes, names, subs, flags);
    const total = allBytes - dupBytes;
    // A Buffer for its native latin1 write (names are ASCII by now); a per-character loop was
    // several times slower here.
    const data = Buffer.allocUnsafeSlow(total);
    const offsets = new Uint32Array(m + 1);
    const sorted = new Uint32Array(m);
    let off = 0;
    for (let k = 0; k < m; k++) {
      const idx = order[k]!;
      const name = names[idx]!;
      offsets[k] = off;
      off += data.write(name, off, "latin1");
      sorted[k] = hashes[idx]!;
    }
    offsets[m] = off;

    // About four entries per bucket.
    const bits = Math.min(24, Math.max(1, Math.ceil(Math.log2(Math.max(m, 2))) - 2));
    const buckets = new Uint32Array((1 << bits) + 1);
    for (let k = 0; k < m; k++) buckets[(sorted[k]! >>> (32 - bits)) + 1]!++;
    for (let b = 1; b < buckets.length; b++) buckets[b]! += buckets[b - 1]!;

    return new DomainSet(data, offsets, sorted, flags.slice(0, m), buckets, bits);
  }

  /** Number of distinct names. */
  get size(): number {
    return this.hashes.length;
  }

  /** Bytes held by the set's arrays. */
  get bytes(): number {
    return (
      this.data.byteLength +
      this.offsets.byteLength +
      this.hashes.byteLength +
      this.flags.byteLength +
      this.buckets.byteLength
    );
  }

  /** Whether exactly this name is listed (case-insensitive, trailing dot ignored, IDN accepted). */
  has(name: string): boolean {
    const len = loadQuery(name);
    if (len < 0) return false;
    let h = 0x811c9dc5;
    for (let i = len - 1; i >= 0; i--) h = Math.imul(h ^ Q[i]!, 0x01000193);
    return this.find(h >>> 0, 0, len) >= 0;
  }

  /**
   * The longest listed name that blocks `name`: the name itself (any entry), or a parent
   * listed with subdomains (ABP). A parent listed exact-only does not block its children.
   */
  matchesSuffix(name: string): string | null {
    const len = loadQuery(name);
    if (len < 0) return null;
    let h = 0x811c9dc5;
    let count = 0;
    for (let i = len - 1; i >= 0; i--) {
      h = Math.imul(h ^ Q[i]!, 0x01000193);
      if (i === 0 || Q[i - 1] === 46) {
        SUFFIX_HASH[count] = h >>> 0;
        SUFFIX_START[count] = i;
        count++;
      }
    }
    // Recorded TLD first, so walk backwards: full name, then parents towards the TLD.
    for (let c = count - 1; c >= 0; c--) {
      const start = SUFFIX_START[c]!;
      const k = this.find(SUFFIX_HASH[c]!, start, len);
      if (k >= 0 && (start === 0 || this.flags[k] === 1)) {
        return queryClean ? name.slice(start, len) : ASCII.decode(Q.subarray(start, len));
      }
    }
    return null;
  }

  /** Index of the entry equal to Q[start..end) with hash h, or -1. */
  private find(h: number, start: number, end: number): number {
    if (this.hashes.length === 0) return -1;
    const b = h >>> (32 - this.bits);
    const hi = this.buckets[b + 1]!;
    const len = end - start;
    for (let k = this.buckets[b]!; k < hi; k++) {
      const hk = this.hashes[k]!;
      if (hk < h) continue;
      if (hk > h) break;
      const off = this.offsets[k]!;
      if (this.offsets[k + 1]! - off !== len) continue;
      let j = 0;
      while (j < len && this.data[off + j] === Q[start + j]) j++;
      if (j === len) return k;
    }
    return -1;
  }
}
