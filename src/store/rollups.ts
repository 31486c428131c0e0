// Hourly rollups (per domain, per device) and per-minute totals, maintained at ingest so "top 10
// domains over 24 h" reads ~24 small units instead of millions of rows.
//
// A unit is one hour of one kind: every name seen that hour with its sums. Units of the recent
// window are cached in memory because dashboards ask about the last day over and over, and because
// the writer needs every touched sum to write absolute values without reading its own uncommitted
// batch back. Names get dense integer ids (NameDict) and a unit keeps its sums in typed arrays, so
// summing 24 hours of ~10k names each is a tight loop over numbers, not 240k string hash lookups.
//
// Cache coherence rests on one invariant, kept by the writer: a unit touched by a batch still in
// flight is in the cache (pinned until that batch resolves). So a unit that is *not* cached has no
// uncommitted changes and loading it from the current read snapshot gives its true value; the
// cache is never older than the disk. After a failed commit the writer drops the whole cache (it
// may hold sums that never reached the disk).

import {
  AGG_BLOCKED,
  AGG_COUNT,
  AGG_RECV,
  AGG_SENT,
  HOUR_MS,
  MINUTE_MS,
  ROLL_DEVICE,
  ROLL_DOMAIN,
  ROLL_TOTAL,
  hourOf,
  minuteOf,
  type Agg,
  type Contribution,
  type HistoryDbs,
  type RollKey,
  type RollKind,
  type RollValue,
} from "./schema.js";

/** Units older than the window may stay cached up to this many (oldest dropped first). */
const EXTRA_UNITS = 96;
/** The name dictionary is rebuilt from scratch when it grows past this (names of long-gone hours). */
const DICT_MAX_NAMES = 2_000_000;
/** Above this many names containing a search text, every hour is assumed to contain one. */
const MATCH_SET_MAX = 256;
const INITIAL_SLOTS = 64;
/** Minutes per mask word (two words cover an hour, each under 2^30 so msgpack keeps them small ints). */
const MASK_MINUTES = 30;

type Name = string | number;

/** Dense ids for rollup names, shared by all units. */
class NameDict {
  private readonly ids = new Map<Name, number>();
  readonly names: Name[] = [];

  id(name: Name): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }

  get size(): number {
    return this.names.length;
  }

  clear(): void {
    this.ids.clear();
    this.names.length = 0;
  }
}

/**
 * One hour of one kind: name id -> slot, four sums per slot (a slot whose count is 0 is empty) and,
 * for domains, which minutes of the hour had a row with that name: two 30-bit masks (minutes 0-29,
 * 30-59). The masks only ever gain bits (deleting a row does not clear its minute), so they are a
 * superset, which is all search needs to skip the minutes that cannot match.
 */
export class Unit {
  private readonly slotOf = new Map<number, number>();
  ids = new Int32Array(INITIAL_SLOTS);
  agg = new Float64Array(INITIAL_SLOTS * 4);
  masks = new Int32Array(INITIAL_SLOTS * 2);
  n = 0;
  /** Highest batch seq that changed this unit; it may not be dropped before that batch resolves. */
  pinSeq = 0;

  constructor(
    readonly kind: RollKind,
    readonly hour: number,
  ) {}

  slot(id: number): number {
    const s = this.slotOf.get(id);
    if (s !== undefined) return s;
    if (this.n === this.ids.length) {
      const ids = new Int32Array(this.n * 2);
      ids.set(this.ids);
      const agg = new Float64Array(this.n * 8);
      agg.set(this.agg);
      const masks = new Int32Array(this.n * 4);
      masks.set(this.masks);
      this.ids = ids;
      this.agg = agg;
      this.masks = masks;
    }
    const slot = this.n++;
    this.ids[slot] = id;
    this.slotOf.set(id, slot);
    return slot;
  }

  /** Slot of a name, or -1. */
  find(id: number): number {
    return this.slotOf.get(id) ?? -1;
  }
}

/** Minute of the hour, 0-59. */
export function minuteIndex(started: number): number {
  return Math.floor((started - hourOf(started)) / MINUTE_MS);
}

/** Is minute m set in the pair of masks (minutes 0-29 in lo, 30-59 in hi)? */
export function minuteSet(lo: number, hi: number, m: number): boolean {
  return m < MASK_MINUTES ? (lo & (1 << m)) !== 0 : (hi & (1 << (m - MASK_MINUTES))) !== 0;
}

