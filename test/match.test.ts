// The matcher, end to end: rule text -> parseRuleset -> compileRuleset -> Engine.loadImage ->
// evaluate(packet bytes). Every test runs against both cores (the WASM build and its JS twin).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Engine, type Verdict } from "../src/engine/engine.js";
import { parseRuleset } from "../src/rules/parse.js";
import { compileRuleset, type CompiledImage } from "../src/rules/image.js";
import { formatIPv6 } from "../src/core/ip.js";
import * as E from "../assembly/shared/events.js";
import { PROTO, addrBytes, dnsQuery, dnsResponse, httpRequest, icmp, packet, tcp, tlsClientHello, udp, type Addr } from "./helpers/packets.js";

const NOW = 1_700_000_000;
const LAN4 = "192.168.1.10";
const LAN6 = "fd00::10";

type VerdictName = "accept" | "block" | "drop" | "undecided" | "pass-once";
type ByName = "default" | "ip" | "domain" | "ipdom";
const VERDICT_NAMES: Record<number, VerdictName> = {
  [E.VERDICT_UNDECIDED]: "undecided",
  [E.VERDICT_ACCEPT]: "accept",
  [E.VERDICT_BLOCK]: "block",
  [E.VERDICT_DROP]: "drop",
};
const BY_NAMES: Record<number, ByName> = { [E.MB_DEFAULT]: "default", [E.MB_IP]: "ip", [E.MB_DOMAIN]: "domain", [E.MB_IPDOM]: "ipdom" };

interface Decision {
  verdict: VerdictName;
  by: ByName;
  line: number;
}

interface EvalOptions {
  inbound?: boolean;
  mac?: Uint8Array;
  now?: number;
  learnDns?: boolean;
}

interface Loaded {
  engine: Engine;
  image: CompiledImage;
  /** Raw verdict, after checking that rule, line and profile are consistent with the image. */
  evaluate(pkt: Uint8Array, options?: EvalOptions): Verdict;
  /** Verdict, what decided and the deciding rule's line. */
  decide(pkt: Uint8Array, options?: EvalOptions): Decision;
  /** Name of the profile that decided. */
  profileOf(pkt: Uint8Array, options?: EvalOptions): string;
  learn(ip: string, name: string, ttl?: number, now?: number): void;
}

/**
 * A fresh engine with `text` loaded. The twin keeps its memory binding as module state (one
 * twin per thread), so every test makes its own engine and uses only that one.
 */
function load(core: "wasm" | "twin", text: string): Loaded {
  const image = compileRuleset(parseRuleset(text));
  const engine = new Engine({ core, ipdomSets: 64 });
  engine.loadImage(image);
  const evaluate = (pkt: Uint8Array, options: EvalOptions = {}): Verdict => {
    const v = engine.evaluate(pkt, { now: NOW, ...options });
    assert.ok(v.profile < image.profiles.length, `profile index ${v.profile} in range`);
    if (v.rule === null) {
      assert.equal(v.line, 0, "no rule, no line");
      assert.equal(v.matchBy, E.MB_DEFAULT, "no rule: the default decided");
    } else {
      const ref = image.rules[v.rule];
      assert.ok(ref, `rule id ${v.rule} exists`);
      assert.equal(ref.line, v.line, "the returned line is the rule's line");
      assert.equal(ref.profile, image.profiles[v.profile], "the deciding rule belongs to the deciding profile");
      assert.notEqual(v.matchBy, E.MB_DEFAULT);
    }
    return v;
  };
  return {
    engine,
    image,
    evaluate,
    decide(pkt, options) {
      const v = evaluate(pkt, options);
      // A provisional accept holds for this packet only (the connection waits for a name).
      const verdict = (v.packet.flags & E.PF_PROVISIONAL) !== 0 ? "pass-once" : (VERDICT_NAMES[v.verdict] ?? "undecided");
      return { verdict, by: BY_NAMES[v.matchBy] ?? "default", line: v.line };
    },
    profileOf(pkt, options) {
      return image.profiles[evaluate(pkt, options).profile]!;
    },
    learn(ip, name, ttl = 300, now = NOW) {
      assert.equal(engine.learnDomain(ip, name, ttl, now), true, `learned ${ip} -> ${name}`);
    },
  };
}

const d = (verdict: VerdictName, by: ByName, line: number): Decision => ({ verdict, by, line });
const DEFAULT_ACCEPT = d("accept", "default", 0);
/** A bare TCP packet in a profile with domain rules and no name known: passes, decided later. */
const PASS_ONCE = d("pass-once", "default", 0);

function mac(text: string): Uint8Array {
  return Uint8Array.from(text.split(/[:-]/).map((h) => parseInt(h, 16)));
}

/** An HTTP request from the LAN (or src) to `dst` carrying Host: host. */
function http(host: string, dst: Addr = "93.184.216.34", port = 80, src?: Addr): Uint8Array {
  return tcp(src ?? (addrBytes(dst).length === 16 ? LAN6 : LAN4), dst, port, httpRequest(host));
}

/** A TLS ClientHello from the LAN (or src) to `dst` carrying SNI sni. */
function tls(sni: string, dst: Addr = "93.184.216.34", port = 443, src?: Addr): Uint8Array {
  return tcp(src ?? (addrBytes(dst).length === 16 ? LAN6 : LAN4), dst, port, tlsClientHello(sni));
}

/** An outbound TCP SYN (no payload, so no name) from the LAN to dst:port. */
function syn(dst: Addr, port = 443, src?: Addr): Uint8Array {
  return tcp(src ?? (addrBytes(dst).length === 16 ? LAN6 : LAN4), dst, port);
}

