// npm run demo: a LAN client, sluice as its gateway, and a server on the other side, in network
// namespaces made for the demo; allowed and blocked traffic, explained as it happens. Cleans up
// after itself (namespaces, processes, rules), also on Ctrl-C.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createTopology } from "./netns.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SERVER = join(ROOT, "scripts", "lab", "server.mjs");
const CLIENT = join(ROOT, "scripts", "lab", "client.mjs");

const RULES = `# demo rules (line numbers appear in the explanations below)
- 10.80.2.2 TCP/8080          # line 2: block one port of the server
- ads.example                 # line 3: block a domain, by TLS SNI or HTTP Host
- *.tracker.example           # line 4: block every subdomain of another
+ *                           # line 5: allow the rest
`;

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    say("npm run demo needs root: it creates network namespaces and binds NFQUEUE.");
    return 1;
  }
  const t = createTopology("demo");
  let gwLog = "";
  const stop = () => {
    t.destroy();
  };
  process.on("SIGINT", () => {
    stop();
    process.exit(130);
  });
  try {
    const data = mkdtempSync(join(tmpdir(), "sluice-demo-"));
    writeFileSync(join(data, "config.json"), JSON.stringify({ wanInterfaces: [t.gwWan], health: { host: "127.0.0.1", port: 0 }, queues: { count: 2 } }));
    writeFileSync(join(data, "sluice.rules"), RULES);
    say(`Topology: client ${t.cli4} / ${t.cli6}  --  sluice gateway  --  server ${t.srv4} / ${t.srv6}`);
    say(`Rules (${join(data, "sluice.rules")}):\n${RULES}`);
    const srv = t.spawn(t.srv, process.execPath, [SERVER]);
    await new Promise<void>((r) => srv.stdout!.once("data", () => r()));
    const gw = t.spawn(t.gw, process.execPath, [CLI, "run", "--data", data]);
    gw.stdout!.on("data", (d: Buffer) => (gwLog += d));
    gw.stderr!.on("data", (d: Buffer) => (gwLog += d));
    for (let i = 0; i < 150 && !/health on/.test(gwLog); i++) await new Promise((r) => setTimeout(r, 100));
    if (!/health on/.test(gwLog)) throw new Error(`sluice did not start:\n${gwLog}`);
    say(gwLog.trim() + "\n");
    const probe = (label: string, expect: string, ...args: string[]) => {
      const r = JSON.parse(t.exec(t.cli, process.execPath, [CLIENT, ...args], 20000)) as { ok: boolean; error?: string; status?: number };
      const got = r.ok ? `passed${r.status ? ` (HTTP ${r.status})` : ""}` : `stopped (${r.error})`;
      say(`  ${label.padEnd(52)} ${got.padEnd(28)} expected: ${expect}`);
    };
    say("Traffic from the client:");
    probe(`HTTP to ${t.srv4}:80, Host: www.example`, "passes (line 5)", "http", t.srv4, "80", "www.example");
    probe(`HTTP to ${t.srv4}:8080`, "TCP reset (line 2)", "http", t.srv4, "8080", "www.example");
    probe(`HTTPS to ${t.srv4}:443, SNI ads.example`, "TCP reset (line 3)", "tls", t.srv4, "443", "ads.example");
    probe(`HTTPS to ${t.srv4}:443, SNI news.example`, "passes (line 5)", "tls", t.srv4, "443", "news.example");
    probe(`HTTP to [${t.srv6}]:80, Host: px.tracker.example`, "TCP reset (line 4)", "http", t.srv6, "80", "px.tracker.example");
    probe(`UDP to ${t.srv4}:9999`, "passes (line 5)", "udp", t.srv4, "9999");
    const port = /health on http:\/\/127\.0\.0\.1:(\d+)/.exec(gwLog)![1];
    const h = JSON.parse(t.exec(t.gw, "curl", ["-s", `http://127.0.0.1:${port}/health`])) as { received: number };
    say(`\nsluice saw ${h.received} packets: only the first packets of each connection; the kernel kept the rest.`);
    gw.kill("SIGTERM");
    await new Promise((r) => gw.once("exit", r));
    say(gwLog.trim().split("\n").slice(-2).join("\n"));
    return 0;
  } finally {
    stop();
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
