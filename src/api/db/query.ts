// Portmaster's database query language:
//
//   query <db>:<keyPrefix> [where <conditions>] [orderby <field>] [limit <n>] [offset <n>]
//
// A query is matched against every changed record of every subscription, so parsing does all
// the work up front: values are type-checked, regular expressions compiled and fields split,
// and each condition becomes a closure. Matching then only walks fields and compares.

/** Bounds on client-supplied text; the API is admin-only, but a query runs on every change. */
export const MAX_QUERY_LENGTH = 10_000;
export const MAX_NESTING = 64;
export const MAX_REGEX_LENGTH = 1_000;

/** A parse error; position is the 0-based character offset in the query text. */
export class QueryError extends Error {
  readonly position: number;

  constructor(problem: string, position: number) {
    super(`${problem} (at position ${position})`);
    this.name = "QueryError";
    this.position = position;
  }
}

export type IntOperator = "==" | ">" | ">=" | "<" | "<=";
export type FloatOperator = "f==" | "f>" | "f>=" | "f<" | "f<=";
export type StringOperator = "sameas" | "contains" | "startswith" | "endswith" | "matches";
/** Canonical operator names; aliases such as "s==" or "ex" are resolved at parse time. */
export type Operator = IntOperator | FloatOperator | StringOperator | "in" | "is" | "exists";

export type Predicate = (record: unknown) => boolean;

/** The parsed value: a number, string, boolean, list (in), RegExp (matches) or null (exists). */
export type ConditionValue = number | string | boolean | readonly string[] | RegExp | null;

export interface FieldCondition {
  readonly kind: "field";
  readonly field: string;
  readonly operator: Operator;
  readonly value: ConditionValue;
  readonly test: Predicate;
}

export interface NotCondition {
  readonly kind: "not";
  readonly condition: Condition;
  readonly test: Predicate;
}

export interface ChainCondition {
  readonly kind: "and" | "or";
  readonly conditions: readonly Condition[];
  readonly test: Predicate;
}

export type Condition = FieldCondition | NotCondition | ChainCondition;

export interface Query {
  /** The text as given. */
  readonly text: string;
  readonly db: string;
  readonly prefix: string;
  readonly where: Condition | null;
  /** Parsed and kept, but, as in Portmaster, not applied by any storage. */
  readonly orderBy: string | null;
  readonly limit: number | null;
  readonly offset: number | null;
  /** Whether a key (without "<db>:") lies under the query's prefix. */
  matchesKey(key: string): boolean;
  /** Whether a record value satisfies the where clause (always true without one). */
  matches(record: unknown): boolean;
}

// ---- tokens ----

interface Token {
  readonly text: string;
  /** Offset of the token's first character. */
  readonly pos: number;
  /** Quoted or escaped: never a keyword, operator or parenthesis, always plain text. */
  readonly literal: boolean;
}

const WHITESPACE: ReadonlySet<string> = new Set([" ", "\t", "\n", "\r"]);
const QUOTE = '"';
const ESCAPE = "\\";
const OPEN = "(";
const CLOSE = ")";

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (WHITESPACE.has(ch)) {
      i++;
    } else if (ch === OPEN || ch === CLOSE) {
      tokens.push({ text: ch, pos: i, literal: false });
      i++;
    } else {
      i = readWord(text, i, tokens);
    }
  }
  return tokens;
}

/** Reads one word starting at start, pushes it and returns the offset after it. */
function readWord(text: string, start: number, tokens: Token[]): number {
  let word = "";
  let literal = false;
  let quoteStart = -1; // offset of the open quote, -1 outside quotes
  let i = start;
  while (i < text.length) {
    const ch = text[i];
    if (ch === ESCAPE) {
      if (i + 1 >= text.length) throw new QueryError("escape character \\ at the end of the query", i);
      word += text[i + 1];
      literal = true;
      i += 2;
      continue;
    }
    if (ch === QUOTE) {
      quoteStart = quoteStart < 0 ? i : -1;
      literal = true;
      i++;
      continue;
    }
    if (quoteStart < 0 && (WHITESPACE.has(ch) || ch === OPEN || ch === CLOSE)) break;
    word += ch;
    i++;
  }
  if (quoteStart >= 0) throw new QueryError("unterminated quote", quoteStart);
  tokens.push({ text: word, pos: start, literal });
  return i;
}

