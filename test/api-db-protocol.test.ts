// The database WebSocket message grammar (src/api/db/protocol.ts): request splitting,
// reply formatting and record serialization, as in Portmaster's /api/database/v1.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as protocol from "../src/api/db/protocol.js";
import {
  ERROR_MALFORMED,
  ERROR_UNKNOWN_METHOD,
  isProtocolError,
  parseRequest,
  recordJson,
  type ProtocolError,
  type Request,
} from "../src/api/db/protocol.js";

function request(text: string): Request {
  const parsed = parseRequest(text);
  assert.ok(!isProtocolError(parsed), `expected a request, got ${JSON.stringify(parsed)}`);
  return parsed;
}

function rejection(text: string): ProtocolError {
  const parsed = parseRequest(text);
  assert.ok(isProtocolError(parsed), `expected an error, got ${JSON.stringify(parsed)}`);
  return parsed;
}

describe("parsing requests", () => {
  for (const cmd of ["get", "query", "sub", "qsub", "delete"] as const) {
    it(`a ${cmd} request carries its argument`, () => {
      assert.deepEqual(request(`7|${cmd}|config:core/devMode`), { op: "7", cmd, arg: "config:core/devMode" });
    });
  }

  it("a query argument keeps every | after the second one", () => {
    assert.deepEqual(request("1|query|query a:b where x sameas \"a|b\"|c"), {
      op: "1",
      cmd: "query",
      arg: 'query a:b where x sameas "a|b"|c',
    });
  });

  it("an empty argument is passed through for the handler to judge", () => {
    assert.deepEqual(request("1|get|"), { op: "1", cmd: "get", arg: "" });
  });

  it("the opID is echoed verbatim, whatever its text", () => {
    assert.equal(request("abc-42|get|k").op, "abc-42");
  });

  it("the two-part cancel form is a cancel request", () => {
    assert.deepEqual(request("12|cancel"), { op: "12", cmd: "cancel" });
  });

  it("a three-part cancel is an unknown method, as only the two-part form is special", () => {
    assert.deepEqual(rejection("12|cancel|x"), { error: ERROR_UNKNOWN_METHOD, op: "12" });
  });

  it("create and update strip the J format byte from their data", () => {
    assert.deepEqual(request('2|create|core:a/b|J{"x":1}'), { op: "2", cmd: "create", key: "core:a/b", data: '{"x":1}' });
    assert.deepEqual(request('3|update|core:a/b|J{"x":2}'), { op: "3", cmd: "update", key: "core:a/b", data: '{"x":2}' });
  });

  it("a payload may contain | because only the first one separates key from data", () => {
    assert.deepEqual(request('2|update|k|J{"v":"a|b|c"}'), { op: "2", cmd: "update", key: "k", data: '{"v":"a|b|c"}' });
  });

  it("insert strips a leading J", () => {
    assert.deepEqual(request('4|insert|k|J{"a":1}'), { op: "4", cmd: "insert", key: "k", data: '{"a":1}' });
  });

  it("insert also accepts bare JSON without a format byte", () => {
    assert.deepEqual(request('4|insert|k|{"a":1}'), { op: "4", cmd: "insert", key: "k", data: '{"a":1}' });
  });

  it("insert with no data at all is malformed and names the op", () => {
    assert.deepEqual(rejection("4|insert|k|"), { error: ERROR_MALFORMED, op: "4" });
    assert.deepEqual(rejection("4|insert|k|J"), { error: ERROR_MALFORMED, op: "4" });
  });

  it("a create payload shorter than two characters is malformed and names the op", () => {
    assert.deepEqual(rejection("5|create|k|J"), { error: ERROR_MALFORMED, op: "5" });
    assert.deepEqual(rejection("5|update|k|"), { error: ERROR_MALFORMED, op: "5" });
  });

  it("a format byte other than J is rejected as unsupported", () => {
    for (const format of ["C", "M", "Y", "G", "1", "L", "Z", "{"]) {
      assert.deepEqual(rejection(`6|create|k|${format}xyz`), {
        error: `unsupported data format ${format}, only J (JSON) is supported`,
        op: "6",
      });
    }
  });

  it("a writing command without a | between key and data is malformed with an empty op", () => {
    for (const cmd of ["create", "update", "insert"]) {
      assert.deepEqual(rejection(`6|${cmd}|keyonly`), { error: ERROR_MALFORMED, op: "" });
    }
  });

  it("a message without any | is malformed with an empty op", () => {
    assert.deepEqual(rejection("hello"), { error: ERROR_MALFORMED, op: "" });
    assert.deepEqual(rejection(""), { error: ERROR_MALFORMED, op: "" });
  });

  it("a two-part message other than cancel is malformed with an empty op", () => {
    assert.deepEqual(rejection("1|get"), { error: ERROR_MALFORMED, op: "" });
    assert.deepEqual(rejection("1|"), { error: ERROR_MALFORMED, op: "" });
  });

  it("an empty opID is malformed", () => {
    assert.deepEqual(rejection("|get|k"), { error: ERROR_MALFORMED, op: "" });
    assert.deepEqual(rejection("|cancel"), { error: ERROR_MALFORMED, op: "" });
  });

  it("an unknown command is rejected with the op", () => {
    assert.deepEqual(rejection("9|frobnicate|x"), { error: ERROR_UNKNOWN_METHOD, op: "9" });
    assert.deepEqual(rejection("9||x"), { error: ERROR_UNKNOWN_METHOD, op: "9" });
  });

  it("commands are case-sensitive", () => {
    assert.deepEqual(rejection("9|GET|x"), { error: ERROR_UNKNOWN_METHOD, op: "9" });
  });
});

