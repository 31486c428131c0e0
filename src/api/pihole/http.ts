// What the Pi-hole-compatible routes share: the error they throw (Pi-hole's
// {"error":{"key","message","hint"}} with `took` beside it), the request context handlers see,
// the replies they return, and the query-string readers. The Portmaster side (/api/v1) has its
// own envelope ({"error":{"key","message","data"}}); the two never mix, because Pi-hole clients
// read `hint` and sluice's clients read `data`.

import type { Control } from "../../control/sluice.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Token } from "../permissions.js";
import type { Headers } from "../http.js";
import type { DnsControlApi, EntryFields } from "../../dns/types.js";
import type { PiSessions, Slot } from "./sessions.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE" | "PATCH";

/** A refused request, rendered as Pi-hole renders errors. `extra` goes beside `error` (e.g. `processed`). */
export class PiError extends Error {
  constructor(
    readonly status: number,
    readonly key: string,
    message: string,
    readonly hint: string | null = null,
    readonly extra: Record<string, unknown> | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "PiError";
  }
}

export const PiErrors = {
  badRequest: (message: string, hint: string | null = null) => new PiError(400, "bad_request", message, hint),
  uriError: (message: string, hint: string | null = null) => new PiError(400, "uri_error", message, hint),
  bodyError: (message: string, hint: string | null = null) => new PiError(400, "body_error", message, hint),
  unauthorized: (hint: string | null = null) => new PiError(401, "unauthorized", "Unauthorized", hint),
  forbidden: (message: string, hint: string | null = null) => new PiError(403, "forbidden", message, hint),
  notFound: (uri: string) => new PiError(404, "not_found", "Not found", uri),
  /**
   * The DNS service is not attached (not started, or disabled). Pi-hole's key for "the resolver is
   * down" is dns_failure (with 500); 503 says more exactly that the service is unavailable.
   */
  dnsDown: () => new PiError(503, "dns_failure", "The DNS service is not running", "sluice runs without its resolver (not started yet, or disabled)"),
};

/** A JSON reply; `took` is added when it is sent. A null body sends no body (204). */
export class PiReply {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown> | null,
    readonly headers: Record<string, string> = {},
  ) {}
}

export const ok = (body: Record<string, unknown>): PiReply => new PiReply(200, body);
export const created = (location: string, body: Record<string, unknown>): PiReply => new PiReply(201, body, { Location: location });
export const noContent = (): PiReply => new PiReply(204, null);
/** Pi-hole's answer to a DELETE that removed nothing: 404 whose body is only `took`. */
export const nothingDeleted = (): PiReply => new PiReply(404, {});

/**
 * A text/plain reply streamed in chunks while `run` works (gravity). `run` writes lines with
 * `write` and returns the last text; the status is always 200, as in Pi-hole, so the outcome
 * must be read from the text.
 */
export class PiStream {
  constructor(readonly run: (write: (text: string) => void) => Promise<string>) {}
}

export type PiResult = PiReply | PiStream;
export type Handler = (r: PiRequest) => PiResult | Promise<PiResult>;

export interface Route {
  /** The full path, e.g. "/api/domains". */
  path: string;
  /** What may follow it, as GET /api/endpoints shows it ("" for nothing). */
  params: string;
  /** Whether an item (the rest of the path after "/") may follow. */
  item: boolean;
  handlers: Partial<Record<Method, Handler>>;
  /** Permission levels needed to read (GET) and to write (the other methods); PERMIT_ANYONE: no session needed. */
  read: number;
  write: number;
  /** Needs the DNS service: without one the route answers 503 dns_failure before its handler runs. */
  dns: boolean;
}

/** Where the session id came from; only a cookie needs the CSRF token. */
export type SidSource = "body" | "header" | "cookie" | "query";

export interface PiServices {
  control: Control;
  auth: Authenticator;
  sessions: PiSessions;
  devMode(): boolean;
}

/** The request as handlers see it: everything copied out of uWS before any await. */
export class PiRequest {
  /** Set by the mount once authentication ran. */
  token!: Token;
  /** The Pi-hole session used, if a sid authenticated the request, and that sid. */
  session: Slot | null = null;
  sid: string | null = null;
  /** A sid was presented, valid or not. */
  sidPresented = false;
  /** Why a presented sid did not authenticate ("session expired", "session unknown"). */
  sidProblem: string | null = null;
  /** Dev mode for a loopback client: Pi-hole's "no password set". */
  open = false;
  readonly cookies: string[] = [];
  private parsedQuery: URLSearchParams | null = null;
  private parsedBody: { value: unknown } | null = null;

