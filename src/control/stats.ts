// Historic gateway statistics, DockStat-style: every interval one snapshot of the gateway's
// totals (connections, blocks, bytes, packets queued, drops) goes into LMDB under its time, so
// the dashboard can show the latest totals and a 24 h series. Unlike DockStat's one JSON blob
// per fetch in SQLite (and its date-string comparison that cut the window at midnight), keys
// are big-endian millisecond times: range reads and retention are exact.

import { open, type RootDatabase } from "lmdb";
import { join } from "node:path";

const KEEP_DAYS = 30;
const DAY_MS = 86_400_000;
const MAX_POINTS = 2000;

export interface StatsSnapshot {
  /** ms since the epoch */
  timestamp: number;
  liveConnections: number;
  connectionsStarted: number;
  connectionsEnded: number;
  blocked: number;
  bytesSent: number;
  bytesReceived: number;
  packetsQueued: number;
  queueOverflows: number;
  eventsDropped: number;
  workerRestarts: number;
}

export class StatsHistory {
  private readonly db: RootDatabase<StatsSnapshot, number>;
  private timer: NodeJS.Timeout | null = null;

  constructor(dataDir: string) {
    this.db = open<StatsSnapshot, number>({ path: join(dataDir, "stats.mdb"), noSubdir: true, keyEncoding: "uint32", encoding: "msgpack" }) as never;
  }

  /** Takes a snapshot now and every `intervalMs`; old snapshots are pruned as it goes. */
  start(intervalMs: number, take: () => Omit<StatsSnapshot, "timestamp">): void {
    const tick = () => {
      const now = Date.now();
      void this.db.put(secondsKey(now), { timestamp: now, ...take() });
      const cutoff = secondsKey(now - KEEP_DAYS * DAY_MS);
      for (const k of this.db.getKeys({ end: cutoff, limit: 1000 })) void this.db.remove(k);
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  latest(): StatsSnapshot | null {
    for (const { value } of this.db.getRange({ reverse: true, limit: 1 })) return value;
    return null;
  }

  /** Snapshots between `from` and `to` (ms), thinned to at most MAX_POINTS evenly spaced ones. */
  series(from: number, to: number): StatsSnapshot[] {
    const all = [...this.db.getRange({ start: secondsKey(from), end: secondsKey(to) + 1 })].map((e) => e.value);
    if (all.length <= MAX_POINTS) return all;
    const step = all.length / MAX_POINTS;
    return Array.from({ length: MAX_POINTS }, (_, i) => all[Math.floor(i * step)]!);
  }

  async clear(): Promise<number> {
    let n = 0;
    await this.db.transaction(() => {
      for (const k of this.db.getKeys()) {
        this.db.remove(k);
        n++;
      }
    });
    return n;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.db.close();
  }
}

/** Seconds since the epoch fit an unsigned 32-bit key until 2106, and sort as numbers. */
function secondsKey(ms: number): number {
  return Math.max(0, Math.floor(ms / 1000));
}
