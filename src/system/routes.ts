// Routes and interfaces as the kernel sees them, read through `ip -j` (iproute2's JSON output).
// Backs `network/gateways` and the diagnostics pages. The JSON is checked field by field: its
// shape varies between iproute2 versions and route types, and a bad field must not become a
// wrong value.

import { runTool } from "./exec.js";

export type IpFamily = 4 | 6;

export interface NextHop {
  gateway: string | null;
  dev: string | null;
  weight: number | null;
}

export interface RouteEntry {
  family: IpFamily;
  /** Route type: unicast, local, broadcast, multicast, blackhole, unreachable, ... */
  type: string;
  /** Destination prefix, or "default". */
  dst: string;
  gateway: string | null;
  dev: string | null;
  protocol: string;
  scope: string;
  table: string;
  metric: number;
  prefsrc: string | null;
  /** Present for multipath routes, which have no single gateway. */
  nexthops?: NextHop[];
}

export interface InterfaceAddress {
  family: IpFamily;
  address: string;
  prefixLength: number;
  scope: string | null;
}

export interface InterfaceInfo {
  name: string;
  index: number;
  /** Operational state as the kernel reports it: UP, DOWN, UNKNOWN (e.g. loopback), ... */
  state: string;
  mac: string | null;
  mtu: number | null;
  flags: string[];
  addresses: InterfaceAddress[];
}

// `ip` leaves out attributes that have their default value, so absence means these.
const DEFAULT_TYPE = "unicast"; // printed only when not unicast
const DEFAULT_PROTOCOL = "boot"; // "proto boot" is hidden unless -d
const DEFAULT_SCOPE = "global"; // RT_SCOPE_UNIVERSE is hidden
const DEFAULT_TABLE = "main"; // the main table is hidden
const DEFAULT_METRIC = 0; // IPv4 routes without RTA_PRIORITY

const FAMILY_FLAG: Record<IpFamily, string> = { 4: "-4", 6: "-6" };
const FAMILIES: readonly IpFamily[] = [4, 6];
const ADDRESS_FAMILY: Partial<Record<string, IpFamily>> = { inet: 4, inet6: 6 };

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(obj: JsonObject, key: string): string | null {
  const value = obj[key];
  return typeof value === "string" ? value : null;
}

function num(obj: JsonObject, key: string): number | null {
  const value = obj[key];
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** `ip -j` prints an array of objects; older versions print nothing instead of "[]". */
function parseObjects(stdout: string): JsonObject[] {
  const text = stdout.trim();
  if (text === "") return [];
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) ? parsed.filter(isObject) : [];
}

async function ipJson(family: IpFamily | null, args: readonly string[]): Promise<JsonObject[]> {
  const familyArgs = family === null ? [] : [FAMILY_FLAG[family]];
  const { stdout } = await runTool("ip", ["-j", ...familyArgs, ...args]);
  return parseObjects(stdout);
}

/** The next hop of a route: `gateway`, or `via` for a gateway of the other family (RFC 5549). */
function gatewayOf(route: JsonObject): string | null {
  const gateway = str(route, "gateway");
  if (gateway !== null) return gateway;
  const via = route.via;
  return isObject(via) ? str(via, "host") : null;
}

function nextHopsOf(route: JsonObject): NextHop[] | undefined {
  const hops = route.nexthops;
  if (!Array.isArray(hops)) return undefined;
  return hops.filter(isObject).map((hop) => ({ gateway: gatewayOf(hop), dev: str(hop, "dev"), weight: num(hop, "weight") }));
}

