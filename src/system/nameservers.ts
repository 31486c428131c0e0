// The system's configured DNS servers (Portmaster's `network/nameservers`), from resolv.conf.

import { readFile } from "node:fs/promises";
import { isIP } from "node:net";

/** Portmaster's Nameserver JSON shape: field names are Go's, capitalised. */
export interface Nameserver {
  IP: string;
  Search: string[];
}

export const RESOLV_CONF_PATH = "/etc/resolv.conf";

/** `#` and `;` start comments (resolv.conf(5)); also accepted mid-line, as neither occurs in names. */
const COMMENT = /[#;].*$/;
const WHITESPACE = /\s+/;

/**
 * Parses resolv.conf text. Every valid `nameserver` becomes an entry (duplicates once); all of
 * them share the search list, which, as in glibc, is the last `search` or `domain` line.
 */
export function parseResolvConf(text: string): Nameserver[] {
  const servers: string[] = [];
  let search: string[] = [];
  for (const rawLine of text.split("\n")) {
    const [keyword, ...values] = rawLine.replace(COMMENT, "").trim().split(WHITESPACE);
    if (keyword === "nameserver") {
      const ip = values[0];
      // glibc ignores addresses it cannot parse; so do we, rather than report a server nobody uses.
      if (ip !== undefined && isIP(ip) !== 0 && !servers.includes(ip)) servers.push(ip);
    } else if (keyword === "search" || keyword === "domain") {
      search = values.filter((v) => v !== "");
    }
  }
  return servers.map((IP) => ({ IP, Search: [...search] }));
}

function isMissingFile(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && (err.code === "ENOENT" || err.code === "ENOTDIR");
}

/** Nameservers from resolv.conf; [] when the file does not exist (a system without DNS config). */
export async function systemNameservers(path: string = RESOLV_CONF_PATH): Promise<Nameserver[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isMissingFile(err)) return [];
    throw err;
  }
  return parseResolvConf(text);
}
