// One query in, one reply out: parse, decide (filter, per client group and pause), answer from
// the cache, or forward and answer later. Transport-free: the UDP and TCP servers hand in bytes
// and a place to write, and get the reply length back (0: nothing to send now). The common
// paths, a cache hit and a block, allocate nothing: the query is read into one reused view,
// the decision and answer live in the cache entry, names and client addresses are strings
// made once and kept.

import { CacheEntry, AnswerCache, serveEntry, storeReply } from "./cache.js";
import {
  HEADER,
  F_RD,
  CLASSIC_UDP_PAYLOAD,
  MAX_UDP_PAYLOAD,
  OPT_SIZE,
  Q_IGNORE,
  Q_OK,
  QueryView,
  RCODE_BADVERS,
  RCODE_NOERROR,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  ReplyScan,
  TYPE_A,
  TYPE_AAAA,
  TYPE_ANY,
  TYPE_OPT,
  TYPE_PTR,
  nameText,
  parseQuery,
  scanReply,
  writeAddress,
  writeEmpty,
  writeU16,
} from "./wire.js";
import { Decide, QueryStatus, ReplyType, isDenied, statusOfDecision, type BlockingMode } from "./types.js";

/** What the resolver knows about the device asking. Made once per client and kept. */
export interface Client {
  /** Address as text (query log, API). */
  readonly ip: string;
  /** The filter group (profile) it belongs to. */
  group: number;
  /** False while blocking is paused for it (or globally). */
  filtering: boolean;
  /** Answer REFUSED (a client outside the LAN: sluice is no open resolver). */
  refused: boolean;
}

/** Where a reply that could not be given at once goes when it is ready. */
export interface Transport {
  /** Called when a query must wait for an upstream: returns a handle for deliver(). */
  hold(tag: number): unknown;
  deliver(handle: unknown, reply: Uint8Array, len: number): void;
}

export interface Forwarder {
  resolve(query: Uint8Array): Promise<{ reply: Uint8Array; upstream: string; rttMs: number }>;
}

export interface Filter {
  readonly generation: number;
  lastReply: string | null;
  lastListId: number;
  lastRuleId: number;
  check(name: string, qtype: number, group: number): number;
}

export interface QueryRecorder {
  record(timeMs: number, client: string, domain: string, qtype: number, status: QueryStatus, reply: ReplyType, replyMs: number, upstream: string | null, listId: number, cname: string | null): void;
}

export interface ResolverOptions {
  cacheSize: number;
  /** Bytes of stored replies the cache may hold. */
  cacheBytes: number;
  /** Floor and ceiling applied to positive TTLs (seconds). */
  minTtl: number;
  maxTtl: number;
  /** Ceiling for negative caching (RFC 2308). */
  negativeMaxTtl: number;
  blockingMode: BlockingMode;
  /** Addresses for blocking mode IP (4 and 16 bytes), or null. */
  blockIPv4: Uint8Array | null;
  blockIPv6: Uint8Array | null;
  /** TTL of blocked replies (Pi-hole's dns.blockTTL). */
  blockTtl: number;
  /** Names without a dot are answered NXDOMAIN, never forwarded (dnsmasq's domain-needed). */
  domainNeeded: boolean;
  /** Reverse lookups of private addresses are answered NXDOMAIN locally (dnsmasq's bogus-priv). */
  bogusPriv: boolean;
  /** Most queries waiting for upstreams at once (all questions together); beyond, SERVFAIL at once. */
  maxPending: number;
  /** More names answered NXDOMAIN here (known DoH servers when bypass prevention is on). */
  localNxdomain: ReadonlySet<string>;
}

export const DEFAULT_RESOLVER_OPTIONS: ResolverOptions = {
  cacheSize: 100_000,
  cacheBytes: 64 << 20,
  minTtl: 0,
  maxTtl: 86_400,
  negativeMaxTtl: 3600,
  blockingMode: "NULL",
  blockIPv4: null,
  blockIPv6: null,
  blockTtl: 2,
  domainNeeded: true,
  bogusPriv: true,
  maxPending: 10_000,
  localNxdomain: new Set(),
};

export interface ResolverCounters {
  queries: number;
  cached: number;
  forwarded: number;
  blocked: number;
  local: number;
  malformed: number;
  failed: number;
  overloaded: number;
  refused: number;
}

/** Which addresses the IP -> domain table learns, and how. */
export type Learner = (version: 4 | 6, bytes: Uint8Array, off: number, name: string, ttl: number) => void;