function toRouteEntry(family: IpFamily, route: JsonObject): RouteEntry | null {
  const dst = str(route, "dst");
  if (dst === null) return null;
  const entry: RouteEntry = {
    family,
    type: str(route, "type") ?? DEFAULT_TYPE,
    dst,
    gateway: gatewayOf(route),
    dev: str(route, "dev"),
    protocol: str(route, "protocol") ?? DEFAULT_PROTOCOL,
    scope: str(route, "scope") ?? DEFAULT_SCOPE,
    table: str(route, "table") ?? DEFAULT_TABLE,
    metric: num(route, "metric") ?? DEFAULT_METRIC,
    prefsrc: str(route, "prefsrc"),
  };
  const nexthops = nextHopsOf(route);
  if (nexthops !== undefined) entry.nexthops = nexthops;
  return entry;
}

async function routesOf(family: IpFamily, args: readonly string[]): Promise<RouteEntry[]> {
  const routes = await ipJson(family, ["route", "show", ...args]);
  return routes.map((r) => toRouteEntry(family, r)).filter((r): r is RouteEntry => r !== null);
}

/**
 * Next hops of the IPv4 and IPv6 default routes (Portmaster's `network/gateways`), IPv4 first,
 * without duplicates. Multipath defaults contribute every hop. [] if there is no default route.
 */
export async function defaultGateways(): Promise<string[]> {
  const perFamily = await Promise.all(FAMILIES.map((family) => routesOf(family, ["default"])));
  const gateways = new Set<string>();
  for (const route of perFamily.flat()) {
    if (route.gateway !== null) gateways.add(route.gateway);
    for (const hop of route.nexthops ?? []) if (hop.gateway !== null) gateways.add(hop.gateway);
  }
  return [...gateways];
}

/** Every route in every table (main, local, policy tables), IPv4 then IPv6. */
export async function routeTable(): Promise<RouteEntry[]> {
  // The family flag is explicit: without it `table all` already mixes in IPv6 routes.
  const perFamily = await Promise.all(FAMILIES.map((family) => routesOf(family, ["table", "all"])));
  return perFamily.flat();
}

function toAddress(info: JsonObject): InterfaceAddress | null {
  const familyName = str(info, "family");
  const family = familyName === null ? undefined : ADDRESS_FAMILY[familyName];
  const address = str(info, "local");
  const prefixLength = num(info, "prefixlen");
  if (family === undefined || address === null || prefixLength === null) return null;
  return { family, address, prefixLength, scope: str(info, "scope") };
}

function toInterface(link: JsonObject): InterfaceInfo | null {
  const name = str(link, "ifname");
  const index = num(link, "ifindex");
  if (name === null || index === null) return null;
  const flags = Array.isArray(link.flags) ? link.flags.filter((f): f is string => typeof f === "string") : [];
  const addrInfo = Array.isArray(link.addr_info) ? link.addr_info.filter(isObject) : [];
  return {
    name,
    index,
    state: str(link, "operstate") ?? "UNKNOWN",
    mac: str(link, "address"),
    mtu: num(link, "mtu"),
    flags,
    addresses: addrInfo.map(toAddress).filter((a): a is InterfaceAddress => a !== null),
  };
}

/** All network interfaces with their addresses, in kernel index order. */
export async function interfaces(): Promise<InterfaceInfo[]> {
  const links = await ipJson(null, ["addr", "show"]);
  return links.map(toInterface).filter((i): i is InterfaceInfo => i !== null);
}

/** Neighbour entries (ARP and NDP) that have a link-layer address, as IP -> MAC ("aa:bb:..."). */
function neighbourMap(entries: JsonObject[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of entries) {
    const ip = str(e, "dst");
    const mac = str(e, "lladdr");
    if (ip !== null && mac !== null) m.set(ip, mac.toLowerCase());
  }
  return m;
}

/** The neighbour tables of both families: which MAC each LAN address currently has. */
export async function neighbours(): Promise<Map<string, string>> {
  return neighbourMap(await ipJson(null, ["neigh", "show"]));
}

/** The MAC address the neighbour table holds for one IP, or null. */
export async function neighbourMac(ip: string): Promise<string | null> {
  try {
    return neighbourMap(await ipJson(null, ["neigh", "show", "to", ip])).get(ip) ?? null;
  } catch {
    return null;
  }
}
