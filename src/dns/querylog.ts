// The DNS query log: every answered query, kept three ways.
//
// 1. A bounded columnar ring of the most recent queries (Pi-hole's in-memory query table). One
//    typed array per column, so a query costs 36 bytes of columns plus its share of the interned
//    strings, and nothing per query for the garbage collector. Domains, clients and upstreams are
//    stored as ids into reference-counted intern tables; an id nothing refers to any more (its last
//    row left the ring and its last counter bucket expired) is forgotten and its number reused, so
//    the tables track what is held, not everything ever seen. Query ids are consecutive and never
//    reused (after a restart they continue from the largest persisted id), so a row's place in the
//    ring is its id modulo the capacity and needs no column of its own.
//
// 2. Counters for Pi-hole's statistics over the last 24 h (Overtime below): FTL's 145 ten-minute
//    slots for the totals and per-client counts (history, history/clients, summary), per-hour
//    buckets for per-domain counts (top domains, unique_domains: FTL drops old queries hourly too),
//    per-upstream response times, and a running sum over the live buckets (the "window") that the
//    summary and top lists read without walking the buckets. Counts by name are appended to flat
//    arrays per bucket and found again through a per-id pointer, so record() hashes nothing beyond
//    the three intern lookups. Buckets are capped (maxHourDomains, maxSlotClients) and the window
//    counts at most maxWindowDomains domains by name: a query whose name does not fit still counts
//    in every total but not by name (top lists and unique_domains undercount it, history/clients
//    shows it under "others"); counters.domainsUnranked / clientsUnranked say how many.
//
// 3. With a HistoryStore: blocks of consecutive queries written through the store's writer, in the
//    same LMDB transactions as connection records (src/store/dnslog.ts), every flushMs, or sooner
//    when a quarter of the ring is waiting. On construction the last 24 h of blocks are read back
//    (newest first, at most loadMaxRows rows) into the counters and the ring, so Pi-hole's graphs,
//    top lists and the recent query log survive a restart.
//
// record() is the hot path (the resolver calls it for every answer): typed-array stores, three or
// four intern lookups, and array updates for the counters. It allocates only when an intern table
// meets a new name (and a small accumulator per new upstream per slot).

import {
  decodeQueryBlock,
  encodeQueryBlock,
  QBLOCK_MAX_ROWS,
  QK_LAST_ID,
  QK_MAX_TIME,
  QK_MIN_TIME,
  QK_PREFIX_MAX,
  type HistoryStore,
  type QLogKey,
  type QueryBlockCols,
} from "../store/index.js";
import {
  DnsInputError,
  QTYPE_NAMES,
  QUERY_STATUS_NAMES,
  QueryStatus,
  REPLY_TYPE_NAMES,
  ReplyType,
  isBlockedStatus,
  type QueriesResult,
  type QueryFilter,
  type QueryLogApi,
  type QueryRow,
  type SummaryStats,
} from "./types.js";

/** Queries held in memory unless told otherwise. */
export const DEFAULT_CAPACITY = 500_000;
/** How often recorded queries are written to the store. */
export const DEFAULT_FLUSH_MS = 1000;
/** Pi-hole's OVERTIME_INTERVAL (s), in ms. */
export const SLOT_MS = 600_000;
/** Pi-hole's OVERTIME_SLOTS: 24 h of ten-minute slots plus the current one. */
export const SLOTS = 145;
/** Distinct domains counted by name per hour (domains are counted per hour, see Overtime). */
export const DEFAULT_MAX_HOUR_DOMAINS = 300_000;
/** Distinct clients counted by name per ten-minute slot. */
export const DEFAULT_MAX_SLOT_CLIENTS = 100_000;
/** Distinct domains counted by name over the whole 24 h window. */
export const DEFAULT_MAX_WINDOW_DOMAINS = 1_000_000;
/** Rows read back from the store on construction at most (~2.5 s for 2M on a busy 2-core box). */
export const DEFAULT_LOAD_MAX_ROWS = 2_000_000;
/** Rows a disk query looks at before it stops (recordsFiltered then counts only those). */
export const DEFAULT_DISK_MAX_SCAN = 10_000_000;
/** Page length when the filter names none (Pi-hole's default). */
export const DEFAULT_PAGE_LENGTH = 100;
/** `frequency` is queries per second over this many most recent minutes. */
const FREQ_MINUTES = 10;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** Hour buckets the 145-slot window can touch: 24 h 10 min spans at most 26 clock hours. */
const HOUR_BUCKETS = 26;
/** Entries a new per-bucket name array starts with. */
const NAMES_INITIAL = 64;
/** Clients remembered for clients.total beyond the active ones. */
const MAX_KNOWN_CLIENTS = 100_000;
/** Bytes of ring columns per query: time f64, four u32 string ids, f32, i32, u16, two u8. */
export const RING_BYTES_PER_QUERY = 8 + 4 * 4 + 4 + 4 + 2 + 1 + 1;
/** What the row shows where sluice has nothing (no DNSSEC validation, no extended errors yet). */
const DNSSEC_NONE = "UNKNOWN";
const EDE_NONE = -1;
const DEFAULT_DNS_PORT = 53;
/** Pseudo-upstreams of the queries filter (Pi-hole's names). */
const UPSTREAM_BLOCKLIST = "blocklist";
const UPSTREAM_CACHE = "cache";
const UPSTREAM_PERMITTED = "permitted";
/** Key of the catch-all client in history/clients (FTL's code, not its spec, which says 0.0.0.0). */
const OTHERS_KEY = "others";
const OTHERS_NAME = "other clients";
const INTERN_INITIAL = 1024;
/** LazyMatch memo values. */
const MATCH_UNKNOWN = 0;
const MATCH_YES = 1;
const MATCH_NO = 2;
const U16_MASK = 0xffff;

const STATUS_COUNT = QUERY_STATUS_NAMES.length;
const REPLY_COUNT = REPLY_TYPE_NAMES.length;
/** Summary `types` keys: the named types in Pi-hole's order, then OTHER. */
const TYPE_KEYS: readonly string[] = [...QTYPE_NAMES.values(), "OTHER"];
const TYPE_OTHER = TYPE_KEYS.length - 1;
/** qtype -> index into TYPE_KEYS, one byte per possible qtype so the hot path does one load. */
const TYPE_INDEX = new Uint8Array(U16_MASK + 1).fill(TYPE_OTHER);
{
  let i = 0;
  for (const t of QTYPE_NAMES.keys()) TYPE_INDEX[t] = i++;
}
/** 1 for statuses that mean blocked. */
const BLOCKED = new Uint8Array(STATUS_COUNT);
for (let s = 0; s < STATUS_COUNT; s++) BLOCKED[s] = isBlockedStatus(s) ? 1 : 0;

function isCached(s: number): boolean {
  return s === QueryStatus.CACHE || s === QueryStatus.CACHE_STALE;
}

/**
 * Strings by small integer id, each with a reference count. An id whose count drops to zero is
 * forgotten and its number reused, so the table holds only strings something still refers to.
 * Id 0 means "none" and is never counted.
 */
class Interner {
  private readonly ids = new Map<string, number>();
  private readonly strs: (string | undefined)[] = [undefined];
  private refs = new Uint32Array(INTERN_INITIAL);
  private readonly free: number[] = [];

  /** The id of s, with one more reference. */
  ref(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.free.pop();
      if (id === undefined) {
        id = this.strs.length;
        this.strs.push(s);
        if (id >= this.refs.length) {
          const r = new Uint32Array(this.refs.length * 2);
          r.set(this.refs);
          this.refs = r;
        }
      } else this.strs[id] = s;
      this.ids.set(s, id);
    }
    this.refs[id]++;
    return id;
  }

  addRef(id: number): void {
    if (id !== 0) this.refs[id]++;
  }

  unref(id: number): void {
    if (id === 0) return;
    if (--this.refs[id] === 0) {
      this.ids.delete(this.strs[id]!);
      this.strs[id] = undefined;
      this.free.push(id);
    }
  }

  str(id: number): string {
    return this.strs[id]!;
  }

  /** The string of an id, or undefined for 0 and forgotten ids. */
  strOrUndefined(id: number): string | undefined {
    return this.strs[id];
  }

  /** Strings held. */
  get size(): number {
    return this.ids.size;
  }

  /** Every id is below this. */
  get limit(): number {
    return this.strs.length;
  }
}

