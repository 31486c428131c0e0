// Forwarding to upstream resolvers (src/dns/upstream.ts): UDP with the TCP fallback, pipelined
// TCP, DNS over TLS and over HTTPS against local test servers on 127.0.0.1, failover and health,
// the anti-spoofing checks, spec parsing, and shutdown without leaks.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import dnsPacket from "dns-packet";
import { Upstreams, parseUpstream, UpstreamError, UPSTREAMS_CLOSED, UPSTREAMS_FAILED } from "../src/dns/upstream.js";

const LOOPBACK = "127.0.0.1";
const OPENSSL = "/usr/bin/openssl";
const TLS_NAME = "dns.test";
const RCODE_SERVFAIL = 2;
const RCODE_REFUSED = 5;

// --- messages ------------------------------------------------------------------------------

function makeQuery(name: string, id: number): Buffer {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name, class: "IN" }],
  });
}

interface ReplyOptions {
  ips?: string[];
  rcode?: number;
  tc?: boolean;
  id?: number;
  /** Answer for a different name than was asked (a mismatched question). */
  name?: string;
}

function makeReply(q: Buffer, o: ReplyOptions = {}): Buffer {
  const d = dnsPacket.decode(q);
  const question = d.questions![0]!;
  const name = o.name ?? question.name;
  return dnsPacket.encode({
    type: "response",
    id: o.id ?? d.id!,
    flags:
      dnsPacket.RECURSION_DESIRED |
      dnsPacket.RECURSION_AVAILABLE |
      (o.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      (o.rcode ?? 0),
    questions: [{ ...question, name }],
    answers: (o.ips ?? []).map((ip) => ({ type: "A" as const, name, ttl: 60, class: "IN" as const, data: ip })),
  });
}

function idOf(msg: Uint8Array): number {
  return (msg[0]! << 8) | msg[1]!;
}

function decoded(msg: Uint8Array): { name: string; ips: string[] } {
  const d = dnsPacket.decode(Buffer.from(msg));
  return { name: d.questions![0]!.name, ips: (d.answers ?? []).map((a) => String((a as { data?: unknown }).data)) };
}

// --- servers -------------------------------------------------------------------------------

interface UdpServer {
  port: number;
  sock: dgram.Socket;
  queries: Buffer[];
  close(): Promise<void>;
}

type UdpHandler = (q: Buffer, rinfo: dgram.RemoteInfo, sock: dgram.Socket) => void;

async function udpServer(handle: UdpHandler, port = 0): Promise<UdpServer> {
  const sock = dgram.createSocket("udp4");
  const queries: Buffer[] = [];
  sock.on("message", (msg, rinfo) => {
    queries.push(msg);
    handle(msg, rinfo, sock);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(port, LOOPBACK, () => resolve());
  });
  return {
    port: sock.address().port,
    sock,
    queries,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

const answering = (ips: string[]): UdpHandler => (q, rinfo, sock) => sock.send(makeReply(q, { ips }), rinfo.port, rinfo.address);
const withRcode = (rcode: number): UdpHandler => (q, rinfo, sock) => sock.send(makeReply(q, { rcode }), rinfo.port, rinfo.address);
const silent: UdpHandler = () => {};

function frame(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/** Calls `onMessage` for each length-framed message on a stream. */
function frames(onMessage: (m: Buffer) => void): (chunk: Buffer) => void {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const len = pending.readUInt16BE(0);
      onMessage(pending.subarray(2, 2 + len));
      pending = pending.subarray(2 + len);
    }
  };
}

interface StreamServer {
  port: number;
  queries: Buffer[];
  /** Connections accepted so far. */
  connections: number;
  /** Connections the client closed (or that ended) so far. */
  ended: number;
  close(): Promise<void>;
}

type StreamHandler = (q: Buffer, sock: net.Socket) => void;

async function streamServer(handle: StreamHandler, opts: { cert?: Cert; port?: number } = {}): Promise<StreamServer> {
  const sockets = new Set<net.Socket>();
  const state: StreamServer = { port: 0, queries: [], connections: 0, ended: 0, close: async () => {} };
  const onConnection = (sock: net.Socket): void => {
    state.connections++;
    sockets.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => {
      state.ended++;
      sockets.delete(sock);
    });
    sock.on(
      "data",
      frames((m) => {
        state.queries.push(Buffer.from(m));
        handle(Buffer.from(m), sock);
      }),
    );
  };
  const server = opts.cert
    ? tls.createServer({ key: opts.cert.key, cert: opts.cert.cert }, onConnection)
    : net.createServer(onConnection);
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => resolve());
  });
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return state;
}

