// CPU and memory of processes and of the machine, from /proc: what the benches report next to
// their throughput, so a figure says whether the server, the load generator or something else
// used the cores.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { round } from "./stats.js";

let ticks = 100;
try {
  ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  // keep 100, the Linux default
}
/** Kernel clock ticks per second (the unit of /proc's CPU times). */
export const clockTicks = ticks;

function statFields(pid: number | "self"): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** User+system CPU seconds of a process, all its threads (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / clockTicks : NaN;
}

/** CPU seconds of this process's reaped children (cutime + cstime): a load tool's, once it exited. */
export function childrenCpuSeconds(): number {
  const f = statFields("self");
  return f ? (Number(f[13]) + Number(f[14])) / clockTicks : NaN;
}

/**
 * CPU seconds of the whole machine, all cores, from /proc/stat: busy in processes (user, nice,
 * system), in interrupts (irq + softirq: mostly packet processing on a veth), and steal.
 */
export function machineCpu(): { busy: number; irq: number; steal: number } {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { busy: (f[0]! + f[1]! + f[2]!) / clockTicks, irq: (f[5]! + f[6]!) / clockTicks, steal: (f[7] ?? 0) / clockTicks };
  } catch {
    return { busy: NaN, irq: NaN, steal: NaN };
  }
}

/** Resident and peak resident memory of a process, MB; null once it is gone. */
export function memoryMB(pid: number): { rss: number; peak: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN);
    return { rss: round(kb("VmRSS") / 1024, 1), peak: round(kb("VmHWM") / 1024, 1) };
  } catch {
    return null;
  }
}