interface Waiter {
  query: Uint8Array;
  client: Client;
  limit: number;
  handle: unknown;
  transport: Transport;
  startMs: number;
}

interface Pending {
  entry: CacheEntry;
  waiters: Waiter[];
}

/** Pass as `limit` for UDP: the reply size then follows the client's EDNS payload size. */
export const UDP_LIMIT = -1;
const ZERO16 = new Uint8Array(16);
/** Firefox asks this to learn whether the network filters DNS; NXDOMAIN keeps it off DoH. */
const CANARY = "use-application-dns.net";
/** A decision-only entry (blocked name) is trusted this long before the filter is asked again. */
const DECISION_ONLY_MS = 3_600_000;
/** Identical questions waiting for one upstream answer, at most (a flood of one name is cut here). */
const MAX_WAITERS_PER_QUESTION = 256;
/** Replies larger than this answer their waiters but are not kept (a cache of 64 KiB TXT records is a memory attack). */
const MAX_CACHED_REPLY = 16 << 10;
/** Addresses of a cached answer are re-taught to the IP -> domain table at most this often. */
const RELEARN_S = 60;
const IPDOM_MIN_TTL = 60;
const IPDOM_MAX_TTL = 86_400;
/** Private reverse zones (RFC 1918, RFC 6761 loopback/link-local, ULA) for bogus-priv. */
const PRIVATE_REVERSE = /(^|\.)(10|127|168\.192|(1[6-9]|2\d|3[01])\.172|254\.169)\.in-addr\.arpa$|(^|\.)[cd]\.f\.ip6\.arpa$|(^|\.)[89ab]\.e\.f\.ip6\.arpa$/;

export class Resolver {
  readonly cache: AnswerCache;
  readonly counters: ResolverCounters = { queries: 0, cached: 0, forwarded: 0, blocked: 0, local: 0, malformed: 0, failed: 0, overloaded: 0, refused: 0 };
  private readonly q = new QueryView();
  private readonly q2 = new QueryView();
  private readonly scan = new ReplyScan();
  private readonly pending = new Map<CacheEntry, Pending>();
  /** Queries waiting for upstreams (all waiters of all questions in flight). */
  private waiting = 0;
  /** Scratch for replies delivered later (TCP-sized: an upstream reply may be large). */
  private readonly late = new Uint8Array(65_535 + OPT_SIZE);
  private readonly overrides = new Map<string, { rcode: number; addr4: Uint8Array | null; addr6: Uint8Array | null; drop: boolean }>();
  /** Time for the batch being answered; the servers set it once per batch. */
  nowMs = Date.now();

  constructor(
    readonly opts: ResolverOptions,
    private readonly forwarder: Forwarder,
    private readonly filter: Filter | null,
    private readonly log: QueryRecorder | null,
    private readonly learn: Learner | null,
  ) {
    this.cache = new AnswerCache(opts.cacheSize, opts.cacheBytes);
  }

  get pendingQueries(): number {
    return this.waiting;
  }

