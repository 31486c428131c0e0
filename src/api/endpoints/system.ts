// core/*, debug/*, network/*, modules/*: what runs, on what, and how it is doing.

import { Errors } from "../errors.js";
import { download } from "../http.js";
import type { Deps } from "../deps.js";
import type { Ctx } from "../http.js";
import { PERMIT_ADMIN, PERMIT_SELF, PERMIT_USER } from "../permissions.js";
import { VERSION } from "../../control/sluice.js";
import { debugReport, platformSection, platformInfo, type DebugSection, type DebugStyle } from "../../system/debuginfo.js";
import { stackReport } from "../../system/stacks.js";
import { cpuProfile, heapSnapshot, samplingHeapProfile, ProfilerBusyError } from "../../system/profiler.js";
import { conntrackStats, conntrackTable } from "../../system/conntrack.js";
import { defaultGateways, interfaces, routeTable } from "../../system/routes.js";
import { systemNameservers } from "../../system/nameservers.js";
import { parseQuery } from "../db/query.js";
import { durationMs, durationSchema } from "../http.js";

const DEFAULT_PROFILE_S = 10;
const STYLE_PARAM = { Method: "GET", Field: "style", Value: "github", Description: "Specify the formatting style. The default is simple markdown formatting." };
/** Restart and shutdown wait this long so the reply reaches the client first. */
const ACT_DELAY_MS = 100;

function style(ctx: Ctx): DebugStyle {
  const s = ctx.param("style", "markdown");
  if (s !== "markdown" && s !== "github") throw Errors.badRequest('style must be "github" or omitted', { parameter: "style" });
  return s;
}

function json(v: unknown): string {
  return JSON.stringify(v, null, 2);
}

export function statusData(d: Deps): Record<string, unknown> {
  const c = d.control;
  return {
    version: VERSION,
    state: c.state,
    uptimeS: Math.round((Date.now() - c.started) / 1000),
    packetPath: c.gateway ? c.gateway.health() : { status: "not running" },
    api: { uws: d.uws, ...d.counters(), websocketClients: d.hub.connections },
  };
}

