// The resolver without sockets: queries in as bytes, replies out as bytes, an upstream that
// is a function. Covers the protocol edges (errors, EDNS, truncation, 0x20 case, TTL aging,
// negative caching), coalescing, overload, filter decisions and their caching, and that no
// input of any shape makes it throw.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import { Resolver, DEFAULT_RESOLVER_OPTIONS, UDP_LIMIT, type Client, type Forwarder, type Filter, type Transport, type ResolverOptions } from "../src/dns/resolver.js";
import { Decide, QueryStatus, ReplyType } from "../src/dns/types.js";

function query(name: string, type: dnsPacket.RecordType = "A", opts: { id?: number; edns?: boolean; udp?: number; dnssecOk?: boolean; flags?: number } = {}): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: opts.id ?? 4242,
    flags: opts.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: "IN" }],
    additionals: opts.edns ? [{ type: "OPT", name: ".", udpPayloadSize: opts.udp ?? 1232, flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0, options: [] } as unknown as dnsPacket.Answer] : [],
  });
}

/** An upstream answering every A with 192.0.2.<n> (TTL 300), *.nx.test with NXDOMAIN + SOA. */
function upstream(opts: { delayMs?: number; fail?: boolean; soa?: boolean; many?: number } = {}): Forwarder & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async resolve(q: Uint8Array) {
      const p = dnsPacket.decode(Buffer.from(q));
      const question = p.questions![0]!;
      calls.push(`${question.name} ${question.type}`);
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (opts.fail) throw new Error("every upstream failed");
      const base = { type: "response" as const, id: p.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: p.questions, additionals: p.additionals };
      if (question.name.endsWith("nx.test")) {
        const authorities = opts.soa === false ? [] : [{ type: "SOA" as const, name: "nx.test", ttl: 900, data: { mname: "ns.nx.test", rname: "h.nx.test", serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 120 } }];
        return { reply: dnsPacket.encode({ ...base, flags: base.flags | 3, authorities }), upstream: "udp://192.0.2.53:53", rttMs: 1 };
      }
      const n = opts.many ?? 1;
      const answers = Array.from({ length: n }, (_, i) => ({ type: "A" as const, name: question.name, ttl: 300, data: `192.0.2.${(i % 250) + 1}` }));
      return { reply: dnsPacket.encode({ ...base, answers }), upstream: "udp://192.0.2.53:53", rttMs: 1 };
    },
  };
}

function client(over: Partial<Client> = {}): Client {
  return { ip: "10.0.0.5", group: 0, filtering: true, refused: false, ...over };
}

interface Harness {
  r: Resolver;
  log: { status: QueryStatus; reply: ReplyType; domain: string }[];
  /** Answers one query; resolves with the reply (immediate or after the upstream). */
  ask(q: Buffer, c?: Client, limit?: number): Promise<Buffer | null>;
}

function harness(fwd: Forwarder, filter: Filter | null = null, opts: Partial<ResolverOptions> = {}): Harness {
  const log: Harness["log"] = [];
  const r = new Resolver({ ...DEFAULT_RESOLVER_OPTIONS, ...opts }, fwd, filter, { record: (_t, _c, domain, _q, status, reply) => void log.push({ status, reply, domain }) }, null);
  const out = new Uint8Array(70_000);
  return {
    r,
    log,
    ask(q, c = client(), limit = UDP_LIMIT) {
      return new Promise((resolve) => {
        const t: Transport = {
          hold: () => "held",
          deliver: (_h, reply, len) => resolve(Buffer.from(reply.subarray(0, len))),
        };
        r.nowMs = Date.now();
        const n = r.answer(q, 0, q.length, c, out, 0, limit, t, 0);
        if (n > 0) resolve(Buffer.from(out.subarray(0, n)));
        else setTimeout(() => resolve(null), 200); // nothing now; a late reply resolves first
      });
    },
  };
}

const rcode = (b: Buffer) => b[3]! & 15;

