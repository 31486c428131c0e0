// A three-host topology in network namespaces, made for one test run or demo:
//   cli (10.80.1.2, fd80:1::2) --[cli0|gwc0]-- gw (router) --[gws0|srv0]-- srv (10.80.2.2, fd80:2::2)
// Names carry the test process id, so parallel runs and leftovers never collide. Nothing is
// routed anywhere else: no namespace has a route out of these two subnets.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";

export interface Topology {
  cli: string;
  gw: string;
  srv: string;
  cli4: string;
  srv4: string;
  cli6: string;
  srv6: string;
  /** The gateway's interface toward srv (the "WAN" side). */
  gwWan: string;
  exec(ns: string, cmd: string, args: string[], timeoutMs?: number): string;
  spawn(ns: string, cmd: string, args: string[]): ChildProcess;
  destroy(): void;
}

function sh(cmd: string, args: string[], timeoutMs = 10000): string {
  return execFileSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
}

export function createTopology(tag = String(process.pid)): Topology {
  const cli = `sl${tag}c`;
  const gw = `sl${tag}g`;
  const srv = `sl${tag}s`;
  const children: ChildProcess[] = [];
  const ns = (n: string, ...args: string[]) => sh("ip", ["-n", n, ...args]);
  const destroy = () => {
    for (const c of children) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, "SIGKILL"); } catch { /* gone */ } }
    for (const n of [cli, gw, srv]) { try { sh("ip", ["netns", "del", n]); } catch { /* not there */ } }
  };
  destroy();
  try {
    for (const n of [cli, gw, srv]) {
      sh("ip", ["netns", "add", n]);
      ns(n, "link", "set", "lo", "up");
    }
    sh("ip", ["link", "add", "cli0", "netns", cli, "type", "veth", "peer", "name", "gwc0", "netns", gw]);
    sh("ip", ["link", "add", "srv0", "netns", srv, "type", "veth", "peer", "name", "gws0", "netns", gw]);
    const v6 = (n: string) => sh("ip", ["netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"]);
    for (const n of [cli, gw, srv]) v6(n);
    ns(cli, "addr", "add", "10.80.1.2/24", "dev", "cli0");
    ns(cli, "-6", "addr", "add", "fd80:1::2/64", "dev", "cli0", "nodad");
    ns(gw, "addr", "add", "10.80.1.1/24", "dev", "gwc0");
    ns(gw, "-6", "addr", "add", "fd80:1::1/64", "dev", "gwc0", "nodad");
    ns(gw, "addr", "add", "10.80.2.1/24", "dev", "gws0");
    ns(gw, "-6", "addr", "add", "fd80:2::1/64", "dev", "gws0", "nodad");
    ns(srv, "addr", "add", "10.80.2.2/24", "dev", "srv0");
    ns(srv, "-6", "addr", "add", "fd80:2::2/64", "dev", "srv0", "nodad");
    for (const [n, dev] of [[cli, "cli0"], [gw, "gwc0"], [gw, "gws0"], [srv, "srv0"]] as const) ns(n, "link", "set", dev, "up");
    ns(cli, "route", "add", "10.80.2.0/24", "via", "10.80.1.1");
    ns(cli, "-6", "route", "add", "fd80:2::/64", "via", "fd80:1::1");
    ns(srv, "route", "add", "10.80.1.0/24", "via", "10.80.2.1");
    ns(srv, "-6", "route", "add", "fd80:1::/64", "via", "fd80:2::1");
    sh("ip", ["netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    cli, gw, srv,
    cli4: "10.80.1.2", srv4: "10.80.2.2", cli6: "fd80:1::2", srv6: "fd80:2::2",
    gwWan: "gws0",
    exec: (n, cmd, args, timeoutMs = 10000) => sh("ip", ["netns", "exec", n, cmd, ...args], timeoutMs),
    spawn(n, cmd, args) {
      const c = spawn("ip", ["netns", "exec", n, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      children.push(c);
      return c;
    },
    destroy,
  };
}
