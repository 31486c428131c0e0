// The resolver's answer cache. One entry per (name, type, class, DO bit), found by the hash
// parseQuery already computed, so a hit costs no string and no allocation. An entry holds the
// upstream reply as bytes (ID zeroed, OPT removed) plus where its TTL fields are; serving it is
// a copy, the client's ID and question written over, and each TTL lowered by the entry's age.
//
// An entry also remembers the filter's last decision for it (generation, group), so a cached
// name is not looked up in the lists again until the lists or the client's group change.
// Entries that only carry a decision (a blocked name, never forwarded) live in the same table.
//
// Bounded by entry count; eviction is CLOCK over the Map's insertion order: an entry hit since
// the hand last passed gets a second chance at the back of the queue.

import { ReplyType } from "./types.js";
import {
  HEADER,
  F_AD,
  F_CD,
  F_RD,
  F_TC,
  OPT_SIZE,
  type QueryView,
  type ReplyScan,
  readU16,
  sameName,
  writeOpt,
  writeU16,
  writeU32,
  writeTruncated,
} from "./wire.js";

export class CacheEntry {
  next: CacheEntry | null = null;
  /** The reply, or null for a decision-only entry. */
  reply: Uint8Array | null = null;
  ttlAt: Uint16Array | null = null;
  ttlBase: Uint32Array | null = null;
  /** ms since the epoch. */
  storedAt = 0;
  expiresAt = 0;
  rcode = 0;
  /** What the reply is, for the query log. */
  replyType: ReplyType = ReplyType.UNKNOWN;
  upstream: string | null = null;
  /** Filter decision cache: valid while the filter generation and the client's group match. */
  decGen = -1;
  decGroup = -1;
  decision = 0;
  decReply: string | null = null;
  decList = -1;
  /** CLOCK reference bit. */
  ref = 0;
  /** Last time (s) its addresses were fed to the IP -> domain table. */
  learnedAt = 0;
  /** In the table (false once evicted: a query waiting upstream may still hold it). */
  inCache = false;

  constructor(
    readonly hash: number,
    /** Lower-case wire form of the question name. */
    readonly name: Uint8Array,
    readonly nameText: string,
    readonly qtype: number,
    readonly qclass: number,
    readonly dnssecOk: boolean,
  ) {}
}

export interface CacheCounters {
  hits: number;
  misses: number;
  inserts: number;
  evictions: number;
  expired: number;
}

/** Entries sharing one hash, at most: a crafted flood of colliding names cannot grow a chain. */
const MAX_CHAIN = 8;

export class AnswerCache {
  private readonly map = new Map<number, CacheEntry>();
  private count = 0;
  private bytes = 0;
  readonly counters: CacheCounters = { hits: 0, misses: 0, inserts: 0, evictions: 0, expired: 0 };

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number = Infinity,
  ) {}

  /** Bytes of stored replies. */
  get storedBytes(): number {
    return this.bytes;
  }

  /** A reply was stored or replaced in entry e: `delta` bytes more; evicts down to the budget. */
  accountBytes(e: CacheEntry, delta: number): void {
    if (!e.inCache) return;
    this.bytes += delta;
    while (this.bytes > this.maxBytes && this.count > 1 && this.evict());
  }

  /** Keeps the entry (its decision) but lets its reply go. */
  dropReply(e: CacheEntry): void {
    if (e.reply === null) return;
    if (e.inCache) this.bytes -= e.reply.length;
    e.reply = null;
    e.ttlAt = null;
    e.ttlBase = null;
    e.expiresAt = 0;
  }

  get size(): number {
    return this.count;
  }

  /** The entry for the query in b (parsed into q), expired or not; null if none. */
  find(b: Uint8Array, off: number, q: QueryView): CacheEntry | null {
    for (let e = this.map.get(q.hash) ?? null; e !== null; e = e.next) {
      if (e.qtype === q.qtype && e.qclass === q.qclass && e.dnssecOk === q.dnssecOk && sameName(b, off, q, e.name)) return e;
    }
    return null;
  }

  /** Looks an entry up by its text form (for the API, not the hot path). */
  lookup(nameText: string, qtype: number): CacheEntry | null {
    for (const head of this.map.values()) {
      for (let e: CacheEntry | null = head; e !== null; e = e.next) {
        if (e.qtype === qtype && e.nameText === nameText) return e;
      }
    }
    return null;
  }

  /** Adds a new entry (the caller checked find() returned null). */
  insert(e: CacheEntry): void {
    if (this.count >= this.maxEntries) this.evict();
    const head = this.map.get(e.hash);
    if (head !== undefined) {
      e.next = head;
      // Cut the chain's oldest entries beyond MAX_CHAIN.
      let p = e;
      for (let n = 1; p.next !== null; n++) {
        if (n >= MAX_CHAIN) {
          for (let x: CacheEntry | null = p.next; x !== null; x = x.next) {
            x.inCache = false;
            this.bytes -= x.reply?.length ?? 0;
            this.count--;
            this.counters.evictions++;
          }
          p.next = null;
          break;
        }
        p = p.next;
      }
    }
    this.map.set(e.hash, e);
    e.inCache = true;
    this.count++;
    this.counters.inserts++;
  }

  clear(): number {
    const n = this.count;
    for (const e of this.entries()) e.inCache = false;
    this.map.clear();
    this.count = 0;
    this.bytes = 0;
    return n;
  }

  *entries(): IterableIterator<CacheEntry> {
    for (const head of this.map.values()) for (let e: CacheEntry | null = head; e !== null; e = e.next) yield e;
  }

  /** Evicts one entry (CLOCK); false if there was none to evict. */
  private evict(): boolean {
    const now = Date.now();
    // The hand walks from the front; bounded so a table full of referenced entries still ends.
    for (let steps = 0; steps < 2 * this.count + 2; steps++) {
      const first = this.map.entries().next();
      if (first.done) return false;
      const [hash, head] = first.value;
      if (head.ref !== 0 && head.expiresAt > now) {
        head.ref = 0;
        this.map.delete(hash);
        this.map.set(hash, head);
        continue;
      }
      this.map.delete(hash);
      if (head.next !== null) this.map.set(hash, head.next);
      head.inCache = false;
      this.bytes -= head.reply?.length ?? 0;
      this.count--;
      this.counters.evictions++;
      return true;
    }
    return false;
  }
}

