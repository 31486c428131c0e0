// The history store's on-disk layout, in one place, so the writer, the queries and the pruner can
// never disagree about a key. Every table lives in one LMDB environment (one file, one write lock,
// one transaction per batch spanning all of them), which is what keeps indexes and rollups
// consistent with the main table across a kill -9: LMDB commits all tables of a transaction or none.
//
// Keys are lmdb-js "ordered-binary" arrays: numbers sort numerically, then strings bytewise, and an
// array sorts element by element, so [started, id] orders by time with the id as tie-breaker and a
// one-element [t] bounds a time range without knowing any id. Time is the first component of every
// row key because every dashboard query is "recent first" over a window.

import { open, type Database, type RootDatabase } from "lmdb";
import type { ConnRecord } from "../flow/types.js";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Bumped when the layout changes incompatibly; a store with another version is refused. */
export const SCHEMA_VERSION = 2;

/** Portmaster verdicts that count as "blocked": 3 Block, 4 Drop. */
export const VERDICT_BLOCK = 3;
export const VERDICT_DROP = 4;
export function isBlocked(verdict: number): boolean {
  return verdict === VERDICT_BLOCK || verdict === VERDICT_DROP;
}

/** Main table key: [started ms, id]. */
export type ConnKey = [number, string];
/** Device index key: [device_ip, started ms, id]. */
export type DevKey = [string, number, string];
/** Rollup key: [kind, hour start ms, name]. Names are domains/devices, or a minute start for totals. */
export type RollKey = [RollKind, number, string | number];

/**
 * DNS query-log block key (the dnslog table): [firstId, lastId, minTime, maxTime, prefixMaxTime].
 * Blocks hold consecutive query ids, so ordering by firstId is ordering by arrival; the times are
 * carried in the key so scans can skip a block, or stop, without reading its value. prefixMaxTime
 * is the newest time in this block or any block before it: it never decreases along the table,
 * so a backwards scan for rows at or after `from` may stop at the first block whose prefixMaxTime
 * is older, even when the resolver logged some queries out of time order.
 */
export type QLogKey = [number, number, number, number, number];
export const QK_FIRST_ID = 0;
export const QK_LAST_ID = 1;
export const QK_MIN_TIME = 2;
export const QK_MAX_TIME = 3;
export const QK_PREFIX_MAX = 4;
/** Rows of a query-log block (ids are consecutive within a block). */
export function qlogRowsOf(k: QLogKey): number {
  return k[QK_LAST_ID] - k[QK_FIRST_ID] + 1;
}

/**
 * Rollup kinds. Domains and devices are bucketed per hour (a unit is one hour of one kind: all names
 * seen that hour); totals ("t") are per minute, grouped in hour units too so they share the cache.
 */
export type RollKind = "d" | "v" | "t";
export const ROLL_DOMAIN: RollKind = "d";
export const ROLL_DEVICE: RollKind = "v";
export const ROLL_TOTAL: RollKind = "t";

/** Rollup sums: [connections, blocked, bytes_sent, bytes_received]. */
export type Agg = [number, number, number, number];
/** A stored rollup value: the sums, and for domains the hour's minute masks (see rollups.ts). */
export type RollValue = Agg | [number, number, number, number, number, number];
export const AGG_COUNT = 0;
export const AGG_BLOCKED = 1;
export const AGG_SENT = 2;
export const AGG_RECV = 3;

export function hourOf(t: number): number {
  return Math.floor(t / HOUR_MS) * HOUR_MS;
}
export function minuteOf(t: number): number {
  return Math.floor(t / MINUTE_MS) * MINUTE_MS;
}

/**
 * What a stored row contributes to indexes and rollups. Kept for every connection the writer has
 * written while it is still active, so the end (or a verdict/domain change) can be applied as a
 * delta without reading the old row back from disk.
 */
export interface Contribution {
  started: number;
  device: string;
  domain: string;
  blocked: boolean;
  sent: number;
  recv: number;
}

export function contributionOf(rec: ConnRecord): Contribution {
  return {
    started: rec.started,
    device: rec.device_ip,
    domain: rec.domain,
    blocked: isBlocked(rec.verdict),
    sent: rec.bytes_sent,
    recv: rec.bytes_received,
  };
}

/**
 * Scans that look at most rows and keep few (search, clear by profile) read through a second handle
 * on the main table whose "decoder" is the scan's own test: lmdb-js hands it the row's bytes in
 * place, so a row that does not match costs no copy and no decode (about half the cost per row).
 * The bytes are only valid during the call. Scans are synchronous, so one current test suffices.
 */
