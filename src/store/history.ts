// The connection history: one LMDB environment, one writer, and the read primitives the netquery
// layer and the dashboard build on.
//
// Reads never go through the writer: LMDB readers see the last committed snapshot without locks,
// so a query never waits for ingest and ingest never waits for a query. The exception is the
// rollup cache, which the writer keeps current (see rollups.ts) and queries read from.
//
// Every time range here is half-open, [from, to), in ms since the epoch, and "recent first" queries
// walk the time-ordered keys backwards, so their cost follows the number of rows returned, not the
// size of the store. The two that cannot work that way say so: topDomains/topDevices/stats read
// rollups (hour or minute resolution), and search is a bounded scan.

import { statSync } from "node:fs";
import { join } from "node:path";
import type { ConnRecord } from "../flow/types.js";
import { decodeRow } from "./codec.js";
import {
  QLOG_KEY_MAX,
  clearQueryLogJob,
  lastQueryLogId,
  lastQueryLogKey,
  pruneQueryLogJob,
  queryLogRows,
} from "./dnslog.js";
import { clearAllJob, clearProfilesJob, pruneJob, KEY_MIN, type ClearCursor } from "./retention.js";
import { ALL_MINUTES, RollupCache, minuteIndex, minuteSet, setMinute, type RankedName } from "./rollups.js";
import {
  AGG_BLOCKED,
  AGG_COUNT,
  AGG_RECV,
  AGG_SENT,
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  QK_FIRST_ID,
  QK_LAST_ID,
  ROLL_DEVICE,
  ROLL_DOMAIN,
  ROLL_TOTAL,
  SCHEMA_VERSION,
  connCount,
  contributionOf,
  hourOf,
  isBlocked,
  minuteOf,
  openDbs,
  qlogRowsOf,
  queryLogBytes,
  scanRows,
  usedBytes,
  type Agg,
  type ConnKey,
  type DevKey,
  type HistoryDbs,
  type QLogKey,
  type RollKey,
  type RollKind,
} from "./schema.js";
import { HistoryWriter, type WriterOptions } from "./writer.js";

export const DEFAULT_RETENTION_INTERVAL_MS = 60_000;
/**
 * Rows deleted per retention/clear transaction (each takes 3-4 index keys and its rollup sums with
 * it: ~2000 keys): short write transactions, with ingest batches running in between.
 */
export const DEFAULT_PRUNE_BATCH = 500;
/**
 * Query-log blocks deleted per retention transaction. A block is one LMDB key (its value spans a
 * few overflow pages), so this is about as much work as DEFAULT_PRUNE_BATCH rows.
 */
export const DEFAULT_QUERY_LOG_PRUNE_BLOCKS = 256;
/** Hours of rollups kept in memory: a day for "last 24 h" plus the hours at both edges. */
export const DEFAULT_ROLLUP_CACHE_HOURS = 26;
/** Rows a search looks at before it gives up (and says so); ~1-2 s on a slow 2-core box. */
export const DEFAULT_SEARCH_MAX_SCAN = 1_000_000;
/** When over maxBytes, prune down to this fraction of it, so retention does not run every minute. */
const SIZE_TARGET_FRACTION = 0.95;
/** stats() refuses to build more buckets than this (a chart never needs more). */
export const MAX_STATS_BUCKETS = 100_000;
/** Text that only an IP address could contain (so a domain-rollup miss cannot rule an hour out). */
const IP_LIKE = /^[0-9a-f.:]+$/;
const MINUTES_PER_HOUR = 60;

export interface HistoryOptions extends WriterOptions {
  /** Directory of the LMDB environment (created if missing). */
  path: string;
  /** Rows older than this many days are pruned (unset or 0: no age limit). */
  maxAgeDays?: number;
  /** DNS query-log blocks whose newest query is older than this many days are pruned (default: maxAgeDays). */
  queryLogMaxAgeDays?: number;
  /** At most this many rows are kept (oldest go first). */
  maxRecords?: number;
  /** Live pages of all tables stay under this many bytes (the file keeps its high-water mark; freed pages are reused). */
  maxBytes?: number;
  /** Background retention period; 0 disables the timer (cleanup() still works). */
  retentionIntervalMs?: number;
  pruneBatch?: number;
  rollupCacheHours?: number;
  searchMaxScan?: number;
  mapSize?: number;
  /** Load the recent rollups into memory in the background after opening (default true). */
  warmRollups?: boolean;
  /** Clock for retention by age (tests). */
  now?: () => number;
}

