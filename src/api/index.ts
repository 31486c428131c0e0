// Assembles the API: the authenticator and its stores, the endpoint registry, the database
// WebSocket, the dashboard and /health, on one uWebSockets.js server.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpRequest, HttpResponse } from "uWebSockets.js";
import type { Control } from "../control/sluice.js";
import type { Logger } from "../gateway/gateway.js";
import { ApiServer, type Mount } from "./server.js";
import { Registry } from "./registry.js";
import { Authenticator } from "./auth/authenticator.js";
import { ApiKeys } from "./auth/keys.js";
import { TokenStore } from "./auth/tokens.js";
import { Sessions } from "./auth/sessions.js";
import { FailureLimiter } from "./auth/limiter.js";
import { DatabaseHub } from "./db/hub.js";
import { registerDatabases } from "./databases.js";
import { registerMeta } from "./endpoints/meta.js";
import { registerTokens } from "./endpoints/tokens.js";
import { registerSettings } from "./endpoints/settings.js";
import { registerSystem } from "./endpoints/system.js";
import { registerIntegration } from "./endpoints/integration.js";
import { registerStats } from "./endpoints/stats.js";
import { registerDns } from "./endpoints/dns.js";
import { registerNetquery } from "../netquery/api.js";
import { UiMount } from "./ui.js";
import { PiholeMount } from "./pihole/mount.js";
import { uws } from "./uws.js";
import type { Deps } from "./deps.js";

export const ADMIN_TOKEN_FILE = "admin.token";

export interface Api {
  server: ApiServer;
  deps: Deps;
  port: number;
  close(): void;
}

/** Builds the API for a Control and starts listening on the configured address. */
export async function startApi(control: Control, log: Logger, opts: { host?: string; port?: number; devMode?: boolean } = {}): Promise<Api> {
  const cfg = () => control.config.api;
  // --dev turns dev mode on for this run only, without touching config.json.
  const devMode = () => opts.devMode === true || cfg().devMode;
  if (devMode()) log.warn("dev mode: loopback clients get full API access without credentials");
  const keys = new ApiKeys();
  const refused = keys.load(cfg().keys);
  for (const why of refused) log.warn(`API key refused: ${why}`);
  control.options.onChange((key) => {
    if (key === "core/apiKeys") {
      keys.load(cfg().keys);
      sessions.dropKeySessions();
    }
  });
  const tokens = new TokenStore(join(control.dataDir, "auth"), () => cfg().tokensPerOwner);
  if (tokens.empty) firstRunToken(control, tokens, log);
  const sessions = new Sessions(() => cfg().sessionTtlS * 1000);
  const limiter = new FailureLimiter(() => cfg().authFailLimit, () => cfg().authFailWindowS * 1000);
  const auth = new Authenticator(keys, tokens, sessions, limiter, { devMode });
  const registry = new Registry();
  const hub = new DatabaseHub();
  const ui = new UiMount();
  let server: ApiServer | null = null;
  const deps: Deps = {
    control,
    auth,
    hub,
    registry,
    uws: uws().info,
    counters: () => ({ ...(server?.counters ?? {}) }),
  };
  registerMeta(deps);
  registerTokens(deps);
  registerSettings(deps);
  registerSystem(deps);
  registerIntegration(deps, ui);
  registerStats(deps);
  registerDns(deps);
  registerNetquery(registry, {
    // "main": the live view (active connections, and ended ones for ten minutes).
    main: { name: "main", rows: () => control.recorder?.tracker.values() ?? [] },
    get history() {
      return control.historySource();
    },
    clearHistory: (ids) => control.clearHistory(ids),
    cleanupHistory: () => control.cleanupHistory(),
  });
  const stopDatabases = registerDatabases(deps);
  const health: Mount = {
    prefix: "/health",
    handle(res: HttpResponse, req: HttpRequest) {
      const ok = req.getUrl() === "/health" && req.getMethod() === "get";
      res.writeStatus(ok ? "200 OK" : "404 Not Found");
      res.writeHeader("Content-Type", "application/json; charset=utf-8");
      res.writeHeader("Cache-Control", "no-store");
      res.end(ok ? JSON.stringify(control.gateway ? control.gateway.health() : { status: control.state, packetPath: "not running" }) : '{"error":{"key":"not_found","message":"Not found.","data":null}}');
    },
  };
  server = new ApiServer({
    host: opts.host ?? cfg().host,
    port: opts.port ?? cfg().port,
    registry,
    auth,
    devMode,
    maxBody: () => cfg().maxBodyKB * 1024,
    log,
    sockets: hub as never,
    // The Pi-hole routes (/api/...) before the dashboard, whose "/" prefix matches every path.
    mounts: [health, new PiholeMount({ control, auth, devMode, maxBody: () => cfg().maxBodyKB * 1024, log }), ui],
  });
  const port = await server.listen();
  const s = server;
  return {
    server: s,
    deps,
    port,
    close() {
      stopDatabases();
      hub.closeAll();
      tokens.close();
      s.close();
    },
  };
}

/** First run: one admin token, printed once and written to a 0600 file. There is no default password. */
function firstRunToken(control: Control, tokens: TokenStore, log: Logger): void {
  const { secret } = tokens.create({ name: "admin", owner: "system", read: "admin", write: "admin", ttlMs: null });
  const file = join(control.dataDir, ADMIN_TOKEN_FILE);
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  log.info(`first run: created the admin token (shown only now; also in ${file}, mode 0600): ${secret}`);
}
