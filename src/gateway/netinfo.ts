// What the gateway needs to know about its interfaces: which ones face the WAN (packets arriving
// there belong to connections whose remote side is the source).

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Interfaces that carry a default route (IPv4 or IPv6). */
export async function defaultRouteInterfaces(): Promise<string[]> {
  const names = new Set<string>();
  for (const family of ["-4", "-6"]) {
    try {
      const { stdout } = await run("ip", ["-j", family, "route", "show", "default"]);
      for (const r of JSON.parse(stdout || "[]") as { dev?: string }[]) if (r.dev) names.add(r.dev);
    } catch {
      // no route table for that family: nothing to add
    }
  }
  return [...names];
}

export function ifindex(name: string): number | null {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, "utf8").trim());
  } catch {
    return null;
  }
}

/** Effective capabilities of this process include CAP_NET_ADMIN? */
export function hasNetAdmin(): boolean {
  const CAP_NET_ADMIN = 12n;
  try {
    const m = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync("/proc/self/status", "utf8"));
    return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  } catch {
    return process.getuid?.() === 0;
  }
}