/**
 * Fills an entry with an upstream reply already checked by scanReply: keeps a copy without the
 * OPT record and with ID 0, and where its TTLs are. A reply with more TTL fields than the scan
 * records is kept only to answer the queries waiting for it (it expires at once).
 */
export function storeReply(e: CacheEntry, reply: Uint8Array, len: number, s: ReplyScan, nowMs: number, ttlS: number): void {
  let bytes: Uint8Array;
  if (s.optStart !== 0) {
    bytes = new Uint8Array(len - (s.optEnd - s.optStart));
    bytes.set(reply.subarray(0, s.optStart), 0);
    bytes.set(reply.subarray(s.optEnd, len), s.optStart);
    writeU16(bytes, 10, readU16(bytes, 10) - 1);
  } else {
    bytes = reply.slice(0, len);
  }
  writeU16(bytes, 0, 0);
  const at = new Uint16Array(s.ttls);
  const base = new Uint32Array(s.ttls);
  for (let i = 0; i < s.ttls; i++) {
    let p = s.ttlAt[i]!;
    if (s.optStart !== 0 && p >= s.optEnd) p -= s.optEnd - s.optStart;
    at[i] = p;
    const v = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
    // No record promises more than the entry is kept for: a client must not outlive our copy
    // (for a negative reply this makes the SOA carry the RFC 2308 negative TTL).
    base[i] = Math.min(v > 0x7fffffff ? 0 : v, ttlS);
    writeU32(bytes, p, base[i]!);
  }
  e.reply = bytes;
  e.ttlAt = at;
  e.ttlBase = base;
  e.storedAt = nowMs;
  e.expiresAt = nowMs + (s.overflow ? 0 : ttlS * 1000);
  e.rcode = s.rcode;
}

/**
 * Writes the cached reply for the query (q, read from src at srcOff) into out[o]: the client's
 * ID, flags and question, TTLs aged, an OPT when the client sent one. Falls back to a
 * truncated reply when it would not fit `limit`. Returns the length written.
 */
export function serveEntry(e: CacheEntry, out: Uint8Array, o: number, limit: number, src: Uint8Array, srcOff: number, q: QueryView, nowMs: number): number {
  const r = e.reply!;
  const need = r.length + (q.edns ? OPT_SIZE : 0);
  if (need > limit) return writeTruncated(out, o, src, srcOff, q);
  out.set(r, o);
  writeU16(out, o, q.id);
  // Keep the upstream's AA/RCODE bits, take RD/CD from the client, clear TC (we hold all of it),
  // and only claim AD to clients that asked for DNSSEC (RFC 6840 5.8).
  let flags = readU16(r, 2) & ~(F_RD | F_CD | F_TC);
  if (!q.dnssecOk && (q.flags & F_AD) === 0) flags &= ~F_AD;
  writeU16(out, o + 2, flags | (q.flags & (F_RD | F_CD)));
  // The question exactly as asked (same length: the names differ at most in case).
  for (let i = srcOff + HEADER, w = o + HEADER; i < q.nameEnd; i++, w++) out[w] = src[i]!;
  const age = Math.floor((nowMs - e.storedAt) / 1000);
  if (age > 0) {
    const at = e.ttlAt!;
    const base = e.ttlBase!;
    for (let i = 0; i < at.length; i++) {
      const t = base[i]! - age;
      writeU32(out, o + at[i]!, t > 0 ? t : 0);
    }
  }
  let w = o + r.length;
  if (q.edns) {
    writeU16(out, o + 10, readU16(r, 10) + 1);
    w = writeOpt(out, w, q, 0, false);
  }
  return w - o;
}
