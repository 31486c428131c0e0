// The netquery engine: runs a parsed query over row sources, the way Portmaster's SQL
// (`SELECT <select> FROM (SELECT * FROM main.connections WHERE .. UNION SELECT * FROM
// history.connections WHERE ..) GROUP BY .. ORDER BY .. LIMIT .. OFFSET ..`) would, without SQL.
//
// The WHERE clause (with the text search) is compiled once per query into one JavaScript
// function over a ConnRecord: column names come from a fixed whitelist and every value is a
// constant passed in an array, so nothing from the request is ever turned into code. Sources
// are plain iterables (a Map of live connections, a store's range iterator); each is told the
// `started` range the query can match so a store can range-scan, and given the predicate.
//
// Values follow SQLite: comparisons with NULL are false, NULLs sort first ascending (last
// descending), numbers before text; time columns compare and group in whole seconds (Portmaster
// stores "YYYY-MM-DD HH:MM:SS"); booleans are 0/1. Unordered results come in scan order (main,
// then history). When both databases are queried a connection found in both is reported once,
// from main (its newer state), where SQL's UNION would keep both rows once they differ.

import type { ConnRecord } from "../flow/types.js";
import {
  ALL_COLUMNS,
  COLUMNS,
  COMPAT_COLUMNS,
  isAggregate,
  likeRegExp,
  type ColumnKind,
  type DatabaseName,
  type Matcher,
  type NetQuery,
  type SelectItem,
  type TextSearch,
  type Value,
  type Where,
} from "./query.js";

export type Predicate = (r: ConnRecord) => boolean;

/** What a source is told about the rows the query can match; it may ignore all of it. */
export interface RowHint {
  /** Earliest `started` a matching row can have (ms since the epoch, inclusive). */
  from?: number;
  /** `started` of every matching row is below this (ms, exclusive): the range is [from, to). */
  to?: number;
  /**
   * The compiled WHERE clause. A source may use it to skip rows early; the engine applies it to
   * every row it gets regardless, so a source that ignores it is still correct.
   */
  filter?: Predicate;
  /**
   * Set only for sources that declare `ordered`: yield rows by `started`, oldest first ("asc")
   * or newest first ("desc"). The engine then stops reading once the page is certain.
   */
  order?: "asc" | "desc";
}

/** A per-interval traffic sample (Portmaster's main.bandwidth row): bytes in the interval ending at `time`. */
export interface BandwidthSample {
  /** The connection's id. */
  id: string;
  /** ms since the epoch. */
  time: number;
  incoming: number;
  outgoing: number;
}

export interface RowSource {
  name: DatabaseName;
  /**
   * Whether rows() honors `hint.order`. A store keyed by start time should: a query ordered by
   * `started` (the usual "latest connections" page) then reads one page of rows, not the store.
   */
  readonly ordered?: boolean;
  rows(hint: RowHint): Iterable<ConnRecord> | AsyncIterable<ConnRecord>;
  /** Traffic samples, if the source keeps them; the bandwidth chart uses them instead of spreading totals. */
  bandwidth?(hint: RowHint): Iterable<BandwidthSample> | AsyncIterable<BandwidthSample>;
}

export interface Sources {
  main: RowSource;
  history: RowSource | null;
}

/** A result row: column names or aliases to rendered values. */
export type Row = Record<string, unknown>;

// --- values --------------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A column of a record, with the compatibility columns' defaults; undefined reads as null. */
export function columnValue(r: ConnRecord, column: string): unknown {
  const v = (r as unknown as Record<string, unknown>)[column];
  if (v !== undefined) return v;
  const compat = COMPAT_COLUMNS[column];
  return compat ? compat.value : null;
}

/** A raw column value in the engine's comparison form: time → unix seconds, bool → 0/1, undefined → null. */
export function normalize(kind: ColumnKind, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (kind === "time") return Math.floor((v as number) / 1000);
  if (kind === "bool") return v === true || v === 1 ? 1 : 0;
  return v;
}

