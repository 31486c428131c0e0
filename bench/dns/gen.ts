// The DNS bench's data, generated deterministically (seeded) into a scratch directory:
//   a blocklist of BLOCK_N distinct names shaped like real tracker/ad names
//     (`<word><n>.<word>.<tld>`, a quarter with one more label in front: `<word>.<word><n>.<word>.<tld>`),
//     written once per format a server needs (the names and their order are the same in each);
//   a cached mix: CACHED_N allowed names (`<word>-<n>.<word>.<tld>`: the hyphen keeps them off the
//     blocklist by construction), each with an A and an AAAA line, shuffled -- the local stub
//     upstream answers them, the servers cache them during the warm-up pass;
//   a blocked mix: BLOCKED_N names sampled without repetition from the whole blocklist, A and AAAA,
//     shuffled.
// Query files are in dnsperf's input format (`name TYPE` per line).

import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { Rng } from "../lib/rng.js";

const WORDS = [
  "ads", "adserver", "analytics", "beacon", "click", "cloud", "collect", "counter", "data", "delivery",
  "edge", "event", "feed", "grid", "hit", "img", "insight", "lead", "log", "market", "media", "metric",
  "mobile", "net", "open", "pixel", "pop", "promo", "pulse", "push", "rank", "reach", "report", "serve",
  "smart", "spot", "stat", "stream", "sync", "tag", "target", "track", "traffic", "trend", "view",
  "visit", "web", "widget", "zone", "banner", "bid", "cdn", "content", "cookie", "crm", "deal", "direct",
  "engage", "fast", "flow", "global", "hub", "link", "live", "mail", "max", "mega", "metrics", "native",
  "offer", "page", "partner", "pay", "play", "prime", "pro", "quick", "radar", "rtb", "sense", "shop",
  "signal", "site", "social", "star", "static", "survey", "swift", "telemetry", "tracker", "union",
  "user", "video", "vista", "wave", "world", "yield", "zen", "alpha", "apex", "atlas", "axis", "blue",
];
const TLDS = ["com", "net", "org", "io", "info", "biz", "co", "de", "ru", "xyz", "top", "online", "site", "co.uk", "com.br", "fr", "pl", "in", "cn", "jp"];

export interface DnsData {
  dir: string;
  /** One name per line. */
  plainFile: string;
  /** `0.0.0.0 name` per line (StevenBlack-style hosts). */
  hostsFile: string;
  /** `0.0.0.0 name` and `:: name` per name: dnsmasq answers both A and AAAA from it. */
  hosts46File: string;
  /** `address=/name/#` per name (a dnsmasq conf-file): 0.0.0.0 and :: for the name and its subdomains. */
  addressConf: string;
  /** dnsperf inputs. */
  cachedQueries: string;
  blockedQueries: string;
  /** Names a probe checks: the last on the list (loaded when this one is), one early, allowed ones. */
  lastBlocked: string;
  firstBlocked: string;
  someBlocked: string[];
  someAllowed: string[];
  blockCount: number;
  cachedNames: number;
  cachedLines: number;
  blockedLines: number;
}

class Out {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly ws: WriteStream) {}
  async line(s: string): Promise<void> {
    this.parts.push(s);
    this.size += s.length + 1;
    if (this.size >= 1 << 20) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join("\n") + "\n";
    this.parts = [];
    this.size = 0;
    if (!this.ws.write(chunk)) await new Promise<void>((r) => this.ws.once("drain", () => r()));
  }
  async close(): Promise<void> {
    await this.flush();
    await new Promise<void>((resolve, reject) => this.ws.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

function out(file: string): Out {
  return new Out(createWriteStream(file, { mode: 0o644 }));
}

/** The i-th blocklist name; distinct for distinct i (the first label carries words[i % W] and i / W). */
function blockName(i: number, rng: Rng): string {
  const w = WORDS.length;
  const core = `${WORDS[i % w]}${Math.floor(i / w)}.${rng.pick(WORDS)}.${rng.pick(TLDS)}`;
  return rng.int(4) === 0 ? `${rng.pick(WORDS)}.${core}` : core;
}

function shuffle<T>(xs: T[], rng: Rng): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = t;
  }
}

