// The kernel side: sluice's own iptables chains (nft backend) hooked first into FORWARD, for
// IPv4 and IPv6. The native nft `queue` expression is missing on kernels without
// CONFIG_NFT_QUEUE, and iptables-nft's NFQUEUE target works everywhere, so that is what is used.
//
//   mangle FORWARD -> SLUICE-QUEUE:
//     restore our mark bits from the connmark; decided (mark != 0) -> RETURN;
//     else NFQUEUE --queue-balance first:last --queue-bypass (flow-hashed, both directions
//     of a connection to the same queue; no listener -> the packet goes on undecided)
//   filter FORWARD -> SLUICE-FILTER (runs after mangle, so it sees the verdict's mark):
//     undecided: RETURN (fail-open) or DROP (fail-closed); pass-once: RETURN, not saved;
//     save the mark into the connmark (the rest of the connection never leaves the kernel);
//     accept: RETURN (the system's own rules still apply); block: TCP RST, ICMP dropped,
//     others ICMP admin-prohibited; drop: DROP.
// Only our mark bits (the mask) are read or written, so marks other software sets survive.
// INPUT and OUTPUT are not hooked: the gateway's own SSH and API stay reachable.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { SluiceError } from "../core/errors.js";

const run = promisify(execFile);

export const CHAIN_QUEUE = "SLUICE-QUEUE";
export const CHAIN_FILTER = "SLUICE-FILTER";
const HOOK = "FORWARD";

export interface Marks {
  mask: number;
  accept: number;
  block: number;
  drop: number;
  once: number;
}

export interface FirewallOptions {
  firstQueue: number;
  queues: number;
  marks: Marks;
  failClosed: boolean;
  ipv6: boolean;
}

type Family = 4 | 6;

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/** The rules of both chains, as iptables argument lists (without the command itself). */
export function chainRules(o: FirewallOptions, family: Family): { table: string; chain: string; rules: string[][] }[] {
  const m = o.marks;
  const mark = (v: number) => ["-m", "mark", "--mark", `${hex(v)}/${hex(m.mask)}`];
  const queue =
    o.queues > 1
      ? ["--queue-balance", `${o.firstQueue}:${o.firstQueue + o.queues - 1}`]
      : ["--queue-num", String(o.firstQueue)];
  const rejectOther = family === 4 ? "icmp-admin-prohibited" : "icmp6-adm-prohibited";
  const icmp = family === 4 ? "icmp" : "ipv6-icmp";
  return [
    {
      table: "mangle",
      chain: CHAIN_QUEUE,
      rules: [
        ["-j", "CONNMARK", "--restore-mark", "--nfmask", hex(m.mask), "--ctmask", hex(m.mask)],
        ["-m", "mark", "!", "--mark", `0/${hex(m.mask)}`, "-j", "RETURN"],
        ["-j", "NFQUEUE", ...queue, "--queue-bypass"],
      ],
    },
    {
      table: "filter",
      chain: CHAIN_FILTER,
      rules: [
        [...mark(0), "-j", o.failClosed ? "DROP" : "RETURN"],
        [...mark(m.once), "-j", "RETURN"],
        ["-m", "connmark", "--mark", `0/${hex(m.mask)}`, "-j", "CONNMARK", "--save-mark", "--nfmask", hex(m.mask), "--ctmask", hex(m.mask)],
        [...mark(m.accept), "-j", "RETURN"],
        [...mark(m.block), "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        [...mark(m.block), "-p", icmp, "-j", "DROP"],
        [...mark(m.block), "-j", "REJECT", "--reject-with", rejectOther],
        [...mark(m.drop), "-j", "DROP"],
      ],
    },
  ];
}

async function ipt(family: Family, args: string[]): Promise<string> {
  const cmd = family === 4 ? "iptables" : "ip6tables";
  try {
    const { stdout } = await run(cmd, ["-w", "5", ...args]);
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; code?: string | number };
    if (e.code === "ENOENT") throw new SluiceError("FIREWALL_MISSING", `${cmd} is not installed (apt-get install iptables)`);
    throw new SluiceError("FIREWALL", `${cmd} ${args.join(" ")}: ${(e.stderr ?? String(err)).trim()}`);
  }
}

async function exists(family: Family, table: string, args: string[]): Promise<boolean> {
  try {
    await ipt(family, ["-t", table, ...args]);
    return true;
  } catch {
    return false;
  }
}

function families(o: { ipv6: boolean }): Family[] {
  return o.ipv6 ? [4, 6] : [4];
}

/** Creates (or resets) the chains and hooks them first into FORWARD. Idempotent. */
export async function installFirewall(o: FirewallOptions): Promise<{ backend: string }> {
  const version = await ipt(4, ["--version"]);
  for (const family of families(o)) {
    for (const { table, chain, rules } of chainRules(o, family)) {
      if (!(await exists(family, table, ["-n", "-L", chain]))) await ipt(family, ["-t", table, "-N", chain]);
      await ipt(family, ["-t", table, "-F", chain]);
      for (const r of rules) await ipt(family, ["-t", table, "-A", chain, ...r]);
      if (!(await exists(family, table, ["-C", HOOK, "-j", chain]))) await ipt(family, ["-t", table, "-I", HOOK, "1", "-j", chain]);
    }
  }
  return { backend: version.trim() };
}

/** Unhooks and deletes the chains, for every family, whatever state they are in. */
export async function removeFirewall(o: { ipv6: boolean } = { ipv6: true }): Promise<number> {
  let removed = 0;
  for (const family of families(o)) {
    for (const [table, chain] of [["mangle", CHAIN_QUEUE], ["filter", CHAIN_FILTER]] as const) {
      while (await exists(family, table, ["-C", HOOK, "-j", chain])) {
        await ipt(family, ["-t", table, "-D", HOOK, "-j", chain]);
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

/** Is our hook rule the first rule of FORWARD in every table and family? */
export async function hooksFirst(o: { ipv6: boolean }): Promise<boolean> {
  for (const family of families(o)) {
    for (const [table, chain] of [["mangle", CHAIN_QUEUE], ["filter", CHAIN_FILTER]] as const) {
      const out = await ipt(family, ["-t", table, "-S", HOOK]);
      const first = out.split("\n").find((l) => l.startsWith(`-A ${HOOK} `));
      if (first !== `-A ${HOOK} -j ${chain}`) return false;
    }
  }
  return true;
}

/**
 * Forgets the decisions the kernel holds (conntrack entries carrying a verdict mark), so every
 * connection is decided again by the current rules on its next packet: a new block cuts open
 * connections. Uses conntrack(8); returns how many entries were deleted.
 */
export async function forgetDecisions(o: { marks: Marks; ipv6: boolean }): Promise<number> {
  let deleted = 0;
  for (const family of families(o)) {
    for (const v of [o.marks.accept, o.marks.block, o.marks.drop]) {
      try {
        const { stderr } = await run("conntrack", ["-D", "-f", family === 4 ? "ipv4" : "ipv6", "--mark", `${hex(v)}/${hex(o.marks.mask)}`]);
        const m = /(\d+) flow entries have been deleted/.exec(stderr);
        if (m) deleted += Number(m[1]);
      } catch (err) {
        const e = err as { code?: string | number; stderr?: string };
        if (e.code === "ENOENT") throw new SluiceError("CONNTRACK_MISSING", "conntrack is not installed (apt-get install conntrack)");
        const m = /(\d+) flow entries have been deleted/.exec(e.stderr ?? "");
        if (m) deleted += Number(m[1]); // conntrack exits 1 when it deleted nothing
      }
    }
  }
  return deleted;
}