  /**
   * Answers the query in src[off, off+len) from `client` into out[o], at most `limit` bytes
   * (UDP_LIMIT: whatever the client's EDNS size allows, capped at MAX_UDP_PAYLOAD).
   * Returns the reply's length, or 0 when there is nothing to send now (ignored, dropped, or
   * waiting for an upstream: then transport.hold(tag) was called and deliver() follows).
   */
  answer(src: Uint8Array, off: number, len: number, client: Client, out: Uint8Array, o: number, limit: number, transport: Transport, tag: number): number {
    const q = this.q;
    const rc = parseQuery(src, off, len, q);
    if (rc === Q_IGNORE) return 0;
    if (limit === UDP_LIMIT) limit = q.edns ? Math.min(q.udpSize, MAX_UDP_PAYLOAD) : CLASSIC_UDP_PAYLOAD;
    this.counters.queries++;
    const now = this.nowMs;
    if (client.refused) {
      // Before anything else: a client outside the LAN gets nothing of ours, not even a log line.
      this.counters.refused++;
      return writeEmpty(out, o, src, off, q, RCODE_REFUSED);
    }
    if (rc !== Q_OK) {
      this.counters.malformed++;
      const n = writeEmpty(out, o, src, off, q, rc === RCODE_BADVERS ? RCODE_BADVERS : rc);
      if (q.qtype !== 0) this.record(client, nameText(src, q, off), q.qtype, QueryStatus.SPECIAL_DOMAIN, rc === RCODE_REFUSED ? ReplyType.REFUSED : ReplyType.FORMERR, 0, null, -1);
      return n;
    }
    let e = this.cache.find(src, off, q);
    if (e === null) {
      const name = nameText(src, q, off);
      const local = this.localAnswer(name, q);
      if (local >= 0) {
        this.counters.local++;
        const n = writeEmpty(out, o, src, off, q, local);
        this.record(client, name, q.qtype, QueryStatus.SPECIAL_DOMAIN, local === RCODE_NXDOMAIN ? ReplyType.NXDOMAIN : ReplyType.NODATA, 0, null, -1);
        return n;
      }
      const wire = new Uint8Array(q.nameEnd - (off + HEADER));
      for (let i = 0; i < wire.length; i++) {
        const c = src[off + HEADER + i]!;
        wire[i] = c >= 65 && c <= 90 ? c + 32 : c;
      }
      e = new CacheEntry(q.hash, wire, name, q.qtype, q.qclass, q.dnssecOk);
      this.cache.insert(e);
    }
    e.ref = 1;

    const f = this.filter;
    if (f !== null && client.filtering) {
      if (e.decGen !== f.generation || e.decGroup !== client.group) {
        e.decision = f.check(e.nameText, q.qtype, client.group);
        e.decReply = f.lastReply;
        e.decList = isDenied(e.decision) ? (e.decision === Decide.DENY_LIST ? f.lastListId : f.lastRuleId) : -1;
        e.decGen = f.generation;
        e.decGroup = client.group;
        if (e.reply === null) e.expiresAt = now + DECISION_ONLY_MS;
      }
      if (isDenied(e.decision)) return this.blocked(e, out, o, src, off, q, client);
    }

    if (e.reply !== null && e.expiresAt > now) {
      this.counters.cached++;
      this.cache.counters.hits++;
      const n = serveEntry(e, out, o, limit, src, off, q, now);
      if (this.learn !== null && e.learnedAt + RELEARN_S <= now / 1000) this.teach(e, now);
      this.record(client, e.nameText, q.qtype, QueryStatus.CACHE, e.replyType, 0, null, -1);
      return n;
    }
    this.cache.counters.misses++;
    const p = this.pending.get(e);
    if (this.waiting >= this.opts.maxPending || (p !== undefined && p.waiters.length >= MAX_WAITERS_PER_QUESTION)) {
      // Memory for waiting queries is bounded: beyond it, SERVFAIL now (the client retries).
      this.counters.overloaded++;
      this.record(client, e.nameText, q.qtype, QueryStatus.FORWARDED, ReplyType.SERVFAIL, 0, null, -1);
      return writeEmpty(out, o, src, off, q, RCODE_SERVFAIL);
    }
    this.forward(e, p, src, off, len, client, limit, transport, tag);
    return 0;
  }

  /** A block: the mode's reply, or the regex's own (`reply=`). */
  private blocked(e: CacheEntry, out: Uint8Array, o: number, src: Uint8Array, off: number, q: QueryView, client: Client): number {
    this.counters.blocked++;
    const status = statusOfDecision(e.decision);
    const ov = e.decReply === null ? null : this.override(e.decReply);
    let rcode = -1;
    let v4: Uint8Array | null = null;
    let v6: Uint8Array | null = null;
    if (ov !== null) {
      if (ov.drop) {
        this.record(client, e.nameText, q.qtype, status, ReplyType.NONE, 0, null, e.decList);
        return 0;
      }
      rcode = ov.rcode;
      v4 = ov.addr4;
      v6 = ov.addr6;
    } else {
      switch (this.opts.blockingMode) {
        case "NULL":
          v4 = v6 = ZERO16;
          break;
        case "IP":
          v4 = this.opts.blockIPv4;
          v6 = this.opts.blockIPv6;
          break;
        case "NXDOMAIN":
          rcode = RCODE_NXDOMAIN;
          break;
        case "NODATA":
          rcode = RCODE_NOERROR;
          break;
      }
    }
    let n: number;
    let reply: ReplyType;
    const addr = rcode >= 0 ? null : q.qtype === TYPE_A ? v4 : q.qtype === TYPE_AAAA ? v6 : null;
    if (addr !== null) {
      n = writeAddress(out, o, src, off, q, addr, 0, this.opts.blockTtl, true);
      reply = addr === ZERO16 ? ReplyType.BLOB : ReplyType.IP;
    } else {
      const rc = rcode < 0 ? RCODE_NOERROR : rcode;
      n = writeEmpty(out, o, src, off, q, rc, true);
      reply = rc === RCODE_NXDOMAIN ? ReplyType.NXDOMAIN : rc === RCODE_REFUSED ? ReplyType.REFUSED : ReplyType.NODATA;
    }
    this.record(client, e.nameText, q.qtype, status, reply, 0, null, e.decList);
    return n;
  }

