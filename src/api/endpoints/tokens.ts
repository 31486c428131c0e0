// App tokens (Portus-style) and app/auth, Portmaster's interactive access request.

import { z } from "zod";
import type { Deps } from "../deps.js";
import { created, durationMs, durationSchema, noContent } from "../http.js";
import { Errors, ApiError } from "../errors.js";
import { PERMIT_ADMIN, PERMIT_ANYONE, type Role } from "../permissions.js";
import { NotificationError } from "../../control/notifications.js";

const ROLE = z.enum(["user", "admin"]);
const MAX_TTL_MS = 5 * 365 * 86400_000;
/** How long an app/auth request waits for an admin (Portmaster: the prompt expires after 1 min). */
const APP_AUTH_WAIT_MS = 60_000;
const MAX_PENDING_REQUESTS = 20;
const APP_NAME_RE = /^[\p{L}\p{N} ._()-]{1,64}$/u;
const TOKEN_ID = "{id:[0-9a-f]{12}}";

const CreateToken = z
  .object({
    name: z.string().min(1).max(64),
    role: ROLE.optional(),
    read: ROLE.optional(),
    write: ROLE.optional(),
    ttl: durationSchema.optional(),
  })
  .strict();

const Answer = z.object({ action: z.enum(["allow", "deny"]) }).strict();

