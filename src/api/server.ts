// The HTTP and WebSocket front door, on uWebSockets.js. One pass per request:
//   security headers -> origin check -> route -> method -> authentication -> permission ->
//   CSRF (cookie writes) -> body (capped, abort-safe) -> handler -> reply.
// Errors at any step are ApiErrors rendered as {"error":{"key","message","data"}}. Slow or
// vanished clients cost nothing: every response has an abort handler, bodies are capped before
// they are buffered, and large replies are streamed with backpressure.

import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, WebSocket, us_socket_context_t } from "uWebSockets.js";
import { uws, type UwsInfo } from "./uws.js";
import { ApiError, Errors } from "./errors.js";
import { Ctx, Reply, type Headers } from "./http.js";
import type { Endpoint, Registry } from "./registry.js";
import { ANONYMOUS, PERMIT_ADMIN, PERMIT_ANYONE, PERMIT_DYNAMIC, type Token } from "./permissions.js";
import type { Authenticator } from "./auth/authenticator.js";

export const API_PREFIX = "/api/v1/";
export const DATABASE_PATH = "/api/database/v1";

const STATUS: Record<number, string> = {
  200: "200 OK", 201: "201 Created", 202: "202 Accepted", 204: "204 No Content", 301: "301 Moved Permanently",
  400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found", 405: "405 Method Not Allowed",
  406: "406 Not Acceptable", 408: "408 Request Timeout", 409: "409 Conflict", 413: "413 Payload Too Large",
  415: "415 Unsupported Media Type", 425: "425 Too Early", 429: "429 Too Many Requests", 500: "500 Internal Server Error",
  502: "502 Bad Gateway", 503: "503 Service Unavailable", 504: "504 Gateway Timeout",
};

/** Portmaster's security headers; the CSP is left out in dev mode (as Portmaster does). */
export const SECURITY_HEADERS: [string, string][] = [
  ["Referrer-Policy", "same-origin"],
  ["X-Content-Type-Options", "nosniff"],
  ["X-Frame-Options", "deny"],
  ["X-XSS-Protection", "1; mode=block"],
  ["X-DNS-Prefetch-Control", "off"],
  ["Cache-Control", "no-store"],
];
export const CSP = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:";
/** Replies larger than this are streamed with tryEnd/onWritable instead of one copy. */
const STREAM_THRESHOLD = 256 * 1024;
const JSON_TYPE = "application/json; charset=utf-8";

