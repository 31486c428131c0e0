// The forwarding side of the resolver: a DNS query (wire format) goes to the configured upstream
// resolvers in order and the first usable reply comes back, carrying the caller's query ID.
//
//   resolve(query) ──▶ Forward (one per query) ──▶ upstream 1 ──timeout / error / SERVFAIL──▶ upstream 2 …
//                                                   │
//        dns: UDP pool (random IDs, source check) ──TC──▶ TCP to the same server
//        tcp: one pipelined connection (2-byte length framing)
//        dot: the same over TLS (RFC 7858)
//        doh: HTTP/2 POST application/dns-message (RFC 8484), ID 0 on the wire
//
// Every attempt in flight sits in one deadline-ordered list (all attempts share one timeout, so
// appending keeps the order) watched by one timer: no timer per query. Transports hold at most
// one persistent socket or session per upstream, plus a small UDP pool per address family.
// Sockets are unref'd; only the deadline timer holds the process open, and only while a query
// is in flight, so an idle Upstreams never keeps a process alive. close() releases everything.

import * as dgram from "node:dgram";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { randomFillSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import { SluiceError } from "../core/errors.js";

// ---------------------------------------------------------------------------------------------
// Public contract

export interface UpstreamOptions {
  /** Per attempt (one upstream), in ms. Default 2000. */
  timeoutMs?: number;
  /** Extra trusted CA (PEM) for tls:// and https:// upstreams; replaces the system store. */
  ca?: string | Buffer;
  /** Consecutive failures before an upstream is marked failing. Default 3. */
  failAfter?: number;
  /** A failing upstream gets one probe query after this long, in ms. Default 30000. */
  retryAfterMs?: number;
  /** An idle tcp/tls connection or HTTP/2 session is closed after this long, in ms. Default 10000. */
  idleCloseMs?: number;
}

export interface UpstreamReply {
  /** Wire reply with the caller's query ID. */
  reply: Uint8Array;
  /** The normalized spec it came from, e.g. "udp://10.0.0.1:53". */
  upstream: string;
  rttMs: number;
}

export type UpstreamType = "dns" | "tcp" | "dot" | "doh";

export interface UpstreamInfo {
  spec: string;
  type: UpstreamType;
  ip: string | null;
  /** TLS name for dot (null: the IP address is verified), URL host name for doh. */
  host: string | null;
  port: number;
  /** Request path (with query string) for doh, else null. */
  path: string | null;
  failing: boolean;
  /** Attempts sent to this upstream. */
  queries: number;
  /** Attempts that gave no usable reply (timeouts, errors, SERVFAIL, REFUSED, bad replies). */
  failures: number;
  timeouts: number;
  lastError: string | null;
  /** Exponentially weighted mean round-trip time of replies, in ms. */
  avgRttMs: number;
  /**
   * Spread of the round-trip time in ms: the standard deviation under the same weighting as the
   * mean. Pi-hole shows its `variance` as "± time", so this is kept in time units.
   */
  rttVarianceMs: number;
}

/** A parsed upstream spec. */
export interface ParsedUpstream {
  /** Normalized: udp://1.1.1.1:53, tcp://[::1]:53, tls://1.1.1.1:853#name, https://host/path. */
  spec: string;
  type: UpstreamType;
  ip: string | null;
  host: string | null;
  port: number;
  path: string | null;
}

export const UPSTREAM_SPEC_INVALID = "DNS_UPSTREAM_SPEC";
export const UPSTREAMS_FAILED = "DNS_UPSTREAMS_FAILED";
export const UPSTREAMS_CLOSED = "DNS_UPSTREAMS_CLOSED";
export const UPSTREAM_QUERY_MALFORMED = "DNS_QUERY_MALFORMED";

export class UpstreamError extends SluiceError {}

// ---------------------------------------------------------------------------------------------
// Constants

const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_FAIL_AFTER = 3;
const DEFAULT_RETRY_AFTER_MS = 30_000;
/** RFC 7766 asks clients to close idle connections; seconds, not minutes. */
const DEFAULT_IDLE_CLOSE_MS = 10_000;

const PORT_DNS = 53;
const PORT_DOT = 853;
const PORT_HTTPS = 443;
const PORT_MAX = 65535;
/** RFC 8484 names no path; this is the one every public resolver uses. */
const DOH_DEFAULT_PATH = "/dns-query";
const DOH_MEDIA_TYPE = "application/dns-message";

// DNS header (RFC 1035 4.1.1).
const HEADER_LEN = 12;
const OFF_FLAGS_HI = 2;
const OFF_FLAGS_LO = 3;
const OFF_QDCOUNT = 4;
/** QR: this message is a response (high flags byte). */
const FLAG_QR = 0x80;
/** TC: truncated, ask again over TCP (high flags byte). */
const FLAG_TC = 0x02;
const RCODE_MASK = 0x0f;
const RCODE_SERVFAIL = 2;
const RCODE_REFUSED = 5;
const LABEL_KIND_MASK = 0xc0;
const LABEL_POINTER = 0xc0;
const QTYPE_QCLASS_LEN = 4;
const MAX_MESSAGE = 65535;

/** Every wire buffer starts with room for the TCP length prefix, so one buffer serves all transports. */
const LEN_PREFIX = 2;

/** Sockets per address family. A power of two (round-robin by mask). */
const UDP_POOL_SIZE = 4;
const UDP_POOL_MASK = UDP_POOL_SIZE - 1;
/** A UDP socket is replaced after this many queries or this age, so the source port keeps moving. */
const UDP_SOCKET_MAX_QUERIES = 10_000;
const UDP_SOCKET_MAX_AGE_MS = 60_000;
/**
 * In-flight queries per socket, connection or session. Well under the 65536 IDs: random picks
 * then need at most a few tries, and an off-path spoofer guessing an ID hits one in flight at
 * most a quarter of the time before the source and question checks.
 */
const MAX_INFLIGHT_PER_SOCKET = 16_384;
/** Random IDs are drawn from a batch filled by one crypto call. */
const RANDOM_ID_BATCH = 1024;
/** performance.now() and the timer clock can disagree by a fraction of a millisecond. */
const TIMER_SLACK_MS = 1;
/** Weight of a new sample in the RTT mean and variance (RFC 6298's alpha). */
const RTT_WEIGHT = 1 / 8;

const FAIL_LOCAL = 0; // our own limit or shutdown: no mark against the upstream
const FAIL_ERROR = 1; // network or protocol error
const FAIL_TIMEOUT = 2;
const FAIL_REFUSED = 3; // the upstream will not serve us: counts toward failing
const FAIL_SERVFAIL = 4; // the upstream works but could not answer this name: does not
type FailKind = typeof FAIL_LOCAL | typeof FAIL_ERROR | typeof FAIL_TIMEOUT | typeof FAIL_REFUSED | typeof FAIL_SERVFAIL;

// ---------------------------------------------------------------------------------------------
// Spec parsing

const SCHEME_RE = /^([a-z][a-z0-9+.-]*):\/\//i;
const PORT_RE = /^[0-9]{1,5}$/;
/** Digits and dots: a mistyped IPv4 address, not a host name. */
const ALL_DIGITS_RE = /^[0-9.]+$/;
const V4_MAPPED_RE = /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Parses and normalizes one upstream spec; throws UpstreamError(`upstream "x": why`) on bad input. */
export function parseUpstream(spec: string): ParsedUpstream {
  const bad = (why: string): UpstreamError =>
    new UpstreamError(UPSTREAM_SPEC_INVALID, `upstream ${JSON.stringify(spec)}: ${why}`, { spec });
  if (typeof spec !== "string") throw bad("not a string");
  const text = spec.trim();
  if (text === "") throw bad("empty");
  const m = SCHEME_RE.exec(text);
  const scheme = m ? m[1]!.toLowerCase() : "udp";
  let rest = m ? text.slice(m[0].length) : text;
  let type: UpstreamType;
  let defaultPort: number;
  switch (scheme) {
    case "udp":
      type = "dns";
      defaultPort = PORT_DNS;
      break;
    case "tcp":
      type = "tcp";
      defaultPort = PORT_DNS;
      break;
    case "tls":
      type = "dot";
      defaultPort = PORT_DOT;
      break;
    case "https":
      return parseDoh(text, bad);
    default:
      throw bad(`unknown scheme "${scheme}://" (expected udp://, tcp://, tls:// or https://)`);
  }

  let name: string | null = null;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    if (type !== "dot") throw bad("a #name (TLS server name) only applies to tls://");
    name = rest.slice(hash + 1).toLowerCase().replace(/\.$/, "");
    rest = rest.slice(0, hash);
    if (name === "") throw bad("empty TLS server name after #");
    if (net.isIP(name) !== 0) throw bad("the TLS server name after # must be a host name (leave it out to verify the IP address)");
    if (!HOSTNAME_RE.test(name)) throw bad(`"${name}" is not a valid TLS server name`);
  }

  let ip: string;
  let portText: string | null = null;
  if (rest === "") throw bad("no address");
  if (rest[0] === "[") {
    const close = rest.indexOf("]");
    if (close < 0) throw bad("missing ] after the IPv6 address");
    ip = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "") {
      if (after[0] !== ":") throw bad(`unexpected "${after}" after the IPv6 address`);
      portText = after.slice(1);
    }
    if (net.isIPv6(ip) === false) throw bad(`"${ip}" is not an IPv6 address`);
  } else {
    const colon = rest.indexOf(":");
    if (colon >= 0 && rest.indexOf(":", colon + 1) >= 0) {
      // Several colons and no brackets: a bare IPv6 address, default port.
      ip = rest;
      if (net.isIPv6(ip) === false) throw bad(`"${ip}" is not an IP address (write [IPv6]:port for a port)`);
    } else {
      ip = colon >= 0 ? rest.slice(0, colon) : rest;
      if (colon >= 0) portText = rest.slice(colon + 1);
      if (net.isIPv4(ip) === false) {
        throw bad(
          HOSTNAME_RE.test(ip.toLowerCase()) && !ALL_DIGITS_RE.test(ip)
            ? `needs an IP address, not the host name "${ip}" (resolving it would need the resolver itself)`
            : `"${ip}" is not an IP address`,
        );
      }
    }
  }
  const port = portText === null ? defaultPort : parsePort(portText, bad);
  const addr = normalizeIp(ip, bad);
  const hostPart = addr.includes(":") ? `[${addr}]` : addr;
  const scheme2 = type === "dns" ? "udp" : scheme;
  return {
    spec: `${scheme2}://${hostPart}:${port}${name === null ? "" : `#${name}`}`,
    type,
    ip: addr,
    host: name,
    port,
    path: null,
  };
}

