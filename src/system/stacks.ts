// A text "stack dump" for `debug/stack`, the Node counterpart of Portmaster's goroutine dump:
// the main thread's JavaScript stack, each worker thread's stack and the open libuv handles,
// taken from the diagnostic report (process.report). Environment variables, command line and
// shared objects in that report are deliberately left out: the endpoint must not leak secrets.

/** Deeper than the default 10 frames, so the request's origin is usually visible. */
const STACK_FRAMES = 50;
const INDENT = "  ";

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function objectAt(obj: JsonObject, key: string): JsonObject {
  const value = obj[key];
  return isObject(value) ? value : {};
}

function arrayAt(obj: JsonObject, key: string): unknown[] {
  const value = obj[key];
  return Array.isArray(value) ? value : [];
}

function indent(lines: readonly string[], depth = 1): string {
  const prefix = INDENT.repeat(depth);
  return lines.map((line) => prefix + line).join("\n");
}

/** The stack of whoever calls this (on the main thread: the request being served). */
function currentStack(): string {
  const previous = Error.stackTraceLimit;
  Error.stackTraceLimit = STACK_FRAMES;
  try {
    return new Error("stack of the main thread").stack ?? "(no stack available)";
  } finally {
    Error.stackTraceLimit = previous;
  }
}

/**
 * The diagnostic report as plain data. Network details are excluded while it is taken where
 * supported: otherwise Node resolves socket peers' names synchronously, which can stall the
 * event loop on a gateway with many sockets and slow DNS.
 */
function takeReport(): JsonObject {
  const report = process.report;
  if (!("excludeNetwork" in report)) return toObject(report.getReport());
  const previous = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    return toObject(report.getReport());
  } finally {
    report.excludeNetwork = previous;
  }
}

function toObject(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

function formatJsStack(report: JsonObject): string {
  const frames = arrayAt(objectAt(report, "javascriptStack"), "stack").filter((f): f is string => typeof f === "string");
  return frames.length > 0 ? indent(frames) : `${INDENT}(not available)`;
}

function formatHandles(report: JsonObject): string {
  const handles = arrayAt(report, "libuv").filter(isObject);
  const byType = new Map<string, number>();
  let active = 0;
  let referenced = 0;
  for (const handle of handles) {
    const type = typeof handle.type === "string" ? handle.type : "unknown";
    byType.set(type, (byType.get(type) ?? 0) + 1);
    if (handle.is_active === true) active++;
    if (handle.is_referenced === true) referenced++;
  }
  const types = [...byType].sort(([a], [b]) => a.localeCompare(b)).map(([type, n]) => `${type}: ${n}`);
  return `libuv handles: ${handles.length} (${active} active, ${referenced} referenced)\n${indent([types.join(", ")])}`;
}

function formatResourceUsage(report: JsonObject): string {
  const usage = objectAt(report, "resourceUsage");
  const lines = Object.entries(usage).map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  return `Resource usage:\n${lines.length > 0 ? indent(lines) : `${INDENT}(not available)`}`;
}

function formatWorkers(report: JsonObject): string {
  const workers = arrayAt(report, "workers").filter(isObject);
  const parts = workers.map((worker) => {
    const threadId = objectAt(worker, "header").threadId;
    return `${INDENT}Worker thread ${String(threadId ?? "?")} JavaScript stack:\n${indent(formatJsStack(worker).split("\n"), 1)}`;
  });
  return [`Worker threads: ${workers.length}`, ...parts].join("\n");
}

function formatHeader(report: JsonObject): string {
  const header = objectAt(report, "header");
  return `Node ${String(header.nodejsVersion ?? process.version)}, pid ${String(header.processId ?? process.pid)}`;
}

/** The text report for `debug/stack`. Synchronous: the report is taken in one go. */
export function stackReport(): string {
  const stack = currentStack();
  const report = takeReport();
  return [
    formatHeader(report),
    `Main thread (current stack):\n${indent(stack.split("\n"))}`,
    `Main thread JavaScript stack (diagnostic report):\n${formatJsStack(report)}`,
    formatWorkers(report),
    formatHandles(report),
    formatResourceUsage(report),
  ].join("\n\n") + "\n";
}
