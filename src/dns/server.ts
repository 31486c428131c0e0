// The resolver's sockets: UDP through the batched addon, TCP through node:net (RFC 7766
// framing, pipelining, idle close). Both hand each query to the Resolver and send what it
// returns; replies that wait for an upstream come back through the Transport interface.

import net from "node:net";
import { dnsio, META_ADDR, META_FAMILY, META_FLAGS, META_INTS, META_LEN, META_PORT, MF_TRUNCATED, type DnsioAddon } from "./udp.js";
import { UDP_LIMIT, type Client, type Resolver, type Transport } from "./resolver.js";

/** Bytes per datagram slot: a query larger than this is not a query we answer (truncated). */
const SLOT = 2048;
/** Datagrams one recvmmsg/sendmmsg moves. */
const BATCH = 64;
/** Batches drained per wake-up before yielding to the rest of the loop (API, recorder, timers). */
const ROUNDS_PER_WAKE = 16;
/** Socket buffers: enough to ride out a burst while the loop does other work. */
const UDP_BUFFER_BYTES = 4 << 20;
const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
/** A TCP client may have this many queries waiting for upstreams before we stop reading from it. */
const TCP_MAX_INFLIGHT = 64;
/** Replies queued unsent beyond this: stop reading until the client reads; beyond the second, cut it off. */
const TCP_MAX_QUEUED = 256 << 10;
const TCP_MAX_UNSENT = 4 << 20;
const TCP_INITIAL_BUFFER = 4096;
const TCP_MAX_MESSAGE = 65_535;

/** Finds (or creates) the Client for an address: by a meta row (UDP) or text (TCP). */
export interface ClientDirectory {
  byMeta(meta: Int32Array, row: number): Client;
  byText(ip: string): Client;
}

export interface ServerCounters {
  udpIn: number;
  udpOut: number;
  udpSendErrors: number;
  udpRecvErrors: number;
  udpTruncatedIn: number;
  udpBadSource: number;
  tcpConnections: number;
  tcpQueries: number;
  tcpRefused: number;
}

interface UdpSocket {
  handle: number;
  address: string;
  transport: Transport;
}

interface UdpHold {
  sock: UdpSocket;
  family: number;
  port: number;
  a0: number;
  a1: number;
  a2: number;
  a3: number;
}

export class DnsServer {
  readonly counters: ServerCounters = { udpIn: 0, udpOut: 0, udpSendErrors: 0, udpRecvErrors: 0, udpTruncatedIn: 0, udpBadSource: 0, tcpConnections: 0, tcpQueries: 0, tcpRefused: 0 };
  private readonly io: DnsioAddon;
  private readonly udp: UdpSocket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private readonly inBuf = new Uint8Array(SLOT * BATCH);
  private readonly outBuf = new Uint8Array(SLOT * BATCH);
  private readonly inMeta = new Int32Array(META_INTS * BATCH);
  private readonly outMeta = new Int32Array(META_INTS * BATCH);
  /** For late (upstream) replies: one datagram at a time. */
  private readonly lateMeta = new Int32Array(META_INTS);
  private readonly tcpOut = new Uint8Array(2 + TCP_MAX_MESSAGE);
  private boundPort = 0;

  constructor(
    private readonly resolver: Resolver,
    private readonly clients: ClientDirectory,
  ) {
    this.io = dnsio();
  }

  /** The port every socket listens on (the one asked for, or the one the kernel chose for 0). */
  get port(): number {
    return this.boundPort;
  }

  get addresses(): string[] {
    return this.udp.map((u) => u.address);
  }

  /**
   * Answers on one more address, UDP and TCP, on `port` (0: the kernel picks one, and every later
   * address uses the same). Throws if either cannot be bound, leaving nothing of it open: one
   * address in use does not stop the others.
   */
  async listen(address: string, port: number): Promise<void> {
    const handle = this.io.open(address, port, UDP_BUFFER_BYTES);
    const p = port === 0 ? this.io.port(handle) : port;
    let tcp: net.Server;
    try {
      tcp = await this.listenTcp(address, p);
    } catch (err) {
      this.io.close(handle);
      throw err;
    }
    const sock: UdpSocket = { handle, address, transport: this.udpTransport(handle) };
    this.udp.push(sock);
    this.tcp.push(tcp);
    this.io.watch(handle, () => this.drain(sock));
    if (this.boundPort === 0) this.boundPort = p;
  }

  stop(): void {
    for (const u of this.udp) this.io.close(u.handle);
    this.udp.length = 0;
    for (const s of this.tcp) s.close();
    this.tcp.length = 0;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
  }

