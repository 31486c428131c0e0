// Ruleset -> one binary rule image that the WASM matcher reads in place (layout.ts describes
// every byte). Profiles keep their rule order through global rule ids: ids are handed out in
// profile order, line order, so "first match wins" is "lowest matching id wins".
//
// Sections, in order: header | profiles | rules | lists | name pool | domain slots | tables.

import * as L from "../../assembly/shared/layout.js";
import * as E from "../../assembly/shared/events.js";
import { RuleCompileError } from "../core/errors.js";
import { domainHash, filterBit } from "./hash.js";
import { buildIntervals, prefixKey, sortedByKey, V4, V6, type Intervals, type Prefix, type Space } from "./intervals.js";
import type { AddrValue, DefaultAction, Profile, Rule, Ruleset } from "./types.js";

const V4_BITS = 32;
const V6_BITS = 128;
/** Domain slots are at most half full, so probe sequences stay short and always end. */
const DOMAIN_LOAD_INV = 2;
const DOMAIN_MIN_SLOTS = 16;
const WORD = 4;
/** PROF_FIRST_DOMAIN of a profile without domain rules: above every rule id. */
const NO_DOMAIN_RULE = E.NO_RULE;
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

/**
 * Rule lists; offsets relative to the lists section (0 is the empty list). Lists are not
 * deduplicated beyond the empty one: each is written once per prefix or domain entry anyway,
 * and keying a million lists costs more than the few megabytes they share.
 */
class ListPool {
  readonly buf = new Buf();
  constructor() {
    this.buf.reserve(WORD);
  }
  add(ids: number[]): number {
    if (ids.length === 0) return 0;
    const off = this.buf.reserve(WORD * (1 + ids.length));
    this.buf.u32(off + L.LIST_COUNT, ids.length);
    for (let i = 0; i < ids.length; i++) this.buf.u32(off + L.LIST_IDS + i * WORD, ids[i]!);
    return off;
  }
}

export interface CompiledImage {
  bytes: Uint8Array;
  /** Global rule id -> the rule (profile, line, text), to explain verdicts. */
  rules: Rule[];
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
  /** Rule ids for the name itself and for its subdomains; null until one exists (most have one side). */
  self: number[] | null;
  sub: number[] | null;
}

const NO_IDS: number[] = [];

const LOW_96_ZERO = "0".repeat(24);

/** start <= a bucket start, given as its top 32 bits (the bits below them are zero)? */
function startsAtOrBefore(start: AddrValue, bucketTop: number): boolean {
  if (typeof start === "number") return start <= bucketTop;
  const top = parseInt(start.slice(0, 8), 16);
  if (top !== bucketTop) return top < bucketTop;
  return start.slice(8) === LOW_96_ZERO;
}

