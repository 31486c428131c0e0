// One-query-at-a-time DNS client the bench keeps running inside its client namespace: it is how
// the bench (which runs outside the namespaces) asks a server something, to see when a list is
// loaded, whether both servers answer alike, and whether the caches are warm.
//
// stdin: one JSON object per line {"id","server","port","name","type","timeoutMs"}; stdout: one per
// answer {"id","rcode","answers":[{"type","data","ttl"}],"ms"} or {"id","error"}. A line with
// "http": {"url","method","headers","body"} instead makes an HTTP request (sluice's API listens
// inside the server namespace) and answers {"id","status","text"}.

import { createSocket } from "node:dgram";
import { createInterface } from "node:readline";
import * as dnsPacket from "dns-packet";

interface Ask {
  id: number;
  http?: { url: string; method?: string; headers?: Record<string, string>; body?: string };
  server: string;
  port: number;
  name: string;
  type: "A" | "AAAA";
  timeoutMs?: number;
}

const sock = createSocket("udp4");
const pending = new Map<number, { ask: Ask; t0: number; timer: NodeJS.Timeout }>();
let nextQid = 1;

function reply(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + "\n");
}

sock.on("message", (msg) => {
  let p: dnsPacket.Packet;
  try {
    p = dnsPacket.decode(msg);
  } catch (err) {
    process.stderr.write(`probe: undecodable reply: ${(err as Error).message}\n`);
    return;
  }
  const w = p.id === undefined ? undefined : pending.get(p.id);
  if (!w) return;
  clearTimeout(w.timer);
  pending.delete(p.id!);
  const rcode = (p as unknown as { rcode?: string }).rcode ?? "NOERROR";
  reply({
    id: w.ask.id,
    rcode,
    answers: (p.answers ?? []).map((a) => ({ type: a.type, data: (a as { data?: unknown }).data, ttl: (a as { ttl?: number }).ttl })),
    ms: Math.round((performance.now() - w.t0) * 1000) / 1000,
  });
});

sock.bind(0, () => {
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (!line.trim()) return;
    const ask = JSON.parse(line) as Ask;
    if (ask.http) {
      const h = ask.http;
      fetch(h.url, { method: h.method ?? "GET", headers: h.headers, body: h.body, signal: AbortSignal.timeout(ask.timeoutMs ?? 10_000) })
        .then(async (r) => reply({ id: ask.id, status: r.status, text: await r.text() }))
        .catch((err: unknown) => reply({ id: ask.id, error: err instanceof Error ? err.message : String(err) }));
      return;
    }
    const qid = nextQid;
    nextQid = (nextQid % 65535) + 1;
    const buf = dnsPacket.encode({ type: "query", id: qid, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: ask.type, name: ask.name, class: "IN" }] });
    const timer = setTimeout(() => {
      pending.delete(qid);
      reply({ id: ask.id, error: "timeout" });
    }, ask.timeoutMs ?? 1000);
    pending.set(qid, { ask, t0: performance.now(), timer });
    sock.send(buf, ask.port, ask.server, (err) => {
      if (err) {
        clearTimeout(timer);
        pending.delete(qid);
        reply({ id: ask.id, error: err.message });
      }
    });
  });
  reply({ ready: true });
});
process.stdin.on("end", () => process.exit(0));
