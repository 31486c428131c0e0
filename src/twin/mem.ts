// The JS twin's memory access: the same names and integer semantics as assembly/core/mem.ts,
// over typed-array views of the same shared memory. scripts/build-twin.mjs puts this file in
// place of assembly/core/mem.ts, so the decoder and matcher sources compile unchanged with tsc.
// Every function returns an i32-ranged number (`| 0`), exactly like the WASM build.

let U8: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
let I32: Int32Array<ArrayBufferLike> = new Int32Array(0);
let DV: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

/** Points the twin at a (shared) memory buffer; call again after the memory grows. */
export function bindMemory(buffer: ArrayBufferLike): void {
  U8 = new Uint8Array(buffer);
  I32 = new Int32Array(buffer);
  DV = new DataView(buffer);
}

export function ld8(p: i32): i32 {
  return U8[p];
}

export function ld16(p: i32): i32 {
  return (U8[p] << 8) | U8[p + 1];
}

export function ld32(p: i32): i32 {
  return (U8[p] << 24) | (U8[p + 1] << 16) | (U8[p + 2] << 8) | U8[p + 3];
}

export function ldh16(p: i32): i32 {
  return DV.getUint16(p, true);
}

export function ldh32(p: i32): i32 {
  return DV.getInt32(p, true);
}

export function st8(p: i32, v: i32): void {
  U8[p] = v;
}

export function sth16(p: i32, v: i32): void {
  DV.setUint16(p, v, true);
}

export function sth32(p: i32, v: i32): void {
  DV.setInt32(p, v, true);
}

export function copy(dst: i32, src: i32, n: i32): void {
  U8.copyWithin(dst, src, src + n);
}

export function copy4(dst: i32, src: i32): void {
  U8[dst] = U8[src];
  U8[dst + 1] = U8[src + 1];
  U8[dst + 2] = U8[src + 2];
  U8[dst + 3] = U8[src + 3];
}

export function copy16(dst: i32, src: i32): void {
  U8.copyWithin(dst, src, src + 16);
}

export function fill0x32(dst: i32, n: i32): void {
  U8.fill(0, dst, dst + n);
}

export function ltu(a: i32, b: i32): bool {
  return a >>> 0 < b >>> 0;
}

export function leu(a: i32, b: i32): bool {
  return a >>> 0 <= b >>> 0;
}

export function mul32(a: i32, b: i32): i32 {
  return Math.imul(a, b);
}

export function ctz32(a: i32): i32 {
  return a === 0 ? 32 : 31 - Math.clz32(a & -a);
}

export function shru(a: i32, n: i32): i32 {
  return (a >>> n) | 0;
}

export function atomicLoad32(p: i32): i32 {
  return Atomics.load(I32, p >> 2);
}

export function atomicStore32(p: i32, v: i32): void {
  Atomics.store(I32, p >> 2, v);
}

export function atomicCas32(p: i32, expected: i32, replacement: i32): i32 {
  return Atomics.compareExchange(I32, p >> 2, expected, replacement);
}

export function staticEnd(): i32 {
  return 0;
}
