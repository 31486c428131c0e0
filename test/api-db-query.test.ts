// Portmaster's database query language (src/api/db/query.ts): parsing, type checks at parse
// time, error positions, and matching records.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_NESTING,
  MAX_QUERY_LENGTH,
  MAX_REGEX_LENGTH,
  QueryError,
  parseQuery,
  type Query,
} from "../src/api/db/query.js";

const RECORD = {
  Name: "Block Inbound",
  Key: "filter/blockInbound",
  Level: 3,
  Ratio: 0.75,
  Enabled: true,
  Off: false,
  Nothing: null,
  Tags: ["net", "fw", "in"],
  Nested: { Inner: { Port: 443, Host: "example.com" } },
  Items: [{ Id: 7 }, { Id: 8 }],
  Empty: [],
  "with space": "yes",
};

/** Parses "query db:x where <conditions>" and matches it against RECORD. */
function where(conditions: string, record: unknown = RECORD): boolean {
  return parseQuery(`query db:x where ${conditions}`).matches(record);
}

/** Asserts that parsing text fails with a message matching pattern at the given position. */
function rejects(text: string, pattern: RegExp, position?: number): QueryError {
  try {
    parseQuery(text);
  } catch (err) {
    assert.ok(err instanceof QueryError, `expected QueryError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.match(err.message, new RegExp(`at position ${err.position}\\)$`), "the message names the position");
    if (position !== undefined) assert.equal(err.position, position, err.message);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be rejected`);
}

describe("the query head", () => {
  it("a query names its database and key prefix", () => {
    const q = parseQuery("query config:filter/");
    assert.equal(q.db, "config");
    assert.equal(q.prefix, "filter/");
    assert.equal(q.where, null);
    assert.equal(q.orderBy, null);
    assert.equal(q.limit, null);
    assert.equal(q.offset, null);
    assert.equal(q.text, "query config:filter/");
  });

  it("the prefix may be empty", () => {
    const q = parseQuery("query config:");
    assert.equal(q.db, "config");
    assert.equal(q.prefix, "");
    assert.ok(q.matchesKey("anything"));
  });

  it("a target without a colon names the whole database", () => {
    const q = parseQuery("query runtime");
    assert.deepEqual([q.db, q.prefix], ["runtime", ""]);
  });

  it("only the first colon separates the database from the prefix", () => {
    const q = parseQuery("query cache:intel/a:b");
    assert.deepEqual([q.db, q.prefix], ["cache", "intel/a:b"]);
  });

  it("keys match by prefix", () => {
    const q = parseQuery("query core:profiles/local/");
    assert.ok(q.matchesKey("profiles/local/abc"));
    assert.ok(q.matchesKey("profiles/local/"));
    assert.ok(!q.matchesKey("profiles/special/abc"));
    assert.ok(!q.matchesKey("profiles/loca"));
  });

  it("a query without conditions matches every record", () => {
    const q = parseQuery("query a:");
    assert.ok(q.matches(RECORD));
    assert.ok(q.matches(null));
  });

  it("a quoted prefix may contain spaces", () => {
    assert.equal(parseQuery('query "db:a b"').prefix, "a b");
  });

  it("a query that does not start with query is rejected", () => {
    rejects("select config:", /a query must start with "query"/, 0);
    rejects("", /a query must start with "query"/, 0);
    rejects('"query" config:', /a query must start with "query"/, 0);
  });

  it("a query without a target is rejected", () => {
    rejects("query", /expected "<database>:<key prefix>" after "query"/, 5);
    rejects("query where a == 1", /expected "<database>:<key prefix>"/, 6);
  });

  it("a target with an empty database name is rejected", () => {
    rejects("query :prefix", /missing database name before ":"/, 6);
  });
});

