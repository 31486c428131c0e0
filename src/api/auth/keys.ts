// The API key table, rebuilt whenever the option core/apiKeys changes. Keys are looked up by
// digest, like app tokens; the config file holds them in clear, as Portmaster's does.

import { digest } from "./secret.js";
import { parseKeyEntry } from "../../core/apikeys.js";

export interface ApiKey {
  /** The first characters of the key, to name it in logs and listings without revealing it. */
  label: string;
  read: number;
  write: number;
  expires: number | null;
}

export class ApiKeys {
  private byHash = new Map<string, ApiKey>();

  /** Replaces the key set; returns the problems of entries refused. */
  load(entries: readonly string[]): string[] {
    const next = new Map<string, ApiKey>();
    const refused: string[] = [];
    for (const entry of entries) {
      const k = parseKeyEntry(entry);
      if (typeof k === "string") refused.push(k);
      else next.set(digest(k.key), { label: `${k.key.slice(0, 4)}…`, read: k.read, write: k.write, expires: k.expires });
    }
    this.byHash = next;
    return refused;
  }

  verify(key: string, now: number): ApiKey | "unknown" | "expired" {
    const k = this.byHash.get(digest(key));
    if (!k) return "unknown";
    if (k.expires !== null && k.expires <= now) return "expired";
    return k;
  }
}
