// Turns the anchors' raw.tsv / latency.tsv of each engine into the JSON lines of bench:live:
// {"bench":"live","engine":"...","test":"tcp1|tcp4|udp64|conn|latency|cpu_per_pkt","value":x,"unit":"..."}
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.floor((s.length - 1) / 2)];
};
const table = (file) => {
  if (!existsSync(file)) return [];
  const [head, ...rows] = readFileSync(file, "utf8").trim().split("\n");
  const cols = head.split("\t");
  return rows.map((r) => Object.fromEntries(r.split("\t").map((v, i) => [cols[i], v])));
};
const emit = (engine, test, value, unit, extra = {}) => {
  if (value === null || value === undefined || Number.isNaN(value)) return;
  process.stdout.write(JSON.stringify({ bench: "live", engine, test, value: Math.round(value * 1000) / 1000, unit, ...extra }) + "\n");
};
for (const engine of readdirSync(out).sort()) {
  const raw = table(join(out, engine, "raw.tsv"));
  const by = (t) => raw.filter((r) => r.test === t);
  const queued = engine !== "plain";
  for (const t of ["tcp1", "tcp4"]) emit(engine, t, median(by(t).map((r) => Number(r.gbps))), "Gbit/s");
  // Small UDP: with a queue, what got a verdict (fail-open lets the rest through unseen).
  const udp = by("udp64c");
  emit(engine, "udp64", median(udp.map((r) => Number(queued ? r.inspected_ps : r.pps_deliv))), queued ? "inspected pps" : "delivered pps", {
    delivered_pps: median(udp.map((r) => Number(r.pps_deliv))),
  });
  const conn = by("conn").map((r) => Number((/conn_per_s=(\d+)/.exec(r.extra ?? "") ?? [])[1]));
  emit(engine, "conn", median(conn), "conn/s");
  const cpu = udp.map((r) => {
    const c = Number(r.eng_cpu_pct);
    const i = Number(r.inspected_ps);
    return c > 0 && i > 0 ? ((c / 100) * 1e9) / i : NaN;
  });
  if (queued) emit(engine, "cpu_per_pkt", median(cpu), "ns/packet (engine user+sys CPU per inspected packet, udp64 load)");
  const lat = table(join(out, engine, "latency.tsv"));
  emit(engine, "latency", median(lat.map((r) => Number(r.p99_ms))), "ms p99 (ping through the gateway)", {
    p50_ms: median(lat.map((r) => Number(r.med_ms))),
  });
}