describe("the resolver", () => {
  it("forwards a new question once and answers the repeat from the cache, keeping the client's ID and letter case", async () => {
    const up = upstream();
    const h = harness(up);
    const a = dnsPacket.decode((await h.ask(query("www.example.com", "A", { id: 1 })))!);
    assert.equal(a.id, 1);
    assert.equal((a.answers![0] as { data: string }).data, "192.0.2.1");
    const b = dnsPacket.decode((await h.ask(query("WwW.ExAmPlE.CoM", "A", { id: 2 })))!);
    assert.equal(b.id, 2);
    assert.equal(b.questions![0]!.name, "WwW.ExAmPlE.CoM");
    assert.deepEqual(up.calls, ["www.example.com A"]);
    assert.deepEqual(h.log.map((l) => l.status), [QueryStatus.FORWARDED, QueryStatus.CACHE]);
  });

  it("serves cached TTLs aged by the time they spent in the cache", async () => {
    const h = harness(upstream());
    await h.ask(query("age.example.com"));
    const e = [...h.r.cache.entries()].find((x) => x.nameText === "age.example.com")!;
    e.storedAt -= 100_000; // stored 100 s ago
    const b = dnsPacket.decode((await h.ask(query("age.example.com")))!);
    assert.equal((b.answers![0] as { ttl: number }).ttl, 200);
  });

  it("asks the upstream once for identical questions that arrive while the first is on its way", async () => {
    const up = upstream({ delayMs: 30 });
    const h = harness(up);
    const replies = await Promise.all([1, 2, 3].map((id) => h.ask(query("same.example.com", "A", { id }))));
    assert.deepEqual(replies.map((r) => dnsPacket.decode(r!).id), [1, 2, 3]);
    assert.equal(up.calls.length, 1);
  });

  it("caches NXDOMAIN for min(SOA TTL, SOA minimum) and not at all without a SOA", async () => {
    const up = upstream();
    const h = harness(up);
    const first = (await h.ask(query("a.nx.test")))!;
    assert.equal(rcode(first), 3);
    const second = dnsPacket.decode((await h.ask(query("a.nx.test")))!);
    assert.equal((second.authorities![0] as { ttl: number }).ttl, 120, "the SOA carries the negative TTL");
    assert.equal(up.calls.length, 1);
    const noSoa = upstream({ soa: false });
    const h2 = harness(noSoa);
    await h2.ask(query("b.nx.test"));
    await h2.ask(query("b.nx.test"));
    assert.equal(noSoa.calls.length, 2);
  });

  it("answers SERVFAIL when every upstream fails, and does not cache the failure", async () => {
    const up = upstream({ fail: true });
    const h = harness(up);
    assert.equal(rcode((await h.ask(query("down.example.com")))!), 2);
    assert.equal(rcode((await h.ask(query("down.example.com")))!), 2);
    assert.equal(up.calls.length, 2);
    assert.equal(h.log[0]!.reply, ReplyType.SERVFAIL);
  });

  it("answers SERVFAIL at once when too many queries wait for upstreams", async () => {
    const h = harness(upstream({ delayMs: 50 }), null, { maxPending: 2 });
    const replies = await Promise.all(["a", "b", "c"].map((n) => h.ask(query(`${n}.busy.example`))));
    assert.deepEqual(replies.map((r) => rcode(r!)), [0, 0, 2]);
    assert.equal(h.r.counters.overloaded, 1);
  });

  it("keeps UDP replies within 512 bytes without EDNS and within the client's EDNS size, setting TC beyond", async () => {
    const h = harness(upstream({ many: 30 })); // 30 uncompressed A records: about 1000 bytes
    const plain = (await h.ask(query("many.example.com")))!;
    assert.ok(plain.length <= 512);
    assert.ok(dnsPacket.decode(plain).flag_tc);
    const edns = dnsPacket.decode((await h.ask(query("many.example.com", "A", { edns: true, udp: 4096 })))!);
    assert.equal(edns.flag_tc, false);
    assert.equal(edns.answers!.length, 30);
    const tcp = dnsPacket.decode((await h.ask(query("many.example.com"), client(), 65_535))!);
    assert.equal(tcp.answers!.length, 30);
  });

  it("echoes EDNS only to clients that sent it, with their DO bit", async () => {
    const h = harness(upstream());
    const without = dnsPacket.decode((await h.ask(query("e.example.com")))!);
    assert.equal(without.additionals!.length, 0);
    const withDo = dnsPacket.decode((await h.ask(query("e.example.com", "A", { edns: true, dnssecOk: true })))!);
    const opt = withDo.additionals!.find((a) => a.type === "OPT") as unknown as { flags: number; udpPayloadSize: number };
    assert.ok(opt);
    assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
  });

  it("answers FORMERR, NOTIMP, REFUSED and BADVERS where the query asks for them, and ignores responses", async () => {
    const h = harness(upstream());
    const two = Buffer.from(query("x.example.com"));
    two.writeUInt16BE(2, 4); // QDCOUNT 2
    assert.equal(rcode((await h.ask(two))!), 1);
    const notify = query("x.example.com", "A", { flags: 4 << 11 });
    assert.equal(rcode((await h.ask(notify))!), 4);
    const chaos = Buffer.from(query("version.bind", "TXT"));
    chaos.writeUInt16BE(3, chaos.length - 2); // class CH
    assert.equal(rcode((await h.ask(chaos))!), 5);
    const v1 = Buffer.from(query("x.example.com", "A", { edns: true }));
    v1[v1.length - 5] = 1; // EDNS version 1 (OPT: name, type, class, ext-rcode, version, ...)
    const badvers = dnsPacket.decode((await h.ask(v1))!);
    const opt = badvers.additionals!.find((a) => a.type === "OPT") as unknown as { extendedRcode: number };
    assert.equal(opt.extendedRcode, 1, "extended RCODE 16 = BADVERS");
    const response = Buffer.from(query("x.example.com"));
    response[2]! |= 0x80;
    assert.equal(await h.ask(response), null, "a response is never answered");
    assert.equal(await h.ask(Buffer.from([1, 2, 3])), null);
  });

  it("refuses clients outside the LAN", async () => {
    const h = harness(upstream());
    assert.equal(rcode((await h.ask(query("x.example.com"), client({ refused: true })))!), 5);
  });

  it("asks the filter once per name, group and filter generation, and not at all for an unfiltered client", async () => {
    let asked = 0;
    const filter: Filter & { generation: number } = {
      generation: 1,
      lastReply: null,
      lastListId: 7,
      lastRuleId: -1,
      check(name) {
        asked++;
        return name === "ads.example.com" ? Decide.DENY_LIST : Decide.NONE;
      },
    };
    const h = harness(upstream(), filter);
    const blocked = dnsPacket.decode((await h.ask(query("ads.example.com")))!);
    assert.equal((blocked.answers![0] as { data: string }).data, "0.0.0.0");
    await h.ask(query("ads.example.com"));
    assert.equal(asked, 1, "the decision is kept with the entry");
    filter.generation = 2;
    await h.ask(query("ads.example.com"));
    assert.equal(asked, 2, "a new generation asks again");
    await h.ask(query("ads.example.com"), client({ group: 3 }));
    assert.equal(asked, 3, "another group asks again");
    const open = dnsPacket.decode((await h.ask(query("ads.example.com"), client({ filtering: false })))!);
    assert.equal((open.answers![0] as { data: string }).data, "192.0.2.1");
    assert.equal(asked, 3);
    assert.equal(h.log.find((l) => l.domain === "ads.example.com")!.status, QueryStatus.GRAVITY);
  });

  it("follows a regex rule's own reply over the blocking mode", async () => {
    const filter: Filter = { generation: 1, lastReply: null, lastListId: -1, lastRuleId: 3, check: () => Decide.DENY_REGEX };
    const answerWith = async (reply: string | null, type: dnsPacket.RecordType = "A") => {
      filter.lastReply = reply;
      const h = harness(upstream(), filter, { blockingMode: "NULL" });
      const raw = (await h.ask(query("r.example.com", type)))!;
      return Object.assign(dnsPacket.decode(raw), { code: rcode(raw) });
    };
    assert.equal((await answerWith("nxdomain")).code, 3);
    assert.equal((await answerWith("refused")).code, 5);
    assert.equal((await answerWith("nodata")).answers!.length, 0);
    assert.equal(((await answerWith("10.1.2.3")).answers![0] as { data: string }).data, "10.1.2.3");
    assert.equal(((await answerWith("fd00::1", "AAAA")).answers![0] as { data: string }).data, "fd00::1");
    assert.equal(((await answerWith(null)).answers![0] as { data: string }).data, "0.0.0.0");
  });

  it("answers SERVFAIL at once past 256 identical questions waiting for one upstream answer", async () => {
    const up = upstream({ delayMs: 50 });
    const h = harness(up);
    const replies = await Promise.all(Array.from({ length: 260 }, (_, i) => h.ask(query("flood.example.com", "A", { id: i }))));
    const codes = replies.map((r) => rcode(r!));
    assert.equal(codes.filter((c) => c === 0).length, 256);
    assert.equal(codes.filter((c) => c === 2).length, 4);
    assert.equal(up.calls.length, 1);
  });

  it("answers a reply too big to keep but does not cache it, and keeps the cache within its byte budget", async () => {
    const up = upstream({ many: 700 }); // about 22 KB uncompressed
    const h = harness(up);
    const big = dnsPacket.decode((await h.ask(query("huge.example.com"), client(), 65_535))!);
    assert.equal(big.answers!.length, 700);
    await h.ask(query("huge.example.com"), client(), 65_535);
    assert.equal(up.calls.length, 2, "asked again: the big reply was not kept");
    assert.equal(h.r.cache.storedBytes, 0);

    const small = harness(upstream({ many: 10 }), null, { cacheBytes: 2000 });
    for (let i = 0; i < 20; i++) await small.ask(query(`n${i}.example.com`));
    assert.ok(small.r.cache.storedBytes <= 2000, `${small.r.cache.storedBytes} bytes kept`);
    assert.ok(small.r.cache.counters.evictions > 0);
  });

  it("neither answers nor logs anything but REFUSED for a client outside the LAN, even a malformed query", async () => {
    const h = harness(upstream());
    const bad = Buffer.from(query("x.example.com"));
    bad.writeUInt16BE(2, 4);
    assert.equal(rcode((await h.ask(bad, client({ refused: true })))!), 5);
    assert.equal(h.log.length, 0);
  });

  it("never throws, whatever bytes arrive (random and mutated queries)", async () => {
    const h = harness(upstream());
    const out = new Uint8Array(70_000);
    const t: Transport = { hold: () => null, deliver: () => undefined };
    const seed = query("fuzz.example.com", "AAAA", { edns: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (random, flips) => {
        h.r.answer(random, 0, random.length, client(), out, 0, UDP_LIMIT, t, 0);
        const m = Buffer.from(seed);
        for (const [i, v] of flips) m[i] = v;
        const n = h.r.answer(m, 0, m.length, client(), out, 0, UDP_LIMIT, t, 0);
        assert.ok(n >= 0 && n <= 1232);
      }),
      { numRuns: 3000 },
    );
    await new Promise((r) => setTimeout(r, 50));
  });
});
