// Loads uWebSockets.js. The package we get from npm (@trufflesuite/uws-js-unofficial) quietly
// falls back to a slow pure-JS server when no native binary fits this Node; we load the binary
// ourselves so that case is detected, logged and reported (debug/info, runtime:system/status)
// instead of costing 10x throughput unnoticed.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as UWS from "uWebSockets.js";

const require = createRequire(import.meta.url);

export interface UwsInfo {
  native: boolean;
  /** The binary loaded, or why the JS fallback runs. */
  detail: string;
}

let loaded: { uws: typeof UWS; info: UwsInfo } | null = null;

export function uws(): { uws: typeof UWS; info: UwsInfo } {
  if (loaded) return loaded;
  const pkg = dirname(require.resolve("uWebSockets.js/package.json"));
  const binary = join(pkg, "binaries", `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    loaded = { uws: require(binary) as typeof UWS, info: { native: true, detail: binary } };
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n", 1)[0]! : String(err);
    loaded = {
      uws: require(join(pkg, "dist", "index.js")) as typeof UWS,
      info: { native: false, detail: `no native uWebSockets.js binary for node ABI ${process.versions.modules} on ${process.platform}-${process.arch} (${why}); using the slow JS fallback` },
    };
  }
  return loaded;
}
