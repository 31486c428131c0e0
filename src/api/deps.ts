// What endpoint modules get to work with.

import type { Control } from "../control/sluice.js";
import type { Authenticator } from "./auth/authenticator.js";
import type { DatabaseHub } from "./db/hub.js";
import type { Registry } from "./registry.js";
import type { UwsInfo } from "./uws.js";

export interface Deps {
  control: Control;
  auth: Authenticator;
  hub: DatabaseHub;
  registry: Registry;
  uws: UwsInfo;
  /** API request counters (runtime:system/status, debug/core). */
  counters(): Record<string, number>;
}
