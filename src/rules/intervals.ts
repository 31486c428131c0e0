// Prefixes -> disjoint sorted intervals. Prefixes are either nested or disjoint, so one sweep
// over them sorted by (start, length) with a stack of the prefixes that cover the current point
// gives every interval and the stack state that covers it. What a stack state means (a rule list,
// a bound profile) is up to the caller. IPv4 addresses are numbers (exact below 2^53); IPv6
// addresses are 32 fixed-width hex digits, whose string order is address order.

import type { AddrValue } from "./types.js";

export interface Prefix<K extends AddrValue, P> {
  start: K;
  /** Last address covered (inclusive). */
  end: K;
  length: number;
  payload: P;
}

export interface Intervals<K extends AddrValue> {
  starts: K[];
  values: number[];
}

export interface Space<K extends AddrValue> {
  bits: number;
  max: K;
  zero: K;
  /** The address after k (k < max). */
  next(k: K): K;
  /** The range of the prefix addr/length. */
  range(addr: K, length: number): { start: K; end: K };
}

const TWO32 = 2 ** 32;
const HEX_DIGITS = 32;
const NIBBLE = 4;

export const V4: Space<number> = {
  bits: 32,
  max: TWO32 - 1,
  zero: 0,
  next: (k) => k + 1,
  range(addr, length) {
    const size = TWO32 / 2 ** length;
    const start = Math.floor(addr / size) * size;
    return { start, end: start + size - 1 };
  },
};

export const V6: Space<string> = {
  bits: 128,
  max: "f".repeat(HEX_DIGITS),
  zero: "0".repeat(HEX_DIGITS),
  next(k) {
    // Increment a hex string: trailing f's become 0's, the digit before them goes up by one.
    let i = HEX_DIGITS - 1;
    while (i >= 0 && k[i] === "f") i--;
    return k.slice(0, i) + (parseInt(k[i]!, 16) + 1).toString(16) + "0".repeat(HEX_DIGITS - 1 - i);
  },
  range(addr, length) {
    const full = length >> 2;
    const partBits = length & 3;
    let start = addr.slice(0, full);
    let end = start;
    if (partBits > 0) {
      const nib = parseInt(addr[full]!, 16);
      const keep = nib & (0xf << (NIBBLE - partBits)) & 0xf;
      start += keep.toString(16);
      end += (keep | ((1 << (NIBBLE - partBits)) - 1)).toString(16);
    }
    const rest = HEX_DIGITS - start.length;
    return { start: start + "0".repeat(rest), end: end + "f".repeat(rest) };
  },
};

/**
 * Keys that sort prefixes by (start, length) under the engine's native sort, with no comparator
 * function (a JS comparator over a million prefixes costs seconds): for IPv4 a number
 * start * 64 + length, for IPv6 the hex start followed by the length in three digits.
 */
export function prefixKey(addr: AddrValue, length: number): number | string {
  return typeof addr === "number" ? addr * 64 + length : addr + String(length).padStart(3, "0");
}

/** The prefixes of a map keyed by prefixKey, sorted by (start, length). */
export function sortedByKey<K extends AddrValue, P>(map: Map<number, Prefix<K, P>> | Map<string, Prefix<K, P>>): Prefix<K, P>[] {
  const keys = [...map.keys()];
  if (keys.length > 0 && typeof keys[0] === "number") {
    const sorted = Float64Array.from(keys as number[]).sort();
    const m = map as Map<number, Prefix<K, P>>;
    return Array.from(sorted, (k) => m.get(k)!);
  }
  const m = map as Map<string, Prefix<K, P>>;
  return (keys as string[]).sort().map((k) => m.get(k)!);
}

/**
 * Sweeps prefixes sorted by (start, length) (see sortedByKey). `enter(parent, p)` makes the
 * state for addresses covered by p (parent: the state of the prefix that contains p, or null);
 * `valueOf` turns a state into the interval value.
 */
export function buildIntervals<K extends AddrValue, P, S>(
  space: Space<K>,
  sorted: Prefix<K, P>[],
  emptyValue: number,
  enter: (parent: S | null, p: Prefix<K, P>) => S,
  valueOf: (s: S) => number,
): Intervals<K> {
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
