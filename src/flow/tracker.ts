// Live connections: the workers' flow events (new, updated, ended) and the kernel's conntrack
// DESTROY events (the end and final counters of fast-tracked connections) merged into one
// ConnRecord per connection. Every change goes to the listeners (the history writer, the
// WebSocket `network:` database); ended connections stay visible in the live view for a while,
// as Portmaster keeps them, then leave it. Runs on the main thread; never touches a packet.

import * as L from "../../assembly/shared/layout.js";
import * as E from "../../assembly/shared/events.js";
import type { FlowEvent } from "./ring.js";
import type { ConnRecord } from "./types.js";

/** Ended connections stay in the live view this long (Portmaster: 10 minutes). */
export const KEEP_ENDED_MS = 10 * 60_000;
const MATCHED_BY = ["default", "ip", "domain", "ipdom"];
const END_REASONS: Record<number, string> = { [L.EVR_CLOSED]: "closed", [L.EVR_TIMEOUT]: "timeout", [L.EVR_EVICTED]: "evicted" };
const ENCRYPTED_PORTS = new Set([22, 443, 465, 853, 993, 995]);
const MS = 1000;

/** What the kernel reports when it forgets a connection (see conntrack-events.ts). */
export interface KernelEnd {
  proto: number;
  orig: { src: string; dst: string; sport?: number; dport?: number; packets?: number; bytes?: number };
  reply: { packets?: number; bytes?: number };
  icmpId?: number;
  /** ms, when the kernel timestamps flows. */
  stop?: number;
}

/** `first`: the connection's first record; `removed`: it left the live view. */
export type Change = { rec: ConnRecord; first: boolean; removed: boolean };

