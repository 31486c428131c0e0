// The Markdown debug report behind `debug/info` and `debug/core`, laid out byte for byte as
// Portmaster's debug.Info (base/utils/debug/debug.go) so reports pasted into issues look alike.

import os from "node:os";

export type DebugStyle = "markdown" | "github";

export interface DebugSection {
  name: string;
  body: string;
  /** Wrap the body in a code block (default). Portmaster omits it for one-line notes. */
  code?: boolean;
}

export interface PlatformInfo {
  node: string;
  v8: string;
  uv: string;
  platform: NodeJS.Platform;
  arch: string;
  kernel: string;
  hostname: string;
  /** Seconds this process has been running. */
  uptimeS: number;
  /** Seconds since the machine booted. */
  systemUptimeS: number;
  memory: NodeJS.MemoryUsage;
  cpus: number;
  loadavg: number[];
}

const SECTION_SEPARATOR = "\n\n";
const MIN_FENCE = "```";
const BACKTICK_RUNS = /`{3,}/g;

/** A fence longer than any backtick run in the body, so a body quoting Markdown stays inside. */
function fenceFor(body: string): string {
  let longest = 0;
  for (const run of body.match(BACKTICK_RUNS) ?? []) longest = Math.max(longest, run.length);
  return longest === 0 ? MIN_FENCE : "`".repeat(longest + 1);
}

function formatSection(section: DebugSection, style: DebugStyle): string {
  const header = style === "github" ? `<details>\n<summary>${section.name}</summary>\n\n` : `**${section.name}**:\n\n`;
  let content = section.body;
  if (section.code !== false) {
    const fence = fenceFor(section.body);
    content = `${fence}\n${section.body}\n${fence}\n`;
  }
  const footer = style === "github" ? "\n</details>" : "";
  return header + content + footer;
}

/**
 * Formats sections as Portmaster does. github style: `<details>\n<summary>Name</summary>\n\n` +
 * fenced body + `\n</details>`, collapsible in GitHub issues; otherwise `**Name**:\n\n` + fenced
 * body. Sections are separated by a blank line.
 */
export function debugReport(sections: readonly DebugSection[], style: DebugStyle): string {
  return sections.map((section) => formatSection(section, style)).join(SECTION_SEPARATOR);
}

/** Runtime and host facts for the report's platform section. */
export function platformInfo(): PlatformInfo {
  return {
    node: process.version,
    v8: process.versions.v8,
    uv: process.versions.uv,
    platform: process.platform,
    arch: process.arch,
    kernel: os.release(),
    hostname: os.hostname(),
    uptimeS: Math.round(process.uptime()),
    systemUptimeS: Math.round(os.uptime()),
    memory: process.memoryUsage(),
    // Respects CPU affinity, unlike os.cpus().length: what this process can actually use.
    cpus: os.availableParallelism(),
    loadavg: os.loadavg(),
  };
}

/** platformInfo() as a ready-made report section. */
export function platformSection(): DebugSection {
  return { name: "Platform", body: JSON.stringify(platformInfo(), null, 2) };
}