export interface RangeQuery {
  from: number;
  to: number;
  /** Newest first. */
  reverse?: boolean;
  limit?: number;
}

export type TopEntry = RankedName;

export interface StatsBucket {
  /** Bucket start (ms); buckets are aligned to multiples of bucketMs since the epoch. */
  start: number;
  connections: number;
  blocked: number;
  bytes_sent: number;
  bytes_received: number;
}

export interface SearchOptions {
  /** Give up after looking at this many rows (default DEFAULT_SEARCH_MAX_SCAN). */
  maxScan?: number;
}

export interface SearchResult {
  /** Matches, newest first. */
  records: ConnRecord[];
  /** Rows looked at. */
  scanned: number;
  /** false: the scan budget ran out before `from`; continue with to = resumeTo (rows of that ms may repeat). */
  complete: boolean;
  resumeTo: number | null;
}

export interface RetentionResult {
  deleted: number;
  /** DNS query-log rows deleted (whole blocks). */
  queryRowsDeleted: number;
  records: number;
  usedBytes: number;
}

export interface DiskStats {
  records: number;
  /** Bytes in live pages of all tables. */
  usedBytes: number;
  /** Size of data.mdb (its high-water mark). */
  fileBytes: number;
  /** DNS query-log rows, and bytes in its live pages (not part of usedBytes). */
  queryLogRows: number;
  queryLogBytes: number;
}

export interface VerifyReport {
  records: number;
  byId: number;
  byDevice: number;
  blocked: number;
  rollupEntries: number;
  /** DNS query-log blocks (their rows must add up to the stored row count, ids never overlapping). */
  queryBlocks: number;
  /** Everything that disagrees with a recount from the main table (empty when consistent). */
  problems: string[];
}

