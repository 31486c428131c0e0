// Historic statistics of the gateway (DockStat-style): the latest totals, a series over the last
// hours at a chosen interval, and clearing them.

import type { Deps } from "../deps.js";
import { durationMs, durationSchema, noContent } from "../http.js";
import { Errors } from "../errors.js";
import { PERMIT_ADMIN, PERMIT_USER } from "../permissions.js";
import type { StatsSnapshot } from "../../control/stats.js";

const HOUR_MS = 3_600_000;
const MAX_HOURS = 24 * 30;

export function registerStats(d: Deps): void {
  const r = d.registry;
  const c = d.control;
  const need = () => {
    if (!c.stats) throw Errors.unavailable("statistics are not being recorded (history.enabled is false or the packet path is not running)");
    return c.stats;
  };

  r.register({
    name: "Latest Statistics",
    description: "The gateway's totals now: live connections, connections started and ended, blocked, bytes, packets queued, drops; and when the last snapshot was stored.",
    path: "stats/latest",
    read: PERMIT_USER,
    handler: () => ({ ...c.currentStats(), timestamp: new Date().toISOString(), lastSnapshot: c.stats?.latest()?.timestamp ?? null }),
  });

  r.register({
    name: "Statistics History",
    description: "Snapshots of the totals over the last ?hours= (default 24, at most 720), one per ?interval= (default: every stored snapshot, taken every history.statsIntervalS). DELETE clears them.",
    path: "stats/history",
    read: PERMIT_USER,
    write: PERMIT_ADMIN,
    writeMethods: ["DELETE"],
    parameters: [
      { Method: "GET", Field: "hours", Value: "24", Description: "How far back." },
      { Method: "GET", Field: "interval", Value: "5m", Description: "One point per interval (the last snapshot in it)." },
    ],
    handler: async (ctx) => {
      const s = need();
      if (ctx.method === "DELETE") {
        await s.clear();
        return noContent();
      }
      const hours = Number(ctx.param("hours", "24"));
      if (!Number.isFinite(hours) || hours <= 0 || hours > MAX_HOURS) throw Errors.badRequest(`hours: a number from 1 to ${MAX_HOURS}`, { parameter: "hours" });
      const iv = ctx.query.get("interval");
      let intervalMs = 0;
      if (iv !== null) {
        const p = durationSchema.safeParse(iv);
        intervalMs = p.success ? durationMs(p.data) : NaN;
        if (!(intervalMs >= 10_000)) throw Errors.badRequest("interval: a duration of at least 10s, e.g. 5m or 1h", { parameter: "interval" });
      }
      const to = Date.now();
      const from = to - hours * HOUR_MS;
      let points = s.series(from, to);
      if (intervalMs > 0) points = perInterval(points, intervalMs);
      return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), interval: intervalMs > 0 ? intervalMs / 1000 : c.config.history.statsIntervalS, points };
    },
  });
}

/** The last snapshot of every interval bucket. */
function perInterval(points: StatsSnapshot[], ms: number): StatsSnapshot[] {
  const out: StatsSnapshot[] = [];
  for (const p of points) {
    const last = out[out.length - 1];
    if (last && Math.floor(last.timestamp / ms) === Math.floor(p.timestamp / ms)) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}
