// Deleting history without stalling ingest: every deletion is a maintenance job of at most `batch`
// rows (one short transaction), run by the writer between ingest batches, and callers yield between
// jobs. Each deleted row takes its index entries and its rollup contribution with it in the same
// transaction, so a crash between jobs leaves a smaller but consistent store.
//
// Rows are found oldest first through the main table, which is ordered by time, so age and count
// limits never search: the rows to go are always at the front.

import { compareKeys } from "lmdb";
import type { ConnRecord } from "../flow/types.js";
import { decodeRow } from "./codec.js";
import { contributionOf, scanRows, type ConnKey, type HistoryDbs } from "./schema.js";
import type { MaintPlan, Removal } from "./writer.js";

/** The lowest possible main-table key (below every [started, id]). */
export const KEY_MIN: ConnKey = [-Infinity, ""];

export interface PruneSpec {
  /** Rows that started before this go (ms; -Infinity: none by age). */
  cutoff: number;
  /** Besides those, this many of the oldest rows go (count or size excess). */
  excess: number;
  /** At most this many rows per job. */
  batch: number;
}

/** One job's worth of pruning from the front of the main table. */
export function pruneJob(spec: PruneSpec): (dbs: HistoryDbs) => MaintPlan {
  return (dbs) => {
    const remove: Removal[] = [];
    for (const { key, value } of dbs.conn.getRange({ start: KEY_MIN })) {
      const [started, id] = key;
      if (remove.length >= spec.batch || (started >= spec.cutoff && remove.length >= spec.excess)) break;
      remove.push({ id, c: contributionOf(decodeRow(value)) });
    }
    return { remove, records: remove.length };
  };
}

export interface ClearCursor {
  /** Resume after this key (exclusive); null before the first job. */
  after: ConnKey | null;
  done: boolean;
}

/** How many rows one clear job may look at (rows of other profiles are skipped without decoding). */
export const CLEAR_SCAN_ROWS = 20_000;

/**
 * One job of "delete the rows of these profiles": looks at up to CLEAR_SCAN_ROWS rows after the
 * cursor and deletes at most `batch`. A row is decoded only if a profile id appears in its raw
 * bytes (they are plain UTF-8 in the encoding).
 */
export function clearProfilesJob(profiles: Set<string>, cursor: ClearCursor, batch: number): (dbs: HistoryDbs) => MaintPlan {
  const needles = [...profiles].map((p) => Buffer.from(p, "utf8"));
  const test = (row: Buffer): ConnRecord | null => {
    for (const nd of needles) {
      if (row.indexOf(nd) !== -1) {
        const rec = decodeRow(row);
        return profiles.has(rec.profile) ? rec : null;
      }
    }
    return null;
  };
  return (dbs) => {
    const remove: Removal[] = [];
    let scanned = 0;
    let last: ConnKey | null = null;
    let reachedEnd = true;
    const after = cursor.after;
    for (const { key, value } of scanRows(dbs, test, after ? after[0] : -Infinity, Infinity, false)) {
      if (after !== null && key[0] === after[0] && compareKeys(key, after) <= 0) continue;
      if (remove.length >= batch || scanned >= CLEAR_SCAN_ROWS) {
        reachedEnd = false;
        break;
      }
      scanned++;
      last = key;
      if (value !== null) remove.push({ id: value.id, c: contributionOf(value) });
    }
    // If this plan fails to commit, clear() fails as a whole, so moving the cursor now is safe.
    if (last !== null) cursor.after = [last[0], last[1]];
    cursor.done = reachedEnd;
    return { remove, records: remove.length };
  };
}

/** Empties every table in one transaction (clear with no profile list). */
export function clearAllJob(dbs: HistoryDbs): MaintPlan {
  return { remove: [], clearAll: true, records: (dbs.conn.getStats() as { entryCount: number }).entryCount };
}
