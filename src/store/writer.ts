// The one writer of the history store.
//
// push() only files the record in a Map by id, so the hot path costs one hash insert, and an update
// to a record not yet committed simply replaces it there (coalescing). Batches leave that Map every
// DEFAULT_BATCH_MS or DEFAULT_BATCH_RECORDS and each becomes one LMDB transaction holding the rows,
// their index entries, the rollup sums and a sequence stamp, so a kill -9 leaves all of a batch or
// none of it.
//
// Throughput comes from lmdb-js's asynchronous writes: this thread encodes (msgpackr) and queues
// instructions, lmdb-js's write thread does the B-tree work and the commit, and up to MAX_INFLIGHT
// batches are queued at once so the two threads overlap. A queued batch cannot read what the batch
// before it wrote, so whatever later batches must know about earlier ones stays in memory until
// those resolve: `live` (what each written row of a still-active connection contributes to indexes
// and rollups), `seen` (which ids may have a row at all) and the rollup cache.
//
// Every batch is built in two steps: first everything that reads or can fail (encoding, lookups,
// rollup sums), then, inside lmdb-js's batch callback, only the writes. A batch is therefore never
// cut short half-written. Each batch is also conditional on the previous one's sequence stamp
// (lmdb-js ifVersion): if one fails to commit, the batches built on top of it do nothing rather
// than write state that assumed it; once all have settled the writer forgets its memory (the disk is
// the truth again) and re-queues their records.
//
// The DNS query log rides in the same batches: pushQueryBlock() queues an encoded block (one flush
// of the in-memory query log, see dnslog.ts) and the next ingest transaction writes it together
// with the connection rows, the row count and the largest id (both in meta), so a kill -9 leaves
// each block, and the counts that describe it, all there or all missing. Blocks waiting beyond
// maxPendingQueryRows rows are refused and counted, as connection records are.
//
// Maintenance (retention, clear) goes through the same lane but alone: its plan is read from the
// snapshot, so nothing may be in flight while it is made, and nothing is issued until it resolves.

import type { ConnRecord } from "../flow/types.js";
import { decodeRow, encodeRow } from "./codec.js";
import { RollupCache, RollupDelta, writeRollups, type RollupWrite } from "./rollups.js";
import { QLOG_MAX_ID_KEY, QLOG_ROWS_KEY, lastQueryLogId, queryLogRows } from "./dnslog.js";
import { SeenIds } from "./seen.js";
import {
  EMPTY,
  QK_LAST_ID,
  contributionOf,
  isBlocked,
  qlogRowsOf,
  type ConnKey,
  type Contribution,
  type DevKey,
  type HistoryDbs,
  type QLogKey,
} from "./schema.js";

export const DEFAULT_BATCH_MS = 100;
export const DEFAULT_BATCH_RECORDS = 5000;
/** Records waiting beyond this are refused (counted in `dropped`): memory stays bounded if the disk stalls. */
export const DEFAULT_MAX_PENDING = 1_000_000;
/** Query-log rows waiting beyond this are refused (counted in `queryRowsDropped`). */
export const DEFAULT_MAX_PENDING_QUERY_ROWS = 2_000_000;
/**
 * Encoded query-log bytes one batch takes at most: a block is up to ~250 KB, and a few MB per
 * transaction keep a commit short while still amortizing it over tens of thousands of queries.
 */
const QUERY_BATCH_BYTES = 4 * 1024 * 1024;
/** Batches queued to lmdb-js at once: two let this thread encode while the previous one commits. */
const MAX_INFLIGHT = 2;
/** After a failed commit, wait this long before trying again (a full disk will not heal in a tick). */
const RETRY_BACKOFF_MS = 1000;
/** close() stops waiting for a store that keeps failing to commit after this long. */
const CLOSE_TIMEOUT_MS = 10_000;
/** Ingest batches allowed between two maintenance jobs while both are waiting. */
const INGEST_PER_MAINT = 2;
/** meta key whose lmdb version is the sequence number of the last committed batch. */
const SEQ_KEY = "seq";
/** LMDB keys are at most 1978 bytes; ids longer than this (in UTF-16 units) are refused. */
const MAX_ID_LENGTH = 512;
/** Domains are at most 253 characters; anything longer is not a name. */
const MAX_NAME_LENGTH = 255;
const SCRATCH_CONN_KEY: ConnKey = [0, ""];
const SCRATCH_DEV_KEY: DevKey = ["", 0, ""];

