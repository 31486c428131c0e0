// A conntrack DESTROY event as the tracker needs it: the connection's initiator tuple, totals
// and when it really ended. The kernel's stop time for an entry that expired is the moment its
// last timeout ran out (a closed TCP connection: TIME_WAIT, 120 s, after its last packet), so
// that timeout is taken off again; an entry deleted early (sluice's rule reload, `conntrack -D`)
// still had time left and its stop time is right as it is.

import { readFileSync } from "node:fs";
import type { ConntrackDestroyEvent } from "./conntrack-events.js";
import type { KernelEnd } from "./tracker.js";

const SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_";
const IPP_TCP = 6;
const IPP_UDP = 17;
const IPP_ICMP = 1;
const IPP_ICMPV6 = 58;

/** The kernel's timeouts (s) by TCP state and protocol, read once. */
export function readTimeouts(): Record<string, number> {
  const t: Record<string, number> = {};
  for (const name of ["tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_close_wait", "tcp_timeout_fin_wait", "tcp_timeout_last_ack", "tcp_timeout_established", "udp_timeout", "udp_timeout_stream", "icmp_timeout", "icmpv6_timeout", "generic_timeout"]) {
    try {
      t[name] = Number(readFileSync(SYSCTL + name, "utf8").trim());
    } catch {
      /* absent on this kernel: no correction for it */
    }
  }
  return t;
}

function lingerOf(e: ConntrackDestroyEvent, t: Record<string, number>): number {
  if (e.proto === IPP_TCP) {
    const s = (e.state ?? "").toLowerCase();
    return t[`tcp_timeout_${s}`] ?? 0;
  }
  if (e.proto === IPP_UDP) return (e.status.includes("ASSURED") ? t.udp_timeout_stream : t.udp_timeout) ?? 0;
  if (e.proto === IPP_ICMP) return t.icmp_timeout ?? 0;
  if (e.proto === IPP_ICMPV6) return t.icmpv6_timeout ?? 0;
  return t.generic_timeout ?? 0;
}

export function kernelEndOf(e: ConntrackDestroyEvent, timeouts: Record<string, number>, now = Date.now()): KernelEnd {
  const stop = e.stop ?? now;
  // Expired (no time left): the last packet was one timeout before the stop.
  const expired = e.timeout === undefined || e.timeout <= 0;
  const ended = expired ? stop - lingerOf(e, timeouts) * 1000 : stop;
  // Echo flows are keyed by their identifier on both sides, as the worker keys them.
  const icmp = e.proto === IPP_ICMP || e.proto === IPP_ICMPV6;
  const sport = icmp ? (e.icmpId ?? 0) : e.orig.sport;
  const dport = icmp ? (e.icmpId ?? 0) : e.orig.dport;
  return {
    proto: e.proto,
    orig: { src: e.orig.src, dst: e.orig.dst, sport, dport, packets: e.orig.packets, bytes: e.orig.bytes },
    reply: { packets: e.reply.packets, bytes: e.reply.bytes },
    icmpId: e.icmpId,
    stop: e.start !== undefined ? Math.max(ended, e.start) : ended,
  };
}