export class ConnectionTracker {
  /** Keyed by `<worker>-<id>`. */
  private readonly live = new Map<string, ConnRecord>();
  /** Initiator 5-tuple -> key, for kernel ends. */
  private readonly byTuple = new Map<string, string>();
  private readonly listeners: ((c: Change) => void)[] = [];
  readonly counters = { events: 0, started: 0, ended: 0, kernelEnds: 0, kernelUnmatched: 0, blocked: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(private readonly profileName: (index: number) => string) {}

  onChange(f: (c: Change) => void): void {
    this.listeners.push(f);
  }

  get size(): number {
    return this.live.size;
  }

  values(): IterableIterator<ConnRecord> {
    return this.live.values();
  }

  get(id: string): ConnRecord | undefined {
    return this.live.get(id);
  }

  /** One event from a worker's ring. */
  onFlow(e: FlowEvent): void {
    this.counters.events++;
    const key = `${e.worker}-${e.id}`;
    if (e.type === L.EVT_NEW) return this.start(key, e);
    const rec = this.live.get(key);
    if (!rec) return; // its NEW was dropped on a full ring, or it already left the live view
    if (e.type === L.EVT_UPDATE) {
      this.decide(rec, e);
      this.count(rec, e.inbound, e.packetsOut, e.bytesOut, e.packetsIn, e.bytesIn);
      if (e.name && !rec.domain) rec.domain = `${e.name}.`;
      this.emit(rec);
      return;
    }
    if (e.type === L.EVT_END && rec.ended === null) {
      this.count(rec, e.inbound, e.packetsOut, e.bytesOut, e.packetsIn, e.bytesIn);
      this.end(rec, e.last * MS, END_REASONS[e.reason] ?? "closed");
    }
  }

  /** A conntrack DESTROY: the end and the totals of a connection the kernel carried. */
  onKernelEnd(k: KernelEnd, now = Date.now()): boolean {
    const tuple = tupleKey(k.proto, k.orig.src, k.orig.sport ?? k.icmpId ?? 0, k.orig.dst, k.orig.dport ?? k.icmpId ?? 0);
    const key = this.byTuple.get(tuple);
    const rec = key === undefined ? undefined : this.live.get(key);
    if (!rec || rec.ended !== null) {
      this.counters.kernelUnmatched++;
      return false;
    }
    this.counters.kernelEnds++;
    const inbound = rec.direction === "inbound";
    this.count(rec, inbound, k.orig.packets ?? 0, k.orig.bytes ?? 0, k.reply.packets ?? 0, k.reply.bytes ?? 0);
    this.end(rec, k.stop ?? now, "conntrack");
    return true;
  }

  /** Drops ended connections older than KEEP_ENDED_MS from the live view. */
  expire(now = Date.now()): number {
    let n = 0;
    for (const [key, rec] of this.live) {
      if (rec.ended !== null && now - rec.ended > KEEP_ENDED_MS) {
        this.live.delete(key);
        this.byTuple.delete(tupleOf(rec));
        for (const f of this.listeners) f({ rec, first: false, removed: true });
        n++;
      }
    }
    return n;
  }

  /** Ends every active connection (sluice stops: it can no longer follow them). */
  endAll(reason: string, now = Date.now()): void {
    for (const rec of this.live.values()) if (rec.ended === null) this.end(rec, now, reason);
  }

  private start(key: string, e: FlowEvent): void {
    const inbound = e.inbound;
    const local = inbound ? e.dst : e.src;
    const remote = inbound ? e.src : e.dst;
    const rec: ConnRecord = {
      id: `${e.worker}-${e.id}-${e.first * MS}`,
      profile: "",
      profile_name: "",
      type: "ip",
      ip_version: e.ipVersion,
      ip_protocol: e.proto,
      local_ip: local,
      local_port: inbound ? e.dport : e.sport,
      remote_ip: remote,
      remote_port: inbound ? e.sport : e.dport,
      domain: e.name ? `${e.name}.` : "",
      scope: scopeOf(remote),
      verdict: E.VERDICT_UNDECIDED,
      started: e.first * MS,
      ended: null,
      active: true,
      direction: inbound ? "inbound" : "outbound",
      encrypted: ENCRYPTED_PORTS.has(e.dport), // the responder's (service) port
      internal: false,
      tunneled: false,
      external: scopeOf(remote) === SCOPE_GLOBAL,
      allowed: null,
      bytes_sent: 0,
      bytes_received: 0,
      packets_sent: 0,
      packets_received: 0,
      device_ip: local,
      device_mac: e.mac,
      rule_line: 0,
      matched_by: "default",
      end_reason: null,
      extra_data: {},
    };
    if (e.proto === E.IPP_ICMP || e.proto === E.IPP_ICMPV6) rec.local_port = rec.remote_port = 0;
    this.decide(rec, e);
    this.count(rec, inbound, e.packetsOut, e.bytesOut, e.packetsIn, e.bytesIn);
    // A worker restart hands out ids again from 1: an older record under the key is replaced.
    const old = this.live.get(key);
    if (old) this.byTuple.delete(tupleOf(old));
    this.live.set(key, rec);
    this.byTuple.set(tupleKey(e.proto, e.src, e.sport, e.dst, e.dport), key);
    this.counters.started++;
    this.emit(rec, true);
  }

  private decide(rec: ConnRecord, e: FlowEvent): void {
    const provisional = (e.flags & E.PF_PROVISIONAL) !== 0;
    const name = this.profileName(e.profile);
    rec.profile = `local/${name}`;
    rec.profile_name = name;
    const wasBlocked = rec.verdict === E.VERDICT_BLOCK || rec.verdict === E.VERDICT_DROP;
    rec.verdict = e.verdict;
    rec.allowed = provisional ? null : e.verdict === E.VERDICT_ACCEPT;
    if (!wasBlocked && (e.verdict === E.VERDICT_BLOCK || e.verdict === E.VERDICT_DROP)) this.counters.blocked++;
    rec.rule_line = e.line;
    rec.matched_by = MATCHED_BY[e.matchedBy] ?? "default";
    rec.extra_data = { reason: { rule_line: e.line, matched_by: rec.matched_by, profile: rec.profile } };
  }

  /** Counters in the initiator's terms -> the device's (sent = from the local side). */
  private count(rec: ConnRecord, inbound: boolean, pOut: number, bOut: number, pIn: number, bIn: number): void {
    const sent = inbound ? bIn : bOut;
    const received = inbound ? bOut : bIn;
    // Totals only grow: a kernel end carries the whole connection, a worker's view a prefix.
    if (sent > rec.bytes_sent) {
      this.counters.bytesSent += sent - rec.bytes_sent;
      rec.bytes_sent = sent;
    }
    if (received > rec.bytes_received) {
      this.counters.bytesReceived += received - rec.bytes_received;
      rec.bytes_received = received;
    }
    rec.packets_sent = Math.max(rec.packets_sent, inbound ? pIn : pOut);
    rec.packets_received = Math.max(rec.packets_received, inbound ? pOut : pIn);
  }

  private end(rec: ConnRecord, at: number, reason: string): void {
    rec.ended = Math.max(at, rec.started);
    rec.active = false;
    rec.end_reason = reason;
    this.counters.ended++;
    this.byTuple.delete(tupleOf(rec));
    this.emit(rec);
  }

  private emit(rec: ConnRecord, first = false): void {
    for (const f of this.listeners) f({ rec, first, removed: false });
  }
}

function tupleKey(proto: number, src: string, sport: number, dst: string, dport: number): string {
  return `${proto}|${src}|${sport}|${dst}|${dport}`;
}

/** The initiator tuple of a record (ICMP keys carry the echo id, which records do not keep). */
function tupleOf(rec: ConnRecord): string {
  const inbound = rec.direction === "inbound";
  const src = inbound ? rec.remote_ip : rec.local_ip;
  const dst = inbound ? rec.local_ip : rec.remote_ip;
  const sport = inbound ? rec.remote_port : rec.local_port;
  const dport = inbound ? rec.local_port : rec.remote_port;
  return tupleKey(rec.ip_protocol, src, sport, dst, dport);
}

const SCOPE_HOST = 1;
const SCOPE_LINK = 2;
const SCOPE_SITE = 3;
const SCOPE_GLOBAL = 4;
const SCOPE_LOCAL_MULTICAST = 5;
const SCOPE_GLOBAL_MULTICAST = 6;

/** Portmaster's IPScope of an address. */
export function scopeOf(ip: string): number {
  if (ip.includes(":")) {
    const l = ip.toLowerCase();
    if (l === "::1") return SCOPE_HOST;
    if (l.startsWith("fe8") || l.startsWith("fe9") || l.startsWith("fea") || l.startsWith("feb")) return SCOPE_LINK;
    if (l.startsWith("fc") || l.startsWith("fd")) return SCOPE_SITE;
    if (l.startsWith("ff0") && (l[3] === "2" || l[3] === "1")) return SCOPE_LOCAL_MULTICAST;
    if (l.startsWith("ff")) return SCOPE_GLOBAL_MULTICAST;
    return SCOPE_GLOBAL;
  }
  const [a, b] = ip.split(".").map(Number) as [number, number];
  if (a === 127) return SCOPE_HOST;
  if (a === 169 && b === 254) return SCOPE_LINK;
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127)) return SCOPE_SITE;
  if (a === 224) return SCOPE_LOCAL_MULTICAST;
  if (a >= 225 && a <= 239) return SCOPE_GLOBAL_MULTICAST;
  return SCOPE_GLOBAL;
}
