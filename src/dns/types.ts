// What the DNS modules share: the query status and reply codes (Pi-hole's names, so the query
// log and the Pi-hole-compatible routes speak the same words), the list rows, and the contracts
// between the resolver, the filter, the query log and the API. Numbers on the hot path, names
// only where a reply is built.

import type { UpstreamInfo } from "./upstream.js";

/** How a query was answered. The order is sluice's; the names are Pi-hole's (`status` in /api/queries). */
export const enum QueryStatus {
  UNKNOWN = 0,
  /** Blocked by a subscribed list (gravity). */
  GRAVITY = 1,
  /** Sent to an upstream. */
  FORWARDED = 2,
  /** Answered from the cache. */
  CACHE = 3,
  /** Blocked by a regex deny rule. */
  REGEX = 4,
  /** Blocked by an exact deny rule. */
  DENYLIST = 5,
  /** Every upstream failed (SERVFAIL sent). */
  FAILED = 6,
  /** Answered locally without forwarding (local names, refused, malformed). */
  SPECIAL_DOMAIN = 7,
  /** Blocked because a CNAME in the answer is on a list. */
  GRAVITY_CNAME = 8,
  REGEX_CNAME = 9,
  DENYLIST_CNAME = 10,
  /** Forwarded, no reply yet (the log entry is completed when it comes). */
  IN_PROGRESS = 11,
  /** Served from the cache past its TTL while a refresh runs. */
  CACHE_STALE = 12,
}

export const QUERY_STATUS_NAMES: readonly string[] = [
  "UNKNOWN",
  "GRAVITY",
  "FORWARDED",
  "CACHE",
  "REGEX",
  "DENYLIST",
  "FAILED",
  "SPECIAL_DOMAIN",
  "GRAVITY_CNAME",
  "REGEX_CNAME",
  "DENYLIST_CNAME",
  "IN_PROGRESS",
  "CACHE_STALE",
];

/** Whether a status means the query was blocked. */
export function isBlockedStatus(s: number): boolean {
  return s === QueryStatus.GRAVITY || s === QueryStatus.REGEX || s === QueryStatus.DENYLIST ||
    s === QueryStatus.GRAVITY_CNAME || s === QueryStatus.REGEX_CNAME || s === QueryStatus.DENYLIST_CNAME;
}

/** What kind of reply went back (`reply.type` in /api/queries). */
export const enum ReplyType {
  UNKNOWN = 0,
  NODATA = 1,
  NXDOMAIN = 2,
  CNAME = 3,
  /** Addresses (A/AAAA) in the answer. */
  IP = 4,
  /** Some other record type in the answer. */
  RRNAME = 5,
  SERVFAIL = 6,
  REFUSED = 7,
  NOTIMP = 8,
  /** Nothing was sent back (dropped). */
  NONE = 9,
  /** A blocked name answered with 0.0.0.0 / ::. */
  BLOB = 10,
  FORMERR = 11,
}

export const REPLY_TYPE_NAMES: readonly string[] = [
  "UNKNOWN",
  "NODATA",
  "NXDOMAIN",
  "CNAME",
  "IP",
  "DOMAIN",
  "SERVFAIL",
  "REFUSED",
  "NOTIMP",
  "NONE",
  "BLOB",
  "FORMERR",
];

/** Blocking modes (`dns.blocking.mode`), as Pi-hole names them. */
export type BlockingMode = "NULL" | "NXDOMAIN" | "NODATA" | "IP";

/**
 * A filter decision, as numbers so the resolver allocates nothing per query. The low byte is
 * one of the DECIDE_* codes; for a block by a regex rule with a `reply=` option, the reply
 * override is read from DnsFilter.lastReply.
 */
export const enum Decide {
  /** No list or rule names it: resolve normally. */
  NONE = 0,
  ALLOW_EXACT = 1,
  ALLOW_REGEX = 2,
  /** On a subscribed allow list ("antigravity"). */
  ALLOW_LIST = 3,
  DENY_EXACT = 16,
  DENY_REGEX = 17,
  /** On a subscribed block list (gravity). */
  DENY_LIST = 18,
}

export function isDenied(d: number): boolean {
  return d >= Decide.DENY_EXACT;
}

/** Status a decision gives in the query log. */
export function statusOfDecision(d: number): QueryStatus {
  switch (d) {
    case Decide.DENY_EXACT:
      return QueryStatus.DENYLIST;
    case Decide.DENY_REGEX:
      return QueryStatus.REGEX;
    case Decide.DENY_LIST:
      return QueryStatus.GRAVITY;
    default:
      return QueryStatus.UNKNOWN;
  }
}

/** Group 0 is the default profile; other groups are the ruleset's named profiles. */
export const DEFAULT_GROUP = 0;

