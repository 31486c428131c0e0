// Rule text -> validated rules. The rule language is Portmaster's endpoint list:
//
//   + example.com            allow a domain           - 10.0.0.0/8 TCP/80      block a CIDR, one port
//   - *.ads.example          block its subdomains     + .example.org UDP/53    domain and subdomains
//   + 2001:db8::/32 */*      any protocol, any port   - * TCP/8000-8080        everything, a port range
//
// A ruleset file groups rules into profiles bound to traffic sources:
//
//   fallback block                   (what `ask` resolves to; default: block)
//   [profile kids]
//   default block                    (allow | block | drop | ask; default: allow)
//   source 192.168.1.64/26           (IP, CIDR or MAC address of the devices it covers)
//   + .wikipedia.org
//
// Lines before the first [profile] belong to the profile "default", which covers every source
// no other profile claims. Every problem is reported with line, column and what was expected;
// a valid rule is never dropped.

import { RuleSyntaxError, type RuleProblem } from "../core/errors.js";
import { parseIPv4Number, parseIPv6, parseMAC, bytesToHex } from "../core/ip.js";
import type { AddrValue, DefaultAction, Entity, Profile, Rule, RuleAction, Ruleset, Source } from "./types.js";

const PROTOCOLS: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  icmp6: 58,
  sctp: 132,
  udplite: 136,
  "udp-lite": 136,
};
/** Protocols with ports; a port condition on any other protocol could never match. */
const PORT_PROTOCOLS = new Set([6, 17, 132, 136]);
const PORT_MAX = 65535;
const PROTO_MAX = 255;
const DOMAIN_MAX = 253;
const LABEL_MAX = 63;
const PROFILE_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const ENTITY_HELP = "a domain (example.com, *.example.com, .example.com), an IP, a CIDR or *";
const DEFAULT_PROFILE = "default";

const ACTION_WORDS: Record<string, DefaultAction> = {
  allow: "allow",
  permit: "allow",
  accept: "allow",
  block: "block",
  deny: "block",
  reject: "block",
  drop: "drop",
  ask: "ask",
};

interface Token {
  text: string;
  column: number;
}

const CH_SPACE = 32;
const CH_TAB = 9;

function tokens(line: string): Token[] {
  const out: Token[] = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    let c = line.charCodeAt(i);
    if (c === CH_SPACE || c === CH_TAB || c === 13) {
      i++;
      continue;
    }
    const start = i;
    do {
      c = line.charCodeAt(++i);
    } while (i < n && c !== CH_SPACE && c !== CH_TAB && c !== 13);
    out.push({ text: line.slice(start, i), column: start + 1 });
  }
  return out;
}

/** The line without its comment (`#` to the end of the line). */
function stripComment(line: string): string {
  const i = line.indexOf("#");
  return i < 0 ? line : line.slice(0, i);
}

class Problems {
  readonly list: RuleProblem[] = [];
  profile: string | undefined;
  add(line: number, column: number, message: string, expected: string): void {
    const p: RuleProblem = { line, column, message, expected };
    if (this.profile !== undefined) p.profile = this.profile;
    this.list.push(p);
  }
}

/** Parses an address or prefix: `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`. */
export function parseAddress(text: string): { version: 4 | 6; addr: AddrValue; prefix: number; cidr: boolean } | string {
  const slash = text.indexOf("/");
  const host = slash < 0 ? text : text.slice(0, slash);
  let version: 4 | 6 = 4;
  let addr: AddrValue = parseIPv4Number(host);
  if (addr < 0) {
    const v6 = parseIPv6(host);
    if (!v6) return `"${host}" is not an IP address`;
    version = 6;
    addr = bytesToHex(v6);
  }
  const bits = version === 4 ? 32 : 128;
  if (slash < 0) return { version, addr, prefix: bits, cidr: false };
  const ptext = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(ptext) || Number(ptext) > bits) {
    return `prefix length "${ptext}" must be 0-${bits}`;
  }
  const prefix = Number(ptext);
  // Host bits set under the mask are almost always a typo for a different network: refuse them.
  if (hasHostBits(addr, prefix)) return `${text} has host bits set beyond /${prefix}`;
  return { version, addr, prefix, cidr: true };
}