const METHODS: Record<string, string> = { get: "GET", head: "HEAD", post: "POST", put: "PUT", delete: "DELETE", patch: "PATCH", options: "OPTIONS" };

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Other path trees served beside /api/v1 (Pi-hole's /api/..., the dashboard). */
export interface Mount {
  prefix: string;
  handle(res: HttpResponse, req: HttpRequest, server: ApiServer): void;
}

export interface SocketHandler<U> {
  /** Per-socket state for an authenticated upgrade. */
  create(token: Token, remote: string): U;
  open(ws: WebSocket<U>): void;
  message(ws: WebSocket<U>, msg: string): void;
  drain(ws: WebSocket<U>): void;
  close(ws: WebSocket<U>): void;
  maxPayload: number;
  maxBackpressure: number;
}

export interface ServerOptions {
  host: string;
  port: number;
  registry: Registry;
  auth: Authenticator;
  devMode(): boolean;
  maxBody(): number;
  log: Logger;
  sockets?: SocketHandler<unknown>;
  mounts?: Mount[];
}

export class ApiServer {
  readonly info: UwsInfo;
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  private boundPort = 0;
  /** Requests handled, by status class; for runtime:system/status. */
  readonly counters = { requests: 0, errors4xx: 0, errors5xx: 0, aborted: 0 };

  constructor(private readonly opts: ServerOptions) {
    const { uws: u, info } = uws();
    this.info = info;
    if (!info.native) opts.log.warn(`uWebSockets.js: ${info.detail}`);
    this.app = u.App();
    if (opts.sockets) this.mountSockets(opts.sockets);
    this.app.any("/*", (res, req) => this.dispatch(res, req));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.opts.host, this.opts.port, (sock) => {
        if (!sock) {
          reject(new Error(`cannot listen on ${this.opts.host}:${this.opts.port} (address in use or not available)`));
          return;
        }
        this.listenSocket = sock;
        this.boundPort = uws().uws.us_socket_local_port(sock as never);
        resolve(this.boundPort);
      });
    });
  }

  get port(): number {
    return this.boundPort;
  }

  close(): void {
    if (this.listenSocket) uws().uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    (this.app as unknown as { close?: () => void }).close?.();
  }

  private dispatch(res: HttpResponse, req: HttpRequest): void {
    this.counters.requests++;
    const url = req.getUrl();
    if (!url.startsWith(API_PREFIX)) {
      for (const m of this.opts.mounts ?? []) {
        if (url.startsWith(m.prefix)) return m.handle(res, req, this);
      }
      return this.fail(res, METHODS[req.getMethod()] ?? "GET", Errors.notFound(`Not found: ${url}`, { path: url }));
    }
    const method = METHODS[req.getMethod()] ?? req.getMethod().toUpperCase();
    const h = readHeaders(req, method);
    let aborted = false;
    // The peer address costs a system call (getpeername): fetched only when something needs it.
    const remoteOf = () => (aborted ? "" : remoteText(res));
    const origin = this.checkOrigin(h);
    if (origin instanceof ApiError) return this.fail(res, method, origin);
    // Errors past the origin check carry the CORS headers too, so an allowed page can read them.
    const cors = origin ? { out: { "Access-Control-Allow-Origin": origin }, cookies: [] } : undefined;
    const path = url.slice(API_PREFIX.length);
    if (path.includes("//") || /(^|\/)\.\.?(\/|$)/.test(path)) {
      return this.fail(res, method, Errors.badRequest("the path is not clean (empty, . or .. segments)", { path: url }), cors);
    }
    const found = this.opts.registry.match(path);
    if (!found) return this.fail(res, method, Errors.notFound(`Not found: ${url}`, { path: url }), cors);
    const ep = found.ep;
    if (method === "OPTIONS") return this.preflight(res, h, ep, origin);
    const isRead = method === "GET" || method === "HEAD";
    if (!ep.allowed.includes(method)) return this.fail(res, method, Errors.methodNotAllowed(method, ep.allowed), cors);
    const required = isRead ? ep.read : ep.write;
    const now = Date.now();
    const a = this.opts.auth.authenticate(h, remoteOf, now);
    if (a.retryAfter > 0) return this.fail(res, method, Errors.rateLimited(a.retryAfter), cors);
    const open = required === PERMIT_ANYONE || required === PERMIT_DYNAMIC;
    if (!open) {
      const have = isRead ? a.token.read : a.token.write;
      if (have < required) {
        const scheme = "Bearer";
        if (a.failure !== null) return this.fail(res, method, Errors.unauthorized(`Authorization failed: ${a.failure}.`, scheme), cors);
        if (a.token === ANONYMOUS) return this.fail(res, method, Errors.unauthorized("Authorization required.", scheme), cors);
        return this.fail(res, method, Errors.forbidden(`Insufficient permissions: this needs ${isRead ? "read" : "write"} level ${required}, the credentials carry ${have}.`), cors);
      }
      if (!isRead && a.sessionKey !== null && h.csrf !== a.csrf) {
        return this.fail(res, method, Errors.forbidden("a cookie-authenticated write must carry the session's X-CSRF-Token header", { csrf: "missing or wrong" }), cors);
      }
    }
    // Before the handler runs: a write must not take effect and then be reported as refused.
    if (ep.mimeType === "application/json" && !acceptsJson(h.accept)) return this.fail(res, method, Errors.notAcceptable(h.accept), cors);
    const ctx = new Ctx(method, path, found.vars, req.getQuery() ?? "", h, remoteOf, a.token);
    ctx.sessionId = a.sessionKey;
    if (origin) ctx.setHeader("Access-Control-Allow-Origin", origin);
    if (isRead || !hasBody(h)) {
      // Most handlers answer at once: reply while uWS still has the response corked, and only
      // set up abort handling when the handler returns a promise.
      let r: unknown;
      try {
        r = ep.handler(ctx);
      } catch (err) {
        return this.fail(res, method, toApiError(err, this.opts.log), ctx);
      }
      if (!(r instanceof Promise)) return this.reply(res, ctx, ep, r);
      let settled = false;
      res.onAborted(() => {
        settled = aborted = true;
        this.counters.aborted++;
        ctx.markAborted();
      });
      r.then(
        (v: unknown) => {
          if (settled) return;
          settled = true;
          res.cork(() => this.reply(res, ctx, ep, v));
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          res.cork(() => this.fail(res, method, toApiError(err, this.opts.log), ctx));
        },
      );
      return;
    }
    let done = false;
    res.onAborted(() => {
      done = aborted = true;
      this.counters.aborted++;
      ctx.markAborted();
    });
    const finish = (r: unknown) => {
      if (done) return;
      done = true;
      res.cork(() => this.reply(res, ctx, ep, r));
    };
    const failLate = (err: unknown) => {
      if (done) return;
      done = true;
      res.cork(() => this.fail(res, method, toApiError(err, this.opts.log), ctx));
    };
    const cap = Math.min(ep.maxBody ?? Infinity, this.opts.maxBody());
    const declared = h.contentLength === "" ? -1 : Number(h.contentLength);
    if (declared > cap) {
      done = true;
      return this.fail(res, method, Errors.tooLarge(cap), ctx, true);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, last) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > cap) {
        done = true;
        res.cork(() => this.fail(res, method, Errors.tooLarge(cap), ctx, true));
        return;
      }
      // uWS neuters the chunk after this callback: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (!last) return;
      ctx.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      this.run(ep, ctx, finish, failLate);
    });
  }

  private run(ep: Endpoint, ctx: Ctx, finish: (r: unknown) => void, fail: (e: unknown) => void): void {
    let r: unknown;
    try {
      r = ep.handler(ctx);
    } catch (err) {
      fail(err);
      return;
    }
    if (r instanceof Promise) r.then(finish, fail);
    else finish(r);
  }

  /** Only same-origin requests (and localhost pages in dev mode) may come from a browser page. */
  private checkOrigin(h: Headers): string | null | ApiError {
    if (h.origin === "") return null;
    let o: URL;
    try {
      o = new URL(h.origin);
    } catch {
      return Errors.forbidden("Invalid Origin.", { origin: h.origin });
    }
    if (o.host === h.host || o.hostname === h.host) return h.origin;
    if (this.opts.devMode() && (o.hostname === "127.0.0.1" || o.hostname === "localhost" || o.hostname === "[::1]")) return h.origin;
    return Errors.forbidden("Cross-Origin Request Denied.", { origin: h.origin });
  }

  private preflight(res: HttpResponse, h: Headers, ep: Endpoint, origin: string | null): void {
    if (h.acrm === "" || origin === null) {
      return this.fail(res, "OPTIONS", Errors.methodNotAllowed("OPTIONS", ep.allowed));
    }
    res.writeStatus(STATUS[204]!);
    this.common(res);
    writeCors(res, origin);
    res.endWithoutBody();
  }

  private common(res: HttpResponse): void {
    for (const [k, v] of SECURITY_HEADERS) res.writeHeader(k, v);
    if (!this.opts.devMode()) res.writeHeader("Content-Security-Policy", CSP);
  }

  private reply(res: HttpResponse, ctx: Ctx, ep: Endpoint, r: unknown): void {
    let status = 200;
    let body: unknown = r;
    let type: string | null = null;
    let headers: Record<string, string> | null = null;
    if (r instanceof Reply) {
      status = r.status;
      body = r.body;
      type = r.type;
      headers = r.headers;
    }
    let payload: string | Buffer | null;
    if (body === undefined || body === null) payload = null;
    else if (Buffer.isBuffer(body)) payload = body;
    else if (typeof body === "string") {
      payload = body.endsWith("\n") ? body : body + "\n";
      type ??= "text/plain; charset=utf-8";
    } else {
      if (!acceptsJson(ctx.headers.accept)) return this.fail(res, ctx.method, Errors.notAcceptable(ctx.headers.accept), ctx);
      payload = JSON.stringify(body);
      type ??= JSON_TYPE;
    }
    if (payload === null && status === 200) status = 204;
    res.writeStatus(STATUS[status] ?? `${status} Unknown`);
    this.common(res);
    for (const k in ctx.out) res.writeHeader(k, ctx.out[k]!);
    for (const c of ctx.cookies) res.writeHeader("Set-Cookie", c);
    if (headers) for (const k in headers) res.writeHeader(k, headers[k]!);
    if (ctx.out["Access-Control-Allow-Origin"]) writeCors(res, null);
    if (payload === null || status === 204) {
      res.endWithoutBody();
      return;
    }
    res.writeHeader("Content-Type", type ?? `${ep.mimeType}; charset=utf-8`);
    if (ctx.method === "HEAD") {
      endHead(res, Buffer.byteLength(payload));
      return;
    }
    if (payload.length > STREAM_THRESHOLD) {
      this.stream(res, typeof payload === "string" ? Buffer.from(payload) : payload);
      return;
    }
    res.end(payload);
  }

  /** Sends a large body in the chunks the socket accepts, resuming on writable events. */
  private stream(res: HttpResponse, buf: Buffer): void {
    const total = buf.length;
    const view = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    const start = res.getWriteOffset();
    const [ok, doneNow] = res.tryEnd(view, total);
    if (ok || doneNow) return;
    res.onWritable((offset) => {
      const [ok2] = res.tryEnd(view.subarray(offset - start), total);
      return ok2;
    });
  }

  /** Renders an error. `close` drops the connection (an unread body follows). */
  fail(res: HttpResponse, method: string, err: ApiError, ctx?: Pick<Ctx, "out" | "cookies">, close = false): void {
    if (err.status >= 500) this.counters.errors5xx++;
    else this.counters.errors4xx++;
    res.writeStatus(STATUS[err.status] ?? `${err.status} Error`);
    this.common(res);
    for (const k in err.headers) res.writeHeader(k, err.headers[k]!);
    if (ctx) for (const c of ctx.cookies) res.writeHeader("Set-Cookie", c);
    if (ctx?.out["Access-Control-Allow-Origin"]) {
      res.writeHeader("Access-Control-Allow-Origin", ctx.out["Access-Control-Allow-Origin"]);
      writeCors(res, null);
    }
    res.writeHeader("Content-Type", JSON_TYPE);
    const body = JSON.stringify({ error: { key: err.key, message: err.message, data: err.data } });
    // HEAD is a read: no request body is ever left unread, so `close` does not apply.
    if (method === "HEAD") endHead(res, Buffer.byteLength(body));
    else res.end(body, close);
  }

  private mountSockets(handler: SocketHandler<unknown>): void {
    this.app.ws<unknown>(DATABASE_PATH, {
      maxPayloadLength: handler.maxPayload,
      maxBackpressure: handler.maxBackpressure,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => {
        const h = readHeaders(req);
        const remote = remoteText(res);
        const origin = this.checkOrigin(h);
        if (origin instanceof ApiError) return this.fail(res, "GET", origin);
        const a = this.opts.auth.authenticate(h, () => remote, Date.now());
        if (a.retryAfter > 0) return this.fail(res, "GET", Errors.rateLimited(a.retryAfter));
        // The database API needs Admin (as in Portmaster): records carry every setting.
        if (a.token.read < PERMIT_ADMIN) {
          if (a.failure !== null) return this.fail(res, "GET", Errors.unauthorized(`Authorization failed: ${a.failure}.`, "Bearer"));
          if (a.token === ANONYMOUS) return this.fail(res, "GET", Errors.unauthorized("Authorization required.", "Bearer"));
          return this.fail(res, "GET", Errors.forbidden("Insufficient permissions: the database API needs Admin."));
        }
        res.upgrade(
          handler.create(a.token, remote),
          req.getHeader("sec-websocket-key"),
          req.getHeader("sec-websocket-protocol"),
          req.getHeader("sec-websocket-extensions"),
          context,
        );
      },
      open: (ws) => handler.open(ws),
      message: (ws, msg) => handler.message(ws, Buffer.from(msg).toString("utf8")),
      drain: (ws) => handler.drain(ws),
      close: (ws) => handler.close(ws),
    });
  }
}

