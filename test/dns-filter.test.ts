// The DNS filter (src/dns/filter.ts): Pi-hole's entry semantics and decision order, regex
// options, per-group application, persistence, and list updates against a local HTTP server.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { compileRegex, DnsFilter, MAX_REGEX_LENGTH } from "../src/dns/filter.js";
import { Decide, DnsInputError, ListStatus } from "../src/dns/types.js";

const A = 1;
const AAAA = 28;
const TXT = 16;
/** A fixed clock: 2024-01-01T00:00:00Z. */
const NOW_MS = 1_704_067_200_000;
const NOW_S = NOW_MS / 1000;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sluice-dnsf-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function openFilter(dir = tempDir(), opts: Parameters<typeof DnsFilter.open>[1] = {}): DnsFilter {
  return DnsFilter.open(dir, { now: () => NOW_MS, ...opts });
}

/** Writes `text` to a file and returns its file:// URL, for lists that need no server. */
function localList(text: string): string {
  const file = join(tempDir(), "list.txt");
  writeFileSync(file, text);
  return pathToFileURL(file).href;
}

function inputErrorOf(fn: () => unknown): DnsInputError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DnsInputError);
    return e;
  }
  assert.fail("expected a DnsInputError");
}

describe("domain entries", () => {
  it("stores exact domains as lower-case punycode with the IDN form in unicode", () => {
    const f = openFilter();
    const { rows, processed } = f.addDomains("deny", "exact", ["Bücher.DE", "Ads.Example.com."], { comment: "shop" });
    assert.deepEqual(processed, { success: [{ item: "Bücher.DE" }, { item: "Ads.Example.com." }], errors: [] });
    assert.deepEqual(
      rows.map((r) => [r.domain, r.unicode, r.type, r.kind, r.comment, r.groups, r.enabled, r.date_added, r.date_modified]),
      [
        ["xn--bcher-kva.de", "bücher.de", "deny", "exact", "shop", [0], true, NOW_S, NOW_S],
        ["ads.example.com", "ads.example.com", "deny", "exact", "shop", [0], true, NOW_S, NOW_S],
      ],
    );
    assert.ok(rows[1]!.id > rows[0]!.id, "ids increase");
    assert.equal(f.check("xn--bcher-kva.de", A, 0), Decide.DENY_EXACT);
  });

  it("reports duplicates and invalid domains per item and still returns the existing rows", () => {
    const f = openFilter();
    f.addDomains("deny", "exact", ["dup.example"], {});
    const { rows, processed } = f.addDomains("deny", "exact", ["DUP.example", "bad!.example", "new.example"], {});
    assert.deepEqual(processed.success, [{ item: "new.example" }]);
    assert.deepEqual(processed.errors, [
      { item: "DUP.example", error: "UNIQUE constraint failed: domainlist.domain, domainlist.type" },
      { item: "bad!.example", error: "Invalid domain: invalid character '!'" },
    ]);
    assert.deepEqual(rows.map((r) => r.domain), ["dup.example", "new.example"]);
    // Pi-hole's uniqueness is per (domain, type): the same name may be on the allow list too.
    assert.equal(f.addDomains("allow", "exact", ["dup.example"], {}).processed.errors.length, 0);
    assert.equal(f.listDomains({ domain: "dup.example" }).length, 2);
  });

  it("putDomain creates, replaces given fields, keeps groups unless given, and moves an entry", () => {
    const f = openFilter();
    const created = f.putDomain("deny", "exact", "Put.Example", { comment: "c1", groups: [0, 3] });
    assert.deepEqual([created.domain, created.comment, created.groups, created.enabled], ["put.example", "c1", [0, 3], true]);

    const edited = f.putDomain("deny", "exact", "put.example", { enabled: false, comment: "c2" });
    assert.equal(edited.id, created.id);
    assert.deepEqual([edited.comment, edited.groups, edited.enabled], ["c2", [0, 3], false]);
    assert.equal(f.check("put.example", A, 0), Decide.NONE, "a disabled entry decides nothing");

    const moved = f.putDomain("deny", "exact", "put.example", { type: "allow", enabled: true, groups: [0] });
    assert.equal(moved.id, created.id);
    assert.deepEqual([moved.type, moved.kind, moved.groups], ["allow", "exact", [0]]);
    assert.deepEqual(f.listDomains({ type: "deny" }), []);
    assert.equal(f.check("put.example", A, 0), Decide.ALLOW_EXACT);

    const asRegex = f.putDomain("allow", "exact", "put.example", { kind: "regex" });
    assert.deepEqual([asRegex.kind, asRegex.domain], ["regex", "put.example"]);
    assert.equal(f.check("input.example", A, 0), Decide.ALLOW_REGEX, "the moved entry is now a pattern");

    f.addDomains("deny", "exact", ["taken.example"], {});
    f.addDomains("allow", "exact", ["taken.example"], {});
    const e = inputErrorOf(() => f.putDomain("allow", "exact", "taken.example", { type: "deny" }));
    assert.equal(e.key, "bad_request");
    assert.equal(inputErrorOf(() => f.putDomain("deny", "exact", "no way!", {})).key, "bad_request");
  });

  it("deletes single entries and batches, reporting what was removed", () => {
    const f = openFilter();
    f.addDomains("deny", "exact", ["a.example", "b.example"], {});
    f.addDomains("deny", "regex", ["^c\\."], {});
    assert.equal(f.deleteDomain("deny", "exact", "A.EXAMPLE"), true, "exact names are matched normalized");
    assert.equal(f.deleteDomain("deny", "exact", "a.example"), false);
    assert.equal(f.deleteDomain("allow", "exact", "b.example"), false, "type must match");
    assert.equal(
      f.batchDeleteDomains([
        { item: "b.example", type: "deny", kind: "exact" },
        { item: "^c\\.", type: "deny", kind: "regex" },
        { item: "zzz.example", type: "deny", kind: "exact" },
      ]),
      2,
    );
    assert.deepEqual(f.listDomains({}), []);
    assert.equal(f.check("c.example", A, 0), Decide.NONE);
  });

  it("refuses a regex that does not compile with regex_error and adds nothing", () => {
    const f = openFilter();
    const e = inputErrorOf(() => f.addDomains("deny", "regex", ["^ok\\.", "(unclosed"], {}));
    assert.equal(e.key, "regex_error");
    assert.equal(e.hint, "missing )");
    assert.deepEqual(f.listDomains({}), []);
    assert.equal(inputErrorOf(() => f.addDomains("deny", "regex", ["a[z-a]"], {})).key, "regex_error");
    assert.match(inputErrorOf(() => compileRegex("a;querytype=BOGUS")).hint!, /unknown query type/);
    assert.match(inputErrorOf(() => compileRegex("a;color=red")).hint!, /unknown option/);
    assert.match(inputErrorOf(() => compileRegex("a;reply=elsewhere")).hint!, /invalid reply/);
    assert.match(inputErrorOf(() => compileRegex("ab{~1}")).hint!, /approximate/);
    assert.match(inputErrorOf(() => compileRegex("[[:bogus:]]")).hint!, /unknown character class/);
  });

  it("refuses over-long patterns and nested unbounded repetition", () => {
    assert.match(inputErrorOf(() => compileRegex("a".repeat(MAX_REGEX_LENGTH + 1))).hint!, /longer than/);
    for (const p of ["(a+)+$", "(x*y?)*z", "^(.*\\.)+foo$", "(a**)b"]) {
      assert.match(inputErrorOf(() => compileRegex(p)).hint!, /exponential/, p);
    }
    // A separator that the repeated part cannot match keeps iterations unambiguous.
    assert.ok(compileRegex("^ad([sxv]?[0-9]*|system)[_.-]([^.[:space:]]+\\.){1,}").re.test("ads-foo.bar.example"));
  });

  it("keeps entries, lists and ids across a reopen", () => {
    const dir = tempDir();
    const f = openFilter(dir);
    f.addDomains("deny", "exact", ["keep.example"], { comment: "why", groups: [0, 2] });
    f.addDomains("allow", "regex", ["^good\\."], {});
    f.addLists("block", ["https://lists.example/hosts.txt"], { comment: "hosts" });
    f.deleteDomain("allow", "regex", "^good\\.");
    assert.ok(!readdirSync(dir).some((n) => n.endsWith(".tmp")), "no temporary file is left behind");

    const g = openFilter(dir);
    assert.deepEqual(g.listDomains({}), f.listDomains({}));
    assert.deepEqual(g.listLists({}), f.listLists({}));
    assert.equal(g.check("keep.example", A, 2), Decide.DENY_EXACT);
    const next = g.addDomains("deny", "exact", ["later.example"], {}).rows[0]!;
    assert.ok(next.id > f.listDomains({ domain: "keep.example" })[0]!.id + 1, "a deleted id is not reused");
  });
});