for (const core of ["wasm", "twin"] as const) {
  describe(`matcher (${core}): entities`, () => {
    it("blocks an exact domain from the Host header but not its subdomains or look-alikes", () => {
      const r = load(core, "- example.com");
      assert.deepEqual(r.decide(http("example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("www.example.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("badexample.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("example.com.evil.net")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("example.co")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("93.184.216.34", 80)), PASS_ONCE, "a packet without a name");
    });

    it("blocks a subdomain through a *.example.com rule, at any depth, but not the domain itself", () => {
      const r = load(core, "- *.example.com");
      assert.deepEqual(r.decide(http("www.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("a.b.c.d.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("example.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("wwwexample.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("www.badexample.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("com")), DEFAULT_ACCEPT);
    });

    it("blocks a .example.com rule's domain and every subdomain, but not badexample.com", () => {
      const r = load(core, "- .example.com");
      assert.deepEqual(r.decide(http("example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("www.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("x.y.z.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("badexample.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("www.badexample.com")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("example.com.au")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("xample.com")), DEFAULT_ACCEPT);
    });

    it("reads the Host header case-insensitively and without its port", () => {
      const r = load(core, "- www.example.com");
      const pkt = http("WwW.Example.COM:8080");
      const v = r.evaluate(pkt);
      assert.equal(v.packet.name, "www.example.com");
      assert.equal(v.packet.nameSource, "host");
      assert.deepEqual(r.decide(pkt), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("www.example.com:443")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("www.example.com.evil:80")), DEFAULT_ACCEPT);
    });

    it("matches rules written in upper case against lower-cased names", () => {
      const r = load(core, "- WWW.EXAMPLE.COM\n- *.Tracker.NET");
      assert.deepEqual(r.decide(http("www.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(tls("A.TRACKER.NET")), d("block", "domain", 2));
    });

    it("matches the TLS server name (SNI)", () => {
      const r = load(core, "- *.tracker.example\n+ .good.example");
      const pkt = tls("Cdn.Tracker.Example");
      const v = r.evaluate(pkt);
      assert.equal(v.packet.nameSource, "sni");
      assert.equal(v.packet.name, "cdn.tracker.example");
      assert.deepEqual(r.decide(pkt), d("block", "domain", 1));
      assert.deepEqual(r.decide(tls("tracker.example")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(tls("good.example")), d("accept", "domain", 2));
      assert.deepEqual(r.decide(tls("www.tracker.example", "2001:db8::443")), d("block", "domain", 1), "over IPv6 too");
    });

    it("matches the DNS question name", () => {
      const r = load(core, "- .example.net");
      const pkt = udp(LAN4, "9.9.9.9", 53, dnsQuery("Ads.Example.NET"));
      const v = r.evaluate(pkt);
      assert.equal(v.packet.nameSource, "dns");
      assert.equal(v.packet.name, "ads.example.net");
      assert.deepEqual(r.decide(pkt), d("block", "domain", 1));
      assert.deepEqual(r.decide(udp(LAN6, "2620:fe::fe", 53, dnsQuery("example.net", 28))), d("block", "domain", 1));
      // Accepted DNS passes once (never fast-tracked, so its answer is seen): see below.
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 53, dnsQuery("example.network"))), d("pass-once", "default", 0));
    });

    it("ignores a trailing dot in the packet's name", () => {
      const r = load(core, "- www.example.com\n- *.tracker.example");
      assert.deepEqual(r.decide(http("www.example.com.")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("www.example.com.:8080")), d("block", "domain", 1));
      assert.deepEqual(r.decide(tls("www.example.com.")), d("block", "domain", 1));
      assert.deepEqual(r.decide(tls("x.tracker.example.")), d("block", "domain", 2));
      assert.deepEqual(r.decide(tls("tracker.example.")), DEFAULT_ACCEPT);
    });

    it("matches a rule written with a trailing dot", () => {
      const r = load(core, "- www.example.com.\n- .example.org.");
      assert.deepEqual(r.decide(http("www.example.com")), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("example.org")), d("block", "domain", 2));
      assert.deepEqual(r.decide(http("a.example.org")), d("block", "domain", 2));
    });

    it("blocks an IPv4 address and nothing next to it", () => {
      const r = load(core, "- 203.0.113.7");
      assert.deepEqual(r.decide(syn("203.0.113.7")), d("block", "ip", 1));
      assert.deepEqual(r.decide(udp(LAN4, "203.0.113.7", 9999)), d("block", "ip", 1));
      assert.deepEqual(r.decide(icmp(LAN4, "203.0.113.7")), d("drop", "ip", 1));
      assert.deepEqual(r.decide(syn("203.0.113.6")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("203.0.113.8")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("::ffff:203.0.113.7")), DEFAULT_ACCEPT, "an IPv4-mapped IPv6 address is IPv6");
    });

    it("blocks an IPv4 CIDR from its first to its last address", () => {
      const r = load(core, "- 203.0.113.0/25");
      assert.deepEqual(r.decide(syn("203.0.113.0")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("203.0.113.64")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("203.0.113.127")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("203.0.113.128")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("203.0.112.255")), DEFAULT_ACCEPT);
    });

    it("blocks an IPv6 address and nothing next to it", () => {
      const r = load(core, "- 2001:db8::7");
      assert.deepEqual(r.decide(syn("2001:db8::7")), d("block", "ip", 1));
      assert.deepEqual(r.decide(icmp(LAN6, "2001:db8::7")), d("drop", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8::6")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("2001:db8::8")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("2001:db8:0:1::7")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("32.1.13.184")), DEFAULT_ACCEPT, "IPv4 with the same leading bytes");
    });

    it("blocks an IPv6 CIDR from its first to its last address", () => {
      const r = load(core, "- 2001:db8:abcd::/48");
      assert.deepEqual(r.decide(syn("2001:db8:abcd::")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8:abcd:1234::1")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8:abce::")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("2001:db8:abcc:ffff:ffff:ffff:ffff:ffff")), DEFAULT_ACCEPT);
    });

    it("matches * on both address families and every protocol", () => {
      const r = load(core, "default drop\n+ 10.0.0.0/8\n- *");
      assert.deepEqual(r.decide(syn("10.1.2.3")), d("accept", "ip", 2));
      assert.deepEqual(r.decide(syn("11.0.0.0")), d("block", "ip", 3));
      assert.deepEqual(r.decide(udp(LAN4, "255.255.255.255", 1)), d("block", "ip", 3));
      assert.deepEqual(r.decide(syn("0.0.0.0")), d("block", "ip", 3));
      assert.deepEqual(r.decide(syn("2001:db8::1")), d("block", "ip", 3));
      assert.deepEqual(r.decide(syn("::")), d("block", "ip", 3));
      assert.deepEqual(r.decide(syn("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), d("block", "ip", 3));
      assert.deepEqual(r.decide(icmp(LAN6, "2001:db8::1")), d("drop", "ip", 3));
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "198.51.100.1", proto: PROTO.gre })), d("block", "ip", 3));
    });

    it("keeps 0.0.0.0/0 to IPv4 and ::/0 to IPv6", () => {
      const r = load(core, "- 0.0.0.0/0\n+ ::/0\ndefault drop");
      assert.deepEqual(r.decide(syn("1.2.3.4")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("255.255.255.255")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8::1")), d("accept", "ip", 2));
      assert.deepEqual(r.decide(syn("ffff::1")), d("accept", "ip", 2));
    });

    it("does not apply IP rules to names or domain rules to addresses", () => {
      const r = load(core, "- 93.184.216.34\n- example.org");
      // An HTTP request to another address naming a host that is an address-like label.
      assert.deepEqual(r.decide(http("93.184.216.34", "198.51.100.1")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(http("example.org", "198.51.100.1")), d("block", "domain", 2));
    });
  });

  describe(`matcher (${core}): protocols and ports`, () => {
    const rules = [
      "default allow", // 1
      "+ * TCP/443", // 2
      "+ * UDP/53", // 3
      "+ * TCP/8000-8080", // 4
      "+ * 47", // 5
      "+ 192.0.2.1 ICMP", // 6
      "+ 2001:db8::1 ICMPv6", // 7
      "+ * 6/22", // 8
      "+ * SCTP/5000", // 9
      "- * */*", // 10
    ].join("\n");

    it("allows TCP/443 but not TCP/444 or UDP/443", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(syn("198.51.100.1", 443)), d("accept", "ip", 2));
      assert.deepEqual(r.decide(syn("2001:db8::99", 443)), d("accept", "ip", 2));
      assert.deepEqual(r.decide(syn("198.51.100.1", 444)), d("block", "ip", 10));
      assert.deepEqual(r.decide(syn("198.51.100.1", 442)), d("block", "ip", 10));
      assert.deepEqual(r.decide(udp(LAN4, "198.51.100.1", 443)), d("block", "ip", 10));
    });

    it("allows UDP/53 but not TCP/53", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 53)), d("accept", "ip", 3));
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 53, dnsQuery("example.com"))), d("pass-once", "ip", 3), "DNS is never fast-tracked");
      assert.deepEqual(r.decide(syn("9.9.9.9", 53)), d("block", "ip", 10));
    });

    it("matches a port range at both edges and not just outside them", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(syn("198.51.100.1", 7999)), d("block", "ip", 10));
      assert.deepEqual(r.decide(syn("198.51.100.1", 8000)), d("accept", "ip", 4));
      assert.deepEqual(r.decide(syn("198.51.100.1", 8042)), d("accept", "ip", 4));
      assert.deepEqual(r.decide(syn("198.51.100.1", 8080)), d("accept", "ip", 4));
      assert.deepEqual(r.decide(syn("198.51.100.1", 8081)), d("block", "ip", 10));
      assert.deepEqual(r.decide(udp(LAN4, "198.51.100.1", 8000)), d("block", "ip", 10), "range is TCP only");
    });

    it("matches a numeric protocol, and a number the same as a named protocol", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "198.51.100.1", proto: PROTO.gre })), d("accept", "ip", 5));
      assert.deepEqual(r.decide(packet({ src: LAN6, dst: "2001:db8::5", proto: PROTO.gre })), d("accept", "ip", 5));
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "198.51.100.1", proto: 50 })), d("block", "ip", 10));
      assert.deepEqual(r.decide(syn("198.51.100.1", 22)), d("accept", "ip", 8));
      assert.deepEqual(r.decide(udp(LAN4, "198.51.100.1", 22)), d("block", "ip", 10));
    });

    it("matches an ICMP rule without a port for ICMP only, per address family", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(icmp(LAN4, "192.0.2.1")), d("accept", "ip", 6));
      assert.deepEqual(r.decide(icmp(LAN4, "192.0.2.1", 0)), d("accept", "ip", 6), "echo reply too");
      assert.deepEqual(r.decide(icmp(LAN4, "192.0.2.2")), d("drop", "ip", 10));
      assert.deepEqual(r.decide(syn("192.0.2.1", 80)), d("block", "ip", 10));
      assert.deepEqual(r.decide(icmp(LAN6, "2001:db8::1")), d("accept", "ip", 7));
      assert.deepEqual(r.decide(packet({ src: LAN6, dst: "2001:db8::1", proto: PROTO.icmp })), d("drop", "ip", 10), "ICMP (1) is not ICMPv6 (58)");
    });

    it("matches SCTP ports", () => {
      const r = load(core, rules);
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "198.51.100.1", proto: PROTO.sctp, dport: 5000 })), d("accept", "ip", 9));
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "198.51.100.1", proto: PROTO.sctp, dport: 5001 })), d("block", "ip", 10));
    });

    it("never matches a rule with a port condition against ICMP, even over the whole port range", () => {
      const r = load(core, "- 192.0.2.9 */0-65535\n- 2001:db8::9 */0-65535\n- * TCP/0\n- * */1-65535");
      assert.deepEqual(r.decide(icmp(LAN4, "192.0.2.9")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(icmp(LAN6, "2001:db8::9")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(packet({ src: LAN4, dst: "192.0.2.9", proto: PROTO.gre })), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(syn("192.0.2.9", 0)), d("block", "ip", 1));
      assert.deepEqual(r.decide(udp(LAN4, "192.0.2.9", 65535)), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("2001:db8::9", 1)), d("block", "ip", 2));
      assert.deepEqual(r.decide(syn("192.0.2.10", 0)), d("block", "ip", 3), "port 0 is a port");
      assert.deepEqual(r.decide(icmp(LAN4, "192.0.2.10")), DEFAULT_ACCEPT);
    });

    it("matches a protocol without a port on every port of that protocol", () => {
      const r = load(core, "- * UDP\n+ * */*\ndefault drop");
      assert.deepEqual(r.decide(udp(LAN4, "198.51.100.1", 0)), d("block", "ip", 1));
      assert.deepEqual(r.decide(udp(LAN4, "198.51.100.1", 65535)), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("198.51.100.1", 65535)), d("accept", "ip", 2));
      assert.deepEqual(r.decide(icmp(LAN4, "198.51.100.1")), d("accept", "ip", 2));
    });

    it("applies protocol and port conditions to domain rules", () => {
      const r = load(core, "- example.com TCP/443\n+ .example.com UDP/53\ndefault drop");
      assert.deepEqual(r.decide(tls("example.com", "93.184.216.34", 443)), d("block", "domain", 1));
      assert.deepEqual(r.decide(http("example.com", "93.184.216.34", 80)), d("drop", "default", 0));
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 53, dnsQuery("www.example.com"))), d("pass-once", "domain", 2));
      assert.deepEqual(r.decide(tls("www.example.com", "93.184.216.34", 443)), d("drop", "default", 0));
    });
  });

  describe(`matcher (${core}): overlapping and adjacent ranges`, () => {
    type Case = [addr: string, verdict: VerdictName, line: number];
    function check(r: Loaded, cases: Case[]): void {
      for (const [addr, verdict, line] of cases) {
        assert.deepEqual(r.decide(syn(addr)), d(verdict, line === 0 ? "default" : "ip", line), addr);
      }
    }

    it("lets a wide block first in the text shadow narrower rules after it", () => {
      const r = load(core, "- 10.0.0.0/8\n+ 10.1.0.0/16\n- 10.1.2.0/24");
      check(r, [
        ["10.0.0.0", "block", 1],
        ["10.1.0.0", "block", 1],
        ["10.1.2.3", "block", 1],
        ["10.1.255.255", "block", 1],
        ["10.255.255.255", "block", 1],
        ["11.0.0.0", "accept", 0],
        ["9.255.255.255", "accept", 0],
      ]);
    });

    it("lets the narrowest rule win when it comes first", () => {
      const r = load(core, "- 10.1.2.0/24\n+ 10.1.0.0/16\n- 10.0.0.0/8\ndefault drop");
      check(r, [
        ["10.1.2.0", "block", 1],
        ["10.1.2.255", "block", 1],
        ["10.1.3.0", "accept", 2],
        ["10.1.1.255", "accept", 2],
        ["10.1.0.0", "accept", 2],
        ["10.1.255.255", "accept", 2],
        ["10.2.0.0", "block", 3],
        ["10.0.255.255", "block", 3],
        ["10.0.0.0", "block", 3],
        ["10.255.255.255", "block", 3],
        ["11.0.0.0", "drop", 0],
        ["9.255.255.255", "drop", 0],
      ]);
    });

    it("decides by text order, not prefix length, when the middle prefix comes first", () => {
      const r = load(core, "+ 10.1.0.0/16\n- 10.0.0.0/8\n- 10.1.2.0/24\ndefault drop");
      check(r, [
        ["10.1.2.3", "accept", 1],
        ["10.1.0.0", "accept", 1],
        ["10.1.255.255", "accept", 1],
        ["10.2.0.0", "block", 2],
        ["10.0.255.255", "block", 2],
        ["11.0.0.0", "drop", 0],
      ]);
    });

    it("falls through to a wider prefix when the narrow first rule's port does not fit", () => {
      const r = load(core, "- 10.1.2.0/24 TCP/22\n+ 10.0.0.0/8\n- 10.1.2.3");
      assert.deepEqual(r.decide(syn("10.1.2.3", 22)), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("10.1.2.3", 23)), d("accept", "ip", 2));
      assert.deepEqual(r.decide(udp(LAN4, "10.1.2.3", 22)), d("accept", "ip", 2));
    });

    it("never lets a rule after an unconditional match win, even a narrower one", () => {
      const r = load(core, "+ 10.1.2.3 TCP/80\n- 10.0.0.0/8\n+ 10.1.2.3 TCP/443\n+ 10.1.2.0/24");
      assert.deepEqual(r.decide(syn("10.1.2.3", 80)), d("accept", "ip", 1));
      assert.deepEqual(r.decide(syn("10.1.2.3", 443)), d("block", "ip", 2));
      assert.deepEqual(r.decide(syn("10.1.2.4", 443)), d("block", "ip", 2));
    });

    it("splits adjacent ranges exactly at their boundary addresses", () => {
      const r = load(core, "- 192.168.0.0/24\n+ 192.168.1.0/24\n- 192.168.2.0/23\ndefault drop");
      check(r, [
        ["192.167.255.255", "drop", 0],
        ["192.168.0.0", "block", 1],
        ["192.168.0.255", "block", 1],
        ["192.168.1.0", "accept", 2],
        ["192.168.1.255", "accept", 2],
        ["192.168.2.0", "block", 3],
        ["192.168.3.255", "block", 3],
        ["192.168.4.0", "drop", 0],
      ]);
    });

    it("returns to the outer rule right after a nested prefix ends", () => {
      const r = load(core, "- 172.16.0.5\n+ 172.16.0.0/30\n- 172.16.0.0/16\n+ 172.16.128.0/17\ndefault drop");
      check(r, [
        ["172.16.0.0", "accept", 2],
        ["172.16.0.3", "accept", 2],
        ["172.16.0.4", "block", 3],
        ["172.16.0.5", "block", 1],
        ["172.16.0.6", "block", 3],
        ["172.16.127.255", "block", 3],
        ["172.16.128.0", "block", 3],
        ["172.16.255.255", "block", 3],
        ["172.17.0.0", "drop", 0],
        ["172.15.255.255", "drop", 0],
      ]);
    });

    it("handles a /32 and a /0 together", () => {
      const r = load(core, "- 198.51.100.7/32\n+ 0.0.0.0/0");
      check(r, [
        ["198.51.100.7", "block", 1],
        ["198.51.100.6", "accept", 2],
        ["198.51.100.8", "accept", 2],
        ["0.0.0.0", "accept", 2],
        ["255.255.255.255", "accept", 2],
      ]);
      assert.deepEqual(r.decide(syn("2001:db8::7")), DEFAULT_ACCEPT);
    });

    it("compares IPv4 addresses at and above 128.0.0.0 as unsigned", () => {
      const r = load(core, "+ 255.255.255.255\n- 200.0.0.0/8\n+ 128.0.0.0/1\n- 127.255.255.255\ndefault drop");
      check(r, [
        ["255.255.255.255", "accept", 1],
        ["255.255.255.254", "accept", 3],
        ["200.0.0.0", "block", 2],
        ["200.255.255.255", "block", 2],
        ["199.255.255.255", "accept", 3],
        ["201.0.0.0", "accept", 3],
        ["128.0.0.0", "accept", 3],
        ["127.255.255.255", "block", 4],
        ["127.255.255.254", "drop", 0],
        ["0.0.0.0", "drop", 0],
        ["1.0.0.0", "drop", 0],
      ]);
    });

    it("compares IPv6 addresses with the high bit set in any 32-bit word as unsigned", () => {
      const r = load(
        core,
        [
          "+ ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", // 1
          "- ff00::/8", // 2
          "+ 8000::/1", // 3
          "- 2001:db8:0:0:8000::/65", // 4
          "+ 2001:db8::ffff:fff0/124", // 5
          "- 2001:db8:8000::/33", // 6
          "+ 2001:db8::/32", // 7
          "default drop",
        ].join("\n"),
      );
      check(r, [
        ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "accept", 1],
        ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "block", 2],
        ["ff00::", "block", 2],
        ["feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "accept", 3],
        ["8000::", "accept", 3],
        ["7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "drop", 0],
        ["::", "drop", 0],
        ["2001:db8::8000:0:0:0", "block", 4],
        ["2001:db8::ffff:ffff:ffff:ffff", "block", 4],
        ["2001:db8::7fff:ffff:ffff:ffff", "accept", 7],
        ["2001:db8::ffff:fff0", "accept", 5],
        ["2001:db8::ffff:ffff", "accept", 5],
        ["2001:db8::ffff:ffef", "accept", 7],
        ["2001:db8::1:0:0", "accept", 7],
        ["2001:db8:8000::", "block", 6],
        ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "block", 6],
        ["2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", "accept", 7],
        ["2001:db9::", "drop", 0],
        ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "drop", 0],
      ]);
    });

    it("matches a /128 and only that address", () => {
      const r = load(core, "- 2001:db8::1/128\n+ 2001:db8::/64\ndefault drop");
      check(r, [
        ["2001:db8::1", "block", 1],
        ["2001:db8::", "accept", 2],
        ["2001:db8::2", "accept", 2],
        ["2001:db8::ffff:ffff:ffff:ffff", "accept", 2],
        ["2001:db8:0:1::", "drop", 0],
      ]);
    });
  });

  describe(`matcher (${core}): domain and IP rules in one profile`, () => {
    it("lets an earlier domain rule beat a later IP rule", () => {
      const r = load(core, "+ example.com\n- 93.184.216.34\ndefault drop");
      assert.deepEqual(r.decide(http("example.com", "93.184.216.34")), d("accept", "domain", 1));
      assert.deepEqual(r.decide(tls("example.com", "93.184.216.34")), d("accept", "domain", 1));
      assert.deepEqual(r.decide(http("other.example", "93.184.216.34")), d("block", "ip", 2));
      // A SYN names nothing yet and the domain rule comes first: it passes, the connection waits.
      assert.deepEqual(r.decide(syn("93.184.216.34")), d("pass-once", "ip", 2));
    });

    it("decides a bare TCP packet at once when a rule before every domain rule applies", () => {
      const r = load(core, "- 10.0.0.0/8\n+ example.com\n- *");
      assert.deepEqual(r.decide(syn("10.1.2.3")), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("93.184.216.34")), d("pass-once", "ip", 3));
      const noDomains = load(core, "- 10.0.0.0/8\n+ *");
      assert.deepEqual(noDomains.decide(syn("93.184.216.34")), d("accept", "ip", 2));
    });

    it("lets an earlier IP rule beat a later domain rule", () => {
      const r = load(core, "- 93.184.216.34\n+ example.com\ndefault drop");
      assert.deepEqual(r.decide(http("example.com", "93.184.216.34")), d("block", "ip", 1));
      assert.deepEqual(r.decide(http("example.com", "93.184.216.35")), d("accept", "domain", 2));
    });

    it("lets an earlier * rule beat every later domain rule", () => {
      const r = load(core, "- * TCP/80\n+ .example.com\n- *");
      assert.deepEqual(r.decide(http("www.example.com")), d("block", "ip", 1));
      assert.deepEqual(r.decide(tls("www.example.com")), d("accept", "domain", 2));
      assert.deepEqual(r.decide(tls("other.example")), d("block", "ip", 3));
    });

    it("skips an earlier IP rule whose port does not fit and takes the later domain rule", () => {
      const r = load(core, "- 93.184.216.34 TCP/443\n+ example.com\n- 93.184.216.0/24");
      assert.deepEqual(r.decide(http("example.com", "93.184.216.34", 80)), d("accept", "domain", 2));
      assert.deepEqual(r.decide(tls("example.com", "93.184.216.34", 443)), d("block", "ip", 1));
      assert.deepEqual(r.decide(syn("93.184.216.34", 80)), d("pass-once", "ip", 3));
    });

    it("orders domain rules on different levels of one name by text order", () => {
      const narrowFirst = load(core, "- *.ads.example.com\n+ .example.com\ndefault drop");
      assert.deepEqual(narrowFirst.decide(tls("x.ads.example.com")), d("block", "domain", 1));
      assert.deepEqual(narrowFirst.decide(tls("ads.example.com")), d("accept", "domain", 2));
      assert.deepEqual(narrowFirst.decide(tls("example.com")), d("accept", "domain", 2));
      const wideFirst = load(core, "+ .example.com\n- *.ads.example.com\ndefault drop");
      assert.deepEqual(wideFirst.decide(tls("x.ads.example.com")), d("accept", "domain", 1));
      assert.deepEqual(wideFirst.decide(tls("deep.x.ads.example.com")), d("accept", "domain", 1));
    });

    it("keeps the domain's own rules apart from its subdomain rules", () => {
      const r = load(core, "+ *.example.com\n- example.com\n- .example.com\ndefault drop");
      assert.deepEqual(r.decide(tls("example.com")), d("block", "domain", 2));
      assert.deepEqual(r.decide(tls("www.example.com")), d("accept", "domain", 1));
      const r2 = load(core, "- example.com TCP/80\n+ .example.com\n- *.example.com");
      assert.deepEqual(r2.decide(http("example.com")), d("block", "domain", 1));
      assert.deepEqual(r2.decide(tls("example.com")), d("accept", "domain", 2));
      assert.deepEqual(r2.decide(http("a.example.com")), d("accept", "domain", 2));
    });

    it("lets a domain rule learned through the IP->domain table keep its place in the order", () => {
      const domainFirst = load(core, "+ *.cdn.example\n- 198.51.100.0/24\ndefault drop");
      domainFirst.learn("198.51.100.20", "img.cdn.example");
      assert.deepEqual(domainFirst.decide(syn("198.51.100.20")), d("accept", "ipdom", 1));
      assert.deepEqual(domainFirst.decide(syn("198.51.100.21")), d("pass-once", "ip", 2));
      const ipFirst = load(core, "- 198.51.100.0/24\n+ *.cdn.example\ndefault drop");
      ipFirst.learn("198.51.100.20", "img.cdn.example");
      assert.deepEqual(ipFirst.decide(syn("198.51.100.20")), d("block", "ip", 1));
      ipFirst.learn("203.0.113.20", "img.cdn.example");
      assert.deepEqual(ipFirst.decide(syn("203.0.113.20")), d("accept", "ipdom", 2));
    });
  });

  describe(`matcher (${core}): DNS is never fast-tracked`, () => {
    it("passes accepted DNS once, so the answer is queued and learned, and blocks blocked DNS for good", () => {
      const r = load(core, "- ads.example UDP/53\n+ *");
      const query = udp(LAN4, "9.9.9.9", 53, dnsQuery("www.example.org"));
      assert.deepEqual(r.decide(query), d("pass-once", "ip", 2));
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 53, dnsQuery("ads.example"))), d("block", "domain", 1));
      assert.deepEqual(r.decide(udp(LAN4, "9.9.9.9", 9999, new Uint8Array(20))), d("accept", "ip", 2), "other UDP is decided for good");
    });
  });

  describe(`matcher (${core}): the IP->domain table`, () => {
    it("matches a domain rule through a learned address, saying the table decided", () => {
      const r = load(core, "- .example.net");
      r.learn("198.51.100.20", "ads.example.net");
      const v = r.evaluate(syn("198.51.100.20"));
      assert.equal(v.packet.name, "ads.example.net");
      assert.equal(v.packet.nameSource, "ipdom");
      assert.deepEqual(r.decide(syn("198.51.100.20")), d("block", "ipdom", 1));
      assert.deepEqual(r.decide(syn("198.51.100.21")), PASS_ONCE);
      r.learn("2001:db8::20", "v6.example.net");
      assert.deepEqual(r.decide(syn("2001:db8::20")), d("block", "ipdom", 1));
      assert.deepEqual(r.decide(syn("2001:db8::21")), PASS_ONCE);
    });

    it("learns names case-insensitively and without a trailing dot", () => {
      const r = load(core, "- www.example.net");
      r.learn("198.51.100.30", "WWW.Example.NET.");
      assert.deepEqual(r.decide(syn("198.51.100.30")), d("block", "ipdom", 1));
    });

    it("forgets a learned address once its TTL has passed", () => {
      const r = load(core, "- ads.example.net");
      r.learn("198.51.100.20", "ads.example.net", 120, NOW);
      assert.deepEqual(r.decide(syn("198.51.100.20"), { now: NOW + 120 }), d("block", "ipdom", 1));
      assert.deepEqual(r.decide(syn("198.51.100.20"), { now: NOW + 121 }), PASS_ONCE);
    });

    it("prefers the name a packet carries over the table's name for its address", () => {
      const r = load(core, "- *.example.net");
      r.learn("198.51.100.20", "ads.example.net");
      assert.deepEqual(r.decide(tls("good.example.org", "198.51.100.20")), DEFAULT_ACCEPT);
      assert.deepEqual(r.decide(tls("x.example.net", "198.51.100.99")), d("block", "domain", 1));
    });

    it("learns A and AAAA answers from a DNS response when asked to", () => {
      const r = load(core, "- *.example.net");
      const response = udp("9.9.9.9", LAN4, 40000, dnsResponse("Ads.Example.NET", [{ addr: "198.51.100.40" }, { addr: "2001:db8::40" }]), 53);
      const v = r.evaluate(response, { inbound: true, learnDns: true });
      assert.deepEqual(
        v.packet.dns?.answers.map((a) => a.data),
        ["198.51.100.40", "2001:db8::40"],
      );
      assert.deepEqual(r.decide(syn("198.51.100.40")), d("block", "ipdom", 1));
      assert.deepEqual(r.decide(syn("2001:db8::40")), d("block", "ipdom", 1));
      assert.equal(r.evaluate(syn("198.51.100.40")).packet.name, "ads.example.net");
    });

    it("does not learn from a DNS response unless asked to", () => {
      const r = load(core, "- *.example.net");
      const response = udp("9.9.9.9", LAN4, 40000, dnsResponse("ads.example.net", [{ addr: "198.51.100.41" }]), 53);
      r.evaluate(response, { inbound: true });
      assert.deepEqual(r.decide(syn("198.51.100.41")), PASS_ONCE);
    });

    it("keeps a short-lived DNS answer for at least a minute", () => {
      const r = load(core, "- tracker.example");
      const response = udp("9.9.9.9", LAN4, 40000, dnsResponse("tracker.example", [{ addr: "198.51.100.42", ttl: 5 }]), 53);
      r.evaluate(response, { inbound: true, learnDns: true, now: NOW });
      assert.deepEqual(r.decide(syn("198.51.100.42"), { now: NOW + 59 }), d("block", "ipdom", 1));
    });
  });

  describe(`matcher (${core}): profiles`, () => {
    const ruleset = [
      "fallback drop", // 1
      "- blocked.example", // 2
      "[profile kids]", // 3
      "default block", // 4
      "source 192.168.1.64/26", // 5
      "+ .wikipedia.org", // 6
      "[profile guest]", // 7
      "default ask", // 8
      "source 192.168.1.0/24", // 9
      "source 192.168.1.70", // 10
      "source 2001:db8:1::/48", // 11
      "+ * TCP/443", // 12
      "[profile iot]", // 13
      "default drop", // 14
      "source 02:00:00:00:00:01", // 15
      "source 2001:db8:1:2::/64", // 16
      "+ 10.0.0.5", // 17
    ].join("\n");

    it("binds a device to the profile with the longest prefix that covers it", () => {
      const r = load(core, ruleset);
      const from = (src: string) => r.profileOf(tcp(src, src.includes(":") ? "2001:db8:ffff::1" : "203.0.113.1", 80));
      assert.equal(from("192.168.1.65"), "kids");
      assert.equal(from("192.168.1.64"), "kids");
      assert.equal(from("192.168.1.127"), "kids");
      assert.equal(from("192.168.1.70"), "guest", "a /32 inside the /26 belongs to another profile");
      assert.equal(from("192.168.1.69"), "kids");
      assert.equal(from("192.168.1.71"), "kids");
      assert.equal(from("192.168.1.63"), "guest");
      assert.equal(from("192.168.1.128"), "guest");
      assert.equal(from("192.168.1.0"), "guest");
      assert.equal(from("192.168.1.255"), "guest");
      assert.equal(from("192.168.2.0"), "default");
      assert.equal(from("192.168.0.255"), "default");
    });

    it("binds IPv6 sources by the longest prefix too", () => {
      const r = load(core, ruleset);
      const from = (src: string) => r.profileOf(tcp(src, "2001:db8:ffff::1", 80));
      assert.equal(from("2001:db8:1::5"), "guest");
      assert.equal(from("2001:db8:1:2::5"), "iot");
      assert.equal(from("2001:db8:1:2:ffff:ffff:ffff:ffff"), "iot");
      assert.equal(from("2001:db8:1:3::"), "guest");
      assert.equal(from("2001:db8:1:ffff:ffff:ffff:ffff:ffff"), "guest");
      assert.equal(from("2001:db8:2::1"), "default");
      assert.equal(from("fd00::10"), "default");
    });

    it("binds by MAC before the source address", () => {
      const r = load(core, ruleset);
      const pkt = tcp("192.168.1.65", "203.0.113.1", 80);
      assert.equal(r.profileOf(pkt, { mac: mac("02:00:00:00:00:01") }), "iot");
      assert.equal(r.profileOf(pkt, { mac: mac("02:00:00:00:00:02") }), "kids", "an unknown MAC falls back to the address");
      assert.equal(r.profileOf(pkt), "kids");
      assert.equal(r.profileOf(tcp("172.16.0.1", "203.0.113.1", 80), { mac: mac("02:00:00:00:00:01") }), "iot");
      assert.deepEqual(r.decide(tcp("172.16.0.1", "10.0.0.5", 80), { mac: mac("02:00:00:00:00:01") }), d("accept", "ip", 17));
    });

    it("finds every bound MAC, including ones with the high bit set", () => {
      const macs = ["00:00:00:00:00:01", "7f:ff:ff:ff:ff:ff", "80:00:00:00:00:00", "ff:ff:ff:ff:ff:fe", "ff:ff:ff:ff:ff:ff", "12:34:56:78:9a:bc", "80:00:00:00:ff:ff", "80:00:00:01:00:00"];
      const r = load(core, macs.map((m, i) => `[profile m${i}]\nsource ${m}`).join("\n"));
      const pkt = tcp(LAN4, "203.0.113.1", 80);
      macs.forEach((m, i) => assert.equal(r.profileOf(pkt, { mac: mac(m) }), `m${i}`, m));
      for (const unknown of ["80:00:00:00:00:01", "ff:ff:ff:ff:ff:fd", "00:00:00:00:00:00", "80:00:00:00:ff:fe", "7f:ff:ff:ff:ff:fe"]) {
        assert.equal(r.profileOf(pkt, { mac: mac(unknown) }), "default", unknown);
      }
    });

    it("applies each profile's own rules and default action", () => {
      const r = load(core, ruleset);
      // default profile: default allow, - blocked.example
      assert.deepEqual(r.decide(tls("blocked.example", "203.0.113.1", 443, "192.168.2.1")), d("block", "domain", 2));
      assert.deepEqual(r.decide(tls("en.wikipedia.org", "203.0.113.1", 443, "192.168.2.1")), d("accept", "default", 0));
      // kids: default block, + .wikipedia.org
      assert.deepEqual(r.decide(tls("en.wikipedia.org", "203.0.113.1", 443, "192.168.1.65")), d("accept", "domain", 6));
      assert.deepEqual(r.decide(tls("blocked.example", "203.0.113.1", 443, "192.168.1.65")), d("block", "default", 0));
      assert.deepEqual(r.decide(tls("other.example", "203.0.113.1", 443, "192.168.1.65")), d("block", "default", 0));
      // guest: default ask -> fallback drop, + * TCP/443
      assert.deepEqual(r.decide(tls("blocked.example", "203.0.113.1", 443, "192.168.1.10")), d("accept", "ip", 12));
      assert.deepEqual(r.decide(tcp("192.168.1.10", "203.0.113.1", 80)), d("drop", "default", 0));
      // iot: default drop
      assert.deepEqual(r.decide(tcp("2001:db8:1:2::9", "2001:db8:ffff::1", 443)), d("drop", "default", 0));
    });

    it("returns Portmaster's verdict numbers for allow, block and drop defaults", () => {
      const r = load(core, "[profile a]\ndefault allow\nsource 10.0.0.1\n[profile b]\ndefault block\nsource 10.0.0.2\n[profile c]\ndefault drop\nsource 10.0.0.3");
      assert.equal(r.evaluate(tcp("10.0.0.1", "203.0.113.1", 80)).verdict, 2);
      assert.equal(r.evaluate(tcp("10.0.0.2", "203.0.113.1", 80)).verdict, 3);
      assert.equal(r.evaluate(tcp("10.0.0.3", "203.0.113.1", 80)).verdict, 4);
      assert.equal(r.evaluate(tcp("10.0.0.4", "203.0.113.1", 80)).verdict, 2, "unbound: the default profile allows");
    });

    it("resolves ask to the ruleset's fallback: block unless written otherwise", () => {
      const pkt = tcp("10.0.0.1", "203.0.113.1", 80);
      const prof = "[profile p]\ndefault ask\nsource 10.0.0.1\n";
      assert.equal(load(core, prof).decide(pkt).verdict, "block");
      assert.equal(load(core, "fallback allow\n" + prof).decide(pkt).verdict, "accept");
      assert.equal(load(core, "fallback drop\n" + prof).decide(pkt).verdict, "drop");
      assert.equal(load(core, prof + "fallback allow").decide(pkt).verdict, "accept", "fallback may come after the profiles");
      assert.equal(load(core, "default ask\nfallback drop").decide(tcp("10.9.9.9", "203.0.113.1", 80)).verdict, "drop", "the default profile can ask too");
    });

    it("keeps an ask profile's explicit rules", () => {
      const r = load(core, "fallback drop\n[profile p]\ndefault ask\nsource 10.0.0.1\n+ 203.0.113.1\n- 203.0.113.2");
      assert.deepEqual(r.decide(tcp("10.0.0.1", "203.0.113.1", 80)), d("accept", "ip", 5));
      assert.deepEqual(r.decide(tcp("10.0.0.1", "203.0.113.2", 80)), d("block", "ip", 6));
      assert.deepEqual(r.decide(tcp("10.0.0.1", "203.0.113.3", 80)), d("drop", "default", 0));
    });
  });

  describe(`matcher (${core}): inbound connections`, () => {
    const ruleset = [
      "- 203.0.113.5 TCP/2222", // 1
      "[profile server]", // 2
      "default block", // 3
      "source 192.168.1.20", // 4
      "source fd00::20", // 5
      "+ 198.51.100.0/24 TCP/5555", // 6
    ].join("\n");

    it("matches the source as the remote address and the source port as the port", () => {
      const r = load(core, ruleset);
      const inbound = tcp("203.0.113.5", "192.168.5.5", 80, undefined, 2222);
      assert.deepEqual(r.decide(inbound, { inbound: true }), d("block", "ip", 1));
      assert.deepEqual(r.decide(inbound), DEFAULT_ACCEPT, "outbound, the same packet's remote is 192.168.5.5");
      assert.deepEqual(r.decide(tcp("203.0.113.5", "192.168.5.5", 2222, undefined, 80), { inbound: true }), DEFAULT_ACCEPT, "the destination port is the local one");
      assert.deepEqual(r.decide(tcp("192.168.5.5", "203.0.113.5", 2222)), d("block", "ip", 1), "outbound uses the destination port");
    });

    it("binds the profile by the destination, the local device", () => {
      const r = load(core, ruleset);
      assert.deepEqual(r.decide(tcp("198.51.100.1", "192.168.1.20", 22, undefined, 5555), { inbound: true }), d("accept", "ip", 6));
      assert.deepEqual(r.decide(tcp("198.51.100.1", "192.168.1.20", 22, undefined, 5556), { inbound: true }), d("block", "default", 0));
      assert.deepEqual(r.decide(tcp("203.0.113.9", "192.168.1.20", 22, undefined, 5555), { inbound: true }), d("block", "default", 0));
      assert.equal(r.profileOf(tcp("198.51.100.1", "192.168.1.20", 22, undefined, 5555), { inbound: true }), "server");
      assert.equal(r.profileOf(tcp("198.51.100.1", "192.168.1.20", 22, undefined, 5555)), "default", "outbound: bound by the source");
      assert.equal(r.profileOf(tcp("2001:db8::1", "fd00::20", 22), { inbound: true }), "server");
      assert.equal(r.profileOf(tcp("fd00::20", "2001:db8::1", 22)), "server");
    });
  });

  describe(`matcher (${core}): explanations`, () => {
    const text = [
      "# home rules", // 1
      "", // 2
      "- *.ads.example   # trackers", // 3
      "+ 10.0.0.0/8 TCP/22", // 4
      "[profile kids]", // 5
      "source 192.168.1.64/26", // 6
      "default block", // 7
      "source fd00::70", // 8
      "  - .games.example", // 9
      "+ 2001:db8::/32", // 10
      "+ *", // 11
    ].join("\n");

    it("names the deciding rule by id and by its line in the ruleset text", () => {
      const r = load(core, text);
      const lines = text.split("\n");
      const cases: [Uint8Array, number, string][] = [
        [tls("x.ads.example"), 3, "default"],
        [syn("10.2.3.4", 22), 4, "default"],
        [tls("www.games.example", "203.0.113.1", 443, "192.168.1.70"), 9, "kids"],
        [syn("2001:db8::5", 443, "fd00::70"), 10, "kids"],
        [syn("10.2.3.4", 22, "192.168.1.70"), 11, "kids"],
      ];
      for (const [pkt, line, profile] of cases) {
        const v = r.evaluate(pkt);
        assert.equal(v.line, line);
        assert.ok(v.rule !== null);
        const ref = r.image.rules[v.rule];
        assert.deepEqual({ line: ref!.line, profile: ref!.profile }, { line, profile });
        assert.ok(lines[line - 1]!.trim().startsWith(ref!.text), `"${ref!.text}" is the text of line ${line}`);
        assert.equal(r.image.profiles[v.profile], profile);
      }
      const v = r.evaluate(syn("10.2.3.4", 23));
      assert.equal(v.rule, null);
      assert.equal(v.line, 0);
      assert.equal(v.matchBy, E.MB_DEFAULT);
    });

    it("hands out rule ids in profile order, then line order, and still reports text lines", () => {
      // "[profile default]" after another profile is allowed while the default has no rules yet.
      const r = load(core, "[profile b]\nsource 10.0.0.2\n- 203.0.113.1\n[profile default]\n- 203.0.113.9");
      assert.deepEqual(r.image.profiles, ["default", "b"]);
      const fromB = r.evaluate(tcp("10.0.0.2", "203.0.113.1", 80));
      assert.deepEqual([fromB.rule, fromB.line], [1, 3]);
      const fromDefault = r.evaluate(tcp("10.0.0.3", "203.0.113.9", 80));
      assert.deepEqual([fromDefault.rule, fromDefault.line], [0, 5]);
    });
  });

  describe(`matcher (${core}): randomized first match`, () => {
    it("agrees with a first-match reference on random IPv4 and IPv6 rules for thousands of addresses", () => {
      for (const seed of [0x1badb002, 0x5eed]) {
        const { text, rules } = randomRuleset(seed, 320);
        const r = load(core, text);
        const probes = randomProbes(seed ^ 0x9e3779b9, rules, 2400);
        const mismatches: string[] = [];
        for (const p of probes) {
          const expected = referenceMatch(rules, p);
          const got = r.decide(probePacket(p));
          // Blocking ICMP drops it (no ICMP error in answer to ICMP).
          const isIcmp = p.proto === PROTO.icmp || p.proto === PROTO.icmpv6;
          const blocked = isIcmp ? "drop" : "block";
          const want = expected ? d(expected.action === "allow" ? "accept" : blocked, "ip", expected.line) : d("drop", "default", 0);
          if (got.verdict !== want.verdict || got.line !== want.line || got.by !== want.by) {
            mismatches.push(`${describeProbe(p)}: engine ${got.verdict}@${got.line}, reference ${want.verdict}@${want.line}`);
          }
        }
        assert.deepEqual(mismatches.slice(0, 10), [], `seed ${seed}: ${mismatches.length} of ${probes.length} probes disagree`);
      }
    });

    it("agrees with a longest-prefix reference on random nested source bindings", () => {
      const rnd = xorshift(0xb1d);
      const bases = [0x0a000000, 0xc0a80000, 0x80000000, 0xffff0000, 0x7fff0000];
      const seen = new Set<string>();
      const binds: { start: number; prefix: number; profile: number }[] = [];
      const lines: string[] = [];
      for (let i = 0; binds.length < 60 && i < 1000; i++) {
        const prefix = 8 + rnd.below(25);
        const start = maskV4(bases[rnd.below(bases.length)]! + rnd.below(1 << 16), prefix);
        const key = `${start}/${prefix}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const profile = binds.length + 1;
        binds.push({ start, prefix, profile });
        lines.push(`[profile p${profile}]`, `source ${v4Text(start)}/${prefix}`);
      }
      const r = load(core, lines.join("\n"));
      const mismatches: string[] = [];
      const probes: number[] = [];
      for (const b of binds) {
        const end = (b.start + 2 ** (32 - b.prefix) - 1) >>> 0;
        probes.push(b.start, end, (b.start - 1) >>> 0, (end + 1) >>> 0);
      }
      for (let i = 0; i < 600; i++) probes.push((bases[rnd.below(bases.length)]! + rnd.below(1 << 16)) >>> 0);
      for (const a of probes) {
        let best: (typeof binds)[number] | null = null;
        for (const b of binds) if (inV4(a, b.start, b.prefix) && (!best || b.prefix > best.prefix)) best = b;
        const want = best ? `p${best.profile}` : "default";
        const got = r.profileOf(tcp(v4Bytes(a), "203.0.113.1", 80));
        if (got !== want) mismatches.push(`${v4Text(a)}: engine ${got}, reference ${want}`);
      }
      assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${probes.length} sources disagree`);
    });
  });
}

