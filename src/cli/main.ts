#!/usr/bin/env node
// The sluice command line. Settings come from flags or SLUICE_* environment variables.

import { readFileSync } from "node:fs";
import { parseRuleset } from "../rules/parse.js";
import { compileRuleset } from "../rules/image.js";
import { RuleSyntaxError, SluiceError } from "../core/errors.js";
import { Engine } from "../engine/engine.js";
import { readPcap } from "../tools/pcap.js";
import { Gateway, type Logger } from "../gateway/gateway.js";
import { Control } from "../control/sluice.js";
import { Recorder } from "../control/recorder.js";
import { StatsHistory } from "../control/stats.js";
import { HistoryStore } from "../store/history.js";
import { join } from "node:path";
import { ConntrackEvents } from "../flow/conntrack-events.js";
import { kernelEndOf, readTimeouts } from "../flow/kernel-end.js";
import { defaultRouteInterfaces, hasNetAdmin } from "../gateway/netinfo.js";
import { isIP } from "node:net";
import type { GatewayConfig } from "../gateway/config.js";
import { DnsService } from "../dns/service.js";
import { installInterception, removeInterception } from "../gateway/dns-intercept.js";
import { startApi, type Api } from "../api/index.js";
import { clientCommand, CLIENT_HELP } from "./client.js";
import { removeFirewall } from "../gateway/firewall.js";

const HELP = `sluice: network-wide firewall and monitor for Linux gateways

Usage: sluice <command> [arguments]

Commands:
  run [--data DIR]        Run the gateway: bind the NFQUEUEs, hook sluice's chains into FORWARD,
                          decide every new routed connection, serve the API and dashboard on
                          127.0.0.1:817. Data (config.json, rules, tokens) in DIR (default ./data,
                          created on first run, which prints the admin token once and writes it
                          to DIR/admin.token). SIGHUP reloads the rules, SIGINT/SIGTERM stop and
                          remove every rule sluice installed; SIGUSR2 kills the queue workers as a
                          crash would (a drill). --no-capture: API and stores only (development).
                          --dev: dev mode for this run (loopback clients need no credentials).
  recover                 Remove sluice's firewall chains and hooks (after a crash; the systemd
                          unit runs it as ExecStopPost).
  rules check FILE        Parse and compile a ruleset file; print its size or every problem
                          (line:column: message) and exit 1 if there is one.
  decode PCAP [RULES]     Decode every packet of a pcap file with the WASM core and print one
                          JSON line per packet; with a ruleset, also the verdict and the rule.
  help                    This text.

${CLIENT_HELP}
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

const log: Logger = {
  info: (m) => process.stdout.write(`${new Date().toISOString()} ${m}\n`),
  warn: (m) => process.stderr.write(`${new Date().toISOString()} warning: ${m}\n`),
};

async function run(args: string[]): Promise<number> {
  let data = process.env.SLUICE_DATA ?? "./data";
  let capture = true;
  let dev = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--data" && args[i + 1]) data = args[++i]!;
    else if (args[i] === "--no-capture") capture = false;
    else if (args[i] === "--dev") dev = true;
    else {
      process.stderr.write(`sluice run: unknown argument "${args[i]}"\n`);
      return EXIT_USAGE;
    }
  }
  if (capture && !hasNetAdmin()) {
    process.stderr.write("sluice: sluice run needs CAP_NET_ADMIN to bind NFQUEUE and install firewall rules: run it as root (or use --no-capture)\n");
    return EXIT_INVALID;
  }
  let current: Control | null = null;
  process.on("SIGINT", () => current?.requestStop("shutdown"));
  process.on("SIGTERM", () => current?.requestStop("shutdown"));
  process.on("SIGUSR2", () => {
    log.warn("SIGUSR2: terminating the queue workers (crash drill); they restart");
    current?.gateway?.killWorkers();
  });
  process.on("SIGHUP", () => {
    current?.reloadRulesFile().catch((err: unknown) => log.warn(`reload failed, previous rules stay: ${err instanceof Error ? err.message : String(err)}`));
  });
  // core/restart stops everything and goes round again with the configuration on disk.
  for (;;) {
    let control: Control;
    let opened: Control | null = null;
    let api: Api | null = null;
    let dns: DnsService | null = null;
    try {
      control = Control.open(data, log);
      opened = control;
      current = control;
      api = await startApi(control, control.log, { devMode: dev });
      const a = control.config.api;
      if (capture) {
        const tracking = control.config.tracking.enabled;
        // Accounting first: only connections tracked after it is on carry byte counts.
        const kernel = tracking ? new ConntrackEvents({ markMask: control.config.marks.mask, logger: control.log }) : null;
        if (kernel) {
          const acct = await kernel.enableAccounting();
          for (const p of acct.problems) control.log.warn(`conntrack accounting: ${p}`);
        }
        control.gateway = await Gateway.start(control.config, control.rulesPath, control.log);
        if (kernel) {
          const rec = new Recorder(control.gateway, control.log);
          for (const f of control.connectionWatchers) rec.tracker.onChange(f);
          const timeouts = readTimeouts();
          control.history = openHistory(control);
          rec.start(control.history, { onDestroy: (f) => void kernel.onDestroy((e) => f(kernelEndOf(e, timeouts))), stop: () => kernel.stop() });
          void kernel.start();
          control.recorder = rec;
        }
      }
      else log.warn("--no-capture: no packet path; the API, the DNS resolver and the stores only");
      if (control.config.dns.enabled) {
        control.history ??= openHistory(control);
        dns = await startDns(control, capture);
      }
      if (control.config.history.enabled) {
        control.stats = new StatsHistory(control.dataDir);
        control.stats.start(control.config.history.statsIntervalS * 1000, () => control.currentStats());
      }
      control.state = "ready";
      log.info(`ready: API on http://${a.host.includes(":") ? `[${a.host}]` : a.host}:${api.port}/api/v1/ (dashboard at /, health at /health)`);
    } catch (err) {
      // Whatever started before the failure goes again: no resolver, interception or firewall
      // chains may outlive a start that did not finish.
      if (opened !== null) await stopServices(opened, dns, capture);
      api?.close();
      process.stderr.write(`sluice: ${err instanceof Error ? err.message : String(err)}\n`);
      return EXIT_INVALID;
    }
    const why = await control.stopped;
    control.state = "stopping";
    log.info(why === "restart" ? "restarting" : "stopping");
    if (!(await stopServices(control, dns, capture))) {
      log.warn('stop failed; run "sluice recover"');
      api.close();
      return EXIT_INVALID;
    }
    api.close();
    await control.stats?.close();
    await control.history?.close();
    log.info(control.gateway ? "stopped; firewall chains removed" : "stopped");
    if (why !== "restart") return 0;
  }
}

