// The Pi-hole v6 compatible subset of the API, mounted at /api/ beside Portmaster's /api/v1/
// (which the server dispatches before any mount, so nothing here can shadow it) and the
// database WebSocket at /api/database/v1 (left to the server: a plain request there gets the
// server's own 404, as before this mount existed).
//
// One pass per request, as server.ts does for /api/v1: security headers -> origin check ->
// route -> OPTIONS / method -> body (capped, abort-safe) -> who is asking -> permission ->
// DNS service present -> handler -> reply. Replies follow Pi-hole: `took` (seconds) in every
// JSON body, errors as {"error":{"key","message","hint"},"took"}, 204 without a body, 404 with
// only `took` for a DELETE that removed nothing. Cross-origin pages are refused (403) as on
// /api/v1; Pi-hole sends no CORS headers either, so no browser client loses anything.

import { performance } from "node:perf_hooks";
import type { HttpRequest, HttpResponse } from "uWebSockets.js";
import { ApiError, Errors } from "../errors.js";
import { API_PREFIX, CSP, DATABASE_PATH, readHeaders, remoteText, SECURITY_HEADERS, type ApiServer, type Logger, type Mount } from "../server.js";
import { ANONYMOUS, PERMIT_ANYONE, PERMIT_USER, roleName, type Token } from "../permissions.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Control } from "../../control/sluice.js";
import { DnsInputError } from "../../dns/types.js";
import { ok, PiError, PiErrors, PiRequest, PiStream, type Method, type PiHeaders, type PiResult, type PiServices, type Route } from "./http.js";
import { PiSessions } from "./sessions.js";
import { authRoutes, identify, isWrite } from "./auth.js";
import { dnsRoutes } from "./dns.js";
import { domainRoutes } from "./domains.js";
import { listRoutes } from "./lists.js";
import { statsRoutes } from "./stats.js";