function parseDoh(text: string, bad: (why: string) => UpstreamError): ParsedUpstream {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad("not a valid URL");
  }
  if (url.username !== "" || url.password !== "") throw bad("credentials in the URL are not supported");
  if (text.includes("#")) throw bad("a #fragment has no meaning in a DoH URL");
  if (url.port === "0") throw bad(`bad port "0" (expected 1-${PORT_MAX})`);
  const hostname = url.hostname;
  if (hostname === "") throw bad("no host");
  let ip: string | null = null;
  let host: string | null = null;
  if (hostname.startsWith("[")) {
    ip = normalizeIp(hostname.slice(1, -1), bad);
  } else if (net.isIPv4(hostname)) {
    ip = hostname;
  } else {
    host = hostname.replace(/\.$/, "");
    if (!HOSTNAME_RE.test(host)) throw bad(`"${hostname}" is not a valid host name`);
  }
  const port = url.port === "" ? PORT_HTTPS : Number(url.port);
  let path = url.pathname + url.search;
  if (path === "/") path = DOH_DEFAULT_PATH;
  const authority = ip === null ? host! : ip.includes(":") ? `[${ip}]` : ip;
  return {
    spec: `https://${authority}${port === PORT_HTTPS ? "" : `:${port}`}${path}`,
    type: "doh",
    ip,
    host,
    port,
    path,
  };
}