/** RFC 3339 in UTC with whole seconds, as Portmaster renders times: "2024-05-01T10:20:30Z". */
export function rfc3339(seconds: number): string {
  const iso = new Date(seconds * 1000).toISOString();
  return iso.slice(0, 19) + "Z";
}

/** A normalized value as netquery returns it. */
export function render(kind: ColumnKind, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (kind) {
    case "time":
      return rfc3339(v as number);
    case "bool":
      return v === 1 || v === true;
    case "json":
      if (typeof v !== "string") return v;
      try {
        return JSON.parse(v);
      } catch {
        return v;
      }
    default:
      return v;
  }
}

function rank(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number") return 1;
  if (typeof v === "string") return 2;
  return 3;
}

/** SQLite's order of normalized values: NULL < numbers < text < anything else (compared as JSON). */
export function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 0) return 0;
  if (ra === 3) {
    a = JSON.stringify(a);
    b = JSON.stringify(b);
  }
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

function keyOf(v: unknown): unknown {
  return typeof v === "object" && v !== null ? JSON.stringify(v) : v;
}

// --- the WHERE clause ----------------------------------------------------------------------------

/**
 * Compiled factories by source text. A query shape seen before (clients poll the same queries)
 * gets the same factory, so its functions share V8's type feedback and optimized code instead
 * of starting cold in the interpreter each time; only the constants differ.
 */
const factories = new Map<string, (c: unknown[]) => unknown>();
const MAX_FACTORIES = 512;

function compile<T>(src: string, consts: unknown[]): T {
  let f = factories.get(src);
  if (f === undefined) {
    if (factories.size >= MAX_FACTORIES) factories.clear();
    f = new Function("c", src) as (c: unknown[]) => unknown;
    factories.set(src, f);
  }
  return f(consts) as T;
}

class Codegen {
  readonly consts: unknown[] = [];

  k(v: unknown): string {
    this.consts.push(v);
    return `c[${this.consts.length - 1}]`;
  }

  /** The expression reading `column` of the record in variable `obj`. */
  read(column: string, obj = "r"): string {
    if (!COLUMNS.has(column) || !IDENT.test(column)) throw new Error(`netquery: column ${column} cannot be compiled`);
    const prop = `${obj}.${column}`;
    const compat = COMPAT_COLUMNS[column];
    return compat ? `(${prop} !== undefined ? ${prop} : ${this.k(compat.value)})` : prop;
  }

  /** The expression for one matcher (AND of its operators) over `v`. */
  matcher(kind: ColumnKind, m: Matcher): string {
    const x = kind === "time" ? "Math.floor(v / 1000)" : kind === "bool" ? "(v === true || v === 1 ? 1 : 0)" : kind === "json" ? '(typeof v === "string" ? v : JSON.stringify(v))' : "v";
    const terms: string[] = [];
    const cmp = (op: string, c: Value): string => `(v != null && ${x} ${op} ${this.k(c)})`;
    if (m.$eq !== undefined) terms.push(m.$eq === null ? "v == null" : cmp("===", m.$eq));
    if (m.$ne !== undefined) terms.push(m.$ne === null ? "v != null" : cmp("!==", m.$ne));
    if (m.$in !== undefined) {
      const set = new Set(m.$in.filter((e) => e !== null));
      const withNull = set.size < m.$in.length;
      terms.push(m.$in.length === 0 ? "false" : `(v != null ? ${this.k(set)}.has(${x}) : ${withNull})`);
    }
    if (m.$notIn !== undefined) {
      const set = new Set(m.$notIn.filter((e) => e !== null));
      terms.push(m.$notIn.length === 0 ? "true" : `(v != null && !${this.k(set)}.has(${x}))`);
    }
    if (m.$like !== undefined) terms.push(`(v != null && ${this.k(likeRegExp(m.$like))}.test(${kind === "int" ? "String(v)" : x}))`);
    if (m.$gt !== undefined) terms.push(cmp(">", m.$gt));
    if (m.$ge !== undefined) terms.push(cmp(">=", m.$ge));
    if (m.$lt !== undefined) terms.push(cmp("<", m.$lt));
    if (m.$le !== undefined) terms.push(cmp("<=", m.$le));
    return terms.length === 1 ? terms[0]! : `(${terms.join(" && ")})`;
  }

