// The rule language and the ruleset file format (src/rules/parse.ts), and the compile-time
// checks on source bindings (src/rules/image.ts).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseRules, parseRuleset } from "../src/rules/parse.js";
import { compileRuleset } from "../src/rules/image.js";
import { RuleCompileError, RuleSyntaxError, type RuleProblem } from "../src/core/errors.js";

/** Runs fn, asserts it throws RuleSyntaxError, returns its problems. */
function problemsOf(fn: () => unknown): RuleProblem[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RuleSyntaxError, `expected RuleSyntaxError, got ${String(err)}`);
    assert.equal(err.code, "RULES_INVALID");
    assert.ok(err.problems.length > 0, "a RuleSyntaxError lists at least one problem");
    for (const p of err.problems) {
      assert.equal(typeof p.message, "string");
      assert.ok(p.message.length > 0, "every problem has a message");
      assert.ok(p.expected.length > 0, `problem at ${p.line}:${p.column} says what was expected`);
    }
    return err.problems;
  }
  assert.fail("expected a RuleSyntaxError");
}

/** The single problem of one rule line. */
function oneProblem(text: string): RuleProblem {
  const ps = problemsOf(() => parseRules(text));
  assert.equal(ps.length, 1, `expected one problem, got ${JSON.stringify(ps)}`);
  return ps[0]!;
}

function assertAt(p: RuleProblem, line: number, column: number, messagePattern?: RegExp): void {
  assert.deepEqual({ line: p.line, column: p.column }, { line, column }, `problem "${p.message}"`);
  if (messagePattern) assert.match(p.message, messagePattern);
}

