#!/usr/bin/env node
// The sluice command line. Settings come from flags or SLUICE_* environment variables.

import { readFileSync } from "node:fs";
import { parseRuleset } from "../rules/parse.js";
import { compileRuleset } from "../rules/image.js";
import { RuleSyntaxError, SluiceError } from "../core/errors.js";
import { Engine } from "../engine/engine.js";
import { readPcap } from "../tools/pcap.js";

const HELP = `sluice: network-wide firewall and monitor for Linux gateways

Usage: sluice <command> [arguments]

Commands:
  rules check FILE        Parse and compile a ruleset file; print its size or every problem
                          (line:column: message) and exit 1 if there is one.
  decode PCAP [RULES]     Decode every packet of a pcap file with the WASM core and print one
                          JSON line per packet; with a ruleset, also the verdict and the rule.
  help                    This text.

Environment:
  SLUICE_CORE=wasm|twin   Which build of the packet core to use (default wasm).
`;

const EXIT_USAGE = 2;
const EXIT_INVALID = 1;

function rulesCheck(file: string): number {
  const text = readFileSync(file, "utf8");
  try {
    const t0 = performance.now();
    const image = compileRuleset(parseRuleset(text, file));
    const ms = performance.now() - t0;
    const s = image.stats;
    process.stdout.write(
      `${file}: ok: ${s.rules} rules in ${s.profiles} profile(s), ${s.domainEntries} domain entries, ` +
        `${s.intervals4 + s.intervals6} address intervals, image ${s.bytes} bytes, compiled in ${ms.toFixed(1)} ms\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof RuleSyntaxError) {
      for (const p of err.problems) {
        const where = p.profile ? ` [profile ${p.profile}]` : "";
        process.stderr.write(`${file}:${p.line}:${p.column}: ${p.message} (expected ${p.expected})${where}\n`);
      }
      return EXIT_INVALID;
    }
    if (err instanceof SluiceError) {
      process.stderr.write(`${file}: ${err.message}\n`);
      return EXIT_INVALID;
    }
    throw err;
  }
}

function decode(pcap: string, rulesFile: string | undefined): number {
  const engine = new Engine({ core: process.env.SLUICE_CORE === "twin" ? "twin" : "wasm" });
  const image = rulesFile ? compileRuleset(parseRuleset(readFileSync(rulesFile, "utf8"), rulesFile)) : null;
  if (image) engine.loadImage(image);
  for (const p of readPcap(pcap)) {
    if (image) {
      const v = engine.evaluate(p.data, { learnDns: true });
      const rule = v.rule === null ? null : image.rules[v.rule]!;
      process.stdout.write(JSON.stringify({ frame: p.frame, ...v.packet, verdict: v.verdict, profile: image.profiles[v.profile], rule }) + "\n");
    } else {
      process.stdout.write(JSON.stringify({ frame: p.frame, ...engine.decode(p.data) }) + "\n");
    }
  }
  return 0;
}

function main(argv: string[]): number {
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    process.stdout.write(HELP);
    return cmd === undefined ? EXIT_USAGE : 0;
  }
  if (cmd === "rules" && sub === "check" && rest.length === 1) return rulesCheck(rest[0]!);
  if (cmd === "decode" && sub !== undefined && rest.length <= 1) return decode(sub, rest[0]);
  process.stderr.write(`sluice: unknown command "${argv.join(" ")}"\n\n${HELP}`);
  return EXIT_USAGE;
}

process.exitCode = main(process.argv.slice(2));
