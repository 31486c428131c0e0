// /api/domains: the allow and deny entries, exact or regex, in Pi-hole's shapes.
//
// The path reads as Pi-hole reads it: /api/domains[/{type}[/{kind}]][/{domain}], where a first
// segment that is not allow/deny (or a second that is not exact/regex) starts the domain. GET
// filters progressively and answers an empty array for a missing item; only the fully qualified
// form /api/domains/{type}/{kind} may be written (400 uri_error otherwise). A regex in the path
// must be URI-escaped; anything after {kind}/ is the domain, "/" included.

import { PERMIT_ADMIN, PERMIT_USER } from "../permissions.js";
import type { DomainKind, DomainType } from "../../dns/types.js";
import { allFailed, created, decodeItem, entryFields, itemsOf, noContent, nothingDeleted, ok, PiErrors, type PiReply, type PiRequest, type Route } from "./http.js";

const FULL_FORM = "/api/domains/{allow|deny}/{exact|regex}";

interface Target {
  type?: DomainType;
  kind?: DomainKind;
  domain?: string;
}

function isType(s: unknown): s is DomainType {
  return s === "allow" || s === "deny";
}

function isKind(s: unknown): s is DomainKind {
  return s === "exact" || s === "regex";
}

function target(r: PiRequest): Target {
  if (r.rawItem === null || r.rawItem === "") return {};
  const seg = r.rawItem.split("/");
  const t: Target = {};
  let used = 0;
  if (isType(seg[0])) {
    t.type = seg[0];
    used = 1;
    if (isKind(seg[1])) {
      t.kind = seg[1];
      used = 2;
    }
  }
  const rest = seg.slice(used).join("/");
  if (rest !== "") t.domain = decodeItem(rest);
  return t;
}

/** The list a write goes to: both type and kind must be in the path. */
function list(t: Target): { type: DomainType; kind: DomainKind } {
  if (!t.type || !t.kind) throw PiErrors.uriError("Specify list to modify more precisely", `use ${FULL_FORM}`);
  return { type: t.type, kind: t.kind };
}

function get(r: PiRequest): PiReply {
  return ok({ domains: r.dns.filter.listDomains(target(r)) });
}

function add(r: PiRequest): PiReply {
  const t = target(r);
  const { type, kind } = list(t);
  if (t.domain !== undefined) throw PiErrors.uriError("Specify item in payload, not as URI parameter", `POST ${FULL_FORM} with {"domain": ...}`);
  const b = r.object();
  const items = itemsOf(b, "domain");
  const { rows, processed } = r.dns.filter.addDomains(type, kind, items, entryFields(b));
  const failed = allFailed(processed);
  if (failed) throw failed;
  const first = processed.success[0]!.item;
  return created(`/api/domains/${type}/${kind}/${encodeURIComponent(first)}`, { domains: rows, processed });
}

function put(r: PiRequest): PiReply {
  const t = target(r);
  const { type, kind } = list(t);
  if (t.domain === undefined) throw PiErrors.uriError("Specify item in URI", `PUT ${FULL_FORM}/{domain}`);
  const b = r.object();
  const move: { type?: DomainType; kind?: DomainKind } = {};
  if (b.type !== undefined) {
    if (!isType(b.type)) throw PiErrors.badRequest('"type" must be "allow" or "deny"');
    move.type = b.type;
  }
  if (b.kind !== undefined) {
    if (!isKind(b.kind)) throw PiErrors.badRequest('"kind" must be "exact" or "regex"');
    move.kind = b.kind;
  }
  const row = r.dns.filter.putDomain(type, kind, t.domain, { ...entryFields(b), ...move });
  return ok({ domains: [row], processed: { success: [{ item: t.domain }], errors: [] } });
}

function remove(r: PiRequest): PiReply {
  const t = target(r);
  const { type, kind } = list(t);
  if (t.domain === undefined) throw PiErrors.uriError("Specify item in URI", `DELETE ${FULL_FORM}/{domain}`);
  return r.dns.filter.deleteDomain(type, kind, t.domain) ? noContent() : nothingDeleted();
}

function batchDelete(r: PiRequest): PiReply {
  const v = r.json();
  const shape = 'an array of {"item": "<domain>", "type": "allow"|"deny", "kind": "exact"|"regex"}';
  if (!Array.isArray(v) || v.length === 0) throw PiErrors.badRequest("Invalid request: non-empty array expected", shape);
  const items = v.map((e: unknown, i) => {
    const o = e as { item?: unknown; type?: unknown; kind?: unknown } | null;
    if (o === null || typeof o !== "object" || typeof o.item !== "string" || o.item === "" || !isType(o.type) || !isKind(o.kind)) {
      throw PiErrors.badRequest(`Invalid request: element ${i} is not a valid item`, shape);
    }
    return { item: o.item, type: o.type, kind: o.kind };
  });
  return r.dns.filter.batchDeleteDomains(items) > 0 ? noContent() : nothingDeleted();
}

export const domainRoutes: Route[] = [
  { path: "/api/domains", params: "/{type}/{kind}/{domain}", item: true, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { GET: get, POST: add, PUT: put, DELETE: remove } },
  { path: "/api/domains:batchDelete", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { POST: batchDelete } },
];
