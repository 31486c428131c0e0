// Who is asking on the Pi-hole routes, and /api/auth itself.
//
// The "password" of POST /api/auth is any credential the Portmaster side accepts (an app token or
// an API key), checked by the same Authenticator, so the same FailureLimiter counts wrong ones and
// the session carries that credential's read and write levels. A request is then identified, in
// this order:
//   1. dev mode, for a loopback client: Pi-hole with no password set (everything open);
//   2. a sid, where Pi-hole looks for one: the JSON body's "sid", the header `sid` or
//      `X-FTL-SID`, the cookie `sid` (then writes must carry `X-CSRF-TOKEN`), `?sid=`;
//   3. sluice's own credentials (Authorization Bearer/Basic, Sluice-Auth, the dashboard cookie),
//      an extension: scripts can skip the login/logout cycle and use up no seat;
//   4. nobody.

import { DEV, ANONYMOUS, PERMIT_ADMIN, PERMIT_ANYONE, PERMIT_USER } from "../permissions.js";
import { isLoopback } from "../auth/authenticator.js";
import { cookieValue } from "../auth/sessions.js";
import type { Headers } from "../http.js";
import { noContent, nothingDeleted, ok, PiError, PiErrors, PiReply, type PiRequest, type Route, type SidSource } from "./http.js";
import { MAX_SESSIONS, PiSessions, SESSION_TIMEOUT_S, type Slot } from "./sessions.js";

const SID_COOKIE = "sid";
/** Pi-hole's session cookie attributes (SameSite=Lax, as Pi-hole sets it). */
const COOKIE_ATTRS = `SameSite=Lax; Path=/; Max-Age=${SESSION_TIMEOUT_S}; HttpOnly`;
const CLEAR_SID_COOKIE = `${SID_COOKIE}=; SameSite=Lax; Path=/; Max-Age=0; HttpOnly`;
/** `validity` and `sid` of a session object that is not a real session. */
const NO_VALIDITY = -1;
const MS = 1000;

const EMPTY_HEADERS: Headers = {
  authorization: "",
  cookie: "",
  sluiceAuth: "",
  csrf: "",
  contentType: "",
  contentLength: "",
  transferEncoding: "",
  accept: "",
  host: "",
  origin: "",
  acrm: "",
};

/** The sid a request carries and where it was found, in Pi-hole's order. */
function findSid(r: PiRequest): { sid: string; source: SidSource } | null {
  const fromBody = r.bodySid();
  if (fromBody) return { sid: fromBody, source: "body" };
  const h = r.headers.sid || r.headers.ftlSid;
  if (h) return { sid: h, source: "header" };
  if (r.headers.cookie) {
    const c = cookieValue(r.headers.cookie, SID_COOKIE);
    if (c) return { sid: c, source: "cookie" };
  }
  const q = r.query.get("sid");
  // URLSearchParams reads an unescaped "+" as a space; sids may contain "+" (Pi-hole's do), so
  // it is turned back, as FTL does.
  if (q) return { sid: q.replaceAll(" ", "+"), source: "query" };
  return null;
}

/**
 * Sets r.token (and r.session / r.open). Returns the error to answer with when the request must
 * be refused whatever the route (rate limited, or a sluice credential that is wrong), else null.
 * An unknown sid or a missing CSRF token leaves the request anonymous with r.sidProblem saying
 * why, for /api/auth's session object and the 401's hint.
 */
export function identify(r: PiRequest, now: number): PiError | null {
  const { services: s } = r;
  r.token = ANONYMOUS;
  if (s.devMode() && isLoopback(r.remote)) {
    r.token = DEV;
    r.open = true;
    return null;
  }
  const found = findSid(r);
  if (found) {
    r.sidPresented = true;
    const l = s.sessions.use(found.sid, now);
    if ("problem" in l) {
      r.sidProblem = l.problem;
      return null;
    }
    // Not a refusal by itself: the request stays anonymous, so open routes (a new login) still
    // work for a browser holding an old cookie, and protected ones answer 401 with this hint.
    if (found.source === "cookie" && isWrite(r.method) && r.headers.csrf !== l.slot.csrf) {
      r.sidProblem = "a session cookie must be sent with the session's X-CSRF-TOKEN header for this method";
      return null;
    }
    r.token = l.slot.token;
    r.session = l.slot;
    r.sid = found.sid;
    // The cookie is re-issued so the browser keeps it as long as the session slides on.
    if (found.source === "cookie") r.cookies.push(sidCookie(found.sid));
    return null;
  }
  const h = r.headers;
  if (h.authorization === "" && h.sluiceAuth === "" && h.cookie === "") return null;
  const a = s.auth.authenticate(h, () => r.remote, now);
  if (a.retryAfter > 0) return rateLimited(a.retryAfter);
  if (a.failure !== null) return new PiError(401, "unauthorized", "Unauthorized", a.failure);
  if (a.sessionKey !== null && isWrite(r.method) && h.csrf !== a.csrf) {
    r.sidProblem = "a dashboard session cookie must be sent with its X-CSRF-Token header for this method";
    return null;
  }
  r.token = a.token;
  return null;
}

export function isWrite(method: string): boolean {
  return method !== "GET" && method !== "HEAD";
}

/**
 * 429 rate_limiting. Pi-hole answers a login that trips its limiter with 401 "password
 * incorrect" when the app-password check is the one over the limit, even if that password was
 * right (home-assistant/core #178142); a client then cannot tell a wrong password from "slow
 * down". Here a limited client always gets 429 with Retry-After, whatever it sent.
 */