function hasHostBits(addr: AddrValue, prefix: number): boolean {
  if (typeof addr === "number") return prefix < 32 && addr % 2 ** (32 - prefix) !== 0;
  const nib = prefix >> 2;
  if (prefix & 3 && parseInt(addr[nib]!, 16) & ((1 << (4 - (prefix & 3))) - 1)) return true;
  for (let i = nib + ((prefix & 3) === 0 ? 0 : 1); i < 32; i++) if (addr[i] !== "0") return true;
  return false;
}

const CH_DOT = 46;
const CH_DASH = 45;
const CH_UNDERSCORE = 95;
const CH_STAR = 42;

function isLabelChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === CH_DASH || c === CH_UNDERSCORE;
}

/** Validates a domain (lower-cased, trailing dot removed); returns an error message or null. */
function domainProblem(name: string): string | null {
  if (name.length === 0) return "empty domain";
  if (name.length > DOMAIN_MAX) return `domain longer than ${DOMAIN_MAX} characters`;
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : CH_DOT;
    if (c === CH_DOT) {
      const len = i - start;
      if (len === 0) return "empty label (two dots in a row)";
      if (len > LABEL_MAX) return `label "${name.slice(start, start + 16)}..." longer than ${LABEL_MAX} characters`;
      if (name.charCodeAt(start) === CH_DASH || name.charCodeAt(i - 1) === CH_DASH) {
        return `label "${name.slice(start, i)}" starts or ends with a hyphen`;
      }
      start = i + 1;
      continue;
    }
    if (isLabelChar(c)) continue;
    if (c > 0x7e || c < 0x21) return "non-ASCII domain: write it in punycode (xn--...)";
    if (c === CH_STAR) return "`*` is only allowed as a leading `*.` label or alone";
    return `label "${name.slice(start, name.indexOf(".", start) < 0 ? undefined : name.indexOf(".", start))}" has characters a host name cannot have`;
  }
  return null;
}

function parseEntity(tok: Token, lineNo: number, problems: Problems): Entity | null {
  const t = tok.text;
  if (t === "*") return { kind: "any" };
  const looksIP = /^[0-9a-fA-F:.]+(\/\d+)?$/.test(t) && (t.includes(":") || /^[0-9.]*[0-9][0-9.]*(\/\d+)?$/.test(t));
  if (looksIP || t.includes("/")) {
    const a = parseAddress(t);
    if (typeof a === "string") {
      problems.add(lineNo, tok.column, a, ENTITY_HELP);
      return null;
    }
    return { kind: a.cidr ? "cidr" : "ip", version: a.version, addr: a.addr, prefix: a.prefix };
  }
  let name = t.toLowerCase();
  let kind: "domain" | "subdomains" | "tree" = "domain";
  if (name.startsWith("*.")) {
    kind = "subdomains";
    name = name.slice(2);
  } else if (name.startsWith(".")) {
    kind = "tree";
    name = name.slice(1);
  }
  if (name.endsWith(".")) name = name.slice(0, -1);
  const why = domainProblem(name);
  if (why) {
    problems.add(lineNo, tok.column, why, ENTITY_HELP);
    return null;
  }
  return { kind, name };
}

