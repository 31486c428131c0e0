// How a bench that starts processes and namespaces runs its main: bounded in time, stopped by
// SIGINT/SIGTERM, and cleaned up on every way out (what it started goes by pid, namespaces by
// name), so an interrupted or failed run leaves nothing behind.

export interface BenchRun {
  main: () => Promise<void>;
  /** Idempotent: called on every exit path. */
  cleanup: () => Promise<void>;
  /** Whether cleanup has started (a failure after it is the stop, not a fault). */
  cleaningUp: () => boolean;
  timeoutMs: number;
  note: (msg: string) => void;
}

export async function runBench(r: BenchRun): Promise<void> {
  const watchdog = setTimeout(() => {
    r.note(`the run took longer than ${r.timeoutMs / 1000} s; stopping`);
    void r.cleanup().then(() => process.exit(1));
  }, r.timeoutMs);
  watchdog.unref();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      r.note(`${sig}: stopping`);
      void r.cleanup().then(() => process.exit(130));
    });
  }
  try {
    await r.main();
    await r.cleanup();
  } catch (err) {
    if (!r.cleaningUp()) r.note(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await r.cleanup();
    process.exitCode = 1;
  }
}
