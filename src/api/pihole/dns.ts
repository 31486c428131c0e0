// Blocking on/off, the cache flush (restartdns) and the /api/info routes clients call first.
//
// Without a DNS service (Control.dns is null: not started yet, or disabled) GET /api/dns/blocking
// says "unknown", as Pi-hole does when it cannot tell, and every route that needs the resolver
// answers 503 dns_failure.
//
// sluice extension: POST /api/dns/blocking takes an optional "client": "<ip>" to pause (or
// resume) blocking for one device only, and GET takes ?client=<ip> to read that device's state
// (its pause wins while it lasts). Pi-hole can only switch blocking for everyone.

import { isIP } from "node:net";
import { VERSION } from "../../control/sluice.js";
import { PERMIT_ADMIN, PERMIT_ANYONE, PERMIT_USER } from "../permissions.js";
import { ok, PiErrors, type PiRequest, type PiReply, type Route } from "./http.js";

const NOT_LISTENING_HTTPS = 0;

function clientOf(v: unknown, where: "body" | "query"): string | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string" || isIP(v) === 0) {
    const hint = `"client" must be an IPv4 or IPv6 address (${where})`;
    throw where === "body" ? PiErrors.bodyError("Invalid \"client\"", hint) : PiErrors.badRequest("Invalid \"client\"", hint);
  }
  return v;
}

function getBlocking(r: PiRequest): PiReply {
  const client = clientOf(r.query.get("client"), "query");
  const d = r.services.control.dns;
  if (!d) return ok({ blocking: "unknown", timer: null });
  return ok({ ...d.blocking(client) });
}

function setBlocking(r: PiRequest): PiReply {
  const b = r.object();
  if (typeof b.blocking !== "boolean") throw PiErrors.bodyError('No "blocking" boolean in body data');
  let timer: number | null = null;
  if (b.timer !== undefined && b.timer !== null) {
    if (typeof b.timer !== "number" || !Number.isFinite(b.timer)) throw PiErrors.bodyError('"timer" must be a number of seconds or null');
    timer = b.timer;
  }
  const client = clientOf(b.client, "body");
  return ok({ ...r.dns.setBlocking(b.blocking, timer, client) });
}

function restartDns(r: PiRequest): PiReply {
  // sluice's resolver runs in-process: "restarting" it means emptying its answer cache (what
  // Pi-hole's SIGHUP does to dnsmasq's), which takes effect at once.
  r.dns.flushCache();
  return ok({ status: "success" });
}

function loginInfo(r: PiRequest): PiReply {
  return ok({ dns: r.services.control.dns?.running ?? false, https_port: NOT_LISTENING_HTTPS });
}

/** Pi-hole's shape, filled honestly: every component is sluice, with no remote version known. */
function version(): PiReply {
  const local = { branch: "sluice", version: `sluice-${VERSION}`, hash: null };
  const remote = { version: null, hash: null };
  return ok({
    version: {
      core: { local, remote },
      web: { local, remote },
      ftl: { local: { ...local, date: null }, remote },
      docker: { local: null, remote: null },
      sluice: { version: VERSION, note: "sluice answers a subset of the Pi-hole v6 API; these are sluice's versions, not Pi-hole's" },
    },
  });
}

/**
 * GET /api/groups: sluice's groups are its ruleset profiles (the first is Pi-hole's "Default",
 * id 0), so they are listed here and changed through /api/v1/profiles or the rules file; other
 * methods get 405.
 */
function groups(r: PiRequest): PiReply {
  const started = Math.floor(r.services.control.started / 1000);
  const rows = (r.dns.groups?.() ?? []).map((g) => ({ ...g, date_added: started, date_modified: started }));
  const name = r.parts(1)[0];
  return ok({ groups: name === undefined ? rows : rows.filter((g) => g.name === name) });
}

export const dnsRoutes: Route[] = [
  { path: "/api/groups", params: "", item: true, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { GET: groups } },
  { path: "/api/dns/blocking", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: false, handlers: { GET: getBlocking, POST: setBlocking } },
  { path: "/api/action/restartdns", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { POST: restartDns } },
  { path: "/api/info/login", params: "", item: false, read: PERMIT_ANYONE, write: PERMIT_ANYONE, dns: false, handlers: { GET: loginInfo } },
  { path: "/api/info/version", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: false, handlers: { GET: version } },
];
