// The database WebSocket (/api/database/v1): Portmaster's `<opID>|<cmd>|...` protocol over the
// databases sluice exposes (config:, core:, runtime:, network:, notifications:). Each database
// is a small adapter over the store that owns the data; stores announce changes, and the hub
// fans them out to the subscriptions whose query matches.
//
// Memory stays bounded per client: a socket whose unsent replies pile up beyond
// MAX_BUFFERED (a subscriber that stopped reading) is closed with a reason saying so, rather
// than queueing without end; operations per socket are capped too.

import type { WebSocket } from "uWebSockets.js";
import * as P from "./protocol.js";
import { parseQuery, QueryError, type Query } from "./query.js";
import type { SocketHandler } from "../server.js";
import type { Token } from "../permissions.js";

/** A record as a database hands it out: its key below the database name, value and times. */
export interface DbRecord {
  key: string;
  value: object;
  created: number;
  modified: number;
  expires?: number;
}

export interface Database {
  readonly name: string;
  get(key: string): DbRecord | null;
  /** Every record whose key starts with the prefix, sorted by key. */
  scan(prefix: string): Iterable<DbRecord>;
  /** create/update/insert; throws an Error whose message becomes the error reply. */
  write?(key: string, cmd: "create" | "update" | "insert", data: Record<string, unknown>, token: Token): Promise<void> | void;
  delete?(key: string, token: Token): Promise<void> | void;
}

/** Unsent bytes a socket may hold before it is closed as too slow. */
export const MAX_BUFFERED = 4 << 20;
const MAX_PAYLOAD = 1 << 20;
const MAX_OPS_PER_SOCKET = 256;
const CLOSE_TOO_SLOW = 4008;
const CLOSE_TOO_MANY = 4009;

interface Sub {
  query: Query;
  /** A qsub still sending its snapshot (changes are queued until `done`). */
  snapshotting: boolean;
}

export interface SocketState {
  token: Token;
  remote: string;
  subs: Map<string, Sub>;
  closed: boolean;
  ws: WebSocket<SocketState> | null;
}

export class DatabaseHub implements SocketHandler<SocketState> {
  readonly maxPayload = MAX_PAYLOAD;
  readonly maxBackpressure = MAX_BUFFERED * 2;
  private readonly dbs = new Map<string, Database>();
  private readonly sockets = new Set<SocketState>();
  readonly counters = { messages: 0, updatesSent: 0, slowClosed: 0 };

  register(db: Database): void {
    this.dbs.set(db.name, db);
  }

