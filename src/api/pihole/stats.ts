// /api/stats/*, /api/history[/clients] and /api/queries: the query log's figures in Pi-hole's
// shapes. The counting is the query log's (QueryLogApi); this module only reads parameters and
// adds what comes from elsewhere (the gravity figures, the DataTables `draw` echo).

import { PERMIT_ADMIN, PERMIT_USER } from "../permissions.js";
import type { QueryFilter } from "../../dns/types.js";
import { boolParam, intParam, numParam, ok, strParam, type PiReply, type PiRequest, type Route } from "./http.js";

/** Pi-hole's defaults: top lists of 10, one recent blocked domain, 10 clients in history/clients (webserver.api.maxClients). */
const DEFAULT_TOP = 10;
const DEFAULT_RECENT_BLOCKED = 1;
const DEFAULT_HISTORY_CLIENTS = 10;

function summary(r: PiRequest): PiReply {
  const { log, filter } = r.dns;
  const c = filter.counts();
  return ok({ ...log.summary(), gravity: { domains_being_blocked: c.gravity, last_update: c.lastUpdate } });
}

function topDomains(r: PiRequest): PiReply {
  return ok({ ...r.dns.log.topDomains(boolParam(r, "blocked", false), intParam(r, "count", DEFAULT_TOP)) });
}

function topClients(r: PiRequest): PiReply {
  return ok({ ...r.dns.log.topClients(boolParam(r, "blocked", false), intParam(r, "count", DEFAULT_TOP)) });
}

function queryTypes(r: PiRequest): PiReply {
  return ok({ types: r.dns.log.summary().queries.types });
}

function upstreams(r: PiRequest): PiReply {
  return ok({ ...r.dns.log.upstreams() });
}

function recentBlocked(r: PiRequest): PiReply {
  return ok({ blocked: r.dns.log.recentBlocked(intParam(r, "count", DEFAULT_RECENT_BLOCKED)) });
}

function history(r: PiRequest): PiReply {
  return ok({ history: r.dns.log.history() });
}

function historyClients(r: PiRequest): PiReply {
  // N=0 means every client, as in Pi-hole.
  return ok({ ...r.dns.log.historyClients(intParam(r, "N", DEFAULT_HISTORY_CLIENTS)) });
}

/** Every QueryFilter field from the query string; a malformed number or boolean is 400. */
function queryFilter(r: PiRequest): QueryFilter {
  const f: QueryFilter = {};
  const from = numParam(r, "from");
  const until = numParam(r, "until");
  if (from !== undefined) f.from = from;
  if (until !== undefined) f.until = until;
  for (const k of ["domain", "client_ip", "client_name", "upstream", "type", "status", "reply"] as const) {
    const v = strParam(r, k);
    if (v !== undefined) f[k] = v;
  }
  const cursor = intParam(r, "cursor", undefined);
  const start = intParam(r, "start", undefined);
  const length = intParam(r, "length", undefined);
  if (cursor !== undefined) f.cursor = cursor;
  if (start !== undefined) f.start = start;
  if (length !== undefined) f.length = length;
  if (r.query.has("disk")) f.disk = boolParam(r, "disk", false);
  return f;
}

function queries(r: PiRequest): PiReply {
  const f = queryFilter(r);
  // DataTables sends a request counter it expects back unchanged.
  const draw = intParam(r, "draw", 0);
  // A cursor beyond the newest id throws DnsInputError (bad_request), answered as 400.
  return ok({ ...r.dns.log.queries(f), draw });
}

const stat = (path: string, get: (r: PiRequest) => PiReply): Route => ({
  path,
  params: "",
  item: false,
  read: PERMIT_USER,
  write: PERMIT_ADMIN,
  dns: true,
  handlers: { GET: get },
});

export const statsRoutes: Route[] = [
  stat("/api/stats/summary", summary),
  stat("/api/stats/top_domains", topDomains),
  stat("/api/stats/top_clients", topClients),
  stat("/api/stats/query_types", queryTypes),
  stat("/api/stats/upstreams", upstreams),
  stat("/api/stats/recent_blocked", recentBlocked),
  stat("/api/history", history),
  stat("/api/history/clients", historyClients),
  stat("/api/queries", queries),
];
