// The DNS query log's lane in the history store: how a block of queries is stored, and the
// maintenance jobs (retention by age, clear) that delete blocks.
//
// A block is a run of consecutive query ids (one flush of the in-memory log, at most
// QBLOCK_MAX_ROWS rows), stored under one key (QLogKey, schema.ts) as one value: a msgpackr array
// holding three string dictionaries and one binary buffer of fixed-width columns. Rows refer to
// strings by their index in the block's dictionary, so a domain asked for 500 times in a block is
// stored once, and the buffer is copied into aligned typed arrays in one step when read back.
//
// Column layout of the buffer, n = rows; widest first, so every column starts aligned to its own
// width once the buffer sits at an 8-aligned address:
//
//   offset   0     8n       12n      16n      18n     20n      22n        24n     26n      27n   28n
//            | time | replyMs | listId | domain | cname | client | upstream | qtype | status | reply |
//            | f64  |  f32    |  i32   |  u16   |  u16  |  u16   |   u16    |  u16  |  u8    |  u8   |
//
// domain and client index their dictionaries; cname and upstream hold index + 1, 0 meaning none.
// At most QBLOCK_MAX_ROWS rows means at most 2 * QBLOCK_MAX_ROWS names (a domain and a CNAME per
// row), which u16 indexes hold.

import { Packr } from "msgpackr";
import { QK_LAST_ID, QK_MAX_TIME, qlogRowsOf, type HistoryDbs, type QLogKey } from "./schema.js";
import type { MaintPlan } from "./writer.js";

/** First element of every stored block; a new layout gets a new number. */
export const QBLOCK_FORMAT_V1 = 1;
/** Rows per block at most (u16 dictionary indexes, see the layout above). */
export const QBLOCK_MAX_ROWS = 8192;
/** Bytes of the column buffer per row. */
export const QBLOCK_ROW_BYTES = 28;

const F64 = 8;
const F32 = 4;
const I32 = 4;
const U16 = 2;

/** Where each column starts, for n rows. */
function offsets(n: number): {
  replyMs: number;
  listId: number;
  domain: number;
  cname: number;
  client: number;
  upstream: number;
  qtype: number;
  status: number;
  reply: number;
} {
  const replyMs = F64 * n;
  const listId = replyMs + F32 * n;
  const domain = listId + I32 * n;
  const cname = domain + U16 * n;
  const client = cname + U16 * n;
  const upstream = client + U16 * n;
  const qtype = upstream + U16 * n;
  const status = qtype + U16 * n;
  const reply = status + n;
  return { replyMs, listId, domain, cname, client, upstream, qtype, status, reply };
}

/** One block's rows as columns. Encoding reads only the first n entries of each array. */
export interface QueryBlockCols {
  firstId: number;
  n: number;
  /** Domains and CNAMEs used by the block. */
  names: string[];
  clients: string[];
  upstreams: string[];
  /** Unix ms. */
  time: Float64Array;
  replyMs: Float32Array;
  /** -1: none. */
  listId: Int32Array;
  /** Index into names. */
  domain: Uint16Array;
  /** Index + 1 into names; 0: none. */
  cname: Uint16Array;
  /** Index into clients. */
  client: Uint16Array;
  /** Index + 1 into upstreams; 0: none. */
  upstream: Uint16Array;
  qtype: Uint16Array;
  status: Uint8Array;
  reply: Uint8Array;
}

const packr = new Packr({ useRecords: false });

function bytesOf(a: ArrayBufferView, len: number): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, len);
}

/** Encodes a block's first n rows. */
export function encodeQueryBlock(c: QueryBlockCols): Buffer {
  const n = c.n;
  if (n < 1 || n > QBLOCK_MAX_ROWS) throw new RangeError(`a query block holds 1..${QBLOCK_MAX_ROWS} rows, not ${n}`);
  const o = offsets(n);
  const cols = Buffer.allocUnsafe(QBLOCK_ROW_BYTES * n);
  cols.set(bytesOf(c.time, F64 * n), 0);
  cols.set(bytesOf(c.replyMs, F32 * n), o.replyMs);
  cols.set(bytesOf(c.listId, I32 * n), o.listId);
  cols.set(bytesOf(c.domain, U16 * n), o.domain);
  cols.set(bytesOf(c.cname, U16 * n), o.cname);
  cols.set(bytesOf(c.client, U16 * n), o.client);
  cols.set(bytesOf(c.upstream, U16 * n), o.upstream);
  cols.set(bytesOf(c.qtype, U16 * n), o.qtype);
  cols.set(bytesOf(c.status, n), o.status);
  cols.set(bytesOf(c.reply, n), o.reply);
  return packr.pack([QBLOCK_FORMAT_V1, c.firstId, n, c.names, c.clients, c.upstreams, cols]);
}

