// Blocklist parsing (src/dns/lists.ts) as Pi-hole's gravity does it, and the DomainSet
// built from the result: exact vs ABP-subdomain semantics, dedup and a 1M-name build.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DomainSet, EXCEPTION_WHY, NameArena, normalizeDomain, parseList, prepareQuery, scanList } from "../src/dns/lists.js";

describe("parsing blocklists", () => {
  it("reads a hosts file with several names per line, IPv4 and IPv6 sinks", () => {
    const r = parseList(
      [
        "# StevenBlack-style header",
        "127.0.0.1 localhost",
        "127.0.0.1 localhost.localdomain",
        "255.255.255.255 broadcasthost",
        "::1 localhost ip6-localhost ip6-loopback",
        "fe80::1%lo0 localhost",
        "ff02::1 ip6-allnodes",
        "0.0.0.0 local",
        "0.0.0.0 0.0.0.0",
        "",
        "0.0.0.0 ads.example.com tracker.example.net",
        "127.0.0.1\tTelemetry.Example.ORG.",
        ":: v6.example.com",
      ].join("\n"),
    );
    assert.equal(r.format, "hosts");
    assert.deepEqual(r.domains, [
      "ads.example.com",
      "tracker.example.net",
      "telemetry.example.org",
      "v6.example.com",
    ]);
    assert.ok(r.entries.every((e) => !e.subdomains), "hosts entries are exact");
    assert.deepEqual(r.skipped, []);
  });

  it("reads a plain domain list including single labels", () => {
    const r = parseList("example.com\nWWW.Example.Com.\nintranet\n");
    assert.equal(r.format, "plain");
    assert.deepEqual(r.domains, ["example.com", "www.example.com", "intranet"]);
  });

  it("reads ABP ||domain^ rules, with $important allowed and subdomains covered", () => {
    const r = parseList(
      [
        "[Adblock Plus 2.0]",
        "! Title: test",
        "||ads.example.com^",
        "||tracker.example.net^$important",
        "||end.example.org^|",
        "@@||allowed.example.com^",
        "||third.example.com^$third-party",
        "||x.example.com^$important,domain=foo.com",
        "||path.example.com/banner",
        "example.com##.ad-banner",
        "/ads/*",
      ].join("\n"),
    );
    assert.equal(r.format, "abp");
    assert.deepEqual(r.entries, [
      { name: "ads.example.com", subdomains: true },
      { name: "tracker.example.net", subdomains: true },
      { name: "end.example.org", subdomains: true },
    ]);
    assert.deepEqual(
      r.skipped.map((s) => [s.line, s.why]),
      [
        [6, EXCEPTION_WHY],
        [7, "ABP rule with options other than $important: third-party"],
        [8, "ABP rule with options other than $important: domain=foo.com"],
        [9, "unsupported ABP rule (only ||domain^ is supported)"],
        [10, "cosmetic (element hiding) rule"],
        [11, "unsupported ABP rule (only ||domain^ is supported)"],
      ],
    );
    assert.equal(r.skipped[0]!.text, "@@||allowed.example.com^");
  });

  it("calls a list with more than one kind of line mixed", () => {
    const r = parseList("0.0.0.0 a.com\nb.com\n||c.com^\n");
    assert.equal(r.format, "mixed");
    assert.deepEqual(r.domains, ["a.com", "b.com", "c.com"]);
  });

  it("calls an empty or comment-only list plain", () => {
    assert.equal(parseList("").format, "plain");
    assert.equal(parseList("# nothing\n! here\n").format, "plain");
  });

  it("handles a BOM, CRLF and lone CR line ends, and inline comments", () => {
    const r = parseList("\uFEFFa.com\r\n0.0.0.0 b.com # tracker\r\nc.com#why\rd.com\t# note\r\n");
    assert.deepEqual(r.domains, ["a.com", "b.com", "c.com", "d.com"]);
    assert.deepEqual(r.skipped, []);
    assert.equal(r.format, "mixed");
  });

  it("skips invalid lines with the reason and line number instead of throwing", () => {
    const long = "a".repeat(64) + ".com";
    const huge = Array.from({ length: 50 }, () => "abcdef").join(".");
    const r = parseList(
      [
        "-bad.com",
        "bad-.com",
        "a..com",
        long,
        huge,
        "*.wild.com",
        "two words",
        "0.0.0.0",
        "0.0.0.0 ok.com 10.0.0.1 bad!.com",
        ".",
      ].join("\n"),
    );
    assert.deepEqual(r.domains, ["ok.com"]);
    assert.deepEqual(r.skipped, [
      { line: 1, text: "-bad.com", why: "label starts or ends with '-'" },
      { line: 2, text: "bad-.com", why: "label starts or ends with '-'" },
      { line: 3, text: "a..com", why: "empty label" },
      { line: 4, text: long, why: "label longer than 63 characters" },
      { line: 5, text: huge, why: "name longer than 253 characters" },
      { line: 6, text: "*.wild.com", why: "invalid character '*'" },
      { line: 7, text: "two words", why: "unrecognised line: several words without a leading IP address" },
      { line: 8, text: "0.0.0.0", why: "hosts entry without a host name" },
      { line: 9, text: "10.0.0.1", why: "IP address, not a host name" },
      { line: 9, text: "bad!.com", why: "invalid character '!'" },
      { line: 10, text: ".", why: "empty name" },
    ]);
  });

  it("accepts underscores and 63-character labels", () => {
    const label = "b".repeat(63);
    const r = parseList(`_dmarc.example.com\n${label}.com\n`);
    assert.deepEqual(r.domains, ["_dmarc.example.com", `${label}.com`]);
  });

  it("converts internationalized names to punycode", () => {
    const r = parseList("Bücher.de\n0.0.0.0 münchen.example\n||пример.рф^\n");
    assert.deepEqual(r.domains, ["xn--bcher-kva.de", "xn--mnchen-3ya.example", "xn--e1afmkfd.xn--p1ai"]);
    assert.deepEqual(normalizeDomain("ＥＸＡＭＰＬＥ.com"), "example.com");
    assert.deepEqual(normalizeDomain("ü%.com"), { why: "invalid internationalized domain name" });
  });

  it("keeps duplicates in file order and leaves deduplication to the set", () => {
    const r = parseList("a.com\nA.com\n0.0.0.0 a.com\n");
    assert.deepEqual(r.domains, ["a.com", "a.com", "a.com"]);
    assert.equal(DomainSet.build(r.entries).size, 1);
  });
});