function parsePort(text: string, bad: (why: string) => UpstreamError): number {
  const port = PORT_RE.test(text) ? Number(text) : 0;
  if (port < 1 || port > PORT_MAX) throw bad(`bad port "${text}" (expected 1-${PORT_MAX})`);
  return port;
}

/** Canonical text of an address, the same form the kernel reports a reply's source in. */
function normalizeIp(ip: string, bad: (why: string) => UpstreamError): string {
  if (net.isIPv4(ip)) return ip;
  if (net.isIPv6(ip) === false) throw bad(`"${ip}" is not an IP address`);
  const zone = ip.indexOf("%");
  const bare = zone >= 0 ? ip.slice(0, zone) : ip;
  // The WHATWG URL parser prints IPv6 in RFC 5952 form, as inet_ntop does.
  const canon = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  // A reply to an IPv4-mapped destination reports its source in dotted form, which would then
  // never match; the plain IPv4 address says the same thing.
  if (V4_MAPPED_RE.test(canon)) {
    throw bad("an IPv4-mapped IPv6 address; write the IPv4 address instead");
  }
  return zone >= 0 ? canon + ip.slice(zone) : canon;
}

// ---------------------------------------------------------------------------------------------
// Wire helpers

/** Offset just past the question section, or -1 when the message is not a well-formed query. */
function questionEnd(q: Uint8Array): number {
  if (q.length < HEADER_LEN || q.length > MAX_MESSAGE) return -1;
  const count = (q[OFF_QDCOUNT]! << 8) | q[OFF_QDCOUNT + 1]!;
  let i = HEADER_LEN;
  for (let n = 0; n < count; n++) {
    for (;;) {
      if (i >= q.length) return -1;
      const len = q[i]!;
      if (len === 0) {
        i++;
        break;
      }
      const kind = len & LABEL_KIND_MASK;
      if (kind === LABEL_POINTER) {
        i += 2;
        break;
      }
      if (kind !== 0) return -1;
      i += 1 + len;
    }
    i += QTYPE_QCLASS_LEN;
    if (i > q.length) return -1;
  }
  return i;
}

/**
 * Whether the reply's question section is the query's. The query (at `base` in its buffer) was
 * checked by questionEnd, so its layout drives the walk. Names compare without ASCII case (a
 * resolver may fold case); lengths, pointers, types and classes compare exactly.
 */
function sameQuestion(r: Uint8Array, q: Uint8Array, base: number, qEnd: number): boolean {
  if (r.length < qEnd) return false;
  if (r[OFF_QDCOUNT] !== q[base + OFF_QDCOUNT] || r[OFF_QDCOUNT + 1] !== q[base + OFF_QDCOUNT + 1]) return false;
  const count = (q[base + OFF_QDCOUNT]! << 8) | q[base + OFF_QDCOUNT + 1]!;
  let i = HEADER_LEN;
  for (let n = 0; n < count; n++) {
    for (;;) {
      const len = q[base + i]!;
      if (r[i] !== len) return false;
      if (len === 0) {
        i++;
        break;
      }
      if ((len & LABEL_KIND_MASK) === LABEL_POINTER) {
        if (r[i + 1] !== q[base + i + 1]) return false;
        i += 2;
        break;
      }
      for (let k = i + 1, end = i + 1 + len; k < end; k++) {
        const a = r[k]!;
        const b = q[base + k]!;
        if (a !== b) {
          const la = a | 0x20;
          if (la !== (b | 0x20) || la < 0x61 || la > 0x7a) return false;
        }
      }
      i += 1 + len;
    }
    for (const end = i + QTYPE_QCLASS_LEN; i < end; i++) if (r[i] !== q[base + i]) return false;
  }
  return true;
}

/** Minimal reply check shared by every transport: a response to this very question. */
function validReply(r: Uint8Array, f: Forward): boolean {
  return r.length >= HEADER_LEN && (r[OFF_FLAGS_HI]! & FLAG_QR) !== 0 && sameQuestion(r, f.wire, LEN_PREFIX, f.qEnd);
}

let randomIds = new Uint16Array(RANDOM_ID_BATCH);
let randomPos = RANDOM_ID_BATCH;
function randomId(): number {
  if (randomPos === RANDOM_ID_BATCH) {
    randomIds = randomFillSync(randomIds);
    randomPos = 0;
  }
  return randomIds[randomPos++]!;
}

