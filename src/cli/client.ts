// The API from the command line, driven by environment variables as portusctl is:
//   SLUICE_API_URL    where the API is (default http://127.0.0.1:817)
//   SLUICE_API_TOKEN  an app token or API key (default: the admin token in $SLUICE_DATA/admin.token)
//   SLUICE_API_USER   the token's name: sends Sluice-Auth: <user>:<token> instead of Bearer
// Every command is one or two API calls; errors print the API's error message and exit 1.

import { readFileSync } from "node:fs";
import { join } from "node:path";

const DEFAULT_URL = "http://127.0.0.1:817";
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

export const CLIENT_HELP = `API commands (environment: SLUICE_API_URL, SLUICE_API_TOKEN, SLUICE_API_USER):
  token list                          List app tokens (never their secrets).
  token create NAME [--role user|admin] [--ttl 30d]
                                      Create an app token; its secret is printed once.
  token revoke ID                     Revoke an app token.
  app pending                         List app/auth access requests waiting for an answer.
  app allow ID | app deny ID          Answer one.
  api METHOD PATH [JSON]              Any API call, e.g. sluice api GET profiles.
`;

function credentials(): Record<string, string> {
  let token = process.env.SLUICE_API_TOKEN ?? "";
  if (token === "") {
    try {
      token = readFileSync(join(process.env.SLUICE_DATA ?? "./data", "admin.token"), "utf8").trim();
    } catch {
      return {};
    }
  }
  const user = process.env.SLUICE_API_USER;
  return user ? { "Sluice-Auth": `${user}:${token}` } : { Authorization: `Bearer ${token}` };
}

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; data: unknown }> {
  const base = (process.env.SLUICE_API_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  const headers: Record<string, string> = { Accept: "application/json", ...credentials() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${base}/api/v1/${path.replace(/^\/+/, "")}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data: unknown = text;
  try {
    data = text === "" ? null : JSON.parse(text);
  } catch {
    /* a text endpoint */
  }
  if (res.status >= 400) {
    const e = (data as { error?: { key: string; message: string } })?.error;
    throw new Error(e ? `${res.status} ${e.key}: ${e.message}` : `${res.status}: ${text}`);
  }
  return { status: res.status, data };
}

function print(v: unknown): void {
  process.stdout.write(typeof v === "string" ? (v.endsWith("\n") ? v : v + "\n") : JSON.stringify(v, null, 2) + "\n");
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs an API command; null if argv is not one. */
export async function clientCommand(argv: string[]): Promise<number | null> {
  const [cmd, sub, ...rest] = argv;
  try {
    if (cmd === "token" && sub === "list") {
      const { data } = await call("GET", "auth/tokens");
      for (const t of data as { id: string; name: string; owner: string; read: string; write: string; expires: string | null; lastUsed: string | null }[]) {
        process.stdout.write(`${t.id}  ${t.name}  owner=${t.owner} read=${t.read} write=${t.write} expires=${t.expires ?? "never"} lastUsed=${t.lastUsed ?? "never"}\n`);
      }
      return 0;
    }
    if (cmd === "token" && sub === "create" && rest[0]) {
      const ttl = flag(rest, "--ttl");
      const { data } = await call("POST", "auth/tokens", { name: rest[0], role: flag(rest, "--role") ?? "user", ...(ttl ? { ttl } : {}) });
      const t = data as { id: string; token: string; expires: string | null };
      process.stdout.write(`id ${t.id}, expires ${t.expires ?? "never"}\ntoken (shown only now): ${t.token}\n`);
      return 0;
    }
    if (cmd === "token" && sub === "revoke" && rest[0]) {
      await call("DELETE", `auth/tokens/${rest[0]}`);
      process.stdout.write(`revoked ${rest[0]}\n`);
      return 0;
    }
    if (cmd === "app" && sub === "pending") {
      const { data } = await call("GET", "app/requests");
      for (const n of data as { EventID: string; Message: string }[]) process.stdout.write(`${n.EventID}  ${n.Message}\n`);
      return 0;
    }
    if (cmd === "app" && (sub === "allow" || sub === "deny") && rest[0]) {
      await call("POST", `app/requests/${rest[0]}`, { action: sub });
      process.stdout.write(`${sub === "allow" ? "allowed" : "denied"} ${rest[0]}\n`);
      return 0;
    }
    if (cmd === "api" && sub && rest[0]) {
      const body = rest[1] === undefined ? undefined : (JSON.parse(rest[1]) as unknown);
      print((await call(sub.toUpperCase(), rest[0], body)).data ?? `(${sub.toUpperCase()} ${rest[0]}: no content)`);
      return 0;
    }
  } catch (err) {
    process.stderr.write(`sluice: ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
  if (cmd === "token" || cmd === "app" || cmd === "api") {
    process.stderr.write(CLIENT_HELP);
    return EXIT_USAGE;
  }
  return null;
}
