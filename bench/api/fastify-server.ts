// The baseline for npm run bench:api: a minimal Fastify server doing, per request, the same
// work as sluice's API for the benchmarked routes, so the comparison is about the server stack
// and not about skipped work:
//   GET /api/v1/ping              "Pong.\n" (text/plain) with sluice's security headers;
//   GET /api/v1/auth/permissions  Bearer header parsed, SHA-256 (base64url) digest of the token,
//                                 Map lookup of the digest, expiry check, then the same JSON;
//   PUT /api/v1/profiles/:id      admin token checked as above, body validated with sluice's
//                                 own (strict) zod schema, the ruleset text serialized and written
//                                 atomically (tmp + rename, previous version copied to .bak), as
//                                 sluice's profile store does -- minus sluice's rule parse and
//                                 compile, which have no counterpart here.
// Tokens come from the parent in BENCH_TOKENS ([{"secret","name","role"}]); only their digests
// are kept. Prints {"ready":true,"port":N,"pid":N} on stdout; exits on SIGTERM/SIGINT or when
// stdin closes.
//
// Usage: BENCH_TOKENS='[...]' node dist/bench/api/fastify-server.js <dataDir>

import { copyFileSync, existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import { digest } from "../../src/api/auth/secret.js";
import { roleLevel, roleName, type Role } from "../../src/api/permissions.js";
import { ProfileBody } from "../../src/api/endpoints/settings.js";
import { SECURITY_HEADERS as SLUICE_HEADERS, CSP } from "../../src/api/server.js";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: fastify-server.js <dataDir>\n");
  process.exit(2);
}

interface Entry {
  name: string;
  read: number;
  write: number;
  expires: string | null;
  lastUsed: string | null;
}

const byHash = new Map<string, Entry>();
for (const t of JSON.parse(process.env.BENCH_TOKENS ?? "[]") as { secret: string; name: string; role: Role }[]) {
  const level = roleLevel(t.role);
  byHash.set(digest(t.secret), { name: t.name, read: level, write: level, expires: null, lastUsed: null });
}

/** sluice's own headers, so both servers send the same bytes. */
const SECURITY_HEADERS: Record<string, string> = Object.fromEntries([...SLUICE_HEADERS, ["Content-Security-Policy", CSP]]);
const JSON_TYPE = "application/json; charset=utf-8";

function fail(reply: FastifyReply, status: number, key: string, message: string): FastifyReply {
  if (status === 401) reply.header("WWW-Authenticate", 'Bearer realm="sluice API"');
  return reply.code(status).type(JSON_TYPE).send(JSON.stringify({ error: { key, message, data: null } }));
}

/** The token a request carries, or why not (sluice's Bearer path). */
function authenticate(req: FastifyRequest, now: number): Entry | string {
  const value = req.headers.authorization ?? "";
  if (value === "") return "Authorization required.";
  const sp = value.indexOf(" ");
  const scheme = sp < 0 ? value : value.slice(0, sp);
  const cred = sp < 0 ? "" : value.slice(sp + 1).trim();
  if (scheme.toLowerCase() !== "bearer") return `unsupported Authorization scheme "${scheme}"`;
  if (cred === "") return "empty credentials";
  const e = byHash.get(digest(cred));
  if (!e) return "unknown or revoked token";
  if (e.expires !== null && Date.parse(e.expires) <= now) return "the token has expired";
  e.lastUsed = new Date(now).toISOString();
  return e;
}

// The ruleset the profile writes rewrite: the default profile plus whatever was PUT.
interface Profile {
  name: string;
  defaultAction: string;
  sources: string[];
  rules: string[];
  created: number;
  modified: number;
}
const rulesPath = join(dir, "sluice.rules");
const profiles = new Map<string, Profile>([["default", { name: "default", defaultAction: "allow", sources: [], rules: ["+ *"], created: 0, modified: 0 }]]);

function serialize(): string {
  const out = [
    `# sluice ruleset, last written through the API at ${new Date().toISOString()}.`,
    "# You may edit it and send SIGHUP; the next API write rewrites it (comments are not kept;",
    "# the previous version is kept as <file>.bak).",
    "fallback allow",
  ];
  for (const p of profiles.values()) {
    out.push("", `[profile ${p.name}]`, `default ${p.defaultAction}`);
    for (const s of p.sources) out.push(`source ${s}`);
    for (const r of p.rules) out.push(r);
  }
  return out.join("\n") + "\n";
}

const app = Fastify({ logger: false });
app.addHook("onRequest", (_req, reply, done) => {
  reply.headers(SECURITY_HEADERS);
  done();
});

app.get("/api/v1/ping", (_req, reply) => {
  reply.type("text/plain; charset=utf-8").send("Pong.\n");
});

app.get("/api/v1/auth/permissions", (req, reply) => {
  const t = authenticate(req, Date.now());
  if (typeof t === "string") return fail(reply, 401, "unauthorized", `Authorization failed: ${t}.`);
  return { Read: t.read, Write: t.write, ReadRole: roleName(t.read), WriteRole: roleName(t.write), Via: "token", Name: t.name };
});

app.put<{ Params: { id: string } }>("/api/v1/profiles/:id", (req, reply) => {
  const t = authenticate(req, Date.now());
  if (typeof t === "string") return fail(reply, 401, "unauthorized", `Authorization failed: ${t}.`);
  if (t.write < 3) return fail(reply, 403, "forbidden", "Insufficient permissions.");
  const id = req.params.id;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) return fail(reply, 404, "not_found", `Not found: ${req.url}`);
  const r = ProfileBody.safeParse(req.body);
  if (!r.success) return fail(reply, 400, "bad_body", r.error.issues[0]?.message ?? "invalid body");
  const b = r.data;
  if (b.ID !== undefined && b.ID !== id) return fail(reply, 400, "bad_body", `ID "${b.ID}" does not match the path ("${id}")`);
  const now = Math.floor(Date.now() / 1000);
  const existing = profiles.get(id);
  const p: Profile = { name: id, defaultAction: b.Default ?? "allow", sources: b.Sources ?? [], rules: b.Rules ?? [], created: existing?.created ?? now, modified: now };
  profiles.set(id, p);
  const tmp = `${rulesPath}.tmp`;
  writeFileSync(tmp, serialize());
  if (existsSync(rulesPath)) copyFileSync(rulesPath, `${rulesPath}.bak`);
  renameSync(tmp, rulesPath);
  reply.code(existing ? 200 : 201);
  if (!existing) reply.header("Location", `/api/v1/profiles/${id}`);
  return { ID: id, Source: "local", Name: id, Default: p.defaultAction, Sources: p.sources, Rules: p.rules, Created: p.created, Modified: p.modified };
});

let closing = false;
function shutdown(): void {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(0), 500).unref();
  app.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("error", shutdown);
process.stdin.resume();

await app.listen({ host: "127.0.0.1", port: 0 });
const addr = app.server.address();
const port = typeof addr === "object" && addr ? addr.port : 0;
process.stdout.write(JSON.stringify({ ready: true, port, pid: process.pid }) + "\n");