export function registerSystem(d: Deps): void {
  const r = d.registry;
  const c = d.control;

  const baseSections = (): DebugSection[] => [
    { name: "Version", body: `sluice ${VERSION}` },
    platformSection(),
    { name: "HTTP server", body: d.uws.native ? `uWebSockets.js native: ${d.uws.detail}` : `uWebSockets.js JS FALLBACK (slow): ${d.uws.detail}` },
    { name: "Recent warnings", body: c.recentWarnings.length > 0 ? c.recentWarnings.join("\n") : "none" },
  ];
  const coreSections = (): DebugSection[] => {
    const opts = c.options.list(true).filter((o) => !o.Sensitive && o.Value !== undefined).map((o) => `${o.Key}: ${JSON.stringify(o.Value)}`);
    return [
      ...baseSections(),
      { name: "Status", body: json(statusData(d)) },
      { name: "Firewall", body: c.gateway ? c.gateway.firewallBackend : "packet path not running" },
      { name: "Config (set by the user, non-sensitive)", body: opts.length > 0 ? opts.join("\n") : "all defaults" },
      { name: "Profiles", body: c.profiles.list().map((p) => `${p.ID}: default ${p.Default}, ${p.Sources.length} source(s), ${p.Rules.length} rule(s)`).join("\n") },
    ];
  };

  r.register({
    name: "Get Debug Information",
    description: "Returns debugging information: version, platform, HTTP server, recent warnings and the current stack.",
    path: "debug/info",
    mimeType: "text/plain",
    read: PERMIT_USER,
    parameters: [STYLE_PARAM],
    handler: (ctx) => debugReport([...baseSections(), { name: "Stack", body: stackReport() }], style(ctx)),
  });

  r.register({
    name: "Get Core Debug Information",
    description: "Like debug/info, plus status, firewall, configuration and profiles.",
    path: "debug/core",
    mimeType: "text/plain",
    read: PERMIT_USER,
    parameters: [STYLE_PARAM],
    handler: (ctx) => debugReport(coreSections(), style(ctx)),
  });

  r.register({
    name: "Get Network Debug Information",
    description: "Like debug/core, plus the kernel's connection tracking table (optionally only flows matching `where`, a condition over the flow's fields) and routes.",
    path: "debug/network",
    mimeType: "text/plain",
    read: PERMIT_USER,
    parameters: [
      STYLE_PARAM,
      { Method: "GET", Field: "where", Value: "<query>", Description: 'Only flows matching this condition, e.g. proto sameas tcp and orig.dport == 443' },
    ],
    handler: async (ctx) => {
      const st = style(ctx);
      const where = ctx.query.get("where");
      let filter = (_: unknown) => true;
      if (where) {
        try {
          const q = parseQuery(`query conntrack: where ${where}`);
          filter = (e) => q.matches(e);
        } catch (err) {
          throw Errors.badRequest(`where: ${(err as Error).message}`, { parameter: "where" });
        }
      }
      const [ct, stats, routes] = await Promise.all([conntrackTable().catch((e: Error) => e), conntrackStats(), routeTable().catch((e: Error) => e)]);
      const flows = ct instanceof Error ? `unavailable: ${ct.message}` : ct.entries.filter(filter).map((e) => JSON.stringify(e)).join("\n") || "no flows";
      return debugReport(
        [
          ...coreSections(),
          { name: "Conntrack", body: `${json(stats)}\n${flows}` },
          { name: "Routes", body: routes instanceof Error ? `unavailable: ${routes.message}` : routes.map((x) => JSON.stringify(x)).join("\n") },
        ],
        st,
      );
    },
  });

  r.register({
    name: "Get Network State Table Data",
    description: "Returns the kernel's network state: the conntrack table (up to 10000 flows), its fill level, routes and interfaces.",
    path: "debug/network/state",
    read: PERMIT_USER,
    handler: async () => {
      // Each part stands alone: a missing tool (conntrack) or privilege costs that part only.
      const part = <T>(p: Promise<T>) => p.catch((err: Error) => ({ error: err.message }));
      const [ct, stats, routes, ifaces] = await Promise.all([part(conntrackTable()), part(conntrackStats()), part(routeTable()), part(interfaces())]);
      return { conntrack: { ...stats, ...ct }, routes, interfaces: ifaces };
    },
  });

  r.register({
    name: "Get Stack",
    description: "Returns the current JavaScript stacks (main thread and workers) and handle summary.",
    path: "debug/stack",
    mimeType: "text/plain",
    read: PERMIT_USER,
    handler: () => stackReport(),
  });

  r.register({
    name: "Print Stack",
    description: "Prints the current stack report to sluice's standard output (the journal).",
    path: "debug/stack/print",
    mimeType: "text/plain",
    read: PERMIT_USER,
    handler: () => {
      process.stdout.write(stackReport() + "\n");
      return "stack printed to stdout";
    },
  });

  const profile = (kind: "cpu" | "allocs" | "heap") => async (ctx: Ctx) => {
    let ms = DEFAULT_PROFILE_S * 1000;
    if (kind !== "heap") {
      const dur = durationSchema.safeParse(ctx.param("duration", `${DEFAULT_PROFILE_S}s`));
      ms = dur.success ? durationMs(dur.data) : NaN;
      if (!(ms >= 1 && ms <= 60_000)) throw Errors.badRequest("duration: between 1ms and 60s, e.g. 10s", { parameter: "duration" });
    }
    try {
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      if (kind === "cpu") return download(await cpuProfile(ms), `sluice-${stamp}.cpuprofile`, "application/json");
      if (kind === "allocs") return download(await samplingHeapProfile(ms), `sluice-${stamp}.heapprofile`, "application/json");
      return download(await heapSnapshot(), `sluice-${stamp}.heapsnapshot`, "application/json");
    } catch (err) {
      if (err instanceof ProfilerBusyError) throw Errors.conflict("another profile is being taken; try again when it is done");
      throw err;
    }
  };
  const viewHint = "Open the file in Chrome DevTools (Performance or Memory tab) or VS Code.";
  r.register({
    name: "Get CPU Profile",
    description: `Gathers a V8 CPU profile over ?duration= (default 10s) and returns it as a .cpuprofile. ${viewHint}`,
    path: "debug/cpu",
    mimeType: "application/octet-stream",
    read: PERMIT_ADMIN,
    parameters: [{ Method: "GET", Field: "duration", Value: "10s", Description: "How long to profile (at most 60s)." }],
    handler: profile("cpu"),
  });
  r.register({
    name: "Get Heap Profile",
    description: `Takes a V8 heap snapshot (.heapsnapshot). It contains memory contents, secrets included: Admin only. ${viewHint}`,
    path: "debug/heap",
    mimeType: "application/octet-stream",
    read: PERMIT_ADMIN,
    handler: profile("heap"),
  });
  r.register({
    name: "Get Allocs Profile",
    description: `Samples allocations over ?duration= (default 10s), freed ones included, as a .heapprofile. ${viewHint}`,
    path: "debug/allocs",
    mimeType: "application/octet-stream",
    read: PERMIT_ADMIN,
    parameters: [{ Method: "GET", Field: "duration", Value: "10s", Description: "How long to sample (at most 60s)." }],
    handler: profile("allocs"),
  });

  /** Stops (or restarts) once the reply is out. */
  const stopLater = (why: "restart" | "shutdown"): string => {
    setTimeout(() => c.requestStop(why), ACT_DELAY_MS);
    return `${why} initiated`;
  };

  r.register({
    name: "Restart sluice",
    description: "Stops the packet path and the API and starts them again with the current configuration (options marked RequiresRestart take effect).",
    path: "core/restart",
    mimeType: "text/plain",
    write: PERMIT_ADMIN,
    handler: () => stopLater("restart"),
  });
  r.register({
    name: "Shut Down sluice",
    description: "Stops sluice and removes its firewall rules (dev mode, loopback only).",
    path: "core/shutdown",
    mimeType: "text/plain",
    write: PERMIT_SELF,
    handler: () => stopLater("shutdown"),
  });

  const events: Record<string, Record<string, () => Promise<string> | string>> = {
    core: {
      restart: () => stopLater("restart"),
      shutdown: () => stopLater("shutdown"),
    },
    filter: {
      reload: async () => `rules reloaded: ${(await c.reloadRulesFile()).rules} rules`,
    },
    auth: {
      flush: () => (d.auth.tokens.flush(), "token last-used times written"),
    },
  };
  r.register({
    name: "Trigger Event",
    description: `Triggers an event of a module: ${Object.entries(events).map(([m, e]) => Object.keys(e).map((x) => `${m}/${x}`).join(", ")).join(", ")}.`,
    path: "modules/{moduleName:[a-z]+}/trigger/{eventName:[a-z-]+}",
    mimeType: "text/plain",
    write: PERMIT_SELF,
    handler: async (ctx) => {
      const f = events[ctx.vars.moduleName!]?.[ctx.vars.eventName!];
      if (!f) throw Errors.notFound(`no event ${ctx.vars.moduleName}/${ctx.vars.eventName}`);
      await f();
      return "event successfully injected";
    },
  });

  r.register({
    name: "Get Default Gateways",
    description: "Returns the next hops of the IPv4 and IPv6 default routes.",
    path: "network/gateways",
    read: PERMIT_USER,
    handler: () => defaultGateways(),
  });
  r.register({
    name: "Get System Nameservers",
    description: "Returns the nameservers configured on this machine (/etc/resolv.conf).",
    path: "network/nameservers",
    read: PERMIT_USER,
    handler: () => systemNameservers(),
  });
  r.register({
    name: "Get Approximate Internet Location",
    description:
      "What sluice knows locally about where this gateway sits: its global addresses. sluice has no GeoIP database and sends no probes, so the geographic location is reported as unknown.",
    path: "network/location",
    read: PERMIT_USER,
    handler: async () => {
      const ifaces = await interfaces();
      const all = ifaces.flatMap((i) =>
        i.addresses.filter((a) => a.scope === "global" && isPublic(a.address)).map((a) => ({ IP: a.address, IPVersion: a.family, Interface: i.name, Source: "interface", Location: null })),
      );
      return { All: all, Location: "unknown", Reason: "no GeoIP database is installed and sluice does not look up its location online" };
    },
  });

  r.register({
    name: "Get Platform",
    description: "Node, V8, kernel, memory and load of the machine sluice runs on.",
    path: "debug/platform",
    read: PERMIT_USER,
    handler: () => platformInfo(),
  });

}

/** Not private, shared, loopback or link-local: an address the Internet could route to. */
export function isPublic(ip: string): boolean {
  if (ip.includes(":")) {
    const first = parseInt(ip.split(":")[0] || "0", 16);
    return (first & 0xe000) === 0x2000 && !ip.toLowerCase().startsWith("2001:db8");
  }
  const [a, b] = ip.split(".").map(Number) as [number, number];
  if (a === 10 || a === 127 || a === 0 || a >= 224) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 169 && b === 254) return false;
  if (a === 100 && b >= 64 && b <= 127) return false;
  if (a === 192 && b === 0) return false;
  if ((a === 198 && (b === 18 || b === 19 || b === 51)) || (a === 203 && b === 0)) return false;
  return true;
}