  /** Pi-hole's regex `reply=` values, parsed once each. */
  private override(text: string): { rcode: number; addr4: Uint8Array | null; addr6: Uint8Array | null; drop: boolean } | null {
    let v = this.overrides.get(text);
    if (v !== undefined) return v;
    const t = text.toLowerCase();
    if (t === "nodata") v = { rcode: RCODE_NOERROR, addr4: null, addr6: null, drop: false };
    else if (t === "nxdomain") v = { rcode: RCODE_NXDOMAIN, addr4: null, addr6: null, drop: false };
    else if (t === "refused") v = { rcode: RCODE_REFUSED, addr4: null, addr6: null, drop: false };
    else if (t === "none") v = { rcode: -1, addr4: null, addr6: null, drop: true };
    else if (t === "ip") v = { rcode: -1, addr4: this.opts.blockIPv4, addr6: this.opts.blockIPv6, drop: false };
    else {
      const a4 = parseV4(t);
      const a6 = a4 === null ? parseV6(t) : null;
      if (a4 === null && a6 === null) return null; // unknown: the blocking mode applies
      v = { rcode: -1, addr4: a4, addr6: a6, drop: false };
    }
    this.overrides.set(text, v);
    return v;
  }

  /** RCODE for names answered here without forwarding, or -1. */
  private localAnswer(name: string, q: QueryView): number {
    if (name === CANARY || this.opts.localNxdomain.has(name)) return RCODE_NXDOMAIN;
    if (this.opts.domainNeeded && q.labels === 1 && (q.qtype === TYPE_A || q.qtype === TYPE_AAAA || q.qtype === TYPE_ANY)) return RCODE_NXDOMAIN;
    if (this.opts.bogusPriv && q.qtype === TYPE_PTR && PRIVATE_REVERSE.test(name)) return RCODE_NXDOMAIN;
    return -1;
  }

  private forward(e: CacheEntry, p: Pending | undefined, src: Uint8Array, off: number, len: number, client: Client, limit: number, transport: Transport, tag: number): void {
    const waiter: Waiter = { query: src.slice(off, off + len), client, limit, handle: transport.hold(tag), transport, startMs: this.nowMs };
    this.waiting++;
    if (p !== undefined) {
      p.waiters.push(waiter); // the same question is already on its way: one upstream query serves all
      return;
    }
    const pend: Pending = { entry: e, waiters: [waiter] };
    this.pending.set(e, pend);
    this.counters.forwarded++;
    const qb = this.upstreamQuery(e);
    this.forwarder.resolve(qb).then(
      (r) => this.settle(pend, qb, r.reply, r.upstream),
      () => this.settle(pend, qb, null, null),
    );
  }

  /** The question as sent upstream: lower-case, recursion desired, EDNS with our size and the DO bit. */
  private upstreamQuery(e: CacheEntry): Uint8Array {
    const b = new Uint8Array(HEADER + e.name.length + 4 + OPT_SIZE);
    writeU16(b, 2, F_RD);
    writeU16(b, 4, 1);
    writeU16(b, 10, 1);
    b.set(e.name, HEADER);
    let o = HEADER + e.name.length;
    writeU16(b, o, e.qtype);
    writeU16(b, o + 2, e.qclass);
    o += 4;
    b[o] = 0;
    writeU16(b, o + 1, TYPE_OPT);
    writeU16(b, o + 3, 1232);
    writeU16(b, o + 7, e.dnssecOk ? 0x8000 : 0);
    return b;
  }

