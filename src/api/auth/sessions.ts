// Dashboard sessions: after a browser authenticates once (auth/basic or auth/bearer with a valid
// key or token), it gets an HttpOnly, SameSite=Strict cookie. The session lives as long as it is
// used (a sliding TTL) and carries a CSRF token that every cookie-authenticated write must echo
// in X-CSRF-Token. Sessions are in memory only: a restart logs browsers out.

import { randomBytes } from "node:crypto";
import { digest } from "./secret.js";
import type { Token } from "../permissions.js";

export const SESSION_COOKIE = "Sluice-Session";
const SESSION_BYTES = 32;
/** Beyond this many live sessions, the least recently used one is dropped. */
const MAX_SESSIONS = 1000;

export interface Session {
  token: Token;
  csrf: string;
  expiresAt: number;
  /** The expiry of the key or token that opened it: use does not slide the session past it. */
  notAfter: number | null;
  /** Opened with an API key (which has no id to revoke by): ended whenever the key set changes. */
  viaKey: boolean;
}

export class Sessions {
  /** Keyed by the cookie's digest; Map order is use order (touch re-inserts). */
  private readonly live = new Map<string, Session>();

  constructor(private readonly ttlMs: () => number) {}

  create(token: Token, now: number): { cookie: string; csrf: string; id: string } {
    const id = randomBytes(SESSION_BYTES).toString("base64url");
    const csrf = randomBytes(SESSION_BYTES / 2).toString("base64url");
    const key = digest(id);
    this.live.set(key, { token: { ...token, via: "session" }, csrf, expiresAt: now + this.ttlMs(), notAfter: token.expires ?? null, viaKey: token.via === "key" });
    if (this.live.size > MAX_SESSIONS) this.live.delete(this.live.keys().next().value!);
    return { cookie: `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict`, csrf, id: key };
  }

  /** The session for a cookie value, refreshed; null if unknown or expired. */
  touch(cookieValue: string, now: number): { key: string; session: Session } | null {
    const key = digest(cookieValue);
    const s = this.live.get(key);
    if (!s) return null;
    this.live.delete(key);
    if (s.expiresAt <= now || (s.notAfter !== null && s.notAfter <= now)) return null;
    s.expiresAt = now + this.ttlMs();
    this.live.set(key, s);
    return { key, session: s };
  }

  get(key: string): Session | null {
    return this.live.get(key) ?? null;
  }

  delete(key: string): boolean {
    return this.live.delete(key);
  }

  /** Ends every session opened with an API key (the key set changed; a key may be gone). */
  dropKeySessions(): void {
    for (const [k, s] of this.live) if (s.viaKey) this.live.delete(k);
  }

  /** Ends every session a revoked token opened. */
  dropFor(tokenId: string): void {
    for (const [k, s] of this.live) if (s.token.id === tokenId) this.live.delete(k);
  }

  get size(): number {
    return this.live.size;
  }
}

/** The value of one cookie in a Cookie header, without allocating for the others. */
export function cookieValue(header: string, name: string): string | null {
  let i = header.indexOf(name + "=");
  while (i > 0 && header[i - 1] !== " " && header[i - 1] !== ";") i = header.indexOf(name + "=", i + 1);
  if (i < 0) return null;
  const start = i + name.length + 1;
  const end = header.indexOf(";", start);
  return header.slice(start, end < 0 ? undefined : end).trim();
}

export const CLEAR_COOKIE = `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
