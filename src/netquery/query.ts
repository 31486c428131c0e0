// netquery requests: parsing and validation of the JSON that Portmaster's netquery accepts
// (PM: service/netquery/{query.go,query_request.go}), into a normalized form the engine runs.
//
// Accepted exactly as Portmaster accepts it:
//   - keys of the request objects match case-insensitively, as Go's encoding/json does
//     ("pagesize", "$notin", "AS"); the last of two keys that fold together wins. Column names
//     (the keys of `query`) are map keys and so stay case-sensitive;
//   - `select` is an array, a single object or a single string; `orderBy` a string, an object
//     or an array of either; conditions are primitives (equality), matcher objects (operators
//     AND-ed) or arrays of either (OR-ed); different columns are AND-ed;
//   - a numeric value on a time column is unix seconds, compared with the column truncated to
//     whole seconds (`strftime('%s', col)+0`); a string must be RFC 3339 and is truncated to
//     whole seconds too;
//   - `$like ""` is ignored, as Portmaster ignores it; `$in []` matches nothing, `$notIn []`
//     everything; page sizes outside 1..100 become 100.
// Stricter than Portmaster (it answers SQL errors, 500s or silently ignores): unknown fields
// anywhere, unknown operators, unknown databases, wrongly typed values and aggregates SQLite
// could not run are 400s that say what is wrong.
// Different on purpose: `null` means IS NULL (`"ended": null` finds active connections;
// Portmaster turns a null into "1 = 1" or "no conditions specified"), `$ne: null` is IS NOT
// NULL, and a single-string `select` selects that column (Portmaster parses and then drops it).

import { CONN_COLUMNS } from "../flow/types.js";

/** How a column's values are stored and compared. "int" is any number. */
export type ColumnKind = "text" | "int" | "bool" | "time" | "json";

/**
 * Portmaster columns that sluice does not record (a gateway has no process path, no GeoIP and
 * no SPN). They are accepted so Portmaster's UI keeps working, and read as Portmaster's zero
 * values unless a record carries them.
 */
export const COMPAT_COLUMNS: Record<string, { kind: ColumnKind; value: string | number | null }> = {
  path: { kind: "text", value: "" },
  country: { kind: "text", value: "" },
  asn: { kind: "int", value: 0 },
  as_owner: { kind: "text", value: "" },
  latitude: { kind: "int", value: 0 },
  longitude: { kind: "int", value: 0 },
  worst_verdict: { kind: "int", value: 0 },
  firewall_verdict: { kind: "int", value: 0 },
  profile_revision: { kind: "int", value: 0 },
  exit_node: { kind: "text", value: null },
};

/** Every column a query may name, with its kind: sluice's columns first, then the compatibility ones. */
export const COLUMNS: ReadonlyMap<string, ColumnKind> = new Map<string, ColumnKind>([
  ...Object.entries(CONN_COLUMNS),
  ...Object.entries(COMPAT_COLUMNS).map(([k, v]) => [k, v.kind] as [string, ColumnKind]),
]);

/** The columns of `SELECT *`, in output order. */
export const ALL_COLUMNS: readonly string[] = [...COLUMNS.keys()];

export const OPERATORS = ["$eq", "$ne", "$in", "$notIn", "$like", "$gt", "$ge", "$lt", "$le"] as const;
export type Operator = (typeof OPERATORS)[number];

/** A comparison value, normalized to its column: time → unix seconds, bool → 0/1, int → number, text → string. */
export type Value = string | number | null;

/** One alternative of a column's condition; its operators are AND-ed. */
export interface Matcher {
  $eq?: Value;
  $ne?: Value;
  $in?: Value[];
  $notIn?: Value[];
  /** An SQL LIKE pattern (% and _ wildcards, ASCII case-insensitive). */
  $like?: string;
  $gt?: number;
  $ge?: number;
  $lt?: number;
  $le?: number;
}

/** column → alternatives (OR-ed); columns are AND-ed. */
export type Where = Record<string, Matcher[]>;

export interface TextSearch {
  fields: string[];
  value: string;
}

export type SelectItem =
  /** A column, possibly renamed (a string, {field} or {$field}). */
  | { kind: "column"; field: string; as: string }
  /** COUNT(field | *), or COUNT(DISTINCT field). */
  | { kind: "count"; field: string; as: string; distinct: boolean }
  /** SUM(field) or SUM(condition): the number of rows the condition holds for. */
  | { kind: "sum"; field: string | null; condition: Where | null; as: string }
  /** MIN(field) or MIN(condition): 1 if the condition holds for every row, else 0. */
  | { kind: "min"; field: string | null; condition: Where | null; as: string }
  /** DISTINCT field: the whole result is de-duplicated. */
  | { kind: "distinct"; field: string; as: string };

