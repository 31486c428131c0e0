// Ruleset -> one binary rule image that the WASM matcher reads in place (layout.ts describes
// every byte). Profiles keep their rule order through global rule ids: ids are handed out in
// profile order, line order, so "first match wins" is "lowest matching id wins".
//
// Sections, in order: header | profiles | rules | lists | name pool | domain slots | tables.

import * as L from "../../assembly/shared/layout.js";
import * as E from "../../assembly/shared/events.js";
import { RuleCompileError } from "../core/errors.js";
import { formatIP } from "../core/ip.js";
import { domainHash, filterBit } from "./hash.js";
import { buildIntervals, prefixRange, type Intervals, type Prefix } from "./intervals.js";
import type { DefaultAction, Profile, Rule, Ruleset } from "./types.js";

const V4_BITS = 32;
const V6_BITS = 128;
/** Domain slots are at most half full, so probe sequences stay short and always end. */
const DOMAIN_LOAD_INV = 2;
const DOMAIN_MIN_SLOTS = 16;
const WORD = 4;
const CACHE_LINE = 64;
/** Suffix filter bits per domain entry: about 1 in 8 probes of absent suffixes get through. */
const FILTER_BITS_PER_ENTRY = 8;
const FILTER_MIN_BITS = 4096;

const VERDICT_OF: Record<Exclude<DefaultAction, "ask">, number> = {
  allow: E.VERDICT_ACCEPT,
  block: E.VERDICT_BLOCK,
  drop: E.VERDICT_DROP,
};

const KIND_OF: Record<Rule["entity"]["kind"], number> = {
  any: E.RK_ANY,
  ip: E.RK_IP,
  cidr: E.RK_CIDR,
  domain: E.RK_DOMAIN,
  subdomains: E.RK_SUBDOMAINS,
  tree: E.RK_DOMAIN_TREE,
};

/** A growable little-endian byte buffer. */
class Buf {
  bytes = new Uint8Array(1 << 16);
  view = new DataView(this.bytes.buffer);
  length = 0;
  /** Reserves n bytes (zeroed), aligned to 4; returns their offset. */
  reserve(n: number): number {
    const off = (this.length + 3) & ~3;
    const need = off + n;
    if (need > this.bytes.length) {
      let cap = this.bytes.length;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.bytes.subarray(0, this.length));
      this.bytes = next;
      this.view = new DataView(next.buffer);
    }
    this.length = need;
    return off;
  }
  u32(off: number, v: number): void {
    this.view.setUint32(off, v >>> 0, true);
  }
  u16(off: number, v: number): void {
    this.view.setUint16(off, v, true);
  }
  u8(off: number, v: number): void {
    this.bytes[off] = v;
  }
}

/** Rule lists, deduplicated; offsets relative to the lists section (0 is the empty list). */
class ListPool {
  readonly buf = new Buf();
  private readonly seen = new Map<string, number>();
  constructor() {
    this.add([]);
  }
  add(ids: number[]): number {
    const key = ids.join(",");
    const hit = this.seen.get(key);
    if (hit !== undefined) return hit;
    const off = this.buf.reserve(WORD * (1 + ids.length));
    this.buf.u32(off + L.LIST_COUNT, ids.length);
    ids.forEach((id, i) => this.buf.u32(off + L.LIST_IDS + i * WORD, id));
    this.seen.set(key, off);
    return off;
  }
}

export interface CompiledImage {
  bytes: Uint8Array;
  /** Global rule id -> where it came from, to explain verdicts. */
  rules: { profile: string; line: number; text: string }[];
  profiles: string[];
  stats: { rules: number; profiles: number; domainEntries: number; intervals4: number; intervals6: number; bytes: number };
}

/** Merges two ascending id lists and cuts after the first rule that always matches. */
function mergeIds(a: number[], b: number[], unconditional: (id: number) => boolean): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!;
    if (out.length > 0 && out[out.length - 1] === next) continue;
    out.push(next);
    if (unconditional(next)) break;
  }
  return out;
}

interface DomainEntry {
  profile: number;
  name: string;
  self: number[];
  sub: number[];
}

