// Keeps LAN devices on sluice's resolver (Portmaster's "DNS query interception" and "bypass
// prevention", for a whole network):
//   nat PREROUTING -> SLUICE-DNS-NAT: port 53 from the LAN side, to any server, is DNAT'ed to
//     sluice's resolver (replies are un-NATed by conntrack, so the device sees its server answer);
//   filter FORWARD -> SLUICE-DNS-BLOCK: DNS over TLS/QUIC (853) is refused, and so is HTTPS to
//     the well-known DoH resolvers' addresses; the resolver answers NXDOMAIN for their names.
// Packets arriving on a WAN interface are never touched.

import { exists, ipt, type Family } from "./firewall.js";

const CHAIN_NAT = "SLUICE-DNS-NAT";
const CHAIN_BLOCK = "SLUICE-DNS-BLOCK";
const DOT_PORT = "853";

/** Public DoH/DoT resolvers' addresses (the big anycast services and a few privacy resolvers). */
export const DOH_ADDRESSES: Record<Family, string[]> = {
  4: [
    "1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
    "8.8.8.8", "8.8.4.4",
    "9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10", "9.9.9.11", "149.112.112.11",
    "208.67.222.222", "208.67.220.220",
    "94.140.14.14", "94.140.15.15",
    "185.228.168.9", "185.228.169.9",
    "194.242.2.2", "45.90.28.0/24", "45.90.30.0/24",
  ],
  6: [
    "2606:4700:4700::1111", "2606:4700:4700::1001", "2606:4700:4700::1112", "2606:4700:4700::1002",
    "2001:4860:4860::8888", "2001:4860:4860::8844",
    "2620:fe::fe", "2620:fe::9", "2620:fe::10", "2620:fe::11",
    "2620:119:35::35", "2620:119:53::53",
    "2a10:50c0::ad1:ff", "2a10:50c0::ad2:ff",
    "2a0d:2a00:1::", "2a07:e340::2",
  ],
};

/** Their hostnames: the resolver answers NXDOMAIN, so browsers fall back to the network's DNS. */
export const DOH_NAMES: readonly string[] = [
  "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "chrome.cloudflare-dns.com", "one.one.one.one", "1dot1dot1dot1.cloudflare-dns.com",
  "security.cloudflare-dns.com", "family.cloudflare-dns.com",
  "dns.google", "dns.google.com", "dns64.dns.google",
  "dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net",
  "doh.opendns.com", "dns.opendns.com", "doh.familyshield.opendns.com",
  "dns.adguard.com", "dns.adguard-dns.com", "dns-family.adguard.com",
  "dns.nextdns.io", "doh.cleanbrowsing.org", "doh.dns.sb", "dns.mullvad.net", "doh.mullvad.net",
];

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