/** Copies the headers sluice reads; those a request of this method cannot need are skipped. */
export function readHeaders(req: HttpRequest, method = "GET"): Headers {
  const write = method !== "GET" && method !== "HEAD";
  const origin = req.getHeader("origin");
  return {
    authorization: req.getHeader("authorization"),
    cookie: req.getHeader("cookie"),
    sluiceAuth: req.getHeader("sluice-auth"),
    csrf: write ? req.getHeader("x-csrf-token") : "",
    contentType: write ? req.getHeader("content-type") : "",
    contentLength: write ? req.getHeader("content-length") : "",
    transferEncoding: write ? req.getHeader("transfer-encoding") : "",
    accept: req.getHeader("accept"),
    host: origin !== "" ? req.getHeader("host") : "",
    origin,
    acrm: method === "OPTIONS" ? req.getHeader("access-control-request-method") : "",
  };
}

export function remoteText(res: HttpResponse): string {
  const t = Buffer.from(res.getRemoteAddressAsText()).toString();
  // uWS writes IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
  return t.startsWith("::ffff:") && t.includes(".") ? t.slice(7) : t;
}


/**
 * A request has a body when it says so: a non-zero Content-Length, or Transfer-Encoding (RFC 9112
 * 6.3). Not by its Content-Type: a chunked body sent without one would go unread.
 */