/** Sets minute m in a [lo, hi] pair stored at masks[at], masks[at + 1]. */
export function setMinute(masks: { [i: number]: number }, at: number, m: number): void {
  if (m < MASK_MINUTES) masks[at] |= 1 << m;
  else masks[at + 1] |= 1 << (m - MASK_MINUTES);
}

function unitKey(kind: RollKind, hour: number): string {
  return kind + hour;
}

export class RollupCache {
  private readonly units = new Map<string, Unit>();
  readonly dict = new NameDict();
  /** Newest hour any write touched; with the clock it anchors the cached window. */
  private newestHour = 0;
  private frozen = 0;
  /** Scratch accumulators for merges, indexed by name id * 4. */
  private acc = new Float64Array(0);

  constructor(
    private readonly dbs: HistoryDbs,
    private readonly windowHours: number,
  ) {}

  get size(): number {
    return this.units.size;
  }

  private windowStart(): number {
    const newest = Math.max(this.newestHour, hourOf(Date.now()));
    return newest - this.windowHours * HOUR_MS;
  }

  private load(kind: RollKind, hour: number): Unit {
    const u = new Unit(kind, hour);
    for (const { key, value } of this.dbs.roll.getRange({ start: [kind, hour], end: [kind, hour + 1] })) {
      const s = u.slot(this.dict.id((key as RollKey)[2]));
      u.agg.set(value.length > 4 ? value.slice(0, 4) : value, s * 4);
      if (value.length >= 6) {
        u.masks[s * 2] = value[4]!;
        u.masks[s * 2 + 1] = value[5]!;
      }
    }
    return u;
  }

  /** A unit for the writer: cached (loaded if needed) and pinned until batch `seq` resolves. */
  unitForWrite(kind: RollKind, hour: number, seq: number): Unit {
    const k = unitKey(kind, hour);
    let u = this.units.get(k);
    if (u === undefined) {
      u = this.load(kind, hour);
      this.units.set(k, u);
    }
    u.pinSeq = seq;
    if (hour > this.newestHour) this.newestHour = hour;
    return u;
  }

  /** A unit for a query: from the cache, else from disk (and cached when inside the window). */
  unitForRead(kind: RollKind, hour: number): Unit {
    const k = unitKey(kind, hour);
    const u = this.units.get(k);
    if (u !== undefined) return u;
    const loaded = this.load(kind, hour);
    if (hour >= this.windowStart() && this.frozen === 0) this.units.set(k, loaded);
    return loaded;
  }

  /**
   * While a batch that empties the whole roll table is in flight, the disk snapshot is about to
   * become wrong for every unit: empty the cache and cache nothing loaded until `thaw`.
   */
  freeze(): void {
    this.units.clear();
    this.frozen++;
  }

  thaw(): void {
    this.units.clear();
    this.frozen--;
  }

  /** Drops units outside the window whose last writing batch has resolved. */
  sweep(resolvedSeq: number): void {
    const start = this.windowStart();
    const old: Unit[] = [];
    let pinned = false;
    for (const u of this.units.values()) {
      if (u.hour < start) old.push(u);
      if (u.pinSeq > resolvedSeq) pinned = true;
    }
    if (this.dict.size > DICT_MAX_NAMES && !pinned) {
      this.reset();
      return;
    }
    if (old.length <= EXTRA_UNITS) return;
    old.sort((a, b) => a.hour - b.hour);
    let extra = old.length;
    for (const u of old) {
      if (extra <= EXTRA_UNITS) break;
      if (u.pinSeq > resolvedSeq) continue;
      this.units.delete(unitKey(u.kind, u.hour));
      extra--;
    }
  }

  /** Forgets everything (after a failed commit, or a clear). */
  reset(): void {
    this.units.clear();
    this.dict.clear();
  }