  where(where: Where): string[] {
    const parts: string[] = [];
    for (const column of Object.keys(where)) {
      const kind = COLUMNS.get(column)!;
      const alts = where[column]!.map((m) => this.matcher(kind, m));
      parts.push(`((v = ${this.read(column)}), ${alts.length === 1 ? alts[0] : `(${alts.join(" || ")})`})`);
    }
    return parts;
  }

  textSearch(t: TextSearch): string | null {
    if (t.fields.length === 0) return null;
    const re = this.k(likeRegExp(`%${t.value}%`));
    return `(${t.fields.map((f) => `(typeof (v = ${this.read(f)}) === "string" && ${re}.test(v))`).join(" || ")})`;
  }
}

/**
 * Compiles a WHERE clause (and a text search, AND-ed onto it) into one predicate, or null when
 * there is nothing to check.
 */
export function compileWhere(where: Where, textSearch: TextSearch | null = null): Predicate | null {
  const g = new Codegen();
  const parts = g.where(where);
  if (textSearch) {
    const t = g.textSearch(textSearch);
    if (t) parts.push(t);
  }
  if (parts.length === 0) return null;
  const src = `"use strict"; return function netqueryWhere(r) { let v; return ${parts.join(" && ")}; };`;
  return compile<Predicate>(src, g.consts);
}

/**
 * The `started` range [from, to) in ms the WHERE clause allows, for sources to range-scan.
 * `empty` when no row can match. Numeric bounds are unix seconds compared with the start
 * truncated to whole seconds, so `$gt: s` means started >= (floor(s)+1)*1000.
 */
export function startedRange(where: Where): { from?: number; to?: number; empty: boolean } {
  const alts = where.started;
  if (!alts) return { empty: false };
  let from = Infinity;
  let to = -Infinity;
  let any = false;
  for (const m of alts) {
    let lo = -Infinity;
    let hi = Infinity;
    const eq = (vals: Value[]): void => {
      let a = Infinity;
      let b = -Infinity;
      for (const s of vals) {
        if (typeof s !== "number" || !Number.isInteger(s)) continue;
        a = Math.min(a, s * 1000);
        b = Math.max(b, s * 1000 + 999);
      }
      lo = Math.max(lo, a);
      hi = Math.min(hi, b);
    };
    if (m.$eq !== undefined) eq([m.$eq]);
    if (m.$in !== undefined) eq(m.$in);
    if (m.$gt !== undefined) lo = Math.max(lo, (Math.floor(m.$gt) + 1) * 1000);
    if (m.$ge !== undefined) lo = Math.max(lo, Math.ceil(m.$ge) * 1000);
    if (m.$lt !== undefined) hi = Math.min(hi, Math.ceil(m.$lt) * 1000 - 1);
    if (m.$le !== undefined) hi = Math.min(hi, Math.floor(m.$le) * 1000 + 999);
    if (lo > hi) continue;
    any = true;
    from = Math.min(from, lo);
    to = Math.max(to, hi);
  }
  if (!any) return { empty: true };
  const r: { from?: number; to?: number; empty: boolean } = { empty: false };
  if (Number.isFinite(from)) r.from = from;
  if (Number.isFinite(to)) r.to = to + 1;
  return r;
}

// --- scanning ------------------------------------------------------------------------------------

function isAsync<T>(it: Iterable<T> | AsyncIterable<T>): it is AsyncIterable<T> {
  return typeof (it as AsyncIterable<T>)[Symbol.asyncIterator] === "function";
}

/**
 * Feeds the rows of one source that pass `pred` (and whose id is not in `skip`) to `visit`,
 * recording their ids in `record`, until `visit` returns false; then resolves to false.
 */
