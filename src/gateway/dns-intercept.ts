// Keeps LAN devices on sluice's resolver (Portmaster's "DNS query interception" and "bypass
// prevention", for a whole network):
//   nat PREROUTING -> SLUICE-DNS-NAT: port 53 from the LAN side, to any server, is DNAT'ed to
//     sluice's resolver (replies are un-NATed by conntrack, so the device sees its server answer);
//   filter FORWARD -> SLUICE-DNS-BLOCK: DNS over TLS/QUIC (853) is refused, and so is HTTPS to
//     the well-known DoH resolvers' addresses; the resolver answers NXDOMAIN for their names.
// Packets arriving on a WAN interface are never touched.

import { exists, ipt, type Family } from "./firewall.js";
import { DOH_ADDRESSES } from "../dns/bypass.js";

const CHAIN_NAT = "SLUICE-DNS-NAT";
const CHAIN_BLOCK = "SLUICE-DNS-BLOCK";
const DOT_PORT = "853";

export interface InterceptOptions {
  redirect: boolean;
  blockDoT: boolean;
  blockDoH: boolean;
  /** Where redirected queries go, per family (null: that family is not redirected). */
  target: Record<Family, string | null>;
  port: number;
  wanInterfaces: string[];
  ipv6: boolean;
}

/** The two chains' rules for one family. */
export function interceptRules(o: InterceptOptions, family: Family): { nat: string[][]; block: string[][] } {
  const fromWan = o.wanInterfaces.map((i) => ["-i", i, "-j", "RETURN"]);
  const nat: string[][] = [];
  const t = o.target[family];
  if (o.redirect && t !== null) {
    const to = family === 4 ? `${t}:${o.port}` : `[${t}]:${o.port}`;
    nat.push(...fromWan);
    for (const p of ["udp", "tcp"]) nat.push(["-p", p, "--dport", "53", "-j", "DNAT", "--to-destination", to]);
  }
  const block: string[][] = [];
  if (o.blockDoT || o.blockDoH) block.push(...fromWan);
  if (o.blockDoT) {
    block.push(["-p", "tcp", "--dport", DOT_PORT, "-j", "REJECT", "--reject-with", "tcp-reset"]);
    block.push(["-p", "udp", "--dport", DOT_PORT, "-j", "REJECT"]);
  }
  if (o.blockDoH) {
    for (const a of DOH_ADDRESSES[family]) {
      block.push(["-d", a, "-p", "tcp", "--dport", "443", "-j", "REJECT", "--reject-with", "tcp-reset"]);
      block.push(["-d", a, "-p", "udp", "--dport", "443", "-j", "REJECT"]); // HTTP/3
    }
  }
  return { nat, block };
}

/** Installs (or resets) the chains and hooks; a no-op for what is switched off. */
export async function installInterception(o: InterceptOptions): Promise<void> {
  await removeInterception({ ipv6: true });
  for (const family of o.ipv6 ? ([4, 6] as Family[]) : ([4] as Family[])) {
    const { nat, block } = interceptRules(o, family);
    if (nat.length > 0) {
      await ipt(family, ["-t", "nat", "-N", CHAIN_NAT]);
      for (const r of nat) await ipt(family, ["-t", "nat", "-A", CHAIN_NAT, ...r]);
      await ipt(family, ["-t", "nat", "-I", "PREROUTING", "1", "-j", CHAIN_NAT]);
    }
    if (block.length > 0) {
      await ipt(family, ["-t", "filter", "-N", CHAIN_BLOCK]);
      for (const r of block) await ipt(family, ["-t", "filter", "-A", CHAIN_BLOCK, ...r]);
      // After sluice's own FORWARD hook when it is there (its hook-order watchdog keeps that first).
      const rules = (await ipt(family, ["-t", "filter", "-S", "FORWARD"])).split("\n").filter((l) => l.startsWith("-A FORWARD"));
      await ipt(family, ["-t", "filter", "-I", "FORWARD", rules.length > 0 && rules[0]!.includes("SLUICE-FILTER") ? "2" : "1", "-j", CHAIN_BLOCK]);
    }
  }
}

/** Removes both chains and their hooks, whatever state they are in. Returns how many things went. */
export async function removeInterception(o: { ipv6: boolean }): Promise<number> {
  let removed = 0;
  for (const family of o.ipv6 ? ([4, 6] as Family[]) : ([4] as Family[])) {
    for (const [table, builtin, chain] of [["nat", "PREROUTING", CHAIN_NAT], ["filter", "FORWARD", CHAIN_BLOCK]] as const) {
      while (await exists(family, table, ["-C", builtin, "-j", chain])) {
        await ipt(family, ["-t", table, "-D", builtin, "-j", chain]);
        removed++;
      }
      if (await exists(family, table, ["-n", "-L", chain])) {
        await ipt(family, ["-t", table, "-F", chain]);
        await ipt(family, ["-t", table, "-X", chain]);
        removed++;
      }
    }
  }
  return removed;
}
