// Message grammar of the Portmaster-compatible database WebSocket API (/api/database/v1).
//
//   request : <opID> "|" <cmd> [ "|" <arg> [ "|" <payload> ] ]
//   reply   : <opID> "|" <type> [ "|" <keyOrMessage> [ "|" <payload> ] ]
//
// Pure string handling; the transport lives elsewhere. The split rules mirror Portmaster's
// exactly (at most three parts, then key|payload for the writing commands) because clients
// rely on the quirks: queries and payloads may contain "|", keys may not.

export const SEPARATOR = "|";

/** The dsd format byte for JSON, the only data format this server reads or writes. */
export const FORMAT_JSON = "J";

export const ERROR_MALFORMED = "bad request: malformed message";
export const ERROR_UNKNOWN_METHOD = "bad request: unknown method";

/** Portmaster rejects create/update payloads shorter than a format byte plus one data byte. */
const MIN_PAYLOAD_LENGTH = 2;

export type ArgCommand = "get" | "query" | "sub" | "qsub" | "delete";
export type DataCommand = "create" | "update" | "insert";

/** A command whose single argument is a key (get, delete) or a query text (query, sub, qsub). */
export interface ArgRequest {
  readonly op: string;
  readonly cmd: ArgCommand;
  readonly arg: string;
}

/** A writing command; data is the record text with the format byte already removed. */
export interface DataRequest {
  readonly op: string;
  readonly cmd: DataCommand;
  readonly key: string;
  readonly data: string;
}

export interface CancelRequest {
  readonly op: string;
  readonly cmd: "cancel";
}

export type Request = ArgRequest | DataRequest | CancelRequest;

/** A request that cannot be served; reply with error(op, error). op is "" when unknown. */
export interface ProtocolError {
  readonly error: string;
  readonly op: string;
}

const ARG_COMMANDS: ReadonlySet<string> = new Set<ArgCommand>(["get", "query", "sub", "qsub", "delete"]);
const DATA_COMMANDS: ReadonlySet<string> = new Set<DataCommand>(["create", "update", "insert"]);

export function isProtocolError(parsed: Request | ProtocolError): parsed is ProtocolError {
  return "error" in parsed;
}

/** Splits one incoming WebSocket message into a request, or says why it cannot. */
export function parseRequest(text: string): Request | ProtocolError {
  const first = text.indexOf(SEPARATOR);
  if (first <= 0) return malformed(); // no separator, or an empty opID
  const op = text.slice(0, first);
  const second = text.indexOf(SEPARATOR, first + 1);
  if (second < 0) {
    // The only valid two-part message is "<op>|cancel".
    return text.slice(first + 1) === "cancel" ? { op, cmd: "cancel" } : malformed();
  }
  const cmd = text.slice(first + 1, second);
  const rest = text.slice(second + 1);
  if (isArgCommand(cmd)) return { op, cmd, arg: rest };
  if (isDataCommand(cmd)) return parseDataRequest(op, cmd, rest);
  // Includes "<op>|cancel|...": Portmaster only knows cancel in its two-part form.
  return { error: ERROR_UNKNOWN_METHOD, op };
}

function isArgCommand(cmd: string): cmd is ArgCommand {
  return ARG_COMMANDS.has(cmd);
}

function isDataCommand(cmd: string): cmd is DataCommand {
  return DATA_COMMANDS.has(cmd);
}

function malformed(op = ""): ProtocolError {
  return { error: ERROR_MALFORMED, op };
}

/** rest is "<key>|<payload>"; the payload may itself contain "|". */
function parseDataRequest(op: string, cmd: DataCommand, rest: string): DataRequest | ProtocolError {
  const bar = rest.indexOf(SEPARATOR);
  if (bar < 0) return malformed(); // Portmaster reports a missing key|data split without the opID
  const key = rest.slice(0, bar);
  const payload = rest.slice(bar + 1);
  if (cmd === "insert") return parseInsertPayload(op, key, payload);
  // From here on Portmaster already knows the op, so the errors carry it.
  if (payload.length < MIN_PAYLOAD_LENGTH) return malformed(op);
  const format = String.fromCodePoint(payload.codePointAt(0) ?? 0);
  if (format !== FORMAT_JSON) {
    return { error: `unsupported data format ${format}, only J (JSON) is supported`, op };
  }
  return { op, cmd, key, data: payload.slice(FORMAT_JSON.length) };
}

/**
 * Portmaster's server reads insert payloads as bare JSON, while its own Angular client sends
 * "J{...}"; accept both. JSON text never starts with "J", so stripping it is unambiguous.
 */
function parseInsertPayload(op: string, key: string, payload: string): DataRequest | ProtocolError {
  const data = payload.startsWith(FORMAT_JSON) ? payload.slice(FORMAT_JSON.length) : payload;
  if (data === "") return malformed(op);
  return { op, cmd: "insert", key, data };
}

// ---- replies ----

export type ReplyType = "ok" | "upd" | "new" | "del" | "success" | "error" | "warning" | "done";

/** Joins a reply; the key/message and the payload are appended only when non-empty. */
function compose(op: string, type: ReplyType, keyOrMessage = "", payload = ""): string {
  let reply = op + SEPARATOR + type;
  if (keyOrMessage !== "") reply += SEPARATOR + keyOrMessage;
  if (payload !== "") reply += SEPARATOR + payload;
  return reply;
}

/** Prefixes JSON text with its format byte; no JSON means no payload at all. */
function jsonPayload(json: string): string {
  return json === "" ? "" : FORMAT_JSON + json;
}

/** A record in a get or query result (key includes "<db>:"). */
export function ok(op: string, key: string, json: string): string {
  return compose(op, "ok", key, jsonPayload(json));
}

/** A changed record in a subscription stream. */
export function upd(op: string, key: string, json: string): string {
  return compose(op, "upd", key, jsonPayload(json));
}

/** A created record in a subscription stream ("new" is reserved, so it is exported by alias). */
export function newReply(op: string, key: string, json: string): string {
  return compose(op, "new", key, jsonPayload(json));
}
export { newReply as new };

/** A deleted record in a subscription stream; it carries no data. */
export function del(op: string, key: string): string {
  return compose(op, "del", key);
}

export function success(op: string): string {
  return compose(op, "success");
}

export function error(op: string, message: string): string {
  return compose(op, "error", message);
}

export function warning(op: string, message: string): string {
  return compose(op, "warning", message);
}

export function done(op: string): string {
  return compose(op, "done");
}

// ---- record serialization ----

/** Portmaster's record metadata; timestamps are unix seconds, 0 meaning "never". */
export interface RecordMeta {
  readonly Created: number;
  readonly Modified: number;
  readonly Expires: number;
  readonly Deleted: number;
  /** The full key, "<db>:<key>". */
  readonly Key: string;
}

/**
 * The JSON text of a record as Portmaster sends it: the record's fields plus "_meta".
 * Timestamps are truncated to whole seconds because Go marshals them as int64.
 */
export function recordJson(value: object, meta: RecordMeta): string {
  if (Array.isArray(value)) throw new TypeError("a database record must be a JSON object, not an array");
  const _meta = {
    Created: Math.trunc(meta.Created),
    Modified: Math.trunc(meta.Modified),
    Expires: Math.trunc(meta.Expires),
    Deleted: Math.trunc(meta.Deleted),
    Key: meta.Key,
  };
  return JSON.stringify({ ...value, _meta });
}
