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
//     accept: RETURN (the system's own rules still apply); block: TCP RST, others ICMP
//     admin-prohibited (the resets and errors sent for it pass); drop: DROP.
// Only our mark bits (the mask) are read or written, so marks other software sets survive.
// In gateway mode (the default) INPUT and OUTPUT are not hooked at all; host mode hooks them
// through chains that exempt loopback, SSH and the API port first.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { SluiceError } from "../core/errors.js";

const run = promisify(execFile);

export const CHAIN_QUEUE = "SLUICE-QUEUE";
export const CHAIN_FILTER = "SLUICE-FILTER";
// Host mode: the gateway's own traffic, through chains that first exempt loopback, SSH and the
// API/health port (the operator is never locked out), then continue into the two above.
const CHAIN_IN = "SLUICE-IN";
const CHAIN_OUT = "SLUICE-OUT";
const CHAIN_IN_FILTER = "SLUICE-IN-FILTER";
const CHAIN_OUT_FILTER = "SLUICE-OUT-FILTER";
// compat/self-check sends a UDP datagram from this host to PROBE_ADDR:PROBE_PORT; these chains
// (OUTPUT, gateway mode; host mode's SLUICE-OUT does the same first) send just that packet
// through the queue, so the check proves a packet really gets a verdict from a worker.
const CHAIN_PROBE = "SLUICE-PROBE";
const CHAIN_PROBE_FILTER = "SLUICE-PROBE-FILTER";
export const PROBE_ADDR = "127.127.0.1";
export const PROBE_PORT = 17017;
const PROBE_MATCH = ["-d", `${PROBE_ADDR}/32`, "-p", "udp", "--dport", String(PROBE_PORT)];

/** Where sluice hooks in: routed traffic (gateway), the host's own (host), or both. */
export type Mode = "gateway" | "host" | "both";

interface Hook {
  table: "mangle" | "filter";
  builtin: "FORWARD" | "INPUT" | "OUTPUT";
  chain: string;
}

function hooks(mode: Mode): Hook[] {
  const out: Hook[] = [];
  if (mode !== "host") {
    out.push({ table: "mangle", builtin: "FORWARD", chain: CHAIN_QUEUE }, { table: "filter", builtin: "FORWARD", chain: CHAIN_FILTER });
  }
  if (mode === "gateway") {
    out.push({ table: "mangle", builtin: "OUTPUT", chain: CHAIN_PROBE }, { table: "filter", builtin: "OUTPUT", chain: CHAIN_PROBE_FILTER });
  }
  if (mode !== "gateway") {
    out.push(
      { table: "mangle", builtin: "INPUT", chain: CHAIN_IN },
      { table: "mangle", builtin: "OUTPUT", chain: CHAIN_OUT },
      { table: "filter", builtin: "INPUT", chain: CHAIN_IN_FILTER },
      { table: "filter", builtin: "OUTPUT", chain: CHAIN_OUT_FILTER },
    );
  }
  return out;
}

const ALL_CHAINS: [string, string][] = [
  ["mangle", CHAIN_IN], ["mangle", CHAIN_OUT], ["filter", CHAIN_IN_FILTER], ["filter", CHAIN_OUT_FILTER],
  ["mangle", CHAIN_PROBE], ["filter", CHAIN_PROBE_FILTER], ["mangle", CHAIN_QUEUE], ["filter", CHAIN_FILTER],
];
const ALL_HOOKS: Hook[] = [...hooks("gateway"), ...hooks("host")];

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
  mode: Mode;
  /** TCP ports of this host that host mode never filters (SSH, the API). */
  exemptPorts: number[];
}

export type Family = 4 | 6;

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/** The rules of both chains, as iptables argument lists (without the command itself). */
export function chainRules(o: FirewallOptions, family: Family): { table: string; chain: string; rules: string[][] }[] {
  const probe = (next: string) => (family === 4 ? [[...PROBE_MATCH, "-j", next]] : []);
  const host = (dir: "in" | "out", next: string) => [
    ...(dir === "out" ? probe(next) : []),
    [dir === "in" ? "-i" : "-o", "lo", "-j", "RETURN"],
    ...o.exemptPorts.map((p) => ["-p", "tcp", dir === "in" ? "--dport" : "--sport", String(p), "-j", "RETURN"]),
    ["-j", next],
  ];
  const hostChains =
    o.mode === "gateway"
      ? []
      : [
          { table: "mangle", chain: CHAIN_IN, rules: host("in", CHAIN_QUEUE) },
          { table: "mangle", chain: CHAIN_OUT, rules: host("out", CHAIN_QUEUE) },
          { table: "filter", chain: CHAIN_IN_FILTER, rules: host("in", CHAIN_FILTER) },
          { table: "filter", chain: CHAIN_OUT_FILTER, rules: host("out", CHAIN_FILTER) },
        ];
  const probeChains =
    o.mode === "gateway"
      ? [
          { table: "mangle", chain: CHAIN_PROBE, rules: probe(CHAIN_QUEUE) },
          { table: "filter", chain: CHAIN_PROBE_FILTER, rules: probe(CHAIN_FILTER) },
        ]
      : [];
  return [...baseChains(o, family), ...hostChains, ...probeChains];
}