export type DomainType = "allow" | "deny";
export type DomainKind = "exact" | "regex";

/** One allow/deny entry, in the shape of Pi-hole's /api/domains rows. Dates are unix seconds. */
export interface DomainRow {
  id: number;
  /** Exact: lower-case punycode. Regex: the pattern as given (options after `;` included). */
  domain: string;
  /** IDN form of an exact domain; the pattern itself for a regex. */
  unicode: string;
  type: DomainType;
  kind: DomainKind;
  comment: string | null;
  groups: number[];
  enabled: boolean;
  date_added: number;
  date_modified: number;
}

/** List status as Pi-hole reports it. */
export const enum ListStatus {
  /** Never downloaded yet. */
  NEVER = 0,
  DOWNLOADED = 1,
  UNCHANGED = 2,
  /** Download failed; the local copy from an earlier download was used. */
  CACHED = 3,
  /** Download failed and there is no local copy. */
  UNAVAILABLE = 4,
}

export type ListType = "block" | "allow";

/** One subscribed list, in the shape of Pi-hole's /api/lists rows. */
export interface ListRow {
  id: number;
  address: string;
  comment: string | null;
  groups: number[];
  enabled: boolean;
  type: ListType;
  date_added: number;
  date_modified: number;
  /** When the content last changed (unix seconds), 0 if never downloaded. */
  date_updated: number;
  /** Valid domains in the last good copy. */
  number: number;
  invalid_domains: number;
  abp_entries: number;
  status: ListStatus;
}

/** Blocking state shown by GET /api/dns/blocking. */
export interface BlockingState {
  blocking: "enabled" | "disabled" | "failure" | "unknown";
  /** Seconds until the state flips back, or null. */
  timer: number | null;
}

/** Names of the common query types (Pi-hole's query_types keys); others count as OTHER. */
export const QTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "A"],
  [28, "AAAA"],
  [255, "ANY"],
  [33, "SRV"],
  [6, "SOA"],
  [12, "PTR"],
  [16, "TXT"],
  [35, "NAPTR"],
  [15, "MX"],
  [43, "DS"],
  [46, "RRSIG"],
  [48, "DNSKEY"],
  [2, "NS"],
  [64, "SVCB"],
  [65, "HTTPS"],
]);

export function qtypeName(t: number): string {
  return QTYPE_NAMES.get(t) ?? "OTHER";
}

/** A refused input (bad domain, bad regex, bad URI form); `key` is Pi-hole's error key. */
export class DnsInputError extends Error {
  constructor(
    readonly key: "bad_request" | "regex_error" | "uri_error" | "body_error",
    message: string,
    readonly hint: string | null = null,
  ) {
    super(message);
    this.name = "DnsInputError";
  }
}

/** Per-item outcome of a POST that adds several items (Pi-hole's `processed`). */
export interface Processed {
  success: { item: string }[];
  errors: { item: string; error: string }[];
}

/** Fields a POST/PUT may set on a domain or list entry. */
export interface EntryFields {
  comment?: string | null;
  groups?: number[];
  enabled?: boolean;
}

/** Outcome of one list during an update (gravity run). */
export interface ListUpdate {
  id: number;
  address: string;
  status: ListStatus;
  number: number;
  invalid_domains: number;
  abp_entries: number;
  /** Why a download failed, or null. */
  error: string | null;
}

export interface UpdateReport {
  lists: ListUpdate[];
  /** Distinct names now blocked by lists (gravity), and how long building the new set took. */
  domains: number;
  buildMs: number;
}

export interface FilterCounts {
  /** Distinct names on enabled block lists. */
  gravity: number;
  /** Unix seconds of the last completed update, 0 if none. */
  lastUpdate: number;
  allowExact: number;
  denyExact: number;
  allowRegex: number;
  denyRegex: number;
  lists: number;
}

/** What the API needs from the filter (src/dns/filter.ts implements it). */
export interface DnsFilterApi {
  listDomains(q: { type?: DomainType; kind?: DomainKind; domain?: string }): DomainRow[];
  addDomains(type: DomainType, kind: DomainKind, items: string[], fields: EntryFields): { rows: DomainRow[]; processed: Processed };
  /** Creates or replaces; `move` may carry another type/kind to move the entry. Throws DnsInputError. */
  putDomain(type: DomainType, kind: DomainKind, domain: string, fields: EntryFields & { type?: DomainType; kind?: DomainKind }): DomainRow;
  deleteDomain(type: DomainType, kind: DomainKind, domain: string): boolean;
  /** Returns how many were deleted. */
  batchDeleteDomains(items: { item: string; type: DomainType; kind: DomainKind }[]): number;
  listLists(q: { type?: ListType; address?: string }): ListRow[];
  addLists(type: ListType, addresses: string[], fields: EntryFields): { rows: ListRow[]; processed: Processed };
  putList(type: ListType, address: string, fields: EntryFields): ListRow;
  deleteList(type: ListType, address: string): boolean;
  batchDeleteLists(items: { item: string; type: ListType }[]): number;
  /** Downloads every enabled list and swaps in the new set; progress lines go to `progress`. */
  update(progress?: (line: string) => void): Promise<UpdateReport>;
  counts(): FilterCounts;
}

