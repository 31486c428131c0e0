// The syntax of an API key entry, as Portmaster configures keys (option core/apiKeys):
// `<key>?read=<perm>&write=<perm>[&expires=<RFC3339>]`, perm anyone|user|admin. Shared by the
// config validator (a malformed entry is refused when written, not skipped at runtime) and
// the API's key table.

const PERMS: Record<string, number> = { "": 1, anyone: 1, user: 2, admin: 3 };
export const MIN_KEY_LENGTH = 16;

export interface KeyEntry {
  key: string;
  read: number;
  write: number;
  expires: number | null;
}

/** Parses one entry, or returns what is wrong with it. */
export function parseKeyEntry(entry: string): KeyEntry | string {
  const q = entry.indexOf("?");
  const key = q < 0 ? entry : entry.slice(0, q);
  if (key.length < MIN_KEY_LENGTH) return `the key must be at least ${MIN_KEY_LENGTH} characters`;
  if (/[\s&=#]/.test(key)) return "the key must not contain spaces, &, = or #";
  const params = new URLSearchParams(q < 0 ? "" : entry.slice(q + 1));
  for (const name of params.keys()) if (name !== "read" && name !== "write" && name !== "expires") return `unknown parameter "${name}"`;
  const read = PERMS[(params.get("read") ?? "").toLowerCase()];
  const write = PERMS[(params.get("write") ?? "").toLowerCase()];
  if (read === undefined) return "read must be anyone, user or admin";
  if (write === undefined) return "write must be anyone, user or admin";
  let expires: number | null = null;
  const e = params.get("expires");
  if (e !== null) {
    expires = Date.parse(e);
    if (!Number.isFinite(expires)) return "expires must be an RFC 3339 time";
  }
  return { key, read, write, expires };
}