/** A read position over the tokens; end is the text length, reported for a premature end. */
class Cursor {
  private index = 0;

  constructor(
    private readonly tokens: readonly Token[],
    readonly end: number,
  ) {}

  peek(): Token | undefined {
    return this.tokens[this.index];
  }

  next(): Token | undefined {
    return this.tokens[this.index++];
  }

  /** Whether the next token is the given keyword or parenthesis (never a literal). */
  at(word: string): boolean {
    return isWord(this.peek(), word);
  }

  /** Position of the next token, or the end of the text. */
  here(): number {
    return this.peek()?.pos ?? this.end;
  }
}

function isWord(token: Token | undefined, word: string): boolean {
  return token !== undefined && !token.literal && token.text === word;
}

/** Quotes a token for an error message. */
function shown(token: Token): string {
  return JSON.stringify(token.text);
}

// ---- the query ----

const CLAUSE_KEYWORDS = ["orderby", "limit", "offset"] as const;
type ClauseKeyword = (typeof CLAUSE_KEYWORDS)[number];
const RESERVED_WORDS: ReadonlySet<string> = new Set(["where", "and", "or", "not", ...CLAUSE_KEYWORDS]);
const DB_SEPARATOR = ":";
const ALWAYS: Predicate = () => true;

interface Clauses {
  orderby: string | null;
  limit: number | null;
  offset: number | null;
}

/** Parses and compiles a query; throws QueryError naming the problem and its position. */
export function parseQuery(text: string): Query {
  if (text.length > MAX_QUERY_LENGTH) {
    throw new QueryError(`query is longer than ${MAX_QUERY_LENGTH} characters`, MAX_QUERY_LENGTH);
  }
  const cursor = new Cursor(tokenize(text), text.length);
  if (!cursor.at("query")) throw new QueryError('a query must start with "query"', cursor.here());
  cursor.next();
  const { db, prefix } = parseTarget(cursor);
  let where: Condition | null = null;
  if (cursor.at("where")) {
    cursor.next();
    where = parseChain(cursor, 0);
  }
  const clauses = parseClauses(cursor, where !== null);
  const test = where?.test ?? ALWAYS;
  return {
    text,
    db,
    prefix,
    where,
    orderBy: clauses.orderby,
    limit: clauses.limit,
    offset: clauses.offset,
    matchesKey: (key: string) => key.startsWith(prefix),
    matches: (record: unknown) => test(record),
  };
}

/** "<db>:<prefix>"; like Portmaster, a text without ":" names a whole database. */
function parseTarget(cursor: Cursor): { db: string; prefix: string } {
  const token = cursor.next();
  if (token === undefined || (!token.literal && (RESERVED_WORDS.has(token.text) || token.text === OPEN || token.text === CLOSE))) {
    throw new QueryError('expected "<database>:<key prefix>" after "query"', token?.pos ?? cursor.end);
  }
  const colon = token.text.indexOf(DB_SEPARATOR);
  const db = colon < 0 ? token.text : token.text.slice(0, colon);
  const prefix = colon < 0 ? "" : token.text.slice(colon + 1);
  if (db === "") throw new QueryError('missing database name before ":"', token.pos);
  return { db, prefix };
}

/** The trailing orderby/limit/offset clauses, each at most once, in any order. */
function parseClauses(cursor: Cursor, afterWhere: boolean): Clauses {
  const clauses: Clauses = { orderby: null, limit: null, offset: null };
  for (let token = cursor.peek(); token !== undefined; token = cursor.peek()) {
    const keyword = clauseKeyword(token);
    if (keyword === null) {
      const expected = afterWhere ? '"and", "or", "orderby", "limit" or "offset"' : '"where", "orderby", "limit" or "offset"';
      throw new QueryError(`expected ${expected}, got ${shown(token)}`, token.pos);
    }
    if (clauses[keyword] !== null) throw new QueryError(`duplicate ${keyword} clause`, token.pos);
    cursor.next();
    const argument = cursor.next();
    if (argument === undefined) throw new QueryError(`${keyword} needs a value`, cursor.end);
    if (keyword === "orderby") {
      clauses.orderby = argument.text;
    } else {
      clauses[keyword] = parseCount(keyword, argument);
    }
  }
  return clauses;
}