export const PIHOLE_PREFIX = "/api/";
/** Paths below /api/ that belong to sluice's own API, never to the Pi-hole routes. */
const SLUICE_TREES = [API_PREFIX.slice(0, -1), DATABASE_PATH.slice(0, DATABASE_PATH.lastIndexOf("/"))];
/** The option whose change may remove API keys: sessions opened with a key end then. */
const API_KEYS_OPTION = "core/apiKeys";
const JSON_TYPE = "application/json; charset=utf-8";
const TEXT_TYPE = "text/plain; charset=utf-8";
/** Replies larger than this go out with tryEnd/onWritable (backpressure) instead of one copy. */
const STREAM_THRESHOLD = 256 * 1024;
/** The order methods are listed in (Allow, GET /api/endpoints). */
const METHOD_ORDER: Method[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const UWS_METHODS: Record<string, string> = { get: "GET", head: "HEAD", post: "POST", put: "PUT", delete: "DELETE", patch: "PATCH", options: "OPTIONS" };

const STATUS: Record<number, string> = {
  200: "200 OK", 201: "201 Created", 204: "204 No Content", 400: "400 Bad Request", 401: "401 Unauthorized",
  403: "403 Forbidden", 404: "404 Not Found", 405: "405 Method Not Allowed", 413: "413 Payload Too Large",
  429: "429 Too Many Requests", 500: "500 Internal Server Error", 503: "503 Service Unavailable",
};

export interface PiholeOptions {
  control: Control;
  auth: Authenticator;
  devMode(): boolean;
  /** The body cap in bytes (api/maxBodyKB, read per request so a change applies at once). */
  maxBody(): number;
  log: Logger;
}

/** What one request needs to answer, whatever stage it fails at. */
interface Exchange {
  res: HttpResponse;
  method: string;
  started: number;
  aborted: boolean;
  cookies: string[];
  server: ApiServer;
}

export class PiholeMount implements Mount {
  readonly prefix = PIHOLE_PREFIX;
  readonly routes: readonly Route[];
  private readonly exact = new Map<string, Route>();
  /** Routes that take an item, longest path first, so /api/auth/session wins over a shorter prefix. */
  private readonly withItem: Route[];
  private readonly services: PiServices;

  constructor(private readonly opts: PiholeOptions) {
    const sessions = new PiSessions((t) => this.credentialStands(t));
    opts.control.options.onChange((key) => {
      if (key === API_KEYS_OPTION) sessions.dropKeySessions();
    });
    this.services = { control: opts.control, auth: opts.auth, sessions, devMode: opts.devMode };
    this.routes = [...authRoutes, ...dnsRoutes, ...domainRoutes, ...listRoutes, ...statsRoutes, endpointsRoute(() => this.routes)];
    for (const r of this.routes) this.exact.set(r.path, r);
    this.withItem = this.routes.filter((r) => r.item).sort((a, b) => b.path.length - a.path.length);
  }

  /** A session lasts only while its app token exists (revoking one ends its sessions at once). */
  private credentialStands(t: Token): boolean {
    if (t.via !== "token") return true;
    return t.id !== null && this.opts.auth.tokens.get(t.id) !== null;
  }

  private match(url: string): { route: Route; rawItem: string | null } | null {
    const r = this.exact.get(url);
    if (r) return { route: r, rawItem: null };
    for (const w of this.withItem) {
      if (url.startsWith(w.path) && url.charCodeAt(w.path.length) === 0x2f /* "/" */) return { route: w, rawItem: url.slice(w.path.length + 1) };
    }
    return null;
  }

  handle(res: HttpResponse, req: HttpRequest, server: ApiServer): void {
    const started = performance.now();
    const url = req.getUrl();
    const method = UWS_METHODS[req.getMethod()] ?? req.getMethod().toUpperCase();
    // sluice's own trees (the WebSocket's path, /api/v1 without its slash): not Pi-hole routes;
    // the server's answer, as before this mount existed.
    if (SLUICE_TREES.some((p) => url === p || url.startsWith(p + "/"))) return server.fail(res, method, Errors.notFound(`Not found: ${url}`, { path: url }));
    const h: PiHeaders = {
      ...readHeaders(req, method),
      sid: req.getHeader("sid"),
      ftlSid: req.getHeader("x-ftl-sid"),
      userAgent: req.getHeader("user-agent"),
      forwardedFor: req.getHeader("x-forwarded-for"),
    };
    const rawQuery = req.getQuery() ?? "";
    const x: Exchange = { res, method, started, aborted: false, cookies: [], server };
    // Set before anything can go asynchronous (a body, a handler's promise, a stream).
    res.onAborted(() => {
      x.aborted = true;
      server.counters.aborted++;
    });
    let remote: string | null = null;
    const remoteOf = () => (remote ??= x.aborted ? "" : remoteText(res));

    const refused = this.checkOrigin(h);
    if (refused) return this.fail(x, refused);
    const found = this.match(url);
    if (!found) return this.fail(x, PiErrors.notFound(url));
    const { route } = found;
    const allow = allowed(route);
    if (method === "OPTIONS") return this.send(x, 204, null, { Allow: allow });
    const handler = route.handlers[(method === "HEAD" ? "GET" : method) as Method];
    if (!handler) return this.fail(x, new PiError(405, "method_not_allowed", "Method not allowed", `allowed: ${allow}`, null, { Allow: allow }));

    const proceed = (body: Buffer | null) => {
      const r = new PiRequest(this.services, method, url, route, found.rawItem, rawQuery, h, remoteOf, body, started);
      x.cookies = r.cookies;
      this.run(x, r, handler);
    };
    if (!isWrite(method) || !hasBody(h)) return proceed(null);
    this.readBody(x, h, proceed);
  }

  /** Reads the body, refusing it (413, connection closed) once it passes the cap: by its declared length, or as it arrives. */
  private readBody(x: Exchange, h: PiHeaders, then: (body: Buffer) => void): void {
    const cap = this.opts.maxBody();
    const tooLarge = () => new PiError(413, "body_too_large", "Request body too large", `the limit is ${cap} bytes (api/maxBodyKB)`);
    const declared = h.contentLength === "" ? -1 : Number(h.contentLength);
    if (declared > cap) return this.fail(x, tooLarge(), true);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    x.res.onData((chunk, last) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > cap) {
        done = true;
        x.res.cork(() => this.fail(x, tooLarge(), true));
        return;
      }
      // uWS neuters the chunk when this callback returns: keep a copy.
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!last) return;
      done = true;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      x.res.cork(() => then(body));
    });
  }

  private run(x: Exchange, r: PiRequest, handler: (r: PiRequest) => PiResult | Promise<PiResult>): void {
    const problem = identify(r, Date.now()) ?? this.permit(r);
    if (problem) return this.fail(x, problem);
    if (r.route.dns && !this.opts.control.dns) return this.fail(x, PiErrors.dnsDown());
    let out: PiResult | Promise<PiResult>;
    try {
      out = handler(r);
    } catch (err) {
      return this.fail(x, this.toPiError(err));
    }
    if (!(out instanceof Promise)) return this.answer(x, out);
    out.then(
      (v) => !x.aborted && x.res.cork(() => this.answer(x, v)),
      (err: unknown) => !x.aborted && x.res.cork(() => this.fail(x, this.toPiError(err))),
    );
  }

  /** 401 to the anonymous, 403 to a credential whose level is too low (a read-only key writing). */
  private permit(r: PiRequest): PiError | null {
    const write = isWrite(r.method);
    const need = write ? r.route.write : r.route.read;
    if (need <= PERMIT_ANYONE) return null;
    const have = write ? r.token.write : r.token.read;
    if (have >= need) return null;
    if (r.token === ANONYMOUS) return PiErrors.unauthorized(r.sidProblem);
    return PiErrors.forbidden(
      `Insufficient permissions: this needs ${write ? "write" : "read"} level ${roleName(need)}`,
      `the credential carries ${write ? "write" : "read"} level ${roleName(have)}`,
    );
  }

  private answer(x: Exchange, out: PiResult): void {
    if (out instanceof PiStream) return this.stream(x, out);
    this.send(x, out.status, out.body, out.headers);
  }

  /** Only same-origin pages (and, in dev mode, localhost pages) may call; other requests carry no Origin. */
  private checkOrigin(h: PiHeaders): PiError | null {
    if (h.origin === "") return null;
    let o: URL;
    try {
      o = new URL(h.origin);
    } catch {
      return PiErrors.forbidden("Invalid Origin", h.origin);
    }
    if (o.host === h.host || o.hostname === h.host) return null;
    if (this.opts.devMode() && (o.hostname === "127.0.0.1" || o.hostname === "localhost" || o.hostname === "[::1]")) return null;
    return PiErrors.forbidden("Cross-Origin Request Denied", h.origin);
  }

  private toPiError(err: unknown): PiError {
    if (err instanceof PiError) return err;
    if (err instanceof DnsInputError) return new PiError(400, err.key, err.message, err.hint);
    if (err instanceof ApiError) return new PiError(err.status, err.key, err.message, err.data ? JSON.stringify(err.data) : null, null, err.headers);
    this.opts.log.warn(`Pi-hole API handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return new PiError(500, "internal_error", "Internal server error", err instanceof Error ? err.message : String(err));
  }

  private fail(x: Exchange, e: PiError, close = false): void {
    this.send(x, e.status, { error: { key: e.key, message: e.message, hint: e.hint }, ...e.extra }, e.headers, close);
  }

  private head(x: Exchange, status: number, headers: Record<string, string>): void {
    const { res } = x;
    if (status >= 500) x.server.counters.errors5xx++;
    else if (status >= 400) x.server.counters.errors4xx++;
    res.writeStatus(STATUS[status] ?? `${status} Unknown`);
    for (const [k, v] of SECURITY_HEADERS) res.writeHeader(k, v);
    if (!this.opts.devMode()) res.writeHeader("Content-Security-Policy", CSP);
    for (const k in headers) res.writeHeader(k, headers[k]!);
    for (const c of x.cookies) res.writeHeader("Set-Cookie", c);
  }

  /** Writes a JSON reply with `took` added; a null body is sent as no body (204). */
  private send(x: Exchange, status: number, body: Record<string, unknown> | null, headers: Record<string, string>, close = false): void {
    if (x.aborted) return;
    const { res } = x;
    this.head(x, status, headers);
    if (body === null) {
      res.endWithoutBody();
      return;
    }
    const payload = JSON.stringify({ ...body, took: (performance.now() - x.started) / 1000 });
    res.writeHeader("Content-Type", JSON_TYPE);
    if (x.method === "HEAD") {
      // Not endWithoutBody(length): uWS would then wait for that many bytes (see server.ts endHead).
      res.writeHeader("Content-Length", String(Buffer.byteLength(payload)));
      res.endWithoutBody();
      return;
    }
    if (close || payload.length <= STREAM_THRESHOLD) {
      res.end(payload, close);
      return;
    }
    const buf = Buffer.from(payload);
    const view = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    const start = res.getWriteOffset();
    const [sent, over] = res.tryEnd(view, buf.length);
    if (sent || over) return;
    res.onWritable((offset) => res.tryEnd(view.subarray(offset - start), buf.length)[0]);
  }

  /** A text/plain reply written as the work goes (chunked), ended with the text `run` returns. */
  private stream(x: Exchange, s: PiStream): void {
    const { res } = x;
    this.head(x, 200, { "Content-Type": TEXT_TYPE });
    const write = (text: string) => {
      if (!x.aborted) res.cork(() => res.write(text));
    };
    s.run(write).then(
      (last) => !x.aborted && res.cork(() => res.end(last)),
      (err: unknown) => !x.aborted && res.cork(() => res.end(`[✗] FAILED: ${this.toPiError(err).message}\n`)),
    );
  }
}

/** The methods a route answers, for Allow (HEAD with GET; OPTIONS always). */
function allowed(r: Route): string {
  const m: string[] = [];
  for (const k of METHOD_ORDER) {
    if (!r.handlers[k]) continue;
    m.push(k);
    if (k === "GET") m.push("HEAD");
  }
  m.push("OPTIONS");
  return m.join(", ");
}

/** A body comes with a non-zero Content-Length or with Transfer-Encoding (as server.ts decides). */
function hasBody(h: PiHeaders): boolean {
  return (h.contentLength !== "" && h.contentLength !== "0") || h.transferEncoding !== "";
}

/** GET /api/endpoints: every route by method, as {uri, parameters}, in Pi-hole's shape. */
function endpointsRoute(all: () => readonly Route[]): Route {
  return {
    path: "/api/endpoints",
    params: "",
    item: false,
    read: PERMIT_USER,
    write: PERMIT_USER,
    dns: false,
    handlers: {
      GET: () => {
        const by: Record<string, { uri: string; parameters: string }[]> = { get: [], post: [], put: [], patch: [], delete: [] };
        for (const r of all()) for (const m of METHOD_ORDER) if (r.handlers[m]) by[m.toLowerCase()]!.push({ uri: r.path, parameters: r.params });
        return ok({ endpoints: by });
      },
    },
  };
}