const streamAnswering = (ips: string[]): StreamHandler => (q, sock) => sock.write(frame(makeReply(q, { ips })));

interface DohServer {
  port: number;
  requests: { headers: http2.IncomingHttpHeaders; body: Buffer }[];
  close(): Promise<void>;
}

async function dohServer(cert: Cert, handle: (body: Buffer, stream: http2.ServerHttp2Stream) => void): Promise<DohServer> {
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createSecureServer({ key: cert.key, cert: cert.cert });
  const requests: DohServer["requests"] = [];
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on("data", (c: Buffer) => parts.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(parts);
      requests.push({ headers, body });
      handle(body, stream);
    });
    stream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

function dohReply(ips: string[]): (body: Buffer, stream: http2.ServerHttp2Stream) => void {
  return (body, stream) => {
    stream.respond({ ":status": 200, "content-type": "application/dns-message" });
    stream.end(makeReply(body, { ips }));
  };
}

// --- certificate ---------------------------------------------------------------------------

interface Cert {
  key: Buffer;
  cert: Buffer;
}

let certDir = "";
let cert: Cert;

before(() => {
  assert.ok(existsSync(OPENSSL), `the TLS tests need ${OPENSSL}`);
  certDir = mkdtempSync(join(tmpdir(), "sluice-upstream-"));
  const key = join(certDir, "key.pem");
  const crt = join(certDir, "cert.pem");
  execFileSync(
    OPENSSL,
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", crt, "-days", "1", "-subj", `/CN=${TLS_NAME}`,
      "-addext", `subjectAltName=DNS:${TLS_NAME},IP:${LOOPBACK}`,
    ],
    { stdio: "ignore" },
  );
  cert = { key: readFileSync(key), cert: readFileSync(crt) };
});

after(() => {
  if (certDir !== "") rmSync(certDir, { recursive: true, force: true });
});

/** Runs `body` with an Upstreams that is closed afterwards, whatever happens. */
async function using<T>(specs: string[], opts: ConstructorParameters<typeof Upstreams>[1], body: (u: Upstreams) => Promise<T>): Promise<T> {
  const u = new Upstreams(specs, opts);
  try {
    return await body(u);
  } finally {
    u.close();
  }
}

