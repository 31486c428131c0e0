// Prefixes -> disjoint sorted intervals. Prefixes are either nested or disjoint, so one sweep
// over them sorted by (start, length) with a stack of the prefixes that cover the current point
// gives every interval and the stack state that covers it. What a stack state means (a rule list,
// a bound profile) is up to the caller. IPv4 runs on plain numbers (exact below 2^53, and far
// cheaper than BigInt); IPv6 on BigInt.

export type Addr = number | bigint;

export interface Prefix<K extends Addr, P> {
  start: K;
  /** Last address covered (inclusive). */
  end: K;
  length: number;
  payload: P;
}

export interface Intervals<K extends Addr> {
  starts: K[];
  values: number[];
}

export interface Space<K extends Addr> {
  bits: number;
  max: K;
  zero: K;
  next(k: K): K;
}

export const V4: Space<number> = { bits: 32, max: 0xffffffff, zero: 0, next: (k) => k + 1 };
export const V6: Space<bigint> = { bits: 128, max: (1n << 128n) - 1n, zero: 0n, next: (k) => k + 1n };

/**
 * `enter(parent, p)` makes the state for addresses covered by p (parent: the state of the
 * prefix that contains p, or null); `valueOf` turns a state into the interval value.
 */
export function buildIntervals<K extends Addr, P, S>(
  space: Space<K>,
  prefixes: Prefix<K, P>[],
  emptyValue: number,
  enter: (parent: S | null, p: Prefix<K, P>) => S,
  valueOf: (s: S) => number,
): Intervals<K> {
  const sorted = sortPrefixes(space, prefixes);
  const starts: K[] = [];
  const values: number[] = [];
  const emit = (start: K, value: number) => {
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
  const stack: { end: K; state: S }[] = [];
  const close = (before: K | null) => {
    while (stack.length > 0 && (before === null || stack[stack.length - 1]!.end < before)) {
      const done = stack.pop()!;
      if (done.end < space.max) emit(space.next(done.end), stack.length > 0 ? valueOf(stack[stack.length - 1]!.state) : emptyValue);
    }
  };
  emit(space.zero, emptyValue);
  for (const p of sorted) {
    close(p.start);
    const state = enter(stack.length > 0 ? stack[stack.length - 1]!.state : null, p);
    emit(p.start, valueOf(state));
    stack.push({ end: p.end, state });
  }
  close(null);
  return { starts, values };
}

/** Sorted by start, then shorter (containing) prefix first. */
function sortPrefixes<K extends Addr, P>(space: Space<K>, prefixes: Prefix<K, P>[]): Prefix<K, P>[] {
  if (space.bits === 32) {
    return [...prefixes].sort((a, b) => (a.start as number) - (b.start as number) || a.length - b.length);
  }
  // BigInt comparisons are slow; fixed-width hex strings sort the same way, much faster.
  const keyed = prefixes.map((p) => ({ p, key: (p.start as bigint).toString(16).padStart(32, "0") }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.p.length - b.p.length));
  return keyed.map((k) => k.p);
}

const TWO32 = 2 ** 32;

/** The range of the prefix `addr`/`length` in `space`. */
export function prefixRange<K extends Addr>(space: Space<K>, addr: bigint, length: number): { start: K; end: K } {
  if (space.bits === 32) {
    const size = TWO32 / 2 ** length;
    const start = Math.floor(Number(addr) / size) * size;
    return { start: start as K, end: (start + size - 1) as K };
  }
  const hostBits = BigInt(space.bits - length);
  const start = (addr >> hostBits) << hostBits;
  return { start: start as K, end: (start + (1n << hostBits) - 1n) as K };
}