export function compileRuleset(ruleset: Ruleset): CompiledImage {
  const profiles = ruleset.profiles;
  if (profiles.length === 0) throw new RuleCompileError("a ruleset needs at least one profile");
  if (profiles.length > 0xffff) throw new RuleCompileError("too many profiles (max 65535)");
  const fallback = VERDICT_OF[ruleset.fallback];

  // Global rule ids in profile order.
  const ruleRefs: CompiledImage["rules"] = [];
  const all: { rule: Rule; profile: number }[] = [];
  profiles.forEach((p, pi) => {
    for (const rule of p.rules) {
      all.push({ rule, profile: pi });
      ruleRefs.push({ profile: p.name, line: rule.line, text: rule.text });
    }
  });
  const unconditional = (id: number) => {
    const r = all[id]!.rule;
    return r.proto === 0 && !r.hasPort;
  };

  const lists = new ListPool();
  const domains = new Map<string, DomainEntry>();
  const tables: { v4: Intervals | null; v6: Intervals | null; ndomain: number }[] = [];
  let id = 0;
  for (let pi = 0; pi < profiles.length; pi++) {
    const p = profiles[pi]!;
    const byPrefix = new Map<string, Prefix<number[]> & { version: 4 | 6 }>();
    let ndomain = 0;
    const addPrefix = (version: 4 | 6, addr: Uint8Array, length: number, rid: number) => {
      const key = `${version}|${length}|${formatIP(version, addr)}`;
      let e = byPrefix.get(key);
      if (!e) {
        e = { ...prefixRange(addr, length), length, payload: [], version };
        byPrefix.set(key, e);
      }
      e.payload.push(rid);
    };
    for (const rule of p.rules) {
      const rid = id++;
      const ent = rule.entity;
      if (ent.kind === "any") {
        addPrefix(4, new Uint8Array(4), 0, rid);
        addPrefix(6, new Uint8Array(16), 0, rid);
      } else if (ent.kind === "ip" || ent.kind === "cidr") {
        addPrefix(ent.version, ent.addr, ent.prefix, rid);
      } else if ("name" in ent) {
        ndomain++;
        const key = `${pi}|${ent.name}`;
        let d = domains.get(key);
        if (!d) {
          d = { profile: pi, name: ent.name, self: [], sub: [] };
          domains.set(key, d);
        }
        if (ent.kind === "domain" || ent.kind === "tree") d.self.push(rid);
        if (ent.kind === "subdomains" || ent.kind === "tree") d.sub.push(rid);
      }
    }
    const ruleTable = (version: 4 | 6): Intervals | null => {
      const prefixes = [...byPrefix.values()].filter((e) => e.version === version);
      if (prefixes.length === 0) return null;
      return buildIntervals<number[], { ids: number[]; list: number }>(
        prefixes,
        version === 4 ? V4_BITS : V6_BITS,
        0,
        (parent, pre) => {
          const ids = mergeIds(parent ? parent.ids : [], pre.payload, unconditional);
          return { ids, list: lists.add(ids) };
        },
        (s) => s.list,
      );
    };
    tables.push({ v4: ruleTable(4), v6: ruleTable(6), ndomain });
  }

  // Source bindings: the longest bound prefix decides; the same prefix in two profiles is an error.
  const bindings = new Map<string, Prefix<number> & { version: 4 | 6; line: number }>();
  const macs = new Map<string, { mac: Uint8Array; profile: number; line: number }>();
  profiles.forEach((p: Profile, pi) => {
    for (const s of p.sources) {
      if (s.kind === "mac") {
        const key = Array.from(s.mac).join(":");
        const prev = macs.get(key);
        if (prev && prev.profile !== pi) {
          throw new RuleCompileError(`MAC source on line ${s.line} is already bound to profile "${profiles[prev.profile]!.name}" (line ${prev.line})`, { line: s.line });
        }
        macs.set(key, { mac: s.mac, profile: pi, line: s.line });
        continue;
      }
      const key = `${s.version}|${s.prefix}|${formatIP(s.version, s.addr)}`;
      const prev = bindings.get(key);
      if (prev && prev.payload !== pi) {
        throw new RuleCompileError(`source on line ${s.line} is already bound to profile "${profiles[prev.payload]!.name}" (line ${prev.line})`, { line: s.line });
      }
      bindings.set(key, { ...prefixRange(s.addr, s.prefix), length: s.prefix, payload: pi, version: s.version, line: s.line });
    }
  });
  const bindTable = (version: 4 | 6): Intervals | null => {
    const prefixes = [...bindings.values()].filter((b) => b.version === version);
    if (prefixes.length === 0) return null;
    return buildIntervals<number, number>(prefixes, version === 4 ? V4_BITS : V6_BITS, 0, (_parent, pre) => pre.payload + 1, (s) => s);
  };
  const bind4 = bindTable(4);
  const bind6 = bindTable(6);

  // Layout.
  const img = new Buf();
  img.reserve(L.IMG_HDR_SIZE);
  const profOff = img.reserve(L.PROF_SIZE * profiles.length);
  const rulesOff = img.reserve(L.RULE_SIZE * all.length);
  all.forEach(({ rule, profile }, rid) => {
    const r = rulesOff + rid * L.RULE_SIZE;
    img.u8(r + L.RULE_VERDICT, rule.action === "allow" ? E.VERDICT_ACCEPT : E.VERDICT_BLOCK);
    img.u8(r + L.RULE_PROTO, rule.proto);
    img.u8(r + L.RULE_FLAGS, rule.hasPort ? L.RF_HAS_PORT : 0);
    img.u8(r + L.RULE_KIND, KIND_OF[rule.entity.kind]);
    img.u16(r + L.RULE_PORTLO, rule.portLo);
    img.u16(r + L.RULE_PORTHI, rule.portHi);
    img.u32(r + L.RULE_PROFILE, profile);
    img.u32(r + L.RULE_LINE, rule.line);
  });
  // Every list must exist before the lists section is copied: register the domain lists now.
  const entries = [...domains.values()];
  const domainLists = entries.map((d) => ({ self: lists.add(d.self), sub: lists.add(d.sub) }));
  const listsOff = img.reserve(lists.buf.length);
  img.bytes.set(lists.buf.bytes.subarray(0, lists.buf.length), listsOff);

  const encoder = new TextEncoder();
  const names = entries.map((d) => encoder.encode(d.name));
  const poolOff = img.reserve(names.reduce((n, b) => n + b.length, 0));
  let slotCount = DOMAIN_MIN_SLOTS;
  while (slotCount < entries.length * DOMAIN_LOAD_INV) slotCount *= 2;
  const slotsOff = img.reserve(slotCount * L.DOM_SLOT_SIZE);
  let filterBits = FILTER_MIN_BITS;
  while (filterBits < entries.length * FILTER_BITS_PER_ENTRY) filterBits *= 2;
  const filterOff = img.reserve(filterBits / 8);
  let poolPos = poolOff;
  entries.forEach((d, i) => {
    const name = names[i]!;
    img.bytes.set(name, poolPos);
    const h = domainHash(d.profile, name);
    const bit = filterBit(h) & (filterBits - 1);
    img.u8(filterOff + (bit >>> 3), img.bytes[filterOff + (bit >>> 3)]! | (1 << (bit & 7)));
    let s = h & (slotCount - 1);
    while (img.view.getUint32(slotsOff + s * L.DOM_SLOT_SIZE + L.DOM_HASH, true) !== 0) s = (s + 1) & (slotCount - 1);
    const e = slotsOff + s * L.DOM_SLOT_SIZE;
    img.u32(e + L.DOM_HASH, h);
    img.u16(e + L.DOM_PROFILE, d.profile);
    img.u16(e + L.DOM_NAMELEN, name.length);
    img.u32(e + L.DOM_NAMEOFF, poolPos);
    img.u32(e + L.DOM_LIST_SELF, listsOff + domainLists[i]!.self);
    img.u32(e + L.DOM_LIST_SUB, listsOff + domainLists[i]!.sub);
    poolPos += name.length;
  });

  const writeTable = (t: Intervals | null, bits: number, valueBase: number): number => {
    if (!t) return 0;
    const n = t.starts.length;
    const v6 = bits === V6_BITS;
    const entryShift = v6 ? L.IT6_ENTRY_SHIFT : L.IT4_ENTRY_SHIFT;
    const valueRel = v6 ? L.IT6_VALUE : L.IT4_VALUE;
    const wordsPerStart = bits / 32;
    const kbits = Math.max(0, Math.min(L.IT_MAX_KBITS, Math.floor(Math.log2(Math.max(n, 1))) - L.IT_BUCKET_SHIFT));
    const buckets = 1 << kbits;
    const indexBytes = kbits > 0 ? (buckets + 1) * WORD : 0;
    // Entries start on a cache line so an IPv6 entry never straddles two.
    const entriesRel = (L.IT_INDEX + indexBytes + CACHE_LINE - 1) & ~(CACHE_LINE - 1);
    const off = img.reserve(entriesRel + (n << entryShift) + CACHE_LINE);
    const base = (off + CACHE_LINE - 1) & ~(CACHE_LINE - 1);
    img.u32(base + L.IT_COUNT, n);
    img.u32(base + L.IT_KBITS, kbits);
    img.u32(base + L.IT_ENTRIES, entriesRel);
    const mask32 = 0xffffffffn;
    for (let i = 0; i < n; i++) {
      const s = t.starts[i]!;
      const e = base + entriesRel + (i << entryShift);
      for (let w = 0; w < wordsPerStart; w++) {
        img.u32(e + w * WORD, Number((s >> BigInt(32 * (wordsPerStart - 1 - w))) & mask32));
      }
      img.u32(e + valueRel, t.values[i]! + valueBase);
    }
    if (kbits > 0) {
      const shift = BigInt(bits - kbits);
      let j = 0;
      for (let b = 0; b < buckets; b++) {
        const bucketStart = BigInt(b) << shift;
        while (j + 1 < n && t.starts[j + 1]! <= bucketStart) j++;
        img.u32(base + L.IT_INDEX + b * WORD, j);
      }
      img.u32(base + L.IT_INDEX + buckets * WORD, n - 1);
    }
    return base;
  };

  tables.forEach((t, pi) => {
    const p = profOff + pi * L.PROF_SIZE;
    const def = profiles[pi]!.defaultAction;
    img.u8(p + L.PROF_DEFAULT, def === "ask" ? fallback : VERDICT_OF[def]);
    img.u32(p + L.PROF_V4, writeTable(t.v4, V4_BITS, listsOff));
    img.u32(p + L.PROF_V6, writeTable(t.v6, V6_BITS, listsOff));
    img.u32(p + L.PROF_NDOMAIN, t.ndomain);
  });
  const bind4Off = writeTable(bind4, V4_BITS, 0);
  const bind6Off = writeTable(bind6, V6_BITS, 0);

  const macList = [...macs.values()].sort((a, b) => {
    for (let i = 0; i < 6; i++) if (a.mac[i] !== b.mac[i]) return a.mac[i]! - b.mac[i]!;
    return 0;
  });
  const macsOff = macList.length > 0 ? img.reserve(macList.length * L.MAC_SIZE) : 0;
  macList.forEach((m, i) => {
    const e = macsOff + i * L.MAC_SIZE;
    const dv = new DataView(m.mac.buffer, m.mac.byteOffset, 6);
    img.u32(e + L.MAC_HI, dv.getUint32(0));
    img.u16(e + L.MAC_LO, dv.getUint16(4));
    img.u16(e + L.MAC_PROFILE, m.profile);
  });

  img.u32(L.IMG_MAGIC, L.IMG_MAGIC_VALUE);
  img.u32(L.IMG_VERSION, L.IMG_FORMAT);
  img.u32(L.IMG_SIZE, img.length);
  img.u32(L.IMG_NPROFILES, profiles.length);
  img.u32(L.IMG_PROFILES, profOff);
  img.u32(L.IMG_NRULES, all.length);
  img.u32(L.IMG_RULES, rulesOff);
  img.u32(L.IMG_DOM_MASK, slotCount - 1);
  img.u32(L.IMG_DOM_SLOTS, slotsOff);
  img.u32(L.IMG_BIND4, bind4Off);
  img.u32(L.IMG_BIND6, bind6Off);
  img.u32(L.IMG_NMACS, macList.length);
  img.u32(L.IMG_MACS, macsOff);
  img.u32(L.IMG_DEFAULT_PROFILE, 0);
  img.u32(L.IMG_POOL, poolOff);
  img.u32(L.IMG_DOM_FILTER, filterOff);
  img.u32(L.IMG_DOM_FILTER_MASK, filterBits - 1);

  const bytes = img.bytes.slice(0, img.length);
  return {
    bytes,
    rules: ruleRefs,
    profiles: profiles.map((p) => p.name),
    stats: {
      rules: all.length,
      profiles: profiles.length,
      domainEntries: entries.length,
      intervals4: tables.reduce((n, t) => n + (t.v4?.starts.length ?? 0), 0),
      intervals6: tables.reduce((n, t) => n + (t.v6?.starts.length ?? 0), 0),
      bytes: img.length,
    },
  };
}
