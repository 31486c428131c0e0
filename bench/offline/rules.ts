// Synthetic rule sets of a given size: half domain rules (exact, `*.`, `.`), half CIDR / IP rules
// (IPv4 and IPv6, prefix lengths as blocklists have them: many /24 and /32, some wide), spread
// over a default profile and a bound one, with a few port conditions.

import { Rng } from "../lib/rng.js";

export interface BenchRules {
  text: string;
  count: number;
  sample4: Uint8Array[];
  sample6: Uint8Array[];
  sampleNames: string[];
}

const TLDS = ["com", "net", "org", "io", "de", "co.uk", "fr", "ru", "cn", "info"];
// Prefix lengths as IP blocklists have them: mostly /24 and single hosts, a few wide networks.
const V4_LENGTHS = [12, 16, 20, 22, 24, 24, 24, 24, 28, 32, 32, 32, 32, 32];
const V6_LENGTHS = [32, 48, 48, 56, 64, 64, 64, 128, 128, 128];
const PORT_SPECS = ["", "", "", "", "TCP/443", "TCP/80", "UDP/53", "*/8000-8080"];
const SAMPLE_MAX = 4096;

function v4Prefix(rng: Rng, len: number): string {
  const a = [1 + rng.int(222), rng.int(256), rng.int(256), rng.int(256)];
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const v = ((((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0) & mask) >>> 0;
  const s = `${v >>> 24}.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`;
  return len === 32 ? s : `${s}/${len}`;
}

function v6Prefix(rng: Rng, len: number): string {
  const groups: number[] = [0x2000 + rng.int(0x1000)];
  for (let i = 1; i < 8; i++) groups.push(rng.int(65536));
  for (let bit = len; bit < 128; bit++) groups[bit >> 4]! &= ~(1 << (15 - (bit & 15)));
  const s = groups.map((g) => g.toString(16)).join(":");
  return len === 128 ? s : `${s}/${len}`;
}

function toBytes(text: string): Uint8Array {
  const host = text.split("/")[0]!;
  if (host.includes(":")) {
    const g = host.split(":").map((x) => parseInt(x, 16));
    return Uint8Array.from(g.flatMap((x) => [x >> 8, x & 255]));
  }
  return Uint8Array.from(host.split(".").map(Number));
}

export function makeRules(count: number, seed = 11): BenchRules {
  const rng = new Rng(seed);
  const lines: string[] = ["fallback block"];
  const sample4: Uint8Array[] = [];
  const sample6: Uint8Array[] = [];
  const sampleNames: string[] = [];
  const profileSplit = Math.floor(count * 0.9);
  for (let i = 0; i < count; i++) {
    if (i === profileSplit) lines.push("[profile office]", "default allow", "source 192.168.1.128/25", "source fd00::1:0:0:0/80");
    const action = rng.chance(0.8) ? "-" : "+";
    const ports = rng.pick(PORT_SPECS);
    let entity: string;
    if (i % 2 === 0) {
      const base = `n${i.toString(36)}${rng.int(1000)}.${rng.pick(TLDS)}`;
      const form = rng.int(3);
      entity = form === 0 ? base : form === 1 ? `*.${base}` : `.${base}`;
      if (sampleNames.length < SAMPLE_MAX) sampleNames.push(form === 1 ? `a.${base}` : base);
    } else if (rng.chance(0.6)) {
      entity = v4Prefix(rng, rng.pick(V4_LENGTHS));
      if (sample4.length < SAMPLE_MAX) sample4.push(toBytes(entity));
    } else {
      entity = v6Prefix(rng, rng.pick(V6_LENGTHS));
      if (sample6.length < SAMPLE_MAX) sample6.push(toBytes(entity));
    }
    lines.push(`${action} ${entity}${ports ? " " + ports : ""}`);
  }
  return { text: lines.join("\n") + "\n", count, sample4, sample6, sampleNames };
}
