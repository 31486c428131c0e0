// Helpers shared by the live gateway tests: an API call made from inside the gateway's
// namespace (the API listens on its loopback), and polling with a bound.

import type { Topology } from "./netns.js";

/** `api(method, path, body?)` -> [status, body], as curl in the gateway namespace sees it. */
export function apiIn(t: () => Topology, port: () => number, token: () => string) {
  return (method: string, path: string, body?: unknown): [number, string] => {
    const args = ["-s", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H", `Authorization: Bearer ${token()}`];
    if (body !== undefined) args.push("-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body));
    const out = t().exec(t().gw, "curl", [...args, `http://127.0.0.1:${port()}/api/v1/${path}`], 20000);
    const nl = out.lastIndexOf("\n");
    return [Number(out.slice(nl + 1)), out.slice(0, nl)];
  };
}

/**
 * Polls `what` (an error counts as "not yet") until it returns something truthy or `ms` pass;
 * resolves to that value. The failure names what was awaited and shows `context()` (the log).
 */
export async function waitUntil<T>(what: () => T | null | undefined | false, ms: number, label: string, context: () => string): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = what();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${label} (last error: ${String(last)}); gateway log:\n${context()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