function rateLimited(retryAfterS: number): PiError {
  return new PiError(429, "rate_limiting", "Rate-limiting login attempts", `too many failed logins from this client; retry in ${retryAfterS} s`, null, {
    "Retry-After": String(retryAfterS),
  });
}

function sidCookie(sid: string): string {
  return `${SID_COOKIE}=${sid}; ${COOKIE_ATTRS}`;
}

interface SessionObject {
  valid: boolean;
  totp: boolean;
  sid: string | null;
  csrf: string | null;
  validity: number;
  message: string | null;
}

function sessionObject(valid: boolean, message: string | null, slot?: { sid: string; s: Slot; now: number }): { session: SessionObject } {
  return {
    session: {
      valid,
      totp: false,
      sid: slot?.sid ?? null,
      csrf: slot?.s.csrf ?? null,
      validity: slot ? PiSessions.validity(slot.s, slot.now) : NO_VALIDITY,
      message,
    },
  };
}

const NO_PASSWORD = "no password set";

/** 401 with the session object and the cookie deleted: Pi-hole's answer to a failed login or check. */
function refused(r: PiRequest, message: string): PiReply {
  r.cookies.push(CLEAR_SID_COOKIE);
  return new PiReply(401, sessionObject(false, message));
}

function login(r: PiRequest): PiReply {
  if (r.open) return ok(sessionObject(true, NO_PASSWORD));
  const body = r.object();
  const password = body.password;
  if (typeof password !== "string" || password === "") throw PiErrors.badRequest('No "password" string in body data');
  const now = Date.now();
  const { auth, sessions } = r.services;
  const a = auth.authenticate({ ...EMPTY_HEADERS, authorization: `Bearer ${password}` }, () => r.remote, now);
  if (a.retryAfter > 0) throw rateLimited(a.retryAfter);
  if (a.failure !== null) return refused(r, "password incorrect");
  const opened = sessions.open(a.token, now, {
    remote: r.remote,
    userAgent: r.headers.userAgent || null,
    forwardedFor: r.headers.forwardedFor || null,
  });
  if (!opened) {
    throw new PiError(429, "api_seats_exceeded", "API seats exceeded", `all ${MAX_SESSIONS} sessions are in use; end one (DELETE /api/auth) or wait until one expires (${SESSION_TIMEOUT_S} s after its last use)`);
  }
  r.cookies.push(sidCookie(opened.sid));
  return ok(sessionObject(true, "password correct", { sid: opened.sid, s: opened.slot, now }));
}

function check(r: PiRequest): PiReply {
  if (r.open) return ok(sessionObject(true, NO_PASSWORD));
  if (r.session && r.sid) return ok(sessionObject(true, null, { sid: r.sid, s: r.session, now: Date.now() }));
  // A sluice credential (no session): valid, but there is no sid to report.
  if (r.token !== ANONYMOUS) return ok(sessionObject(true, "authenticated with a sluice credential (no session)"));
  return refused(r, r.sidProblem ?? "no SID provided");
}

function logout(r: PiRequest): PiReply {
  if (r.session) {
    r.services.sessions.end(r.session.id);
    r.cookies.push(CLEAR_SID_COOKIE);
    return noContent();
  }
  // With no password set there is no session to end.
  if (r.open) return nothingDeleted();
  throw PiErrors.unauthorized(r.sidProblem);
}

function listSessions(r: PiRequest): PiReply {
  const now = Date.now();
  const secs = (ms: number) => Math.floor(ms / MS);
  return ok({
    sessions: r.services.sessions.list(now).map(({ slot: s, valid }) => ({
      id: s.id,
      current_session: r.session?.id === s.id,
      valid,
      // sluice's API is plain HTTP (put TLS in front with a proxy).
      tls: { login: false, mixed: false },
      // An app token is what comes closest to Pi-hole's app password.
      app: s.token.via === "token",
      cli: false,
      login_at: secs(s.loginAt),
      last_active: secs(s.lastActive),
      valid_until: secs(s.validUntil),
      remote_addr: s.remote,
      user_agent: s.userAgent,
      x_forwarded_for: s.forwardedFor,
    })),
  });
}

function endSession(r: PiRequest): PiReply {
  const raw = r.parts(1)[0];
  if (raw === undefined) throw PiErrors.badRequest("Missing session ID", "DELETE /api/auth/session/{id}");
  const id = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(id < MAX_SESSIONS)) throw PiErrors.badRequest("Session ID out of bounds", `an integer from 0 to ${MAX_SESSIONS - 1}`);
  const own = r.session?.id === id;
  // Ending one's own session needs nothing more; ending another's is an admin's business.
  if (!own && r.token.write < PERMIT_ADMIN) throw PiErrors.forbidden("Ending another session needs Admin write permission");
  if (!r.services.sessions.end(id)) throw PiErrors.badRequest("Session ID not in use", String(id));
  if (own) r.cookies.push(CLEAR_SID_COOKIE);
  return noContent();
}

export const authRoutes: Route[] = [
  { path: "/api/auth", params: "", item: false, read: PERMIT_ANYONE, write: PERMIT_ANYONE, dns: false, handlers: { GET: check, POST: login, DELETE: logout } },
  { path: "/api/auth/sessions", params: "", item: false, read: PERMIT_ADMIN, write: PERMIT_ADMIN, dns: false, handlers: { GET: listSessions } },
  { path: "/api/auth/session", params: "/{id}", item: true, read: PERMIT_USER, write: PERMIT_USER, dns: false, handlers: { DELETE: endSession } },
];
