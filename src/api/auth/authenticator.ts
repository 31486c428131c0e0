// Who is asking. The first source that applies wins, in Portmaster's order:
//   1. dev mode, for loopback clients only: full access (Self);
//   2. Authorization: Bearer <key or token>, or Basic with the key as user name (user+password
//      concatenated, as Portmaster does) or an app token as password;
//   3. Sluice-Auth: <token name>:<token> (Portus' header form);
//   4. the session cookie;
//   5. nobody: the anonymous token.
// Credentials that are presented but wrong are counted per client by the FailureLimiter.

import { ANONYMOUS, DEV, type Token } from "../permissions.js";
import type { Headers } from "../http.js";
import { ApiKeys } from "./keys.js";
import { TokenStore } from "./tokens.js";
import { Sessions, SESSION_COOKIE, cookieValue } from "./sessions.js";
import { FailureLimiter } from "./limiter.js";
import { TOKEN_PREFIX } from "./secret.js";

export interface AuthResult {
  token: Token;
  /** Why presented credentials were refused (null if none were presented, or they were good). */
  failure: string | null;
  /** The session used, if the cookie authenticated the request. */
  sessionKey: string | null;
  csrf: string | null;
  /** Seconds the client is still locked out for (429), 0 if not. */
  retryAfter: number;
}

export interface AuthSettings {
  devMode(): boolean;
}

export class Authenticator {
  constructor(
    readonly keys: ApiKeys,
    readonly tokens: TokenStore,
    readonly sessions: Sessions,
    readonly limiter: FailureLimiter,
    private readonly settings: AuthSettings,
  ) {}

  /** `remoteOf` is called only when the address matters (dev mode, presented credentials). */
  authenticate(h: Headers, remoteOf: () => string, now: number): AuthResult {
    if (this.settings.devMode() && isLoopback(remoteOf())) return result(DEV);
    const presented = h.authorization !== "" || h.sluiceAuth !== "";
    if (presented) {
      // The address is only needed while some client has failures on record.
      const wait = this.limiter.tracking ? this.limiter.blockedFor(remoteOf(), now) : 0;
      if (wait > 0) return { token: ANONYMOUS, failure: "rate limited", sessionKey: null, csrf: null, retryAfter: wait };
      const r = h.authorization !== "" ? this.fromAuthorization(h.authorization, now) : this.fromSluiceAuth(h.sluiceAuth, now);
      if (typeof r === "string") {
        this.limiter.fail(remoteOf(), now);
        return { token: ANONYMOUS, failure: r, sessionKey: null, csrf: null, retryAfter: 0 };
      }
      return result(r);
    }
    if (h.cookie !== "") {
      const v = cookieValue(h.cookie, SESSION_COOKIE);
      if (v) {
        const s = this.sessions.touch(v, now);
        if (s) return { token: s.session.token, failure: null, sessionKey: s.key, csrf: s.session.csrf, retryAfter: 0 };
        return { token: ANONYMOUS, failure: "the session has expired or was ended; log in again", sessionKey: null, csrf: null, retryAfter: 0 };
      }
    }
    return result(ANONYMOUS);
  }

  private fromAuthorization(value: string, now: number): Token | string {
    const sp = value.indexOf(" ");
    const scheme = sp < 0 ? value : value.slice(0, sp);
    const cred = sp < 0 ? "" : value.slice(sp + 1).trim();
    if (scheme.toLowerCase() === "bearer") return this.secret(cred, now, null);
    if (scheme.toLowerCase() === "basic") {
      const decoded = Buffer.from(cred, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      const user = colon < 0 ? decoded : decoded.slice(0, colon);
      const pass = colon < 0 ? "" : decoded.slice(colon + 1);
      // An app token as password names its token as user; otherwise user+password is a key.
      if (pass.startsWith(TOKEN_PREFIX)) return this.secret(pass, now, user);
      return this.secret(user + pass, now, null);
    }
    return `unsupported Authorization scheme "${scheme}" (use Bearer or Basic)`;
  }

  private fromSluiceAuth(value: string, now: number): Token | string {
    const colon = value.indexOf(":");
    if (colon <= 0) return "Sluice-Auth must be <token name>:<token>";
    return this.secret(value.slice(colon + 1), now, value.slice(0, colon));
  }

  /** An app token (slc_...) or an API key; `name` must match the token's name when given. */
  private secret(secret: string, now: number, name: string | null): Token | string {
    if (secret === "") return "empty credentials";
    if (secret.startsWith(TOKEN_PREFIX)) {
      const t = this.tokens.verify(secret, now);
      if (t === "unknown") return "unknown or revoked token";
      if (t === "expired") return "the token has expired";
      if (name !== null && name !== "" && name !== t.entry.name) return "the token does not belong to that name";
      return { read: t.read, write: t.write, via: "token", id: t.entry.id, name: t.entry.name, expires: t.entry.expires === null ? null : Date.parse(t.entry.expires) };
    }
    const k = this.keys.verify(secret, now);
    if (k === "unknown") return "unknown API key";
    if (k === "expired") return "the API key has expired";
    return { read: k.read, write: k.write, via: "key", id: null, name: k.label, expires: k.expires };
  }
}

function result(token: Token): AuthResult {
  return { token, failure: null, sessionKey: null, csrf: null, retryAfter: 0 };
}

export function isLoopback(addr: string): boolean {
  return addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127.");
}
