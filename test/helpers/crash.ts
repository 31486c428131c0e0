// Crash tests' child runner: a node script that writes to a store and prints "C <n>" after each
// commit it saw complete ("E <why>" on an error) is killed with SIGKILL at a chosen moment.

import { spawn } from "node:child_process";

export interface ChildRun {
  /** The highest commit count the child reported before it died. */
  committed: number;
  /** How many commit reports it printed. */
  lines: number;
}

/** Runs `script args...` until it has reported `minReports` commits, waits `delayMs`, then SIGKILLs it. */
export function runAndKill(script: string, args: string[], minReports: number, delayMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let committed = 0;
    let lines = 0;
    let buf = "";
    let killing = false;
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^C (\d+)$/.exec(line);
        if (m) {
          committed = Math.max(committed, Number(m[1]));
          lines++;
        } else if (line.startsWith("E ")) reject(new Error(`child reported ${line}`));
        if (lines >= minReports && !killing) {
          killing = true;
          setTimeout(() => child.kill("SIGKILL"), delayMs);
        }
      }
    });
    child.on("exit", (code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`child exited early (${code}/${signal}): ${stderr}`));
      else resolve({ committed, lines });
    });
  });
}