describe("trailing clauses", () => {
  it("orderby, limit and offset are parsed and kept", () => {
    const q = parseQuery("query a:b where x == 1 orderby Name limit 10 offset 20");
    assert.equal(q.orderBy, "Name");
    assert.equal(q.limit, 10);
    assert.equal(q.offset, 20);
  });

  it("clauses may follow the target directly and come in any order", () => {
    const q = parseQuery("query a:b offset 5 limit 0");
    assert.deepEqual([q.limit, q.offset, q.orderBy], [0, 5, null]);
  });

  it("a limit that is not a non-negative integer is rejected", () => {
    rejects("query a:b limit -1", /limit needs a non-negative integer, got "-1"/, 16);
    rejects("query a:b offset x", /offset needs a non-negative integer, got "x"/, 17);
    rejects("query a:b limit 99999999999999999999", /limit needs a non-negative integer/);
  });

  it("a clause without its value is rejected", () => {
    rejects("query a:b orderby", /orderby needs a value/, 17);
    rejects("query a:b limit", /limit needs a value/, 15);
  });

  it("a repeated clause is rejected", () => {
    rejects("query a:b limit 1 limit 2", /duplicate limit clause/, 18);
  });

  it("an unexpected word after the target is rejected", () => {
    rejects("query a:b foo", /expected "where", "orderby", "limit" or "offset", got "foo"/, 10);
  });

  it("an unexpected word after the conditions is rejected", () => {
    rejects("query a:b where x == 1 y == 2", /expected "and", "or", "orderby", "limit" or "offset", got "y"/, 23);
  });

  it("a where without conditions is rejected", () => {
    rejects("query a:b where", /expected a condition/, 15);
    rejects("query a:b where limit 3", /expected a condition, got "limit"/, 16);
  });
});

describe("integer operators", () => {
  it("== matches an equal integer and nothing else", () => {
    assert.ok(where("Level == 3"));
    assert.ok(!where("Level == 4"));
    assert.ok(where("Level == +3"));
  });

  it("> and >= compare numerically", () => {
    assert.ok(where("Level > 2"));
    assert.ok(!where("Level > 3"));
    assert.ok(where("Level >= 3"));
    assert.ok(!where("Level >= 4"));
  });

  it("< and <= compare numerically", () => {
    assert.ok(where("Level < 4"));
    assert.ok(!where("Level < 3"));
    assert.ok(where("Level <= 3"));
    assert.ok(!where("Level <= 2"));
  });

  it("negative integers are accepted", () => {
    assert.ok(where("Level > -5"));
    assert.ok(where("N == -5", { N: -5 }));
  });

  it("an integer operator compares a fractional field numerically", () => {
    assert.ok(where("Ratio < 1"));
    assert.ok(where("Ratio > 0"));
    assert.ok(!where("Ratio == 0"));
  });

  it("an integer operator never matches a string, boolean or null field", () => {
    assert.ok(!where("N == 3", { N: "3" }));
    assert.ok(!where("Enabled == 1"));
    assert.ok(!where("Nothing == 0"));
  });

  it("an integer operator with a non-integer value is rejected", () => {
    rejects("query a:b where Level == abc", /== needs an integer value, got "abc"/, 25);
    rejects("query a:b where Level > 1.5", /> needs an integer value, got "1.5"/);
    rejects("query a:b where Level >= 1e3", />= needs an integer value/);
    rejects("query a:b where Level < 9007199254740993", /< needs an integer value/);
    rejects('query a:b where Level <= ""', /<= needs an integer value, got ""/);
  });
});

describe("float operators", () => {
  it("f== matches an equal number", () => {
    assert.ok(where("Ratio f== 0.75"));
    assert.ok(!where("Ratio f== 0.7"));
    assert.ok(where("Level f== 3"));
  });

  it("f> and f>= compare numerically", () => {
    assert.ok(where("Ratio f> 0.5"));
    assert.ok(!where("Ratio f> 0.75"));
    assert.ok(where("Ratio f>= 0.75"));
    assert.ok(!where("Ratio f>= 0.76"));
  });

  it("f< and f<= compare numerically", () => {
    assert.ok(where("Ratio f< 1"));
    assert.ok(!where("Ratio f< .75"));
    assert.ok(where("Ratio f<= 7.5e-1"));
    assert.ok(!where("Ratio f<= -1"));
  });

  it("a float operator never matches a string field", () => {
    assert.ok(!where("Name f> 0"));
  });

  it("a float operator with a non-number value is rejected", () => {
    rejects("query a:b where Ratio f== abc", /f== needs a float value, got "abc"/, 26);
    rejects("query a:b where Ratio f> NaN", /f> needs a float value/);
    rejects("query a:b where Ratio f< Infinity", /f< needs a float value/);
    rejects("query a:b where Ratio f<= 1e999", /f<= needs a float value/);
    rejects("query a:b where Ratio f>= 0x10", /f>= needs a float value/);
  });
});