async function scanSource(
  src: RowSource,
  hint: RowHint,
  pred: Predicate | null,
  skip: Set<string> | null,
  record: Set<string> | null,
  visit: (r: ConnRecord) => boolean | void,
): Promise<boolean> {
  const it = src.rows(hint);
  if (isAsync(it)) {
    for await (const r of it) {
      if (pred !== null && !pred(r)) continue;
      if (skip !== null && skip.has(r.id)) continue;
      if (record !== null) record.add(r.id);
      if (visit(r) === false) return false;
    }
  } else {
    for (const r of it) {
      if (pred !== null && !pred(r)) continue;
      if (skip !== null && skip.has(r.id)) continue;
      if (record !== null) record.add(r.id);
      if (visit(r) === false) return false;
    }
  }
  return true;
}

/**
 * Feeds the rows of `sources` that pass `pred` to `visit`, in order, until it returns false.
 * With more than one source, a row whose id an earlier source already delivered is skipped.
 */
export async function eachRow(sources: readonly RowSource[], hint: RowHint, pred: Predicate | null, visit: (r: ConnRecord) => boolean | void): Promise<void> {
  const seen = sources.length > 1 ? new Set<string>() : null;
  for (let i = 0; i < sources.length; i++) {
    const more = await scanSource(sources[i]!, hint, pred, i > 0 ? seen : null, i < sources.length - 1 ? seen : null, visit);
    if (!more) return;
  }
}

// --- the query -----------------------------------------------------------------------------------

interface OutCol {
  name: string;
  kind: ColumnKind;
  /** The column read, or null for an aggregate. */
  column: string | null;
  /** Index into the aggregates, or -1. */
  agg: number;
}

type AggType = "count" | "countColumn" | "countDistinct" | "sum" | "sumCond" | "min" | "minCond";

interface Agg {
  type: AggType;
  column: string | null;
  kind: ColumnKind;
  pred: Predicate | null;
}

interface Group {
  rep: ConnRecord | null;
  acc: unknown[];
}

interface Item {
  tuple: unknown[];
  rep: ConnRecord | null;
}

interface SortKey {
  /** Index into the output tuple, or -1 to read `column` from the row. */
  index: number;
  column: string;
  kind: ColumnKind;
  desc: boolean;
}

/** A query made ready to run: the compiled predicate, output columns, aggregates and sort keys. */
export interface Plan {
  query: NetQuery;
  pred: Predicate | null;
  hint: RowHint;
  /** No row can match (contradictory `started` bounds). */
  empty: boolean;
  out: OutCol[];
  aggs: Agg[];
  grouped: boolean;
  distinct: boolean;
  /** The aggregate whose row supplies the bare columns (SQLite's rule for a single min()), or -1. */
  minRep: number;
  sort: SortKey[];
  /** The order of `started` that alone decides the page (plain rows ordered by started only), or null. */
  startedOrder: "asc" | "desc" | null;
}

const ALWAYS = (): boolean => true;

function outColumns(q: NetQuery, aggs: Agg[]): OutCol[] {
  const items: SelectItem[] =
    q.select.length > 0
      ? q.select
      : (q.groupBy.length > 0 ? q.groupBy : ALL_COLUMNS).map((c) => ({ kind: "column", field: c, as: c }) as SelectItem);
  return items.map((s): OutCol => {
    switch (s.kind) {
      case "column":
      case "distinct":
        return { name: s.as, kind: COLUMNS.get(s.field)!, column: s.field, agg: -1 };
      case "count":
        aggs.push({ type: s.field === "*" ? "count" : s.distinct ? "countDistinct" : "countColumn", column: s.field === "*" ? null : s.field, kind: s.field === "*" ? "int" : COLUMNS.get(s.field)!, pred: null });
        return { name: s.as, kind: "int", column: null, agg: aggs.length - 1 };
      case "sum":
      case "min": {
        const cond = s.field === null;
        const type: AggType = s.kind === "sum" ? (cond ? "sumCond" : "sum") : cond ? "minCond" : "min";
        const kind = cond ? "int" : COLUMNS.get(s.field!)!;
        aggs.push({ type, column: s.field, kind, pred: cond ? (compileWhere(s.condition!) ?? ALWAYS) : null });
        // A sum of booleans is a number; a min keeps its column's kind.
        return { name: s.as, kind: s.kind === "sum" ? "int" : kind, column: null, agg: aggs.length - 1 };
      }
    }
  });
}

