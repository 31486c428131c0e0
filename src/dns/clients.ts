// Who is asking: one Client per source address, made on its first query and kept, so the hot
// path finds it with one Map lookup by number (IPv4) or by a hash of the four words (IPv6).
// A client carries what the resolver needs per query: its filter group (the ruleset profile it
// belongs to, by source address or MAC), whether blocking applies to it now (global state and
// its own pause), and whether it may use the resolver at all (LAN side only: never an open
// resolver for the WAN).

import { META_ADDR, META_FAMILY, META_INTS, addressText } from "./udp.js";
import type { Client } from "./resolver.js";
import type { ClientDirectory } from "./server.js";

export interface ClientRec extends Client {
  /** IPv6 words (for hash verification); all 0 for IPv4. */
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  /** Reply REFUSED to this client (outside the LAN). */
  refused: boolean;
}

/** Decides, for a new or re-evaluated client, its group, whether it is filtered and allowed. */
export interface ClientPolicy {
  groupOf(ip: string): number;
  filteringFor(ip: string): boolean;
  allowed(ip: string): boolean;
}

/** Clients remembered at most; beyond, the oldest are forgotten (a scan of spoofed sources must not grow memory). */
const MAX_CLIENTS = 65_536;

export class Clients implements ClientDirectory {
  private readonly v4 = new Map<number, ClientRec>();
  private readonly v6 = new Map<number, ClientRec[]>();
  private readonly byIp = new Map<string, ClientRec>();

  constructor(private readonly policy: ClientPolicy) {}

  byMeta(meta: Int32Array, row: number): ClientRec {
    const r = row * META_INTS;
    if (meta[r + META_FAMILY] === 4) {
      const a = meta[r + META_ADDR]! >>> 0;
      const c = this.v4.get(a);
      if (c !== undefined) return c;
      const made = this.make(addressText(meta, row), 0, 0, 0, 0);
      this.v4.set(a, made);
      return made;
    }
    const w0 = meta[r + META_ADDR]!;
    const w1 = meta[r + META_ADDR + 1]!;
    const w2 = meta[r + META_ADDR + 2]!;
    const w3 = meta[r + META_ADDR + 3]!;
    const h = Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w3, 0xc2b2ae35), 0x27d4eb2f) >>> 0;
    const list = this.v6.get(h);
    if (list !== undefined) {
      for (const c of list) if (c.w0 === w0 && c.w1 === w1 && c.w2 === w2 && c.w3 === w3) return c;
    }
    const made = this.make(addressText(meta, row), w0, w1, w2, w3);
    if (list !== undefined) list.push(made);
    else this.v6.set(h, [made]);
    return made;
  }

  byText(ip: string): ClientRec {
    const c = this.byIp.get(ip);
    return c ?? this.make(ip, 0, 0, 0, 0);
  }

  /** Re-evaluates every client's group and filtering (after a ruleset or blocking change). */
  refresh(): void {
    for (const c of this.byIp.values()) {
      c.group = this.policy.groupOf(c.ip);
      c.filtering = this.policy.filteringFor(c.ip);
      c.refused = !this.policy.allowed(c.ip);
    }
  }

  get size(): number {
    return this.byIp.size;
  }

  private make(ip: string, w0: number, w1: number, w2: number, w3: number): ClientRec {
    const known = this.byIp.get(ip);
    if (known !== undefined) return known;
    if (this.byIp.size >= MAX_CLIENTS) this.forgetAll();
    const c: ClientRec = {
      ip,
      group: this.policy.groupOf(ip),
      filtering: this.policy.filteringFor(ip),
      refused: !this.policy.allowed(ip),
      w0,
      w1,
      w2,
      w3,
    };
    this.byIp.set(ip, c);
    return c;
  }

  /** Forgets every client (they are re-made on their next query): simple and bounded. */
  private forgetAll(): void {
    this.v4.clear();
    this.v6.clear();
    this.byIp.clear();
  }
}