describe("string operators", () => {
  it("sameas and s== match the exact string", () => {
    assert.ok(where('Name sameas "Block Inbound"'));
    assert.ok(where('Name s== "Block Inbound"'));
    assert.ok(!where("Name sameas Block"));
    assert.ok(!where('Name s== "block inbound"'));
  });

  it("contains and co match a substring", () => {
    assert.ok(where("Name contains Inb"));
    assert.ok(where("Name co Inb"));
    assert.ok(!where("Name co xyz"));
  });

  it("startswith and sw match a prefix", () => {
    assert.ok(where("Key startswith filter/"));
    assert.ok(where("Key sw filter/"));
    assert.ok(!where("Key sw block"));
  });

  it("endswith and ew match a suffix", () => {
    assert.ok(where("Key endswith Inbound"));
    assert.ok(where("Key ew Inbound"));
    assert.ok(!where("Key ew filter"));
  });

  it("string operators only match string fields", () => {
    assert.ok(!where("Level sameas 3"));
    assert.ok(!where("Enabled co true"));
    assert.ok(!where("Tags co net"));
    assert.ok(!where("Nothing sw n"));
  });

  it("an empty quoted value is an empty string", () => {
    assert.ok(where('E sameas ""', { E: "" }));
    assert.ok(where('Name co ""'));
  });
});

describe("the matches operator", () => {
  it("matches and re search the string with a regular expression", () => {
    assert.ok(where("Name matches ^Block"));
    assert.ok(where("Name re In.ound$"));
    assert.ok(where("Key re /block"));
    assert.ok(!where("Name re ^Inbound"));
  });

  it("a leading Go inline flag group becomes a JS flag", () => {
    assert.ok(where('Name re "(?i)^block inbound$"'));
    assert.ok(!where('Name re "^block inbound$"'));
  });

  it("the regular expression is compiled once and exposed as the condition value", () => {
    const q = parseQuery("query a:b where Name re ^B");
    assert.ok(q.where?.kind === "field" && q.where.value instanceof RegExp);
    for (let i = 0; i < 3; i++) assert.ok(q.matches(RECORD), "repeated matching gives the same answer");
  });

  it("matches only applies to strings", () => {
    assert.ok(!where("Level re 3"));
  });

  it("an invalid regular expression is rejected", () => {
    rejects('query a:b where Name re "a[b"', /invalid regular expression/, 24);
  });

  it("a regular expression longer than the limit is rejected", () => {
    const pattern = "a".repeat(MAX_REGEX_LENGTH + 1);
    rejects(`query a:b where Name re ${pattern}`, /regular expression is longer than 1000 characters/, 24);
    assert.ok(where(`Name re ${"a?".repeat(MAX_REGEX_LENGTH / 2)}`), "a pattern at the limit is fine");
  });
});

describe("the in operator", () => {
  it("in matches a string equal to one of the items", () => {
    assert.ok(where("Key in a,filter/blockInbound,b"));
    assert.ok(!where("Key in a,b"));
  });

  it("in matches a number by its decimal text", () => {
    assert.ok(where("Level in 1,3"));
    assert.ok(!where("Level in 1,2"));
  });

  it("in does not match booleans or missing fields", () => {
    assert.ok(!where("Enabled in true,false"));
    assert.ok(!where("Missing in a,b"));
  });

  it("in items may be quoted to contain spaces", () => {
    assert.ok(where('Name in "Block Inbound,Other"'));
  });

  it("in with a single item is rejected", () => {
    rejects("query a:b where Key in a", /in needs at least 2 comma-separated values/, 23);
  });
});