describe("rule parsing: valid rules", () => {
  it("parses every entity kind with its action, protocol and ports", () => {
    const rules = parseRules(
      [
        "+ example.com",
        "- *.ads.example",
        "+ .example.org UDP/53",
        "- 10.0.0.0/8 TCP/80",
        "+ 2001:db8::/32 */*",
        "- * TCP/8000-8080",
        "- 192.0.2.1",
        "- 2001:db8::1 ICMPv6",
        "+ 198.51.100.0/24 47",
      ].join("\n"),
    );
    assert.equal(rules.length, 9);
    assert.deepEqual(
      rules.map((r) => [r.line, r.action, r.entity.kind]),
      [
        [1, "allow", "domain"],
        [2, "block", "subdomains"],
        [3, "allow", "tree"],
        [4, "block", "cidr"],
        [5, "allow", "cidr"],
        [6, "block", "any"],
        [7, "block", "ip"],
        [8, "block", "ip"],
        [9, "allow", "cidr"],
      ],
    );
    assert.deepEqual(rules[0]!.entity, { kind: "domain", name: "example.com" });
    assert.deepEqual(rules[1]!.entity, { kind: "subdomains", name: "ads.example" });
    assert.deepEqual(rules[2]!.entity, { kind: "tree", name: "example.org" });
    assert.deepEqual([rules[2]!.proto, rules[2]!.hasPort, rules[2]!.portLo, rules[2]!.portHi], [17, true, 53, 53]);
    const cidr = rules[3]!.entity;
    assert.ok(cidr.kind === "cidr");
    assert.deepEqual([cidr.version, cidr.prefix, cidr.addr], [4, 8, 0x0a000000]);
    assert.deepEqual([rules[3]!.proto, rules[3]!.hasPort, rules[3]!.portLo, rules[3]!.portHi], [6, true, 80, 80]);
    assert.deepEqual([rules[4]!.proto, rules[4]!.hasPort], [0, false]);
    const v6 = rules[4]!.entity;
    assert.ok(v6.kind === "cidr");
    assert.deepEqual([v6.version, v6.prefix], [6, 32]);
    assert.deepEqual([rules[5]!.proto, rules[5]!.hasPort, rules[5]!.portLo, rules[5]!.portHi], [6, true, 8000, 8080]);
    const ip = rules[6]!.entity;
    assert.ok(ip.kind === "ip");
    assert.deepEqual([ip.version, ip.prefix], [4, 32]);
    assert.deepEqual([rules[7]!.proto, rules[7]!.hasPort], [58, false]);
    assert.deepEqual([rules[8]!.proto, rules[8]!.hasPort], [47, false]);
  });

  it("lower-cases domains and drops a trailing dot", () => {
    const [a, b, c] = parseRules("- WWW.Example.COM.\n+ *.Tracker.NET.\n- .Example.Org.");
    assert.deepEqual(a!.entity, { kind: "domain", name: "www.example.com" });
    assert.deepEqual(b!.entity, { kind: "subdomains", name: "tracker.net" });
    assert.deepEqual(c!.entity, { kind: "tree", name: "example.org" });
  });

  it("accepts the action written against the entity (+example.com)", () => {
    const [a, b] = parseRules("+example.com\n-10.0.0.0/8 TCP/22");
    assert.equal(a!.action, "allow");
    assert.deepEqual(a!.entity, { kind: "domain", name: "example.com" });
    assert.equal(b!.action, "block");
    assert.equal(b!.entity.kind, "cidr");
    assert.equal(b!.portLo, 22);
  });

  it("ignores full-line comments, trailing comments and blank lines, keeping line numbers", () => {
    const rules = parseRules(["# a comment", "", "- a.example # why", "   ", "\t# indented comment", "+ b.example", "#- c.example"].join("\n"));
    assert.deepEqual(
      rules.map((r) => [r.line, r.action, r.entity]),
      [
        [3, "block", { kind: "domain", name: "a.example" }],
        [6, "allow", { kind: "domain", name: "b.example" }],
      ],
    );
  });

  it("counts CRLF line endings as one line break each", () => {
    const rules = parseRules("- a.example\r\n\r\n+ b.example\r\n");
    assert.deepEqual(
      rules.map((r) => r.line),
      [1, 3],
    );
    assert.deepEqual(rules[1]!.entity, { kind: "domain", name: "b.example" });
  });

  it("numbers lines from firstLine so errors point into a larger document", () => {
    const rules = parseRules("- a.example\n\n+ b.example", { firstLine: 10 });
    assert.deepEqual(
      rules.map((r) => r.line),
      [10, 12],
    );
    const ps = problemsOf(() => parseRules("- a.example\n- bad..example", { firstLine: 10 }));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 11, 3);
  });

  it("reads named and numeric protocols, with and without ports", () => {
    const rules = parseRules(
      ["- * tcp", "- * UDP/*", "- * SCTP/9", "- * udp-lite/7", "- * icmp", "- * ICMP6", "- * 6/443", "- * 255", "- * */0-65535", "- * TCP/0"].join("\n"),
    );
    assert.deepEqual(
      rules.map((r) => [r.proto, r.hasPort, r.portLo, r.portHi]),
      [
        [6, false, 0, 65535],
        [17, false, 0, 65535],
        [132, true, 9, 9],
        [136, true, 7, 7],
        [1, false, 0, 65535],
        [58, false, 0, 65535],
        [6, true, 443, 443],
        [255, false, 0, 65535],
        [0, true, 0, 65535],
        [6, true, 0, 0],
      ],
    );
  });

  it("keeps every valid rule: rules in equals rules out, in order, whatever the comments around them", () => {
    const entity = fc.oneof(
      fc.constantFrom("*", "example.com", "*.ads.example", ".example.org", "xn--bcher-kva.example", "a_b.example"),
      fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join(".")),
      fc.tuple(fc.nat(255), fc.integer({ min: 0, max: 8 })).map(([a, p]) => `${a & (0xff << (8 - p)) & 0xff}.0.0.0/${p}`),
      fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([a, b]) => `2001:db8:${a.toString(16)}::${b.toString(16)}`),
      fc.constantFrom("::/0", "2001:db8::/32", "fe80::/10", "::1"),
    );
    const ports = fc.constantFrom("", " TCP/443", " udp/53", " */*", " TCP/8000-8080", " ICMP", " 47", " */1-1024", " sctp/*");
    const rule = fc.tuple(fc.constantFrom("+ ", "- ", "+", "-"), entity, ports, fc.constantFrom("", " # note", "\t#x")).map((t) => t.join(""));
    const noise = fc.constantFrom("", "   ", "# comment", "  # indented", "\t");
    const line = fc.oneof({ arbitrary: rule.map((r) => ({ rule: true, text: r })), weight: 3 }, { arbitrary: noise.map((n) => ({ rule: false, text: n })), weight: 1 });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 40 }), (lines) => {
        const rules = parseRules(lines.map((l) => l.text).join("\n"));
        const expectedLines = lines.flatMap((l, i) => (l.rule ? [i + 1] : []));
        assert.deepEqual(
          rules.map((r) => r.line),
          expectedLines,
        );
        for (const r of rules) assert.ok(lines[r.line - 1]!.text.trim().startsWith(r.text), `rule text "${r.text}"`);
      }),
      { seed: 20240611, numRuns: 200 },
    );
  });
});