function parsePortSpec(tok: Token, lineNo: number, problems: Problems): Pick<Rule, "proto" | "hasPort" | "portLo" | "portHi"> | null {
  const expected = "<protocol>/<port>, <protocol>/<port>-<port> or */* (protocol: TCP, UDP, SCTP, UDP-Lite, ICMP, ICMPv6, * or 1-255)";
  const [ptext, porttext, extra] = tok.text.split("/");
  if (extra !== undefined || ptext === undefined || ptext === "") {
    problems.add(lineNo, tok.column, `"${tok.text}" is not a protocol/port`, expected);
    return null;
  }
  let proto = 0;
  if (ptext !== "*") {
    const named = PROTOCOLS[ptext.toLowerCase()];
    if (named !== undefined) proto = named;
    else if (/^[1-9][0-9]{0,2}$/.test(ptext) && Number(ptext) <= PROTO_MAX) proto = Number(ptext);
    else {
      problems.add(lineNo, tok.column, `unknown protocol "${ptext}"`, expected);
      return null;
    }
  }
  if (porttext === undefined || porttext === "*") return { proto, hasPort: false, portLo: 0, portHi: PORT_MAX };
  const portColumn = tok.column + ptext.length + 1;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(porttext);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo > PORT_MAX || hi > PORT_MAX) {
    problems.add(lineNo, portColumn, `"${porttext}" is not a port or port range`, "a port 0-65535, a range like 8000-8080, or *");
    return null;
  }
  if (lo > hi) {
    problems.add(lineNo, portColumn, `port range ${lo}-${hi} is reversed`, `${hi}-${lo}`);
    return null;
  }
  if (proto !== 0 && !PORT_PROTOCOLS.has(proto)) {
    problems.add(lineNo, portColumn, `protocol ${ptext} has no ports`, `${ptext} or ${ptext}/*`);
    return null;
  }
  return { proto, hasPort: true, portLo: lo, portHi: hi };
}

function parseRuleTokens(toks: Token[], lineNo: number, text: string, problems: Problems): Rule | null {
  const first = toks[0]!;
  let action: RuleAction;
  let rest = toks.slice(1);
  // `+example.com` (no space) is accepted as well as `+ example.com`.
  if (first.text === "+" || first.text === "-") {
    action = first.text === "+" ? "allow" : "block";
  } else if ((first.text[0] === "+" || first.text[0] === "-") && first.text.length > 1) {
    action = first.text[0] === "+" ? "allow" : "block";
    rest = [{ text: first.text.slice(1), column: first.column + 1 }, ...rest];
  } else {
    problems.add(lineNo, first.column, `a rule starts with + or -, not "${first.text}"`, "+ (allow) or - (block)");
    return null;
  }
  const entityTok = rest[0];
  if (!entityTok) {
    problems.add(lineNo, first.column + first.text.length, "missing entity after the action", ENTITY_HELP);
    return null;
  }
  const entity = parseEntity(entityTok, lineNo, problems);
  let ports: Pick<Rule, "proto" | "hasPort" | "portLo" | "portHi"> | null = { proto: 0, hasPort: false, portLo: 0, portHi: PORT_MAX };
  if (rest[1]) ports = parsePortSpec(rest[1], lineNo, problems);
  if (rest[2]) {
    problems.add(lineNo, rest[2].column, `unexpected "${rest[2].text}" after the port`, "end of line or # comment");
    return null;
  }
  if (!entity || !ports) return null;
  return { profile: problems.profile ?? DEFAULT_PROFILE, line: lineNo, text, action, entity, ...ports };
}

/**
 * Parses one profile's endpoint list (one rule per line). `firstLine` numbers the first line,
 * so errors point into a larger document. Throws RuleSyntaxError listing every problem.
 */
export function parseRules(text: string, options: { firstLine?: number; profile?: string } = {}): Rule[] {
  const problems = new Problems();
  problems.profile = options.profile;
  const rules: Rule[] = [];
  const lines = text.split(/\r?\n/);
  const base = options.firstLine ?? 1;
  lines.forEach((raw, i) => {
    const toks = tokens(stripComment(raw));
    if (toks.length === 0) return;
    const rule = parseRuleTokens(toks, base + i, stripComment(raw).trim(), problems);
    if (rule) rules.push(rule);
  });
  if (problems.list.length > 0) throw new RuleSyntaxError(problems.list);
  return rules;
}