/** Prepares a parsed query for execution. */
export function plan(q: NetQuery): Plan {
  const aggs: Agg[] = [];
  const out = outColumns(q, aggs);
  const pred = compileWhere(q.where, q.textSearch);
  const range = startedRange(q.where);
  const hint: RowHint = {};
  if (range.from !== undefined) hint.from = range.from;
  if (range.to !== undefined) hint.to = range.to;
  if (pred) hint.filter = pred;
  const grouped = isAggregate(q);
  const distinct = q.select.some((s) => s.kind === "distinct");
  const mins = aggs.map((a, i) => (a.type === "min" || a.type === "minCond" ? i : -1)).filter((i) => i >= 0);
  const sort = q.orderBy.map((o): SortKey => {
    // ORDER BY names resolve to result aliases first, then to columns (SQLite's rule).
    let index = -1;
    for (let i = out.length - 1; i >= 0 && index < 0; i--) if (out[i]!.name === o.field) index = i;
    if (index >= 0) {
      const c = out[index]!;
      if (!grouped && !distinct && c.column !== null) return { index: -1, column: c.column, kind: c.kind, desc: o.desc };
      return { index, column: c.column ?? "", kind: c.kind, desc: o.desc };
    }
    return { index: -1, column: o.field, kind: COLUMNS.get(o.field)!, desc: o.desc };
  });
  const startedOrder = !grouped && !distinct && sort.length === 1 && sort[0]!.index < 0 && sort[0]!.column === "started" ? (sort[0]!.desc ? "desc" : "asc") : null;
  return { query: q, pred, hint, empty: range.empty, out, aggs, grouped, distinct, minRep: mins.length === 1 ? mins[0]! : -1, sort, startedOrder };
}

function tupleOf(out: OutCol[], r: ConnRecord): unknown[] {
  const t = new Array<unknown>(out.length);
  for (let i = 0; i < out.length; i++) t[i] = normalize(out[i]!.kind, columnValue(r, out[i]!.column!));
  return t;
}

function renderTuple(out: OutCol[], t: unknown[]): Row {
  const row: Row = {};
  for (let i = 0; i < out.length; i++) row[out[i]!.name] = render(out[i]!.kind, t[i]);
  return row;
}

/**
 * Compares records by the sort keys, compiled once per query: SQLite's order (NULL first
 * ascending, last descending), times by their milliseconds, booleans as 0/1.
 */
function rowComparator(keys: SortKey[]): (a: ConnRecord, b: ConnRecord) => number {
  const g = new Codegen();
  const body = keys
    .map((k) => {
      const lt = k.desc ? 1 : -1;
      const gt = -lt;
      const conv = k.kind === "bool" ? (e: string) => `(${e} === true || ${e} === 1 ? 1 : 0)` : k.kind === "json" ? (e: string) => `(typeof ${e} === "string" ? ${e} : JSON.stringify(${e}))` : (e: string) => e;
      return (
        `x = ${g.read(k.column, "a")}; y = ${g.read(k.column, "b")};\n` +
        `if (x == null) { if (y != null) return ${lt}; } else if (y == null) return ${gt}; ` +
        `else { x = ${conv("x")}; y = ${conv("y")}; if (x < y) return ${lt}; if (x > y) return ${gt}; }`
      );
    })
    .join("\n");
  return compile<(a: ConnRecord, b: ConnRecord) => number>(`"use strict"; return function netqueryOrder(a, b) { let x, y;\n${body}\nreturn 0; };`, g.consts);
}

function itemComparator(keys: SortKey[]): (a: Item, b: Item) => number {
  const val = (it: Item, k: SortKey): unknown => (k.index >= 0 ? it.tuple[k.index] : it.rep ? normalize(k.kind, columnValue(it.rep, k.column)) : null);
  return (a, b) => {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const c = compareValues(val(a, k), val(b, k));
      if (c !== 0) return k.desc ? -c : c;
    }
    return 0;
  };
}

