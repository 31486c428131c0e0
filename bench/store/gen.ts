// Realistic connection records for the store benchmark: a home/office LAN behind the gateway.
// Traffic is skewed the way real traffic is (a few devices and a few domains make most
// connections, with a long tail of names seen once), because the skew is what decides index
// fan-out, rollup sizes and how far a search must scan; uniform data would flatter all three.

import type { ConnRecord } from "../../src/flow/types.js";
import { Rng, sampleRank, zipfTable } from "../lib/rng.js";

export const DEVICES = 150;
export const DOMAINS = 20_000;
/** Zipf exponent of domain and device popularity. */
const ZIPF_S = 1.05;
const WORDS = [
  "google", "apple", "netflix", "akamai", "cloudfront", "microsoft", "amazon", "facebook", "tiktok",
  "spotify", "github", "cdn", "api", "static", "img", "video", "mail", "update", "telemetry",
  "ads", "tracker", "metrics", "push", "time", "ocsp", "fonts", "news", "weather", "shop", "game",
];
const TLDS = ["com", "net", "org", "io", "de", "co.uk", "tv"];
const PROFILES = ["local/default", "local/kids", "local/iot", "local/guests", "local/work"];
const TRACKERISH = /ads|tracker|metrics|telemetry/;


export interface Universe {
  domains: string[];
  domainIps: string[][];
  devices: string[];
  deviceProfile: string[];
  domainCum: Float64Array;
  deviceCum: Float64Array;
}

export function makeUniverse(seed = 1): Universe {
  const rng = new Rng(seed);
  const domains: string[] = [];
  const domainIps: string[][] = [];
  for (let d = 0; d < DOMAINS; d++) {
    const w1 = rng.pick(WORDS);
    const w2 = rng.pick(WORDS);
    const name = d < 200 ? `${w1}.${w2}${d}.${rng.pick(TLDS)}.` : `${w1}-${d}.${w2}.${rng.pick(TLDS)}.`;
    domains.push(name);
    const ips: string[] = [];
    const n = 1 + rng.int(4);
    for (let k = 0; k < n; k++) {
      ips.push(
        rng.chance(0.2)
          ? `2a00:${(d % 0xffff).toString(16)}:${rng.int(0xffff).toString(16)}::${(k + 1).toString(16)}`
          : `${1 + rng.int(222)}.${rng.int(256)}.${rng.int(256)}.${1 + rng.int(254)}`,
      );
    }
    domainIps.push(ips);
  }
  const devices: string[] = [];
  const deviceProfile: string[] = [];
  for (let i = 0; i < DEVICES; i++) {
    devices.push(i < 130 ? `192.168.1.${i + 2}` : `fd00::${(i + 2).toString(16)}`);
    deviceProfile.push(PROFILES[i % PROFILES.length]!);
  }
  return { domains, domainIps, devices, deviceProfile, domainCum: zipfTable(DOMAINS, ZIPF_S), deviceCum: zipfTable(DEVICES, ZIPF_S) };
}

/** Generates connections in start order; each call to `next` makes one. */
export class ConnGen {
  private readonly rng: Rng;
  private seq = 0;

  constructor(
    private readonly u: Universe,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  private uniform(): number {
    return this.rng.u32() / 0x100000000;
  }

  /** A connection starting at `started`; ended (with final counters) unless `active`. */
  next(started: number, active: boolean): ConnRecord {
    const { u, rng } = this;
    const d = sampleRank(u.domainCum, this.uniform());
    const dev = sampleRank(u.deviceCum, this.uniform());
    const domain = u.domains[d]!;
    const device = u.devices[dev]!;
    const remote = u.domainIps[d]![rng.int(u.domainIps[d]!.length)]!;
    const v6 = remote.includes(":");
    const blocked = TRACKERISH.test(domain) ? rng.chance(0.6) : rng.chance(0.04);
    const verdict = blocked ? (rng.chance(0.8) ? 3 : 4) : 2;
    const udp = rng.chance(0.15);
    const port = udp ? rng.pick([443, 443, 53, 123, 3478]) : rng.pick([443, 443, 443, 443, 80, 993, 853, 5228]);
    const duration = 50 + Math.floor(Math.pow(this.uniform(), 3) * 600_000);
    const sent = blocked ? 0 : Math.floor(Math.exp(this.uniform() * 12));
    const recv = blocked ? 0 : Math.floor(Math.exp(this.uniform() * 16));
    const profile = u.deviceProfile[dev]!;
    const id = `${this.seq & 3}-${this.seq++}-${started}`;
    return {
      id,
      profile,
      profile_name: profile.slice(6),
      type: "ip",
      ip_version: v6 ? 6 : 4,
      ip_protocol: udp ? 17 : 6,
      local_ip: device,
      local_port: 32768 + rng.int(28000),
      remote_ip: remote,
      remote_port: port,
      domain,
      scope: 4,
      verdict,
      started,
      ended: active ? null : started + duration,
      active,
      direction: "outbound",
      encrypted: port === 443 || port === 853 || port === 993,
      internal: false,
      tunneled: false,
      external: true,
      allowed: !blocked,
      bytes_sent: active ? 0 : sent,
      bytes_received: active ? 0 : recv,
      packets_sent: active ? 1 : 1 + (sent >> 10),
      packets_received: active ? 0 : (recv >> 10),
      device_ip: device,
      device_mac: v6 ? null : `02:00:00:00:${(dev >> 8).toString(16).padStart(2, "0")}:${(dev & 255).toString(16).padStart(2, "0")}`,
      rule_line: blocked ? 1 + rng.int(40) : 0,
      matched_by: blocked ? "domain" : "default",
      end_reason: active ? null : "closed",
      extra_data: blocked ? { reason: { rule_line: 1, matched_by: "domain", profile } } : {},
    };
  }

  /** The end of a connection made by `next(…, true)`: final counters, same id and start. */
  end(r: ConnRecord): ConnRecord {
    const duration = 50 + Math.floor(Math.pow(this.uniform(), 3) * 600_000);
    const blocked = r.verdict !== 2;
    const sent = blocked ? 0 : Math.floor(Math.exp(this.uniform() * 12));
    const recv = blocked ? 0 : Math.floor(Math.exp(this.uniform() * 16));
    return {
      ...r,
      ended: r.started + duration,
      active: false,
      bytes_sent: sent,
      bytes_received: recv,
      packets_sent: 1 + (sent >> 10),
      packets_received: recv >> 10,
      end_reason: "closed",
    };
  }
}