// ---- randomized check: generator and reference ------------------------------------------------

/** xorshift32: small, seeded, reproducible. */
function xorshift(seed: number) {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    next,
    below: (n: number): number => next() % n,
    chance: (p: number): boolean => next() / 0x100000000 < p,
    big128: (): bigint => (BigInt(next()) << 96n) | (BigInt(next()) << 64n) | (BigInt(next()) << 32n) | BigInt(next()),
  };
}
type Rng = ReturnType<typeof xorshift>;

interface RandRule {
  line: number;
  action: "allow" | "block";
  version: 4 | 6;
  start: bigint;
  prefix: number;
  proto: number;
  hasPort: boolean;
  lo: number;
  hi: number;
}

interface Probe {
  version: 4 | 6;
  addr: bigint;
  proto: number;
  port: number;
}

const V4_BASES = [0x00000000, 0x0a000000, 0x0a010000, 0xac100000, 0xc0a80100, 0x7fffff00, 0x80000000, 0xfe000000, 0xffffff00].map(BigInt);
const V6_BASES = [
  0x20010db8n << 96n,
  0xff00n << 112n,
  0x8000n << 112n,
  0xffffffffffffffffn << 64n,
  (0x20010db8n << 96n) | (0x80000000n << 32n),
  0xffffn << 32n, // ::ffff:0:0, IPv4-mapped
  0xfe80n << 112n,
  (0x20010db8n << 96n) | 0xffffffffffffffffn,
];
const SPREADS_V6 = [8, 16, 31, 32, 33, 48, 64, 65, 96, 127];
const PREFIXES_V4 = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 28, 30, 31, 32];
const PREFIXES_V6 = [0, 1, 8, 16, 31, 32, 33, 48, 63, 64, 65, 95, 96, 97, 120, 127, 128];
const PORT_POOL = [0, 1, 22, 53, 80, 443, 1023, 1024, 8000, 8080, 65535];

