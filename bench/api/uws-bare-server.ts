// The ceiling for the ping case of npm run bench:api: the same uWebSockets.js binary sluice
// loads (src/api/uws.ts), answering every request with "Pong.\n" and sluice's security headers
// and nothing else -- no routing, no header reads, no per-request objects. What sluice reaches
// against this shows its own per-request cost; what this reaches shows what the machine allows.
// Prints {"ready":true,"port":N,"pid":N}; exits on SIGTERM/SIGINT or when stdin closes.

import { uws } from "../../src/api/uws.js";
import { SECURITY_HEADERS, CSP } from "../../src/api/server.js";

const HEADERS: [string, string][] = [...SECURITY_HEADERS, ["Content-Security-Policy", CSP], ["Content-Type", "text/plain; charset=utf-8"]];

const { uws: u, info } = uws();
const app = u.App();
app.any("/*", (res) => {
  res.cork(() => {
    res.writeStatus("200 OK");
    for (const [k, v] of HEADERS) res.writeHeader(k, v);
    res.end("Pong.\n");
  });
});

const exit = () => process.exit(0);
process.on("SIGTERM", exit);
process.on("SIGINT", exit);
process.stdin.on("end", exit);
process.stdin.on("error", exit);
process.stdin.resume();

app.listen("127.0.0.1", 0, (sock) => {
  if (!sock) {
    process.stderr.write("uws-bare: cannot listen\n");
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ ready: true, port: u.us_socket_local_port(sock as never), pid: process.pid, uws: info }) + "\n");
});
