// /api/lists (subscribed block and allow lists) and POST /api/action/gravity (download them all
// and swap in the new set).
//
// Writes need ?type=allow|block, as in Pi-hole; the address in the path must be URI-escaped
// (everything after /api/lists/ is the address). Adding a list does not download it: that is
// what the gravity action does.
//
// The gravity action streams its progress as text/plain (chunked), always with status 200, as
// Pi-hole does: the outcome is in the text. The last line starts with "[✓] Gravity update
// succeeded" or "[✗] Gravity update FAILED"; a list that could not be downloaded is not a failure
// of the run (its last good copy is kept, as Pi-hole keeps it), and the summary counts them.

import { PERMIT_ADMIN, PERMIT_USER } from "../permissions.js";
import { ListStatus, type ListType } from "../../dns/types.js";
import { allFailed, created, decodeItem, entryFields, itemsOf, noContent, nothingDeleted, ok, PiErrors, PiStream, type PiReply, type PiRequest, type Route } from "./http.js";

function isListType(s: unknown): s is ListType {
  return s === "allow" || s === "block";
}

function typeParam(r: PiRequest, required: boolean): ListType | undefined {
  const v = r.query.get("type");
  if (v === null || v === "") {
    if (required) throw PiErrors.uriError("Specify list to modify more precisely", "add ?type=allow or ?type=block");
    return undefined;
  }
  if (!isListType(v)) throw PiErrors.uriError("Invalid list type", `type=${v}: expected allow or block`);
  return v;
}

function address(r: PiRequest): string | undefined {
  return r.rawItem === null || r.rawItem === "" ? undefined : decodeItem(r.rawItem);
}

function get(r: PiRequest): PiReply {
  return ok({ lists: r.dns.filter.listLists({ type: typeParam(r, false), address: address(r) }) });
}

function add(r: PiRequest): PiReply {
  const type = typeParam(r, true)!;
  if (address(r) !== undefined) throw PiErrors.uriError("Specify item in payload, not as URI parameter", 'POST /api/lists?type=... with {"address": ...}');
  const b = r.object();
  const { rows, processed } = r.dns.filter.addLists(type, itemsOf(b, "address"), entryFields(b));
  const failed = allFailed(processed);
  if (failed) throw failed;
  return created(`/api/lists/${encodeURIComponent(processed.success[0]!.item)}?type=${type}`, { lists: rows, processed });
}

function put(r: PiRequest): PiReply {
  const type = typeParam(r, true)!;
  const a = address(r);
  if (a === undefined) throw PiErrors.uriError("Specify item in URI", "PUT /api/lists/{address}?type=...");
  const row = r.dns.filter.putList(type, a, entryFields(r.object()));
  return ok({ lists: [row], processed: { success: [{ item: a }], errors: [] } });
}

function remove(r: PiRequest): PiReply {
  const type = typeParam(r, true)!;
  const a = address(r);
  if (a === undefined) throw PiErrors.uriError("Specify item in URI", "DELETE /api/lists/{address}?type=...");
  return r.dns.filter.deleteList(type, a) ? noContent() : nothingDeleted();
}

function batchDelete(r: PiRequest): PiReply {
  const v = r.json();
  const shape = 'an array of {"item": "<address>", "type": "allow"|"block"}';
  if (!Array.isArray(v) || v.length === 0) throw PiErrors.badRequest("Invalid request: non-empty array expected", shape);
  const items = v.map((e: unknown, i) => {
    const o = e as { item?: unknown; type?: unknown } | null;
    if (o === null || typeof o !== "object" || typeof o.item !== "string" || o.item === "" || !isListType(o.type)) {
      throw PiErrors.badRequest(`Invalid request: element ${i} is not a valid item`, shape);
    }
    return { item: o.item, type: o.type };
  });
  return r.dns.filter.batchDeleteLists(items) > 0 ? noContent() : nothingDeleted();
}

function line(text: string): string {
  return text.endsWith("\n") ? text : text + "\n";
}

/** The filter shares one run among concurrent callers, so a second request follows the running update. */
function gravity(r: PiRequest): PiStream {
  const filter = r.dns.filter;
  return new PiStream(async (write) => {
    write("[i] Gravity update started\n");
    try {
      const rep = await filter.update((l) => write(line(l)));
      const unavailable = rep.lists.filter((l) => l.status === ListStatus.CACHED || l.status === ListStatus.UNAVAILABLE).length;
      return `[✓] Gravity update succeeded: ${rep.domains} domains blocked from ${rep.lists.length} lists (${unavailable} could not be downloaded), built in ${Math.round(rep.buildMs)} ms\n`;
    } catch (err) {
      return `[✗] Gravity update FAILED: ${err instanceof Error ? err.message : String(err)}\n`;
    }
  });
}

export const listRoutes: Route[] = [
  { path: "/api/lists", params: "/{list}", item: true, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { GET: get, POST: add, PUT: put, DELETE: remove } },
  { path: "/api/lists:batchDelete", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { POST: batchDelete } },
  { path: "/api/action/gravity", params: "", item: false, read: PERMIT_USER, write: PERMIT_ADMIN, dns: true, handlers: { POST: gravity } },
];