function maskBig(addr: bigint, prefix: number, bits: number): bigint {
  const host = BigInt(bits - prefix);
  return (addr >> host) << host;
}

function maskV4(addr: number, prefix: number): number {
  return Number(maskBig(BigInt(addr >>> 0), prefix, 32));
}

function inV4(addr: number, start: number, prefix: number): boolean {
  return maskV4(addr, prefix) === start;
}

function v4Bytes(a: number | bigint): Uint8Array {
  const n = Number(a);
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function v4Text(a: number | bigint): string {
  return Array.from(v4Bytes(a)).join(".");
}

function v6Bytes(a: bigint): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(a & 0xffn);
    a >>= 8n;
  }
  return out;
}

function addrText(version: 4 | 6, a: bigint): string {
  return version === 4 ? v4Text(a) : formatIPv6(v6Bytes(a));
}

function randomAddr(rnd: Rng, version: 4 | 6): bigint {
  if (version === 4) {
    if (rnd.chance(0.1)) return BigInt(rnd.next());
    return (V4_BASES[rnd.below(V4_BASES.length)]! + BigInt(rnd.below(1 << 20))) & 0xffffffffn;
  }
  if (rnd.chance(0.1)) return rnd.big128();
  const spread = SPREADS_V6[rnd.below(SPREADS_V6.length)]!;
  const mask = (1n << 128n) - 1n;
  return (V6_BASES[rnd.below(V6_BASES.length)]! + (rnd.big128() & ((1n << BigInt(spread)) - 1n))) & mask;
}