describe("scanning list bytes", () => {
  /** Names with their subdomain flag and tag, sorted (deferred names come last in place). */
  function entriesOf(a: NameArena): string[] {
    const out: string[] = [];
    for (let i = 0; i < a.count; i++) out.push(`${a.nameAt(i)}|${a.flags[i]}|${a.tags[i]}`);
    return out.sort();
  }

  it("collects @@||name^ exceptions only when asked, counting them as ABP entries", () => {
    const text = "||ads.example^\n@@||ok.ads.example^\n@@||bad name^\n";
    const asBlock = parseList(text);
    assert.deepEqual(asBlock.exceptions, []);
    assert.deepEqual(asBlock.skipped.map((x) => x.why), [EXCEPTION_WHY, EXCEPTION_WHY]);
    const asAllow = parseList(text, { exceptions: true });
    assert.deepEqual(asAllow.exceptions, [{ name: "ok.ads.example", subdomains: true }]);
    assert.deepEqual(asAllow.skipped.map((x) => [x.line, x.why]), [[3, "invalid character ' '"]]);

    const bytes = Buffer.from(text);
    const a = new NameArena();
    assert.deepEqual(scanList(bytes, a, 7, a), { domains: 2, invalid: 1, abp: 2, exceptions: 1, format: "abp" });
    assert.deepEqual(entriesOf(a), ["ads.example|1|7", "ok.ads.example|1|7"]);
  });

  it("writes names over the list text itself with the same result as into a separate arena", () => {
    let seed = 99;
    const rnd = (n: number): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n;
    const labels = ["ads", "Tracker", "bücher", "xn--bcher-kva", "пример", "a-b", "-bad", "bad-", "_srv", "münchen", "x".repeat(64), "123", "ü%"];
    const name = (): string => {
      let n = labels[rnd(labels.length)]!;
      for (let k = rnd(3); k >= 0; k--) n += "." + labels[rnd(labels.length)];
      return rnd(10) === 0 ? n + "." : n;
    };
    const kinds: (() => string)[] = [
      () => name(),
      () => `0.0.0.0 ${name()} ${name()}`,
      () => `127.0.0.1\t${name()}`,
      () => `||${name()}^`,
      () => `||${name()}^$important`,
      () => `@@||${name()}^`,
      () => `# ${name()}`,
      () => `${name()} # note`,
      () => `${name()}##.ad`,
      () => `/${name()}/`,
      () => "",
      () => `  ${name()}  `,
      () => "::1 localhost ip6-localhost",
      () => "ÿ".repeat(rnd(4)) + name(),
    ];
    // IDN lines back to back at the start leave no slack before the text still to be read, so
    // their (longer) punycode forms must be deferred.
    const lines: string[] = [];
    for (let i = 0; i < 50; i++) lines.push("ü.ü.ü.ü");
    for (let i = 0; i < 5000; i++) lines.push(kinds[rnd(kinds.length)]!());
    const text = Buffer.from(lines.join(rnd(2) === 0 ? "\n" : "\r\n"));

    const copy = new NameArena();
    const c1 = scanList(text, copy, 3, copy);
    const inPlaceText = Buffer.from(text);
    const inPlace = NameArena.over(inPlaceText, 16);
    const c2 = scanList(inPlaceText, inPlace, 3, inPlace, null);
    const beforeDeferred = inPlace.count;
    inPlace.compact();
    assert.ok(inPlace.count > beforeDeferred, "some names were deferred");
    assert.deepEqual(c2, c1);
    assert.ok(c1.domains > 1000 && c1.invalid > 500, `a useful mix: ${JSON.stringify(c1)}`);
    assert.deepEqual(entriesOf(inPlace), entriesOf(copy));
    const parsed = parseList(text.toString("utf8"), { exceptions: true });
    assert.deepEqual([...parsed.domains, ...parsed.exceptions.map((e) => e.name)].sort(), entriesOf(copy).map((e) => e.split("|")[0]).sort());
    assert.throws(() => scanList(inPlaceText, NameArena.over(inPlaceText), 0, null, () => {}), RangeError);
  });

  it("scans several lists into one buffer, each in its own region", () => {
    const a = Buffer.from("one.example\n");
    const b = Buffer.from("0.0.0.0 two.example\n");
    const text = Buffer.concat([a, b]);
    const arena = NameArena.over(text);
    const c1 = scanList(text, arena, 1, null, null, 0, a.length);
    const c2 = scanList(text, arena, 2, null, null, a.length, text.length);
    assert.deepEqual([c1.format, c2.format], ["plain", "hosts"]);
    assert.deepEqual(entriesOf(arena), ["one.example|0|1", "two.example|0|2"]);
    assert.throws(() => scanList(text, arena, 3, null, null, 0, a.length), RangeError, "cannot go back over written bytes");
  });
});