/** Filters of GET /api/queries. Times are unix seconds (floats). */
export interface QueryFilter {
  from?: number;
  until?: number;
  /** Exact, or a `*` wildcard pattern. */
  domain?: string;
  client_ip?: string;
  client_name?: string;
  /** An upstream, or the pseudo-values blocklist / cache / permitted. */
  upstream?: string;
  type?: string;
  status?: string;
  reply?: string;
  /** Newest id included; freezes the snapshot. */
  cursor?: number;
  start?: number;
  length?: number;
  /** Read persisted history instead of memory. */
  disk?: boolean;
}

export interface QueryRow {
  id: number;
  /** Unix seconds, float. */
  time: number;
  type: string;
  domain: string;
  cname: string | null;
  status: string;
  client: { ip: string; name: string | null };
  dnssec: string;
  reply: { type: string; time: number };
  list_id: number | null;
  upstream: string | null;
  ede: { code: number; text: string | null };
}

export interface QueriesResult {
  queries: QueryRow[];
  cursor: number | null;
  recordsTotal: number;
  recordsFiltered: number;
}

export interface SummaryStats {
  queries: {
    total: number;
    blocked: number;
    percent_blocked: number;
    unique_domains: number;
    forwarded: number;
    cached: number;
    frequency: number;
    types: Record<string, number>;
    status: Record<string, number>;
    replies: Record<string, number>;
  };
  clients: { active: number; total: number };
}

/** What the API needs from the query log (src/dns/querylog.ts implements it). */
export interface QueryLogApi {
  /** Over the last 24 h. `gravity` in Pi-hole's reply comes from the filter. */
  summary(nowMs?: number): SummaryStats;
  topDomains(blocked: boolean, count: number): { domains: { domain: string; count: number }[]; total_queries: number; blocked_queries: number };
  topClients(blocked: boolean, count: number): { clients: { name: string | null; ip: string; count: number }[]; total_queries: number; blocked_queries: number };
  /** 10-minute slots over 24 h. */
  history(nowMs?: number): { timestamp: number; total: number; cached: number; blocked: number; forwarded: number }[];
  historyClients(n: number, nowMs?: number): { clients: Record<string, { name: string | null; total: number }>; history: { timestamp: number; data: Record<string, number> }[] };
  /** Throws DnsInputError (bad_request) for a cursor above the newest id. */
  queries(f: QueryFilter): QueriesResult;
  upstreams(): { upstreams: { ip: string | null; name: string | null; port: number; count: number; statistics: { response: number; variance: number } }[]; forwarded_queries: number; total_queries: number };
  recentBlocked(count: number): string[];
  /** Removes everything (memory and disk). */
  clear(): Promise<void>;
}

/** What the API needs from the running DNS service (src/dns/service.ts implements it). */
export interface DnsControlApi {
  readonly filter: DnsFilterApi;
  readonly log: QueryLogApi;
  /** Global state, or one device's (its pause wins while it lasts). */
  blocking(client?: string): BlockingState;
  /** Turns blocking on/off, for `timerS` seconds (null or <= 0: until changed again); globally or for one device. */
  setBlocking(enabled: boolean, timerS: number | null, client?: string): BlockingState;
  /** Empties the answer cache; returns how many entries went. */
  flushCache(): number;
  /** False while the resolver is not serving (no socket bound). */
  readonly running: boolean;
  /** Upstream resolvers and their health (Portmaster's dns/resolvers). */
  resolvers?(): ResolverStatus[];
  /** The cached reply for a name and type, or null. */
  cached?(name: string, qtype: number): CachedAnswer | null;
  /** Filter groups: the ruleset's profiles, the first one being group 0. */
  groups?(): GroupRow[];
}

/** A group as Pi-hole's /api/groups lists it; in sluice every group is a ruleset profile. */
export interface GroupRow {
  id: number;
  name: string;
  comment: string | null;
  enabled: boolean;
}

/** An upstream resolver and its health, as the upstream module reports it. */
export type ResolverStatus = UpstreamInfo;

export interface CachedAnswer {
  /** The reply as stored (ID 0, no OPT), TTLs as received. */
  reply: Uint8Array;
  /** ms since the epoch. */
  storedAt: number;
  expiresAt: number;
  upstream: string | null;
}
