// The dashboard's static files (ui/ in the package), served at / with the same security headers
// as the API. Files are cached in memory after the first read; ui/reload empties the cache.
// Only plain file names below ui/ are served: no directory walking, no dot files.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { HttpRequest, HttpResponse } from "uWebSockets.js";
import { CSP, type Mount } from "./server.js";

const UI_DIR = fileURLToPath(new URL("../../../ui/", import.meta.url));
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  json: "application/json; charset=utf-8",
};
const NAME_RE = /^\/(?:([a-z0-9][a-z0-9_-]*\.(html|js|css|svg|png|ico|json)))?$/;

export class UiMount implements Mount {
  readonly prefix = "/";
  private readonly cache = new Map<string, Buffer>();

  reload(): number {
    const n = this.cache.size;
    this.cache.clear();
    return n;
  }

  handle(res: HttpResponse, req: HttpRequest): void {
    const m = NAME_RE.exec(req.getUrl());
    const method = req.getMethod();
    const name = m ? (m[1] ?? "index.html") : null;
    let body: Buffer | null = null;
    if (name) {
      body = this.cache.get(name) ?? null;
      if (!body) {
        try {
          body = readFileSync(join(UI_DIR, name));
          this.cache.set(name, body);
        } catch {
          body = null;
        }
      }
    }
    const ok = body !== null && (method === "get" || method === "head");
    res.writeStatus(body === null ? "404 Not Found" : ok ? "200 OK" : "405 Method Not Allowed");
    res.writeHeader("X-Content-Type-Options", "nosniff");
    res.writeHeader("X-Frame-Options", "deny");
    res.writeHeader("Referrer-Policy", "same-origin");
    res.writeHeader("Content-Security-Policy", CSP);
    if (!ok) {
      res.writeHeader("Content-Type", "application/json; charset=utf-8");
      res.end(JSON.stringify({ error: body === null ? { key: "not_found", message: `Not found: ${req.getUrl()}`, data: null } : { key: "method_not_allowed", message: "only GET", data: null } }));
      return;
    }
    res.writeHeader("Content-Type", TYPES[name!.split(".").pop()!] ?? "application/octet-stream");
    res.writeHeader("Cache-Control", "no-cache");
    if (method === "head") {
      // Not endWithoutBody(length): uWS would wait for that many bytes and never end the reply.
      res.writeHeader("Content-Length", String(body!.length));
      res.endWithoutBody();
    } else res.end(body!);
  }
}