function randomRuleset(seed: number, n: number): { text: string; rules: RandRule[] } {
  const rnd = xorshift(seed);
  const lines = ["# randomized", "default drop"];
  const rules: RandRule[] = [];
  for (let i = 0; i < n; i++) {
    const version: 4 | 6 = rnd.chance(0.5) ? 4 : 6;
    const bits = version === 4 ? 32 : 128;
    const pool = version === 4 ? PREFIXES_V4 : PREFIXES_V6;
    const prefix = rnd.chance(0.7) ? pool[rnd.below(pool.length)]! : rnd.below(bits + 1);
    const start = maskBig(randomAddr(rnd, version), prefix, bits);
    const action = rnd.chance(0.5) ? "allow" : "block";
    let proto = 0;
    let hasPort = false;
    let lo = 0;
    let hi = 65535;
    let cond = "";
    const c = rnd.below(10);
    if (c === 0) {
      proto = 6;
      cond = " TCP";
    } else if (c === 1) {
      proto = version === 4 ? 1 : 58;
      cond = version === 4 ? " ICMP" : " ICMPv6";
    } else if (c === 2 || c === 3) {
      proto = rnd.chance(0.5) ? 6 : 17;
      hasPort = true;
      lo = PORT_POOL[rnd.below(PORT_POOL.length)]!;
      hi = rnd.chance(0.5) ? lo : Math.min(65535, lo + rnd.below(2000));
      cond = ` ${proto === 6 ? "TCP" : "UDP"}/${lo === hi ? lo : `${lo}-${hi}`}`;
    } else if (c === 4) {
      hasPort = true;
      lo = PORT_POOL[rnd.below(PORT_POOL.length)]!;
      hi = lo;
      cond = ` */${lo}`;
    }
    const full = prefix === bits && rnd.chance(0.5);
    const entity = full ? addrText(version, start) : `${addrText(version, start)}/${prefix}`;
    if (rnd.chance(0.05)) lines.push("# noise");
    lines.push(`${action === "allow" ? "+" : "-"} ${entity}${cond}`);
    rules.push({ line: lines.length, action, version, start, prefix, proto, hasPort, lo, hi });
  }
  return { text: lines.join("\n"), rules };
}