/** Forwarded queries and their response times (s) for one upstream. */
class UpAcc {
  count = 0;
  responses = 0;
  sum = 0;
  sum2 = 0;
}

/**
 * Queries per name within one time bucket, as parallel arrays appended in order of first
 * appearance. The hot path finds a name's entry through the per-id pointers Overtime keeps for the
 * newest bucket (no hashing); a query for an older bucket (logged late) goes through `index`,
 * built on first need. 12 bytes per (name, bucket) against ~40-60 for a Map entry.
 */
class NameCounts {
  /** Bucket number (slot or hour since the epoch) the entries belong to; -1 when empty. */
  bucket = -1;
  ids: Uint32Array = new Uint32Array(NAMES_INITIAL);
  all: Uint32Array = new Uint32Array(NAMES_INITIAL);
  blk: Uint32Array = new Uint32Array(NAMES_INITIAL);
  n = 0;
  /** Queries not counted by name here because the bucket was full. */
  overflow = 0;
  private index: Map<number, number> | null = null;

  append(id: number): number {
    if (this.n === this.ids.length) {
      const size = this.n * 2;
      this.ids = grownU32(this.ids, size);
      this.all = grownU32(this.all, size);
      this.blk = grownU32(this.blk, size);
    }
    const i = this.n++;
    this.ids[i] = id;
    this.all[i] = 0;
    this.blk[i] = 0;
    this.index?.set(id, i);
    return i;
  }

  /** The entry of `id`, or -1 (the slow path, for buckets other than the newest). */
  find(id: number): number {
    if (this.index === null) {
      this.index = new Map();
      for (let i = 0; i < this.n; i++) this.index.set(this.ids[i]!, i);
    }
    return this.index.get(id) ?? -1;
  }

  reset(): void {
    // Give back arrays grown far past what the bucket held, so one burst does not pin memory.
    if (this.ids.length > NAMES_INITIAL && this.ids.length > 4 * this.n) {
      const size = Math.max(NAMES_INITIAL, 2 * this.n);
      this.ids = new Uint32Array(size);
      this.all = new Uint32Array(size);
      this.blk = new Uint32Array(size);
    }
    this.bucket = -1;
    this.n = 0;
    this.overflow = 0;
    this.index = null;
  }
}

/** Totals shared by a slot and the window. */
class Totals {
  total = 0;
  blocked = 0;
  cached = 0;
  forwarded = 0;
  readonly status = new Float64Array(STATUS_COUNT);
  readonly types = new Float64Array(TYPE_KEYS.length);
  readonly replies = new Float64Array(REPLY_COUNT);
}

/** One ten-minute slot: its totals, its queries per client, and its upstreams by id. */
class Slot extends Totals {
  readonly cli = new NameCounts();
  ups: (UpAcc | undefined)[] = [];

  reset(): void {
    this.total = this.blocked = this.cached = this.forwarded = 0;
    this.status.fill(0);
    this.types.fill(0);
    this.replies.fill(0);
    this.cli.reset();
    this.ups = [];
  }
}

/**
 * The sum of all live buckets. Counts by name are arrays indexed by intern id: every id counted
 * here is held by a bucket, so ids stay dense, and record() updates the window with array stores.
 */
class Window extends Totals {
  dom: Float64Array = new Float64Array(INTERN_INITIAL);
  domBlk: Float64Array = new Float64Array(INTERN_INITIAL);
  cli: Float64Array = new Float64Array(INTERN_INITIAL);
  cliBlk: Float64Array = new Float64Array(INTERN_INITIAL);
  /** Ids with a count above zero in dom / cli. */
  domains = 0;
  clients = 0;
  /** Queries counted in the totals but not by domain / by client (a cap was reached). */
  domOverflow = 0;
  cliOverflow = 0;
  /** By upstream id (few). */
  readonly ups: (UpAcc | undefined)[] = [];
}

