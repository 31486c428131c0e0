// Pi-hole's login sessions: a fixed number of numbered slots, each opened by POST /api/auth and
// named by a random sid (plus a CSRF token for cookie use). A session lives 1800 s past its last
// use, never past the credential it was opened with, and ends when that credential is revoked.
// Like sluice's own sessions, only the sid's digest is kept; sessions are in memory, so a restart
// logs clients out (Pi-hole restores them from its database; its clients log in again on 401).

import { randomBytes } from "node:crypto";
import { digest } from "../auth/secret.js";
import type { Token } from "../permissions.js";

/** Pi-hole's default `webserver.api.max_sessions`. */
export const MAX_SESSIONS = 16;
/** Pi-hole's default `webserver.session.timeout`, in seconds. */
export const SESSION_TIMEOUT_S = 1800;
/** 128 random bits per sid and CSRF token, as Pi-hole; written base64url so they need no escaping in a URL. */
const SECRET_BYTES = 16;
const MS = 1000;

export interface Slot {
  /** The slot number, as GET /api/auth/sessions lists it and DELETE /api/auth/session/{id} takes it. */
  readonly id: number;
  readonly sidHash: string;
  readonly csrf: string;
  /** The credential's permissions, and how to tell whether it still stands. */
  readonly token: Token;
  readonly loginAt: number;
  lastActive: number;
  validUntil: number;
  readonly remote: string;
  readonly userAgent: string | null;
  readonly forwardedFor: string | null;
}

export interface LoginInfo {
  remote: string;
  userAgent: string | null;
  forwardedFor: string | null;
}

export type Lookup = { slot: Slot } | { problem: "session expired" | "session unknown" };

export class PiSessions {
  private readonly slots: (Slot | null)[] = new Array<Slot | null>(MAX_SESSIONS).fill(null);
  private readonly bySid = new Map<string, Slot>();

  /**
   * @param alive whether the credential behind a session still stands (a revoked app token does
   *   not); asked on every use, so revocation takes effect on the next request.
   */
  constructor(private readonly alive: (t: Token) => boolean) {}

  /** Opens a session in a free slot; null when every slot holds a live session. */
  open(token: Token, now: number, info: LoginInfo): { slot: Slot; sid: string } | null {
    // Expired slots are freed here, when a seat is needed (as Pi-hole does).
    for (const s of this.slots) if (s && !this.live(s, now)) this.free(s);
    const id = this.slots.indexOf(null);
    if (id < 0) return null;
    const sid = randomBytes(SECRET_BYTES).toString("base64url");
    const slot: Slot = {
      id,
      sidHash: digest(sid),
      csrf: randomBytes(SECRET_BYTES).toString("base64url"),
      token,
      loginAt: now,
      lastActive: now,
      validUntil: this.until(token, now),
      remote: info.remote,
      userAgent: info.userAgent,
      forwardedFor: info.forwardedFor,
    };
    this.slots[id] = slot;
    this.bySid.set(slot.sidHash, slot);
    return { slot, sid };
  }

  /** The session a sid names, its expiry pushed on (sliding); or why there is none. */
  use(sid: string, now: number): Lookup {
    const s = this.bySid.get(digest(sid));
    if (!s) return { problem: "session unknown" };
    if (!this.live(s, now)) {
      this.free(s);
      return { problem: "session expired" };
    }
    s.lastActive = now;
    s.validUntil = this.until(s.token, now);
    return { slot: s };
  }

  /** Ends the session in slot `id`; false if the slot is free. */
  end(id: number): boolean {
    const s = this.slots[id];
    if (!s) return false;
    this.free(s);
    return true;
  }

  /** Every occupied slot, in slot order, with whether it is still valid. */
  list(now: number): { slot: Slot; valid: boolean }[] {
    const out: { slot: Slot; valid: boolean }[] = [];
    for (const s of this.slots) if (s) out.push({ slot: s, valid: this.live(s, now) });
    return out;
  }

  /** Ends every session opened with an API key (the key set changed, so a key may be gone). */
  dropKeySessions(): void {
    for (const s of this.slots) if (s && s.token.via === "key") this.free(s);
  }

  /** Seconds a session has left (Pi-hole's `validity`). */
  static validity(s: Slot, now: number): number {
    return Math.max(0, Math.round((s.validUntil - now) / MS));
  }

  private live(s: Slot, now: number): boolean {
    return s.validUntil > now && this.alive(s.token);
  }

  /** The timeout from now, cut at the credential's own expiry. */
  private until(t: Token, now: number): number {
    const end = now + SESSION_TIMEOUT_S * MS;
    return t.expires != null && t.expires < end ? t.expires : end;
  }

  private free(s: Slot): void {
    if (this.slots[s.id] === s) this.slots[s.id] = null;
    this.bySid.delete(s.sidHash);
  }
}
