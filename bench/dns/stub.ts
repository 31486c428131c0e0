// The bench's upstream: a tiny authoritative-style responder for every name, run inside the
// bench's server namespace so that no query ever leaves it. A -> 198.18.x.y, AAAA -> 2001:db8:..
// (stable per name, see gen.ts's stubAddresses), TTL STUB_TTL (a day: nothing expires during a
// run); any other type gets NOERROR with no answer. It counts the queries it gets, so the bench
// can tell whether a "cached" case was really served from the servers' caches and whether a
// blocked name ever leaked upstream.
//
// Usage: node stub.js <address> <port>. Prints {"ready":true} once bound; on each "count" line on
// stdin prints {"count":N,"leaked":M} (M: queries for names shaped like blocklist names, i.e.
// without the hyphen every allowed name has in its first label).

import { createSocket } from "node:dgram";
import { createInterface } from "node:readline";
import { stubAddresses } from "./gen.js";

const [address = "127.0.0.1", portText = "5353"] = process.argv.slice(2);
const TTL = 86_400;
let count = 0;
let leaked = 0;

const sock = createSocket({ type: address.includes(":") ? "udp6" : "udp4", recvBufferSize: 4 << 20 });

function readName(msg: Buffer, off: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let p = off;
  while (p < msg.length) {
    const len = msg[p]!;
    if (len === 0) return { name: labels.join("."), end: p + 1 };
    if (len > 63) return null; // no compression in a question we are sent first
    labels.push(msg.toString("latin1", p + 1, p + 1 + len));
    p += 1 + len;
  }
  return null;
}

sock.on("message", (msg, rinfo) => {
  if (msg.length < 12 || (msg[2]! & 0x80) !== 0 || msg.readUInt16BE(4) !== 1) return;
  const q = readName(msg, 12);
  if (!q || q.end + 4 > msg.length) return;
  count++;
  const first = q.name.split(".", 1)[0]!;
  if (!first.includes("-")) leaked++;
  const qtype = msg.readUInt16BE(q.end);
  const qEnd = q.end + 4;
  const addrs = stubAddresses(q.name.toLowerCase());
  let rdata: Buffer | null = null;
  if (qtype === 1) rdata = Buffer.from(addrs.a.split(".").map(Number));
  else if (qtype === 28) {
    const parts = addrs.aaaa.split("::");
    const head = parts[0]!.split(":").filter(Boolean);
    const tail = (parts[1] ?? "").split(":").filter(Boolean);
    const words = [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail];
    rdata = Buffer.alloc(16);
    words.forEach((w, i) => rdata!.writeUInt16BE(parseInt(w, 16), i * 2));
  }
  const header = Buffer.from(msg.subarray(0, 12));
  // QR, opcode copied, AA, RD copied, RA; RCODE 0.
  header[2] = 0x80 | (msg[2]! & 0x79) | 0x04;
  header[3] = 0x80;
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rdata ? 1 : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const question = msg.subarray(12, qEnd);
  const parts: Buffer[] = [header, question];
  if (rdata) {
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(TTL, 6);
    rr.writeUInt16BE(rdata.length, 10);
    parts.push(rr, rdata);
  }
  sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
});

sock.on("error", (err) => {
  process.stderr.write(`stub: ${err.message}\n`);
  process.exit(1);
});

sock.bind(Number(portText), address, () => {
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
});

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "count") process.stdout.write(JSON.stringify({ count, leaked }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