function clauseKeyword(token: Token): ClauseKeyword | null {
  if (token.literal) return null;
  return CLAUSE_KEYWORDS.find((keyword) => keyword === token.text) ?? null;
}

const COUNT_PATTERN = /^\d+$/;

function parseCount(keyword: string, token: Token): number {
  const n = Number(token.text);
  if (!COUNT_PATTERN.test(token.text) || !Number.isSafeInteger(n)) {
    throw new QueryError(`${keyword} needs a non-negative integer, got ${shown(token)}`, token.pos);
  }
  return n;
}

// ---- conditions ----

/** A run of conditions joined by one kind of connective: "and" or "or", never both. */
function parseChain(cursor: Cursor, depth: number): Condition {
  const first = parseUnary(cursor, depth);
  const parts = [first];
  let joiner: "and" | "or" | null = null;
  for (;;) {
    const token = cursor.peek();
    const connective = isWord(token, "and") ? "and" : isWord(token, "or") ? "or" : null;
    if (token === undefined || connective === null) break;
    if (joiner !== null && connective !== joiner) {
      throw new QueryError('cannot mix "and" and "or" in one group; use parentheses', token.pos);
    }
    joiner = connective;
    cursor.next();
    parts.push(parseUnary(cursor, depth));
  }
  return joiner === null ? first : chain(joiner, parts);
}

/** Leading "not"s, then a group or a field condition. */
function parseUnary(cursor: Cursor, depth: number): Condition {
  // Loop rather than recurse so a run of "not"s cannot exhaust the stack; only parity matters.
  let negated = false;
  while (cursor.at("not")) {
    cursor.next();
    negated = !negated;
  }
  const condition = cursor.at(OPEN) ? parseGroup(cursor, depth + 1) : parseFieldCondition(cursor);
  return negated ? negate(condition) : condition;
}

function parseGroup(cursor: Cursor, depth: number): Condition {
  const open = cursor.next() as Token;
  if (depth > MAX_NESTING) throw new QueryError(`conditions are nested deeper than ${MAX_NESTING} levels`, open.pos);
  const inner = parseChain(cursor, depth);
  if (!cursor.at(CLOSE)) {
    throw new QueryError(`missing ")" for the "(" at position ${open.pos}`, cursor.here());
  }
  cursor.next();
  return inner;
}

function parseFieldCondition(cursor: Cursor): Condition {
  const fieldToken = cursor.next();
  if (fieldToken === undefined) throw new QueryError("expected a condition", cursor.end);
  if (!fieldToken.literal && (RESERVED_WORDS.has(fieldToken.text) || fieldToken.text === CLOSE)) {
    throw new QueryError(`expected a condition, got ${shown(fieldToken)}`, fieldToken.pos);
  }
  const get = compileAccessor(fieldToken);
  let negated = false;
  if (cursor.at("not")) {
    cursor.next();
    negated = true;
  }
  const operatorToken = cursor.next();
  if (operatorToken === undefined) {
    throw new QueryError(`expected an operator after field ${shown(fieldToken)}`, cursor.end);
  }
  const operator = OPERATOR_ALIASES.get(operatorToken.text);
  if (operator === undefined) throw new QueryError(`unknown operator ${shown(operatorToken)}`, operatorToken.pos);
  const { value, test } = compileOperator(operator, operatorToken, cursor, get);
  const condition: FieldCondition = { kind: "field", field: fieldToken.text, operator, value, test };
  return negated ? negate(condition) : condition;
}

function negate(condition: Condition): NotCondition {
  const inner = condition.test;
  return { kind: "not", condition, test: (record) => !inner(record) };
}

function chain(kind: "and" | "or", conditions: Condition[]): ChainCondition {
  const tests = conditions.map((c) => c.test);
  const test: Predicate =
    kind === "and"
      ? (record) => {
          for (const t of tests) if (!t(record)) return false;
          return true;
        }
      : (record) => {
          for (const t of tests) if (t(record)) return true;
          return false;
        };
  return { kind, conditions, test };
}

// ---- fields ----

/** Returned by accessors for an absent field; distinct from null, which is a present value. */
const MISSING: unique symbol = Symbol("missing");
type Accessor = (record: unknown) => unknown;

const FIELD_SEPARATOR = ".";
const LENGTH_SEGMENT = "#";
const INDEX_PATTERN = /^\d+$/;

