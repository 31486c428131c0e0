// The domain hash, shared by the matcher and (re-implemented, tested equal) the rule compiler.
// FNV-1a over the name's bytes from last to first, so one pass over a name yields the hash of
// every suffix ("com", "example.com", "www.example.com") at each label boundary.

import { mul32, shru } from "../core/mem";

export const FNV_OFFSET = -2128831035; // 2166136261 as i32
export const FNV_PRIME = 16777619;
const PROFILE_MIX = -1640531535; // 0x9e3779b1 as i32
const FINAL_MIX = -2048144789; // 0x85ebca6b as i32

export function hashSeed(profile: i32): i32 {
  return FNV_OFFSET ^ mul32(profile + 1, PROFILE_MIX);
}

export function hashStep(h: i32, c: i32): i32 {
  return mul32(h ^ c, FNV_PRIME);
}

/** Final avalanche; never 0, which marks an empty slot. */
export function hashFinish(h: i32): i32 {
  h ^= shru(h, 16);
  h = mul32(h, FINAL_MIX);
  h ^= shru(h, 13);
  return h == 0 ? 1 : h;
}

/** The suffix filter's bit for a finished hash: its high half, so it is independent of the slot. */
export function filterBit(h: i32): i32 {
  return shru(h, 16) | (h << 16);
}