describe("decisions", () => {
  it("lets allow beat deny in Pi-hole's order, where only a user's exact deny outranks an allow list", async () => {
    const allows = ["exact", "regex", "list"] as const;
    const denies = ["exact", "list", "regex"] as const;
    const name = (a: string, d: string): string => `a-${a}.d-${d}.test`;
    const allowList: string[] = [];
    const blockList: string[] = [];
    const f = openFilter();
    for (const a of allows) {
      for (const d of denies) {
        const n = name(a, d);
        if (a === "exact") f.addDomains("allow", "exact", [n], {});
        if (a === "regex") f.addDomains("allow", "regex", [`^${n.replaceAll(".", "\\.")}$`], {});
        if (a === "list") allowList.push(n);
        if (d === "exact") f.addDomains("deny", "exact", [n], {});
        if (d === "regex") f.addDomains("deny", "regex", [`^${n.replaceAll(".", "\\.")}$`], {});
        if (d === "list") blockList.push(n);
      }
    }
    // Deny-only names show the deny order: exact, then lists, then regex.
    f.addDomains("deny", "exact", ["exact-and-list.test", "exact-and-regex.test"], {});
    f.addDomains("deny", "regex", ["^exact-and-regex\\.test$", "^list-and-regex\\.test$"], {});
    blockList.push("exact-and-list.test", "list-and-regex.test");
    // Exact allow comes before regex allow.
    f.addDomains("allow", "exact", ["both-allows.test"], {});
    f.addDomains("allow", "regex", ["^both-allows\\.test$"], {});

    f.addLists("allow", [localList(allowList.join("\n"))], {});
    f.addLists("block", [localList(blockList.join("\n"))], {});
    await f.update();

    const expected = { exact: Decide.ALLOW_EXACT, regex: Decide.ALLOW_REGEX, list: Decide.ALLOW_LIST };
    for (const a of allows) {
      for (const d of denies) {
        // FTL checks the exact deny list before antigravity: the one deny that wins.
        const want = a === "list" && d === "exact" ? Decide.DENY_EXACT : expected[a];
        assert.equal(f.check(name(a, d), A, 0), want, name(a, d));
      }
    }
    assert.equal(f.check("exact-and-list.test", A, 0), Decide.DENY_EXACT);
    assert.equal(f.check("exact-and-regex.test", A, 0), Decide.DENY_EXACT);
    assert.equal(f.check("list-and-regex.test", A, 0), Decide.DENY_LIST);
    assert.equal(f.check("both-allows.test", A, 0), Decide.ALLOW_EXACT);
    assert.equal(f.check("nothing.test", A, 0), Decide.NONE);
  });

  it("blocks subdomains of ABP entries but only the exact name of plain and hosts entries", async () => {
    const f = openFilter();
    f.addLists("block", [localList("||abp.example^\nplain.example\n0.0.0.0 hosts.example\n")], {});
    await f.update();
    const listId = f.listLists({})[0]!.id;
    for (const n of ["abp.example", "deep.sub.abp.example", "plain.example", "hosts.example"]) {
      assert.equal(f.check(n, A, 0), Decide.DENY_LIST, n);
      assert.equal(f.lastListId, listId);
      assert.equal(f.lastRuleId, -1);
    }
    for (const n of ["sub.plain.example", "sub.hosts.example", "xabp.example", "example"]) {
      assert.equal(f.check(n, A, 0), Decide.NONE, n);
      assert.equal(f.lastListId, -1);
    }
  });

  it("treats @@||name^ exceptions on an allow list as allowing the name and its subdomains", async () => {
    const f = openFilter();
    f.addLists("block", [localList("||ads.example^\n||other.example^\n@@||other.example^\n")], {});
    f.addLists("allow", [localList("@@||ok.ads.example^\nexact.ads.example\n")], {});
    await f.update();
    const [block, allow] = f.listLists({});
    assert.equal(f.check("ok.ads.example", A, 0), Decide.ALLOW_LIST);
    assert.equal(f.lastListId, allow!.id);
    assert.equal(f.check("cdn.ok.ads.example", A, 0), Decide.ALLOW_LIST);
    assert.equal(f.check("exact.ads.example", A, 0), Decide.ALLOW_LIST);
    assert.equal(f.check("sub.exact.ads.example", A, 0), Decide.DENY_LIST, "a plain allow entry is exact only");
    assert.equal(f.lastListId, block!.id);
    // An exception inside a block list is not an allow rule (Pi-hole only reads allow lists for those).
    assert.equal(f.check("other.example", A, 0), Decide.DENY_LIST);
    assert.deepEqual([block!.number, block!.abp_entries, block!.invalid_domains], [2, 2, 1]);
    assert.deepEqual([allow!.number, allow!.abp_entries, allow!.invalid_domains], [2, 1, 0]);
  });

  it("applies querytype, negated querytype, invert and reply options of regex entries", () => {
    const f = openFilter();
    const [onlyAaaa] = f.addDomains("deny", "regex", ["^v6only\\.;querytype=AAAA"], {}).rows;
    f.addDomains("deny", "regex", ["^nottxt\\.;querytype=!TXT,65", "^notaaaa\\.;querytype=!AAAA,!TYPE65"], {});
    const [inverted] = f.addDomains("deny", "regex", ["\\.(com|net)$;invert;reply=NXDOMAIN"], {}).rows;
    f.addDomains("deny", "regex", ["^sinkhole\\.;reply=10.0.0.1"], {});
    f.addDomains("allow", "regex", ["^allowed\\.org$;querytype=A"], {});

    assert.equal(f.check("v6only.example.com", AAAA, 0), Decide.DENY_REGEX);
    assert.equal(f.lastRuleId, onlyAaaa!.id);
    assert.equal(f.lastReply, null);
    assert.equal(f.check("v6only.example.com", A, 0), Decide.NONE);
    assert.equal(f.check("nottxt.example.com", A, 0), Decide.DENY_REGEX);
    assert.equal(f.check("nottxt.example.com", TXT, 0), Decide.NONE);
    assert.equal(f.check("nottxt.example.com", 65, 0), Decide.NONE);
    assert.equal(f.check("notaaaa.example.com", A, 0), Decide.DENY_REGEX);
    assert.equal(f.check("notaaaa.example.com", AAAA, 0), Decide.NONE);
    assert.match(inputErrorOf(() => compileRegex("x;querytype=A,!AAAA")).hint!, /mixes/);

    assert.equal(f.check("site.org", A, 0), Decide.DENY_REGEX, "invert: names not matching are blocked");
    assert.equal(f.lastRuleId, inverted!.id);
    assert.equal(f.lastReply, "nxdomain");
    assert.equal(f.check("site.com", A, 0), Decide.NONE);
    assert.equal(f.check("sinkhole.example.com", A, 0), Decide.DENY_REGEX);
    assert.equal(f.lastReply, "10.0.0.1");
    assert.equal(f.check("allowed.org", A, 0), Decide.ALLOW_REGEX);
    assert.equal(f.lastReply, null, "lastReply is reset by every check");
    assert.equal(f.check("allowed.org", AAAA, 0), Decide.DENY_REGEX, "the allow rule is limited to A");
  });

  it("translates POSIX bracket classes, comments and word boundaries, case-insensitively", () => {
    const cases: [string, string[], string[]][] = [
      ["^ad[[:digit:]]+\\.", ["ad1.x", "AD42.x"], ["ad.x", "adx1.x"]],
      ["^[[:alpha:]]{3}\\.", ["abc.x", "XyZ.x"], ["ab1.x"]],
      ["^[[:alnum:]_-]+$", ["a_b-1"], ["a.b"]],
      ["[[:space:]]", ["a b"], ["ab"]],
      ["^[[:upper:]]+$", ["abc"], ["a1"]],
      ["^[[:lower:][:digit:]]+$", ["abc1"], ["a-1"]],
      ["^[[:xdigit:]]+$", ["deadBEEF09"], ["xyz"]],
      ["[[:punct:]]", ["a-b", "a_b"], ["ab9"]],
      ["^[]a]+$", ["]a]"], ["b"]],
      ["^[a-]+$", ["a-a"], ["b"]],
      ["^tr(?#a comment)ack", ["track.example"], ["tr.example"]],
      ["\\<ads\\>", ["my.ads.example"], ["loads.example"]],
      ["^a+?b$", ["aab", "b"], ["ac"]],
    ];
    for (const [p, yes, no] of cases) {
      const r = compileRegex(p).re;
      assert.ok(!r.flags.includes("u"), "no unicode mode");
      for (const s of yes) assert.ok(r.test(s), `${p} should match ${s}`);
      for (const s of no) assert.ok(!r.test(s), `${p} should not match ${s}`);
    }
  });

  it("applies entries and lists only to the groups they are assigned to", async () => {
    const f = openFilter();
    f.addDomains("deny", "exact", ["kids.example"], { groups: [1] });
    f.addDomains("deny", "regex", ["^games\\."], { groups: [1, 2] });
    f.addDomains("allow", "exact", ["homework.example"], { groups: [1] });
    const listA = localList("||tracker.example^\nhomework.example\n");
    const listB = localList("||social.example^\n");
    f.addLists("block", [listA], { groups: [0, 1, 2] });
    f.addLists("block", [listB], { groups: [1] });
    await f.update();

    assert.equal(f.check("kids.example", A, 0), Decide.NONE);
    assert.equal(f.check("kids.example", A, 1), Decide.DENY_EXACT);
    assert.equal(f.check("games.example", A, 2), Decide.DENY_REGEX);
    assert.equal(f.check("games.example", A, 0), Decide.NONE);
    assert.equal(f.check("homework.example", A, 0), Decide.DENY_LIST);
    assert.equal(f.check("homework.example", A, 1), Decide.ALLOW_EXACT);
    assert.equal(f.check("social.example", A, 1), Decide.DENY_LIST);
    assert.equal(f.check("social.example", A, 0), Decide.NONE);
    assert.equal(f.check("tracker.example", A, 7), Decide.NONE, "a group nothing is assigned to gets nothing");

    assert.equal(f.gravitySet(0), f.gravitySet(2), "groups seeing the same lists share one set");
    assert.notEqual(f.gravitySet(0), f.gravitySet(1));
    assert.equal(f.gravitySet(1).size, 3);
    assert.equal(f.counts().gravity, 3, "distinct names over all block lists");
  });

  it("bumps generation on every change that can alter a decision", async () => {
    const f = openFilter();
    let g = f.generation;
    const bumped = (what: string): void => {
      assert.ok(f.generation > g, what);
      g = f.generation;
    };
    f.addDomains("deny", "exact", ["gen.example"], {});
    bumped("add");
    f.putDomain("deny", "exact", "gen.example", { enabled: false });
    bumped("put");
    f.deleteDomain("deny", "exact", "gen.example");
    bumped("delete");
    const addr = localList("||gen.example^\n");
    f.addLists("block", [addr], {});
    await f.update();
    bumped("update");
    f.putList("block", addr, { enabled: false });
    await f.idle();
    bumped("list disabled");
    assert.equal(f.check("gen.example", A, 0), Decide.NONE);
    f.putList("block", addr, { comment: "only a comment" });
    await f.idle();
    assert.equal(f.generation, g, "a comment changes no decision");
  });

  it("rebuilds list sets on a worker thread and keeps the main thread free meanwhile", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 200_000; i++) lines.push(`0.0.0.0 host${i}.worker.example`);
    const warnings: string[] = [];
    const f = openFilter(tempDir(), { log: { info() {}, warn: (m) => warnings.push(m) } });
    f.addLists("block", [localList(lines.join("\n"))], {});
    let last = performance.now();
    let longestStall = 0;
    const timer = setInterval(() => {
      const t = performance.now();
      longestStall = Math.max(longestStall, t - last);
      last = t;
    }, 1);
    const r = await f.update();
    // One more tick, so a stall just before update() resolved is seen too.
    await new Promise((resolve) => setTimeout(resolve, 5));
    clearInterval(timer);
    assert.deepEqual(warnings, [], "the worker built the sets");
    assert.equal(r.domains, 200_000);
    assert.equal(f.check("host199999.worker.example", A, 0), Decide.DENY_LIST);
    // A build on the main thread would stall timers for all of buildMs.
    assert.ok(longestStall < r.buildMs / 2, `timers stalled ${longestStall.toFixed(0)} ms during a ${r.buildMs.toFixed(0)} ms build`);
  });

  it("takes a disabled, regrouped or deleted list out of effect without downloading it again", async () => {
    const file = join(tempDir(), "l.txt");
    writeFileSync(file, "||gone.example^\n");
    const addr = pathToFileURL(file).href;
    const f = openFilter();
    f.addLists("block", [addr], {});
    await f.update();
    rmSync(file);
    assert.equal(f.check("gone.example", A, 0), Decide.DENY_LIST);
    f.putList("block", addr, { groups: [5] });
    await f.idle();
    assert.equal(f.check("gone.example", A, 0), Decide.NONE);
    assert.equal(f.check("gone.example", A, 5), Decide.DENY_LIST, "rebuilt from the local copy");
    assert.equal(f.deleteList("block", addr), true);
    assert.equal(f.deleteList("block", addr), false);
    await f.idle();
    assert.equal(f.check("gone.example", A, 5), Decide.NONE);
    assert.deepEqual(f.counts().gravity, 0);
  });
});

