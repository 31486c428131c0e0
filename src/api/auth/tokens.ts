// Application tokens, Portus-style: an admin creates one for an app, sees the secret once, and
// sluice keeps only its digest. Each has a name (unique per owner), read and write roles, an
// optional expiry and a last-used time; owners hold a bounded number; DELETE revokes.
// Stored in <data>/auth/tokens.json (0600), rewritten atomically on every change; last-used
// times are flushed on a timer, not on every request.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { digest, newId, newSecret } from "./secret.js";
import { roleLevel, type Role } from "../permissions.js";
import { Errors } from "../errors.js";

const FILE_MODE = 0o600;
const FLUSH_MS = 30_000;
const LAST_USED_RESOLUTION_MS = 1000;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

export interface TokenEntry {
  id: string;
  name: string;
  /** Who created it: the creating token's name, "system" (first run) or "app/auth:<app>". */
  owner: string;
  read: Role;
  write: Role;
  created: string;
  expires: string | null;
  lastUsed: string | null;
  hash: string;
}

export type PublicToken = Omit<TokenEntry, "hash">;

export interface TokenLookup {
  entry: TokenEntry;
  read: number;
  write: number;
}

export class TokenStore {
  private readonly path: string;
  private readonly byId = new Map<string, TokenEntry>();
  private readonly byHash = new Map<string, TokenEntry>();
  private dirty = false;
  private readonly lastStamp = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  /** Called after every change, with the token that changed (null: removed). */
  onChange: ((id: string, entry: PublicToken | null) => void) | null = null;

  constructor(dir: string, readonly maxPerOwner: () => number) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, "tokens.json");
    if (existsSync(this.path)) {
      const list = JSON.parse(readFileSync(this.path, "utf8")) as TokenEntry[];
      for (const e of list) this.index(e);
    }
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  get empty(): boolean {
    return this.byId.size === 0;
  }

  private index(e: TokenEntry): void {
    this.byId.set(e.id, e);
    this.byHash.set(e.hash, e);
  }

  /** Creates a token; the returned secret is never stored and cannot be shown again. */
  create(opts: { name: string; owner: string; read: Role; write: Role; ttlMs: number | null }): { token: PublicToken; secret: string } {
    if (!NAME_RE.test(opts.name)) throw Errors.badBody("name: 1-64 characters: letters, digits, space, dot, underscore, dash");
    // Expired tokens keep their names taken (until revoked) but do not count against the cap.
    const nowMs = Date.now();
    const owned = [...this.byId.values()].filter((e) => e.owner === opts.owner);
    const live = owned.filter((e) => e.expires === null || Date.parse(e.expires) > nowMs);
    if (owned.some((e) => e.name === opts.name)) throw Errors.conflict(`a token named "${opts.name}" already exists for ${opts.owner}`, { name: opts.name });
    const cap = this.maxPerOwner();
    if (live.length >= cap) throw Errors.conflict(`${opts.owner} already holds ${live.length} tokens, the most allowed (${cap}); revoke one first`, { limit: cap });
    const secret = newSecret();
    const now = new Date(nowMs);
    const entry: TokenEntry = {
      id: newId(),
      name: opts.name,
      owner: opts.owner,
      read: opts.read,
      write: opts.write,
      created: now.toISOString(),
      expires: opts.ttlMs === null ? null : new Date(now.getTime() + opts.ttlMs).toISOString(),
      lastUsed: null,
      hash: digest(secret),
    };
    this.index(entry);
    this.save();
    this.onChange?.(entry.id, publicToken(entry));
    return { token: publicToken(entry), secret };
  }

  revoke(id: string): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    this.byId.delete(id);
    this.byHash.delete(e.hash);
    this.save();
    this.onChange?.(id, null);
    return true;
  }

  get(id: string): PublicToken | null {
    const e = this.byId.get(id);
    return e ? publicToken(e) : null;
  }

  list(): PublicToken[] {
    return [...this.byId.values()].map(publicToken);
  }

  /**
   * The token a secret belongs to, or why not. An expired token is reported as such (so the
   * caller learns to get a new one) and stays listed until revoked.
   */
  verify(secret: string, now: number): TokenLookup | "unknown" | "expired" {
    const e = this.byHash.get(digest(secret));
    if (!e) return "unknown";
    if (e.expires !== null && Date.parse(e.expires) <= now) return "expired";
    // Last use is kept to the second: no date formatting on every request.
    if (now - (this.lastStamp.get(e.id) ?? 0) >= LAST_USED_RESOLUTION_MS) {
      this.lastStamp.set(e.id, now);
      e.lastUsed = new Date(now).toISOString();
      this.dirty = true;
    }
    return { entry: e, read: roleLevel(e.read), write: roleLevel(e.write) };
  }

  private save(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.byId.values()], null, 1) + "\n", { mode: FILE_MODE });
    chmodSync(tmp, FILE_MODE);
    renameSync(tmp, this.path);
    this.dirty = false;
  }

  /** Writes pending last-used times. */
  flush(): void {
    if (this.dirty) this.save();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.flush();
  }
}

export function publicToken(e: TokenEntry): PublicToken {
  const { hash: _hash, ...pub } = e;
  return pub;
}
