// app/profile, broadcasts/*, updates/check, ui/reload, compat/self-check and the SPN stubs that
// say the overlay network is not available.

import { existsSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Deps } from "../deps.js";
import { validate } from "../http.js";
import { ApiError, Errors } from "../errors.js";
import { PERMIT_ADMIN, PERMIT_ANYONE, PERMIT_USER } from "../permissions.js";
import { neighbourMac } from "../../system/routes.js";
import { platformInfo } from "../../system/debuginfo.js";
import { parseQuery } from "../db/query.js";
import { VERSION } from "../../control/sluice.js";
import { TYPE_INFO, TYPE_WARNING } from "../../control/notifications.js";

const BROADCASTS_FILE = "broadcasts.json";
const BROADCAST_STATE_FILE = "broadcasts-state.json";

const Broadcast = z
  .object({
    Title: z.string().min(1).max(200),
    Message: z.string().max(5000),
    Importance: z.boolean().optional(),
    ShowOnSystem: z.boolean().optional(),
    /** A query condition over the matching data (broadcasts/matching-data), e.g. `Current.Rules > 1000`. */
    Match: z.string().max(2000).optional(),
    /** Unix seconds after which it is no longer shown. */
    Expires: z.number().int().nonnegative().optional(),
  })
  .strict();
const BroadcastFile = z.object({ Notifications: z.record(z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/), Broadcast) }).strict();

/** The UI assets cache, emptied by ui/reload (see src/api/ui.ts). */
export interface UiAssets {
  reload(): number;
}