describe("the is operator", () => {
  it("is matches true with every spelling of true", () => {
    for (const word of ["1", "t", "T", "true", "True", "TRUE"]) {
      assert.ok(where(`Enabled is ${word}`), word);
      assert.ok(!where(`Off is ${word}`), word);
    }
  });

  it("is matches false with every spelling of false", () => {
    for (const word of ["0", "f", "F", "false", "False", "FALSE"]) {
      assert.ok(where(`Off is ${word}`), word);
      assert.ok(!where(`Enabled is ${word}`), word);
    }
  });

  it("is only matches booleans", () => {
    assert.ok(!where("Level is 1", { Level: 1 }));
    assert.ok(!where("S is true", { S: "true" }));
    assert.ok(!where("Nothing is false"));
  });

  it("is with a non-boolean value is rejected", () => {
    rejects("query a:b where Enabled is yes", /is needs a boolean value \(true\/false, t\/f, 1\/0\), got "yes"/, 27);
  });
});

describe("the exists operator", () => {
  it("exists and ex match a present field", () => {
    assert.ok(where("Name exists"));
    assert.ok(where("Name ex"));
    assert.ok(!where("Missing exists"));
  });

  it("a null field exists", () => {
    assert.ok(where("Nothing exists"));
  });

  it("an undefined property counts as missing", () => {
    assert.ok(!where("U exists", { U: undefined }));
  });

  it("exists takes no value, so the next word must be a connective", () => {
    assert.ok(where("Name exists and Level == 3"));
    rejects("query a:b where Name exists 3", /got "3"/, 28);
  });

  it("inherited properties do not exist", () => {
    assert.ok(!where("constructor exists", {}));
    assert.ok(!where("toString exists", {}));
    assert.ok(!where("__proto__ exists", {}));
    assert.ok(!where("length exists", [1, 2]));
  });
});

describe("field paths", () => {
  it("a dotted field walks nested objects", () => {
    assert.ok(where("Nested.Inner.Port == 443"));
    assert.ok(where("Nested.Inner.Host sameas example.com"));
    assert.ok(!where("Nested.Outer.Port == 443"));
  });

  it("a numeric segment indexes into a list", () => {
    assert.ok(where("Tags.0 sameas net"));
    assert.ok(where("Tags.2 sameas in"));
    assert.ok(where("Items.1.Id == 8"));
    assert.ok(!where("Tags.3 exists"));
    assert.ok(!where("Tags.x exists"));
  });

  it("a numeric segment on an object is a property name", () => {
    assert.ok(where("M.0 == 5", { M: { "0": 5 } }));
  });

  it("the # segment is a list's length", () => {
    assert.ok(where("Tags.# == 3"));
    assert.ok(where("Empty.# == 0"));
    assert.ok(where("Tags.# exists"));
    assert.ok(!where("Name.# exists"));
  });

  it("walking through a scalar or null finds nothing", () => {
    assert.ok(!where("Level.x exists"));
    assert.ok(!where("Nothing.x exists"));
    assert.ok(!where("Name.0 exists"));
  });

  it("matching a non-object record finds nothing", () => {
    assert.ok(!where("a exists", null));
    assert.ok(!where("a exists", "text"));
    assert.ok(!where("a == 1", 1));
  });

  it("a top-level list record supports indexes", () => {
    assert.ok(where("0 == 1", [1]));
  });

  it("a quoted field may contain spaces", () => {
    assert.ok(where('"with space" sameas yes'));
    assert.ok(where("with\\ space sameas yes"));
  });

  it("a field with an empty segment is rejected", () => {
    rejects("query a:b where a..b exists", /invalid field name "a\.\.b": empty path segment/, 16);
    rejects("query a:b where .a exists", /empty path segment/);
    rejects("query a:b where a. exists", /empty path segment/);
  });

  it("a # that is not the last segment is rejected", () => {
    rejects("query a:b where a.#.b exists", /"#" may only be the last segment/, 16);
  });
});