function grownF64(a: Float64Array, need: number): Float64Array {
  if (a.length >= need) return a;
  const b = new Float64Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

function grownU32(a: Uint32Array, need: number): Uint32Array {
  if (a.length >= need) return a;
  const b = new Uint32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

interface Caps {
  slotClients: number;
  hourDomains: number;
  windowDomains: number;
}

/**
 * The 24 h counters.
 *
 * Totals and per-client counts are kept per ten-minute slot: slot k (k = floor(ms / SLOT_MS))
 * lives at slots[k % SLOTS], `head` is the newest slot number, and the window is slots
 * head-SLOTS+1 .. head, as FTL's overTime array. Per-domain counts are kept per hour and an hour
 * leaves the window once all of it is older than the window's first slot, which is when FTL's
 * hourly garbage collection drops queries too: top domains and unique_domains cover 24 h plus up to
 * 50 minutes, and cost a sixth of the (name, bucket) entries ten-minute buckets would.
 *
 * A bucket takes one reference on each domain, client and upstream id it counts by name, so the
 * intern tables keep those strings (and their ids) until the bucket expires.
 */
class Overtime {
  readonly slots: Slot[] = [];
  readonly hours: NameCounts[] = [];
  readonly win = new Window();
  head: number;
  /** Newest hour bucket, and the oldest one that may still hold counts. */
  private hourHead: number;
  private hourLow: number;
  /** Per domain id: the newest hour it was appended to, and where (the hot path's pointer). */
  private dLast: Float64Array = new Float64Array(INTERN_INITIAL).fill(-1);
  private dIdx: Uint32Array = new Uint32Array(INTERN_INITIAL);
  /** Per client id: the newest slot it was appended to, and where. */
  private cLast: Float64Array = new Float64Array(INTERN_INITIAL).fill(-1);
  private cIdx: Uint32Array = new Uint32Array(INTERN_INITIAL);
  /** Queries older than the window when recorded (counted nowhere here). */
  late = 0;
  /** Clients seen since the counters started (for clients.total), capped at MAX_KNOWN_CLIENTS. */
  readonly known = new Set<string>();
  private readonly freqCount = new Float64Array(FREQ_MINUTES);
  private readonly freqMinute = new Float64Array(FREQ_MINUTES).fill(-1);

  constructor(
    nowMs: number,
    private readonly domains: Interner,
    private readonly clients: Interner,
    private readonly upstreams: Interner,
    private readonly caps: Caps,
  ) {
    for (let i = 0; i < SLOTS; i++) this.slots.push(new Slot());
    for (let i = 0; i < HOUR_BUCKETS; i++) this.hours.push(new NameCounts());
    this.head = Math.floor(nowMs / SLOT_MS);
    this.hourHead = hourOfSlot(this.head);
    this.hourLow = hourOfSlot(this.head - SLOTS + 1);
  }

  add(t: number, d: number, c: number, u: number, qtype: number, st: number, rp: number, replyMs: number): void {
    const sn = Math.floor(t / SLOT_MS);
    if (sn > this.head) this.advance(sn);
    else if (sn <= this.head - SLOTS) {
      this.late++;
      return;
    }
    const s = this.slots[sn % SLOTS]!;
    const w = this.win;
    const blocked = BLOCKED[st] === 1;
    s.total++;
    w.total++;
    if (blocked) {
      s.blocked++;
      w.blocked++;
    } else if (isCached(st)) {
      s.cached++;
      w.cached++;
    } else if (st === QueryStatus.FORWARDED) {
      s.forwarded++;
      w.forwarded++;
    }
    s.status[st]++;
    w.status[st]++;
    const ti = TYPE_INDEX[qtype]!;
    s.types[ti]++;
    w.types[ti]++;
    s.replies[rp]++;
    w.replies[rp]++;

    // Domain, in its hour.
    if (d >= w.dom.length) this.growDomains();
    const hb = Math.floor(t / HOUR_MS);
    const h = this.hours[hb % HOUR_BUCKETS]!;
    if (h.bucket !== hb) h.bucket = hb; // an empty bucket taken into use (expiry emptied it)
    let i = -1;
    if (hb === this.hourHead) {
      const j = this.dIdx[d]!;
      if (this.dLast[d] === hb && j < h.n && h.ids[j] === d) i = j;
    } else i = h.find(d);
    if (i < 0 && h.n < this.caps.hourDomains && (w.dom[d]! > 0 || w.domains < this.caps.windowDomains)) {
      i = h.append(d);
      this.domains.addRef(d);
      if (hb === this.hourHead) {
        this.dLast[d] = hb;
        this.dIdx[d] = i;
      }
    }
    if (i >= 0) {
      h.all[i]++;
      if (w.dom[d]++ === 0) w.domains++;
      if (blocked) {
        h.blk[i]++;
        w.domBlk[d]++;
      }
    } else {
      h.overflow++;
      w.domOverflow++;
    }

    // Client, in its slot.
    if (c >= w.cli.length) this.growClients();
    const sc = s.cli;
    if (sc.bucket !== sn) sc.bucket = sn;
    i = -1;
    if (sn === this.head) {
      const j = this.cIdx[c]!;
      if (this.cLast[c] === sn && j < sc.n && sc.ids[j] === c) i = j;
    } else i = sc.find(c);
    if (i < 0 && sc.n < this.caps.slotClients) {
      i = sc.append(c);
      this.clients.addRef(c);
      if (sn === this.head) {
        this.cLast[c] = sn;
        this.cIdx[c] = i;
      }
    }
    if (i >= 0) {
      sc.all[i]++;
      if (w.cli[c]++ === 0) {
        w.clients++;
        if (this.known.size < MAX_KNOWN_CLIENTS) this.known.add(this.clients.str(c));
      }
      if (blocked) {
        sc.blk[i]++;
        w.cliBlk[c]++;
      }
    } else {
      sc.overflow++;
      w.cliOverflow++;
    }

    if (u !== 0) {
      let a = s.ups[u];
      if (a === undefined) {
        a = new UpAcc();
        s.ups[u] = a;
        this.upstreams.addRef(u);
      }
      let wa = w.ups[u];
      if (wa === undefined) {
        wa = new UpAcc();
        w.ups[u] = wa;
      }
      a.count++;
      wa.count++;
      if (replyMs >= 0) {
        const r = replyMs / 1000;
        a.responses++;
        a.sum += r;
        a.sum2 += r * r;
        wa.responses++;
        wa.sum += r;
        wa.sum2 += r * r;
      }
    }

    const m = Math.floor(t / MINUTE_MS);
    const fi = m % FREQ_MINUTES;
    const fm = this.freqMinute[fi]!;
    if (fm === m) this.freqCount[fi]++;
    else if (m > fm) {
      this.freqMinute[fi] = m;
      this.freqCount[fi] = 1;
    }
  }

  private growDomains(): void {
    const need = this.domains.limit;
    const w = this.win;
    w.dom = grownF64(w.dom, need);
    w.domBlk = grownF64(w.domBlk, need);
    const old = this.dLast.length;
    this.dLast = grownF64(this.dLast, need);
    this.dLast.fill(-1, old);
    this.dIdx = grownU32(this.dIdx, need);
  }

  private growClients(): void {
    const need = this.clients.limit;
    const w = this.win;
    w.cli = grownF64(w.cli, need);
    w.cliBlk = grownF64(w.cliBlk, need);
    const old = this.cLast.length;
    this.cLast = grownF64(this.cLast, need);
    this.cLast.fill(-1, old);
    this.cIdx = grownU32(this.cIdx, need);
  }

  /** Moves the window forward to the slot of `t` (never back). */
  advanceTo(t: number): void {
    const sn = Math.floor(t / SLOT_MS);
    if (sn > this.head) this.advance(sn);
  }

  private advance(sn: number): void {
    const first = Math.max(this.head + 1, sn - SLOTS + 1);
    for (let k = first; k <= sn; k++) {
      const s = this.slots[k % SLOTS]!;
      if (s.total > 0) this.expireSlot(s);
    }
    this.head = sn;
    this.hourHead = hourOfSlot(sn);
    const low = hourOfSlot(sn - SLOTS + 1);
    for (let hb = Math.max(this.hourLow, low - HOUR_BUCKETS); hb < low; hb++) {
      const h = this.hours[hb % HOUR_BUCKETS]!;
      if (h.bucket === hb) this.expireHour(h);
    }
    this.hourLow = low;
  }

  /** Takes a slot's counts out of the window and releases its references. */
  private expireSlot(s: Slot): void {
    const w = this.win;
    w.total -= s.total;
    w.blocked -= s.blocked;
    w.cached -= s.cached;
    w.forwarded -= s.forwarded;
    for (let i = 0; i < STATUS_COUNT; i++) w.status[i] -= s.status[i]!;
    for (let i = 0; i < TYPE_KEYS.length; i++) w.types[i] -= s.types[i]!;
    for (let i = 0; i < REPLY_COUNT; i++) w.replies[i] -= s.replies[i]!;
    const sc = s.cli;
    for (let i = 0; i < sc.n; i++) {
      const c = sc.ids[i]!;
      w.cliBlk[c] -= sc.blk[i]!;
      if ((w.cli[c] -= sc.all[i]!) === 0) w.clients--;
      this.clients.unref(c);
    }
    w.cliOverflow -= sc.overflow;
    s.ups.forEach((a, u) => {
      if (a === undefined) return;
      const wa = w.ups[u]!;
      wa.count -= a.count;
      wa.responses -= a.responses;
      wa.sum -= a.sum;
      wa.sum2 -= a.sum2;
      if (wa.count <= 0) w.ups[u] = undefined;
      this.upstreams.unref(u);
    });
    s.reset();
  }

  private expireHour(h: NameCounts): void {
    const w = this.win;
    for (let i = 0; i < h.n; i++) {
      const d = h.ids[i]!;
      w.domBlk[d] -= h.blk[i]!;
      if ((w.dom[d] -= h.all[i]!) === 0) w.domains--;
      this.domains.unref(d);
    }
    w.domOverflow -= h.overflow;
    h.reset();
  }

  /** The live slot numbered k, or undefined if nothing was counted in it. */
  slot(k: number): Slot | undefined {
    const s = this.slots[k % SLOTS]!;
    return s.total > 0 && k > this.head - SLOTS && k <= this.head ? s : undefined;
  }

  /** Queries per second over the last FREQ_MINUTES minutes (the current one counted so far). */
  frequency(nowMs: number): number {
    const now = Math.floor(nowMs / MINUTE_MS);
    let n = 0;
    for (let i = 0; i < FREQ_MINUTES; i++) {
      const m = this.freqMinute[i]!;
      if (m > now - FREQ_MINUTES && m <= now) n += this.freqCount[i]!;
    }
    const seconds = (nowMs - (now - FREQ_MINUTES + 1) * MINUTE_MS) / 1000;
    return seconds > 0 ? n / seconds : 0;
  }

  /** Ids counted by name in the window (count > 0), below `limit`. */
  *ids(counts: Float64Array, limit: number): Generator<number> {
    const n = Math.min(limit, counts.length);
    for (let id = 1; id < n; id++) if (counts[id]! > 0) yield id;
  }
}

function hourOfSlot(k: number): number {
  return Math.floor((k * SLOT_MS) / HOUR_MS);
}

/**
 * The `k` ids with the largest value(id) > 0, largest first; equal values by name, so the cut at k
 * does not depend on intern id order (which differs when the counters are rebuilt from disk).
 */
function topOf(
  ids: Iterable<number>,
  value: (id: number) => number,
  k: number,
  name: (id: number) => string,
): { id: number; count: number }[] {
  // A heap of the best k so far with the worst on top: O(n log k) over maps of up to a million names.
  const hid: number[] = [];
  const hval: number[] = [];
  /** Whether entry i ranks below entry j. */
  const worse = (i: number, j: number): boolean =>
    hval[i]! < hval[j]! || (hval[i] === hval[j] && name(hid[i]!) > name(hid[j]!));
  const swap = (i: number, j: number): void => {
    const a = hid[i]!;
    hid[i] = hid[j]!;
    hid[j] = a;
    const b = hval[i]!;
    hval[i] = hval[j]!;
    hval[j] = b;
  };
  if (k > 0) {
    for (const id of ids) {
      const v = value(id);
      if (v <= 0) continue;
      if (hid.length < k) {
        hid.push(id);
        hval.push(v);
        for (let i = hid.length - 1; i > 0; ) {
          const p = (i - 1) >> 1;
          if (!worse(i, p)) break;
          swap(i, p);
          i = p;
        }
      } else if (v > hval[0]! || (v === hval[0] && name(id) < name(hid[0]!))) {
        hid[0] = id;
        hval[0] = v;
        for (let i = 0; ; ) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < k && worse(l, m)) m = l;
          if (r < k && worse(r, m)) m = r;
          if (m === i) break;
          swap(i, m);
          i = m;
        }
      }
    }
  }
  const out = hid.map((id, i) => ({ id, count: hval[i]! }));
  out.sort((a, b) => b.count - a.count || (name(a.id) < name(b.id) ? -1 : name(a.id) > name(b.id) ? 1 : 0));
  return out;
}