  private settle(p: Pending, qb: Uint8Array, reply: Uint8Array | null, upstream: string | null): void {
    this.pending.delete(p.entry);
    this.waiting -= p.waiters.length;
    const e = p.entry;
    const now = Date.now();
    const q2 = this.q2;
    if (reply === null || parseQuery(qb, 0, qb.length, q2) !== Q_OK || !scanReply(reply, reply.length, qb, 0, q2, this.scan)) {
      this.fail(e, p.waiters, upstream);
      return;
    }
    const s = this.scan;
    if (s.rcode === RCODE_SERVFAIL || s.rcode === RCODE_REFUSED || (s.rcode !== RCODE_NOERROR && s.rcode !== RCODE_NXDOMAIN)) {
      this.fail(e, p.waiters, upstream, s.rcode);
      return;
    }
    let ttl: number;
    if (s.rcode === RCODE_NOERROR && s.an > 0) ttl = Math.min(Math.max(s.minTtl, this.opts.minTtl), this.opts.maxTtl);
    else ttl = s.negTtl >= 0 ? Math.min(s.negTtl, this.opts.negativeMaxTtl) : 0; // RFC 2308: no SOA, no negative caching
    const before = e.reply?.length ?? 0;
    storeReply(e, reply, reply.length, s, now, ttl);
    this.cache.accountBytes(e, e.reply!.length - before);
    e.upstream = upstream;
    e.replyType =
      s.rcode === RCODE_NXDOMAIN ? ReplyType.NXDOMAIN : s.an === 0 ? ReplyType.NODATA : s.addrs > 0 ? ReplyType.IP : s.cname ? ReplyType.CNAME : ReplyType.RRNAME;
    if (this.learn !== null) this.teach(e, now);
    for (const w of p.waiters) {
      const q = this.q2;
      if (parseQuery(w.query, 0, w.query.length, q) !== Q_OK) continue;
      const n = serveEntry(e, this.late, 0, w.limit, w.query, 0, q, now);
      w.transport.deliver(w.handle, this.late, n);
      this.record(w.client, e.nameText, e.qtype, QueryStatus.FORWARDED, e.replyType, now - w.startMs, upstream, -1);
    }
    if (e.reply!.length > MAX_CACHED_REPLY) this.cache.dropReply(e);
  }

  /** Feeds the entry's addresses to the IP -> domain table (under the question's name). */
  private teach(e: CacheEntry, nowMs: number): void {
    const r = e.reply;
    if (r === null || e.ttlAt === null) return;
    e.learnedAt = Math.floor(nowMs / 1000);
    // Walk the answer section again (the scan is long gone for cache hits): cheap, <= MAX_TTLS records.
    const an = (r[6]! << 8) | r[7]!;
    let o = HEADER + e.name.length + 4;
    for (let i = 0; i < an && o < r.length; i++) {
      // Names in a cached reply may be compressed: skip label by label.
      while (o < r.length) {
        const l = r[o]!;
        if (l === 0) {
          o++;
          break;
        }
        if ((l & 0xc0) === 0xc0) {
          o += 2;
          break;
        }
        o += l + 1;
      }
      if (o + 10 > r.length) return;
      const type = (r[o]! << 8) | r[o + 1]!;
      const rdlen = (r[o + 8]! << 8) | r[o + 9]!;
      const ttl = ((r[o + 4]! << 24) | (r[o + 5]! << 16) | (r[o + 6]! << 8) | r[o + 7]!) >>> 0;
      const rd = o + 10;
      if (rd + rdlen > r.length) return;
      if ((type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16)) {
        const t = Math.min(Math.max(ttl > 0x7fffffff ? 0 : ttl, IPDOM_MIN_TTL), IPDOM_MAX_TTL);
        this.learn!(type === TYPE_A ? 4 : 6, r, rd, e.nameText, t);
      }
      o = rd + rdlen;
    }
  }

  private fail(e: CacheEntry, waiters: Waiter[], upstream: string | null, rcode = RCODE_SERVFAIL): void {
    this.counters.failed += waiters.length;
    const q = this.q2;
    for (const w of waiters) {
      if (parseQuery(w.query, 0, w.query.length, q) !== Q_OK) continue;
      const n = writeEmpty(this.late, 0, w.query, 0, q, rcode);
      w.transport.deliver(w.handle, this.late, n);
      this.record(w.client, e.nameText, e.qtype, QueryStatus.FORWARDED, rcode === RCODE_REFUSED ? ReplyType.REFUSED : ReplyType.SERVFAIL, this.nowMs - w.startMs, upstream, -1);
    }
  }

  private record(client: Client, name: string, qtype: number, status: QueryStatus, reply: ReplyType, replyMs: number, upstream: string | null, listId: number): void {
    if (this.log !== null) this.log.record(this.nowMs, client.ip, name, qtype, status, reply, replyMs, upstream, listId, null);
  }
}

function parseV4(t: string): Uint8Array | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t);
  if (m === null) return null;
  const b = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return null;
    b[i] = v;
  }
  return b;
}

function parseV6(t: string): Uint8Array | null {
  if (!/^[0-9a-f:]+$/.test(t) || !t.includes(":")) return null;
  const halves = t.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1]!.split(":") : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const b = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (g.length === 0 || g.length > 4) return null;
    const v = parseInt(g, 16);
    b[2 * i] = v >>> 8;
    b[2 * i + 1] = v & 255;
  }
  return b;
}
