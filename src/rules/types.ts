// The parsed form of rules and profiles: what the text said, validated, before compilation.

/** What a profile does when none of its rules match. `ask` defers to the ruleset's fallback. */
export type DefaultAction = "allow" | "block" | "drop" | "ask";
export type RuleAction = "allow" | "block";

/** An address: IPv4 as its 32-bit value, IPv6 as 32 lower-case hex digits (fixed width, so
 * string order is address order, and no BigInt is needed on the compile path). */
export type AddrValue = number | string;

export type Entity =
  | { kind: "any" }
  | { kind: "ip" | "cidr"; version: 4 | 6; addr: AddrValue; prefix: number }
  | { kind: "domain" | "subdomains" | "tree"; name: string };

export interface Rule {
  /** The profile the rule belongs to. */
  profile: string;
  /** 1-based line in the text it came from: every verdict names it. */
  line: number;
  text: string;
  action: RuleAction;
  entity: Entity;
  /** IP protocol number, 0 = any. */
  proto: number;
  hasPort: boolean;
  portLo: number;
  portHi: number;
}

/** `text` is the address as written, so the API can show and rewrite a profile. */
export type Source =
  | { kind: "ip" | "cidr"; version: 4 | 6; addr: AddrValue; prefix: number; line: number; text: string }
  | { kind: "mac"; mac: Uint8Array; line: number; text: string };

export interface Profile {
  name: string;
  defaultAction: DefaultAction;
  sources: Source[];
  rules: Rule[];
  line: number;
}

export interface Ruleset {
  /** The first profile is the default one: it covers every source no other profile claims. */
  profiles: Profile[];
  /** What `ask` (and an unmatched packet of an `ask` profile) resolves to. */
  fallback: Exclude<DefaultAction, "ask">;
}
