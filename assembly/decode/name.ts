// Copying names into the record: lower-cased, bounded, and never past either buffer.

import { ld8, st8 } from "../core/mem";

const ASCII_A = 0x41;
const ASCII_Z = 0x5a;
const ASCII_CASE_BIT = 0x20;

/** Copies n bytes from src to dst, lower-casing ASCII letters. */
export function copyLower(dst: i32, src: i32, n: i32): void {
  for (let i = 0; i < n; i++) {
    let c = ld8(src + i);
    if (c >= ASCII_A && c <= ASCII_Z) c |= ASCII_CASE_BIT;
    st8(dst + i, c);
  }
}