export function compileRuleset(ruleset: Ruleset): CompiledImage {
  const profiles = ruleset.profiles;
  if (profiles.length === 0) throw new RuleCompileError("a ruleset needs at least one profile");
  if (profiles.length > 0xffff) throw new RuleCompileError("too many profiles (max 65535)");
  const fallback = VERDICT_OF[ruleset.fallback];

  // Global rule ids in profile order.
  const ruleRefs: Rule[] = [];
  const all: { rule: Rule; profile: number }[] = [];
  profiles.forEach((p, pi) => {
    for (const rule of p.rules) {
      all.push({ rule, profile: pi });
      ruleRefs.push(rule);
    }
  });
  const unconditional = (id: number) => {
    const r = all[id]!.rule;
    return r.proto === 0 && !r.hasPort;
  };

  const lists = new ListPool();
  const domains: DomainEntry[] = [];
  const tables: { v4: Intervals<number> | null; v6: Intervals<string> | null; ndomain: number; firstDomain: number }[] = [];
  let id = 0;
  for (let pi = 0; pi < profiles.length; pi++) {
    const p = profiles[pi]!;
    // Rules on the same prefix share one entry; keys are the prefix's start and length.
    const by4 = new Map<number, Prefix<number, number[]>>();
    const by6 = new Map<string, Prefix<string, number[]>>();
    let ndomain = 0;
    let firstDomain = NO_DOMAIN_RULE;
    const profileDomains = new Map<string, DomainEntry>();
    const addPrefix = (addr: AddrValue, length: number, rid: number) => {
      if (typeof addr === "number") {
        const key = prefixKey(addr, length) as number;
        let e = by4.get(key);
        if (!e) {
          const r = V4.range(addr, length);
          by4.set(key, (e = { start: r.start, end: r.end, length, payload: [] }));
        }
        e.payload.push(rid);
      } else {
        const key = prefixKey(addr, length) as string;
        let e = by6.get(key);
        if (!e) {
          const r = V6.range(addr, length);
          by6.set(key, (e = { start: r.start, end: r.end, length, payload: [] }));
        }
        e.payload.push(rid);
      }
    };
    for (const rule of p.rules) {
      const rid = id++;
      const ent = rule.entity;
      if (ent.kind === "any") {
        addPrefix(V4.zero, 0, rid);
        addPrefix(V6.zero, 0, rid);
      } else if (ent.kind === "ip" || ent.kind === "cidr") {
        addPrefix(ent.addr, ent.prefix, rid);
      } else if ("name" in ent) {
        ndomain++;
        if (firstDomain === NO_DOMAIN_RULE) firstDomain = rid;
        let d = profileDomains.get(ent.name);
        if (!d) {
          d = { profile: pi, name: ent.name, self: null, sub: null };
          profileDomains.set(ent.name, d);
          domains.push(d);
        }
        if (ent.kind === "domain" || ent.kind === "tree") (d.self ??= []).push(rid);
        if (ent.kind === "subdomains" || ent.kind === "tree") (d.sub ??= []).push(rid);
      }
    }
    const ruleTable = <K extends AddrValue>(space: Space<K>, prefixes: Prefix<K, number[]>[]): Intervals<K> | null => {
      if (prefixes.length === 0) return null;
      return buildIntervals<K, number[], { ids: number[]; list: number }>(
        space,
        prefixes,
        0,
        (parent, pre) => {
          // Most prefixes are not nested and carry one rule: their list is their payload.
          const ids = parent || pre.payload.length > 1 ? mergeIds(parent ? parent.ids : [], pre.payload, unconditional) : pre.payload;
          return { ids, list: lists.add(ids) };
        },
        (st) => st.list,
      );
    };
    tables.push({ v4: ruleTable(V4, sortedByKey(by4)), v6: ruleTable(V6, sortedByKey(by6)), ndomain, firstDomain });
  }

  // Source bindings: the longest bound prefix decides; the same prefix in two profiles is an error.
  const bindings = new Map<string, { version: 4 | 6; addr: AddrValue; length: number; profile: number; line: number }>();
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
      const key = `${s.version}|${s.prefix}|${s.addr}`;
      const prev = bindings.get(key);
      if (prev && prev.profile !== pi) {
        throw new RuleCompileError(`source on line ${s.line} is already bound to profile "${profiles[prev.profile]!.name}" (line ${prev.line})`, { line: s.line });
      }
      bindings.set(key, { version: s.version, addr: s.addr, length: s.prefix, profile: pi, line: s.line });
    }
  });
  const bindTable = <K extends AddrValue>(space: Space<K>, version: 4 | 6): Intervals<K> | null => {
    const byKey = new Map<number | string, Prefix<K, number>>();
    for (const b of bindings.values()) {
      if (b.version !== version) continue;
      byKey.set(prefixKey(b.addr, b.length), { ...space.range(b.addr as K, b.length), length: b.length, payload: b.profile });
    }
    if (byKey.size === 0) return null;
    const prefixes = sortedByKey(byKey as Map<string, Prefix<K, number>>);
    return buildIntervals<K, number, number>(space, prefixes, 0, (_parent, pre) => pre.payload + 1, (st) => st);
  };
  const bind4 = bindTable(V4, 4);
  const bind6 = bindTable(V6, 6);

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
  const entries = domains;
  const selfLists = new Uint32Array(entries.length);
  const subLists = new Uint32Array(entries.length);
  entries.forEach((d, i) => {
    selfLists[i] = lists.add(d.self ?? NO_IDS);
    subLists[i] = lists.add(d.sub ?? NO_IDS);
  });
  let poolBytes = 0;
  for (const d of entries) poolBytes += d.name.length; // validated ASCII: one byte per character
  const listsOff = img.reserve(lists.buf.length);
  img.bytes.set(lists.buf.bytes.subarray(0, lists.buf.length), listsOff);

  const poolOff = img.reserve(poolBytes);
  let slotCount = DOMAIN_MIN_SLOTS;
  while (slotCount < entries.length * DOMAIN_LOAD_INV) slotCount *= 2;
  const slotsOff = img.reserve(slotCount * L.DOM_SLOT_SIZE);
  let filterBits = FILTER_MIN_BITS;
  while (filterBits < entries.length * FILTER_BITS_PER_ENTRY) filterBits *= 2;
  const filterOff = img.reserve(filterBits / 8);
  let poolPos = poolOff;
  entries.forEach((d, i) => {
    const name = d.name;
    for (let c = 0; c < name.length; c++) img.bytes[poolPos + c] = name.charCodeAt(c);
    const h = domainHash(d.profile, img.bytes, poolPos, name.length);
    const bit = filterBit(h) & (filterBits - 1);
    img.u8(filterOff + (bit >>> 3), img.bytes[filterOff + (bit >>> 3)]! | (1 << (bit & 7)));
    let s = h & (slotCount - 1);
    while (img.view.getUint32(slotsOff + s * L.DOM_SLOT_SIZE + L.DOM_HASH, true) !== 0) s = (s + 1) & (slotCount - 1);
    const e = slotsOff + s * L.DOM_SLOT_SIZE;
    img.u32(e + L.DOM_HASH, h);
    img.u16(e + L.DOM_PROFILE, d.profile);
    img.u16(e + L.DOM_NAMELEN, name.length);
    img.u32(e + L.DOM_NAMEOFF, poolPos);
    img.u32(e + L.DOM_LIST_SELF, listsOff + selfLists[i]!);
    img.u32(e + L.DOM_LIST_SUB, listsOff + subLists[i]!);
    poolPos += name.length;
  });

  const writeTable = <K extends AddrValue>(t: Intervals<K> | null, bits: number, valueBase: number): number => {
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
    for (let i = 0; i < n; i++) {
      const s = t.starts[i]!;
      const e = base + entriesRel + (i << entryShift);
      if (typeof s === "number") img.u32(e, s);
      else for (let w = 0; w < wordsPerStart; w++) img.u32(e + w * WORD, parseInt(s.slice(w * 8, w * 8 + 8), 16));
      img.u32(e + valueRel, t.values[i]! + valueBase);
    }
    if (kbits > 0) {
      // Bucket b starts at b << (bits - kbits): compare through the top 32 bits, then the rest.
      const shift = 32 - kbits;
      let j = 0;
      for (let b = 0; b < buckets; b++) {
        const bucketTop = b * 2 ** shift;
        while (j + 1 < n && startsAtOrBefore(t.starts[j + 1]!, bucketTop)) j++;
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
    img.u32(p + L.PROF_FIRST_DOMAIN, t.firstDomain);
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