export class HistoryStore {
  readonly writer: HistoryWriter;
  private readonly rollups: RollupCache;
  private readonly retentionTimer: NodeJS.Timeout | null;
  private retentionRun: Promise<RetentionResult> | null = null;
  private warmTimer: NodeJS.Immediate | null = null;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    private readonly dbs: HistoryDbs,
    private readonly opts: HistoryOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.rollups = new RollupCache(dbs, opts.rollupCacheHours ?? DEFAULT_ROLLUP_CACHE_HOURS);
    this.writer = new HistoryWriter(dbs, this.rollups, opts);
    const every = opts.retentionIntervalMs ?? DEFAULT_RETENTION_INTERVAL_MS;
    const limited = Boolean(opts.maxAgeDays || opts.maxRecords || opts.maxBytes || opts.queryLogMaxAgeDays);
    if (every > 0 && limited) {
      this.retentionTimer = setInterval(() => {
        this.cleanup().catch(() => undefined); // counted in writer.counters.errors
      }, every);
      this.retentionTimer.unref();
    } else this.retentionTimer = null;
    if (opts.warmRollups !== false) this.warmRollups();
  }

  /**
   * Loads the recent window's rollup units in the background, one per event-loop turn, so the first
   * dashboard after a restart does not pay for all of them at once.
   */
  private warmRollups(): void {
    const newest = this.newestStarted();
    const hours = this.opts.rollupCacheHours ?? DEFAULT_ROLLUP_CACHE_HOURS;
    if (newest === undefined || newest < this.now() - hours * HOUR_MS) return;
    const todo: [RollKind, number][] = [];
    for (let h = hourOf(newest); h > hourOf(newest) - hours * HOUR_MS; h -= HOUR_MS) {
      for (const kind of [ROLL_DOMAIN, ROLL_DEVICE, ROLL_TOTAL]) todo.push([kind, h]);
    }
    const step = (): void => {
      this.warmTimer = null;
      const next = todo.shift();
      if (next === undefined || this.closed) return;
      this.rollups.unitForRead(next[0], next[1]);
      this.warmTimer = setImmediate(step);
    };
    this.warmTimer = setImmediate(step);
  }

  private newestStarted(): number | undefined {
    for (const k of this.dbs.conn.getKeys({ start: [Infinity], end: KEY_MIN, reverse: true, limit: 1 })) return (k as ConnKey)[0];
    return undefined;
  }

  static open(opts: HistoryOptions): HistoryStore {
    const dbs = openDbs({ path: opts.path, mapSize: opts.mapSize });
    const version = dbs.meta.get("schema");
    if (version === undefined) dbs.meta.putSync("schema", SCHEMA_VERSION);
    else if (version !== SCHEMA_VERSION) {
      void dbs.root.close();
      throw new Error(`history store at ${opts.path} has schema ${String(version)}, this build reads ${SCHEMA_VERSION}`);
    }
    return new HistoryStore(dbs, opts);
  }

  /** The LMDB environment's directory. */
  get diskPath(): string {
    return this.opts.path;
  }

  /** Shorthand for writer.push. */
  push(rec: ConnRecord): void {
    this.writer.push(rec);
  }

  /** Rows with started in [from, to), oldest first (newest first with reverse). Pass a limit on big ranges. */
  scanRange(q: RangeQuery): ConnRecord[] {
    const { conn } = this.dbs;
    const limit = q.limit ?? Infinity;
    if (limit <= 0 || q.to <= q.from) return [];
    const range = q.reverse
      ? conn.getRange({ start: [q.to], end: [q.from], reverse: true, limit })
      : conn.getRange({ start: [q.from], end: [q.to], limit });
    const out: ConnRecord[] = [];
    for (const { value } of range) out.push(decodeRow(value));
    return out;
  }

  /** One device's rows in [from, to), newest first. */
  byDevice(ip: string, from: number, to: number, limit: number): ConnRecord[] {
    if (limit <= 0 || to <= from) return [];
    const out: ConnRecord[] = [];
    for (const key of this.dbs.dev.getKeys({ start: [ip, to], end: [ip, from], reverse: true, limit })) {
      const [, started, id] = key as DevKey;
      const rec = this.dbs.conn.get([started, id]);
      if (rec !== undefined) out.push(decodeRow(rec));
    }
    return out;
  }

  /** Blocked (verdict block or drop) rows in [from, to), newest first. */
  blocked(from: number, to: number, limit: number): ConnRecord[] {
    if (limit <= 0 || to <= from) return [];
    const out: ConnRecord[] = [];
    for (const key of this.dbs.blk.getKeys({ start: [to], end: [from], reverse: true, limit })) {
      const rec = this.dbs.conn.get(key as ConnKey);
      if (rec !== undefined) out.push(decodeRow(rec));
    }
    return out;
  }

  /**
   * The n domains with the most connections started in the hours overlapping [from, to) (hour
   * resolution: the partial hours at both edges count whole). Unknown names ("") are left out.
   */
  topDomains(from: number, to: number, n: number): TopEntry[] {
    const [f, t] = this.clamp(from, to);
    return f < t ? this.rollups.top(ROLL_DOMAIN, f, t, n, true) : [];
  }

  /** The n devices with the most connections, like topDomains. */
  topDevices(from: number, to: number, n: number): TopEntry[] {
    const [f, t] = this.clamp(from, to);
    return f < t ? this.rollups.top(ROLL_DEVICE, f, t, n, false) : [];
  }

  /**
   * Rows whose domain or remote_ip contains `text` (case-insensitive), newest first. A bounded scan,
   * not an index. It walks [from, to) backwards an hour at a time; unless the text could be part of
   * an IP address, the hour's domain rollup says which minutes had a domain containing it, and only
   * those minutes are read (none: the hour is skipped). Each row's raw bytes are tested for the text
   * before it is decoded. It stops after `limit` matches or `maxScan` rows (then complete is false).
   * Names are compared as stored; sluice's decoders store them lower-cased.
   */
  search(text: string, from: number, to: number, limit: number, opts: SearchOptions = {}): SearchResult {
    const maxScan = opts.maxScan ?? this.opts.searchMaxScan ?? DEFAULT_SEARCH_MAX_SCAN;
    const q = text.trim().toLowerCase();
    const records: ConnRecord[] = [];
    const [f, t] = this.clamp(from, to);
    if (limit <= 0 || f >= t) return { records, scanned: 0, complete: true, resumeTo: null };
    const needle = Buffer.from(q, "utf8");
    const minutesOf = q !== "" && !IP_LIKE.test(q) ? this.rollups.domainMinutes(q) : null;
    const match = (row: Buffer): ConnRecord | null => {
      if (needle.length > 0 && row.indexOf(needle) === -1) return null;
      const rec = decodeRow(row);
      if (q !== "" && !rec.domain.toLowerCase().includes(q) && !rec.remote_ip.toLowerCase().includes(q)) return null;
      return rec;
    };
    let scanned = 0;
    for (let hourEnd = t; hourEnd > f; ) {
      const hour = hourOf(hourEnd - 1);
      const hourStart = Math.max(hour, f);
      const [lo, hi] = minutesOf ? minutesOf(hour) : [ALL_MINUTES, ALL_MINUTES];
      // Runs of candidate minutes, newest first, each read as one backwards range.
      for (let m = MINUTES_PER_HOUR - 1; m >= 0; ) {
        if (!minuteSet(lo, hi, m)) {
          m--;
          continue;
        }
        let first = m;
        while (first > 0 && minuteSet(lo, hi, first - 1)) first--;
        const end = Math.min(hourEnd, hour + (m + 1) * MINUTE_MS);
        const start = Math.max(hourStart, hour + first * MINUTE_MS);
        m = first - 1;
        if (end <= start) continue;
        for (const { key, value } of scanRows(this.dbs, match, start, end)) {
          if (scanned >= maxScan) return { records, scanned, complete: false, resumeTo: key[0] + 1 };
          scanned++;
          if (value === null) continue;
          records.push(value);
          if (records.length >= limit) return { records, scanned, complete: true, resumeTo: null };
        }
      }
      hourEnd = hourStart;
    }
    return { records, scanned, complete: true, resumeTo: null };
  }

  /** The committed row with this id. */
  get(id: string): ConnRecord | undefined {
    const started = this.dbs.byId.get(id);
    if (started === undefined) return undefined;
    const row = this.dbs.conn.get([started, id]);
    return row === undefined ? undefined : decodeRow(row);
  }

  /** Rows in the store (O(1)). */
  count(): number {
    return connCount(this.dbs);
  }

  /** Shorthand for writer.pushQueryBlock: an encoded DNS query-log block (dnslog.ts), in id order. */
  pushQueryBlock(key: QLogKey, value: Buffer): boolean {
    return this.writer.pushQueryBlock(key, value);
  }

  /**
   * Committed query-log blocks with firstId <= beforeOrAt, newest first (oldest first with
   * reverse = false, from the start). Values are raw bytes for decodeQueryBlock; the iteration is
   * lazy, so a caller that stops early reads no more.
   */
  queryLogBlocks(reverse = true, beforeOrAt = Infinity): Iterable<{ key: QLogKey; value: Buffer }> {
    const start = Number.isFinite(beforeOrAt) ? [Math.floor(beforeOrAt) + 1] : QLOG_KEY_MAX;
    const range = reverse ? this.dbs.dnslog.getRange({ start, reverse: true }) : this.dbs.dnslog.getRange({});
    return range as Iterable<{ key: QLogKey; value: Buffer }>;
  }

  /** Committed query-log keys, newest first: counting and skipping without reading blocks. */
  queryLogKeys(): Iterable<QLogKey> {
    return this.dbs.dnslog.getKeys({ start: QLOG_KEY_MAX, reverse: true }) as Iterable<QLogKey>;
  }

  /** The newest committed query-log key. */
  queryLogLastKey(): QLogKey | undefined {
    return lastQueryLogKey(this.dbs);
  }

  /** Committed query-log rows (O(1)). */
  queryLogRows(): number {
    return queryLogRows(this.dbs);
  }

  /** Largest query id ever committed (0 if none); survives clearQueryLog. */
  queryLogMaxId(): number {
    return lastQueryLogId(this.dbs);
  }

  /**
   * Deletes the DNS query log up to id `upToId` (default: everything pushed so far), including
   * blocks not yet committed; resolves with the rows deleted. Blocks pushed after the call stay.
   */
  async clearQueryLog(upToId?: number): Promise<number> {
    const bound = upToId ?? this.writer.queryLogState.pushedMaxId;
    const dropped = this.writer.dropQueryBlocks(bound);
    const r = await this.writer.maintain(clearQueryLogJob(bound));
    return (r.queryRows ?? 0) + dropped;
  }

  /**
   * Per-bucket totals of rows by start time, zero-filled, for charts. Buckets are aligned to
   * multiples of bucketMs since the epoch and the first one is counted whole (from its aligned
   * start, which may be before `from`). With bucketMs a multiple of a minute this reads the minute
   * rollups (the last bucket then also counts the rest of the minute containing `to`); otherwise it
   * scans the rows, up to `to` exactly.
   */
  stats(bucketMs: number, from: number, to: number): StatsBucket[] {
    if (!(bucketMs > 0)) throw new RangeError("bucketMs must be positive");
    const first = Math.floor(from / bucketMs) * bucketMs;
    const n = Math.max(0, Math.ceil((to - first) / bucketMs));
    if (n > MAX_STATS_BUCKETS) throw new RangeError(`stats would need ${n} buckets (max ${MAX_STATS_BUCKETS})`);
    const out: StatsBucket[] = new Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = { start: first + i * bucketMs, connections: 0, blocked: 0, bytes_sent: 0, bytes_received: 0 };
    }
    if (n === 0) return out;
    const [f, t] = this.clamp(first, to);
    if (f >= t) return out;
    const add = (started: number, a: Agg): void => {
      const b = out[Math.floor((started - first) / bucketMs)];
      if (b === undefined) return;
      b.connections += a[AGG_COUNT];
      b.blocked += a[AGG_BLOCKED];
      b.bytes_sent += a[AGG_SENT];
      b.bytes_received += a[AGG_RECV];
    };
    if (bucketMs % MINUTE_MS === 0) {
      for (let h = hourOf(f); h < t; h += HOUR_MS) {
        this.rollups.forEachMinute(h, (minute, a) => {
          if (minute >= first && minute < to) add(minute, a);
        });
      }
    } else {
      for (const { value: raw } of this.dbs.conn.getRange({ start: [f], end: [t] })) {
        const value = decodeRow(raw);
        add(value.started, [1, isBlocked(value.verdict) ? 1 : 0, value.bytes_sent, value.bytes_received]);
      }
    }
    return out;
  }

  /** [from, to) narrowed to the rows that exist, so hour-by-hour walks never cross empty years. */
  private clamp(from: number, to: number): [number, number] {
    let oldest: number | undefined;
    for (const k of this.dbs.conn.getKeys({ start: KEY_MIN, limit: 1 })) oldest = (k as ConnKey)[0];
    const newest = this.newestStarted();
    if (oldest === undefined || newest === undefined) return [0, 0];
    return [Math.max(from, oldest), Math.min(to, newest + 1)];
  }

  /**
   * Deletes the history of the given profiles (`local/<id>`), or all of it for an empty list or
   * none, including records pushed but not yet committed. Resolves with the rows deleted.
   * Clearing everything is one transaction; clearing profiles scans the table in small jobs.
   */
  async clear(profiles?: string[]): Promise<number> {
    if (!profiles || profiles.length === 0) {
      this.writer.dropPending(null);
      const r = await this.writer.maintain(clearAllJob);
      return r.records;
    }
    const set = new Set(profiles);
    this.writer.dropPending(set);
    const cursor: ClearCursor = { after: null, done: false };
    const batch = this.opts.pruneBatch ?? DEFAULT_PRUNE_BATCH;
    let deleted = 0;
    while (!cursor.done) {
      const r = await this.writer.maintain(clearProfilesJob(set, cursor, batch));
      deleted += r.records;
      await yieldTurn();
    }
    return deleted;
  }

  /** Applies retention now (age, count, size); resolves when the store is within its limits. */
  cleanup(): Promise<RetentionResult> {
    if (this.retentionRun) return this.retentionRun;
    const run = this.runRetention().finally(() => {
      this.retentionRun = null;
    });
    this.retentionRun = run;
    return run;
  }

  private async runRetention(): Promise<RetentionResult> {
    const { maxAgeDays, maxRecords, maxBytes } = this.opts;
    const qlogAgeDays = this.opts.queryLogMaxAgeDays ?? maxAgeDays;
    const batch = this.opts.pruneBatch ?? DEFAULT_PRUNE_BATCH;
    let deleted = 0;
    let sizeTarget = -1;
    for (;;) {
      if (this.closed) break;
      const cutoff = maxAgeDays ? this.now() - maxAgeDays * DAY_MS : -Infinity;
      const count = this.count();
      let excess = maxRecords ? count - maxRecords : 0;
      if (maxBytes) {
        const used = usedBytes(this.dbs);
        if (used > maxBytes && sizeTarget < 0) sizeTarget = maxBytes * SIZE_TARGET_FRACTION;
        if (sizeTarget >= 0 && used > sizeTarget && count > 0) {
          excess = Math.max(excess, Math.ceil((used - sizeTarget) / (used / count)));
        }
      }
      const r = await this.writer.maintain(pruneJob({ cutoff, excess: Math.max(0, Math.min(excess, batch)), batch }));
      deleted += r.records;
      if (r.records === 0) break;
      await yieldTurn();
    }
    let queryRowsDeleted = 0;
    while (qlogAgeDays && !this.closed) {
      const cutoff = this.now() - qlogAgeDays * DAY_MS;
      const r = await this.writer.maintain(pruneQueryLogJob(cutoff, DEFAULT_QUERY_LOG_PRUNE_BLOCKS));
      queryRowsDeleted += r.queryRows ?? 0;
      if ((r.queryBlocks?.length ?? 0) === 0) break;
      await yieldTurn();
    }
    return { deleted, queryRowsDeleted, records: this.count(), usedBytes: usedBytes(this.dbs) };
  }

  /** Sizes for monitoring and the benchmark. */
  diskStats(): DiskStats {
    let fileBytes = 0;
    try {
      fileBytes = statSync(join(this.opts.path, "data.mdb")).size;
    } catch {
      fileBytes = 0;
    }
    return {
      records: this.count(),
      usedBytes: usedBytes(this.dbs),
      fileBytes,
      queryLogRows: this.queryLogRows(),
      queryLogBytes: queryLogBytes(this.dbs),
    };
  }

  /**
   * Recounts every index and rollup from the main table and reports disagreements. Reads the whole
   * store: for tests, and for checking a store after a crash, not for a request path.
   */
  verify(): VerifyReport {
    const { dbs } = this;
    const problems: string[] = [];
    const note = (p: string): void => {
      if (problems.length < 50) problems.push(p);
    };
    const ids = new Map<string, number>();
    // Expected sums per rollup key, and (domains) the minute bits that must be set.
    const expectRoll = new Map<string, [number, number, number, number, number, number]>();
    const bump = (k: RollKey, started: number, blocked: boolean, sent: number, recv: number): void => {
      const s = JSON.stringify(k);
      let a = expectRoll.get(s);
      if (!a) {
        a = [0, 0, 0, 0, 0, 0];
        expectRoll.set(s, a);
      }
      a[0]++;
      if (blocked) a[1]++;
      a[2] += sent;
      a[3] += recv;
      setMinute(a, 4, minuteIndex(started));
    };
    let records = 0;
    let blockedRows = 0;
    for (const { key, value: raw } of dbs.conn.getRange({ start: KEY_MIN, snapshot: true })) {
      records++;
      const value = decodeRow(raw);
      const [started, id] = key;
      if (value.id !== id || value.started !== started) note(`row ${JSON.stringify(key)} holds ${value.id}@${value.started}`);
      if (ids.has(id)) note(`id ${id} stored twice`);
      ids.set(id, started);
      const c = contributionOf(value);
      if (c.blocked) {
        blockedRows++;
        if (!dbs.blk.doesExist(key)) note(`blocked row ${id} missing from the blocked index`);
      }
      if (!dbs.dev.doesExist([c.device, started, id])) note(`row ${id} missing from the device index`);
      const h = hourOf(started);
      bump([ROLL_DOMAIN, h, c.domain], started, c.blocked, c.sent, c.recv);
      bump([ROLL_DEVICE, h, c.device], started, c.blocked, c.sent, c.recv);
      bump([ROLL_TOTAL, h, minuteOf(started)], started, c.blocked, c.sent, c.recv);
    }
    let byId = 0;
    for (const { key, value } of dbs.byId.getRange({})) {
      byId++;
      if (ids.get(key) !== value) note(`byId ${key} -> ${value} has no such row`);
    }
    let byDevice = 0;
    for (const key of dbs.dev.getKeys({})) {
      byDevice++;
      const [, started, id] = key as DevKey;
      if (ids.get(id) !== started) note(`device index entry ${JSON.stringify(key)} has no row`);
    }
    let blocked = 0;
    for (const key of dbs.blk.getKeys({})) {
      blocked++;
      const [started, id] = key as ConnKey;
      if (ids.get(id) !== started) note(`blocked index entry ${JSON.stringify(key)} has no row`);
    }
    if (byId !== records) note(`byId has ${byId} entries for ${records} rows`);
    if (byDevice !== records) note(`device index has ${byDevice} entries for ${records} rows`);
    if (blocked !== blockedRows) note(`blocked index has ${blocked} entries for ${blockedRows} blocked rows`);
    let rollupEntries = 0;
    for (const { key, value } of dbs.roll.getRange({})) {
      rollupEntries++;
      const s = JSON.stringify(key);
      const e = expectRoll.get(s);
      if (!e) note(`rollup ${s} = ${JSON.stringify(value)} has no rows`);
      else if (e[0] !== value[0] || e[1] !== value[1] || e[2] !== value[2] || e[3] !== value[3]) {
        note(`rollup ${s} = ${JSON.stringify(value)}, rows say ${JSON.stringify(e.slice(0, 4))}`);
      } else if (key[0] === ROLL_DOMAIN && ((value[4] ?? 0) & e[4]) !== e[4]) {
        note(`rollup ${s} minute mask ${value[4]} misses minutes ${e[4]}`);
      } else if (key[0] === ROLL_DOMAIN && ((value[5] ?? 0) & e[5]) !== e[5]) {
        note(`rollup ${s} minute mask ${value[5]} misses minutes ${e[5]}`);
      }
      expectRoll.delete(s);
    }
    for (const s of expectRoll.keys()) note(`rollup ${s} missing`);
    let queryBlocks = 0;
    let queryRows = 0;
    let lastId = 0;
    for (const k of dbs.dnslog.getKeys({ snapshot: true })) {
      const key = k as QLogKey;
      queryBlocks++;
      queryRows += qlogRowsOf(key);
      if (key[QK_FIRST_ID] <= lastId || key[QK_LAST_ID] < key[QK_FIRST_ID]) {
        note(`query block ${JSON.stringify(key)} overlaps ids up to ${lastId}`);
      }
      lastId = key[QK_LAST_ID];
    }
    if (queryRows !== this.queryLogRows()) note(`query log blocks hold ${queryRows} rows, meta says ${this.queryLogRows()}`);
    if (lastId > this.queryLogMaxId()) note(`query log block ids reach ${lastId}, meta says ${this.queryLogMaxId()}`);
    return { records, byId, byDevice, blocked, rollupEntries, queryBlocks, problems };
  }

  /** Commits what is pending, stops retention and closes the environment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.warmTimer) clearImmediate(this.warmTimer);
    await this.retentionRun?.catch(() => undefined);
    await this.writer.close();
    await this.dbs.root.close();
  }
}

function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
