// Run inside a network namespace by test/firewall-live.test.ts: installs sluice's chains, lets
// "another firewall" insert rules above them, puts the hooks back on top, removes everything.
// Prints one JSON line with what it saw at each step.
import { execFileSync } from "node:child_process";
import { installFirewall, removeFirewall, hooksFirst, restoreHookOrder } from "../../dist/src/gateway/firewall.js";

const o = {
  firstQueue: 0, queues: 1, failClosed: false, ipv6: true, mode: process.argv[2] ?? "gateway", exemptPorts: [22],
  marks: { mask: 0x0f000000, accept: 0x01000000, block: 0x02000000, drop: 0x03000000, once: 0x04000000 },
};
const save = () => execFileSync("iptables-save", { encoding: "utf8" }) + execFileSync("ip6tables-save", { encoding: "utf8" });
const result = {};
await installFirewall(o);
result.installedFirst = await hooksFirst(o);
// Another firewall inserts its own rules at the top of every hooked chain.
for (const [table, chain] of [["mangle", "FORWARD"], ["filter", "FORWARD"], ["mangle", "INPUT"], ["filter", "OUTPUT"]]) {
  execFileSync("iptables", ["-w", "-t", table, "-I", chain, "1", "-j", "ACCEPT"]);
}
result.afterIntruderFirst = await hooksFirst(o);
result.moved = await restoreHookOrder(o);
result.restoredFirst = await hooksFirst(o);
result.ourJumps = (save().match(/-j SLUICE-(QUEUE|FILTER|IN|OUT)/g) ?? []).length;
result.intrudersKept = (execFileSync("iptables-save", { encoding: "utf8" }).match(/-A (FORWARD|INPUT|OUTPUT) -j ACCEPT/g) ?? []).length;
result.removed = await removeFirewall({ ipv6: true });
result.leftAfterRemove = (save().match(/SLUICE/g) ?? []).length;
process.stdout.write(JSON.stringify(result) + "\n");