export interface OrderBy {
  /** A column, or an alias from `select`. */
  field: string;
  desc: boolean;
}

export type DatabaseName = "main" | "history";

export interface NetQuery {
  /** Empty: every column (or the groupBy columns when grouping). */
  select: SelectItem[];
  where: Where;
  /** Columns (aliases of selected columns are resolved to their column). */
  groupBy: string[];
  orderBy: OrderBy[];
  textSearch: TextSearch | null;
  page: number;
  /** 1..100. */
  pageSize: number;
  databases: DatabaseName[];
}

/** A request Portmaster's netquery would refuse, or that sluice refuses with a better reason. */
export class QueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueryError";
  }
}

export const MAX_PAGE_SIZE = 100;
const TOP_FIELDS = ["select", "query", "groupBy", "orderBy", "textSearch", "page", "pageSize", "databases"] as const;
const ALIAS_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

// --- case-insensitive objects, as Go decodes them ------------------------------------------------

/** Go's EqualFold for the ASCII keys used here (plus the two non-ASCII letters that fold to k and s). */
function fold(key: string): string {
  return key.replace(/\u212a/g, "k").replace(/\u017f/g, "s").toLowerCase();
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

/**
 * The fields of a JSON object, matched case-insensitively to `fields` (canonical names); null
 * values are left out, as Go leaves a field alone for null. Unknown keys are an error naming
 * all of them.
 */
export function readFields(raw: unknown, fields: readonly string[], where: string): Map<string, unknown> {
  if (!isObject(raw)) throw new QueryError(`${where} must be a JSON object, not ${describe(raw)}`);
  const byFold = new Map(fields.map((f) => [fold(f), f]));
  const out = new Map<string, unknown>();
  const unknown: string[] = [];
  for (const k of Object.keys(raw)) {
    const name = byFold.get(fold(k));
    if (name === undefined) {
      unknown.push(k);
      continue;
    }
    const v = raw[k];
    if (v === null) out.delete(name);
    else out.set(name, v);
  }
  if (unknown.length > 0) {
    throw new QueryError(`${where}: unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k)).join(", ")} (allowed: ${fields.join(", ")})`);
  }
  return out;
}

function str(v: unknown, what: string): string {
  if (typeof v !== "string") throw new QueryError(`${what} must be a string, not ${describe(v)}`);
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") throw new QueryError(`${what} must be true or false, not ${describe(v)}`);
  return v;
}

function int(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new QueryError(`${what} must be an integer, not ${describe(v)}`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) throw new QueryError(`${what} must be an array of strings, not ${describe(v)}`);
  return v.map((x, i) => str(x, `${what}[${i}]`));
}

// --- values --------------------------------------------------------------------------------------

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|([+-])(\d{2}):(\d{2}))$/;