function baseChains(o: FirewallOptions, family: Family): { table: string; chain: string; rules: string[][] }[] {
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
        // A blocked connection's resets and ICMP errors are the ones REJECT just sent for it
        // (they carry its connmark): let them out. Blocked ICMP itself gets the drop mark.
        [...mark(m.block), "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "RETURN"],
        [...mark(m.block), "-p", icmp, "-j", "RETURN"],
        [...mark(m.block), "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        [...mark(m.block), "-j", "REJECT", "--reject-with", rejectOther],
        [...mark(m.drop), "-j", "DROP"],
      ],
    },
  ];
}

/** Runs iptables (4) or ip6tables (6) with a lock wait; a failure throws naming the command. */
export async function ipt(family: Family, args: string[]): Promise<string> {
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

/** Whether `iptables -t table args` succeeds (for -C and -L probes). */
export async function exists(family: Family, table: string, args: string[]): Promise<boolean> {
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

/**
 * Can this kernel run nft's own `queue` statement? Checked with `nft --check` on a throwaway
 * table, so nothing is committed. Missing without CONFIG_NFT_QUEUE; iptables-nft's NFQUEUE
 * target (through nft_compat) works either way, and is what sluice installs.
 */
export async function nftQueueSupport(): Promise<"available" | "not in this kernel" | "nft not installed"> {
  const probe = "table inet sluice_probe { chain c { type filter hook forward priority 0; queue num 0 bypass; }; }";
  return new Promise((resolve) => {
    const child = execFile("nft", ["--check", "-f", "-"], (err) => {
      if (!err) resolve("available");
      else resolve((err as NodeJS.ErrnoException).code === "ENOENT" ? "nft not installed" : "not in this kernel");
    });
    child.on("error", () => resolve("nft not installed"));
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(probe);
  });
}

/** Creates (or resets) the chains and hooks them first into their built-in chains. Idempotent. */
export async function installFirewall(o: FirewallOptions): Promise<{ backend: string }> {
  const version = await ipt(4, ["--version"]);
  for (const family of families(o)) {
    for (const { table, chain, rules } of chainRules(o, family)) {
      if (!(await exists(family, table, ["-n", "-L", chain]))) await ipt(family, ["-t", table, "-N", chain]);
      await ipt(family, ["-t", table, "-F", chain]);
      for (const r of rules) await ipt(family, ["-t", table, "-A", chain, ...r]);
    }
    for (const h of hooks(o.mode)) {
      if (!(await exists(family, h.table, ["-C", h.builtin, "-j", h.chain]))) await ipt(family, ["-t", h.table, "-I", h.builtin, "1", "-j", h.chain]);
    }
  }
  return { backend: version.trim() };
}

/** Unhooks and deletes every sluice chain, for every family and mode, whatever state it is in. */
export async function removeFirewall(o: { ipv6: boolean } = { ipv6: true }): Promise<number> {
  let removed = 0;
  for (const family of families(o)) {
    for (const h of ALL_HOOKS) {
      while (await exists(family, h.table, ["-C", h.builtin, "-j", h.chain])) {
        await ipt(family, ["-t", h.table, "-D", h.builtin, "-j", h.chain]);
        removed++;
      }
    }
    // Host chains jump into the base chains: flush them all before deleting any.
    const present: [string, string][] = [];
    for (const [table, chain] of ALL_CHAINS) if (await exists(family, table, ["-n", "-L", chain])) present.push([table, chain]);
    for (const [table, chain] of present) await ipt(family, ["-t", table, "-F", chain]);
    for (const [table, chain] of present) {
      await ipt(family, ["-t", table, "-X", chain]);
      removed++;
    }
  }
  return removed;
}

/** Is each of our hook rules the first rule of its built-in chain, in every family? */
export async function hooksFirst(o: { ipv6: boolean; mode: Mode }): Promise<boolean> {
  for (const family of families(o)) {
    for (const h of hooks(o.mode)) {
      const out = await ipt(family, ["-t", h.table, "-S", h.builtin]);
      const first = out.split("\n").find((l) => l.startsWith(`-A ${h.builtin} `));
      if (first !== `-A ${h.builtin} -j ${h.chain}`) return false;
    }
  }
  return true;
}

/**
 * Moves each of our hook rules back to the top of its built-in chain if something was inserted
 * above it, without a moment unhooked: a second jump goes in at position 1 first, then the old one
 * (now further down) is deleted by its position. Returns how many hooks were moved.
 */
export async function restoreHookOrder(o: { ipv6: boolean; mode: Mode }): Promise<number> {
  let moved = 0;
  for (const family of families(o)) {
    for (const h of hooks(o.mode)) {
      const rules = (await ipt(family, ["-t", h.table, "-S", h.builtin])).split("\n").filter((l) => l.startsWith(`-A ${h.builtin} `));
      const ours = `-A ${h.builtin} -j ${h.chain}`;
      if (rules[0] === ours) continue;
      const at = rules.indexOf(ours);
      await ipt(family, ["-t", h.table, "-I", h.builtin, "1", "-j", h.chain]);
      // Rule positions are 1-based; the insert pushed the old jump down by one.
      if (at >= 0) await ipt(family, ["-t", h.table, "-D", h.builtin, String(at + 2)]);
      moved++;
    }
  }
  return moved;
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