export interface WriterOptions {
  batchMs?: number;
  batchRecords?: number;
  maxPending?: number;
  maxPendingQueryRows?: number;
}

export interface WriterCounters {
  /** push() calls. */
  pushed: number;
  /** Records written by committed batches (after coalescing). */
  committed: number;
  /** Records waiting for a batch. */
  pending: number;
  /** Committed batches (ingest and maintenance). */
  commits: number;
  /** Wall time from issuing the last committed batch to its commit, ms. */
  lastCommitMs: number;
  /** Failed commits and failed maintenance jobs. */
  errors: number;
  /** Records refused because `pending` was full. */
  dropped: number;
  /** Records refused because they cannot be keyed (NUL in id/domain/device, oversized id) or encoded. */
  invalid: number;
  /** Query-log blocks and their rows written by committed batches. */
  queryBlocks: number;
  queryRows: number;
  /** Query-log rows waiting for a batch. */
  queryRowsPending: number;
  /** Query-log rows refused because queryRowsPending was full (or the writer was closed). */
  queryRowsDropped: number;
}

export interface CommitInfo {
  seq: number;
  records: number;
  ms: number;
}

/** One row a maintenance job deletes, with what it contributed. */
export interface Removal {
  id: string;
  c: Contribution;
}

/** What a maintenance job decided, from the snapshot, before anything is written. */
export interface MaintPlan {
  remove: Removal[];
  /** Empty every table instead (remove is then ignored). */
  clearAll?: boolean;
  /** Rows the plan deletes (for clearAll, the row count before). */
  records: number;
  /** Query-log blocks to delete. */
  queryBlocks?: QLogKey[];
  /** Empty the query log instead (queryBlocks is then ignored). */
  clearQueryLog?: boolean;
  /** Query-log rows the plan deletes. */
  queryRows?: number;
}

/** A maintenance job: reads the snapshot (nothing is in flight) and plans deletions. May throw. */
export type MaintJob = (dbs: HistoryDbs) => MaintPlan;

interface Inflight {
  seq: number;
  kind: "ingest" | "maint";
  recs: ConnRecord[] | null;
  /** Encoded rows: lmdb-js reads them from its write thread, so they stay referenced until the commit. */
  vals: Buffer[] | null;
  ended: string[] | null;
  /** Query-log blocks written by this batch (their values stay referenced until the commit, like vals). */
  qblocks: QueryBlock[] | null;
  clearAll: boolean;
  issuedAt: number;
  settled: boolean;
  ok: boolean;
}

/** An encoded query-log block waiting for its batch. */
interface QueryBlock {
  key: QLogKey;
  value: Buffer;
}

interface QueuedMaint {
  job: MaintJob;
  resolve(plan: MaintPlan): void;
  reject(e: unknown): void;
}

interface Waiter {
  target: number;
  resolve(): void;
  reject(e: unknown): void;
}

/** A written row the writer still remembers: its contribution, and the batch that last wrote it. */
export interface LiveEntry extends Contribution {
  seq: number;
}

/** The writer's memory of one row (one object literal, so V8 keeps all seven fields in-object). */
export function liveEntryOf(rec: ConnRecord, seq: number): LiveEntry {
  return {
    started: rec.started,
    device: rec.device_ip,
    domain: rec.domain,
    blocked: isBlocked(rec.verdict),
    sent: rec.bytes_sent,
    recv: rec.bytes_received,
    seq,
  };
}

function keyable(s: string, max: number): boolean {
  return typeof s === "string" && s.length <= max && s.indexOf("\u0000") === -1;
}

function isValid(rec: ConnRecord): boolean {
  return (
    keyable(rec.id, MAX_ID_LENGTH) &&
    rec.id.length > 0 &&
    keyable(rec.domain, MAX_NAME_LENGTH) &&
    keyable(rec.device_ip, MAX_NAME_LENGTH) &&
    Number.isFinite(rec.started)
  );
}

