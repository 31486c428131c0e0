// The pcap fixtures under test/fixtures/pcap, by case name.

import { readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** The source tree's fixture folder (tests run from dist/test, fixtures stay in test/). */
export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures", "pcap");

export function fixtureCases(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith(".pcap"))
    .map((f) => f.slice(0, -".pcap".length))
    .sort();
}

export function fixturePath(name: string): string {
  return join(FIXTURE_DIR, `${name}.pcap`);
}