async function rejection(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof UpstreamError, `expected an UpstreamError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the promise to reject");
}

// --- tests ---------------------------------------------------------------------------------

describe("plain DNS over UDP", () => {
  it("answers through a UDP upstream and gives the reply back with the caller's ID", async () => {
    const srv = await udpServer(answering(["192.0.2.1"]));
    try {
      await using([`${LOOPBACK}:${srv.port}`], {}, async (u) => {
        const r = await u.resolve(makeQuery("example.com", 0x4242));
        assert.equal(idOf(r.reply), 0x4242);
        assert.deepEqual(decoded(r.reply), { name: "example.com", ips: ["192.0.2.1"] });
        assert.equal(r.upstream, `udp://${LOOPBACK}:${srv.port}`);
        assert.ok(r.rttMs >= 0);
        const [s] = u.status();
        assert.equal(s!.queries, 1);
        assert.equal(s!.failures, 0);
        assert.equal(s!.type, "dns");
      });
    } finally {
      await srv.close();
    }
  });

  it("gives concurrent queries distinct IDs on the wire even when the callers' IDs are equal", async () => {
    const srv = await udpServer(answering(["192.0.2.1"]));
    try {
      await using([`udp://${LOOPBACK}:${srv.port}`], {}, async (u) => {
        const names = Array.from({ length: 20 }, (_, i) => `n${i}.example`);
        const replies = await Promise.all(names.map((n) => u.resolve(makeQuery(n, 1))));
        replies.forEach((r, i) => {
          assert.equal(idOf(r.reply), 1);
          assert.equal(decoded(r.reply).name, names[i]);
        });
        // Four pooled sockets, IDs unique per socket: at worst five share a socket, so equal
        // IDs overall are possible but the set cannot collapse to the callers' single ID.
        assert.ok(new Set(srv.queries.map(idOf)).size > 1);
      });
    } finally {
      await srv.close();
    }
  });

  it("asks again over TCP when the UDP reply is truncated and returns the full answer", async () => {
    let udp: UdpServer | null = null;
    let tcp: StreamServer | null = null;
    const full = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    // TCP and UDP on the same port number, as a real server listens.
    for (let tries = 0; tcp === null; tries++) {
      udp = await udpServer((q, rinfo, sock) => sock.send(makeReply(q, { tc: true }), rinfo.port, rinfo.address));
      try {
        tcp = await streamServer(streamAnswering(full), { port: udp.port });
      } catch (err) {
        await udp.close();
        if (tries >= 5) throw err;
      }
    }
    try {
      await using([`${LOOPBACK}:${udp!.port}`], {}, async (u) => {
        const r = await u.resolve(makeQuery("big.example", 0x1111));
        assert.equal(idOf(r.reply), 0x1111);
        assert.deepEqual(decoded(r.reply).ips, full);
        assert.equal(udp!.queries.length, 1);
        assert.equal(tcp!.queries.length, 1);
      });
    } finally {
      await udp!.close();
      await tcp!.close();
    }
  });

  it("ignores replies from the wrong source port or with the wrong question and takes the real one", async () => {
    const spoofer = dgram.createSocket("udp4");
    await new Promise<void>((r) => spoofer.bind(0, LOOPBACK, () => r()));
    const srv = await udpServer(async (q, rinfo, sock) => {
      const id = idOf(q);
      // Right ID and question, wrong source port.
      spoofer.send(makeReply(q, { id, ips: ["203.0.113.6"] }), rinfo.port, rinfo.address);
      await sleep(20);
      // Right ID and source, different question.
      sock.send(makeReply(q, { id, ips: ["203.0.113.7"], name: "evil.example" }), rinfo.port, rinfo.address);
      await sleep(20);
      // Right source and question, wrong ID.
      sock.send(makeReply(q, { id: (id + 1) & 0xffff, ips: ["203.0.113.8"] }), rinfo.port, rinfo.address);
      await sleep(20);
      sock.send(makeReply(q, { ips: ["192.0.2.10"] }), rinfo.port, rinfo.address);
    });
    try {
      await using([`${LOOPBACK}:${srv.port}`], { timeoutMs: 1000 }, async (u) => {
        const r = await u.resolve(makeQuery("bank.example", 0x2222));
        assert.deepEqual(decoded(r.reply), { name: "bank.example", ips: ["192.0.2.10"] });
        assert.equal(idOf(r.reply), 0x2222);
      });
    } finally {
      await srv.close();
      await new Promise<void>((r) => spoofer.close(() => r()));
    }
  });

  it("accepts a reply whose question differs only in letter case", async () => {
    const srv = await udpServer((q, rinfo, sock) =>
      sock.send(makeReply(q, { ips: ["192.0.2.20"], name: "MiXeD.Example" }), rinfo.port, rinfo.address),
    );
    try {
      await using([`${LOOPBACK}:${srv.port}`], {}, async (u) => {
        const r = await u.resolve(makeQuery("mixed.example", 5));
        assert.deepEqual(decoded(r.reply).ips, ["192.0.2.20"]);
      });
    } finally {
      await srv.close();
    }
  });
});

