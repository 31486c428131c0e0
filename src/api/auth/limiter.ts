// Failed authentications are limited per client address: after `limit` failures within a
// window the client gets 429 with Retry-After until the window ends, even with good
// credentials, so guessing keys costs a window per few tries. Successful requests cost nothing.

const MAX_TRACKED = 10000;

interface Entry {
  windowStart: number;
  failures: number;
}

export class FailureLimiter {
  private readonly clients = new Map<string, Entry>();
  /** Expired entries are swept now and then, so one old failure does not keep `tracking` on. */
  private nextSweep = 0;

  constructor(private readonly limit: () => number, private readonly windowMs: () => number) {}

  /** Whether any client has failures on record (if not, nobody can be blocked). */
  get tracking(): boolean {
    if (this.clients.size > 0 && Date.now() >= this.nextSweep) this.prune(Date.now());
    return this.clients.size > 0;
  }

  /** Seconds the client must still wait, or 0. */
  blockedFor(client: string, now: number): number {
    const e = this.clients.get(client);
    if (!e) return 0;
    const end = e.windowStart + this.windowMs();
    if (now >= end) {
      this.clients.delete(client);
      return 0;
    }
    return e.failures >= this.limit() ? Math.ceil((end - now) / 1000) : 0;
  }

  fail(client: string, now: number): void {
    let e = this.clients.get(client);
    if (!e || now >= e.windowStart + this.windowMs()) {
      if (this.clients.size >= MAX_TRACKED) this.prune(now);
      e = { windowStart: now, failures: 0 };
      this.clients.set(client, e);
    }
    e.failures++;
  }

  private prune(now: number): void {
    this.nextSweep = now + this.windowMs();
    for (const [k, e] of this.clients) if (now >= e.windowStart + this.windowMs()) this.clients.delete(k);
    // Still full (a spread-out attack): forget the oldest entries rather than grow.
    for (const k of this.clients.keys()) {
      if (this.clients.size < MAX_TRACKED) break;
      this.clients.delete(k);
    }
  }
}