describe("the domain set", () => {
  const set = DomainSet.build(
    parseList(
      ["exact.com", "0.0.0.0 host.example.org", "||abp.net^", "||deep.abp.net^", "_srv.x.io"].join("\n"),
    ).entries,
  );

  it("finds exactly listed names case-insensitively and with a trailing dot", () => {
    assert.equal(set.size, 5);
    for (const n of ["exact.com", "EXACT.com.", "host.example.org", "abp.net", "_srv.x.io"]) {
      assert.ok(set.has(n), n);
    }
    for (const n of ["", ".", "com", "example.org", "sub.exact.com", "exact.co", "xexact.com"]) {
      assert.ok(!set.has(n), n);
    }
  });

  it("blocks children of ABP entries but not of exact-only entries", () => {
    assert.equal(set.matchesSuffix("exact.com"), "exact.com");
    assert.equal(set.matchesSuffix("www.exact.com"), null);
    assert.equal(set.matchesSuffix("a.host.example.org"), null);
    assert.equal(set.matchesSuffix("abp.net"), "abp.net");
    assert.equal(set.matchesSuffix("A.B.ABP.NET."), "abp.net");
    assert.equal(set.matchesSuffix("notabp.net"), null);
    assert.equal(set.matchesSuffix("net"), null);
  });

  it("returns the longest listed parent", () => {
    assert.equal(set.matchesSuffix("x.deep.abp.net"), "deep.abp.net");
    assert.equal(set.matchesSuffix("deep.abp.net"), "deep.abp.net");
  });

  it("skips an exact-only parent and keeps looking further up", () => {
    const s = DomainSet.build([
      { name: "b.c.com", subdomains: false },
      { name: "c.com", subdomains: true },
    ]);
    assert.equal(s.matchesSuffix("a.b.c.com"), "c.com");
    assert.equal(s.matchesSuffix("b.c.com"), "b.c.com");
  });

  it("answers internationalized queries in either form", () => {
    const s = DomainSet.build(parseList("||bücher.de^").entries);
    assert.ok(s.has("BÜCHER.de"));
    assert.ok(s.has("xn--bcher-kva.de"));
    assert.equal(s.matchesSuffix("shop.bücher.de"), "xn--bcher-kva.de");
  });

  it("merges duplicates, covering subdomains if any duplicate does", () => {
    const s = DomainSet.build([
      { name: "a.com", subdomains: false },
      { name: "A.com.", subdomains: true },
      { name: "a.com", subdomains: false },
      { name: "b.com", subdomains: false },
    ]);
    assert.equal(s.size, 2);
    assert.equal(s.matchesSuffix("x.a.com"), "a.com");
    assert.equal(s.matchesSuffix("x.b.com"), null);
  });

  it("indexes only the lists asked for and answers a duplicate with the lowest list id", () => {
    const arena = new NameArena();
    arena.push("shared.example", false, 5);
    arena.push("only5.example", false, 5);
    arena.push("shared.example", true, 2);
    arena.push("only9.example", false, 9);
    const entryOf = (set: DomainSet, name: string): number => {
      assert.ok(prepareQuery(name));
      return set.matchPrepared();
    };
    const both = DomainSet.fromArena(arena, new Set([2, 5]));
    assert.equal(both.size, 2);
    assert.equal(both.has("only9.example"), false);
    assert.equal(both.matchesSuffix("www.shared.example"), "shared.example", "one occurrence covers subdomains");
    assert.equal(both.tagAt(entryOf(both, "shared.example")), 2);
    const five = DomainSet.fromArena(arena, new Set([5]));
    assert.equal(five.tagAt(entryOf(five, "shared.example")), 5);
    assert.equal(five.matchesSuffix("www.shared.example"), null);
  });

  it("works empty and throws on names that are not domains", () => {
    const empty = DomainSet.build([]);
    assert.equal(empty.size, 0);
    assert.ok(!empty.has("a.com"));
    assert.equal(empty.matchesSuffix("a.com"), null);
    assert.throws(() => DomainSet.build([{ name: "a b", subdomains: false }]), RangeError);
  });

  it("agrees with a plain Set on random names, including hash-bucket neighbours", () => {
    let seed = 12345;
    const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const alpha = "abcdefghijklmnopqrstuvwxyz0123456789";
    const word = (): string => {
      let w = "";
      for (let n = 1 + (rnd() % 8); n > 0; n--) w += alpha[rnd() % alpha.length];
      return w;
    };
    const names = Array.from({ length: 5000 }, () => `${word()}.${word()}`);
    const s = DomainSet.build(names.map((name) => ({ name, subdomains: false })));
    const ref = new Set(names);
    assert.equal(s.size, ref.size);
    for (const n of names) assert.ok(s.has(n), n);
    for (let i = 0; i < 5000; i++) {
      const q = `${word()}.${word()}`;
      assert.equal(s.has(q), ref.has(q), q);
    }
  });

  it("builds a million names and reports its size (timing is a sanity bound only)", () => {
    const N = 1_000_000;
    const entries = new Array<{ name: string; subdomains: boolean }>(N);
    for (let i = 0; i < N; i++) {
      entries[i] = { name: `host${i}.tracker${i % 997}.example.com`, subdomains: i % 10 === 0 };
    }
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const s = DomainSet.build(entries);
    const ms = performance.now() - t0;
    const rss1 = process.memoryUsage().rss;
    process.stderr.write(
      `DomainSet.build(1M): ${ms.toFixed(0)} ms, set holds ${(s.bytes / 2 ** 20).toFixed(1)} MiB, ` +
        `RSS +${((rss1 - rss0) / 2 ** 20).toFixed(0)} MiB (now ${(rss1 / 2 ** 20).toFixed(0)} MiB)\n`,
    );
    assert.equal(s.size, N);
    assert.ok(ms < 30_000, `build took ${ms} ms`);
    assert.ok(s.has("host0.tracker0.example.com"));
    assert.ok(s.has("host999999.tracker999999.example.com") === false);
    assert.ok(s.has(`host${N - 1}.tracker${(N - 1) % 997}.example.com`));
    assert.equal(s.matchesSuffix("a.host10.tracker10.example.com"), "host10.tracker10.example.com");
    assert.equal(s.matchesSuffix("a.host11.tracker11.example.com"), null);

    const q0 = performance.now();
    let hits = 0;
    for (let i = 0; i < N; i += 1) if (s.has(entries[i]!.name)) hits++;
    process.stderr.write(`DomainSet.has: ${(((performance.now() - q0) * 1e6) / N).toFixed(0)} ns/lookup\n`);
    assert.equal(hits, N);
  });

  it("parses a million-line hosts file (timing is a sanity bound only)", () => {
    const N = 1_000_000;
    const parts: string[] = [];
    for (let i = 0; i < N; i++) parts.push(`0.0.0.0 ad${i}.example${i % 997}.net`);
    const text = parts.join("\n");
    const t0 = performance.now();
    const r = parseList(text);
    process.stderr.write(`parseList(1M lines): ${(performance.now() - t0).toFixed(0)} ms\n`);
    assert.equal(r.domains.length, N);
    assert.equal(r.format, "hosts");
  });
});