/**
 * Stops what run() started, each step on its own so one failure does not leave the rest
 * running. DNS interception goes first: LAN devices' DNS must not stay redirected to a resolver
 * that is going away. Returns false if a step failed (each failure is logged).
 */
async function stopServices(control: Control, dns: DnsService | null, capture: boolean): Promise<boolean> {
  let ok = true;
  const step = async (what: string, f: () => unknown): Promise<void> => {
    try {
      await f();
    } catch (err) {
      ok = false;
      control.log.warn(`stop: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (dns !== null) {
    if (capture && dnsInterception(control.config)) await step("removing DNS interception", () => removeInterception({ ipv6: control.config.ipv6 }));
    control.dns = null;
    await step("stopping the DNS resolver", () => dns.stop());
  }
  await step("stopping the connection recorder", () => control.recorder?.stop());
  await step("removing the firewall chains", () => control.gateway?.stop());
  return ok;
}

/** The history store (connections and the DNS query log), when history is on. */
function openHistory(control: Control): HistoryStore | null {
  if (!control.config.history.enabled) return null;
  const h = control.config.history;
  return HistoryStore.open({ path: join(control.dataDir, "history"), maxAgeDays: h.retentionDays, maxRecords: h.maxRecords });
}

function dnsInterception(c: GatewayConfig): boolean {
  const i = c.dns.interception;
  return c.dns.enabled && (i.redirect || i.blockDoT || i.blockDoH);
}

/**
 * Starts the resolver. A resolver that cannot bind (port 53 taken, say) is reported and left
 * out: the firewall keeps running, and the API says DNS is not running.
 */
async function startDns(control: Control, capture: boolean): Promise<DnsService | null> {
  const c = control.config;
  const wan = c.wanInterfaces.length > 0 ? c.wanInterfaces : await defaultRouteInterfaces();
  let svc: DnsService;
  try {
    svc = await DnsService.start({
      config: c.dns,
      dataDir: control.dataDir,
      log: control.log,
      ruleset: () => control.profiles.current,
      profileOf: (ip, mac) => control.profileFor(ip, mac),
      learn: (v, b, off, name, ttl) => void control.gateway?.engine.learnAddress(v, b, off, name, ttl),
      history: control.history,
      wanInterfaces: wan,
    });
  } catch (err) {
    control.log.warn(`dns: not started: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
  control.profiles.onChange(() => svc.rulesetChanged(control.profiles.current));
  control.options.onChange((key) => {
    if (key.startsWith("dns/")) svc.applyLive(control.config.dns);
  });
  control.dns = svc;
  if (capture && dnsInterception(c)) {
    const first = (v: 4 | 6) => svc.listening.find((a) => isIP(a) === v && !a.startsWith("127.") && a !== "::1") ?? null;
    try {
      await installInterception({ ...c.dns.interception, target: { 4: first(4), 6: first(6) }, port: svc.port, wanInterfaces: wan, ipv6: c.ipv6 });
      control.log.info("dns: interception on (rogue port 53 redirected, DoT/DoH refused as configured)");
    } catch (err) {
      control.log.warn(`dns: interception not installed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return svc;
}

async function recover(): Promise<number> {
  const removed = (await removeFirewall({ ipv6: true })) + (await removeInterception({ ipv6: true }));
  process.stdout.write(`sluice recover: ${removed} chain(s) and hook(s) removed\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "run") return run(argv.slice(1));
  const client = await clientCommand(argv);
  if (client !== null) return client;
  if (argv[0] === "recover" && argv.length === 1) return recover();
  return mainSync(argv);
}

function mainSync(argv: string[]): number {
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sluice: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT_INVALID;
  },
);
