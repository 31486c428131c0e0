// The databases of the WebSocket API, each an adapter over the store that owns the data:
//   config:<option key>                 options (values written through here apply as on REST)
//   core:profiles/local/<id>            profiles with their rules
//   core:status/versions                versions
//   runtime:system/status               status and counters (refreshed every second if changed)
//   network:...                         live connections (records arrive with connection tracking)
//   notifications:all/<EventID>         notifications and prompts (answered by update)

import type { Database, DatabaseHub, DbRecord } from "./db/hub.js";
import type { Deps } from "./deps.js";
import { OptionError } from "../control/options.js";
import { NotificationError } from "../control/notifications.js";
import { ProfileBody, toInput, profileError } from "./endpoints/settings.js";
import { validate } from "./http.js";
import { PERMIT_ADMIN, type Token } from "./permissions.js";
import { VERSION } from "../control/sluice.js";
import { statusData } from "./endpoints/system.js";
import { ApiError } from "./errors.js";
import type { ConnRecord } from "../flow/types.js";

const PROFILE_PREFIX = "profiles/local/";
const PROFILE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const STATUS_KEY = "system/status";
const STATUS_EVERY_MS = 1000;

function* sorted(recs: DbRecord[], prefix: string): Iterable<DbRecord> {
  yield* recs.filter((r) => r.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function requireAdmin(t: Token): void {
  if (t.write < PERMIT_ADMIN) throw new Error("insufficient permissions: writing needs Admin");
}

function message(err: unknown): string {
  const e = profileError(err);
  if (e instanceof ApiError) {
    const problems = (e.data as { problems?: { line: number; column: number; message: string }[] } | null)?.problems;
    return problems && problems.length > 0 ? `${e.message} (${problems.map((p) => `line ${p.line}:${p.column}: ${p.message}`).join("; ")})` : e.message;
  }
  return (e as Error).message;
}

export function registerDatabases(d: Deps): () => void {
  const { hub, control: c } = d;
  const started = Math.floor(c.started / 1000);

  const optionRec = (key: string): DbRecord | null => {
    const v = c.options.record(key);
    // Created 0, Modified the last write: a changed option reaches subscribers as `upd`.
    return v ? { key, value: v, created: 0, modified: c.options.modifiedAt(key) } : null;
  };
  const config: Database = {
    name: "config",
    get: optionRec,
    scan: (prefix) => sorted(c.options.keys().map((k) => optionRec(k)!), prefix),
    write: (key, cmd, data, token) => {
      requireAdmin(token);
      if (!c.options.has(key)) throw new Error(`unknown option "${key}"`);
      if ("Key" in data && data.Key !== key) throw new Error(`Key "${String(data.Key)}" does not match the record key`);
      // insert sets only the fields it names into the existing record: without Value, the value stays.
      if (cmd === "insert" && !("Value" in data)) return;
      try {
        c.options.set(key, data.Value ?? null);
      } catch (err) {
        if (err instanceof OptionError) throw new Error(err.message);
        throw err;
      }
    },
    delete: (key, token) => {
      requireAdmin(token);
      if (!c.options.has(key)) throw new Error(`unknown option "${key}"`);
      c.options.set(key, null);
    },
  };
  c.options.onChange((key) => hub.publish("config", key, optionRec(key)));

  const profileRec = (id: string): DbRecord | null => {
    const p = c.profiles.get(id);
    return p ? { key: PROFILE_PREFIX + id, value: p, created: p.Created, modified: p.Modified } : null;
  };
  const versions = (): DbRecord => ({ key: "status/versions", value: { sluice: VERSION, node: process.versions.node, v8: process.versions.v8, uws: d.uws }, created: started, modified: started });
  const core: Database = {
    name: "core",
    get: (key) => (key === "status/versions" ? versions() : key.startsWith(PROFILE_PREFIX) ? profileRec(key.slice(PROFILE_PREFIX.length)) : null),
    scan: (prefix) => sorted([versions(), ...c.profiles.list().map((p) => profileRec(p.ID)!)], prefix),
    write: async (key, cmd, data, token) => {
      requireAdmin(token);
      if (!key.startsWith(PROFILE_PREFIX)) throw new Error(`only ${PROFILE_PREFIX}<id> records can be written`);
      const id = key.slice(PROFILE_PREFIX.length);
      // The ID becomes a [profile <id>] line of the rules file: the same rule as the REST path.
      if (!PROFILE_ID_RE.test(id)) throw new Error("profile ID: 1-64 of A-Z a-z 0-9 _ . -");
      let body;
      try {
        const merged = cmd === "insert" ? { ...(c.profiles.get(id) ?? {}), ...data } : data;
        body = validate(ProfileBody, merged, "record");
        // create overwrites like Portmaster's PutNew; insert merges into an existing profile only.
        await c.profiles.put(id, toInput(body, id), cmd === "insert" ? "replace" : "upsert");
      } catch (err) {
        throw new Error(message(err));
      }
    },
    delete: async (key, token) => {
      requireAdmin(token);
      if (!key.startsWith(PROFILE_PREFIX)) throw new Error(`only ${PROFILE_PREFIX}<id> records can be deleted`);
      let gone: boolean;
      try {
        gone = await c.profiles.delete(key.slice(PROFILE_PREFIX.length));
      } catch (err) {
        throw new Error(message(err));
      }
      if (!gone) throw new Error("storage entry not found");
    },
  };
  c.profiles.onChange(({ id, record }) => hub.publish("core", PROFILE_PREFIX + id, record ? profileRec(id) : null));

  let lastStatus = "";
  let statusModified = started;
  const statusRec = (): DbRecord => ({ key: STATUS_KEY, value: statusData(d), created: started, modified: statusModified });
  const runtime: Database = {
    name: "runtime",
    get: (key) => (key === STATUS_KEY ? statusRec() : null),
    scan: (prefix) => sorted([statusRec()], prefix),
  };
  // Status changes all the time (counters); push it once a second, and only when it changed.
  const timer = setInterval(() => {
    const v = statusData(d);
    delete v.uptimeS;
    const text = JSON.stringify(v);
    if (text === lastStatus) return;
    lastStatus = text;
    statusModified = Math.floor(Date.now() / 1000);
    hub.publish("runtime", STATUS_KEY, statusRec());
  }, STATUS_EVERY_MS);
  timer.unref();

  // Live connections as network:conn/<id> (what netquery's "main" database holds).
  const connRec = (r: ConnRecord): DbRecord => ({
    key: `conn/${r.id}`,
    value: r,
    created: Math.floor(r.started / 1000),
    modified: Math.floor((r.ended ?? Date.now()) / 1000),
  });
  const network: Database = {
    name: "network",
    get: (key) => {
      const r = key.startsWith("conn/") ? c.recorder?.tracker.get(key.slice(5)) : undefined;
      return r ? connRec(r) : null;
    },
    scan: (prefix) => (c.recorder ? sorted([...c.recorder.tracker.values()].map(connRec), prefix) : []),
  };
  c.connectionWatchers.push(({ rec, first, removed }) => hub.publish("network", `conn/${rec.id}`, removed ? null : connRec(rec), first));
  const notifRec = (id: string): DbRecord | null => {
    const n = c.notifications.get(id);
    return n ? { key: `all/${id}`, value: n, created: n.Created, modified: n.Modified, expires: n.Expires } : null;
  };
  const notifications: Database = {
    name: "notifications",
    get: (key) => (key.startsWith("all/") ? notifRec(key.slice(4)) : null),
    scan: (prefix) => sorted(c.notifications.list().map((n) => notifRec(n.EventID)!), prefix),
    write: (key, _cmd, data, token) => {
      requireAdmin(token);
      if (!key.startsWith("all/")) throw new Error("notification keys are all/<EventID>");
      const id = key.slice(4);
      if (typeof data.SelectedActionID !== "string") throw new Error("set SelectedActionID to answer a notification");
      try {
        c.notifications.respond(id, data.SelectedActionID);
      } catch (err) {
        if (err instanceof NotificationError) throw new Error(err.message);
        throw err;
      }
    },
    delete: (key, token) => {
      requireAdmin(token);
      if (!c.notifications.remove(key.slice(4))) throw new Error("storage entry not found");
    },
  };
  c.notifications.onChange((id) => hub.publish("notifications", `all/${id}`, notifRec(id)));

  for (const db of [config, core, runtime, network, notifications]) hub.register(db);
  return () => clearInterval(timer);
}

export type { DatabaseHub };