export async function generate(dir: string, opts: { blockN: number; cachedN: number; blockedN: number; seed?: number }): Promise<DnsData> {
  const rng = new Rng(opts.seed ?? 6);
  const d: DnsData = {
    dir,
    plainFile: join(dir, "block-plain.txt"),
    hostsFile: join(dir, "block-hosts.txt"),
    hosts46File: join(dir, "block-hosts46.txt"),
    addressConf: join(dir, "block-address.conf"),
    cachedQueries: join(dir, "q-cached.txt"),
    blockedQueries: join(dir, "q-blocked.txt"),
    lastBlocked: "",
    firstBlocked: "",
    someBlocked: [],
    someAllowed: [],
    blockCount: opts.blockN,
    cachedNames: opts.cachedN,
    cachedLines: 0,
    blockedLines: 0,
  };
  // Which list positions the blocked mix samples: a partial Fisher-Yates over the indexes. The
  // last name is left out: the bench polls it to see when a list is loaded, and a server that
  // answered it from upstream before that must not carry that answer into the blocked mix.
  const pool = opts.blockN - 1;
  const want = Math.min(opts.blockedN, pool);
  const pick = new Uint32Array(pool);
  for (let i = 0; i < pool; i++) pick[i] = i;
  const chosen = new Set<number>();
  for (let k = 0; k < want; k++) {
    const j = k + rng.int(pool - k);
    const t = pick[k]!;
    pick[k] = pick[j]!;
    pick[j] = t;
    chosen.add(pick[k]!);
  }
  const blockedNames: string[] = [];

  const plain = out(d.plainFile);
  const hosts = out(d.hostsFile);
  const hosts46 = out(d.hosts46File);
  const addr = out(d.addressConf);
  await hosts.line("# sluice bench:dns blocklist (generated)");
  await hosts46.line("# sluice bench:dns blocklist, IPv4 and IPv6 null addresses (generated)");
  for (let i = 0; i < opts.blockN; i++) {
    const name = blockName(i, rng);
    if (i === 0) d.firstBlocked = name;
    if (i === opts.blockN - 1) d.lastBlocked = name;
    if (chosen.has(i)) blockedNames.push(name);
    await plain.line(name);
    await hosts.line(`0.0.0.0 ${name}`);
    await hosts46.line(`0.0.0.0 ${name}`);
    await hosts46.line(`:: ${name}`);
    await addr.line(`address=/${name}/#`);
  }
  await Promise.all([plain.close(), hosts.close(), hosts46.close(), addr.close()]);

  shuffle(blockedNames, rng);
  d.someBlocked = blockedNames.slice(0, 8);
  const bq: string[] = [];
  for (const n of blockedNames) bq.push(`${n} A`, `${n} AAAA`);
  shuffle(bq, rng);
  const b = out(d.blockedQueries);
  for (const l of bq) await b.line(l);
  await b.close();
  d.blockedLines = bq.length;

  const allowed: string[] = [];
  for (let i = 0; i < opts.cachedN; i++) allowed.push(`${rng.pick(WORDS)}-${i}.${rng.pick(WORDS)}.${rng.pick(TLDS)}`);
  d.someAllowed = allowed.slice(0, 8);
  const cq: string[] = [];
  for (const n of allowed) cq.push(`${n} A`, `${n} AAAA`);
  shuffle(cq, rng);
  const c = out(d.cachedQueries);
  for (const l of cq) await c.line(l);
  await c.close();
  d.cachedLines = cq.length;
  return d;
}

/** What the local stub upstream answers for a name: stable addresses derived from the name. */
export function stubAddresses(name: string): { a: string; aaaa: string } {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i) | 0x20;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const b = [(h >>> 24) & 0xff, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return {
    a: `198.18.${b[2]}.${b[3]}`,
    aaaa: `2001:db8:${((b[0]! << 8) | b[1]!).toString(16)}::${((b[2]! << 8) | b[3]!).toString(16)}`,
  };
}
