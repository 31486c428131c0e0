// sluice's firewall chains in a real (namespaced) netfilter: install, keep first, remove.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DRILL = join(ROOT, "scripts", "lab", "firewall-drill.mjs");

function inNamespace(mode: string): Record<string, number | boolean> {
  const ns = `slfw${process.pid % 100000}`;
  try {
    execFileSync("ip", ["netns", "add", ns]);
    return JSON.parse(execFileSync("ip", ["netns", "exec", ns, process.execPath, DRILL, mode], { encoding: "utf8", timeout: 60000 })) as never;
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}

describe("firewall chains in netfilter", () => {
  for (const mode of ["gateway", "both"]) {
    it(`puts its ${mode}-mode hooks back on top, without unhooking, when another firewall inserts rules above them`, () => {
      assert.equal(process.getuid?.(), 0, "needs root (network namespaces, iptables)");
      const r = inNamespace(mode);
      assert.equal(r.installedFirst, true, "hooked first after install");
      assert.equal(r.afterIntruderFirst, false, "the intruding rules are above ours");
      assert.ok((r.moved as number) >= 2, "hooks were moved");
      assert.equal(r.restoredFirst, true, "ours are first again");
      // gateway: 2 hooks x 2 families, plus the IPv4 self-check probe chains' 2 jumps into the
      // base chains; both: 6 hooks x 2 families, the host chains' jumps into the base chains
      // (4 x 2) and their 2 IPv4 probe jumps. Each exactly once: nothing left behind by the move.
      assert.equal(r.ourJumps, mode === "gateway" ? 6 : 22);
      assert.equal(r.intrudersKept, 4, "the other firewall's rules stay");
      assert.equal(r.leftAfterRemove, 0, "nothing of sluice is left after remove");
    });
  }
});
