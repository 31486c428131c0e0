// The host's map of the shared linear memory: a bump allocator above the core's static data.
// Regions are handed out once at start-up (images, tables, per-worker areas) and never freed,
// so no pointer the core holds can dangle. Growing the memory never moves it.

import { MEM_STATIC_END, MEM_PAGE, MEM_MAX_PAGES } from "../../assembly/shared/layout.js";
import { MemoryExhaustedError } from "../core/errors.js";

export const CACHE_LINE = 64;

export class Arena {
  readonly memory: WebAssembly.Memory;
  private top = MEM_STATIC_END;
  private readonly growListeners: (() => void)[] = [];

  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
  }

  /** Reserves `bytes` zeroed bytes aligned to `align` (a power of two); returns the offset. */
  alloc(bytes: number, align = CACHE_LINE): number {
    const off = (this.top + align - 1) & ~(align - 1);
    const end = off + bytes;
    const limit = MEM_MAX_PAGES * MEM_PAGE;
    if (end > limit || off < this.top) throw new MemoryExhaustedError(bytes, limit);
    const have = this.memory.buffer.byteLength;
    this.top = end;
    if (end > have) {
      this.memory.grow(Math.ceil((end - have) / MEM_PAGE));
      for (const fn of this.growListeners) fn();
    }
    return off;
  }

  /** Runs `fn` after every growth (views made over the old buffer are too short from then on). */
  onGrow(fn: () => void): void {
    this.growListeners.push(fn);
  }

  get used(): number {
    return this.top;
  }

  /** Fresh views: call after anything may have grown the memory. */
  u8(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  view(): DataView {
    return new DataView(this.memory.buffer);
  }
}