/** Unix seconds of an RFC 3339 time (Go's time.RFC3339 layout), fractions truncated; null if invalid. */
export function parseRfc3339(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  if (mo! < 1 || mo! > 12 || h! > 23 || mi! > 59 || se! > 59) return null;
  const days = new Date(Date.UTC(y!, mo!, 0)).getUTCDate();
  if (d! < 1 || d! > days) return null;
  let off = 0;
  if (m[8] !== "Z") {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    off = (m[9] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const ms = Date.UTC(y!, mo! - 1, d!, h!, mi!, se!);
  // Date.UTC maps years 0..99 to 1900..1999.
  const fixed = y! < 100 ? new Date(ms).setUTCFullYear(y!) : ms;
  return Math.floor(fixed / 1000) - off;
}

/** A comparison value for `column`, normalized to its kind. */
function value(v: unknown, column: string, kind: ColumnKind, op: string): Value {
  const what = `${op} on column ${column}`;
  if (v === null) return null;
  if (typeof v === "object") throw new QueryError(`${what} needs a single value, not ${describe(v)}`);
  switch (kind) {
    case "time":
      if (typeof v === "number") return v;
      if (typeof v === "string") {
        const s = parseRfc3339(v);
        if (s === null) throw new QueryError(`${what}: ${JSON.stringify(v)} is not an RFC 3339 time (like "2024-05-01T10:20:30Z"); numbers are unix seconds`);
        return s;
      }
      throw new QueryError(`${what} needs unix seconds or an RFC 3339 time, not ${describe(v)}`);
    case "bool":
      if (typeof v === "boolean") return v ? 1 : 0;
      if (v === 0 || v === 1) return v;
      throw new QueryError(`${what} needs true or false, not ${describe(v)}`);
    case "int":
      if (typeof v === "number") return v;
      if (typeof v === "boolean") return v ? 1 : 0;
      if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
      throw new QueryError(`${what} needs a number, not ${describe(v)}`);
    case "text":
      if (typeof v === "string") return v;
      if (typeof v === "number") return String(v);
      throw new QueryError(`${what} needs a string, not ${describe(v)}`);
    case "json":
      throw new QueryError(`${what}: column ${column} holds JSON and can only be matched with $like`);
  }
}

function numberBound(v: unknown, column: string, kind: ColumnKind, op: string): number {
  if (kind === "text" || kind === "json") throw new QueryError(`${op} on column ${column} needs a numeric or time column (${column} is ${kind === "json" ? "JSON" : "text"})`);
  if (v === null) throw new QueryError(`${op} on column ${column} needs a number, not null`);
  const n = value(v, column, kind, op);
  if (typeof n !== "number" || !Number.isFinite(n)) throw new QueryError(`${op} on column ${column} needs a number, not ${describe(v)}`);
  return n;
}

// --- conditions ----------------------------------------------------------------------------------

const OP_FOLD = new Map<string, Operator>(OPERATORS.map((o) => [fold(o), o]));

function matcher(raw: Record<string, unknown>, column: string, kind: ColumnKind): Matcher {
  const m: Matcher = {};
  let found = 0;
  for (const key of Object.keys(raw)) {
    const op = OP_FOLD.get(fold(key));
    if (op === undefined) throw new QueryError(`unknown operator ${key} on column ${column} (allowed: ${OPERATORS.join(", ")})`);
    const v = raw[key];
    switch (op) {
      case "$eq":
      case "$ne":
        m[op] = value(v, column, kind, op);
        break;
      case "$in":
      case "$notIn":
        if (!Array.isArray(v)) throw new QueryError(`${op} on column ${column} needs an array, not ${describe(v)}`);
        m[op] = v.map((x) => value(x, column, kind, op));
        break;
      case "$like":
        if (typeof v !== "string") throw new QueryError(`$like on column ${column} needs a string pattern, not ${describe(v)}`);
        if (kind === "time" || kind === "bool") throw new QueryError(`$like is not supported on ${kind} column ${column}`);
        // Portmaster treats an empty pattern as absent.
        if (v === "") delete m.$like;
        else m.$like = v;
        break;
      default:
        m[op] = numberBound(v, column, kind, op);
    }
  }
  for (const op of OPERATORS) if (m[op] !== undefined) found++;
  if (found === 0) throw new QueryError(`invalid query matcher for column ${column}: no conditions specified`);
  return m;
}

/** A `query` object (the WHERE clause), validated and normalized. */
export function parseWhere(raw: unknown, what = "query"): Where {
  if (raw === null || raw === undefined) return {};
  if (!isObject(raw)) throw new QueryError(`${what} must be a JSON object mapping columns to conditions, not ${describe(raw)}`);
  const where: Where = {};
  for (const column of Object.keys(raw)) {
    const kind = COLUMNS.get(column);
    if (kind === undefined) throw new QueryError(`column ${column} is not allowed`);
    const cond = raw[column];
    const alts: Matcher[] = [];
    const one = (c: unknown): void => {
      if (isObject(c)) alts.push(matcher(c, column, kind));
      else if (Array.isArray(c)) throw new QueryError(`invalid token [ in query for column ${column}`);
      else alts.push({ $eq: value(c, column, kind, "equality") });
    };
    if (Array.isArray(cond)) {
      if (cond.length === 0) throw new QueryError(`invalid query matcher for column ${column}: no conditions specified (empty list)`);
      for (const c of cond) one(c);
    } else one(cond);
    where[column] = alts;
  }
  return where;
}

/** A `textSearch` object: an OR of case-insensitive substring matches over text columns. */
export function parseTextSearch(raw: unknown): TextSearch | null {
  if (raw === null || raw === undefined) return null;
  const f = readFields(raw, ["fields", "value"], "textSearch");
  const fields = f.has("fields") ? strings(f.get("fields"), "textSearch.fields") : [];
  for (const c of fields) {
    const kind = COLUMNS.get(c);
    if (kind === undefined) throw new QueryError(`column ${c} is not allowed in text-search`);
    if (kind !== "text") throw new QueryError(`type of column ${c} cannot be used in text-search (only text columns can)`);
  }
  return { fields, value: f.has("value") ? str(f.get("value"), "textSearch.value") : "" };
}

// --- select, groupBy, orderBy --------------------------------------------------------------------

function column(name: string, what: string): string {
  if (!COLUMNS.has(name)) throw new QueryError(`${what}: column ${JSON.stringify(name)} is not allowed`);
  return name;
}

function alias(v: unknown, what: string): string {
  const a = str(v, `${what}.as`);
  if (!ALIAS_RE.test(a)) throw new QueryError(`${what}.as: invalid alias ${JSON.stringify(a)} (letters, digits and _, not starting with a digit)`);
  return a;
}

const SELECT_KEYS = ["field", "$field", "$count", "$sum", "$min", "$distinct"] as const;

function aggregate(raw: unknown, op: "$sum" | "$min", what: string): SelectItem {
  const f = readFields(raw, ["field", "condition", "as", "distinct"], what);
  if (!f.has("as") || f.get("as") === "") throw new QueryError(`missing 'as' for ${op}`);
  const as = alias(f.get("as"), what);
  if (f.has("distinct")) bool(f.get("distinct"), `${what}.distinct`);
  const field = f.has("field") && f.get("field") !== "" ? str(f.get("field"), `${what}.field`) : null;
  if (field !== null && f.has("condition")) throw new QueryError(`${what}: give either a field or a condition, not both`);
  const kind = op === "$sum" ? "sum" : "min";
  if (field !== null) {
    column(field, what);
    if (op === "$sum" && COLUMNS.get(field) !== "int" && COLUMNS.get(field) !== "bool") {
      throw new QueryError(`${what}: column ${field} is ${COLUMNS.get(field)} and cannot be summed`);
    }
    return { kind, field, condition: null, as };
  }
  if (!f.has("condition")) throw new QueryError(`${what} needs a field or a condition`);
  const condition = parseWhere(f.get("condition"), `${what}.condition`);
  if (Object.keys(condition).length === 0) throw new QueryError(`${what}.condition: no conditions specified`);
  return { kind, field: null, condition, as };
}

function selectItem(raw: unknown, i: number): SelectItem {
  const what = `select[${i}]`;
  if (typeof raw === "string") return { kind: "column", field: column(raw, what), as: raw };
  const f = readFields(raw, SELECT_KEYS, what);
  if (f.size !== 1) throw new QueryError(`${what} needs exactly one of ${SELECT_KEYS.join(", ")}${f.size > 1 ? ` (got ${[...f.keys()].join(", ")})` : ""}`);
  const [key, v] = [...f][0]!;
  switch (key) {
    case "field": {
      const c = column(str(v, `${what}.field`), what);
      return { kind: "column", field: c, as: c };
    }
    case "$field": {
      const g = readFields(v, ["field", "as"], `${what}.$field`);
      const c = column(str(g.get("field") ?? "", `${what}.$field.field`), `${what}.$field`);
      const as = g.has("as") && g.get("as") !== "" ? alias(g.get("as"), `${what}.$field`) : c;
      return { kind: "column", field: c, as };
    }
    case "$count": {
      const g = readFields(v, ["field", "as", "distinct"], `${what}.$count`);
      const field = str(g.get("field") ?? "", `${what}.$count.field`);
      if (field !== "*") column(field, `${what}.$count`);
      const distinct = g.has("distinct") ? bool(g.get("distinct"), `${what}.$count.distinct`) : false;
      if (distinct && field === "*") throw new QueryError(`${what}.$count: distinct needs a column, not *`);
      const as = g.has("as") && g.get("as") !== "" ? alias(g.get("as"), `${what}.$count`) : field === "*" ? "count" : `${field}_count`;
      return { kind: "count", field, as, distinct };
    }
    case "$sum":
    case "$min":
      return aggregate(v, key, `${what}.${key}`);
    default: {
      const c = column(str(v, `${what}.$distinct`), what);
      return { kind: "distinct", field: c, as: c };
    }
  }
}

function parseSelect(raw: unknown): SelectItem[] {
  if (raw === undefined) return [];
  if (Array.isArray(raw)) return raw.map(selectItem);
  return [selectItem(raw, 0)];
}

function orderItem(raw: unknown, i: number): OrderBy {
  const what = `orderBy[${i}]`;
  if (typeof raw === "string") return { field: raw, desc: false };
  const f = readFields(raw, ["field", "desc"], what);
  return { field: str(f.get("field") ?? "", `${what}.field`), desc: f.has("desc") ? bool(f.get("desc"), `${what}.desc`) : false };
}

function parseOrderBy(raw: unknown): OrderBy[] {
  if (raw === undefined) return [];
  if (Array.isArray(raw)) return raw.map(orderItem);
  return [orderItem(raw, 0)];
}

// --- the request ---------------------------------------------------------------------------------

/** Parses and validates one query request (the JSON body of netquery/query). */
export function parseQuery(raw: unknown): NetQuery {
  const f = readFields(raw, TOP_FIELDS, "the query request");
  const select = parseSelect(f.get("select"));
  const where = parseWhere(f.get("query"));
  const textSearch = parseTextSearch(f.get("textSearch"));

  const aliases = new Map<string, SelectItem>();
  for (const s of select) aliases.set(s.as, s);

  const groupBy = f.has("groupBy")
    ? strings(f.get("groupBy"), "groupBy").map((g) => {
        if (COLUMNS.has(g)) return g;
        const s = aliases.get(g);
        if (s && (s.kind === "column" || s.kind === "distinct")) return s.field;
        throw new QueryError(`groupBy: column name ${JSON.stringify(g)} not allowed${s ? " (an aggregate cannot be grouped by)" : ""}`);
      })
    : [];

  const orderBy = parseOrderBy(f.get("orderBy"));
  for (const o of orderBy) {
    if (!COLUMNS.has(o.field) && !aliases.has(o.field)) throw new QueryError(`orderBy: column name ${JSON.stringify(o.field)} not allowed (neither a column nor an alias from select)`);
  }

  const page = f.has("page") ? int(f.get("page"), "page") : 0;
  let pageSize = f.has("pageSize") ? int(f.get("pageSize"), "pageSize") : 0;
  if (pageSize <= 0 || pageSize > MAX_PAGE_SIZE) pageSize = MAX_PAGE_SIZE;

  const databases: DatabaseName[] = [];
  if (f.has("databases")) {
    for (const d of strings(f.get("databases"), "databases")) {
      if (d !== "main" && d !== "history") throw new QueryError(`unknown database ${JSON.stringify(d)} (allowed: main, history)`);
      if (!databases.includes(d)) databases.push(d);
    }
  }
  if (databases.length === 0) databases.push("main");

  return { select, where, groupBy, orderBy, textSearch, page: Math.max(0, page), pageSize, databases };
}

/** Parses a batch: an object whose values are queries. Errors name the query. */
export function parseBatch(raw: unknown): Map<string, NetQuery> {
  if (!isObject(raw)) throw new QueryError(`a batch must be a JSON object of named queries, not ${describe(raw)}`);
  const out = new Map<string, NetQuery>();
  for (const name of Object.keys(raw)) {
    try {
      out.set(name, parseQuery(raw[name]));
    } catch (err) {
      if (err instanceof QueryError) throw new QueryError(`query ${JSON.stringify(name)}: ${err.message}`);
      throw err;
    }
  }
  return out;
}

/** Whether the query aggregates (a groupBy, or a $count/$sum/$min). */
export function isAggregate(q: Pick<NetQuery, "select" | "groupBy">): boolean {
  return q.groupBy.length > 0 || q.select.some((s) => s.kind === "count" || s.kind === "sum" || s.kind === "min");
}

/**
 * An SQL LIKE pattern as a RegExp over the whole value: % is any run of characters, _ any one
 * character, ASCII letters match either case (SQLite's default LIKE; other letters match exactly).
 */
export function likeRegExp(pattern: string): RegExp {
  const chars = [...pattern.replace(/%%+/g, "%")];
  // Explicit letter classes and the u flag (so _ is one code point) unless the pattern is plain
  // ASCII without _, where the i flag (non-u: ASCII folding only) is faster.
  const classes = !/^[\x00-\x7f]*$/.test(pattern) || pattern.includes("_");
  // A leading or trailing % needs no anchor (and no backtracking).
  let start = 0;
  let end = chars.length;
  const open = chars[0] === "%";
  if (open) start = 1;
  const openEnd = end > start && chars[end - 1] === "%";
  if (openEnd) end--;
  let src = open ? "" : "^";
  for (let i = start; i < end; i++) {
    const ch = chars[i]!;
    if (ch === "%") src += "[\\s\\S]*";
    else if (ch === "_") src += "[\\s\\S]";
    else if (classes && /[A-Za-z]/.test(ch)) src += `[${ch.toLowerCase()}${ch.toUpperCase()}]`;
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  if (!openEnd) src += "$";
  return new RegExp(src, classes ? "u" : "i");
}