  get databases(): string[] {
    return [...this.dbs.keys()];
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * A store changed a record (null: deleted): tell every matching subscription. `fresh` says
   * whether it is new (`new`) or changed (`upd`) when the store knows; otherwise a record whose
   * Created equals its Modified counts as new, as in Portmaster.
   */
  publish(db: string, key: string, rec: DbRecord | null, fresh?: boolean): void {
    if (this.sockets.size === 0) return;
    let json: string | null = null;
    for (const s of this.sockets) {
      for (const [op, sub] of s.subs) {
        if (sub.query.db !== db || !sub.query.matchesKey(key)) continue;
        const full = `${db}:${key}`;
        if (rec === null) {
          this.send(s, P.del(op, full));
          continue;
        }
        if (!sub.query.matches(rec.value)) continue;
        json ??= P.recordJson(rec.value, meta(db, rec));
        this.send(s, (fresh ?? rec.created === rec.modified) ? P.newReply(op, full, json) : P.upd(op, full, json));
        this.counters.updatesSent++;
      }
    }
  }

  create(token: Token, remote: string): SocketState {
    return { token, remote, subs: new Map(), closed: false, ws: null };
  }

  open(ws: WebSocket<SocketState>): void {
    const s = ws.getUserData();
    s.ws = ws;
    this.sockets.add(s);
  }

  close(ws: WebSocket<SocketState>): void {
    const s = ws.getUserData();
    s.closed = true;
    s.ws = null;
    s.subs.clear();
    this.sockets.delete(s);
  }

  drain(): void {
    // Nothing waits on drain: replies are never held back, only refused when too far behind.
  }

  message(ws: WebSocket<SocketState>, text: string): void {
    this.counters.messages++;
    const s = ws.getUserData();
    const req = P.parseRequest(text);
    if (P.isProtocolError(req)) return this.send(s, P.error(req.op, req.error));
    const { op } = req;
    switch (req.cmd) {
      case "get":
        return this.get(s, op, req.arg);
      case "query":
      case "sub":
      case "qsub":
        return this.query(s, op, req.cmd, req.arg);
      case "create":
      case "update":
      case "insert":
        return this.write(s, op, req.cmd, req.key, req.data);
      case "delete":
        return this.remove(s, op, req.arg);
      case "cancel":
        if (s.subs.delete(op)) return this.send(s, P.done(op));
        return this.send(s, P.error(op, "could not find subscription"));
    }
  }

  private resolve(s: SocketState, op: string, full: string): { db: Database; key: string } | null {
    const colon = full.indexOf(":");
    const name = colon < 0 ? full : full.slice(0, colon);
    const db = this.dbs.get(name);
    if (!db) {
      this.send(s, P.error(op, `database "${name}" does not exist (available: ${this.databases.join(", ")})`));
      return null;
    }
    return { db, key: colon < 0 ? "" : full.slice(colon + 1) };
  }

  private get(s: SocketState, op: string, full: string): void {
    const r = this.resolve(s, op, full);
    if (!r) return;
    const rec = r.db.get(r.key);
    if (!rec) return this.send(s, P.error(op, "storage entry not found"));
    this.send(s, P.ok(op, `${r.db.name}:${rec.key}`, P.recordJson(rec.value, meta(r.db.name, rec))));
  }

  private query(s: SocketState, op: string, cmd: "query" | "sub" | "qsub", text: string): void {
    let q: Query;
    try {
      q = parseQuery(text.startsWith("query ") || text === "query" ? text : `query ${text}`);
    } catch (err) {
      return this.send(s, P.error(op, err instanceof QueryError ? `invalid query: ${err.message}` : String(err)));
    }
    const db = this.dbs.get(q.db);
    if (!db) return this.send(s, P.error(op, `database "${q.db}" does not exist (available: ${this.databases.join(", ")})`));
    if (cmd !== "query") {
      if (s.subs.size >= MAX_OPS_PER_SOCKET) {
        s.ws?.end(CLOSE_TOO_MANY, `more than ${MAX_OPS_PER_SOCKET} subscriptions on one connection`);
        return;
      }
      s.subs.set(op, { query: q, snapshotting: false });
      if (cmd === "sub") return;
    }
    // Stores are in memory and the scan is synchronous, so no change can slip in between the
    // snapshot and the live stream of a qsub.
    let skipped = 0;
    let sent = 0;
    for (const rec of db.scan(q.prefix)) {
      if (q.limit !== null && sent >= q.limit) break;
      if (!q.matches(rec.value)) continue;
      if (q.offset !== null && skipped < q.offset) {
        skipped++;
        continue;
      }
      this.send(s, P.ok(op, `${db.name}:${rec.key}`, P.recordJson(rec.value, meta(db.name, rec))));
      sent++;
      if (s.closed) return;
    }
    this.send(s, P.done(op));
  }

  private write(s: SocketState, op: string, cmd: "create" | "update" | "insert", full: string, payload: string): void {
    const r = this.resolve(s, op, full);
    if (!r) return;
    if (!r.db.write) return this.send(s, P.error(op, `database "${r.db.name}" is read-only`));
    let data: unknown;
    try {
      data = JSON.parse(payload);
    } catch (err) {
      return this.send(s, P.error(op, `bad request: the payload is not valid JSON: ${(err as Error).message}`));
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) return this.send(s, P.error(op, "values must be in a map"));
    const { _meta: _ignored, ...fields } = data as Record<string, unknown>;
    // Portmaster's insert sets each given field into the existing record; nothing to set is an error.
    if (cmd === "insert" && Object.keys(fields).length === 0) return this.send(s, P.error(op, "could not find any valid values"));
    this.settle(s, op, () => r.db.write!(r.key, cmd, fields, s.token));
  }

  private remove(s: SocketState, op: string, full: string): void {
    const r = this.resolve(s, op, full);
    if (!r) return;
    if (!r.db.delete) return this.send(s, P.error(op, `database "${r.db.name}" is read-only`));
    this.settle(s, op, () => r.db.delete!(r.key, s.token));
  }

  private settle(s: SocketState, op: string, f: () => Promise<void> | void): void {
    let p: Promise<void> | void;
    try {
      p = f();
    } catch (err) {
      return this.send(s, P.error(op, (err as Error).message));
    }
    if (p instanceof Promise) p.then(() => this.send(s, P.success(op)), (err: unknown) => this.send(s, P.error(op, (err as Error).message)));
    else this.send(s, P.success(op));
  }

  /** Sends one reply as a binary frame (as Portmaster does); closes a socket that fell behind. */
  private send(s: SocketState, msg: string): void {
    const ws = s.ws;
    if (s.closed || !ws) return;
    if (ws.getBufferedAmount() > MAX_BUFFERED) {
      this.counters.slowClosed++;
      s.closed = true;
      ws.end(CLOSE_TOO_SLOW, `too slow: more than ${MAX_BUFFERED >> 20} MiB of replies unread; reconnect and subscribe again`);
      return;
    }
    ws.cork(() => ws.send(msg, true));
  }

  closeAll(): void {
    for (const s of this.sockets) s.ws?.end(1001, "sluice is shutting down");
  }
}

function meta(db: string, rec: DbRecord): P.RecordMeta {
  return { Created: rec.created, Modified: rec.modified, Expires: rec.expires ?? 0, Deleted: 0, Key: `${db}:${rec.key}` };
}