function randomProbes(seed: number, rules: RandRule[], extra: number): Probe[] {
  const rnd = xorshift(seed);
  const probes: Probe[] = [];
  const withTransport = (version: 4 | 6, addr: bigint): Probe => {
    const k = rnd.below(5);
    const proto = k === 0 ? (version === 4 ? 1 : 58) : k <= 2 ? 6 : 17;
    let port = PORT_POOL[rnd.below(PORT_POOL.length)]!;
    if (rnd.chance(0.3)) port = Math.max(0, Math.min(65535, port + rnd.below(3) - 1));
    return { version, addr, proto, port };
  };
  for (const r of rules) {
    const bits = r.version === 4 ? 32 : 128;
    const max = (1n << BigInt(bits)) - 1n;
    const end = r.start + (1n << BigInt(bits - r.prefix)) - 1n;
    for (const a of [r.start, end, r.start - 1n, end + 1n]) {
      if (a >= 0n && a <= max) probes.push(withTransport(r.version, a));
    }
    if (r.hasPort) probes.push({ version: r.version, addr: r.start, proto: r.proto || 6, port: r.hi });
  }
  for (let i = 0; i < extra; i++) {
    const version: 4 | 6 = rnd.chance(0.5) ? 4 : 6;
    probes.push(withTransport(version, randomAddr(rnd, version)));
  }
  return probes;
}

