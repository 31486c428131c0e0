// Running the system tools (`ip`, `conntrack`) that the data-gathering modules read from.
// Always execFile, never a shell: arguments are fixed by us and must not be re-parsed, and a
// diagnostics endpoint must not be able to hang or exhaust the process, hence the time and
// output limits.

import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** A tool that has not finished in this time is killed: an API request is waiting on it. */
export const TOOL_TIMEOUT_MS = 5_000;
/** Output beyond this is cut off; a full conntrack table on a busy gateway can exceed it. */
export const TOOL_MAX_OUTPUT = 16 * 1024 * 1024;

/** Why a tool run failed, for callers that map failures to responses. */
export type ToolErrorCode = "TOOL_MISSING" | "TOOL_FAILED" | "TOOL_TIMEOUT" | "TOOL_OUTPUT_TOO_LARGE";

export class ToolError extends Error {
  constructor(
    readonly code: ToolErrorCode,
    readonly tool: string,
    message: string,
  ) {
    super(message);
    this.name = "ToolError";
  }
}

export interface ToolOutput {
  stdout: string;
  stderr: string;
  /** True when the tool was stopped early (timeout or output limit) and stdout is partial. */
  cut: boolean;
}

export interface RunOptions {
  /**
   * Accept partial output when the tool is stopped by the timeout or the output limit instead of
   * failing. Only useful for line-oriented output, where a prefix is still meaningful.
   */
  allowPartial?: boolean;
}

/** The fields execFile puts on its rejection; all optional since any error may arrive here. */
interface ExecFailure {
  code?: unknown;
  killed?: unknown;
  stdout?: unknown;
  stderr?: unknown;
  message?: unknown;
}

const MAX_BUFFER_CODE = "ERR_CHILD_PROCESS_STDIO_MAXBUFFER";

/** Runs `tool args` with the module-wide limits and classifies failures into ToolErrors. */
export async function runTool(tool: string, args: readonly string[], options: RunOptions = {}): Promise<ToolOutput> {
  try {
    const { stdout, stderr } = await execFileAsync(tool, args, {
      encoding: "utf8",
      timeout: TOOL_TIMEOUT_MS,
      maxBuffer: TOOL_MAX_OUTPUT,
      windowsHide: true,
    });
    return { stdout, stderr, cut: false };
  } catch (err) {
    const failure: ExecFailure = typeof err === "object" && err !== null ? err : {};
    const stdout = typeof failure.stdout === "string" ? failure.stdout : "";
    const stderr = typeof failure.stderr === "string" ? failure.stderr : "";
    const command = [tool, ...args].join(" ");

    if (failure.code === "ENOENT") {
      throw new ToolError("TOOL_MISSING", tool, `${tool} is not installed or not on PATH (running: ${command})`);
    }
    if (failure.code === MAX_BUFFER_CODE) {
      if (options.allowPartial) return { stdout, stderr, cut: true };
      throw new ToolError("TOOL_OUTPUT_TOO_LARGE", tool, `${command}: output exceeded ${TOOL_MAX_OUTPUT} bytes`);
    }
    // execFile reports its own timeout kill as killed=true; a signal from elsewhere is a failure.
    if (failure.killed === true) {
      if (options.allowPartial) return { stdout, stderr, cut: true };
      throw new ToolError("TOOL_TIMEOUT", tool, `${command}: no result within ${TOOL_TIMEOUT_MS} ms`);
    }
    const detail = stderr.trim() || (typeof failure.message === "string" ? failure.message : String(err));
    throw new ToolError("TOOL_FAILED", tool, `${command} failed: ${detail}`);
  }
}