/** A `*` wildcard (case-insensitive, like SQLite's LIKE on ASCII) or exact test. */
function stringTest(pattern: string): (s: string) => boolean {
  if (!pattern.includes("*")) return (s) => s === pattern;
  const re = new RegExp(
    "^" +
      pattern
        .split("*")
        .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*") +
      "$",
    "i",
  );
  return (s) => re.test(s);
}

/** A string test remembered per id (intern id or block dictionary index). */
class LazyMatch {
  private readonly memo: Uint8Array;
  constructor(
    private readonly test: (s: string) => boolean,
    private readonly strOf: (i: number) => string | undefined,
    size: number,
  ) {
    this.memo = new Uint8Array(size);
  }
  ok(i: number): boolean {
    let v = this.memo[i];
    if (v === MATCH_UNKNOWN) {
      const s = this.strOf(i);
      v = s !== undefined && this.test(s) ? MATCH_YES : MATCH_NO;
      this.memo[i] = v;
    }
    return v === MATCH_YES;
  }
}

/** A queries filter turned into numbers and tests. */
interface Compiled {
  /** Unix ms, [from, until). */
  from: number;
  until: number;
  /** Allowed statuses (1 = allowed), or null for all. */
  status: Uint8Array | null;
  /** A qtype, TYPE_ANY_OTHER for every type without a name, or -1 for all. */
  type: number;
  reply: number;
  domain: ((s: string) => boolean) | null;
  clientIp: ((s: string) => boolean) | null;
  clientName: ((s: string) => boolean) | null;
  upstream: ((s: string) => boolean) | null;
  /** Anything besides the cursor narrows the rows (Pi-hole's `filtering`). */
  filtering: boolean;
}

/** Compiled.type for "OTHER". */
const TYPE_ANY_OTHER = -2;

function upperIndex(names: readonly string[], v: string): number {
  const u = v.toUpperCase();
  return names.indexOf(u);
}

type TopDomainsReply = ReturnType<QueryLogApi["topDomains"]>;
type TopClientsReply = ReturnType<QueryLogApi["topClients"]>;
type HistoryReply = ReturnType<QueryLogApi["history"]>;
type HistoryClientsReply = ReturnType<QueryLogApi["historyClients"]>;
type UpstreamsReply = ReturnType<QueryLogApi["upstreams"]>;

export interface QueryLogOptions {
  /** Queries held in memory (default DEFAULT_CAPACITY). */
  capacity?: number;
  /** Persist blocks here and read the last 24 h back on construction; null/absent: memory only. */
  store?: HistoryStore | null;
  flushMs?: number;
  /** Clock (ms) for the 24 h window and the load; tests inject one. */
  now?: () => number;
  maxHourDomains?: number;
  maxSlotClients?: number;
  maxWindowDomains?: number;
  loadMaxRows?: number;
  diskMaxScan?: number;
  /** Name of a client address (client.name, client_name filter, top clients); default none. */
  clientName?: (ip: string) => string | null;
}

export interface QueryLogCounters {
  /** record() calls. */
  recorded: number;
  /** Rows held in memory, and the ring's capacity. */
  held: number;
  capacity: number;
  /** Newest id (0 if none yet). */
  newestId: number;
  /** Rows that left the ring to make room. */
  evicted: number;
  /** Queries recorded with a time already outside the 24 h window. */
  statsLate: number;
  /** Queries in the window counted in the totals but not by domain / client (caps reached). */
  domainsUnranked: number;
  clientsUnranked: number;
  /** Strings held by the intern tables. */
  internDomains: number;
  internClients: number;
  internUpstreams: number;
  /** Rows handed to the store's writer, and rows that left the ring before they could be. */
  flushedRows: number;
  diskLost: number;
  /** Rows read back from the store on construction, and whether the whole 24 h fitted loadMaxRows. */
  loadedRows: number;
  loadComplete: boolean;
}

/** Scratch columns for building one block. */
interface Scratch extends QueryBlockCols {
  nameGen: Uint32Array;
  nameIdx: Uint32Array;
  clientGen: Uint32Array;
  clientIdx: Uint32Array;
  upGen: Uint32Array;
  upIdx: Uint32Array;
}

