// Memory access for the WASM build. The JS twin build replaces this one file with
// src/twin/mem.ts (same names, same integer semantics), so every other file under assembly/
// compiles unchanged with tsc. Values are i32 everywhere; unsigned comparisons go through
// ltu/leu because i32 comparisons are signed in WASM.

// @ts-ignore: decorator
@inline export function ld8(p: i32): i32 {
  return <i32>load<u8>(<usize>p);
}

/** Big-endian (network order) u16. */
// @ts-ignore: decorator
@inline export function ld16(p: i32): i32 {
  return <i32>bswap<u16>(load<u16>(<usize>p));
}

/** Big-endian (network order) 32 bits, as i32. */
// @ts-ignore: decorator
@inline export function ld32(p: i32): i32 {
  return bswap<i32>(load<i32>(<usize>p));
}

/** Little-endian (native) u16. */
// @ts-ignore: decorator
@inline export function ldh16(p: i32): i32 {
  return <i32>load<u16>(<usize>p);
}

/** Little-endian (native) 32 bits. */
// @ts-ignore: decorator
@inline export function ldh32(p: i32): i32 {
  return load<i32>(<usize>p);
}

// @ts-ignore: decorator
@inline export function st8(p: i32, v: i32): void {
  store<u8>(<usize>p, <u8>v);
}

// @ts-ignore: decorator
@inline export function sth16(p: i32, v: i32): void {
  store<u16>(<usize>p, <u16>v);
}

// @ts-ignore: decorator
@inline export function sth32(p: i32, v: i32): void {
  store<i32>(<usize>p, v);
}

// memory.copy / memory.fill are out-of-line calls in V8, and a byte loop costs about a cycle
// per iteration in loop overhead alone: the fixed-size copies and clears of the packet path are
// spelled out as 4- and 8-byte loads and stores.

/** Copies 4 bytes (an IPv4 address). */
// @ts-ignore: decorator
@inline export function copy4(dst: i32, src: i32): void {
  store<u32>(<usize>dst, load<u32>(<usize>src));
}

/** Copies 16 bytes (an IPv6 address). */
// @ts-ignore: decorator
@inline export function copy16(dst: i32, src: i32): void {
  store<u64>(<usize>dst, load<u64>(<usize>src));
  store<u64>(<usize>dst, load<u64>(<usize>src, 8), 8);
}

/** Copies n bytes (any n, non-overlapping). */
// @ts-ignore: decorator
@inline export function copy(dst: i32, src: i32, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) store<u64>(<usize>(dst + i), load<u64>(<usize>(src + i)));
  for (; i < n; i++) store<u8>(<usize>(dst + i), load<u8>(<usize>(src + i)));
}

/** Zeroes n bytes; n must be a multiple of 32 (32 bytes per iteration). */
// @ts-ignore: decorator
@inline export function fill0x32(dst: i32, n: i32): void {
  for (let i = 0; i < n; i += 32) {
    const p = <usize>(dst + i);
    store<u64>(p, 0);
    store<u64>(p, 0, 8);
    store<u64>(p, 0, 16);
    store<u64>(p, 0, 24);
  }
}

/** Unsigned a < b. */
// @ts-ignore: decorator
@inline export function ltu(a: i32, b: i32): bool {
  return <u32>a < <u32>b;
}

/** Unsigned a <= b. */
// @ts-ignore: decorator
@inline export function leu(a: i32, b: i32): bool {
  return <u32>a <= <u32>b;
}

/** 32-bit wrapping multiply. */
// @ts-ignore: decorator
@inline export function mul32(a: i32, b: i32): i32 {
  return a * b;
}

/** Count of trailing zero bits (32 for 0). */
// @ts-ignore: decorator
@inline export function ctz32(a: i32): i32 {
  return ctz<i32>(a);
}

/** Logical shift right (the twin's `>>>` would otherwise turn the result unsigned). */
// @ts-ignore: decorator
@inline export function shru(a: i32, n: i32): i32 {
  return <i32>(<u32>a >> <u32>n);
}

// @ts-ignore: decorator
@inline export function atomicLoad32(p: i32): i32 {
  return atomic.load<i32>(<usize>p);
}

// @ts-ignore: decorator
@inline export function atomicStore32(p: i32, v: i32): void {
  atomic.store<i32>(<usize>p, v);
}

/** Compare-and-swap; returns the value found. */
// @ts-ignore: decorator
@inline export function atomicCas32(p: i32, expected: i32, replacement: i32): i32 {
  return atomic.cmpxchg<i32>(<usize>p, expected, replacement);
}

/** Where asc's static data ends; the host region must start above it. */
export function staticEnd(): i32 {
  return <i32>__heap_base;
}