describe("plain DNS over TCP", () => {
  it("pipelines concurrent queries on one connection and matches each reply to its question", async () => {
    const N = 6;
    const held: { q: Buffer; sock: net.Socket }[] = [];
    const srv = await streamServer((q, sock) => {
      held.push({ q, sock });
      if (held.length < N) return;
      // Only once every query has arrived, answer them in reverse order.
      for (const h of held.reverse()) {
        const name = decoded(h.q).name;
        h.sock.write(frame(makeReply(h.q, { ips: [`192.0.2.${Number(name.slice(1, name.indexOf(".")))}`] })));
      }
    });
    try {
      await using([`tcp://${LOOPBACK}:${srv.port}`], {}, async (u) => {
        const replies = await Promise.all(Array.from({ length: N }, (_, i) => u.resolve(makeQuery(`q${i + 1}.example`, 0x7777))));
        replies.forEach((r, i) => {
          assert.equal(idOf(r.reply), 0x7777);
          assert.deepEqual(decoded(r.reply), { name: `q${i + 1}.example`, ips: [`192.0.2.${i + 1}`] });
        });
        assert.equal(srv.connections, 1);
        assert.equal(new Set(srv.queries.map(idOf)).size, N, "IDs on one connection are unique");
      });
    } finally {
      await srv.close();
    }
  });

  it("reconnects when the server closes the connection after each reply", async () => {
    const srv = await streamServer((q, sock) => sock.end(frame(makeReply(q, { ips: ["192.0.2.30"] }))));
    try {
      await using([`tcp://${LOOPBACK}:${srv.port}`], {}, async (u) => {
        for (let i = 0; i < 3; i++) {
          const r = await u.resolve(makeQuery(`r${i}.example`, i));
          assert.deepEqual(decoded(r.reply).ips, ["192.0.2.30"]);
          await sleep(20); // let the close arrive before the next query
        }
        assert.equal(srv.connections, 3);
      });
    } finally {
      await srv.close();
    }
  });

  it("sends a query again on a new connection when a connection that worked closes under it", async () => {
    // The server answers the first query on each connection and closes on the second: the race
    // of a server's idle close with a query on its way.
    const served = new WeakSet<net.Socket>();
    const srv = await streamServer((q, sock) => {
      if (served.has(sock)) {
        sock.destroy();
        return;
      }
      served.add(sock);
      sock.write(frame(makeReply(q, { ips: ["192.0.2.32"] })));
    });
    try {
      await using([`tcp://${LOOPBACK}:${srv.port}`], {}, async (u) => {
        await u.resolve(makeQuery("first.example", 1));
        const r = await u.resolve(makeQuery("second.example", 2));
        assert.deepEqual(decoded(r.reply), { name: "second.example", ips: ["192.0.2.32"] });
        assert.equal(srv.connections, 2);
        assert.equal(u.status()[0]!.failures, 0);
      });
    } finally {
      await srv.close();
    }
  });

  it("closes an idle connection after idleCloseMs and opens a new one for the next query", async () => {
    const srv = await streamServer(streamAnswering(["192.0.2.31"]));
    try {
      await using([`tcp://${LOOPBACK}:${srv.port}`], { idleCloseMs: 100 }, async (u) => {
        await u.resolve(makeQuery("a.example", 1));
        await sleep(20);
        assert.equal(srv.ended, 0, "still open right after the reply");
        for (let i = 0; i < 100 && srv.ended === 0; i++) await sleep(20);
        assert.equal(srv.ended, 1, "closed once idle");
        await u.resolve(makeQuery("b.example", 2));
        assert.equal(srv.connections, 2);
      });
    } finally {
      await srv.close();
    }
  });
});

describe("DNS over TLS", () => {
  it("verifies the server against the #name and answers over a persistent connection", async () => {
    const srv = await streamServer(streamAnswering(["192.0.2.40"]), { cert });
    try {
      await using([`tls://${LOOPBACK}:${srv.port}#${TLS_NAME}`], { ca: cert.cert }, async (u) => {
        const r1 = await u.resolve(makeQuery("dot.example", 0x0d07));
        const r2 = await u.resolve(makeQuery("dot2.example", 0x0d08));
        assert.equal(idOf(r1.reply), 0x0d07);
        assert.equal(idOf(r2.reply), 0x0d08);
        assert.deepEqual(decoded(r2.reply), { name: "dot2.example", ips: ["192.0.2.40"] });
        assert.equal(r1.upstream, `tls://${LOOPBACK}:${srv.port}#${TLS_NAME}`);
        assert.equal(srv.connections, 1);
        assert.equal(u.status()[0]!.type, "dot");
      });
    } finally {
      await srv.close();
    }
  });

  it("fails the query when the certificate does not match the #name", async () => {
    const srv = await streamServer(streamAnswering(["192.0.2.41"]), { cert });
    try {
      const spec = `tls://${LOOPBACK}:${srv.port}#other.test`;
      await using([spec], { ca: cert.cert }, async (u) => {
        const err = await rejection(u.resolve(makeQuery("dot.example", 1)));
        assert.equal(err.code, UPSTREAMS_FAILED);
        assert.match(err.message, new RegExp(`${spec.replace(/[.]/g, "\\.")}: .*other\\.test`));
        assert.equal(srv.queries.length, 0, "no query leaves before the server is verified");
      });
    } finally {
      await srv.close();
    }
  });
});