/** One step of a field path, with its array index worked out once at parse time. */
interface Segment {
  readonly name: string;
  /** The array index this segment denotes, or -1 if it is not a number. */
  readonly index: number;
  readonly isLength: boolean;
}

function compileAccessor(token: Token): Accessor {
  const names = token.text.split(FIELD_SEPARATOR);
  if (names.some((name) => name === "")) {
    throw new QueryError(`invalid field name ${shown(token)}: empty path segment`, token.pos);
  }
  if (names.slice(0, -1).includes(LENGTH_SEGMENT)) {
    throw new QueryError(`invalid field name ${shown(token)}: "#" may only be the last segment`, token.pos);
  }
  const segments: Segment[] = names.map((name) => ({
    name,
    index: INDEX_PATTERN.test(name) ? Number(name) : -1,
    isLength: name === LENGTH_SEGMENT,
  }));
  return (record) => {
    let current: unknown = record;
    for (const segment of segments) {
      current = step(current, segment);
      if (current === MISSING) return MISSING;
    }
    return current;
  };
}

/**
 * Arrays take an index or "#" (their length); objects take own properties only, so names
 * like "constructor" or "__proto__" never reach the prototype. undefined counts as absent.
 */
function step(value: unknown, segment: Segment): unknown {
  if (Array.isArray(value)) {
    if (segment.isLength) return value.length;
    if (segment.index < 0 || segment.index >= value.length) return MISSING;
    const item: unknown = value[segment.index];
    return item === undefined ? MISSING : item;
  }
  if (typeof value !== "object" || value === null || !Object.hasOwn(value, segment.name)) return MISSING;
  const item: unknown = (value as Record<string, unknown>)[segment.name];
  return item === undefined ? MISSING : item;
}

// ---- operators ----

const OPERATOR_ALIASES: ReadonlyMap<string, Operator> = new Map<string, Operator>([
  ["==", "=="],
  [">", ">"],
  [">=", ">="],
  ["<", "<"],
  ["<=", "<="],
  ["f==", "f=="],
  ["f>", "f>"],
  ["f>=", "f>="],
  ["f<", "f<"],
  ["f<=", "f<="],
  ["sameas", "sameas"],
  ["s==", "sameas"],
  ["contains", "contains"],
  ["co", "contains"],
  ["startswith", "startswith"],
  ["sw", "startswith"],
  ["endswith", "endswith"],
  ["ew", "endswith"],
  ["matches", "matches"],
  ["re", "matches"],
  ["in", "in"],
  ["is", "is"],
  ["exists", "exists"],
  ["ex", "exists"],
]);

type NumberCompare = (field: number, value: number) => boolean;

/** Integer and float operators compare the same way; they differ in the values they accept. */
const NUMBER_COMPARES: Readonly<Record<IntOperator | FloatOperator, NumberCompare>> = {
  "==": (a, b) => a === b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  "f==": (a, b) => a === b,
  "f>": (a, b) => a > b,
  "f>=": (a, b) => a >= b,
  "f<": (a, b) => a < b,
  "f<=": (a, b) => a <= b,
};

type StringCompare = (field: string, value: string) => boolean;

const STRING_COMPARES: Readonly<Record<Exclude<StringOperator, "matches">, StringCompare>> = {
  sameas: (a, b) => a === b,
  contains: (a, b) => a.includes(b),
  startswith: (a, b) => a.startsWith(b),
  endswith: (a, b) => a.endsWith(b),
};

const INTEGER_PATTERN = /^[+-]?\d+$/;
const FLOAT_PATTERN = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const BOOLEAN_WORDS: ReadonlyMap<string, boolean> = new Map([
  ...["1", "t", "T", "true", "True", "TRUE"].map((w): [string, boolean] => [w, true]),
  ...["0", "f", "F", "false", "False", "FALSE"].map((w): [string, boolean] => [w, false]),
]);
const LIST_SEPARATOR = ",";
const MIN_LIST_ITEMS = 2;

interface Compiled {
  value: ConditionValue;
  test: Predicate;
}