/**
 * The k smallest rows by `cmp`, ties kept in arrival order, in bounded memory: candidates are
 * buffered and, whenever the buffer fills, sorted and cut back to the best k; after that a row
 * no better than the k-th best is dropped with one comparison. TimSort makes the cut nearly
 * linear for the common case of rows arriving in (or against) the requested order.
 */
class TopK {
  private rows: ConnRecord[] = [];
  private seqs: number[] = [];
  private seq = 0;
  private worst: ConnRecord | null = null;
  private readonly cap: number;
  constructor(
    private readonly k: number,
    private readonly cmp: (a: ConnRecord, b: ConnRecord) => number,
  ) {
    this.cap = Math.max(2 * k, 1024);
  }

  push(r: ConnRecord): void {
    const seq = this.seq++;
    // Equal to the k-th best is not better: it arrived later.
    if (this.worst !== null && this.cmp(r, this.worst) >= 0) return;
    this.rows.push(r);
    this.seqs.push(seq);
    if (this.rows.length >= this.cap) this.cut();
  }

  private cut(): void {
    const { rows, seqs, cmp } = this;
    const idx = rows.map((_, i) => i);
    idx.sort((a, b) => cmp(rows[a]!, rows[b]!) || seqs[a]! - seqs[b]!);
    const n = Math.min(this.k, idx.length);
    const keptRows = new Array<ConnRecord>(n);
    const keptSeqs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      keptRows[i] = rows[idx[i]!]!;
      keptSeqs[i] = seqs[idx[i]!]!;
    }
    this.rows = keptRows;
    this.seqs = keptSeqs;
    if (n === this.k) this.worst = keptRows[n - 1]!;
  }

  sorted(): ConnRecord[] {
    this.cut();
    return this.rows;
  }
}

function newGroup(aggs: Agg[]): Group {
  const acc = new Array<unknown>(aggs.length);
  for (let i = 0; i < aggs.length; i++) {
    const t = aggs[i]!.type;
    acc[i] = t === "count" || t === "countColumn" ? 0 : t === "countDistinct" ? new Set<unknown>() : null;
  }
  return { rep: null, acc };
}

function accumulate(p: Plan, g: Group, r: ConnRecord): void {
  let improved = false;
  const acc = g.acc;
  for (let i = 0; i < p.aggs.length; i++) {
    const a = p.aggs[i]!;
    switch (a.type) {
      case "count":
        acc[i] = (acc[i] as number) + 1;
        break;
      case "countColumn":
        if (columnValue(r, a.column!) !== null) acc[i] = (acc[i] as number) + 1;
        break;
      case "countDistinct": {
        const v = normalize(a.kind, columnValue(r, a.column!));
        if (v !== null) (acc[i] as Set<unknown>).add(keyOf(v));
        break;
      }
      case "sum": {
        const v = normalize(a.kind, columnValue(r, a.column!));
        if (v !== null) acc[i] = ((acc[i] as number | null) ?? 0) + (v as number);
        break;
      }
      case "sumCond":
        acc[i] = ((acc[i] as number | null) ?? 0) + (a.pred!(r) ? 1 : 0);
        break;
      case "min":
      case "minCond": {
        const v = a.type === "min" ? normalize(a.kind, columnValue(r, a.column!)) : a.pred!(r) ? 1 : 0;
        if (v !== null && (acc[i] === null || compareValues(v, acc[i]) < 0)) {
          acc[i] = v;
          if (i === p.minRep) improved = true;
        }
        break;
      }
    }
  }
  // Bare columns come from the last row of the group, or from the row holding a lone min().
  if (p.minRep < 0 || improved || g.rep === null) g.rep = r;
}

function groupTuple(p: Plan, g: Group): unknown[] {
  const t = new Array<unknown>(p.out.length);
  for (let i = 0; i < p.out.length; i++) {
    const c = p.out[i]!;
    if (c.agg >= 0) {
      const v = g.acc[c.agg];
      t[i] = v instanceof Set ? v.size : v;
    } else t[i] = g.rep ? normalize(c.kind, columnValue(g.rep, c.column!)) : null;
  }
  return t;
}