  /** Sums a kind over the hour units overlapping [from, to); the n largest by connections. */
  top(kind: RollKind, from: number, to: number, n: number, skipEmpty: boolean): RankedName[] {
    const units: Unit[] = [];
    for (let h = hourOf(from); h < to; h += HOUR_MS) units.push(this.unitForRead(kind, h));
    // Loading may have added names: size the accumulators after.
    const need = this.dict.size * 4;
    if (this.acc.length < need) this.acc = new Float64Array(Math.max(need, this.acc.length * 2));
    const acc = this.acc;
    const touched: number[] = [];
    for (const u of units) {
      const { ids, agg } = u;
      for (let i = 0; i < u.n; i++) {
        const c = agg[i * 4]!;
        if (c === 0) continue;
        const b = ids[i]! * 4;
        if (acc[b] === 0) touched.push(ids[i]!);
        acc[b] += c;
        acc[b + 1] += agg[i * 4 + 1]!;
        acc[b + 2] += agg[i * 4 + 2]!;
        acc[b + 3] += agg[i * 4 + 3]!;
      }
    }
    // Keep the n best in a small sorted array (count desc, then name asc).
    const names = this.dict.names;
    const best: number[] = [];
    const better = (a: number, b: number): boolean => {
      const d = acc[a * 4]! - acc[b * 4]!;
      return d > 0 || (d === 0 && String(names[a]) < String(names[b]));
    };
    if (n > 0) {
      for (const id of touched) {
        if (skipEmpty && names[id] === "") continue;
        if (best.length === n && !better(id, best[n - 1]!)) continue;
        let i = best.length < n ? best.length : n - 1;
        best[i] = id;
        while (i > 0 && better(id, best[i - 1]!)) {
          best[i] = best[i - 1]!;
          best[i - 1] = id;
          i--;
        }
      }
    }
    const out = best.map((id) => ({
      name: String(names[id]),
      connections: acc[id * 4 + AGG_COUNT]!,
      blocked: acc[id * 4 + AGG_BLOCKED]!,
      bytes_sent: acc[id * 4 + AGG_SENT]!,
      bytes_received: acc[id * 4 + AGG_RECV]!,
    }));
    for (const id of touched) acc.fill(0, id * 4, id * 4 + 4);
    return out;
  }

  /** Calls fn(minute start, sums) for every minute total in the hour. */
  forEachMinute(hour: number, fn: (minute: number, a: Agg) => void): void {
    const u = this.unitForRead(ROLL_TOTAL, hour);
    const names = this.dict.names;
    for (let i = 0; i < u.n; i++) {
      const b = i * 4;
      if (u.agg[b] === 0) continue;
      fn(names[u.ids[i]!] as number, [u.agg[b]!, u.agg[b + 1]!, u.agg[b + 2]!, u.agg[b + 3]!]);
    }
  }

  /**
   * For one search text: which minutes of an hour may hold a row whose domain contains q, as two
   * 30-bit masks ([0, 0]: none, skip the hour). Each name is tested against q once per search.
   */
  domainMinutes(q: string): (hour: number) => [number, number] {
    const names = this.dict.names;
    const matches = new Set<number>();
    let checked = 0;
    return (hour) => {
      const u = this.unitForRead(ROLL_DOMAIN, hour);
      for (; checked < names.length; checked++) {
        const name = names[checked];
        if (typeof name === "string" && name.includes(q)) matches.add(checked);
      }
      if (matches.size > MATCH_SET_MAX) return [ALL_MINUTES, ALL_MINUTES];
      let lo = 0;
      let hi = 0;
      for (const id of matches) {
        const s = u.find(id);
        if (s < 0 || u.agg[s * 4]! === 0) continue;
        lo |= u.masks[s * 2]!;
        hi |= u.masks[s * 2 + 1]!;
      }
      return [lo, hi];
    };
  }
}

/** Every minute of a mask word. */
export const ALL_MINUTES = (1 << MASK_MINUTES) - 1;

/** Per-batch sums of contribution changes, applied to the cache and the roll table once per name. */
export class RollupDelta {
  private readonly perKind = new Map<RollKind, Map<number, Map<Name, DeltaAgg>>>([
    [ROLL_DOMAIN, new Map()],
    [ROLL_DEVICE, new Map()],
    [ROLL_TOTAL, new Map()],
  ]);
  /** Rows of a batch mostly share an hour: remember the last hour's name maps. */
  private lastHour = NaN;
  private lastD: Map<Name, DeltaAgg> | null = null;
  private lastV: Map<Name, DeltaAgg> | null = null;
  private lastT: Map<Name, DeltaAgg> | null = null;

  private namesOf(kind: RollKind, hour: number): Map<Name, DeltaAgg> {
    const hours = this.perKind.get(kind)!;
    let names = hours.get(hour);
    if (names === undefined) {
      names = new Map();
      hours.set(hour, names);
    }
    return names;
  }

  private bump(names: Map<Name, DeltaAgg>, name: Name, count: number, blocked: number, sent: number, recv: number): DeltaAgg {
    let a = names.get(name);
    if (a === undefined) {
      a = [count, blocked, sent, recv, 0, 0];
      names.set(name, a);
    } else {
      a[AGG_COUNT] += count;
      a[AGG_BLOCKED] += blocked;
      a[AGG_SENT] += sent;
      a[AGG_RECV] += recv;
    }
    return a;
  }