/** Reads the operator's value (if it takes one), checks its type and builds the predicate. */
function compileOperator(operator: Operator, opToken: Token, cursor: Cursor, get: Accessor): Compiled {
  if (operator === "exists") return { value: null, test: (record) => get(record) !== MISSING };
  const valueToken = cursor.next();
  if (valueToken === undefined || (!valueToken.literal && (valueToken.text === OPEN || valueToken.text === CLOSE))) {
    throw new QueryError(`${opToken.text} needs a value`, valueToken?.pos ?? cursor.end);
  }
  switch (operator) {
    case "==":
    case ">":
    case ">=":
    case "<":
    case "<=":
      return numberTest(NUMBER_COMPARES[operator], parseInteger(opToken, valueToken), get);
    case "f==":
    case "f>":
    case "f>=":
    case "f<":
    case "f<=":
      return numberTest(NUMBER_COMPARES[operator], parseFloatValue(opToken, valueToken), get);
    case "sameas":
    case "contains":
    case "startswith":
    case "endswith":
      return stringTest(STRING_COMPARES[operator], valueToken.text, get);
    case "matches":
      return regexTest(compileRegex(valueToken), get);
    case "in":
      return listTest(parseList(opToken, valueToken), get);
    case "is":
      return booleanTest(parseBoolean(opToken, valueToken), get);
  }
}

function parseInteger(opToken: Token, token: Token): number {
  const n = Number(token.text);
  if (!INTEGER_PATTERN.test(token.text) || !Number.isSafeInteger(n)) {
    throw new QueryError(`${opToken.text} needs an integer value, got ${shown(token)}`, token.pos);
  }
  return n;
}

function parseFloatValue(opToken: Token, token: Token): number {
  const n = Number(token.text);
  if (!FLOAT_PATTERN.test(token.text) || !Number.isFinite(n)) {
    throw new QueryError(`${opToken.text} needs a float value, got ${shown(token)}`, token.pos);
  }
  return n;
}

function parseBoolean(opToken: Token, token: Token): boolean {
  const b = BOOLEAN_WORDS.get(token.text);
  if (b === undefined) {
    throw new QueryError(`${opToken.text} needs a boolean value (true/false, t/f, 1/0), got ${shown(token)}`, token.pos);
  }
  return b;
}

function parseList(opToken: Token, token: Token): string[] {
  const items = token.text.split(LIST_SEPARATOR);
  if (items.length < MIN_LIST_ITEMS) {
    throw new QueryError(`${opToken.text} needs at least ${MIN_LIST_ITEMS} comma-separated values`, token.pos);
  }
  return items;
}

/** Go's inline flags "(?i)", "(?s)", "(?m)" at the start have JS equivalents; translate them. */
const INLINE_FLAGS = /^\(\?([ims]+)\)/;

function compileRegex(token: Token): RegExp {
  if (token.text.length > MAX_REGEX_LENGTH) {
    throw new QueryError(`regular expression is longer than ${MAX_REGEX_LENGTH} characters`, token.pos);
  }
  const inline = INLINE_FLAGS.exec(token.text);
  const source = inline ? token.text.slice(inline[0].length) : token.text;
  const flags = inline ? [...new Set(inline[1])].join("") : "";
  try {
    return new RegExp(source, flags); // no g/y flag: test() then keeps no state between records
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new QueryError(`invalid regular expression: ${reason}`, token.pos);
  }
}

/** Numeric operators match any JS number, compared numerically; other types never match. */
function numberTest(compare: NumberCompare, value: number, get: Accessor): Compiled {
  return {
    value,
    test: (record) => {
      const field = get(record);
      return typeof field === "number" && compare(field, value);
    },
  };
}

/** String operators match strings only. */
function stringTest(compare: StringCompare, value: string, get: Accessor): Compiled {
  return {
    value,
    test: (record) => {
      const field = get(record);
      return typeof field === "string" && compare(field, value);
    },
  };
}

function regexTest(regex: RegExp, get: Accessor): Compiled {
  return {
    value: regex,
    test: (record) => {
      const field = get(record);
      return typeof field === "string" && regex.test(field);
    },
  };
}

/** A string field must equal an item; a number field matches by its decimal text ("in 1,2"). */
function listTest(items: string[], get: Accessor): Compiled {
  const set: ReadonlySet<string> = new Set(items);
  return {
    value: items,
    test: (record) => {
      const field = get(record);
      if (typeof field === "string") return set.has(field);
      return typeof field === "number" && set.has(String(field));
    },
  };
}

function booleanTest(value: boolean, get: Accessor): Compiled {
  return { value, test: (record) => get(record) === value };
}