export class HistoryWriter {
  private pending = new Map<string, ConnRecord>();
  /** Query-log blocks waiting, in id order, with their total bytes and rows. */
  private qblocks: QueryBlock[] = [];
  private qBytes = 0;
  private qRows = 0;
  private readonly maxPendingQueryRows: number;
  /**
   * Rows in the query log and its largest id, as of the last issued batch (what that batch writes
   * to meta). Back to the disk's values after a failed commit.
   */
  private qlogRows: number;
  private qlogMaxId: number;
  /** Largest query id ever pushed (committed, in flight, waiting or dropped). */
  private qPushedMaxId: number;
  private readonly live = new Map<string, LiveEntry>();
  /** Ids that may have a row although they are not in `live` (see seen.ts). */
  private readonly seen: SeenIds;
  private readonly inflight: Inflight[] = [];
  private failed: Inflight[] = [];
  private readonly maint: QueuedMaint[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly batchMs: number;
  private readonly batchRecords: number;
  private readonly maxPending: number;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private due = false;
  private broken = false;
  private backoffUntil = 0;
  private closed = false;
  private ingestSinceMaint = 0;
  /** Sequence of the last issued batch, and of the last committed one (the lmdb version of SEQ_KEY). */
  private issuedSeq: number;
  private resolvedSeq: number;
  /** Records moved from pending into issued batches, and those of them committed. */
  private taken = 0;
  private done = 0;
  private onCommitFn: ((info: CommitInfo) => void) | null = null;
  private readonly c: WriterCounters = {
    pushed: 0,
    committed: 0,
    pending: 0,
    commits: 0,
    lastCommitMs: 0,
    errors: 0,
    dropped: 0,
    invalid: 0,
    queryBlocks: 0,
    queryRows: 0,
    queryRowsPending: 0,
    queryRowsDropped: 0,
  };

  constructor(
    private readonly dbs: HistoryDbs,
    readonly rollups: RollupCache,
    opts: WriterOptions = {},
  ) {
    this.batchMs = opts.batchMs ?? DEFAULT_BATCH_MS;
    this.batchRecords = Math.max(1, opts.batchRecords ?? DEFAULT_BATCH_RECORDS);
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.maxPendingQueryRows = opts.maxPendingQueryRows ?? DEFAULT_MAX_PENDING_QUERY_ROWS;
    this.qlogRows = queryLogRows(dbs);
    this.qlogMaxId = lastQueryLogId(dbs);
    this.qPushedMaxId = this.qlogMaxId;
    const e = dbs.meta.getEntry(SEQ_KEY);
    if (e === undefined) dbs.meta.putSync(SEQ_KEY, 0, 0);
    this.issuedSeq = this.resolvedSeq = e?.version ?? 0;
    let newest = -Infinity;
    for (const k of dbs.conn.getKeys({ start: [Infinity], end: [-Infinity], reverse: true, limit: 1 })) {
      newest = (k as ConnKey)[0];
    }
    this.seen = new SeenIds(newest);
  }

  /**
   * Files a record for the next batch. The object is read when its batch is built, not now, so a
   * tracker that keeps one object per connection may go on changing it and push it again after
   * each change (the batch then stores the latest state).
   */
  push(rec: ConnRecord): void {
    this.c.pushed++;
    const p = this.pending;
    if (p.size >= this.maxPending && !p.has(rec.id)) {
      this.c.dropped++;
      return;
    }
    p.set(rec.id, rec);
    if (p.size >= this.batchRecords) {
      if (this.immediate === null && !this.closed) this.immediate = setImmediate(this.onImmediate);
    } else if (this.timer === null && !this.closed) {
      this.timer = setTimeout(this.onTimer, this.batchMs);
    }
  }

  /**
   * Queues an encoded query-log block (dnslog.ts) for the next batch. Blocks must come in id
   * order. Returns false, and counts the rows as dropped, when too many rows are already waiting.
   */
  pushQueryBlock(key: QLogKey, value: Buffer): boolean {
    const rows = qlogRowsOf(key);
    if (key[QK_LAST_ID] > this.qPushedMaxId) this.qPushedMaxId = key[QK_LAST_ID];
    if (this.closed || this.qRows + rows > this.maxPendingQueryRows) {
      this.c.queryRowsDropped += rows;
      return false;
    }
    this.qblocks.push({ key, value });
    this.qBytes += value.length;
    this.qRows += rows;
    if (this.qBytes >= QUERY_BATCH_BYTES) {
      if (this.immediate === null) this.immediate = setImmediate(this.onImmediate);
    } else if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.batchMs);
    }
    return true;
  }

  /** Drops query-log blocks not yet issued whose ids are all <= upToId; returns their rows. */
  dropQueryBlocks(upToId = Infinity): number {
    const keep: QueryBlock[] = [];
    let rows = 0;
    for (const b of this.qblocks) {
      if (b.key[QK_LAST_ID] <= upToId) {
        rows += qlogRowsOf(b.key);
        this.qBytes -= b.value.length;
      } else keep.push(b);
    }
    this.qblocks = keep;
    this.qRows -= rows;
    this.capWaiters();
    return rows;
  }

  /**
   * Rows in the query log and its largest id, counting batches issued but not yet committed; and
   * the largest id ever pushed (also counting blocks waiting or refused).
   */
  get queryLogState(): { rows: number; maxId: number; pushedMaxId: number } {
    return { rows: this.qlogRows, maxId: this.qlogMaxId, pushedMaxId: this.qPushedMaxId };
  }

  /** Resolves once every record and query block pushed before the call is committed (rejects if a commit fails meanwhile). */
  flush(): Promise<void> {
    const target = this.taken + this.pending.size + this.qblocks.length;
    if (this.done >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ target, resolve, reject });
      this.due = true;
      this.pump();
    });
  }

  /** Queues a maintenance job; resolves with its plan once the plan is committed. */
  maintain(job: MaintJob): Promise<MaintPlan> {
    if (this.closed) return Promise.reject(new Error("history writer is closed"));
    return new Promise((resolve, reject) => {
      this.maint.push({ job, resolve, reject });
      this.pump();
    });
  }

  /** Drops records not yet committed whose profile is in `profiles` (all when null). */
  dropPending(profiles: Set<string> | null): number {
    let n = 0;
    for (const [id, rec] of this.pending) {
      if (profiles === null || profiles.has(rec.profile)) {
        this.pending.delete(id);
        n++;
      }
    }
    if (n > 0) this.capWaiters();
    return n;
  }

  /** After pending work was dropped: no waiter waits for more than can still be committed. */
  private capWaiters(): void {
    const cap = this.taken + this.pending.size + this.qblocks.length;
    for (const w of this.waiters) if (w.target > cap) w.target = cap;
    this.releaseWaiters();
  }

  /** Called after every committed batch. */
  onCommit(fn: ((info: CommitInfo) => void) | null): void {
    this.onCommitFn = fn;
  }

  get counters(): WriterCounters {
    this.c.pending = this.pending.size;
    this.c.queryRowsPending = this.qRows;
    return { ...this.c };
  }

  /** Records waiting for a batch (cheaper than counters.pending). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Written rows the writer still remembers (active connections and rows in flight). */
  get liveSize(): number {
    return this.live.size;
  }

  /** Commits what is pending, waits for queued maintenance, and stops. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => undefined);
    const giveUp = Date.now() + CLOSE_TIMEOUT_MS;
    while ((this.inflight.length > 0 || this.maint.length > 0 || this.broken) && Date.now() < giveUp) await delay(5);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.due = true;
    this.pump();
  };

  private readonly onImmediate = (): void => {
    this.immediate = null;
    this.pump();
  };

  /** Issues whatever may be issued now. */
  private pump(): void {
    if (this.closed || this.broken) return;
    const now = Date.now();
    if (now < this.backoffUntil) {
      if (this.timer === null) this.timer = setTimeout(this.onTimer, this.backoffUntil - now);
      return;
    }
    for (;;) {
      if (this.inflight.length > 0 && this.inflight[0]!.kind === "maint") return;
      const waiting = this.pending.size > 0 || this.qblocks.length > 0;
      const ingestReady =
        this.pending.size >= this.batchRecords || this.qBytes >= QUERY_BATCH_BYTES || (this.due && waiting);
      const maintTurn = this.maint.length > 0 && (!ingestReady || this.ingestSinceMaint >= INGEST_PER_MAINT);
      if (maintTurn) {
        if (this.inflight.length > 0) return; // drains first; resumes when the last batch resolves
        this.ingestSinceMaint = 0;
        if (this.issueMaint(this.maint.shift()!)) return;
        continue; // the job failed before writing anything: go on
      }
      if (!ingestReady || this.inflight.length >= MAX_INFLIGHT) break;
      this.issueIngest();
      this.ingestSinceMaint++;
    }
    if (this.pending.size === 0 && this.qblocks.length === 0) this.due = false;
    else if (this.timer === null && !this.due) this.timer = setTimeout(this.onTimer, this.batchMs);
  }

  /** The committed contribution of a row this writer does not remember (written before, or by an earlier run). */
  private lookupCommitted(id: string): Contribution | undefined {
    const started = this.dbs.byId.get(id);
    if (started === undefined) return undefined;
    const old = this.dbs.conn.get([started, id]);
    if (old === undefined) return undefined;
    try {
      return contributionOf(decodeRow(old));
    } catch {
      // An undecodable row (a format this build does not know): overwrite it as if new, but keep
      // its index entries keyed right by taking started from byId.
      this.c.errors++;
      return { started, device: "", domain: "", blocked: false, sent: 0, recv: 0 };
    }
  }

  private takeBatch(): ConnRecord[] {
    const n = Math.min(this.pending.size, this.batchRecords);
    const recs: ConnRecord[] = new Array(n);
    let i = 0;
    if (n === this.pending.size) {
      // Taking everything: swap the Map instead of deleting entry by entry.
      for (const rec of this.pending.values()) recs[i++] = rec;
      this.pending = new Map();
    } else {
      for (const [id, rec] of this.pending) {
        recs[i++] = rec;
        this.pending.delete(id);
        if (i === n) break;
      }
    }
    this.taken += n;
    return recs;
  }

  /** Query-log blocks for the next batch: from the front, up to QUERY_BATCH_BYTES (at least one). */
  private takeQueryBlocks(): QueryBlock[] {
    const q = this.qblocks;
    if (q.length === 0) return q;
    let i = 0;
    let bytes = 0;
    while (i < q.length && (i === 0 || bytes + q[i]!.value.length <= QUERY_BATCH_BYTES)) bytes += q[i++]!.value.length;
    const out = i === q.length ? q : q.slice(0, i);
    this.qblocks = i === q.length ? [] : q.slice(i);
    let rows = 0;
    for (const b of out) rows += qlogRowsOf(b.key);
    this.qBytes -= bytes;
    this.qRows -= rows;
    this.taken += out.length;
    return out;
  }

  private issueIngest(): void {
    const { dbs, live, seen } = this;
    const taken = this.takeBatch();
    const qb = this.takeQueryBlocks();
    const seq = ++this.issuedSeq;
    for (const b of qb) {
      this.qlogRows += qlogRowsOf(b.key);
      if (b.key[QK_LAST_ID] > this.qlogMaxId) this.qlogMaxId = b.key[QK_LAST_ID];
    }
    const qlogRows = this.qlogRows;
    const qlogMaxId = this.qlogMaxId;

    // Step 1: everything that reads or may throw.
    const recs: ConnRecord[] = [];
    const vals: Buffer[] = [];
    const curs: LiveEntry[] = [];
    const prevs: (Contribution | undefined)[] = [];
    const ended: string[] = [];
    const delta = new RollupDelta();
    for (const rec of taken) {
      let val: Buffer;
      if (!isValid(rec)) {
        this.c.invalid++;
        continue;
      }
      try {
        val = encodeRow(rec);
      } catch {
        this.c.invalid++;
        continue;
      }
      const id = rec.id;
      const cur = liveEntryOf(rec, seq);
      let prev: Contribution | undefined = live.get(id);
      if (prev === undefined && seen.mayExist(id, cur.started)) prev = this.lookupCommitted(id);
      if (prev === undefined) delta.add(cur, 1);
      else delta.change(prev, cur);
      live.set(id, cur);
      if (rec.ended !== null || !rec.active) {
        ended.push(id);
        seen.add(id, cur.started);
      } else seen.wrote(cur.started);
      recs.push(rec);
      vals.push(val);
      curs.push(cur);
      prevs.push(prev);
    }
    const rollWrites = delta.prepare(this.rollups, seq);
    this.done += taken.length - recs.length; // refused records count as handled for flush()

    // Step 2: writes only. Keys are encoded when put/remove is called, so one scratch array per key
    // shape serves every row.
    const ck = SCRATCH_CONN_KEY;
    const dk = SCRATCH_DEV_KEY;
    const n = recs.length;
    const promise = dbs.meta.ifVersion(SEQ_KEY, seq - 1, () => {
      for (let j = 0; j < n; j++) {
        const cur = curs[j]!;
        const prev = prevs[j];
        const id = recs[j]!.id;
        ck[0] = cur.started;
        ck[1] = id;
        void dbs.conn.put(ck, vals[j]!);
        if (prev === undefined) {
          void dbs.byId.put(id, cur.started);
          dk[0] = cur.device;
          dk[1] = cur.started;
          dk[2] = id;
          void dbs.dev.put(dk, EMPTY);
          if (cur.blocked) void dbs.blk.put(ck, EMPTY);
          continue;
        }
        const moved = prev.started !== cur.started;
        if (moved) {
          void dbs.conn.remove([prev.started, id]);
          void dbs.byId.put(id, cur.started);
        }
        if (moved || prev.device !== cur.device) {
          void dbs.dev.remove([prev.device, prev.started, id]);
          void dbs.dev.put([cur.device, cur.started, id], EMPTY);
        }
        if (prev.blocked && (moved || !cur.blocked)) void dbs.blk.remove([prev.started, id]);
        if (cur.blocked && (moved || !prev.blocked)) void dbs.blk.put(ck, EMPTY);
      }
      writeRollups(dbs, rollWrites);
      if (qb.length > 0) {
        for (const b of qb) void dbs.dnslog.put(b.key, b.value);
        void dbs.meta.put(QLOG_ROWS_KEY, qlogRows);
        void dbs.meta.put(QLOG_MAX_ID_KEY, qlogMaxId);
      }
      void dbs.meta.put(SEQ_KEY, seq, seq);
    });
    this.track(
      {
        seq,
        kind: "ingest",
        recs,
        vals,
        ended,
        qblocks: qb.length > 0 ? qb : null,
        clearAll: false,
        issuedAt: performance.now(),
        settled: false,
        ok: false,
      },
      promise,
    );
  }

  /** Issues a maintenance batch; false when its job failed before anything was written. */
  private issueMaint(q: QueuedMaint): boolean {
    const { dbs } = this;
    let plan: MaintPlan;
    let rollWrites: RollupWrite[] = [];
    const seq = this.issuedSeq + 1;
    try {
      plan = q.job(dbs);
      if (!plan.clearAll) {
        const delta = new RollupDelta();
        for (const r of plan.remove) delta.add(r.c, -1);
        rollWrites = delta.prepare(this.rollups, seq);
      }
    } catch (e) {
      this.c.errors++;
      q.reject(e);
      return false;
    }
    this.issuedSeq = seq;
    const touchesQueryLog = plan.clearQueryLog === true || (plan.queryBlocks?.length ?? 0) > 0;
    if (plan.clearQueryLog) this.qlogRows = 0;
    else if (touchesQueryLog) this.qlogRows = Math.max(0, this.qlogRows - (plan.queryRows ?? 0));
    const qlogRows = this.qlogRows;
    if (plan.clearAll) {
      this.live.clear();
      this.seen.forgetAll();
      this.rollups.freeze();
    } else {
      for (const r of plan.remove) this.live.delete(r.id);
    }
    const promise = dbs.meta.ifVersion(SEQ_KEY, seq - 1, () => {
      if (plan.clearAll) {
        void dbs.conn.clearAsync();
        void dbs.byId.clearAsync();
        void dbs.dev.clearAsync();
        void dbs.blk.clearAsync();
        void dbs.roll.clearAsync();
      } else {
        const ck = SCRATCH_CONN_KEY;
        const dk = SCRATCH_DEV_KEY;
        for (const { id, c } of plan.remove) {
          ck[0] = c.started;
          ck[1] = id;
          void dbs.conn.remove(ck);
          void dbs.byId.remove(id);
          dk[0] = c.device;
          dk[1] = c.started;
          dk[2] = id;
          void dbs.dev.remove(dk);
          if (c.blocked) void dbs.blk.remove(ck);
        }
        writeRollups(dbs, rollWrites);
      }
      if (plan.clearQueryLog) void dbs.dnslog.clearAsync();
      else if (plan.queryBlocks) for (const k of plan.queryBlocks) void dbs.dnslog.remove(k);
      if (touchesQueryLog) void dbs.meta.put(QLOG_ROWS_KEY, qlogRows);
      void dbs.meta.put(SEQ_KEY, seq, seq);
    });
    const f: Inflight = {
      seq,
      kind: "maint",
      recs: null,
      vals: null,
      ended: null,
      qblocks: null,
      clearAll: plan.clearAll === true,
      issuedAt: performance.now(),
      settled: false,
      ok: false,
    };
    this.track(f, promise, (ok, err) => {
      if (ok) q.resolve(plan);
      else q.reject(err ?? new Error("history maintenance batch was not committed"));
    });
    return true;
  }

  private track(f: Inflight, promise: Promise<boolean>, after?: (ok: boolean, err?: unknown) => void): void {
    this.inflight.push(f);
    promise.then(
      (ok) => this.settle(f, ok, ok ? undefined : new Error("history batch skipped: the batch before it was not committed"), after),
      (err: unknown) => this.settle(f, false, err, after),
    );
  }

  private settle(f: Inflight, ok: boolean, err: unknown, after?: (ok: boolean, err?: unknown) => void): void {
    f.settled = true;
    f.ok = ok;
    if (!ok) {
      this.c.errors++;
      this.broken = true;
    }
    if (f.clearAll) this.rollups.thaw();
    // Batches resolve in order; handle the settled prefix. A batch that committed before a failure
    // is durable; the failed ones (and every batch chained on them, which did nothing) are
    // re-queued once all have settled.
    while (this.inflight.length > 0 && this.inflight[0]!.settled) {
      const g = this.inflight.shift()!;
      if (g.ok) this.committedBatch(g);
      else this.failed.push(g);
    }
    after?.(ok, err);
    if (this.broken && this.inflight.length === 0) this.recover(err);
    else if (!this.broken) this.pump();
  }

  private committedBatch(g: Inflight): void {
    const ms = performance.now() - g.issuedAt;
    this.resolvedSeq = g.seq;
    this.c.commits++;
    this.c.lastCommitMs = ms;
    g.vals = null;
    if (g.qblocks !== null) {
      this.c.queryBlocks += g.qblocks.length;
      for (const b of g.qblocks) this.c.queryRows += qlogRowsOf(b.key);
      this.done += g.qblocks.length;
      g.qblocks = null;
    }
    let records = 0;
    if (g.recs !== null) {
      records = g.recs.length;
      this.c.committed += records;
      this.done += records;
      // Ended rows were remembered only so batches in flight could see them; the snapshot has them now.
      for (const id of g.ended!) {
        const e = this.live.get(id);
        if (e !== undefined && e.seq === g.seq) this.live.delete(id);
      }
    }
    this.rollups.sweep(this.resolvedSeq);
    this.releaseWaiters();
    this.onCommitFn?.({ seq: g.seq, records, ms });
  }

  private releaseWaiters(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      if (this.done >= w.target) {
        this.waiters.splice(i, 1);
        w.resolve();
      } else i++;
    }
  }

  /** Everything in flight has settled and something failed: forget memory, re-queue lost records. */
  private recover(err: unknown): void {
    const merged = new Map<string, ConnRecord>();
    const qb: QueryBlock[] = [];
    for (const f of this.failed) {
      if (f.qblocks !== null) for (const b of f.qblocks) qb.push(b);
      if (f.recs === null) continue;
      for (const rec of f.recs) if (!this.pending.has(rec.id)) merged.set(rec.id, rec);
    }
    this.failed = [];
    for (const [id, rec] of this.pending) merged.set(id, rec);
    this.pending = merged;
    // Lost query blocks go back in front of the waiting ones, keeping id order.
    for (const b of this.qblocks) qb.push(b);
    this.qblocks = qb;
    this.qBytes = 0;
    this.qRows = 0;
    for (const b of qb) {
      this.qBytes += b.value.length;
      this.qRows += qlogRowsOf(b.key);
    }
    this.qlogRows = queryLogRows(this.dbs);
    this.qlogMaxId = lastQueryLogId(this.dbs);
    this.taken = this.done;
    // Memory may hold effects of batches that never reached the disk: start again from the disk.
    this.live.clear();
    this.seen.forgetAll();
    this.rollups.reset();
    this.issuedSeq = this.resolvedSeq;
    const e = err instanceof Error ? err : new Error(String(err));
    for (const w of this.waiters.splice(0)) w.reject(e);
    this.broken = false;
    this.backoffUntil = Date.now() + RETRY_BACKOFF_MS;
    this.due = true;
    this.pump();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