function sourcesFor(q: NetQuery, sources: Sources): RowSource[] {
  // main first: a connection in both databases is reported from main.
  return [...q.databases].sort((a, b) => (a === b ? 0 : a === "main" ? -1 : 1)).map((d) => {
    if (d === "main") return sources.main;
    if (!sources.history) throw new Error("the history store is not running");
    return sources.history;
  });
}

/** Runs a parsed query and returns the rows of the requested page, rendered. */
export async function executeQuery(q: NetQuery, sources: Sources): Promise<Row[]> {
  return executePlan(plan(q), sources);
}

export async function executePlan(p: Plan, sources: Sources): Promise<Row[]> {
  const q = p.query;
  const srcs = sourcesFor(q, sources);
  const offset = q.page * q.pageSize;
  const limit = q.pageSize;
  if (p.empty && !(p.grouped && q.groupBy.length === 0)) return [];

  // Plain rows: stream (stopping at the page's end) or keep the best offset+limit.
  if (!p.grouped && !p.distinct) {
    if (p.empty) return [];
    let page: ConnRecord[];
    if (p.sort.length === 0) {
      page = [];
      let n = 0;
      await eachRow(srcs, p.hint, p.pred, (r) => {
        if (n++ >= offset) page.push(r);
        return page.length < limit;
      });
    } else {
      const k = offset + limit;
      const top = new TopK(k, rowComparator(p.sort));
      const seen = srcs.length > 1 ? new Set<string>() : null;
      for (let i = 0; i < srcs.length; i++) {
        const src = srcs[i]!;
        // A source that yields rows in the requested order has given its best k after k rows.
        const ordered = p.startedOrder !== null && src.ordered === true;
        let n = 0;
        await scanSource(src, ordered ? { ...p.hint, order: p.startedOrder! } : p.hint, p.pred, i > 0 ? seen : null, i < srcs.length - 1 ? seen : null, (r) => {
          top.push(r);
          return !ordered || ++n < k;
        });
      }
      page = top.sorted().slice(offset);
    }
    return page.map((r) => renderTuple(p.out, tupleOf(p.out, r)));
  }

  let items: Item[];
  if (p.grouped) {
    const groups = new Map<unknown, Group>();
    const gb = q.groupBy.map((c) => ({ column: c, kind: COLUMNS.get(c)! }));
    if (gb.length === 0) groups.set(null, newGroup(p.aggs));
    if (!p.empty) {
      await eachRow(srcs, p.hint, p.pred, (r) => {
        let key: unknown = null;
        if (gb.length === 1) key = keyOf(normalize(gb[0]!.kind, columnValue(r, gb[0]!.column)));
        else if (gb.length > 1) key = JSON.stringify(gb.map((c) => normalize(c.kind, columnValue(r, c.column))));
        let g = groups.get(key);
        if (g === undefined) groups.set(key, (g = newGroup(p.aggs)));
        accumulate(p, g, r);
      });
    }
    items = [];
    for (const g of groups.values()) items.push({ tuple: groupTuple(p, g), rep: g.rep });
    if (p.distinct) items = dedupe(items);
  } else {
    // DISTINCT over plain rows: without an order the page can end the scan early.
    const seen = new Map<string, Item>();
    const stopAt = p.sort.length === 0 ? offset + limit : Infinity;
    await eachRow(srcs, p.hint, p.pred, (r) => {
      const tuple = tupleOf(p.out, r);
      const key = JSON.stringify(tuple);
      if (!seen.has(key)) seen.set(key, { tuple, rep: r });
      return seen.size < stopAt;
    });
    items = [...seen.values()];
  }
  if (p.sort.length > 0) items.sort(itemComparator(p.sort));
  return items.slice(offset, offset + limit).map((it) => renderTuple(p.out, it.tuple));
}

function dedupe(items: Item[]): Item[] {
  const seen = new Set<string>();
  return items.filter((it) => {
    const k = JSON.stringify(it.tuple);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