describe("quoting and escaping", () => {
  it("a quoted value may contain spaces and parentheses", () => {
    assert.ok(where('V sameas "a (b) c"', { V: "a (b) c" }));
  });

  it("inside quotes a quote and a backslash are escaped with a backslash", () => {
    assert.ok(where('V sameas "say \\"hi\\" \\\\ bye"', { V: 'say "hi" \\ bye' }));
  });

  it("outside quotes a backslash escapes spaces, parentheses, quotes and backslashes", () => {
    assert.ok(where("V sameas a\\ \\(b\\)\\\"\\\\", { V: 'a (b)"\\' }));
  });

  it("quoted and unquoted parts of one word are joined", () => {
    assert.ok(where('V sameas ab"c d"e', { V: "abc de" }));
  });

  it("a quoted keyword is an ordinary value, not a keyword", () => {
    assert.ok(where('V sameas "and" and W sameas "or"', { V: "and", W: "or" }));
    assert.ok(where('"not" exists', { not: 1 }));
  });

  it("an escaped parenthesis is text, not a group", () => {
    assert.ok(where("V sameas \\(", { V: "(" }));
  });

  it("an unquoted parenthesis ends a word", () => {
    assert.ok(where("(Level == 3)"));
  });

  it("an unterminated quote is rejected at the quote", () => {
    rejects('query a:b where V sameas "abc', /unterminated quote/, 25);
  });

  it("a trailing backslash is rejected", () => {
    rejects("query a:b where V sameas abc\\", /escape character \\ at the end of the query/, 28);
  });

  it("tabs and newlines separate words like spaces", () => {
    assert.ok(parseQuery("query\ta:b\nwhere\r\nLevel == 3").matches(RECORD));
  });
});

describe("combining conditions", () => {
  it("and requires every condition", () => {
    assert.ok(where("Level == 3 and Enabled is true and Name co Block"));
    assert.ok(!where("Level == 3 and Enabled is false"));
  });

  it("or requires any condition", () => {
    assert.ok(where("Level == 1 or Level == 2 or Level == 3"));
    assert.ok(!where("Level == 1 or Level == 2"));
  });

  it("a condition mixing and with or in one group is rejected", () => {
    rejects("query a:b where a == 1 and b == 2 or c == 3", /cannot mix "and" and "or" in one group; use parentheses/, 34);
    rejects("query a:b where a == 1 or b == 2 and c == 3", /cannot mix "and" and "or"/, 33);
  });

  it("parentheses allow and and or together", () => {
    assert.ok(where("(Level == 1 or Level == 3) and Enabled is true"));
    assert.ok(!where("(Level == 1 or Level == 2) and Enabled is true"));
    assert.ok(where("Level == 1 or (Level == 3 and Enabled is true)"));
  });

  it("groups nest", () => {
    assert.ok(where("((Level == 3) and ((Tags.0 sameas net) or (Tags.0 sameas x)))"));
  });

  it("the parsed tree shows the chaining", () => {
    const q = parseQuery("query a:b where a == 1 or (b == 2 and c exists)");
    assert.equal(q.where?.kind, "or");
    assert.ok(q.where?.kind === "or");
    assert.equal(q.where.conditions.length, 2);
    assert.equal(q.where.conditions[1]?.kind, "and");
  });

  it("an unclosed group is rejected", () => {
    rejects("query a:b where (a == 1", /missing "\)" for the "\(" at position 16/, 23);
  });

  it("an empty group is rejected", () => {
    rejects("query a:b where ()", /expected a condition, got "\)"/, 17);
  });

  it("a stray closing parenthesis is rejected", () => {
    rejects("query a:b where a == 1)", /got "\)"/, 22);
  });

  it("a connective without a following condition is rejected", () => {
    rejects("query a:b where a == 1 and", /expected a condition/, 26);
  });

  it(`groups may nest ${MAX_NESTING} levels deep`, () => {
    const text = `query a:b where ${"(".repeat(MAX_NESTING)}Level == 3${")".repeat(MAX_NESTING)}`;
    assert.ok(parseQuery(text).matches(RECORD));
  });

  it(`nesting deeper than ${MAX_NESTING} levels is rejected`, () => {
    const text = `query a:b where ${"(".repeat(MAX_NESTING + 1)}a == 1${")".repeat(MAX_NESTING + 1)}`;
    rejects(text, /conditions are nested deeper than 64 levels/, 16 + MAX_NESTING);
  });
});