/** A copy that owns its memory, so a cached reply does not pin a larger receive buffer. */
function ownBytes(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Per-query state

/** Something an attempt is in flight on; told to forget it on timeout or shutdown. */
interface Carrier {
  cancel(f: Forward, timedOut: boolean): void;
}

/** One resolve() call. Also the attempt record: attempts are sequential, so one suffices. */
class Forward {
  /**
   * Copy of the query behind a 2-byte length prefix. Each further attempt gets a fresh copy: a
   * socket that timed out may still hold the old one in its write queue.
   */
  wire: Buffer;
  up: Upstream | null = null;
  carrier: Carrier | null = null;
  /** ID on the wire for this attempt. */
  wireId = 0;
  /** Attempt counter, so late callbacks from an earlier attempt are recognised. */
  seq = 0;
  sentAt = 0;
  deadline = 0;
  prev: Forward | null = null;
  next: Forward | null = null;
  listed = false;
  /** Next upstream index to consider. */
  pos = 0;
  /** Second pass: every upstream was failing, so failing ones are tried too. */
  includeFailing = false;
  attempts = 0;
  /** What each upstream did, by index; made on the first failure only. */
  outcomes: (string | undefined)[] | null = null;
  /** A stream connection closed under this attempt once already (retried on a fresh one). */
  resent = false;
  /** Restored in the reply; the wire's ID is rewritten per attempt. */
  readonly callerId: number;
  /** DoH: the stream and the body received so far. */
  h2: DohStream | null = null;
  body: Buffer | null = null;

  constructor(
    query: Uint8Array,
    readonly qEnd: number,
    readonly settle: (r: UpstreamReply) => void,
    readonly fail: (e: Error) => void,
  ) {
    const wire = Buffer.allocUnsafe(LEN_PREFIX + query.length);
    wire[0] = query.length >> 8;
    wire[1] = query.length & 0xff;
    wire.set(query, LEN_PREFIX);
    this.wire = wire;
    this.callerId = (query[0]! << 8) | query[1]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Upstream state

class Upstream {
  failing = false;
  consecutive = 0;
  probeAt = 0;
  queries = 0;
  failures = 0;
  timeouts = 0;
  lastError: string | null = null;
  rttMean = 0;
  rttVar = 0;
  rttSamples = 0;
  /** tcp/dot: the live connection; dns: the TCP connection for truncated replies. */
  conn: StreamConn | null = null;
  doh: DohSession | null = null;
  /** Last TLS session ticket, offered on reconnect to skip a full handshake. */
  tlsSession: Buffer | undefined = undefined;
  readonly family: 4 | 6;
  /** DoH request headers, built once: node:http2 only fills in pseudo-headers already present. */
  readonly h2Headers: http2.OutgoingHttpHeaders | null;

  constructor(readonly t: ParsedUpstream, readonly index: number) {
    this.family = t.ip !== null && t.ip.includes(":") ? 6 : 4;
    this.h2Headers =
      t.type === "doh"
        ? {
            ":method": "POST",
            ":scheme": "https",
            ":authority": authorityOf(t),
            ":path": t.path!,
            "content-type": DOH_MEDIA_TYPE,
            accept: DOH_MEDIA_TYPE,
          }
        : null;
  }

  /** Skipped while failing, except for one probe per retry interval. */
  usable(now: number, retryAfterMs: number): boolean {
    if (!this.failing) return true;
    if (now < this.probeAt) return false;
    this.probeAt = now + retryAfterMs;
    return true;
  }

  sample(rtt: number): void {
    if (this.rttSamples++ === 0) {
      this.rttMean = rtt;
      this.rttVar = 0;
      return;
    }
    // Incremental exponentially weighted mean and variance (West 1979).
    const diff = rtt - this.rttMean;
    const step = RTT_WEIGHT * diff;
    this.rttMean += step;
    this.rttVar = (1 - RTT_WEIGHT) * (this.rttVar + diff * step);
  }
}

function authorityOf(t: ParsedUpstream): string {
  const h = t.ip === null ? t.host! : t.ip.includes(":") ? `[${t.ip}]` : t.ip;
  return t.port === PORT_HTTPS ? h : `${h}:${t.port}`;
}

// ---------------------------------------------------------------------------------------------
// The forwarder

export class Upstreams {
  private readonly ups: Upstream[];
  private readonly timeoutMs: number;
  private readonly failAfter: number;
  private readonly retryAfterMs: number;
  /** @internal read by the transports */
  readonly idleCloseMs: number;
  /** @internal read by the transports */
  readonly secureContext: tls.SecureContext | undefined;
  private closed = false;

  private head: Forward | null = null;
  private tail: Forward | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly onTimer = (): void => this.expire();

  private readonly udp4: (UdpSlot | undefined)[] = new Array(UDP_POOL_SIZE);
  private readonly udp6: (UdpSlot | undefined)[] = new Array(UDP_POOL_SIZE);
  private udpTurn = 0;

  constructor(specs: string[], opts: UpstreamOptions = {}) {
    const seen = new Set<string>();
    this.ups = specs.map((s, i) => {
      const t = parseUpstream(s);
      if (seen.has(t.spec)) {
        throw new UpstreamError(UPSTREAM_SPEC_INVALID, `upstream ${JSON.stringify(s)}: listed twice (as ${t.spec})`, { spec: s });
      }
      seen.add(t.spec);
      return new Upstream(t, i);
    });
    this.timeoutMs = positive(opts.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.failAfter = positive(opts.failAfter, DEFAULT_FAIL_AFTER, "failAfter");
    this.retryAfterMs = positive(opts.retryAfterMs, DEFAULT_RETRY_AFTER_MS, "retryAfterMs");
    this.idleCloseMs = positive(opts.idleCloseMs, DEFAULT_IDLE_CLOSE_MS, "idleCloseMs");
    // One context for every connection: the CA is parsed once, and a bad PEM fails here, not per query.
    this.secureContext = opts.ca === undefined ? undefined : tls.createSecureContext({ ca: opts.ca });
  }

  /**
   * Forwards `query` (a full DNS message; its ID is the caller's). Tries upstreams in order,
   * skipping failing ones unless all are failing; a timeout, network error, SERVFAIL, REFUSED
   * or bad reply moves on to the next. Resolves with the first good reply, carrying the
   * caller's ID; rejects with an UpstreamError naming what each upstream did if none answers.
   * The query buffer is copied; the caller may reuse it at once.
   */
  resolve(query: Uint8Array): Promise<UpstreamReply> {
    if (this.closed) return Promise.reject(new UpstreamError(UPSTREAMS_CLOSED, "upstreams are closed"));
    const qEnd = questionEnd(query);
    if (qEnd < 0) {
      return Promise.reject(new UpstreamError(UPSTREAM_QUERY_MALFORMED, "query is not a well-formed DNS message"));
    }
    if (this.ups.length === 0) {
      return Promise.reject(new UpstreamError(UPSTREAMS_FAILED, "no upstream servers are configured"));
    }
    return new Promise<UpstreamReply>((settle, fail) => {
      const f = new Forward(query, qEnd, settle, fail);
      this.advance(f, performance.now());
    });
  }

  status(): UpstreamInfo[] {
    return this.ups.map((u) => ({
      spec: u.t.spec,
      type: u.t.type,
      ip: u.t.ip,
      host: u.t.host,
      port: u.t.port,
      path: u.t.path,
      failing: u.failing,
      queries: u.queries,
      failures: u.failures,
      timeouts: u.timeouts,
      lastError: u.lastError,
      avgRttMs: u.rttMean,
      rttVarianceMs: Math.sqrt(u.rttVar),
    }));
  }

  /** Rejects every query in flight and closes every socket, session and timer. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.head !== null) {
      const f = this.head;
      this.unlist(f);
      f.carrier?.cancel(f, false);
      f.carrier = null;
      f.fail(new UpstreamError(UPSTREAMS_CLOSED, "upstreams closed while the query was in flight"));
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const pool of [this.udp4, this.udp6]) {
      for (let i = 0; i < pool.length; i++) {
        pool[i]?.close();
        pool[i] = undefined;
      }
    }
    for (const u of this.ups) {
      u.conn?.destroy(null);
      u.conn = null;
      u.doh?.destroy();
      u.doh = null;
    }
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  // --- attempts -----------------------------------------------------------------------------

  /** Starts the next attempt, or settles the query as failed when no upstream is left. */
  private advance(f: Forward, now: number): void {
    const ups = this.ups;
    for (;;) {
      while (f.pos < ups.length) {
        const u = ups[f.pos++]!;
        if (f.includeFailing || u.usable(now, this.retryAfterMs)) {
          this.attempt(f, u, now);
          return;
        }
      }
      if (f.attempts > 0 || f.includeFailing) break;
      // Every upstream is failing: try them all anyway rather than answer nothing.
      f.includeFailing = true;
      f.pos = 0;
    }
    const lines: string[] = [];
    for (let i = 0; i < ups.length; i++) lines.push(`${ups[i]!.t.spec}: ${f.outcomes?.[i] ?? "skipped (marked failing)"}`);
    f.fail(
      new UpstreamError(UPSTREAMS_FAILED, `no upstream answered: ${lines.join("; ")}`, {
        attempts: ups.map((u, i) => ({ upstream: u.t.spec, outcome: f.outcomes?.[i] ?? "skipped" })),
      }),
    );
  }

  private attempt(f: Forward, u: Upstream, now: number): void {
    f.attempts++;
    f.seq++;
    f.up = u;
    f.carrier = null;
    f.resent = false;
    f.sentAt = now;
    u.queries++;
    if (f.attempts > 1) f.wire = Buffer.from(f.wire);
    this.list(f, now);
    let refused: string | null;
    switch (u.t.type) {
      case "dns":
        refused = this.udpSlot(u.family, now).send(f, u);
        break;
      case "tcp":
      case "dot":
        refused = this.streamOf(u).send(f);
        break;
      case "doh":
        refused = this.dohOf(u).send(f);
        break;
    }
    if (refused !== null) this.failed(f, refused, FAIL_LOCAL);
  }

  /** @internal A reply passed the transport's checks: restore the caller's ID and settle. */
  answered(f: Forward, reply: Uint8Array): void {
    const u = f.up!;
    const rcode = reply[OFF_FLAGS_LO]! & RCODE_MASK;
    if (rcode === RCODE_SERVFAIL || rcode === RCODE_REFUSED) {
      // The upstream did answer: its time is a fair sample even if the answer is no use.
      u.sample(performance.now() - f.sentAt);
      this.failed(f, rcode === RCODE_SERVFAIL ? "SERVFAIL" : "REFUSED", rcode === RCODE_SERVFAIL ? FAIL_SERVFAIL : FAIL_REFUSED);
      return;
    }
    this.unlist(f);
    f.carrier = null;
    const now = performance.now();
    const rtt = now - f.sentAt;
    u.sample(rtt);
    u.consecutive = 0;
    u.failing = false;
    reply[0] = f.callerId >> 8;
    reply[1] = f.callerId & 0xff;
    f.settle({ reply, upstream: u.t.spec, rttMs: rtt });
  }

  /** @internal The current attempt failed; the carrier has already forgotten it. */
  failed(f: Forward, why: string, kind: FailKind): void {
    this.unlist(f);
    f.carrier = null;
    if (this.closed) return; // close() has rejected it already
    const u = f.up!;
    const now = performance.now();
    if (kind !== FAIL_LOCAL) {
      u.failures++;
      u.lastError = why;
      if (kind === FAIL_TIMEOUT) u.timeouts++;
      if (kind !== FAIL_SERVFAIL && ++u.consecutive >= this.failAfter && !u.failing) {
        u.failing = true;
        u.probeAt = now + this.retryAfterMs;
      }
    }
    (f.outcomes ??= new Array(this.ups.length))[u.index] = why;
    this.advance(f, now);
  }

  /** @internal A truncated UDP reply: ask the same server over TCP, with a fresh deadline. */
  truncated(f: Forward): void {
    const u = f.up!;
    f.carrier = null;
    this.unlist(f);
    this.list(f, performance.now());
    const refused = this.streamOf(u).send(f);
    if (refused !== null) this.failed(f, refused, FAIL_LOCAL);
  }

  /** @internal A stream connection closed under a query it had sent; send it once more on a new one. */
  resend(f: Forward): void {
    const refused = this.streamOf(f.up!).send(f);
    if (refused !== null) this.failed(f, refused, FAIL_LOCAL);
  }

  // --- deadlines ----------------------------------------------------------------------------

  private list(f: Forward, now: number): void {
    f.deadline = now + this.timeoutMs;
    f.prev = this.tail;
    f.next = null;
    f.listed = true;
    if (this.tail === null) {
      this.head = f;
      if (this.timer === null) this.timer = setTimeout(this.onTimer, this.timeoutMs);
    } else {
      this.tail.next = f;
    }
    this.tail = f;
  }

  private unlist(f: Forward): void {
    if (!f.listed) return;
    f.listed = false;
    if (f.prev === null) this.head = f.next;
    else f.prev.next = f.next;
    if (f.next === null) this.tail = f.prev;
    else f.next.prev = f.prev;
    f.prev = f.next = null;
    if (this.head === null && this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private expire(): void {
    this.timer = null;
    const now = performance.now();
    const why = `timed out after ${this.timeoutMs} ms`;
    let f = this.head;
    while (f !== null && f.deadline <= now + TIMER_SLACK_MS) {
      this.unlist(f);
      f.carrier?.cancel(f, true);
      this.failed(f, why, FAIL_TIMEOUT);
      f = this.head;
    }
    if (this.head !== null && this.timer === null) {
      this.timer = setTimeout(this.onTimer, Math.max(0, this.head.deadline - now));
    }
  }

  // --- transports ---------------------------------------------------------------------------

  private udpSlot(family: 4 | 6, now: number): UdpSlot {
    const pool = family === 6 ? this.udp6 : this.udp4;
    const i = this.udpTurn++ & UDP_POOL_MASK;
    let s = pool[i];
    if (s === undefined || s.retired || s.sent >= UDP_SOCKET_MAX_QUERIES || now - s.born >= UDP_SOCKET_MAX_AGE_MS) {
      s?.retire();
      s = pool[i] = new UdpSlot(this, family, now);
    }
    return s;
  }

  private streamOf(u: Upstream): StreamConn {
    let c = u.conn;
    if (c === null || c.dead) c = u.conn = new StreamConn(this, u);
    return c;
  }

  private dohOf(u: Upstream): DohSession {
    let d = u.doh;
    if (d === null || d.dead) d = u.doh = new DohSession(this, u);
    return d;
  }
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`upstream option ${name} must be a positive number, got ${v}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// UDP

/**
 * One pooled UDP socket. Replies are matched by ID, then source address and port, then the
 * question; anything else is ignored, so an off-path spoofer must guess a random ID on a random
 * port for a question in flight, and a reply that fails the checks cannot cut the wait short.
 */
class UdpSlot implements Carrier {
  private readonly inflight = new Map<number, Forward>();
  private readonly sock: dgram.Socket;
  sent = 0;
  retired = false;
  private closed = false;

  constructor(
    private readonly owner: Upstreams,
    family: 4 | 6,
    readonly born: number,
  ) {
    this.sock = dgram.createSocket(family === 6 ? "udp6" : "udp4");
    this.sock.on("message", (msg, rinfo) => this.onMessage(msg, rinfo));
    this.sock.on("error", (err) => this.onError(err));
    // Port 0: the kernel picks a random ephemeral port.
    this.sock.bind(0);
    this.sock.unref();
  }

  send(f: Forward, u: Upstream): string | null {
    if (this.inflight.size >= MAX_INFLIGHT_PER_SOCKET) return "too many queries in flight";
    let id: number;
    do id = randomId();
    while (this.inflight.has(id));
    this.inflight.set(id, f);
    this.sent++;
    f.wireId = id;
    f.carrier = this;
    const wire = f.wire;
    wire[LEN_PREFIX] = id >> 8;
    wire[LEN_PREFIX + 1] = id & 0xff;
    // The callback is the one place a send error (no route, firewall) surfaces; failing at once
    // beats waiting out the timeout. `seq` tells a late callback from the current attempt.
    const seq = f.seq;
    this.sock.send(wire, LEN_PREFIX, wire.length - LEN_PREFIX, u.t.port, u.t.ip!, (err) => {
      if (err && f.seq === seq && f.carrier === this) {
        this.forget(f);
        this.owner.failed(f, err.message, FAIL_ERROR);
      }
    });
    return null;
  }

  cancel(f: Forward): void {
    this.forget(f);
  }

  private forget(f: Forward): void {
    if (this.inflight.get(f.wireId) === f) this.inflight.delete(f.wireId);
    if (this.retired && this.inflight.size === 0) this.close();
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (msg.length < HEADER_LEN) return;
    const id = (msg[0]! << 8) | msg[1]!;
    const f = this.inflight.get(id);
    if (f === undefined) return;
    const t = f.up!.t;
    if (rinfo.port !== t.port || rinfo.address !== t.ip || !validReply(msg, f)) return;
    this.forget(f);
    if ((msg[OFF_FLAGS_HI]! & FLAG_TC) !== 0) {
      this.owner.truncated(f);
      return;
    }
    // dgram hands over a buffer of exactly this message: no copy needed.
    this.owner.answered(f, msg);
  }

  private onError(err: Error): void {
    // A receive error leaves the socket in doubt: retire it and let its queries move on.
    this.retired = true;
    const stuck = [...this.inflight.values()];
    this.inflight.clear();
    for (const f of stuck) this.owner.failed(f, err.message, FAIL_ERROR);
    this.close();
  }

  /** No new queries; closes once the ones in flight are answered or time out. */
  retire(): void {
    this.retired = true;
    if (this.inflight.size === 0) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.retired = true;
    this.inflight.clear();
    try {
      this.sock.close();
    } catch {
      // Already closed by a failed bind: nothing left to release.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// TCP and TLS (RFC 7766, RFC 7858)

/**
 * One connection to a tcp/dot upstream (or a dns upstream's TCP fallback), pipelining queries
 * with 2-byte length framing. IDs are unique per connection, not random: the handshake already
 * keeps off-path spoofers out. A connection is dropped when idle, on close, or when it fails
 * to connect within a query's timeout; the next query opens a new one.
 */
class StreamConn implements Carrier {
  private readonly inflight = new Map<number, Forward>();
  private readonly sock: net.Socket;
  private partial: Buffer | null = null;
  private nextId = randomId();
  private connected = false;
  /** Replies received: a close on a connection that has worked is likely the server's idle close. */
  private replies = 0;
  private error: Error | null = null;
  private idleSince = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  dead = false;

  constructor(
    private readonly owner: Upstreams,
    private readonly up: Upstream,
  ) {
    const t = up.t;
    if (t.type === "dot") {
      const s = tls.connect({
        host: t.ip!,
        port: t.port,
        // Without a name, Node checks the certificate against the IP address.
        servername: t.host ?? undefined,
        secureContext: owner.secureContext,
        session: up.tlsSession,
      });
      s.on("session", (ticket: Buffer) => (up.tlsSession = ticket));
      s.once("secureConnect", () => (this.connected = true));
      this.sock = s;
    } else {
      this.sock = net.connect({ host: t.ip!, port: t.port });
      this.sock.once("connect", () => (this.connected = true));
    }
    this.sock.setNoDelay(true);
    this.sock.unref();
    this.sock.on("data", (chunk: Buffer) => this.onData(chunk));
    this.sock.on("error", (err) => (this.error = err));
    // The server's FIN: queries sent from now on would be lost, so the next one opens a new connection.
    this.sock.on("end", () => this.retire());
    this.sock.on("close", () => this.onClose());
  }

  send(f: Forward): string | null {
    if (this.inflight.size >= MAX_INFLIGHT_PER_SOCKET) return "too many queries in flight";
    let id = this.nextId;
    while (this.inflight.has(id)) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    this.inflight.set(id, f);
    f.wireId = id;
    f.carrier = this;
    const wire = f.wire;
    wire[LEN_PREFIX] = id >> 8;
    wire[LEN_PREFIX + 1] = id & 0xff;
    this.sock.write(wire);
    return null;
  }

  cancel(f: Forward, timedOut: boolean): void {
    this.forget(f);
    // Still connecting after a whole timeout: the server is unreachable; start afresh next time.
    if (timedOut && !this.connected) this.destroy(new Error(`connect to ${this.up.t.spec} timed out`));
  }

  private forget(f: Forward): void {
    if (this.inflight.get(f.wireId) === f) this.inflight.delete(f.wireId);
    if (this.inflight.size === 0 && !this.dead) this.idle();
  }

  /** Arms the idle close; one timer per idle period, not per query. */
  private idle(): void {
    this.idleSince = performance.now();
    if (this.idleTimer === null) this.idleTimer = setTimeout(() => this.idleCheck(), this.owner.idleCloseMs).unref();
  }

  private idleCheck(): void {
    this.idleTimer = null;
    if (this.dead || this.inflight.size > 0) return; // busy again: re-armed when it next goes idle
    const left = this.idleSince + this.owner.idleCloseMs - performance.now();
    if (left > TIMER_SLACK_MS) {
      this.idleTimer = setTimeout(() => this.idleCheck(), left).unref();
      return;
    }
    this.retire();
    // FIN (and TLS close_notify) first, so the TIME_WAIT state lands on our side as RFC 7766 asks.
    this.sock.destroySoon();
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.partial !== null) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    let off = 0;
    while (buf.length - off >= LEN_PREFIX) {
      const len = (buf[off]! << 8) | buf[off + 1]!;
      const start = off + LEN_PREFIX;
      if (buf.length - start < len) break;
      this.onFrame(buf, start, start + len);
      off = start + len;
    }
    if (off < buf.length) this.partial = off === 0 ? buf : buf.subarray(off);
  }

  private onFrame(buf: Buffer, start: number, end: number): void {
    if (end - start < HEADER_LEN) return;
    const f = this.inflight.get((buf[start]! << 8) | buf[start + 1]!);
    if (f === undefined) return; // answer to a query that already timed out
    this.replies++;
    const reply = ownBytes(buf, start, end);
    // A mismatch is most likely the late answer to an earlier query whose ID was reused: wait on.
    if (!validReply(reply, f)) return;
    this.forget(f);
    this.owner.answered(f, reply);
  }

  private retire(): void {
    this.dead = true;
    if (this.up.conn === this) this.up.conn = null;
  }

  private onClose(): void {
    this.retire();
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.inflight.size === 0) return;
    const stuck = [...this.inflight.values()];
    this.inflight.clear();
    const why = this.error?.message ?? "connection closed before the reply";
    for (const f of stuck) {
      if (this.owner.isClosed) break;
      // A server may close a connection that served us while our query was on the way (its idle
      // close): RFC 7766 6.2.1.1 expects the client to send it again on a new connection, once.
      if (this.replies > 0 && !f.resent) {
        f.resent = true;
        this.owner.resend(f);
      } else {
        this.owner.failed(f, why, FAIL_ERROR);
      }
    }
  }

  destroy(err: Error | null): void {
    this.retire();
    if (err !== null) this.error = err;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// DNS over HTTPS (RFC 8484)

const kForward = Symbol("forward");
type DohStream = http2.ClientHttp2Stream & { [kForward]: Forward | null };

/** One HTTP/2 session to a DoH upstream; one stream per query, handled by shared functions. */
class DohSession implements Carrier {
  private readonly session: http2.ClientHttp2Session;
  private active = 0;
  private idleSince = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private error: Error | null = null;
  dead = false;

  constructor(
    readonly owner: Upstreams,
    private readonly up: Upstream,
  ) {
    const t = up.t;
    const origin = `https://${up.h2Headers![":authority"] as string}`;
    // Our own TLS socket: node:http2 would otherwise send an IP address as the SNI name (which
    // RFC 6066 forbids and Node warns about). Without a name, the IP is verified.
    const connectTls = (): tls.TLSSocket =>
      tls.connect({
        host: t.ip ?? t.host!,
        port: t.port,
        servername: t.host ?? undefined,
        ALPNProtocols: ["h2"],
        secureContext: owner.secureContext,
      });
    this.session = http2.connect(origin, { createConnection: connectTls, settings: { enablePush: false } });
    this.session.on("error", (err) => (this.error = err));
    this.session.on("goaway", () => this.retire());
    this.session.on("close", () => this.onClose());
    this.session.unref();
  }

  send(f: Forward): string | null {
    if (this.active >= MAX_INFLIGHT_PER_SOCKET) return "too many queries in flight";
    let stream: DohStream;
    try {
      stream = this.session.request(this.up.h2Headers!) as DohStream;
    } catch (err) {
      this.retire();
      return (err as Error).message;
    }
    this.active++;
    f.carrier = this;
    f.h2 = stream;
    f.body = null;
    stream[kForward] = f;
    stream.on("response", onDohResponse);
    stream.on("data", onDohData);
    stream.on("end", onDohEnd);
    stream.on("error", onDohError);
    stream.on("close", onDohClose);
    // RFC 8484 4.1: ID 0 on the wire, so the same question is the same (cacheable) request.
    const wire = f.wire;
    wire[LEN_PREFIX] = 0;
    wire[LEN_PREFIX + 1] = 0;
    stream.end(wire.subarray(LEN_PREFIX));
    return null;
  }

  cancel(f: Forward, timedOut: boolean): void {
    const s = f.h2;
    if (s !== null) {
      this.detach(f, s);
      if (!s.closed) s.close(http2.constants.NGHTTP2_CANCEL);
    }
    if (timedOut && this.session.connecting) this.destroy();
  }

  /** Unties a stream from its query; the stream's handlers ignore it from then on. */
  detach(f: Forward, s: DohStream): void {
    s[kForward] = null;
    f.h2 = null;
    f.body = null;
    if (--this.active === 0 && !this.dead) {
      this.idleSince = performance.now();
      if (this.idleTimer === null) this.idleTimer = setTimeout(() => this.idleCheck(), this.owner.idleCloseMs).unref();
    }
  }

  /** Ends the stream's attempt with a failure. */
  streamFailed(f: Forward, s: DohStream, why: string): void {
    this.detach(f, s);
    if (!s.closed) s.close(http2.constants.NGHTTP2_CANCEL);
    this.owner.failed(f, why, FAIL_ERROR);
  }

  streamError(): string | null {
    return this.error?.message ?? null;
  }

  private idleCheck(): void {
    this.idleTimer = null;
    if (this.dead || this.active > 0) return;
    const left = this.idleSince + this.owner.idleCloseMs - performance.now();
    if (left > TIMER_SLACK_MS) {
      this.idleTimer = setTimeout(() => this.idleCheck(), left).unref();
      return;
    }
    this.retire();
  }

  /** No new streams; the session closes gracefully once its streams are done. */
  private retire(): void {
    this.dead = true;
    if (this.up.doh === this) this.up.doh = null;
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  private onClose(): void {
    this.dead = true;
    if (this.up.doh === this) this.up.doh = null;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  destroy(): void {
    this.dead = true;
    if (this.up.doh === this) this.up.doh = null;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.session.destroy();
  }
}

// Stream handlers are shared functions (`this` is the stream), not closures made per query.

function onDohResponse(this: DohStream, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
  const f = this[kForward];
  if (f === null) return;
  const d = f.carrier as DohSession;
  const status = headers[":status"];
  if (status !== 200) {
    d.streamFailed(f, this, `HTTP ${status}`);
    return;
  }
  const type = headers["content-type"];
  if (type === undefined || !type.toLowerCase().startsWith(DOH_MEDIA_TYPE)) {
    d.streamFailed(f, this, `unexpected content-type ${JSON.stringify(type ?? "")}`);
  }
}

function onDohData(this: DohStream, chunk: Buffer): void {
  const f = this[kForward];
  if (f === null) return;
  // A DNS message fits one or a few DATA frames; concat beats keeping a list for that.
  const body = f.body === null ? chunk : Buffer.concat([f.body, chunk]);
  if (body.length > MAX_MESSAGE) {
    (f.carrier as DohSession).streamFailed(f, this, "reply larger than a DNS message");
    return;
  }
  f.body = body;
}

function onDohEnd(this: DohStream): void {
  const f = this[kForward];
  if (f === null) return;
  const d = f.carrier as DohSession;
  const body = f.body;
  if (body === null || !validReply(body, f)) {
    d.streamFailed(f, this, body === null ? "empty reply" : "reply does not match the query");
    return;
  }
  d.detach(f, this);
  d.owner.answered(f, body.byteLength === body.buffer.byteLength ? body : ownBytes(body, 0, body.length));
}

function onDohError(this: DohStream, err: Error): void {
  const f = this[kForward];
  if (f === null) return;
  (f.carrier as DohSession).streamFailed(f, this, err.message);
}

function onDohClose(this: DohStream): void {
  const f = this[kForward];
  if (f === null) return;
  const d = f.carrier as DohSession;
  d.streamFailed(f, this, d.streamError() ?? `stream closed (HTTP/2 code ${this.rstCode})`);
}