describe("DNS over HTTPS", () => {
  it("POSTs the query with ID 0 and returns the reply with the caller's ID", async () => {
    const srv = await dohServer(cert, dohReply(["192.0.2.50"]));
    try {
      await using([`https://${LOOPBACK}:${srv.port}/dns-query`], { ca: cert.cert }, async (u) => {
        const r = await u.resolve(makeQuery("doh.example", 0xbeef));
        assert.equal(idOf(r.reply), 0xbeef);
        assert.deepEqual(decoded(r.reply), { name: "doh.example", ips: ["192.0.2.50"] });
        assert.equal(r.upstream, `https://${LOOPBACK}:${srv.port}/dns-query`);
        const req = srv.requests[0]!;
        assert.equal(idOf(req.body), 0, "ID 0 on the wire");
        assert.equal(req.headers[":method"], "POST");
        assert.equal(req.headers[":path"], "/dns-query");
        assert.equal(req.headers["content-type"], "application/dns-message");
        // A second query reuses the session.
        await u.resolve(makeQuery("doh2.example", 0xcafe));
        assert.equal(srv.requests.length, 2);
        const s = u.status()[0]!;
        assert.deepEqual([s.type, s.ip, s.port, s.path], ["doh", LOOPBACK, srv.port, "/dns-query"]);
      });
    } finally {
      await srv.close();
    }
  });
});