describe("rule parsing: errors", () => {
  it("rejects an unknown action at the first token", () => {
    const p = oneProblem("allow example.com");
    assertAt(p, 1, 1, /\+ or -/);
    const q = oneProblem("\n   * example.com");
    assertAt(q, 2, 4);
  });

  it("rejects an action with nothing after it", () => {
    const p = oneProblem("-   ");
    assertAt(p, 1, 2, /missing entity/);
  });

  it("rejects an IPv4 address with an octet above 255", () => {
    assertAt(oneProblem("- 10.0.0.256"), 1, 3, /not an IP address/);
    assertAt(oneProblem("+ 1.2.3"), 1, 3, /not an IP address/);
  });

  it("rejects a malformed IPv6 address", () => {
    assertAt(oneProblem("- 2001:db8:::1"), 1, 3, /not an IP address/);
    assertAt(oneProblem("- 2001:db8::g/64"), 1, 3);
  });

  it("rejects a CIDR with host bits set under the mask", () => {
    assertAt(oneProblem("- 10.0.0.1/8"), 1, 3, /host bits/);
    assertAt(oneProblem("- 2001:db8::1/64"), 1, 3, /host bits/);
    assertAt(oneProblem("- 192.168.1.128/24"), 1, 3, /host bits/);
  });

  it("rejects a prefix length outside the address family's range", () => {
    assertAt(oneProblem("- 10.0.0.0/33"), 1, 3, /prefix length/);
    assertAt(oneProblem("- 2001:db8::/129"), 1, 3, /prefix length/);
    assertAt(oneProblem("- 10.0.0.0/08"), 1, 3, /prefix length/);
  });

  it("rejects an unknown protocol name and protocol numbers outside 1-255", () => {
    assertAt(oneProblem("- * FOO/80"), 1, 5, /unknown protocol/);
    assertAt(oneProblem("- example.com 256"), 1, 15, /unknown protocol/);
    assertAt(oneProblem("- example.com 0/80"), 1, 15, /unknown protocol/);
    assertAt(oneProblem("- * TCP/80/90"), 1, 5, /not a protocol\/port/);
  });

  it("rejects a reversed port range, pointing at the ports", () => {
    const p = oneProblem("- * TCP/8080-8000");
    assertAt(p, 1, 9, /reversed/);
    assert.equal(p.expected, "8000-8080");
  });

  it("rejects a port above 65535 and a port that is not a number", () => {
    assertAt(oneProblem("- * UDP/65536"), 1, 9, /not a port/);
    assertAt(oneProblem("- * UDP/http"), 1, 9, /not a port/);
    assertAt(oneProblem("- * UDP/"), 1, 9, /not a port/);
  });

  it("rejects ports on ICMP and other protocols without ports", () => {
    assertAt(oneProblem("- 1.2.3.4 ICMP/80"), 1, 16, /no ports/);
    assertAt(oneProblem("- 2001:db8::1 icmpv6/1-2"), 1, 22, /no ports/);
    assertAt(oneProblem("- * 47/1"), 1, 8, /no ports/);
  });

  it("rejects `*` anywhere but a leading `*.` label or alone", () => {
    assertAt(oneProblem("- www.*.example.com"), 1, 3, /\*/);
    assertAt(oneProblem("- *example.com"), 1, 3, /\*/);
    assertAt(oneProblem("- *.*.example.com"), 1, 3, /\*/);
    assertAt(oneProblem("- example.*"), 1, 3, /\*/);
  });

  it("rejects a non-ASCII domain and asks for punycode", () => {
    const p = oneProblem("+ bücher.example");
    assertAt(p, 1, 3, /non-ASCII/);
    assert.match(p.message, /punycode/);
  });

  it("rejects an empty label and an empty domain", () => {
    assertAt(oneProblem("- a..example"), 1, 3, /empty label/);
    assertAt(oneProblem("- .example..com"), 1, 3, /empty label/);
    assertAt(oneProblem("- *."), 1, 3, /empty/);
    assertAt(oneProblem("- ."), 1, 3);
  });

  it("rejects a label longer than 63 characters but accepts one of exactly 63", () => {
    const l63 = "a".repeat(63);
    assert.equal(parseRules(`- ${l63}.example`).length, 1);
    assertAt(oneProblem(`- ${l63}b.example`), 1, 3, /longer than 63/);
  });

  it("rejects a domain longer than 253 characters", () => {
    const name = Array.from({ length: 5 }, () => "a".repeat(50)).join(".") + ".com"; // 259 characters
    assertAt(oneProblem(`- ${name}`), 1, 3, /longer than 253/);
  });

  it("rejects a label with characters a host name cannot have", () => {
    assertAt(oneProblem("- -bad.example"), 1, 3, /starts or ends with a hyphen/);
    assertAt(oneProblem("+ bad-.example"), 1, 3, /starts or ends with a hyphen/);
    assertAt(oneProblem("+ ba$d.example"), 1, 3, /characters/);
  });

  it("rejects anything after the port, pointing at it", () => {
    const p = oneProblem("- example.com TCP/80 extra");
    assertAt(p, 1, 22, /unexpected "extra"/);
  });

  it("reports a bad entity and a bad port on the same line as two problems", () => {
    const ps = problemsOf(() => parseRules("- bad..example FOO/1"));
    assert.deepEqual(
      ps.map((p) => [p.line, p.column]),
      [
        [1, 3],
        [1, 16],
      ],
    );
  });

  it("reports every problem in a text, in line order, not just the first", () => {
    const text = [
      "- ok.example", // 1
      "x bad-action.example", // 2
      "- 10.0.0.1/8", // 3
      "# fine", // 4
      "- * TCP/9-1", // 5
      "+ 2001:db8::/32", // 6
      "- a.*.example", // 7
      "- example.com UDP/53 junk", // 8
    ].join("\n");
    const ps = problemsOf(() => parseRules(text));
    assert.deepEqual(
      ps.map((p) => [p.line, p.column]),
      [
        [2, 1],
        [3, 3],
        [5, 9],
        [7, 3],
        [8, 22],
      ],
    );
  });

  it("names the source in the error message with the first problem's position", () => {
    try {
      parseRuleset("+ ok.example\n- 10.0.0.0/33", "home.rules");
      assert.fail("expected a RuleSyntaxError");
    } catch (err) {
      assert.ok(err instanceof RuleSyntaxError);
      assert.match(err.message, /home\.rules:2:3/);
    }
  });
});

