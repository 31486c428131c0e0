// Portmaster's resolver endpoints: dns/resolvers, dns/cache/{query}, dns/clear. The Pi-hole
// compatible routes live under /api/ (src/api/pihole); these follow /api/v1 conventions.

import dnsPacket from "dns-packet";
import type { Deps } from "../deps.js";
import { ApiError, Errors } from "../errors.js";
import { PERMIT_ANYONE, PERMIT_USER } from "../permissions.js";
import type { DnsControlApi } from "../../dns/types.js";

const TYPE_NUMBERS: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, NAPTR: 35, DS: 43, RRSIG: 46, DNSKEY: 48, SVCB: 64, HTTPS: 65, ANY: 255 };
const RCODE_NAMES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

function running(d: Deps): DnsControlApi {
  const dns = d.control.dns;
  if (dns === null) throw Errors.unavailable("the DNS resolver is not running (dns.enabled is false, or it could not bind its addresses)");
  return dns;
}

/** One record in presentation form, as Portmaster's cache records show them. */
function rrText(rr: dnsPacket.Answer, ageS: number): string {
  const ttl = "ttl" in rr && typeof rr.ttl === "number" ? Math.max(0, rr.ttl - ageS) : 0;
  const data = (rr as { data?: unknown }).data;
  let text: string;
  if (typeof data === "string") text = data;
  else if (Buffer.isBuffer(data)) text = `\\# ${data.length} ${data.toString("hex")}`;
  else if (Array.isArray(data)) text = data.map((x) => (Buffer.isBuffer(x) ? JSON.stringify(x.toString()) : String(x))).join(" ");
  else if (data !== null && typeof data === "object") text = Object.values(data as Record<string, unknown>).map(String).join(" ");
  else text = "";
  return `${rr.name}.\t${ttl}\tIN\t${rr.type}\t${text}`;
}

export function registerDns(d: Deps): void {
  const r = d.registry;
  r.register({
    name: "List DNS Resolvers",
    description: "The upstream resolvers sluice forwards to, in the order they are tried, with their health.",
    path: "dns/resolvers",
    read: PERMIT_ANYONE,
    handler: () => {
      const dns = running(d);
      return (dns.resolvers?.() ?? []).map((u) => ({
        ConfigURL: u.spec,
        Info: { Name: u.host ?? u.ip ?? u.spec, Type: u.type, Source: "config", IP: u.ip, Domain: u.host ?? "", IPScope: 0, Port: u.port },
        ServerAddress: u.ip === null ? `${u.host}:${u.port}` : u.ip.includes(":") ? `[${u.ip}]:${u.port}` : `${u.ip}:${u.port}`,
        UpstreamBlockDetection: "disabled",
        Search: null,
        SearchOnly: false,
        Path: u.path ?? "",
        LinkLocalUnavailable: false,
        Failing: u.failing,
        Queries: u.queries,
        Failures: u.failures,
        LastError: u.lastError,
        AvgRttMs: u.avgRttMs,
      }));
    },
  });
  r.register({
    name: "Get DNS Cache Entry",
    description:
      "The cached reply for <lowercase name>.<TYPE>, e.g. example.com.A. A name that is not cached gives 404 (Portmaster answers 500 there).",
    path: "dns/cache/{query:[a-z0-9_.*-]+\\.[A-Z]+}",
    read: PERMIT_USER,
    handler: (ctx) => {
      const dns = running(d);
      const q = ctx.vars.query!;
      const dot = q.lastIndexOf(".");
      const name = q.slice(0, dot).replace(/\.$/, "");
      const typeName = q.slice(dot + 1);
      const qtype = TYPE_NUMBERS[typeName];
      if (qtype === undefined) throw Errors.badRequest(`unknown query type "${typeName}"`, { allowed: Object.keys(TYPE_NUMBERS) });
      const e = dns.cached?.(name, qtype) ?? null;
      if (e === null) throw Errors.notFound(`${q} is not in the DNS cache`, { query: q });
      const ageS = Math.floor((Date.now() - e.storedAt) / 1000);
      let p: dnsPacket.Packet;
      try {
        p = dnsPacket.decode(Buffer.from(e.reply));
      } catch (err) {
        throw new ApiError(500, "internal_error", `the cached reply does not decode: ${(err as Error).message}`);
      }
      return {
        Domain: `${name}.`,
        Question: typeName,
        RCode: RCODE_NAMES[(p.flags ?? 0) & 15] ?? String((p.flags ?? 0) & 15),
        Answer: (p.answers ?? []).map((a) => rrText(a, ageS)),
        Ns: (p.authorities ?? []).map((a) => rrText(a, ageS)),
        Extra: (p.additionals ?? []).map((a) => rrText(a, ageS)),
        Expires: Math.floor(e.expiresAt / 1000),
        Resolver: { Name: e.upstream ?? "", Type: "dns", Source: "config" },
        _meta: { Created: Math.floor(e.storedAt / 1000), Modified: Math.floor(e.storedAt / 1000), Expires: Math.floor(e.expiresAt / 1000), Deleted: 0 },
      };
    },
  });
  r.register({
    name: "Clear DNS Cache",
    description: "Empties the resolver's answer cache (and the filter decisions cached with it).",
    path: "dns/clear",
    mimeType: "text/plain",
    write: PERMIT_USER,
    handler: () => `cleared ${running(d).flushCache()} dns cache entries`,
  });
}