export function registerIntegration(d: Deps, ui: UiAssets): void {
  const r = d.registry;
  const c = d.control;
  const statePath = join(c.dataDir, BROADCAST_STATE_FILE);

  r.register({
    name: "Get the Calling Device's Profile",
    description: "The profile the calling device falls under (by MAC, then by the longest bound address prefix, else the default).",
    path: "app/profile",
    read: PERMIT_USER,
    handler: async (ctx) => {
      const mac = await neighbourMac(ctx.remote);
      const id = c.profileFor(ctx.remote, mac);
      const p = c.profiles.get(id);
      return { profile: id, source: "local", name: p?.Name ?? id, address: ctx.remote, mac };
    },
  });

  const matchingData = (): Record<string, unknown> => {
    const plat = platformInfo();
    const profiles = c.profiles.list();
    return {
      Version: VERSION,
      NumericVersion: numericVersion(VERSION),
      Install: { Platform: plat.platform, Arch: plat.arch, Kernel: plat.kernel, Node: plat.node },
      Config: Object.fromEntries(c.options.list(true).filter((o) => !o.Sensitive).map((o) => [o.Key, o.Value ?? o.DefaultValue])),
      Location: null,
      UptimeHours: Math.floor((Date.now() - c.started) / 3_600_000),
      Current: {
        Profiles: profiles.length,
        Rules: profiles.reduce((n, p) => n + p.Rules.length, 0),
        PacketPath: c.gateway ? c.gateway.health().status : "not running",
      },
    };
  };
  r.register({
    name: "Get Broadcast Notifications Matching Data",
    description: "Returns the data broadcast notifications are matched against (their Match conditions use the database query language).",
    path: "broadcasts/matching-data",
    read: PERMIT_ADMIN,
    handler: () => matchingData(),
  });

  const readState = (): Record<string, number> => (existsSync(statePath) ? (JSON.parse(readFileSync(statePath, "utf8")) as Record<string, number>) : {});
  const writeState = (s: Record<string, number>) => {
    writeFileSync(`${statePath}.tmp`, JSON.stringify(s));
    renameSync(`${statePath}.tmp`, statePath);
  };
  /** Matches and shows broadcasts; one line per notification, as Portmaster reports them. */
  const process_ = (file: z.infer<typeof BroadcastFile>, useState: boolean): string[] => {
    const data = matchingData();
    const state = readState();
    const lines: string[] = [];
    const now = Math.floor(Date.now() / 1000);
    for (const [id, b] of Object.entries(file.Notifications)) {
      try {
        if (b.Expires !== undefined && b.Expires > 0 && b.Expires < now) {
          lines.push(`${id}: expired`);
          continue;
        }
        if (useState && state[id] !== undefined) {
          lines.push(`${id}: already displayed`);
          continue;
        }
        if (b.Match && !parseQuery(`query broadcasts: where ${b.Match}`).matches(data)) {
          lines.push(`${id}: no match`);
          continue;
        }
        c.notifications.post({
          EventID: `broadcasts:${id}`,
          Type: b.Importance ? TYPE_WARNING : TYPE_INFO,
          Title: b.Title,
          Category: "Broadcasts",
          Message: b.Message,
          ShowOnSystem: b.ShowOnSystem ?? false,
          EventData: null,
          Expires: b.Expires ?? 0,
          AvailableActions: [{ ID: "ack", Text: "OK", Type: "", Payload: null }],
        });
        state[id] = now;
        lines.push(`${id}: displayed`);
      } catch (err) {
        lines.push(`FAILED ${id}: ${(err as Error).message}`);
      }
    }
    writeState(state);
    return lines;
  };

  r.register({
    name: "Resets the Broadcast Notification States",
    description: "Forgets which broadcast notifications were shown, so they appear again.",
    path: "broadcasts/reset-state",
    mimeType: "text/plain",
    write: PERMIT_ADMIN,
    handler: () => {
      writeState({});
      return "Reset complete.";
    },
  });
  r.register({
    name: "Simulate Broadcast Notifications",
    description: `Matches a broadcast source file (JSON: {"Notifications": {"<id>": {Title, Message, Match, Expires, Importance, ShowOnSystem}}}, sent as the body) against this instance and shows what matches.`,
    path: "broadcasts/simulate",
    mimeType: "text/plain",
    write: PERMIT_ADMIN,
    parameters: [{ Method: "POST", Field: "state", Value: "true", Description: "Skip notifications already displayed. Displays are always recorded." }],
    handler: (ctx) => {
      const file = ctx.json(BroadcastFile);
      return process_(file, ctx.param("state", "false") === "true").join("\n") || "no notifications in the file";
    },
  });

  r.register({
    name: "Check for Updates",
    description: `Re-reads what sluice loads from disk: the rules file (applied if it changed) and the admin-supplied ${BROADCASTS_FILE} (matching broadcasts are shown), and downloads the DNS filter lists (what Pi-hole's gravity run does).`,
    path: "updates/check",
    mimeType: "text/plain",
    write: PERMIT_USER,
    handler: async () => {
      const out: string[] = [];
      const before = c.profiles.list().map((p) => JSON.stringify([p.ID, p.Default, p.Sources, p.Rules])).join("\n");
      try {
        const { rules } = await c.reloadRulesFile();
        const after = c.profiles.list().map((p) => JSON.stringify([p.ID, p.Default, p.Sources, p.Rules])).join("\n");
        out.push(`rules: ${rules} rules, ${before === after ? "unchanged" : "changed on disk and reloaded"}`);
      } catch (err) {
        out.push(`rules: the file does not load, the previous rules stay: ${(err as Error).message}`);
      }
      const bpath = join(c.dataDir, BROADCASTS_FILE);
      if (existsSync(bpath)) {
        try {
          const file = validate(BroadcastFile, JSON.parse(readFileSync(bpath, "utf8")), BROADCASTS_FILE);
          out.push(...process_(file, true).map((l) => `broadcast ${l}`));
        } catch (err) {
          out.push(`broadcasts: ${BROADCASTS_FILE} is invalid: ${(err as Error).message}`);
        }
      } else out.push(`broadcasts: no ${BROADCASTS_FILE} in the data directory`);
      if (c.dns === null) out.push("filter lists: the DNS resolver is not running");
      else {
        try {
          const u = await c.dns.filter.update();
          const names = ["never downloaded", "downloaded", "unchanged", "unavailable, local copy used", "unavailable, no local copy"];
          out.push(`filter lists: ${u.lists.length} list(s), ${u.domains} names blocked (built in ${Math.round(u.buildMs)} ms)`);
          for (const l of u.lists) out.push(`list ${l.address}: ${names[l.status] ?? l.status}, ${l.number} names${l.error ? ` (${l.error})` : ""}`);
        } catch (err) {
          out.push(`filter lists: update failed, the previous lists stay: ${(err as Error).message}`);
        }
      }
      return `update check done\n${out.join("\n")}`;
    },
  });

  r.register({
    name: "Reload UI Assets",
    description: "Empties the dashboard's asset cache; files are read from disk again on the next request.",
    path: "ui/reload",
    mimeType: "text/plain",
    write: PERMIT_USER,
    handler: () => `all ui assets reloaded (${ui.reload()} cached files dropped)`,
  });

  r.register({
    name: "Run Integration Self-Check",
    description:
      "Checks the system integration: sluice's hooks are present and first in their chains, every queue has a running worker bound to it, and packets reach the queues.",
    path: "compat/self-check",
    mimeType: "text/plain",
    read: PERMIT_USER,
    handler: async () => {
      const g = c.gateway;
      if (!g) throw Errors.unavailable("self-check: the packet path is not running");
      const failures: string[] = [];
      if (!(await g.hooksInPlace())) failures.push("self-check #1: firewall integration check failed: a sluice hook is missing or not first in its chain");
      const h = g.health() as { queues: { queue: number; running: boolean }[] };
      const down = h.queues.filter((q) => !q.running).map((q) => q.queue);
      if (down.length > 0) failures.push(`self-check #2: queue integration check failed: no running worker on queue(s) ${down.join(", ")}`);
      const probe = await g.probe();
      if (probe !== null) failures.push(`self-check #3: packet integration check failed: ${probe}`);
      if (failures.length > 0) throw new ApiError(500, "self_check_failed", failures.join("\n"), { failures });
      return "self-check successful";
    },
  });

  r.register({
    name: "SPN",
    description: "The SPN overlay network is not available in sluice (yet); every SPN endpoint answers 404 saying so.",
    path: "spn/{rest:.+}",
    read: PERMIT_ANYONE,
    write: PERMIT_ANYONE,
    writeMethods: ["POST", "PUT", "DELETE"],
    handler: () => {
      throw new ApiError(404, "spn_unavailable", "the SPN overlay network is not available in sluice (yet)");
    },
  });
}

function numericVersion(v: string): number {
  const [a = 0, b = 0, c = 0] = v.split(".").map(Number);
  return a * 1_000_000 + b * 1000 + c;
}