let scanTest: (row: Buffer) => unknown = () => null;
const scanCodec = {
  encode(): never {
    throw new Error("the scan handle is read-only");
  },
  decode(bytes: Uint8Array, size: number): unknown {
    return scanTest(Buffer.from(bytes.buffer, bytes.byteOffset, size));
  },
  needsStableBuffer: false,
};

/** Rows started in [from, to), newest first, each mapped through `test` (null: no match). */
export function* scanRows<T>(
  dbs: HistoryDbs,
  test: (row: Buffer) => T | null,
  from: number,
  to: number,
  reverse = true,
): Generator<{ key: ConnKey; value: T | null }> {
  const range = reverse
    ? dbs.scan.getRange({ start: [to], end: [from], reverse: true })
    : dbs.scan.getRange({ start: [from], end: [to] });
  const it = range[Symbol.iterator]();
  let done = false;
  try {
    for (;;) {
      scanTest = test;
      const r = it.next();
      if (r.done) {
        done = true;
        return;
      }
      yield r.value as { key: ConnKey; value: T | null };
    }
  } finally {
    if (!done) it.return?.(); // closes the cursor when the caller stops early
  }
}

/** The tables of one history environment. */
export interface HistoryDbs {
  root: RootDatabase;
  /** [started, id] -> the row, encoded by codec.ts (raw bytes here, so scans can test them before decoding). */
  conn: Database<Buffer, ConnKey>;
  /** The main table again, read through the current scan test (see scanRows). */
  scan: Database<unknown, ConnKey>;
  /** id -> started: finds a row's key from its id. */
  byId: Database<number, string>;
  /** [device_ip, started, id] -> empty. */
  dev: Database<Buffer, DevKey>;
  /** [started, id] -> empty, only for blocked rows. */
  blk: Database<Buffer, ConnKey>;
  /** [kind, hour, name] -> RollValue. */
  roll: Database<RollValue, RollKey>;
  /** Small settings: schema version, and the batch sequence stamp (as an lmdb entry version). */
  meta: Database<unknown, string>;
  /**
   * The DNS query log: QLogKey -> one columnar block (src/store/dnslog.ts). Created on first open,
   * so a store written by an older build opens unchanged (no schema bump).
   */
  dnslog: Database<Buffer, QLogKey>;
}

export const EMPTY = Buffer.alloc(0);

const MAX_DBS = 12;

export interface OpenDbsOptions {
  path: string;
  /** Address space reserved for the map; lmdb-js grows it on demand when unset. */
  mapSize?: number;
}

export function openDbs(opts: OpenDbsOptions): HistoryDbs {
  const root = open({
    path: opts.path,
    maxDbs: MAX_DBS,
    ...(opts.mapSize ? { mapSize: opts.mapSize } : {}),
  }) as RootDatabase;
  const conn = root.openDB<Buffer, ConnKey>({ name: "conn", encoding: "binary" });
  const scan = root.openDB<unknown, ConnKey>({ name: "conn", encoder: scanCodec } as never);
  const byId = root.openDB<number, string>({ name: "id", encoding: "msgpack" });
  const dev = root.openDB<Buffer, DevKey>({ name: "dev", encoding: "binary" });
  const blk = root.openDB<Buffer, ConnKey>({ name: "blk", encoding: "binary" });
  const roll = root.openDB<RollValue, RollKey>({ name: "roll", encoding: "msgpack" });
  const meta = root.openDB<unknown, string>({ name: "meta", encoding: "msgpack", useVersions: true });
  const dnslog = root.openDB<Buffer, QLogKey>({ name: "dnslog", encoding: "binary" });
  return { root, conn, scan, byId, dev, blk, roll, meta, dnslog };
}

/** Number of rows in the main table (O(1): LMDB keeps the count). */
export function connCount(dbs: HistoryDbs): number {
  return (dbs.conn.getStats() as { entryCount: number }).entryCount;
}

interface DbStats {
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  pageSize: number;
}

/**
 * Bytes held by live pages of the connection tables. The file itself never shrinks (LMDB reuses
 * freed pages instead), so this, not the file size, is what retention by size measures. The DNS
 * query log is left out: it has its own retention (by age), and counting it here would make
 * connection rows pay for DNS volume.
 */
export function usedBytes(dbs: HistoryDbs): number {
  let pages = 0;
  let pageSize = 4096;
  for (const db of [dbs.conn, dbs.byId, dbs.dev, dbs.blk, dbs.roll, dbs.meta]) {
    const s = db.getStats() as DbStats;
    pages += s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
    pageSize = s.pageSize;
  }
  return pages * pageSize;
}

/** Bytes held by live pages of the DNS query log. */
export function queryLogBytes(dbs: HistoryDbs): number {
  const s = dbs.dnslog.getStats() as DbStats;
  return (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages) * s.pageSize;
}
