// The endpoint registry: every /api/v1 endpoint is declared once with its documentation,
// permissions and handler, and GET /api/v1/endpoints lists them in Portmaster's JSON shape.
// Paths may carry typed variables, `{name:regex}`; static paths resolve with one Map lookup,
// patterned ones are tried in registration order.

import type { Ctx } from "./http.js";
import { PERMIT_NOT_SUPPORTED, type Permission } from "./permissions.js";

export type WriteMethod = "POST" | "PUT" | "DELETE" | "PATCH";

export interface Parameter {
  Method: string;
  Field: string;
  Value: string;
  Description: string;
}

/** What a handler may return: a value (JSON, or text for text endpoints), nothing (204), or a Reply. */
export type Result = unknown;

export interface EndpointSpec {
  name: string;
  description: string;
  /** Relative to /api/v1/, no leading slash. */
  path: string;
  parameters?: Parameter[];
  mimeType?: "application/json" | "text/plain" | "application/octet-stream";
  read?: Permission;
  write?: Permission;
  /** Write methods accepted; the first is the one documented as WriteMethod. */
  writeMethods?: WriteMethod[];
  /** Largest body accepted for writes, in bytes (default: the server's cap). */
  maxBody?: number;
  handler: (ctx: Ctx) => Result | Promise<Result>;
}

export interface Endpoint extends Required<Omit<EndpointSpec, "parameters" | "maxBody">> {
  parameters: Parameter[];
  maxBody: number | null;
  vars: string[];
  pattern: RegExp | null;
  /** Every method the endpoint answers (GET, HEAD, then its write methods), for 405 and Allow. */
  allowed: string[];
}

const VAR_RE = /\{([A-Za-z][A-Za-z0-9_]*):((?:[^{}]|\{\d+(?:,\d*)?\})+)\}/g;

export class Registry {
  private readonly exact = new Map<string, Endpoint>();
  private readonly patterned: Endpoint[] = [];
  private readonly all: Endpoint[] = [];

  register(spec: EndpointSpec): void {
    if (!spec.path || spec.path.startsWith("/")) throw new Error(`endpoint "${spec.name}": path must be relative and non-empty`);
    if (this.all.some((e) => e.path === spec.path)) throw new Error(`endpoint path registered twice: ${spec.path}`);
    const read = spec.read ?? PERMIT_NOT_SUPPORTED;
    const write = spec.write ?? PERMIT_NOT_SUPPORTED;
    if (read === PERMIT_NOT_SUPPORTED && write === PERMIT_NOT_SUPPORTED) throw new Error(`endpoint ${spec.path}: neither readable nor writable`);
    const vars: string[] = [];
    let pattern: RegExp | null = null;
    if (spec.path.includes("{")) {
      let src = "";
      let last = 0;
      for (const m of spec.path.matchAll(VAR_RE)) {
        src += escapeRe(spec.path.slice(last, m.index)) + `(${m[2]})`;
        vars.push(m[1]!);
        last = m.index! + m[0].length;
      }
      src += escapeRe(spec.path.slice(last));
      pattern = new RegExp(`^${src}$`);
    }
    const ep: Endpoint = {
      name: spec.name,
      description: spec.description,
      path: spec.path,
      parameters: spec.parameters ?? [],
      mimeType: spec.mimeType ?? "application/json",
      read,
      write,
      writeMethods: write === PERMIT_NOT_SUPPORTED ? [] : (spec.writeMethods ?? ["POST"]),
      maxBody: spec.maxBody ?? null,
      handler: spec.handler,
      vars,
      pattern,
      allowed: [],
    };
    if (read !== PERMIT_NOT_SUPPORTED) ep.allowed.push("GET", "HEAD");
    ep.allowed.push(...ep.writeMethods);
    this.all.push(ep);
    if (pattern) this.patterned.push(ep);
    else this.exact.set(ep.path, ep);
  }

  /** The endpoint for a path (relative to /api/v1/) and its variables, or null. */
  match(path: string): { ep: Endpoint; vars: Record<string, string> } | null {
    const ep = this.exact.get(path);
    if (ep) return { ep, vars: NO_VARS };
    for (const e of this.patterned) {
      const m = e.pattern!.exec(path);
      if (!m) continue;
      const vars: Record<string, string> = {};
      for (let i = 0; i < e.vars.length; i++) vars[e.vars[i]!] = m[i + 1]!;
      return { ep: e, vars };
    }
    return null;
  }

  /** Portmaster's /endpoints shape: sorted by path, empty fields left out. */
  export(): Record<string, unknown>[] {
    return [...this.all]
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map((e) => {
        const o: Record<string, unknown> = { Name: e.name, Description: e.description };
        if (e.parameters.length > 0) o.Parameters = e.parameters;
        o.Path = e.path;
        o.MimeType = e.mimeType;
        if (e.read !== PERMIT_NOT_SUPPORTED) {
          o.Read = e.read;
          o.ReadMethod = "GET";
        }
        if (e.write !== PERMIT_NOT_SUPPORTED) {
          o.Write = e.write;
          o.WriteMethod = e.writeMethods[0];
          if (e.writeMethods.length > 1) o.WriteMethods = e.writeMethods;
        }
        return o;
      });
  }

  get size(): number {
    return this.all.length;
  }
}

const NO_VARS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