function hasBody(h: Headers): boolean {
  return (h.contentLength !== "" && h.contentLength !== "0") || h.transferEncoding !== "";
}

/**
 * Ends a HEAD response with the Content-Length GET would have, and no body. Not with
 * endWithoutBody(length): uWS then waits for `length` more bytes, so the response never ends
 * (the keep-alive connection stalls, and a synchronous handler aborts the process). And with no
 * argument at all: an explicit undefined is read as a length too.
 */
function endHead(res: HttpResponse, length: number): void {
  res.writeHeader("Content-Length", String(length));
  res.endWithoutBody();
}

function acceptsJson(accept: string): boolean {
  return accept === "" || accept.includes("json") || accept.includes("*/*") || accept.includes("application/*");
}

function writeCors(res: HttpResponse, origin: string | null): void {
  if (origin) res.writeHeader("Access-Control-Allow-Origin", origin);
  res.writeHeader("Access-Control-Allow-Methods", "*");
  res.writeHeader("Access-Control-Allow-Headers", "*");
  res.writeHeader("Access-Control-Expose-Headers", "*");
  res.writeHeader("Access-Control-Allow-Credentials", "true");
  res.writeHeader("Access-Control-Max-Age", "60");
  res.writeHeader("Vary", "Origin");
}

function toApiError(err: unknown, log: Logger): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; message?: string; data?: Record<string, unknown> | null };
  if (typeof e?.code === "string" && typeof e.message === "string" && /^(RULES_|CONFIG_)/.test(e.code)) {
    return new ApiError(400, "bad_request", e.message, e.data ?? null);
  }
  log.warn(`API handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return Errors.internal(`internal error: ${err instanceof Error ? err.message : String(err)}`);
}