  /** Answers everything waiting on a UDP socket, a batch at a time. */
  private drain(sock: UdpSocket): void {
    const { io, inBuf, outBuf, inMeta, outMeta, resolver, clients } = this;
    resolver.nowMs = Date.now();
    for (let round = 0; round < ROUNDS_PER_WAKE; round++) {
      const n = io.recv(sock.handle, inBuf, SLOT, BATCH, inMeta);
      if (n <= 0) {
        if (n < 0) this.counters.udpRecvErrors++;
        return;
      }
      this.counters.udpIn += n;
      for (let i = 0; i < n; i++) {
        const r = i * META_INTS;
        for (let k = META_FAMILY; k < META_INTS; k++) outMeta[r + k] = inMeta[r + k]!;
        if ((inMeta[r + META_FLAGS]! & MF_TRUNCATED) !== 0) {
          this.counters.udpTruncatedIn++;
          outMeta[r + META_LEN] = 0;
          continue;
        }
        if (inMeta[r + META_PORT] === 0) {
          // Source port 0 cannot be answered (and is never a real resolver client).
          this.counters.udpBadSource++;
          outMeta[r + META_LEN] = 0;
          continue;
        }
        const client = clients.byMeta(inMeta, i);
        outMeta[r + META_LEN] = resolver.answer(inBuf, i * SLOT, inMeta[r + META_LEN]!, client, outBuf, i * SLOT, UDP_LIMIT, sock.transport, i);
      }
      const sent = io.send(sock.handle, outBuf, SLOT, n, outMeta);
      if (sent < 0) this.counters.udpSendErrors++;
      else this.counters.udpOut += sent;
      if (n < BATCH) return;
    }
    // Still more waiting: come back after the loop has served everything else once.
    setImmediate(() => {
      if (this.udp.includes(sock)) this.drain(sock);
    });
  }

  private udpTransport(handle: number): Transport {
    const meta = this.inMeta;
    return {
      hold: (row: number): UdpHold => {
        const r = row * META_INTS;
        return {
          sock: this.udp.find((u) => u.handle === handle)!,
          family: meta[r + META_FAMILY]!,
          port: meta[r + META_PORT]!,
          a0: meta[r + META_ADDR]!,
          a1: meta[r + META_ADDR + 1]!,
          a2: meta[r + META_ADDR + 2]!,
          a3: meta[r + META_ADDR + 3]!,
        };
      },
      deliver: (h: unknown, reply: Uint8Array, len: number): void => {
        const w = h as UdpHold;
        if (!this.udp.includes(w.sock) || len <= 0) return;
        const m = this.lateMeta;
        m[META_LEN] = len;
        m[META_FAMILY] = w.family;
        m[META_PORT] = w.port;
        m[META_ADDR] = w.a0;
        m[META_ADDR + 1] = w.a1;
        m[META_ADDR + 2] = w.a2;
        m[META_ADDR + 3] = w.a3;
        m[META_FLAGS] = 0;
        const sent = this.io.send(handle, reply, Math.max(len, 1), 1, m);
        if (sent === 1) this.counters.udpOut++;
        else this.counters.udpSendErrors++;
      },
    };
  }

  private listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer({ noDelay: true }, (sock) => this.onTcp(sock));
    server.maxConnections = TCP_MAX_CONNECTIONS;
    server.on("drop", () => this.counters.tcpRefused++);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address, port, exclusive: true }, () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  }

  /**
   * One TCP connection: frames are parsed from one growing buffer (no concatenation per
   * chunk), answered in order, and reading stops while the client is not reading our replies
   * (more than TCP_MAX_QUEUED unsent) or has TCP_MAX_INFLIGHT queries waiting upstream, so a
   * client can never make us queue without bound. Past TCP_MAX_UNSENT it is cut off.
   */
  private onTcp(sock: net.Socket): void {
    this.counters.tcpConnections++;
    this.conns.add(sock);
    const client = this.clients.byText(normalizeRemote(sock.remoteAddress ?? ""));
    let buf = Buffer.allocUnsafe(TCP_INITIAL_BUFFER);
    let have = 0;
    let inflight = 0;
    const blocked = () => inflight >= TCP_MAX_INFLIGHT || sock.writableLength > TCP_MAX_QUEUED;
    const send = (bytes: Uint8Array): void => {
      if (sock.destroyed) return;
      sock.write(bytes);
      if (sock.writableLength > TCP_MAX_UNSENT) sock.destroy();
    };
    const pump = (): void => {
      this.resolver.nowMs = Date.now();
      let off = 0;
      while (have - off >= 2 && !blocked() && !sock.destroyed) {
        const len = buf.readUInt16BE(off);
        if (have - off < 2 + len) break;
        this.counters.tcpQueries++;
        const n = this.resolver.answer(buf, off + 2, len, client, this.tcpOut, 2, TCP_MAX_MESSAGE, transport, 0);
        if (n > 0) {
          this.tcpOut[0] = n >>> 8;
          this.tcpOut[1] = n & 255;
          send(Buffer.from(this.tcpOut.subarray(0, n + 2)));
        }
        off += 2 + len;
      }
      if (off > 0) {
        buf.copyWithin(0, off, have);
        have -= off;
      }
      if (blocked()) sock.pause();
      else if (sock.isPaused()) sock.resume();
    };
    const transport: Transport = {
      hold: () => {
        inflight++;
        return sock;
      },
      deliver: (_h, reply, len) => {
        inflight--;
        if (len > 0) {
          const framed = Buffer.allocUnsafe(2 + len);
          framed.writeUInt16BE(len, 0);
          framed.set(reply.subarray(0, len), 2);
          send(framed);
        }
        if (!sock.destroyed && sock.isPaused() && !blocked()) pump();
      },
    };
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on("error", () => sock.destroy());
    sock.on("close", () => this.conns.delete(sock));
    sock.on("drain", () => {
      if (sock.isPaused() && !blocked()) pump();
    });
    sock.on("data", (chunk: Buffer) => {
      if (have + chunk.length > buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(2 * buf.length, have + chunk.length));
        buf.copy(bigger, 0, 0, have);
        buf = bigger;
      }
      chunk.copy(buf, have);
      have += chunk.length;
      pump();
    });
  }
}

/** "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) is 10.0.0.1. */
function normalizeRemote(ip: string): string {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}