describe("failover and health", () => {
  it("moves on from a silent server, marks it failing after failAfter timeouts, then skips it", async () => {
    const dead = await udpServer(silent);
    const live = await udpServer(answering(["192.0.2.60"]));
    try {
      const opts = { timeoutMs: 150, failAfter: 2 };
      await using([`${LOOPBACK}:${dead.port}`, `${LOOPBACK}:${live.port}`], opts, async (u) => {
        for (let i = 0; i < 2; i++) {
          const r = await u.resolve(makeQuery(`f${i}.example`, i));
          assert.equal(r.upstream, `udp://${LOOPBACK}:${live.port}`);
        }
        const [d] = u.status();
        assert.equal(d!.failing, true);
        assert.equal(d!.timeouts, 2);
        assert.match(d!.lastError ?? "", /timed out/);
        const t0 = performance.now();
        await u.resolve(makeQuery("f2.example", 2));
        assert.ok(performance.now() - t0 < opts.timeoutMs, "the failing server is not waited for");
        assert.equal(dead.queries.length, 2, "the failing server got no third query");
      });
    } finally {
      await dead.close();
      await live.close();
    }
  });

  it("probes a failing server after retryAfterMs and a success clears the mark", async () => {
    let up = false;
    const flaky = await udpServer((q, rinfo, sock) => {
      if (up) sock.send(makeReply(q, { ips: ["192.0.2.61"] }), rinfo.port, rinfo.address);
    });
    const backup = await udpServer(answering(["192.0.2.62"]));
    try {
      const opts = { timeoutMs: 100, failAfter: 1, retryAfterMs: 200 };
      await using([`${LOOPBACK}:${flaky.port}`, `${LOOPBACK}:${backup.port}`], opts, async (u) => {
        await u.resolve(makeQuery("p0.example", 0));
        assert.equal(u.status()[0]!.failing, true);
        up = true;
        const skipped = await u.resolve(makeQuery("p1.example", 1));
        assert.equal(skipped.upstream, `udp://${LOOPBACK}:${backup.port}`, "skipped before retryAfterMs");
        await sleep(250);
        const probed = await u.resolve(makeQuery("p2.example", 2));
        assert.equal(probed.upstream, `udp://${LOOPBACK}:${flaky.port}`);
        assert.equal(u.status()[0]!.failing, false);
      });
    } finally {
      await flaky.close();
      await backup.close();
    }
  });

  it("moves on to the second upstream when the first says SERVFAIL", async () => {
    const bad = await udpServer(withRcode(RCODE_SERVFAIL));
    const good = await udpServer(answering(["192.0.2.70"]));
    try {
      await using([`${LOOPBACK}:${bad.port}`, `${LOOPBACK}:${good.port}`], {}, async (u) => {
        const r = await u.resolve(makeQuery("sf.example", 0x5f));
        assert.equal(r.upstream, `udp://${LOOPBACK}:${good.port}`);
        assert.deepEqual(decoded(r.reply).ips, ["192.0.2.70"]);
        assert.equal(idOf(r.reply), 0x5f);
        const [b] = u.status();
        assert.equal(b!.failures, 1);
        assert.equal(b!.lastError, "SERVFAIL");
      });
    } finally {
      await bad.close();
      await good.close();
    }
  });

  it("rejects with a message naming what each upstream did when none answers", async () => {
    const servfail = await udpServer(withRcode(RCODE_SERVFAIL));
    const refused = await udpServer(withRcode(RCODE_REFUSED));
    const doh = await dohServer(cert, (_body, stream) => {
      stream.respond({ ":status": 500 });
      stream.end();
    });
    // A port nobody listens on: bind, note, close.
    const closed = await streamServer(() => {});
    await closed.close();
    const specs = [
      `udp://${LOOPBACK}:${servfail.port}`,
      `udp://${LOOPBACK}:${refused.port}`,
      `tcp://${LOOPBACK}:${closed.port}`,
      `https://${LOOPBACK}:${doh.port}/dns-query`,
    ];
    try {
      await using(specs, { ca: cert.cert, timeoutMs: 1000 }, async (u) => {
        const err = await rejection(u.resolve(makeQuery("none.example", 9)));
        assert.equal(err.code, UPSTREAMS_FAILED);
        assert.ok(err.message.includes(`${specs[0]}: SERVFAIL`), err.message);
        assert.ok(err.message.includes(`${specs[1]}: REFUSED`), err.message);
        assert.match(err.message, new RegExp(`${specs[2]!.replace(/[.]/g, "\\.")}: .*ECONNREFUSED`));
        assert.ok(err.message.includes(`${specs[3]}: HTTP 500`), err.message);
      });
    } finally {
      await servfail.close();
      await refused.close();
      await doh.close();
    }
  });

  it("tries every upstream anyway when all of them are marked failing", async () => {
    let answer = false;
    const a = await udpServer(silent);
    const b = await udpServer((q, rinfo, sock) => {
      if (answer) sock.send(makeReply(q, { ips: ["192.0.2.80"] }), rinfo.port, rinfo.address);
    });
    try {
      const opts = { timeoutMs: 100, failAfter: 1, retryAfterMs: 60_000 };
      await using([`${LOOPBACK}:${a.port}`, `${LOOPBACK}:${b.port}`], opts, async (u) => {
        const err = await rejection(u.resolve(makeQuery("all0.example", 0)));
        assert.match(err.message, /timed out after 100 ms.*timed out after 100 ms/);
        assert.deepEqual(u.status().map((s) => s.failing), [true, true]);
        answer = true;
        const r = await u.resolve(makeQuery("all1.example", 1));
        assert.equal(r.upstream, `udp://${LOOPBACK}:${b.port}`);
        assert.deepEqual(u.status().map((s) => s.failing), [true, false]);
      });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("keeps an average and a spread of the round-trip time", async () => {
    let delay = 0;
    const srv = await udpServer(async (q, rinfo, sock) => {
      await sleep(delay);
      sock.send(makeReply(q, { ips: ["192.0.2.90"] }), rinfo.port, rinfo.address);
    });
    try {
      await using([`${LOOPBACK}:${srv.port}`], {}, async (u) => {
        for (const d of [0, 40, 0, 40]) {
          delay = d;
          await u.resolve(makeQuery("rtt.example", 1));
        }
        const s = u.status()[0]!;
        assert.ok(s.avgRttMs > 5 && s.avgRttMs < 40, `avg ${s.avgRttMs}`);
        assert.ok(s.rttVarianceMs > 5, `spread ${s.rttVarianceMs}`);
      });
    } finally {
      await srv.close();
    }
  });
});

describe("upstream specs", () => {
  const good: [string, string][] = [
    ["1.1.1.1", "udp://1.1.1.1:53"],
    ["1.1.1.1:5353", "udp://1.1.1.1:5353"],
    ["[2606:4700::1111]:53", "udp://[2606:4700::1111]:53"],
    ["2606:4700:0:0::1111", "udp://[2606:4700::1111]:53"],
    ["UDP://9.9.9.9", "udp://9.9.9.9:53"],
    ["tcp://1.1.1.1", "tcp://1.1.1.1:53"],
    ["tls://1.1.1.1#One.One.One.One", "tls://1.1.1.1:853#one.one.one.one"],
    ["tls://[2606:4700::1111]:8853", "tls://[2606:4700::1111]:8853"],
    ["https://dns.example/dns-query", "https://dns.example/dns-query"],
    ["https://1.2.3.4:8443/dns-query", "https://1.2.3.4:8443/dns-query"],
    ["https://dns.example", "https://dns.example/dns-query"],
  ];
  for (const [spec, normal] of good) {
    it(`reads "${spec}" as ${normal}`, () => {
      assert.equal(parseUpstream(spec).spec, normal);
    });
  }

  it("gives the parts of each kind of spec", () => {
    assert.deepEqual(parseUpstream("tls://1.1.1.1#dns.example"), {
      spec: "tls://1.1.1.1:853#dns.example",
      type: "dot",
      ip: "1.1.1.1",
      host: "dns.example",
      port: 853,
      path: null,
    });
    assert.deepEqual(parseUpstream("https://dns.example/q?x=1"), {
      spec: "https://dns.example/q?x=1",
      type: "doh",
      ip: null,
      host: "dns.example",
      port: 443,
      path: "/q?x=1",
    });
  });

  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["udp://", /no address/],
    ["1.1.1.1:0", /bad port "0"/],
    ["1.1.1.1:70000", /bad port "70000"/],
    ["1.1.1.1:dns", /bad port "dns"/],
    ["300.1.1.1", /not an IP address/],
    ["dns.example", /needs an IP address, not the host name "dns.example"/],
    ["quic://1.1.1.1", /unknown scheme "quic:\/\/"/],
    ["http://dns.example/dns-query", /unknown scheme "http:\/\/"/],
    ["[2606:4700::1111", /missing \]/],
    ["[1.1.1.1]:53", /not an IPv6 address/],
    ["udp://1.1.1.1#dns.example", /only applies to tls:\/\//],
    ["tls://1.1.1.1#", /empty TLS server name/],
    ["tls://1.1.1.1#bad_name!", /not a valid TLS server name/],
    ["tls://1.1.1.1#8.8.8.8", /must be a host name/],
    ["[::ffff:1.2.3.4]", /IPv4-mapped/],
    ["https://", /not a valid URL/],
    ["https://user:pw@dns.example/dns-query", /credentials/],
    ["https://dns.example/dns-query#x", /fragment/],
  ];
  for (const [spec, why] of bad) {
    it(`rejects ${JSON.stringify(spec)} saying which spec and why`, () => {
      assert.throws(
        () => parseUpstream(spec),
        (err: unknown) => {
          assert.ok(err instanceof UpstreamError);
          assert.ok(err.message.startsWith(`upstream ${JSON.stringify(spec)}: `), err.message);
          assert.match(err.message, why);
          return true;
        },
      );
    });
  }

  it("the constructor rejects a bad spec and a spec listed twice", () => {
    assert.throws(() => new Upstreams(["1.1.1.1", "nope"]), /upstream "nope": /);
    assert.throws(() => new Upstreams(["1.1.1.1", "udp://1.1.1.1:53"]), /listed twice/);
  });

  it("rejects a malformed query without sending it", async () => {
    const srv = await udpServer(answering(["192.0.2.1"]));
    try {
      await using([`${LOOPBACK}:${srv.port}`], {}, async (u) => {
        const truncated = makeQuery("example.com", 1).subarray(0, 20);
        await assert.rejects(u.resolve(truncated), /not a well-formed DNS message/);
        await assert.rejects(u.resolve(new Uint8Array(5)), /not a well-formed DNS message/);
        assert.equal(srv.queries.length, 0);
      });
    } finally {
      await srv.close();
    }
  });
});

describe("shutdown", () => {
  function openFds(): number {
    return readdirSync("/proc/self/fd").length;
  }
  function timers(): number {
    return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  }

  it("close() rejects the queries in flight and releases every socket, session and timer", async () => {
    const udp = await udpServer(answering(["192.0.2.1"]));
    const quiet = await udpServer(silent);
    const tcp = await streamServer(streamAnswering(["192.0.2.2"]));
    const dot = await streamServer(streamAnswering(["192.0.2.3"]), { cert });
    const doh = await dohServer(cert, dohReply(["192.0.2.4"]));
    try {
      const fds = openFds();
      const baseTimers = timers();
      // One forwarder per transport, each with a query answered, so every kind of socket is open.
      const specs = [
        `${LOOPBACK}:${udp.port}`,
        `tcp://${LOOPBACK}:${tcp.port}`,
        `tls://${LOOPBACK}:${dot.port}#${TLS_NAME}`,
        `https://${LOOPBACK}:${doh.port}/dns-query`,
      ];
      const forwarders = specs.map((s) => new Upstreams([s], { ca: cert.cert }));
      await Promise.all(forwarders.map((u, i) => u.resolve(makeQuery(`f${i}.example`, i))));
      assert.equal(tcp.connections + dot.connections, 2);
      assert.equal(doh.requests.length, 1);
      const stuck = new Upstreams([`${LOOPBACK}:${quiet.port}`], { timeoutMs: 60_000 });
      const pending = stuck.resolve(makeQuery("stuck.example", 5));
      await sleep(20);
      assert.ok(openFds() > fds && timers() > baseTimers, "sockets and the deadline timer are in use");
      for (const u of [...forwarders, stuck]) u.close();
      const err = await rejection(pending);
      assert.equal(err.code, UPSTREAMS_CLOSED);
      await assert.rejects(stuck.resolve(makeQuery("late.example", 6)), (e: unknown) => e instanceof UpstreamError && e.code === UPSTREAMS_CLOSED);
      // Sockets close asynchronously; the server side follows the client's close.
      for (let i = 0; i < 100 && openFds() !== fds; i++) await sleep(20);
      assert.equal(openFds(), fds, "every file descriptor opened for the upstreams is closed");
      assert.equal(timers(), baseTimers, "no timer left behind");
    } finally {
      await udp.close();
      await quiet.close();
      await tcp.close();
      await dot.close();
      await doh.close();
    }
  });

  it("a process with a query in flight exits promptly after close()", async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const moduleUrl = new URL(`file://${join(here, "..", "src", "dns", "upstream.js")}`).href;
    const script = `
      import * as dgram from "node:dgram";
      import { Upstreams } from ${JSON.stringify(moduleUrl)};
      const quiet = dgram.createSocket("udp4");
      quiet.bind(0, "127.0.0.1", () => {
        const u = new Upstreams(["127.0.0.1:" + quiet.address().port], { timeoutMs: 60000 });
        const q = Buffer.from("abcd01000001000000000000076578616d706c6503636f6d0000010001", "hex");
        u.resolve(q).catch((e) => { console.log(e.code); });
        setTimeout(() => { u.close(); quiet.close(); }, 50);
      });
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const started = performance.now();
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.equal(code, 0);
    assert.equal(out.trim(), UPSTREAMS_CLOSED);
    assert.ok(performance.now() - started < 10_000, "the child did not wait for the 60 s timeout");
  });
});
