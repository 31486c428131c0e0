// Permission levels exactly as Portmaster numbers them, so /api/v1/endpoints and
// auth/permissions read the same to its clients. A request carries a Token with one level for
// reads (GET/HEAD) and one for writes (POST/PUT/DELETE); write never implies read.

export const PERMIT_NOT_FOUND = -2;
/** Anyone may call; authentication still runs so the handler can see who asks. */
export const PERMIT_DYNAMIC = -1;
/** This direction (read or write) does not exist on the endpoint: 405. */
export const PERMIT_NOT_SUPPORTED = 0;
export const PERMIT_ANYONE = 1;
export const PERMIT_USER = 2;
export const PERMIT_ADMIN = 3;
/** sluice itself, and loopback clients in dev mode. No key or token can carry it. */
export const PERMIT_SELF = 4;

export type Permission = -1 | 0 | 1 | 2 | 3 | 4;
export type Role = "user" | "admin";

const ROLE_NAMES: Record<number, string> = { 1: "Anyone", 2: "User", 3: "Admin", 4: "Self" };

export function roleName(p: number): string {
  return ROLE_NAMES[p] ?? "Invalid";
}

export function roleLevel(role: Role): 2 | 3 {
  return role === "admin" ? PERMIT_ADMIN : PERMIT_USER;
}

/** Who a request is, once authentication ran. */
export interface Token {
  read: number;
  write: number;
  /** How the caller proved it: nothing, dev mode, an API key, an app token or a session cookie. */
  via: "anonymous" | "dev" | "key" | "token" | "session" | "internal";
  /** The app token's or key's id, for auditing and ownership ("admin" for the first-run token). */
  id: string | null;
  /** The app token's name (Sluice-Auth: <name>:<token>). */
  name: string | null;
  /** When the key or token expires (ms since the epoch); a session it opens ends then too. */
  expires?: number | null;
}

export const ANONYMOUS: Token = Object.freeze({ read: PERMIT_ANYONE, write: PERMIT_ANYONE, via: "anonymous", id: null, name: null });
export const DEV: Token = Object.freeze({ read: PERMIT_SELF, write: PERMIT_SELF, via: "dev", id: null, name: "dev mode" });
/** What sluice's own components (the WebSocket api: bridge) act as. */
export const INTERNAL_ADMIN: Token = Object.freeze({ read: PERMIT_ADMIN, write: PERMIT_ADMIN, via: "internal", id: null, name: "internal" });
