// Secrets (API keys, app tokens, session ids) are kept only as SHA-256 digests. They are 256-bit
// random values, so a slow password hash (Portus uses bcrypt, once per stored token on every
// call) would add nothing but latency; one digest and one Map lookup authenticate a request.

import * as crypto from "node:crypto";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** crypto.hash (Node >= 20.12) digests in one call, without a Hash object per request. */
const oneShot = (crypto as unknown as { hash?: (alg: string, data: string, enc: string) => string }).hash;

export const TOKEN_PREFIX = "slc_";
const TOKEN_BYTES = 32;

export function digest(secret: string): string {
  return oneShot ? oneShot("sha256", secret, "base64url") : createHash("sha256").update(secret).digest("base64url");
}

export function newSecret(): string {
  return TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString("base64url");
}

export function newId(bytes = 6): string {
  return randomBytes(bytes).toString("hex");
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