  constructor(
    readonly services: PiServices,
    readonly method: string,
    readonly url: string,
    readonly route: Route,
    /** The path after the route's own, without the "/" (undecoded); null when there is none. */
    readonly rawItem: string | null,
    private readonly rawQuery: string,
    readonly headers: PiHeaders,
    private readonly remoteOf: () => string,
    readonly body: Buffer | null,
    /** performance.now() when the request came in. */
    readonly started: number,
  ) {}

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.rawQuery));
  }

  get remote(): string {
    return this.remoteOf();
  }

  /** The DNS service; routes marked `dns` only run when there is one. */
  get dns(): DnsControlApi {
    const d = this.services.control.dns;
    if (!d) throw PiErrors.dnsDown();
    return d;
  }

  /** The body parsed as JSON; 400 with Pi-hole's messages when it is missing or not JSON. */
  json(): unknown {
    if (this.parsedBody) return this.parsedBody.value;
    if (this.body === null || this.body.length === 0) throw PiErrors.badRequest("No request body data");
    try {
      this.parsedBody = { value: JSON.parse(this.body.toString("utf8")) };
    } catch (err) {
      throw PiErrors.badRequest("Invalid request body data (no valid JSON), error at hint", (err as Error).message);
    }
    return this.parsedBody.value;
  }

  /** The body as a JSON object (not an array or a scalar). */
  object(): Record<string, unknown> {
    const v = this.json();
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw PiErrors.badRequest("Invalid request body data (no valid JSON), error at hint", "expected a JSON object");
    return v as Record<string, unknown>;
  }

  /** The body's top-level "sid", if it is JSON with one; never throws (auth reads it before any handler). */
  bodySid(): string | null {
    if (this.body === null || this.body.length === 0) return null;
    try {
      const v = this.json() as { sid?: unknown } | null;
      return v !== null && typeof v === "object" && typeof v.sid === "string" ? v.sid : null;
    } catch {
      return null;
    }
  }

  /** The item split into at most `n` decoded parts; the last part keeps any further "/". */
  parts(n: number): string[] {
    if (this.rawItem === null || this.rawItem === "") return [];
    const raw = this.rawItem.split("/");
    const head = raw.slice(0, n - 1);
    const out = raw.length > n - 1 ? [...head, raw.slice(n - 1).join("/")] : head;
    return out.map(decodeItem);
  }

  /** Seconds since the request came in, as Pi-hole's `took`. */
  took(now: number): number {
    return (now - this.started) / 1000;
  }
}

/** sluice's header copy (server.ts readHeaders), plus what only the Pi-hole routes read. */
export interface PiHeaders extends Headers {
  sid: string;
  ftlSid: string;
  userAgent: string;
  forwardedFor: string;
}

export function decodeItem(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw PiErrors.uriError("Invalid URI escape in the item", s);
  }
}

/** `?name=true|false` (also 1/0); `fallback` when absent or empty. */
export function boolParam(r: PiRequest, name: string, fallback: boolean): boolean {
  const v = r.query.get(name);
  if (v === null || v === "") return fallback;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw PiErrors.badRequest(`Invalid value for "${name}"`, `${name}=${v}: expected true or false`);
}

/** `?name=<integer >= min>`; `fallback` when absent or empty. */
export function intParam(r: PiRequest, name: string, fallback: number, min?: number): number;
export function intParam(r: PiRequest, name: string, fallback: undefined, min?: number): number | undefined;
export function intParam(r: PiRequest, name: string, fallback: number | undefined, min = 0): number | undefined {
  const v = r.query.get(name);
  if (v === null || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw PiErrors.badRequest(`Invalid value for "${name}"`, `${name}=${v}: expected an integer >= ${min}`);
  return n;
}

/** `?name=<number>` (unix seconds may be fractional); undefined when absent or empty. */
export function numParam(r: PiRequest, name: string): number | undefined {
  const v = r.query.get(name);
  if (v === null || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw PiErrors.badRequest(`Invalid value for "${name}"`, `${name}=${v}: expected a number`);
  return n;
}

/** `?name=<text>`; undefined when absent or empty. */
export function strParam(r: PiRequest, name: string): string | undefined {
  const v = r.query.get(name);
  return v === null || v === "" ? undefined : v;
}

/** `comment`, `groups` and `enabled` of a POST/PUT body, checked; absent fields stay absent. */
export function entryFields(b: Record<string, unknown>): EntryFields {
  const f: EntryFields = {};
  if (b.comment !== undefined) {
    if (b.comment !== null && typeof b.comment !== "string") throw PiErrors.badRequest('"comment" must be a string or null');
    f.comment = b.comment;
  }
  if (b.groups !== undefined) {
    if (!Array.isArray(b.groups) || !b.groups.every((g) => Number.isSafeInteger(g) && g >= 0)) {
      throw PiErrors.badRequest('"groups" must be an array of group ids (integers >= 0)');
    }
    f.groups = b.groups as number[];
  }
  if (b.enabled !== undefined) {
    if (typeof b.enabled !== "boolean") throw PiErrors.badRequest('"enabled" must be true or false');
    f.enabled = b.enabled;
  }
  return f;
}

/** A body field holding one string or an array of them (Pi-hole's "domain" and "address"). */
export function itemsOf(b: Record<string, unknown>, field: string): string[] {
  const v = b[field];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((x) => typeof x === "string" && x !== "")) {
    throw PiErrors.badRequest(`No "${field}" string or array of strings in body data`);
  }
  return list as string[];
}

/**
 * Pi-hole answers a POST that added nothing with 201 and the failures tucked into
 * `processed.errors` (a client that reads only the status believes it worked). Here, when every
 * item failed, the answer is 400 bad_request, the first failure as the hint and `processed`
 * beside the error; partial success stays 201.
 */
export function allFailed(processed: { success: unknown[]; errors: { item: string; error: string }[] }): PiError | null {
  if (processed.success.length > 0 || processed.errors.length === 0) return null;
  const first = processed.errors[0]!;
  return new PiError(400, "bad_request", "No item could be added", `${first.item}: ${first.error}`, { processed });
}
