// The resolver's sockets on loopback: UDP batches and TCP framing. A TCP client may split a
// query into single bytes, pipeline thousands of queries and read the answers late: every one
// is answered, in order, and reading stops while replies pile up unread (not asserted here: the kernel buffers hide it).

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import dgram from "node:dgram";
import { once } from "node:events";
import dnsPacket from "dns-packet";
import { Resolver, DEFAULT_RESOLVER_OPTIONS, type Client, type Forwarder } from "../src/dns/resolver.js";
import { DnsServer, type ClientDirectory } from "../src/dns/server.js";

const CLIENT: Client = { ip: "127.0.0.1", group: 0, filtering: false, refused: false };
const clients: ClientDirectory = { byMeta: () => CLIENT, byText: () => CLIENT };

const forwarder: Forwarder = {
  async resolve(q: Uint8Array) {
    const p = dnsPacket.decode(Buffer.from(q));
    const name = p.questions![0]!.name;
    const reply = dnsPacket.encode({
      type: "response",
      id: p.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: p.questions,
      answers: [{ type: "A", name, ttl: 300, data: "192.0.2.7" }],
    });
    return { reply, upstream: "test", rttMs: 0 };
  },
};

function query(id: number, name = "tcp.example.com"): Buffer {
  return dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name, class: "IN" }] });
}

function framed(id: number, name?: string): Buffer {
  const q = query(id, name);
  const b = Buffer.alloc(2 + q.length);
  b.writeUInt16BE(q.length, 0);
  q.copy(b, 2);
  return b;
}

/** Reads `n` framed replies from a socket, returning their IDs in order. */
function readReplies(sock: net.Socket, n: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const ids: number[] = [];
    let buf = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        ids.push(buf.readUInt16BE(2));
        buf = buf.subarray(2 + len);
        if (ids.length === n) resolve(ids);
      }
    });
    sock.on("error", reject);
  });
}

describe("the resolver's UDP and TCP server", () => {
  let server: DnsServer;
  let port = 0;

  before(async () => {
    server = new DnsServer(new Resolver(DEFAULT_RESOLVER_OPTIONS, forwarder, null, null, null), clients);
    await server.listen("127.0.0.1", 0);
    port = server.port;
  });

  after(() => server.stop());

  it("answers over UDP and TCP on the same port", async () => {
    const u = dgram.createSocket("udp4");
    u.send(query(77), port, "127.0.0.1");
    const [msg] = (await once(u, "message")) as [Buffer];
    assert.equal(dnsPacket.decode(msg).id, 77);
    u.close();
    const sock = net.connect(port, "127.0.0.1");
    await once(sock, "connect");
    const replies = readReplies(sock, 1);
    sock.write(framed(78));
    assert.deepEqual(await replies, [78]);
    sock.destroy();
  });

  it("puts a query together from single-byte segments", async () => {
    const sock = net.connect(port, "127.0.0.1");
    sock.setNoDelay(true);
    await once(sock, "connect");
    const replies = readReplies(sock, 1);
    for (const byte of framed(91)) {
      sock.write(Buffer.of(byte));
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(await replies, [91]);
    sock.destroy();
  });

  it("answers thousands of pipelined queries, in order, to a client that starts reading late", async () => {
    const N = 4000;
    const sock = net.connect(port, "127.0.0.1");
    await once(sock, "connect");
    sock.pause(); // not reading: the server must stop reading too, not queue replies for ever
    const all = Buffer.concat(Array.from({ length: N }, (_, i) => framed(i)));
    sock.write(all);
    await new Promise((r) => setTimeout(r, 300));
    const replies = readReplies(sock, N);
    sock.resume();
    const ids = await replies;
    assert.equal(ids.length, N);
    assert.deepEqual(ids.slice(0, 5), [0, 1, 2, 3, 4]);
    assert.ok(ids.every((id, i) => id === i), "in order");
    sock.destroy();
  });
});
