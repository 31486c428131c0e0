// Prefixes -> disjoint sorted intervals. Prefixes are either nested or disjoint, so one sweep
// over them sorted by (start, length) with a stack of the prefixes that cover the current point
// gives every interval and the stack state that covers it. What a stack state means (a rule list,
// a bound profile) is up to the caller.

export interface Prefix<P> {
  start: bigint;
  /** Last address covered (inclusive). */
  end: bigint;
  length: number;
  payload: P;
}

export interface Intervals {
  starts: bigint[];
  values: number[];
}

/**
 * `enter(parent, p)` makes the state for addresses covered by p (parent: the state of the
 * prefix that contains p, or null); `valueOf` turns a state into the interval value.
 */
export function buildIntervals<P, S>(
  prefixes: Prefix<P>[],
  bits: number,
  emptyValue: number,
  enter: (parent: S | null, p: Prefix<P>) => S,
  valueOf: (s: S) => number,
): Intervals {
  const max = (1n << BigInt(bits)) - 1n;
  const sorted = [...prefixes].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.length - b.length));
  const starts: bigint[] = [];
  const values: number[] = [];
  const emit = (start: bigint, value: number) => {
    const n = starts.length;
    if (n > 0 && starts[n - 1] === start) {
      values[n - 1] = value;
      if (n > 1 && values[n - 2] === value) {
        starts.pop();
        values.pop();
      }
      return;
    }
    if (n > 0 && values[n - 1] === value) return;
    starts.push(start);
    values.push(value);
  };
  const stack: { end: bigint; state: S }[] = [];
  const top = () => stack[stack.length - 1];
  const close = (before: bigint) => {
    while (stack.length > 0 && top()!.end < before) {
      const done = stack.pop()!;
      if (done.end < max) emit(done.end + 1n, stack.length > 0 ? valueOf(top()!.state) : emptyValue);
    }
  };
  emit(0n, emptyValue);
  for (const p of sorted) {
    close(p.start);
    const state = enter(stack.length > 0 ? top()!.state : null, p);
    emit(p.start, valueOf(state));
    stack.push({ end: p.end, state });
  }
  close(max + 1n);
  return { starts, values };
}

/** Prefix of `length` bits at `addr` (network-order bytes) as an address range. */
export function prefixRange(addr: Uint8Array, length: number): { start: bigint; end: bigint } {
  const bits = addr.length * 8;
  let v = 0n;
  for (const b of addr) v = (v << 8n) | BigInt(b);
  const hostBits = BigInt(bits - length);
  const start = (v >> hostBits) << hostBits;
  return { start, end: start + (1n << hostBits) - 1n };
}