describe("ruleset files", () => {
  const sample = [
    "fallback drop", // 1
    "# the default profile", // 2
    "default allow", // 3
    "- ads.example", // 4
    "", // 5
    "[profile kids]", // 6
    "default block", // 7
    "source 192.168.1.64/26", // 8
    "source 2001:db8:1::/48", // 9
    "source aa:bb:cc:dd:ee:ff", // 10
    "+ .wikipedia.org", // 11
    "", // 12
    "[ profile  iot ] # cameras", // 13
    "default ask", // 14
    "source 192.168.1.200", // 15
    "- * TCP/23", // 16
  ].join("\n");

  it("groups rules, sources and defaults into profiles, lines before the first header into default", () => {
    const rs = parseRuleset(sample);
    assert.equal(rs.fallback, "drop");
    assert.deepEqual(
      rs.profiles.map((p) => [p.name, p.defaultAction, p.sources.length, p.rules.map((r) => r.line)]),
      [
        ["default", "allow", 0, [4]],
        ["kids", "block", 3, [11]],
        ["iot", "ask", 1, [16]],
      ],
    );
    const kids = rs.profiles[1]!;
    assert.equal(kids.line, 6);
    assert.deepEqual(
      kids.sources.map((s) => [s.kind, s.line]),
      [
        ["cidr", 8],
        ["cidr", 9],
        ["mac", 10],
      ],
    );
    const mac = kids.sources[2]!;
    assert.ok(mac.kind === "mac");
    assert.deepEqual([...mac.mac], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    const ip = rs.profiles[2]!.sources[0]!;
    assert.ok(ip.kind === "ip");
    assert.equal(ip.prefix, 32);
  });

  it("uses allow as a profile's default and block as the fallback when neither is written", () => {
    const rs = parseRuleset("[profile a]\nsource 10.0.0.1\n");
    assert.equal(rs.fallback, "block");
    assert.deepEqual(
      rs.profiles.map((p) => [p.name, p.defaultAction]),
      [
        ["default", "allow"],
        ["a", "allow"],
      ],
    );
  });

  it("accepts the action synonyms permit, accept, deny, reject in default lines", () => {
    const rs = parseRuleset("default DENY\n[profile a]\ndefault permit\n[profile b]\ndefault Reject\n[profile c]\ndefault accept");
    assert.deepEqual(
      rs.profiles.map((p) => p.defaultAction),
      ["block", "allow", "block", "allow"],
    );
  });

  it("lets an explicit [profile default] header open the default profile when nothing preceded it", () => {
    const rs = parseRuleset("[profile default]\ndefault block\n- a.example\n[profile x]\n+ b.example");
    assert.equal(rs.profiles.length, 2);
    assert.deepEqual([rs.profiles[0]!.name, rs.profiles[0]!.defaultAction, rs.profiles[0]!.line], ["default", "block", 1]);
    assert.deepEqual(
      rs.profiles[0]!.rules.map((r) => r.line),
      [3],
    );
  });

  it("rejects a malformed profile header", () => {
    for (const [text, column] of [
      ["[profile]", 1],
      ["[profile kids", 1],
      ["[profil kids]", 1],
      ["  [kids]", 3],
      ["[profile two words]", 1],
      ["[profile kids] trailing", 1],
    ] as const) {
      const ps = problemsOf(() => parseRuleset(`+ a.example\n${text}`));
      assert.equal(ps.length, 1, text);
      assertAt(ps[0]!, 2, column, /malformed section header/);
      assert.equal(ps[0]!.expected, "[profile <name>]");
    }
  });

  it("rejects a profile name with characters outside A-Z a-z 0-9 _ . -, pointing at the name", () => {
    const ps = problemsOf(() => parseRuleset("[profile k!ds]"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 1, 10, /not allowed/);
  });

  it("rejects a duplicate profile, naming the line of the first one", () => {
    const ps = problemsOf(() => parseRuleset("[profile kids]\n+ a.example\n\n[profile kids]\n"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 4, 10, /already defined on line 1/);
  });

  it("points at the duplicate profile's name even when the name also occurs inside the word profile", () => {
    // "[profile p]": the name "p" is at column 10, but "p" also appears at column 2.
    const ps = problemsOf(() => parseRuleset("[profile p]\n[profile p]"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 2, 10, /already defined/);
  });

  it("rejects [profile default] once the default profile has rules", () => {
    const ps = problemsOf(() => parseRuleset("- a.example\n[profile default]"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 2, 10, /already defined on line 1/);
  });

  it("rejects a source line in the default profile", () => {
    const ps = problemsOf(() => parseRuleset("default block\nsource 10.0.0.1\n[profile a]\nsource 10.0.0.2"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 2, 1, /default profile/);
  });

  it("rejects a source that is not an IP, a CIDR or a MAC, and a source with no or two addresses", () => {
    const ps = problemsOf(() =>
      parseRuleset(["[profile a]", "source 10.0.0.1/33", "source aa:bb:cc:dd:ee", "source", "source 10.0.0.1 10.0.0.2", "source 10.0.0.3/8"].join("\n")),
    );
    assert.deepEqual(
      ps.map((p) => [p.line, p.column]),
      [
        [2, 8],
        [3, 8],
        [4, 7],
        [5, 17],
        [6, 8],
      ],
    );
  });

  it("rejects a default line with an unknown action or without an action", () => {
    const ps = problemsOf(() => parseRuleset(["default maybe", "[profile a]", "default", "default allow now"].join("\n")));
    assert.deepEqual(
      ps.map((p) => [p.line, p.column]),
      [
        [1, 9],
        [3, 8],
        [4, 15],
      ],
    );
    assert.match(ps[0]!.message, /default needs an action/);
    assert.match(ps[0]!.expected, /allow, block, drop or ask/);
  });

  it("rejects ask as the fallback", () => {
    const ps = problemsOf(() => parseRuleset("fallback ask"));
    assert.equal(ps.length, 1);
    assertAt(ps[0]!, 1, 10, /fallback needs an action/);
    assert.doesNotMatch(ps[0]!.expected, /ask/);
  });

  it("reports problems from every profile, each with its profile name", () => {
    const text = [
      "- bad..example", // 1 (default)
      "[profile kids]", // 2
      "source 10.0.0.0/33", // 3
      "+ ok.example", // 4
      "+ 10.0.0.1/24", // 5
      "[profile kids]", // 6
      "[profile iot]", // 7
      "default sometimes", // 8
      "- * UDP/53-1", // 9
    ].join("\n");
    const ps = problemsOf(() => parseRuleset(text));
    assert.deepEqual(
      ps.map((p) => [p.line, p.column, p.profile]),
      [
        [1, 3, undefined],
        [3, 8, "kids"],
        [5, 3, "kids"],
        [6, 10, "kids"],
        [8, 9, "iot"],
        [9, 9, "iot"],
      ],
    );
  });
});

describe("ruleset compilation", () => {
  function compileError(text: string): RuleCompileError {
    const rs = parseRuleset(text);
    try {
      compileRuleset(rs);
    } catch (err) {
      assert.ok(err instanceof RuleCompileError, `expected RuleCompileError, got ${String(err)}`);
      assert.equal(err.code, "RULES_COMPILE");
      return err;
    }
    assert.fail("expected a RuleCompileError");
  }

  it("rejects the same CIDR bound to two profiles, naming both lines", () => {
    const err = compileError("[profile a]\nsource 192.168.1.0/24\n[profile b]\n+ x.example\nsource 192.168.1.0/24");
    assert.match(err.message, /line 5/);
    assert.match(err.message, /"a"/);
    assert.match(err.message, /line 2/);
    assert.equal(err.data?.line, 5);
  });

  it("rejects the same IPv6 prefix bound to two profiles even when written differently", () => {
    compileError("[profile a]\nsource 2001:db8:0:0::/48\n[profile b]\nsource 2001:DB8::/48");
  });

  it("rejects an address bound to two profiles as a plain IP in one and as a /32 in the other", () => {
    compileError("[profile a]\nsource 10.9.8.7\n[profile b]\nsource 10.9.8.7/32");
  });

  it("rejects the same MAC bound to two profiles, whatever its separators and case", () => {
    const err = compileError("[profile a]\nsource aa:bb:cc:00:11:22\n[profile b]\nsource AA-BB-CC-00-11-22");
    assert.match(err.message, /MAC/);
    assert.equal(err.data?.line, 4);
  });

  it("accepts the same source listed twice in one profile, and nested prefixes in different profiles", () => {
    const img = compileRuleset(
      parseRuleset("[profile a]\nsource 10.0.0.0/8\nsource 10.0.0.0/8\nsource aa:bb:cc:00:11:22\nsource aa:bb:cc:00:11:22\n[profile b]\nsource 10.1.0.0/16"),
    );
    assert.deepEqual(img.profiles, ["default", "a", "b"]);
  });

  it("records every rule's profile, line and text in rule id order", () => {
    const img = compileRuleset(parseRuleset("- a.example\n[profile k]\nsource 10.0.0.1\n+ 10.0.0.0/8 TCP/22\n- *"));
    assert.deepEqual(img.rules.map((r) => ({ profile: r.profile, line: r.line, text: r.text })), [
      { profile: "default", line: 1, text: "- a.example" },
      { profile: "k", line: 4, text: "+ 10.0.0.0/8 TCP/22" },
      { profile: "k", line: 5, text: "- *" },
    ]);
    assert.equal(img.stats.rules, 3);
    assert.equal(img.stats.profiles, 2);
  });
});