function grown(a: Uint32Array, need: number): Uint32Array {
  if (a.length >= need) return a;
  const b = new Uint32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/** "1.1.1.1#53", "[2606:4700::1111]:53", "9.9.9.9:53" or a bare address -> ip and port. */
function splitUpstream(s: string): { ip: string; port: number } {
  let m = /^(.*)#(\d+)$/.exec(s);
  if (m) return { ip: m[1]!, port: Number(m[2]) };
  m = /^\[(.*)\]:(\d+)$/.exec(s);
  if (m) return { ip: m[1]!, port: Number(m[2]) };
  m = /^([^:]+):(\d+)$/.exec(s);
  if (m) return { ip: m[1]!, port: Number(m[2]) };
  return { ip: s, port: DEFAULT_DNS_PORT };
}

function typeString(t: number): string {
  return QTYPE_NAMES.get(t) ?? `TYPE${t}`;
}

export class QueryLog implements QueryLogApi {
  private readonly cap: number;
  private readonly now: () => number;
  private readonly store: HistoryStore | null;
  private readonly caps: Caps;
  private readonly loadMaxRows: number;
  private readonly diskMaxScan: number;
  private readonly nameOf: (ip: string) => string | null;

  // The ring. A position whose dom is 0 holds no row.
  private readonly time: Float64Array;
  private readonly dom: Uint32Array;
  private readonly cn: Uint32Array;
  private readonly cli: Uint32Array;
  private readonly up: Uint32Array;
  private readonly replyMs: Float32Array;
  private readonly listId: Int32Array;
  private readonly qtype: Uint16Array;
  private readonly status: Uint8Array;
  private readonly reply: Uint8Array;
  /** Next id; rows next-count .. next-1 are in the ring (some may be empty after a load). */
  private next = 1;
  private count = 0;
  /** Empty positions among the `count` (ids missing on disk when the ring was loaded). */
  private empties = 0;
  /** Position of id `next` (always next % cap). */
  private pos: number;

  private domains = new Interner();
  private clients = new Interner();
  private upstreamNames = new Interner();
  private stats: Overtime;

  // Persistence.
  /** Largest id handed to the store (or read from it). */
  private persisted = 0;
  /** Newest time of any block handed to the store (QK_PREFIX_MAX of the next block). */
  private prefixMax = -Infinity;
  private readonly flushRows: number;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushImmediate: NodeJS.Immediate | null = null;
  private scratch: Scratch | null = null;
  private blockGen = 0;

  private readonly c = { recorded: 0, evicted: 0, flushedRows: 0, diskLost: 0, loadedRows: 0, loadComplete: true };

  constructor(opts: QueryLogOptions = {}) {
    this.cap = Math.max(1, Math.floor(opts.capacity ?? DEFAULT_CAPACITY));
    this.now = opts.now ?? Date.now;
    this.store = opts.store ?? null;
    this.caps = {
      hourDomains: opts.maxHourDomains ?? DEFAULT_MAX_HOUR_DOMAINS,
      slotClients: opts.maxSlotClients ?? DEFAULT_MAX_SLOT_CLIENTS,
      windowDomains: opts.maxWindowDomains ?? DEFAULT_MAX_WINDOW_DOMAINS,
    };
    this.loadMaxRows = opts.loadMaxRows ?? DEFAULT_LOAD_MAX_ROWS;
    this.diskMaxScan = opts.diskMaxScan ?? DEFAULT_DISK_MAX_SCAN;
    this.nameOf = opts.clientName ?? (() => null);
    const n = this.cap;
    this.time = new Float64Array(n);
    this.dom = new Uint32Array(n);
    this.cn = new Uint32Array(n);
    this.cli = new Uint32Array(n);
    this.up = new Uint32Array(n);
    this.replyMs = new Float32Array(n);
    this.listId = new Int32Array(n);
    this.qtype = new Uint16Array(n);
    this.status = new Uint8Array(n);
    this.reply = new Uint8Array(n);
    // Flush early once a quarter of the ring waits, so a burst cannot wrap it before the timer.
    this.flushRows = Math.max(1, Math.floor(n / 4));
    this.pos = this.next % n;
    this.stats = this.newStats();
    if (this.store !== null) {
      this.load(this.store);
      this.flushTimer = setInterval(this.onFlush, opts.flushMs ?? DEFAULT_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  private newStats(): Overtime {
    return new Overtime(this.now(), this.domains, this.clients, this.upstreamNames, this.caps);
  }

  /** Logs one answered query. `domain` lower-case, `client` the address as text, listId -1 for none. */
  record(
    timeMs: number,
    client: string,
    domain: string,
    qtype: number,
    status: QueryStatus,
    reply: ReplyType,
    replyMs: number,
    upstream: string | null,
    listId: number,
    cname: string | null,
  ): void {
    // A time that is not a number would break the slot arithmetic; such a query happened now.
    if (!Number.isFinite(timeMs)) timeMs = this.now();
    const p = this.pos;
    const id = this.next++;
    if (this.count === this.cap) {
      if (this.dom[p] !== 0) this.evict(p);
      else this.empties--;
    } else {
      if (this.dom[p] !== 0) this.evict(p);
      this.count++;
    }
    const st = status >= 0 && status < STATUS_COUNT ? status : QueryStatus.UNKNOWN;
    const rp = reply >= 0 && reply < REPLY_COUNT ? reply : 0;
    const qt = qtype & U16_MASK;
    const d = this.domains.ref(domain);
    const c = this.clients.ref(client);
    const u = upstream === null ? 0 : this.upstreamNames.ref(upstream);
    this.time[p] = timeMs;
    this.dom[p] = d;
    this.cn[p] = cname === null ? 0 : this.domains.ref(cname);
    this.cli[p] = c;
    this.up[p] = u;
    this.replyMs[p] = replyMs;
    this.listId[p] = listId;
    this.qtype[p] = qt;
    this.status[p] = st;
    this.reply[p] = rp;
    this.pos = p + 1 === this.cap ? 0 : p + 1;
    this.stats.add(timeMs, d, c, u, qt, st, rp, replyMs);
    this.c.recorded++;
    if (this.store !== null && id - this.persisted >= this.flushRows && this.flushImmediate === null) {
      this.flushImmediate = setImmediate(this.onFlushImmediate);
    }
  }

  private evict(p: number): void {
    this.domains.unref(this.dom[p]!);
    this.domains.unref(this.cn[p]!);
    this.clients.unref(this.cli[p]!);
    this.upstreamNames.unref(this.up[p]!);
    this.dom[p] = 0;
    this.c.evicted++;
  }

  // ---- Pi-hole statistics ----

  summary(nowMs: number = this.now()): SummaryStats {
    this.stats.advanceTo(nowMs);
    const w = this.stats.win;
    const types: Record<string, number> = {};
    for (let i = 0; i < TYPE_KEYS.length; i++) types[TYPE_KEYS[i]!] = w.types[i]!;
    const status: Record<string, number> = {};
    for (let i = 0; i < STATUS_COUNT; i++) status[QUERY_STATUS_NAMES[i]!] = w.status[i]!;
    const replies: Record<string, number> = {};
    for (let i = 0; i < REPLY_COUNT; i++) replies[REPLY_TYPE_NAMES[i]!] = w.replies[i]!;
    return {
      queries: {
        total: w.total,
        blocked: w.blocked,
        percent_blocked: w.total > 0 ? (100 * w.blocked) / w.total : 0,
        unique_domains: w.domains,
        forwarded: w.forwarded,
        cached: w.cached,
        frequency: this.stats.frequency(nowMs),
        types,
        status,
        replies,
      },
      clients: { active: w.clients, total: Math.max(w.clients, this.stats.known.size) },
    };
  }

  topDomains(blocked: boolean, count: number): TopDomainsReply {
    this.stats.advanceTo(this.now());
    const w = this.stats.win;
    const dom = w.dom;
    const blk = w.domBlk;
    const value = blocked ? (id: number) => blk[id]! : (id: number) => dom[id]! - blk[id]!;
    const name = (id: number): string => this.domains.str(id);
    const top = topOf(this.stats.ids(dom, this.domains.limit), value, Math.max(0, Math.floor(count)), name);
    return {
      domains: top.map((e) => ({ domain: name(e.id), count: e.count })),
      total_queries: w.total,
      blocked_queries: w.blocked,
    };
  }

  topClients(blocked: boolean, count: number): TopClientsReply {
    this.stats.advanceTo(this.now());
    const w = this.stats.win;
    const m = blocked ? w.cliBlk : w.cli;
    const ip = (id: number): string => this.clients.str(id);
    const top = topOf(this.stats.ids(m, this.clients.limit), (id) => m[id]!, Math.max(0, Math.floor(count)), ip);
    return {
      clients: top.map((e) => ({ name: this.nameOf(ip(e.id)), ip: ip(e.id), count: e.count })),
      total_queries: w.total,
      blocked_queries: w.blocked,
    };
  }

  history(nowMs: number = this.now()): HistoryReply {
    const st = this.stats;
    st.advanceTo(nowMs);
    const out = [];
    for (let k = st.head - SLOTS + 1; k <= st.head; k++) {
      const s = st.slot(k);
      const ts = slotTimestamp(k);
      if (s === undefined) out.push({ timestamp: ts, total: 0, cached: 0, blocked: 0, forwarded: 0 });
      else out.push({ timestamp: ts, total: s.total, cached: s.cached, blocked: s.blocked, forwarded: s.forwarded });
    }
    return out;
  }

  /**
   * Per-slot queries of the busiest clients. With n = 0, or no more than n clients, every client
   * is listed; otherwise the n-1 busiest are, and the rest (plus queries not counted by client
   * because of the caps) are summed under "others", as FTL does.
   */
  historyClients(n: number, nowMs: number = this.now()): HistoryClientsReply {
    const st = this.stats;
    st.advanceTo(nowMs);
    const w = st.win;
    const want = Math.max(0, Math.floor(n));
    const all = want === 0 || w.clients <= want;
    const ip = (id: number): string => this.clients.str(id);
    const cli = w.cli;
    const top = topOf(st.ids(cli, this.clients.limit), (id) => cli[id]!, all ? w.clients : want - 1, ip);
    const withOthers = !all || w.cliOverflow > 0;
    const clients: Record<string, { name: string | null; total: number }> = {};
    let named = 0;
    for (const e of top) {
      clients[ip(e.id)] = { name: this.nameOf(ip(e.id)), total: e.count };
      named += e.count;
    }
    const rank = new Map<number, number>();
    top.forEach((e, i) => rank.set(e.id, i));
    const perSlot = new Float64Array(top.length);
    const history = [];
    for (let k = st.head - SLOTS + 1; k <= st.head; k++) {
      const s = st.slot(k);
      perSlot.fill(0);
      if (s !== undefined) {
        const sc = s.cli;
        for (let i = 0; i < sc.n; i++) {
          const r = rank.get(sc.ids[i]!);
          if (r !== undefined) perSlot[r] += sc.all[i]!;
        }
      }
      const data: Record<string, number> = {};
      let sum = 0;
      top.forEach((e, r) => {
        data[ip(e.id)] = perSlot[r]!;
        sum += perSlot[r]!;
      });
      data[OTHERS_KEY] = (s?.total ?? 0) - sum;
      history.push({ timestamp: slotTimestamp(k), data });
    }
    if (withOthers) clients[OTHERS_KEY] = { name: OTHERS_NAME, total: w.total - named };
    return { clients, history };
  }

  upstreams(): UpstreamsReply {
    this.stats.advanceTo(this.now());
    const w = this.stats.win;
    const out: UpstreamsReply["upstreams"] = [
      { ip: UPSTREAM_BLOCKLIST, name: UPSTREAM_BLOCKLIST, port: -1, count: w.blocked, statistics: { response: 0, variance: 0 } },
      { ip: UPSTREAM_CACHE, name: UPSTREAM_CACHE, port: -1, count: w.cached, statistics: { response: 0, variance: 0 } },
    ];
    const name = (id: number): string => this.upstreamNames.str(id);
    const ups: [number, UpAcc][] = [];
    w.ups.forEach((a, id) => {
      if (a !== undefined) ups.push([id, a]);
    });
    ups.sort((a, b) => b[1].count - a[1].count || (name(a[0]) < name(b[0]) ? -1 : 1));
    for (const [id, a] of ups) {
      const { ip, port } = splitUpstream(name(id));
      const response = a.responses > 0 ? a.sum / a.responses : 0;
      // FTL's "variance" is the uncertainty of the mean: sqrt(sum of squared deviations / n / (n-1)).
      const m2 = a.responses > 0 ? Math.max(0, a.sum2 - (a.sum * a.sum) / a.responses) : 0;
      const variance = a.responses > 1 ? Math.sqrt(m2 / a.responses / (a.responses - 1)) : 0;
      out.push({ ip, name: null, port, count: a.count, statistics: { response, variance } });
    }
    return { upstreams: out, forwarded_queries: w.forwarded, total_queries: w.total };
  }

  /** The domains of the `count` most recent blocked queries in memory, newest first. */
  recentBlocked(count: number): string[] {
    const out: string[] = [];
    const want = Math.floor(count);
    const lo = this.next - this.count;
    let p = this.pos;
    for (let id = this.next - 1; id >= lo && out.length < want; id--) {
      p = p === 0 ? this.cap - 1 : p - 1;
      if (this.dom[p] !== 0 && BLOCKED[this.status[p]!] === 1) out.push(this.domains.str(this.dom[p]!));
    }
    return out;
  }

  // ---- The query log ----

  queries(f: QueryFilter): QueriesResult {
    const newest = this.next - 1;
    let cursor = newest;
    if (f.cursor !== undefined) {
      if (!Number.isInteger(f.cursor) || f.cursor < 0 || f.cursor > newest) {
        throw new DnsInputError(
          "bad_request",
          "Requested cursor is invalid",
          f.cursor > newest ? "Cursor larger than largest database index" : null,
        );
      }
      cursor = f.cursor;
    }
    const m = compile(f);
    const start = typeof f.start === "number" && f.start > 0 ? Math.floor(f.start) : 0;
    // Pi-hole: a negative length means everything, 0 means no rows.
    const length = typeof f.length === "number" && Number.isFinite(f.length) ? Math.floor(f.length) : DEFAULT_PAGE_LENGTH;
    const end = length < 0 ? Infinity : start + length;
    return f.disk ? this.queriesDisk(m, cursor, start, end) : this.queriesMemory(m, cursor, start, end);
  }

  private queriesMemory(m: Compiled, cursor: number, start: number, end: number): QueriesResult {
    const lo = this.next - this.count;
    const hi = Math.min(cursor, this.next - 1);
    const domains = this.domains;
    const clients = this.clients;
    const dm = m.domain ? new LazyMatch(m.domain, (i) => domains.strOrUndefined(i), domains.limit) : null;
    const cm = m.clientIp ? new LazyMatch(m.clientIp, (i) => clients.strOrUndefined(i), clients.limit) : null;
    const nm = m.clientName ? this.nameMatch(m.clientName, (i) => clients.strOrUndefined(i), clients.limit) : null;
    const ups = this.upstreamNames;
    const um = m.upstream ? new LazyMatch(m.upstream, (i) => ups.strOrUndefined(i), ups.limit) : null;
    const out: QueryRow[] = [];
    let matched = 0;
    // Without filters and without holes every row at or below the cursor matches: count them
    // instead of walking the ring, and stop once the page is full.
    const counted = !m.filtering && this.empties === 0;
    if (hi >= lo) {
      let p = hi % this.cap;
      for (let id = hi; id >= lo; id--, p = p === 0 ? this.cap - 1 : p - 1) {
        if (counted && matched >= end) {
          matched = hi - lo + 1;
          break;
        }
        const d = this.dom[p]!;
        if (d === 0) continue;
        const t = this.time[p]!;
        if (t < m.from || t >= m.until) continue;
        if (m.status !== null && m.status[this.status[p]!] === 0) continue;
        if (m.type !== -1 && !typeMatches(m.type, this.qtype[p]!)) continue;
        if (m.reply !== -1 && this.reply[p] !== m.reply) continue;
        if (dm !== null && !dm.ok(d)) continue;
        if (cm !== null && !cm.ok(this.cli[p]!)) continue;
        if (nm !== null && !nm.ok(this.cli[p]!)) continue;
        if (um !== null && (this.up[p] === 0 || !um.ok(this.up[p]!))) continue;
        if (matched >= start && matched < end) {
          const cname = this.cn[p]!;
          const up = this.up[p]!;
          out.push(
            this.row(
              id,
              t,
              this.qtype[p]!,
              domains.str(d),
              cname === 0 ? null : domains.str(cname),
              this.status[p]!,
              clients.str(this.cli[p]!),
              this.reply[p]!,
              this.replyMs[p]!,
              this.listId[p]!,
              up === 0 ? null : ups.str(up),
            ),
          );
        }
        matched++;
      }
    }
    return { queries: out, cursor, recordsTotal: this.count - this.empties, recordsFiltered: matched };
  }

  /**
   * The persisted log, newest first. Blocks are skipped by the times in their keys and the scan
   * stops at the first block whose prefixMax is before `from`. Without filters it stops once the
   * page is full and recordsFiltered comes from the stored row count; with filters every block in
   * range is read (at most diskMaxScan rows, after which recordsFiltered counts only those read).
   */
  private queriesDisk(m: Compiled, cursor: number, start: number, end: number): QueriesResult {
    const store = this.store;
    if (store === null) return { queries: [], cursor, recordsTotal: 0, recordsFiltered: 0 };
    const out: QueryRow[] = [];
    let matched = 0;
    let scanned = 0;
    for (const { key, value } of store.queryLogBlocks(true, cursor)) {
      if (key[QK_PREFIX_MAX] < m.from) break;
      if (!m.filtering && matched >= end) break;
      if (key[QK_MIN_TIME] >= m.until || key[QK_MAX_TIME] < m.from) continue;
      const b = decodeQueryBlock(value);
      const names = b.names;
      const cls = b.clients;
      const ups = b.upstreams;
      const dm = m.domain ? new LazyMatch(m.domain, (i) => names[i], names.length) : null;
      const cm = m.clientIp ? new LazyMatch(m.clientIp, (i) => cls[i], cls.length) : null;
      const nm = m.clientName ? this.nameMatch(m.clientName, (i) => cls[i], cls.length) : null;
      const um = m.upstream ? new LazyMatch(m.upstream, (i) => ups[i - 1], ups.length + 1) : null;
      for (let i = b.n - 1; i >= 0; i--) {
        const id = b.firstId + i;
        if (id > cursor) continue;
        const t = b.time[i]!;
        if (t < m.from || t >= m.until) continue;
        if (m.status !== null && m.status[b.status[i]!] === 0) continue;
        if (m.type !== -1 && !typeMatches(m.type, b.qtype[i]!)) continue;
        if (m.reply !== -1 && b.reply[i] !== m.reply) continue;
        if (dm !== null && !dm.ok(b.domain[i]!)) continue;
        if (cm !== null && !cm.ok(b.client[i]!)) continue;
        if (nm !== null && !nm.ok(b.client[i]!)) continue;
        if (um !== null && (b.upstream[i] === 0 || !um.ok(b.upstream[i]!))) continue;
        if (matched >= start && matched < end) {
          const cname = b.cname[i]!;
          const up = b.upstream[i]!;
          out.push(
            this.row(
              id,
              t,
              b.qtype[i]!,
              names[b.domain[i]!]!,
              cname === 0 ? null : names[cname - 1]!,
              b.status[i]!,
              cls[b.client[i]!]!,
              b.reply[i]!,
              b.replyMs[i]!,
              b.listId[i]!,
              up === 0 ? null : ups[up - 1]!,
            ),
          );
        }
        matched++;
      }
      scanned += b.n;
      if (scanned >= this.diskMaxScan) break;
    }
    const total = store.queryLogRows();
    const filtered = m.filtering ? matched : Math.max(0, total - this.diskRowsAbove(cursor));
    return { queries: out, cursor, recordsTotal: total, recordsFiltered: filtered };
  }

  /** Persisted rows with an id above `cursor` (keys only; they are the newest, so few). */
  private diskRowsAbove(cursor: number): number {
    let n = 0;
    for (const k of this.store!.queryLogKeys()) {
      if (k[QK_LAST_ID] <= cursor) break;
      n += k[QK_LAST_ID] - Math.max(k[0], cursor + 1) + 1;
    }
    return n;
  }

  /** Client-name test per client index: the name comes from the clientName option. */
  private nameMatch(test: (s: string) => boolean, ipOf: (i: number) => string | undefined, size: number): LazyMatch {
    return new LazyMatch(
      (ip) => {
        const name = this.nameOf(ip);
        return name !== null && test(name);
      },
      ipOf,
      size,
    );
  }

  private row(
    id: number,
    timeMs: number,
    qtype: number,
    domain: string,
    cname: string | null,
    status: number,
    client: string,
    reply: number,
    replyMs: number,
    listId: number,
    upstream: string | null,
  ): QueryRow {
    return {
      id,
      time: timeMs / 1000,
      type: typeString(qtype),
      domain,
      cname,
      status: QUERY_STATUS_NAMES[status]!,
      client: { ip: client, name: this.nameOf(client) },
      dnssec: DNSSEC_NONE,
      reply: { type: REPLY_TYPE_NAMES[reply]!, time: replyMs >= 0 ? replyMs / 1000 : 0 },
      list_id: listId >= 0 ? listId : null,
      upstream,
      ede: { code: EDE_NONE, text: null },
    };
  }

  // ---- Persistence ----

  private readonly onFlush = (): void => {
    this.flushToStore();
  };

  private readonly onFlushImmediate = (): void => {
    this.flushImmediate = null;
    this.flushToStore();
  };

  /** Hands every row not yet persisted to the store's writer, in blocks. */
  private flushToStore(): void {
    if (this.store === null) return;
    const newest = this.next - 1;
    let from = this.persisted + 1;
    const lowest = this.next - this.count;
    if (from < lowest) {
      this.c.diskLost += lowest - from;
      from = lowest;
    }
    while (from <= newest) {
      const n = Math.min(QBLOCK_MAX_ROWS, newest - from + 1);
      this.pushBlock(from, n);
      from += n;
    }
    this.persisted = newest;
  }

  private scratchCols(): Scratch {
    if (this.scratch === null) {
      const n = QBLOCK_MAX_ROWS;
      this.scratch = {
        firstId: 0,
        n: 0,
        names: [],
        clients: [],
        upstreams: [],
        time: new Float64Array(n),
        replyMs: new Float32Array(n),
        listId: new Int32Array(n),
        domain: new Uint16Array(n),
        cname: new Uint16Array(n),
        client: new Uint16Array(n),
        upstream: new Uint16Array(n),
        qtype: new Uint16Array(n),
        status: new Uint8Array(n),
        reply: new Uint8Array(n),
        nameGen: new Uint32Array(INTERN_INITIAL),
        nameIdx: new Uint32Array(INTERN_INITIAL),
        clientGen: new Uint32Array(INTERN_INITIAL),
        clientIdx: new Uint32Array(INTERN_INITIAL),
        upGen: new Uint32Array(INTERN_INITIAL),
        upIdx: new Uint32Array(INTERN_INITIAL),
      };
    }
    const s = this.scratch;
    // Per intern id: the block (generation) that last put it in a dictionary, and where.
    s.nameGen = grown(s.nameGen, this.domains.limit);
    s.nameIdx = grown(s.nameIdx, this.domains.limit);
    s.clientGen = grown(s.clientGen, this.clients.limit);
    s.clientIdx = grown(s.clientIdx, this.clients.limit);
    s.upGen = grown(s.upGen, this.upstreamNames.limit);
    s.upIdx = grown(s.upIdx, this.upstreamNames.limit);
    return s;
  }

  /** Encodes rows firstId .. firstId+n-1 (all in the ring) as one block and queues it. */
  private pushBlock(firstId: number, n: number): void {
    const s = this.scratchCols();
    const gen = ++this.blockGen;
    const names: string[] = [];
    const clients: string[] = [];
    const ups: string[] = [];
    let minT = Infinity;
    let maxT = -Infinity;
    let p = firstId % this.cap;
    for (let i = 0; i < n; i++) {
      const t = this.time[p]!;
      s.time[i] = t;
      if (t < minT) minT = t;
      if (t > maxT) maxT = t;
      s.replyMs[i] = this.replyMs[p]!;
      s.listId[i] = this.listId[p]!;
      s.qtype[i] = this.qtype[p]!;
      s.status[i] = this.status[p]!;
      s.reply[i] = this.reply[p]!;
      const d = this.dom[p]!;
      if (s.nameGen[d] !== gen) {
        s.nameGen[d] = gen;
        s.nameIdx[d] = names.length;
        names.push(this.domains.str(d));
      }
      s.domain[i] = s.nameIdx[d]!;
      const c = this.cn[p]!;
      if (c === 0) s.cname[i] = 0;
      else {
        if (s.nameGen[c] !== gen) {
          s.nameGen[c] = gen;
          s.nameIdx[c] = names.length;
          names.push(this.domains.str(c));
        }
        s.cname[i] = s.nameIdx[c]! + 1;
      }
      const cl = this.cli[p]!;
      if (s.clientGen[cl] !== gen) {
        s.clientGen[cl] = gen;
        s.clientIdx[cl] = clients.length;
        clients.push(this.clients.str(cl));
      }
      s.client[i] = s.clientIdx[cl]!;
      const u = this.up[p]!;
      if (u === 0) s.upstream[i] = 0;
      else {
        if (s.upGen[u] !== gen) {
          s.upGen[u] = gen;
          s.upIdx[u] = ups.length;
          ups.push(this.upstreamNames.str(u));
        }
        s.upstream[i] = s.upIdx[u]! + 1;
      }
      p = p + 1 === this.cap ? 0 : p + 1;
    }
    this.prefixMax = Math.max(this.prefixMax, maxT);
    const key: QLogKey = [firstId, firstId + n - 1, minT, maxT, this.prefixMax];
    s.firstId = firstId;
    s.n = n;
    s.names = names;
    s.clients = clients;
    s.upstreams = ups;
    this.store!.pushQueryBlock(key, encodeQueryBlock(s));
    this.c.flushedRows += n;
  }

  /**
   * Continues from the store: ids after its largest, and the last 24 h of rows (newest first, at
   * most loadMaxRows) into the counters and, the newest `capacity` of them, into the ring.
   */
  private load(store: HistoryStore): void {
    const maxId = Math.max(store.queryLogMaxId(), store.writer.queryLogState.pushedMaxId);
    this.next = maxId + 1;
    this.persisted = maxId;
    this.pos = this.next % this.cap;
    this.prefixMax = store.queryLogLastKey()?.[QK_PREFIX_MAX] ?? -Infinity;
    const windowStart = (this.stats.head - SLOTS + 1) * SLOT_MS;
    /** The oldest id the ring can hold. */
    const ringLow = this.next - this.cap;
    let rows = 0;
    let filled = 0;
    let lowest = Infinity;
    for (const { key, value } of store.queryLogBlocks(true)) {
      if (key[QK_PREFIX_MAX] < windowStart) break;
      if (key[QK_MAX_TIME] < windowStart) continue;
      if (rows >= this.loadMaxRows) {
        this.c.loadComplete = false;
        break;
      }
      const b = decodeQueryBlock(value);
      // Each dictionary entry is interned once per block, holding one reference while the block's
      // rows are added; rows then take their own references (ring, slots) by id.
      const dIds = new Uint32Array(b.names.length);
      const cIds = new Uint32Array(b.clients.length);
      const uIds = new Uint32Array(b.upstreams.length + 1);
      for (let i = b.n - 1; i >= 0; i--) {
        const t = b.time[i]!;
        if (t < windowStart) continue;
        const id = b.firstId + i;
        const di = b.domain[i]!;
        const d = dIds[di] || (dIds[di] = this.domains.ref(b.names[di]!));
        const ci = b.client[i]!;
        const c = cIds[ci] || (cIds[ci] = this.clients.ref(b.clients[ci]!));
        const ui = b.upstream[i]!;
        const u = ui === 0 ? 0 : uIds[ui] || (uIds[ui] = this.upstreamNames.ref(b.upstreams[ui - 1]!));
        const st = b.status[i]! < STATUS_COUNT ? b.status[i]! : QueryStatus.UNKNOWN;
        const rp = b.reply[i]! < REPLY_COUNT ? b.reply[i]! : 0;
        this.stats.add(t, d, c, u, b.qtype[i]!, st, rp, b.replyMs[i]!);
        rows++;
        const p = id % this.cap;
        if (id >= ringLow && id <= maxId && this.dom[p] === 0) {
          const ni = b.cname[i]!;
          const cn = ni === 0 ? 0 : dIds[ni - 1] || (dIds[ni - 1] = this.domains.ref(b.names[ni - 1]!));
          this.domains.addRef(d);
          this.domains.addRef(cn);
          this.clients.addRef(c);
          this.upstreamNames.addRef(u);
          this.time[p] = t;
          this.dom[p] = d;
          this.cn[p] = cn;
          this.cli[p] = c;
          this.up[p] = u;
          this.replyMs[p] = b.replyMs[i]!;
          this.listId[p] = b.listId[i]!;
          this.qtype[p] = b.qtype[i]!;
          this.status[p] = st;
          this.reply[p] = rp;
          filled++;
          if (id < lowest) lowest = id;
        }
      }
      for (const id of dIds) this.domains.unref(id);
      for (const id of cIds) this.clients.unref(id);
      for (const id of uIds) this.upstreamNames.unref(id);
    }
    this.count = filled > 0 ? maxId - lowest + 1 : 0;
    this.empties = this.count - filled;
    this.c.loadedRows = rows;
  }

  /** Hands every recorded row to the store and resolves once committed (no-op without a store). */
  async flush(): Promise<void> {
    if (this.store === null) return;
    this.flushToStore();
    await this.store.writer.flush();
  }

  /** Stops the flush timer after a last flush. The store stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.flushTimer !== null) clearInterval(this.flushTimer);
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushTimer = null;
    this.flushImmediate = null;
    await this.flush();
  }

  /** Removes everything, in memory and on disk. Ids keep counting up. */
  async clear(): Promise<void> {
    this.dom.fill(0);
    this.cn.fill(0);
    this.cli.fill(0);
    this.up.fill(0);
    this.count = 0;
    this.empties = 0;
    this.domains = new Interner();
    this.clients = new Interner();
    this.upstreamNames = new Interner();
    this.stats = this.newStats();
    this.persisted = this.next - 1;
    // Only what was recorded before this call: queries logged while the clear runs are kept.
    if (this.store !== null) await this.store.clearQueryLog(this.persisted);
  }

  get counters(): QueryLogCounters {
    const w = this.stats.win;
    return {
      recorded: this.c.recorded,
      held: this.count - this.empties,
      capacity: this.cap,
      newestId: this.next - 1,
      evicted: this.c.evicted,
      statsLate: this.stats.late,
      domainsUnranked: w.domOverflow,
      clientsUnranked: w.cliOverflow,
      internDomains: this.domains.size,
      internClients: this.clients.size,
      internUpstreams: this.upstreamNames.size,
      flushedRows: this.c.flushedRows,
      diskLost: this.c.diskLost,
      loadedRows: this.c.loadedRows,
      loadComplete: this.c.loadComplete,
    };
  }
}

/** Pi-hole's slot timestamp: the middle of the ten-minute interval, unix seconds. */
function slotTimestamp(k: number): number {
  return (k * SLOT_MS + SLOT_MS / 2) / 1000;
}

function typeMatches(want: number, qtype: number): boolean {
  return want === TYPE_ANY_OTHER ? TYPE_INDEX[qtype] === TYPE_OTHER : qtype === want;
}

/** The statuses allowed so far (null: all), narrowed to those `pred` accepts. */
function narrowStatus(allowed: Uint8Array | null, pred: (s: number) => boolean): Uint8Array {
  const out = allowed ?? new Uint8Array(STATUS_COUNT).fill(1);
  for (let s = 0; s < STATUS_COUNT; s++) if (!pred(s)) out[s] = 0;
  return out;
}

/** Validates and compiles a filter; throws DnsInputError (bad_request) for unknown names. */
function compile(f: QueryFilter): Compiled {
  const from = typeof f.from === "number" && Number.isFinite(f.from) ? f.from * 1000 : -Infinity;
  const until = typeof f.until === "number" && Number.isFinite(f.until) ? f.until * 1000 : Infinity;
  let status: Uint8Array | null = null;
  if (f.status) {
    const want = upperIndex(QUERY_STATUS_NAMES, f.status);
    if (want < 0) throw new DnsInputError("bad_request", "Requested status is invalid", f.status);
    status = narrowStatus(status, (s) => s === want);
  }
  let type = -1;
  if (f.type) {
    const u = f.type.toUpperCase();
    const m = /^TYPE(\d+)$/.exec(u);
    if (u === "OTHER") type = TYPE_ANY_OTHER;
    else if (m && Number(m[1]) <= U16_MASK) type = Number(m[1]);
    else {
      for (const [t, name] of QTYPE_NAMES) if (name === u) type = t;
      if (type === -1) throw new DnsInputError("bad_request", "Requested type is invalid", f.type);
    }
  }
  let reply = -1;
  if (f.reply) {
    reply = upperIndex(REPLY_TYPE_NAMES, f.reply);
    if (reply < 0) throw new DnsInputError("bad_request", "Requested reply is invalid", f.reply);
  }
  let upstream: ((s: string) => boolean) | null = null;
  if (f.upstream) {
    if (f.upstream === UPSTREAM_BLOCKLIST) status = narrowStatus(status, (s) => BLOCKED[s] === 1);
    else if (f.upstream === UPSTREAM_CACHE) status = narrowStatus(status, isCached);
    else if (f.upstream === UPSTREAM_PERMITTED) status = narrowStatus(status, (s) => BLOCKED[s] === 0);
    else upstream = stringTest(f.upstream);
  }
  const domain = f.domain ? stringTest(f.domain.toLowerCase()) : null;
  const clientIp = f.client_ip ? stringTest(f.client_ip) : null;
  const clientName = f.client_name ? stringTest(f.client_name) : null;
  const filtering =
    from !== -Infinity ||
    until !== Infinity ||
    status !== null ||
    type !== -1 ||
    reply !== -1 ||
    upstream !== null ||
    domain !== null ||
    clientIp !== null ||
    clientName !== null;
  return { from, until, status, type, reply, domain, clientIp, clientName, upstream, filtering };
}