/** Decodes a stored block (the bytes are copied; `buf` may be reused afterwards). */
export function decodeQueryBlock(buf: Uint8Array): QueryBlockCols {
  const a = packr.unpack(buf) as unknown[];
  if (a[0] !== QBLOCK_FORMAT_V1) throw new Error(`unknown query block format ${String(a[0])}`);
  const n = a[2] as number;
  const raw = a[6] as Uint8Array;
  if (!(n >= 1 && n <= QBLOCK_MAX_ROWS) || raw.length !== QBLOCK_ROW_BYTES * n) throw new Error("corrupt query block");
  // One copy into a fresh (8-aligned) buffer, so every column can be a typed-array view.
  const ab = new ArrayBuffer(raw.length);
  new Uint8Array(ab).set(raw);
  const o = offsets(n);
  return {
    firstId: a[1] as number,
    n,
    names: a[3] as string[],
    clients: a[4] as string[],
    upstreams: a[5] as string[],
    time: new Float64Array(ab, 0, n),
    replyMs: new Float32Array(ab, o.replyMs, n),
    listId: new Int32Array(ab, o.listId, n),
    domain: new Uint16Array(ab, o.domain, n),
    cname: new Uint16Array(ab, o.cname, n),
    client: new Uint16Array(ab, o.client, n),
    upstream: new Uint16Array(ab, o.upstream, n),
    qtype: new Uint16Array(ab, o.qtype, n),
    status: new Uint8Array(ab, o.status, n),
    reply: new Uint8Array(ab, o.reply, n),
  };
}

/** meta key: rows in the log (written with every batch that adds or deletes blocks). */
export const QLOG_ROWS_KEY = "qlogRows";
/** meta key: the largest query id ever written. */
export const QLOG_MAX_ID_KEY = "qlogMaxId";

/** Below every QLogKey. */
export const QLOG_KEY_MIN: [number] = [-Infinity];
/** Above every QLogKey. */
export const QLOG_KEY_MAX: [number] = [Infinity];

/**
 * One retention job: up to `batch` blocks from the front of the log whose newest row is older
 * than `cutoff`. It stops at the first block that still holds a younger row, so a block logged out
 * of time order waits until the blocks before it have gone (kept a little longer, never lost early).
 */
export function pruneQueryLogJob(cutoff: number, batch: number): (dbs: HistoryDbs) => MaintPlan {
  return (dbs) => {
    const keys: QLogKey[] = [];
    let rows = 0;
    for (const k of dbs.dnslog.getKeys({ start: QLOG_KEY_MIN })) {
      const key = k as QLogKey;
      if (keys.length >= batch || key[QK_MAX_TIME] >= cutoff) break;
      keys.push(key);
      rows += qlogRowsOf(key);
    }
    return { remove: [], records: 0, queryBlocks: keys, queryRows: rows };
  };
}

/**
 * Deletes every block with ids up to `upToId` in one transaction: the whole table at once, unless
 * blocks of queries logged after the clear was asked for were committed before it ran; those stay.
 */
export function clearQueryLogJob(upToId: number): (dbs: HistoryDbs) => MaintPlan {
  return (dbs) => {
    const last = lastQueryLogKey(dbs);
    if (last === undefined || last[QK_LAST_ID] <= upToId) {
      return { remove: [], records: 0, clearQueryLog: true, queryRows: queryLogRows(dbs) };
    }
    const keys: QLogKey[] = [];
    let rows = 0;
    for (const k of dbs.dnslog.getKeys({ start: QLOG_KEY_MIN })) {
      const key = k as QLogKey;
      if (key[QK_LAST_ID] > upToId) break;
      keys.push(key);
      rows += qlogRowsOf(key);
    }
    return { remove: [], records: 0, queryBlocks: keys, queryRows: rows };
  };
}

/** Rows in the log, as counted by the writer in the same transactions that wrote and deleted them. */
export function queryLogRows(dbs: HistoryDbs): number {
  const v = dbs.meta.get(QLOG_ROWS_KEY);
  return typeof v === "number" ? v : 0;
}

/** The newest key of the log, or undefined when it is empty. */
export function lastQueryLogKey(dbs: HistoryDbs): QLogKey | undefined {
  for (const k of dbs.dnslog.getKeys({ start: QLOG_KEY_MAX, reverse: true, limit: 1 })) return k as QLogKey;
  return undefined;
}

/**
 * Largest id ever written to the log (0 if none). Kept in meta too, so clearing the log does not
 * let ids start again from 1.
 */
export function lastQueryLogId(dbs: HistoryDbs): number {
  const v = dbs.meta.get(QLOG_MAX_ID_KEY);
  return Math.max(typeof v === "number" ? v : 0, lastQueryLogKey(dbs)?.[QK_LAST_ID] ?? 0);
}
