// The request context handlers see, and the reply types they may return. Everything a handler
// needs from the uWS request is copied here first (uWS requests live only for the synchronous
// part of the callback), so handlers can await freely.

import { z, type ZodType } from "zod";
import { Errors } from "./errors.js";
import type { Token } from "./permissions.js";

/** The request headers sluice reads; a fixed shape keeps the copy cheap and monomorphic. */
export interface Headers {
  authorization: string;
  cookie: string;
  sluiceAuth: string;
  csrf: string;
  contentType: string;
  contentLength: string;
  transferEncoding: string;
  accept: string;
  host: string;
  origin: string;
  acrm: string;
}

export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
    /** Overrides the endpoint's MIME type. */
    readonly type: string | null = null,
  ) {}
}

export const created = (location: string, body: unknown): Reply => new Reply(201, body, { Location: location });
export const noContent = (): Reply => new Reply(204, null);
export const text = (status: number, body: string, headers: Record<string, string> = {}): Reply =>
  new Reply(status, body, headers, "text/plain; charset=utf-8");
export const download = (body: string | Buffer, filename: string, type = "application/octet-stream"): Reply =>
  new Reply(200, Buffer.isBuffer(body) ? body : Buffer.from(body), { "Content-Disposition": `attachment; filename="${filename}"` }, type);

export class Ctx {
  method: string;
  /** Path below /api/v1/ (no leading slash). */
  path: string;
  vars: Record<string, string>;
  headers: Headers;
  private remoteText: string | null = null;
  private readonly remoteOf: () => string;
  body: Buffer | null = null;
  token: Token;
  sessionId: string | null = null;
  /** Extra response headers and cookies the handler sets. */
  readonly out: Record<string, string> = {};
  readonly cookies: string[] = [];
  private readonly rawQuery: string;
  private parsedQuery: URLSearchParams | null = null;
  /** Made on first use: most requests never wait on anything. */
  private abort: AbortController | null = null;
  private aborted = false;

  constructor(method: string, path: string, vars: Record<string, string>, rawQuery: string, headers: Headers, remoteOf: () => string, token: Token) {
    this.method = method;
    this.path = path;
    this.vars = vars;
    this.rawQuery = rawQuery;
    this.headers = headers;
    this.remoteOf = remoteOf;
    this.token = token;
  }

  /** Aborted when the client goes away: long waits (app/auth, profiles) stop on it. */
  get signal(): AbortSignal {
    this.abort ??= new AbortController();
    if (this.aborted) this.abort.abort();
    return this.abort.signal;
  }

  markAborted(): void {
    this.aborted = true;
    this.abort?.abort();
  }

  /** The client's address as text (IPv4, or IPv6 without brackets); read once, when asked. */
  get remote(): string {
    return (this.remoteText ??= this.aborted ? "" : this.remoteOf());
  }

  get query(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.rawQuery));
  }

  /** A query parameter, validated: a missing one gives `fallback` (or 400 without one). */
  param(name: string, fallback?: string): string {
    const v = this.query.get(name);
    if (v !== null) return v;
    if (fallback !== undefined) return fallback;
    throw Errors.badRequest(`missing query parameter "${name}"`, { parameter: name });
  }

  /**
   * The body as JSON, checked against a schema. Unknown fields are rejected (schemas are
   * strict), and every problem is reported with its path.
   */
  json<T>(schema: ZodType<T>): T {
    const type = this.headers.contentType.split(";", 1)[0]!.trim().toLowerCase();
    if (type !== "" && type !== "application/json" && !type.endsWith("+json")) throw Errors.unsupportedType(type);
    if (this.body === null || this.body.length === 0) throw Errors.badBody("No request body data");
    let raw: unknown;
    try {
      raw = JSON.parse(this.body.toString("utf8"));
    } catch (err) {
      throw Errors.badRequest(`Invalid request body data (no valid JSON): ${(err as Error).message}`);
    }
    return validate(schema, raw, "body");
  }

  setHeader(name: string, value: string): void {
    this.out[name] = value;
  }

  setCookie(cookie: string): void {
    this.cookies.push(cookie);
  }
}

/** Checks a value against a schema; the 400 lists every problem with its path. */
export function validate<T>(schema: ZodType<T>, raw: unknown, what: string): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    const at = i.path.length > 0 ? i.path.join(".") : what;
    if (i.code === "unrecognized_keys") return { field: [...i.path, ...i.keys].join("."), message: `unknown field(s): ${i.keys.join(", ")}` };
    return { field: at, message: i.message };
  });
  const first = problems[0]!;
  throw Errors.badBody(`${first.field}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ""}`, { problems });
}

/** A Go-style or plain duration ("90s", "1h30m", "24h", "3600") in milliseconds. */
export const durationSchema = z.union([z.number().int().positive(), z.string().regex(/^(\d+(ms|s|m|h|d))+$|^\d+$/, "a duration like 30s, 15m, 24h or 7d")]);

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

export function durationMs(v: string | number): number {
  if (typeof v === "number") return v * 1000;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  let ms = 0;
  for (const m of v.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}