  private bumpAll(c: Contribution, count: number, blocked: number, sent: number, recv: number): void {
    const hour = hourOf(c.started);
    if (hour !== this.lastHour) {
      this.lastHour = hour;
      this.lastD = this.namesOf(ROLL_DOMAIN, hour);
      this.lastV = this.namesOf(ROLL_DEVICE, hour);
      this.lastT = this.namesOf(ROLL_TOTAL, hour);
    }
    const d = this.bump(this.lastD!, c.domain, count, blocked, sent, recv);
    if (count > 0) setMinute(d, MASK_LO, minuteIndex(c.started));
    this.bump(this.lastV!, c.device, count, blocked, sent, recv);
    this.bump(this.lastT!, minuteOf(c.started), count, blocked, sent, recv);
  }

  /** sign +1 adds the row's contribution, -1 takes it away. */
  add(c: Contribution, sign: 1 | -1): void {
    this.bumpAll(c, sign, c.blocked ? sign : 0, sign * c.sent, sign * c.recv);
  }

  /** Replaces a row's contribution by another (one bump when only the counters moved). */
  change(prev: Contribution, cur: Contribution): void {
    if (prev.started === cur.started && prev.domain === cur.domain && prev.device === cur.device) {
      const blocked = (cur.blocked ? 1 : 0) - (prev.blocked ? 1 : 0);
      const sent = cur.sent - prev.sent;
      const recv = cur.recv - prev.recv;
      if (blocked !== 0 || sent !== 0 || recv !== 0) this.bumpAll(cur, 0, blocked, sent, recv);
      return;
    }
    this.add(prev, -1);
    this.add(cur, 1);
  }

  /**
   * Folds the sums into the cached units (loading those not cached, pinning them to batch `seq`)
   * and returns the writes that make the roll table match: absolute values, or null to delete.
   * Reads only; call before the batch, then hand the result to writeRollups inside it.
   */
  prepare(cache: RollupCache, seq: number): RollupWrite[] {
    const writes: RollupWrite[] = [];
    for (const [kind, hours] of this.perKind) {
      for (const [hour, names] of hours) {
        let unit: Unit | undefined;
        for (const [name, d] of names) {
          if (d[0] === 0 && d[1] === 0 && d[2] === 0 && d[3] === 0 && d[4] === 0 && d[5] === 0) continue;
          unit ??= cache.unitForWrite(kind, hour, seq);
          const slot = unit.slot(cache.dict.id(name));
          const b = slot * 4;
          const agg = unit.agg;
          const masks = unit.masks;
          const existed = agg[b]! > 0;
          agg[b] += d[0];
          agg[b + 1] += d[1];
          agg[b + 2] += d[2];
          agg[b + 3] += d[3];
          masks[slot * 2] |= d[MASK_LO];
          masks[slot * 2 + 1] |= d[MASK_HI];
          const key: RollKey = [kind, hour, name];
          if (agg[b]! <= 0) {
            agg.fill(0, b, b + 4);
            masks.fill(0, slot * 2, slot * 2 + 2);
            if (existed) writes.push({ key, value: null });
          } else if (kind === ROLL_DOMAIN) {
            writes.push({ key, value: [agg[b]!, agg[b + 1]!, agg[b + 2]!, agg[b + 3]!, masks[slot * 2]!, masks[slot * 2 + 1]!] });
          } else {
            writes.push({ key, value: [agg[b]!, agg[b + 1]!, agg[b + 2]!, agg[b + 3]!] });
          }
        }
      }
    }
    return writes;
  }
}

/** A delta: the four sums, and minute bits to OR into the domain masks. */
type DeltaAgg = [number, number, number, number, number, number];
const MASK_LO = 4;
const MASK_HI = 5;

export interface RollupWrite {
  key: RollKey;
  /** null: the name has no rows left in that bucket. */
  value: RollValue | null;
}

export function writeRollups(dbs: HistoryDbs, writes: RollupWrite[]): void {
  for (const w of writes) {
    if (w.value === null) void dbs.roll.remove(w.key);
    else void dbs.roll.put(w.key, w.value);
  }
}

export interface RankedName {
  name: string;
  connections: number;
  blocked: number;
  bytes_sent: number;
  bytes_received: number;
}