describe("negation", () => {
  it("not before an operator negates the condition", () => {
    assert.ok(where("Level not == 4"));
    assert.ok(!where("Level not == 3"));
    assert.ok(where("Name not co xyz"));
    assert.ok(where("Missing not exists"));
  });

  it("not before a condition negates it", () => {
    assert.ok(where("not Level == 4"));
    assert.ok(!where("not Level == 3"));
  });

  it("not before a group negates the group", () => {
    assert.ok(where("not (Level == 1 or Level == 2)"));
    assert.ok(!where("not (Level == 3 and Enabled is true)"));
  });

  it("a negated condition on a missing field is true", () => {
    assert.ok(!where("Missing == 1"));
    assert.ok(where("not Missing == 1"));
    assert.ok(where("Missing not sameas x"));
  });

  it("double negation cancels out", () => {
    assert.ok(where("not not Level == 3"));
    assert.ok(!where("not not not Level == 3"));
  });

  it("a long run of not does not exhaust the stack", () => {
    assert.ok(where(`${"not ".repeat(2000)}Level == 3`));
  });

  it("not combines with and and or", () => {
    assert.ok(where("not Level == 1 and not Level == 2"));
    assert.ok(where("Level not == 3 or not Enabled is false"));
  });

  it("the parsed tree shows the negation", () => {
    const q = parseQuery("query a:b where Level not == 3");
    assert.ok(q.where?.kind === "not");
    assert.deepEqual(
      { kind: q.where.condition.kind, field: "field" in q.where.condition ? q.where.condition.field : "" },
      { kind: "field", field: "Level" },
    );
  });
});

describe("operator errors", () => {
  it("an unknown operator is rejected", () => {
    rejects("query a:b where Level =~ 3", /unknown operator "=~"/, 22);
    rejects("query a:b where Level = 3", /unknown operator "="/, 22);
  });

  it("a field without an operator is rejected", () => {
    rejects("query a:b where Level", /expected an operator after field "Level"/, 21);
  });

  it("an operator without a value is rejected", () => {
    rejects("query a:b where Level ==", /== needs a value/, 24);
    rejects("query a:b where Name co )", /co needs a value/, 24);
  });

  it("operators are canonicalized in the parsed tree", () => {
    const cases: Array<[string, string]> = [
      ["s== x", "sameas"],
      ["co x", "contains"],
      ["sw x", "startswith"],
      ["ew x", "endswith"],
      ["re x", "matches"],
      ["ex", "exists"],
    ];
    for (const [text, operator] of cases) {
      const q: Query = parseQuery(`query a:b where F ${text}`);
      assert.ok(q.where?.kind === "field");
      assert.equal(q.where.operator, operator);
    }
  });
});

describe("size limits", () => {
  it(`a query of exactly ${MAX_QUERY_LENGTH} characters is accepted`, () => {
    const head = "query a:";
    const text = head + "x".repeat(MAX_QUERY_LENGTH - head.length);
    assert.equal(parseQuery(text).prefix.length, MAX_QUERY_LENGTH - head.length);
  });

  it(`a query longer than ${MAX_QUERY_LENGTH} characters is rejected`, () => {
    rejects("query a:" + "x".repeat(MAX_QUERY_LENGTH), /query is longer than 10000 characters/, MAX_QUERY_LENGTH);
  });
});

describe("QueryError", () => {
  it("is an Error with a name and a position", () => {
    const err = rejects("query a:b where x == y", /== needs an integer value/, 21);
    assert.ok(err instanceof Error);
    assert.equal(err.name, "QueryError");
    assert.equal(err.message, '== needs an integer value, got "y" (at position 21)');
  });
});