describe("formatting replies", () => {
  it("ok, upd and new carry the key and J-prefixed JSON", () => {
    assert.equal(protocol.ok("7", "config:a", '{"x":1}'), '7|ok|config:a|J{"x":1}');
    assert.equal(protocol.upd("7", "config:a", '{"x":1}'), '7|upd|config:a|J{"x":1}');
    assert.equal(protocol.new("7", "config:a", '{"x":1}'), '7|new|config:a|J{"x":1}');
    assert.equal(protocol.newReply("7", "config:a", "{}"), "7|new|config:a|J{}");
  });

  it("an empty key is left out while the data is still appended", () => {
    assert.equal(protocol.ok("7", "", "{}"), "7|ok|J{}");
  });

  it("empty JSON leaves out the payload entirely", () => {
    assert.equal(protocol.ok("7", "k", ""), "7|ok|k");
  });

  it("del carries only the key", () => {
    assert.equal(protocol.del("1", "core:x"), "1|del|core:x");
  });

  it("success and done are just the op and the type", () => {
    assert.equal(protocol.success("2"), "2|success");
    assert.equal(protocol.done("2"), "2|done");
  });

  it("error and warning append their message when it is not empty", () => {
    assert.equal(protocol.error("4", "storage entry not found"), "4|error|storage entry not found");
    assert.equal(protocol.warning("4", "bad record"), "4|warning|bad record");
    assert.equal(protocol.error("4", ""), "4|error");
  });

  it("the malformed error goes out with an empty op", () => {
    assert.equal(protocol.error("", ERROR_MALFORMED), "|error|bad request: malformed message");
  });

  it("messages are passed through unchanged, including | and newlines", () => {
    assert.equal(protocol.error("1", "a|b\nc"), "1|error|a|b\nc");
  });
});

describe("serializing records", () => {
  const meta = { Created: 100, Modified: 200, Expires: 0, Deleted: 0, Key: "core:a/b" };

  it("a record is its fields followed by _meta in Portmaster's field order", () => {
    assert.equal(
      recordJson({ Name: "x", Value: [1, 2] }, meta),
      '{"Name":"x","Value":[1,2],"_meta":{"Created":100,"Modified":200,"Expires":0,"Deleted":0,"Key":"core:a/b"}}',
    );
  });

  it("an existing _meta field in the value is replaced", () => {
    const parsed: unknown = JSON.parse(recordJson({ _meta: { Key: "stale" }, a: 1 }, meta));
    assert.deepEqual(parsed, { a: 1, _meta: meta });
  });

  it("fractional timestamps are truncated to whole seconds", () => {
    const parsed: unknown = JSON.parse(recordJson({}, { ...meta, Created: 100.9, Deleted: 5.5 }));
    assert.deepEqual(parsed, { _meta: { ...meta, Created: 100, Deleted: 5 } });
  });

  it("the value object is not modified", () => {
    const value = { a: 1 };
    recordJson(value, meta);
    assert.deepEqual(value, { a: 1 });
  });

  it("an array is refused because a record must be an object", () => {
    assert.throws(() => recordJson([1, 2], meta), TypeError);
  });

  it("a serialized record round-trips through an ok reply and parseRequest-style splitting", () => {
    const reply = protocol.ok("3", meta.Key, recordJson({ v: "a|b" }, meta));
    const [op, type, key, ...rest] = reply.split("|");
    assert.deepEqual([op, type, key], ["3", "ok", "core:a/b"]);
    const payload = rest.join("|");
    assert.equal(payload[0], "J");
    assert.deepEqual(JSON.parse(payload.slice(1)), { v: "a|b", _meta: meta });
  });
});