/** A list server on 127.0.0.1 whose routes the tests change as they go. */
class ListServer {
  private server: Server | null = null;
  port = 0;
  hits = 0;
  routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      this.hits++;
      const route = this.routes.get(req.url ?? "");
      if (route === undefined) {
        res.writeHead(404).end();
        return;
      }
      route(req, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s === null) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
}

/** Serves `body` with an ETag, answering a matching If-None-Match with 304. */
function withEtag(body: () => string, etag: () => string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers["if-none-match"] === etag()) {
      res.writeHead(304, { etag: etag() }).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", etag: etag() }).end(body());
  };
}

function plain(body: () => string) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { "content-type": "text/plain" }).end(body());
  };
}

describe("list updates over HTTP", () => {
  const srv = new ListServer();
  before(() => srv.start());
  after(() => srv.stop());

  it("downloads, then sees 304 and identical bytes as unchanged, then falls back to the local copy", async () => {
    let etagBody = "0.0.0.0 one.example\n0.0.0.0 two.example\nnot a domain!\n";
    srv.routes.set("/etag.txt", withEtag(() => etagBody, () => `"v1"`));
    const plainBody = "||three.example^\n";
    srv.routes.set("/plain.txt", plain(() => plainBody));
    const dir = tempDir();
    let clock = NOW_MS;
    const f = openFilter(dir, { now: () => clock, downloadTimeoutMs: 2000 });
    f.addLists("block", [srv.url("/etag.txt"), srv.url("/plain.txt")], {});
    assert.deepEqual(f.listLists({}).map((l) => l.status), [ListStatus.NEVER, ListStatus.NEVER]);

    const lines: string[] = [];
    const r1 = await f.update((l) => lines.push(l));
    assert.deepEqual(r1.lists.map((l) => [l.status, l.number, l.invalid_domains, l.abp_entries, l.error]), [
      [ListStatus.DOWNLOADED, 2, 1, 0, null],
      [ListStatus.DOWNLOADED, 1, 0, 1, null],
    ]);
    assert.equal(r1.domains, 3);
    assert.ok(lines.some((l) => l.includes("[i] Downloading http://127.0.0.1") ), lines.join("\n"));
    assert.ok(lines.some((l) => /\[✓\] .*etag\.txt: 2 domains/.test(l)), lines.join("\n"));
    assert.equal(f.check("one.example", A, 0), Decide.DENY_LIST);
    assert.deepEqual(f.listLists({}).map((l) => l.date_updated), [NOW_S, NOW_S]);
    assert.equal(f.counts().gravity, 3);
    assert.equal(f.counts().lastUpdate, NOW_S);

    // Second run: the ETag brings a 304, the other list sends the same bytes again.
    clock += 3_600_000;
    etagBody = "this body must not be read\n";
    const r2 = await f.update();
    assert.deepEqual(r2.lists.map((l) => [l.status, l.number]), [
      [ListStatus.UNCHANGED, 2],
      [ListStatus.UNCHANGED, 1],
    ]);
    assert.deepEqual(f.listLists({}).map((l) => l.date_updated), [NOW_S, NOW_S], "content did not change");
    assert.equal(f.counts().lastUpdate, NOW_S + 3600);

    // Third run: the server is gone; both lists keep blocking from their copies.
    await srv.stop();
    f.addLists("block", [srv.url("/new.txt")], {});
    const r3 = await f.update();
    assert.deepEqual(r3.lists.map((l) => l.status), [ListStatus.CACHED, ListStatus.CACHED, ListStatus.UNAVAILABLE]);
    assert.ok(r3.lists.every((l) => l.error !== null));
    assert.equal(f.check("two.example", A, 0), Decide.DENY_LIST);
    assert.equal(f.check("sub.three.example", A, 0), Decide.DENY_LIST);
    assert.deepEqual(f.counts(), {
      gravity: 3,
      lastUpdate: NOW_S + 3600,
      allowExact: 0,
      denyExact: 0,
      allowRegex: 0,
      denyRegex: 0,
      lists: 3,
    });

    // A restart rebuilds from the copies without asking the network, and drops what a crash
    // could have left in the copies folder.
    writeFileSync(join(dir, "lists", "1.txt.part"), "half a download");
    writeFileSync(join(dir, "lists", "99.txt"), "||orphan.example^\n");
    const g = openFilter(dir, { fetch: () => Promise.reject(new Error("no network at startup")) });
    assert.deepEqual(readdirSync(join(dir, "lists")).sort(), ["1.txt", "2.txt"]);
    assert.equal(g.check("one.example", A, 0), Decide.DENY_LIST);
    assert.equal(g.check("three.example", A, 0), Decide.DENY_LIST);
    assert.deepEqual(g.listLists({}).map((l) => l.status), [ListStatus.CACHED, ListStatus.CACHED, ListStatus.UNAVAILABLE]);
    await srv.start(srv.port);
  });

  it("fails a list over maxListBytes as too large and keeps the last good copy", async () => {
    let body = "small.example\n";
    srv.routes.set("/grow.txt", plain(() => body));
    const f = openFilter(tempDir(), { maxListBytes: 1000 });
    f.addLists("block", [srv.url("/grow.txt")], {});
    await f.update();
    body = "x".repeat(2000) + ".example\n";
    const r = await f.update();
    assert.equal(r.lists[0]!.status, ListStatus.CACHED);
    assert.match(r.lists[0]!.error!, /too large/);
    assert.equal(f.check("small.example", A, 0), Decide.DENY_LIST);
  });

  it("stops reading a body without Content-Length once it passes the cap", async () => {
    srv.routes.set("/chunked.txt", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      for (let i = 0; i < 100; i++) res.write(`host${i}.example\n`.repeat(10));
      res.end();
    });
    const f = openFilter(tempDir(), { maxListBytes: 4096 });
    f.addLists("block", [srv.url("/chunked.txt")], {});
    const r = await f.update();
    assert.equal(r.lists[0]!.status, ListStatus.UNAVAILABLE);
    assert.match(r.lists[0]!.error!, /too large/);
  });

  it("gives up on a list that does not answer within the timeout", async () => {
    srv.routes.set("/silent.txt", () => {
      // Never answers; stop() closes the connection.
    });
    const f = openFilter(tempDir(), { downloadTimeoutMs: 200 });
    f.addLists("block", [srv.url("/silent.txt")], {});
    const r = await f.update();
    assert.equal(r.lists[0]!.status, ListStatus.UNAVAILABLE);
    assert.equal(r.lists[0]!.error, "timed out");
  });

  it("reports HTTP errors per list", async () => {
    const f = openFilter();
    f.addLists("block", [srv.url("/missing.txt")], {});
    const r = await f.update();
    assert.equal(r.lists[0]!.status, ListStatus.UNAVAILABLE);
    assert.match(r.lists[0]!.error!, /HTTP 404/);
  });

  it("shares one run between concurrent update() calls", async () => {
    srv.routes.set("/shared.txt", plain(() => "shared.example\n"));
    const f = openFilter();
    f.addLists("block", [srv.url("/shared.txt")], {});
    const before = srv.hits;
    const [a, b] = await Promise.all([f.update(), f.update()]);
    assert.equal(a, b);
    assert.equal(srv.hits - before, 1);
  });

  it("answers from the old set while an update is in flight, and from the new one after the swap", async () => {
    let body = "||old.example^\n";
    let release: () => void = () => {};
    let gate: Promise<void> = Promise.resolve();
    srv.routes.set("/slow.txt", (_req, res) => {
      void gate.then(() => res.writeHead(200).end(body));
    });
    const f = openFilter();
    f.addLists("block", [srv.url("/slow.txt")], {});
    await f.update();
    assert.equal(f.check("old.example", A, 0), Decide.DENY_LIST);

    body = "||new.example^\n";
    gate = new Promise((resolve) => (release = resolve));
    const running = f.update();
    const gen = f.generation;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(f.check("old.example", A, 0), Decide.DENY_LIST, "the old set still answers");
    assert.equal(f.check("new.example", A, 0), Decide.NONE);
    assert.equal(f.generation, gen);
    release();
    await running;
    assert.equal(f.check("old.example", A, 0), Decide.NONE);
    assert.equal(f.check("www.new.example", A, 0), Decide.DENY_LIST);
    assert.ok(f.generation > gen);
  });

  it("validates list addresses and reports duplicates per item", () => {
    const f = openFilter();
    const { rows, processed } = f.addLists(
      "block",
      ["https://ok.example/list.txt", "ftp://nope.example/x", "not a url", "file:///etc/hosts", "https://ok.example/list.txt"],
      { comment: "c" },
    );
    assert.deepEqual(processed.success, [{ item: "https://ok.example/list.txt" }, { item: "file:///etc/hosts" }]);
    assert.deepEqual(
      processed.errors.map((e) => e.item),
      ["ftp://nope.example/x", "not a url", "https://ok.example/list.txt"],
    );
    assert.match(processed.errors[2]!.error, /UNIQUE constraint failed: adlist\.address, adlist\.type/);
    assert.equal(rows.length, 3);
    assert.equal(f.addLists("allow", ["https://ok.example/list.txt"], {}).processed.errors.length, 0, "unique per type");
    assert.equal(inputErrorOf(() => f.putList("block", "gopher://x", {})).key, "bad_request");
    const put = f.putList("block", "https://ok.example/list.txt", { enabled: false });
    assert.deepEqual([put.enabled, put.comment, put.status], [false, "c", ListStatus.NEVER]);
    assert.equal(f.batchDeleteLists([{ item: "https://ok.example/list.txt", type: "block" }, { item: "file:///etc/hosts", type: "allow" }]), 1);
    assert.equal(f.counts().lists, 2);
  });

  it("removes the local copy when a list is deleted", async () => {
    srv.routes.set("/del.txt", plain(() => "del.example\n"));
    const dir = tempDir();
    const f = openFilter(dir);
    f.addLists("block", [srv.url("/del.txt")], {});
    await f.update();
    const id = f.listLists({})[0]!.id;
    assert.ok(existsSync(join(dir, "lists", `${id}.txt`)));
    assert.equal(readFileSync(join(dir, "lists", `${id}.txt`), "utf8"), "del.example\n");
    f.deleteList("block", srv.url("/del.txt"));
    assert.ok(!existsSync(join(dir, "lists", `${id}.txt`)));
    await f.idle();
    assert.equal(f.check("del.example", A, 0), Decide.NONE);
  });
});