function newProfile(name: string, line: number): Profile {
  return { name, defaultAction: "allow", sources: [], rules: [], line };
}

/** Parses a ruleset file (profiles, their sources, defaults and rules). */
export function parseRuleset(text: string, source = "rules"): Ruleset {
  const problems = new Problems();
  const profiles: Profile[] = [newProfile(DEFAULT_PROFILE, 1)];
  const seen = new Map<string, number>([[DEFAULT_PROFILE, 1]]);
  let current = profiles[0]!;
  let fallback: Ruleset["fallback"] = "block";
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const body = stripComment(raw);
    const toks = tokens(body);
    if (toks.length === 0) return;
    const head = toks[0]!;
    if (head.text.startsWith("[")) {
      const m = /^\s*\[\s*profile\s+([^\]\s]+)\s*\]\s*$/d.exec(body);
      if (!m) {
        problems.add(lineNo, head.column, "malformed section header", "[profile <name>]");
        return;
      }
      const name = m[1]!;
      const nameColumn = m.indices![1]![0] + 1;
      if (!PROFILE_NAME_RE.test(name)) {
        problems.add(lineNo, nameColumn, `profile name "${name}" is not allowed`, "1-64 of A-Z a-z 0-9 _ . -");
        return;
      }
      const prev = seen.get(name);
      if (prev !== undefined && !(name === DEFAULT_PROFILE && profiles[0]!.rules.length === 0 && profiles[0]!.sources.length === 0 && prev === 1)) {
        problems.add(lineNo, nameColumn, `profile "${name}" is already defined on line ${prev}`, "a new profile name");
        return;
      }
      if (name === DEFAULT_PROFILE) {
        current = profiles[0]!;
        current.line = lineNo;
      } else {
        current = newProfile(name, lineNo);
        profiles.push(current);
      }
      seen.set(name, lineNo);
      problems.profile = name;
      return;
    }
    const word = head.text.toLowerCase();
    if (word === "default" || word === "fallback") {
      const arg = toks[1];
      const action = arg ? ACTION_WORDS[arg.text.toLowerCase()] : undefined;
      const allowed = word === "default" ? "allow, block, drop or ask" : "allow, block or drop";
      if (!arg || !action || (word === "fallback" && action === "ask")) {
        problems.add(lineNo, arg ? arg.column : head.column + head.text.length, `${word} needs an action`, allowed);
        return;
      }
      if (toks[2]) {
        problems.add(lineNo, toks[2].column, `unexpected "${toks[2].text}"`, "end of line");
        return;
      }
      if (word === "default") current.defaultAction = action;
      else fallback = action as Ruleset["fallback"];
      return;
    }
    if (word === "source") {
      const arg = toks[1];
      if (!arg || toks[2]) {
        const col = arg ? toks[2]!.column : head.column + head.text.length;
        problems.add(lineNo, col, "source takes exactly one address", "an IP, a CIDR or a MAC address");
        return;
      }
      if (current === profiles[0]) {
        problems.add(lineNo, head.column, "the default profile covers every unclaimed source; it takes no source lines", "a [profile <name>] section first");
        return;
      }
      const mac = parseMAC(arg.text);
      if (mac) {
        current.sources.push({ kind: "mac", mac, line: lineNo, text: arg.text });
        return;
      }
      const a = parseAddress(arg.text);
      if (typeof a === "string") {
        problems.add(lineNo, arg.column, a, "an IP, a CIDR or a MAC address");
        return;
      }
      const src: Source = { kind: a.cidr ? "cidr" : "ip", version: a.version, addr: a.addr, prefix: a.prefix, line: lineNo, text: arg.text };
      current.sources.push(src);
      return;
    }
    const rule = parseRuleTokens(toks, lineNo, body.trim(), problems);
    if (rule) current.rules.push(rule);
  });
  if (problems.list.length > 0) throw new RuleSyntaxError(problems.list, source);
  return { profiles, fallback };
}
