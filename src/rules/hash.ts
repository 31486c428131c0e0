// The domain hash of assembly/match/hash.ts, for the compiler side. Both must agree bit for bit;
// the matcher tests (every domain rule kind through the WASM core) would fail if they did not.

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;
const PROFILE_MIX = 0x9e3779b1 | 0;
const FINAL_MIX = 0x85ebca6b | 0;

/** Hash of bytes [off, off + len) from last to first, seeded by profile, finished; never 0. */
export function domainHash(profile: number, bytes: Uint8Array, off = 0, len = bytes.length): number {
  let h = FNV_OFFSET ^ Math.imul(profile + 1, PROFILE_MIX);
  for (let i = off + len - 1; i >= off; i--) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  h ^= h >>> 16;
  h = Math.imul(h, FINAL_MIX);
  h ^= h >>> 13;
  h |= 0;
  return h === 0 ? 1 : h;
}

/** The suffix filter's bit for a finished hash: its high half, so it is independent of the slot. */
export function filterBit(h: number): number {
  return ((h >>> 16) | (h << 16)) >>> 0;
}
