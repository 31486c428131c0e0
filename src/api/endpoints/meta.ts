// ping, ready, endpoints, and the auth/* endpoints Portmaster's clients log in and out with.

import type { Deps } from "../deps.js";
import type { Ctx } from "../http.js";
import { ApiError, Errors } from "../errors.js";
import { PERMIT_ANYONE, PERMIT_DYNAMIC, roleName } from "../permissions.js";
import { CLEAR_COOKIE } from "../auth/sessions.js";

export function registerMeta(d: Deps): void {
  const r = d.registry;
  const notReady = () => Errors.unavailable("sluice is not ready, reload (F5) to try again");

  r.register({
    name: "Ping",
    description: "Pong. 503 while sluice starts or stops (Portmaster answers 425; sluice follows the HTTP convention for not ready).",
    path: "ping",
    mimeType: "text/plain",
    read: PERMIT_ANYONE,
    handler: () => {
      if (!d.control.ready) throw notReady();
      return "Pong.";
    },
  });

  r.register({
    name: "Check Readiness",
    description: "200 once sluice is ready (rules loaded, packet path running), 503 before.",
    path: "ready",
    mimeType: "text/plain",
    read: PERMIT_ANYONE,
    handler: () => {
      if (!d.control.ready) throw notReady();
      return "sluice is ready.";
    },
  });

  r.register({
    name: "Export API Endpoints",
    description: "Returns a list of all registered endpoints and their metadata.",
    path: "endpoints",
    read: PERMIT_ANYONE,
    handler: () => d.registry.export(),
  });

  r.register({
    name: "View Current Permissions",
    description: "Returns the permissions of the request's credentials, and the CSRF token of a dashboard session.",
    path: "auth/permissions",
    read: PERMIT_DYNAMIC,
    handler: (ctx) => {
      const t = ctx.token;
      const out: Record<string, unknown> = { Read: t.read, Write: t.write, ReadRole: roleName(t.read), WriteRole: roleName(t.write), Via: t.via, Name: t.name };
      if (ctx.sessionId) out.CSRFToken = d.auth.sessions.get(ctx.sessionId)?.csrf ?? null;
      return out;
    },
  });

  const login = (scheme: "Bearer" | "Basic") => (ctx: Ctx) => {
    if (ctx.token.read <= PERMIT_ANYONE) throw Errors.unauthorized("Authorization required.", scheme);
    // A browser that proved itself with a key or token gets a session, so the dashboard (and its
    // WebSocket, which cannot carry an Authorization header) keep working with a cookie.
    if (ctx.token.via === "key" || ctx.token.via === "token") {
      const s = d.auth.sessions.create(ctx.token, Date.now());
      ctx.setCookie(s.cookie);
      ctx.setHeader("X-CSRF-Token", s.csrf);
    } else if (ctx.sessionId) {
      ctx.setHeader("X-CSRF-Token", d.auth.sessions.get(ctx.sessionId)?.csrf ?? "");
    }
    return "Authenticated.";
  };
  r.register({
    name: "Request HTTP Bearer Auth",
    description: "Returns an HTTP Bearer Auth request if not authenticated; with valid credentials, starts a dashboard session (cookie, X-CSRF-Token header).",
    path: "auth/bearer",
    mimeType: "text/plain",
    read: PERMIT_DYNAMIC,
    handler: login("Bearer"),
  });
  r.register({
    name: "Request HTTP Basic Auth",
    description: "Returns an HTTP Basic Auth request if not authenticated (the key as user name, or token name and token); with valid credentials, starts a dashboard session.",
    path: "auth/basic",
    mimeType: "text/plain",
    read: PERMIT_DYNAMIC,
    handler: login("Basic"),
  });

  r.register({
    name: "Reset Authenticated Session",
    description: "Ends the dashboard session and clears the cookie (and cached Basic credentials).",
    path: "auth/reset",
    mimeType: "text/plain",
    read: PERMIT_ANYONE,
    handler: (ctx) => {
      if (ctx.sessionId) d.auth.sessions.delete(ctx.sessionId);
      ctx.setCookie(CLEAR_COOKIE);
      throw new ApiError(401, "unauthorized", "Session deleted.", null, { "Clear-Site-Data": "*", "WWW-Authenticate": 'None realm="sluice API"' });
    },
  });
}