export function registerTokens(d: Deps): void {
  const r = d.registry;
  const tokens = d.auth.tokens;

  r.register({
    name: "App Tokens",
    description: "Lists app tokens (never their secrets); POST creates one and shows its secret once.",
    path: "auth/tokens",
    read: PERMIT_ADMIN,
    write: PERMIT_ADMIN,
    handler: (ctx) => {
      if (ctx.method === "GET" || ctx.method === "HEAD") return tokens.list();
      const b = ctx.json(CreateToken);
      if (b.role && (b.read || b.write)) throw Errors.badBody("give either role, or read and write, not both");
      const role: Role = b.role ?? "user";
      const ttlMs = b.ttl === undefined ? null : durationMs(b.ttl);
      if (ttlMs !== null && (ttlMs <= 0 || ttlMs > MAX_TTL_MS)) throw Errors.badBody("ttl: between 1 s and 5 years");
      const owner = ctx.token.name ?? ctx.token.via;
      const { token, secret } = tokens.create({ name: b.name, owner, read: b.read ?? role, write: b.write ?? role, ttlMs });
      return created(`/api/v1/auth/tokens/${token.id}`, { ...token, token: secret, note: "This is the only time the token is shown; sluice keeps only its hash." });
    },
  });

  r.register({
    name: "App Token",
    description: "One app token (without its secret); DELETE revokes it and ends its dashboard sessions.",
    path: `auth/tokens/${TOKEN_ID}`,
    read: PERMIT_ADMIN,
    write: PERMIT_ADMIN,
    writeMethods: ["DELETE"],
    handler: (ctx) => {
      const id = ctx.vars.id!;
      if (ctx.method === "DELETE") {
        if (!tokens.revoke(id)) throw Errors.notFound(`no token with id ${id}`, { id });
        d.auth.sessions.dropFor(id);
        return noContent();
      }
      const t = tokens.get(id);
      if (!t) throw Errors.notFound(`no token with id ${id}`, { id });
      return t;
    },
  });

  let pending = 0;
  r.register({
    name: "Request Access",
    description:
      "Request an authentication token with a given set of permissions. An admin is prompted (notifications, WebSocket, CLI) to authorize or deny; the request waits up to 60 s for the answer.",
    path: "app/auth",
    read: PERMIT_ANYONE,
    parameters: [
      { Method: "GET", Field: "app-name", Value: "", Description: "The name of the application requesting access" },
      { Method: "GET", Field: "read", Value: "user|admin", Description: "The requested read permission" },
      { Method: "GET", Field: "write", Value: "user|admin", Description: "The requested write permission" },
      { Method: "GET", Field: "ttl", Value: "24h", Description: "The time-to-live for the new access token. Defaults to 24h" },
    ],
    handler: async (ctx) => {
      const app = ctx.param("app-name");
      if (!APP_NAME_RE.test(app)) throw Errors.badRequest("app-name: 1-64 letters, digits, spaces or ._()-", { parameter: "app-name" });
      const read = ROLE.safeParse(ctx.param("read", "user"));
      const write = ROLE.safeParse(ctx.param("write", "user"));
      if (!read.success) throw Errors.badRequest("invalid read permission (user or admin)", { parameter: "read" });
      if (!write.success) throw Errors.badRequest("invalid write permission (user or admin)", { parameter: "write" });
      const ttlText = ctx.param("ttl", "24h");
      const ttl = durationSchema.safeParse(ttlText);
      const ttlMs = ttl.success ? durationMs(ttl.data) : NaN;
      if (!(ttlMs > 0 && ttlMs <= MAX_TTL_MS)) throw Errors.badRequest("ttl: a duration like 30m, 24h or 7d, at most 5 years", { parameter: "ttl" });
      if (pending >= MAX_PENDING_REQUESTS) throw new ApiError(429, "rate_limiting", "too many access requests are waiting for an answer", null, { "Retry-After": "60" });
      pending++;
      try {
        const id = `sluice:authorize-app-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
        const answer = await d.control.notifications.prompt(
          {
            EventID: id,
            Title: "An app requests access to sluice",
            Category: "API",
            Message: `Allow ${app} (from ${ctx.remote}) to ${read.data === "admin" || write.data === "admin" ? "query and modify" : "query"} sluice? Read: ${read.data}, write: ${write.data}, for ${ttlText}.`,
            ShowOnSystem: true,
            EventData: { app, remote: ctx.remote, read: read.data, write: write.data, ttl: ttlText },
            Expires: Math.floor((Date.now() + APP_AUTH_WAIT_MS) / 1000),
            AvailableActions: [
              { ID: "allow", Text: "Authorize", Type: "", Payload: null },
              { ID: "deny", Text: "Deny", Type: "", Payload: null },
            ],
          },
          APP_AUTH_WAIT_MS,
          ctx.signal,
        );
        if (answer === null) throw new ApiError(408, "timeout", "nobody answered the access request in time");
        if (answer !== "allow") throw Errors.forbidden("access denied");
        // Token names are plainer than app names: keep what fits, and stamp the approval time.
        const stamp = new Date().toISOString().slice(0, 23).replace(/[:T]/g, "-");
        // A token name starts with a letter or digit; app names may start with "(", "." or " ".
        const plain = app.replace(/[^A-Za-z0-9 ._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 40);
        const name = `${plain || "app"} ${stamp}`;
        // Owned per app: each app holds at most tokensPerOwner, and one app cannot use up the others' share.
        const { token, secret } = tokens.create({ name, owner: `app/auth:${plain || "app"}`, read: read.data, write: write.data, ttlMs });
        return { key: secret, validUntil: token.expires };
      } finally {
        pending--;
      }
    },
  });

  r.register({
    name: "Pending Access Requests",
    description: "The app/auth requests waiting for an answer.",
    path: "app/requests",
    read: PERMIT_ADMIN,
    handler: () => d.control.notifications.list().filter((n) => n.State === "active" && n.EventID.startsWith("sluice:authorize-app-")),
  });

  r.register({
    name: "Answer Access Request",
    description: 'Authorizes or denies a waiting app/auth request: {"action":"allow"|"deny"}.',
    path: "app/requests/{id:sluice:authorize-app-[0-9a-z-]{1,40}}",
    write: PERMIT_ADMIN,
    handler: (ctx) => {
      const { action } = ctx.json(Answer);
      try {
        return d.control.notifications.respond(ctx.vars.id!, action);
      } catch (err) {
        if (err instanceof NotificationError) {
          if (err.key === "not_found") throw Errors.notFound(err.message);
          if (err.key === "conflict") throw Errors.conflict(err.message);
          throw Errors.badBody(err.message);
        }
        throw err;
      }
    },
  });
}