/** The obvious implementation: the first rule in text order whose address, protocol and port fit. */
function referenceMatch(rules: RandRule[], p: Probe): RandRule | null {
  const bits = p.version === 4 ? 32 : 128;
  const hasPorts = p.proto === 6 || p.proto === 17;
  for (const r of rules) {
    if (r.version !== p.version) continue;
    if (maskBig(p.addr, r.prefix, bits) !== r.start) continue;
    if (r.proto !== 0 && r.proto !== p.proto) continue;
    if (r.hasPort && (!hasPorts || p.port < r.lo || p.port > r.hi)) continue;
    return r;
  }
  return null;
}

function probePacket(p: Probe): Uint8Array {
  const dst = p.version === 4 ? v4Bytes(p.addr) : v6Bytes(p.addr);
  const src = p.version === 4 ? LAN4 : LAN6;
  if (p.proto === 1 || p.proto === 58) return packet({ src, dst, proto: p.proto });
  return packet({ src, dst, proto: p.proto, dport: p.port });
}

function describeProbe(p: Probe): string {
  const proto = p.proto === 6 ? "TCP" : p.proto === 17 ? "UDP" : p.proto === 1 ? "ICMP" : "ICMPv6";
  return `${addrText(p.version, p.addr)} ${proto}${p.proto === 6 || p.proto === 17 ? `/${p.port}` : ""}`;
}
