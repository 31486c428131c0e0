// Which ids might already have a row, without asking LMDB.
//
// For every record the writer must know whether a row with that id exists (an update must replace
// it and move its rollup contribution, a new row must be indexed). Rows of connections still active
// are in the writer's memory; asking LMDB about every other id costs a B-tree descent (~2 us on a
// small box, a fifth of the per-record budget) although nearly all of them are brand new. This Bloom
// filter holds the ids of ended rows written since `floor` was last raised: an id it has never seen,
// of a record that started after `floor`, cannot have a row, so the lookup is skipped. A false
// positive only costs the lookup it was meant to save. When the filter fills up it is emptied and
// `floor` moves up to the newest start written so far, so older ids go back to being looked up.

/** Bits in the filter (2^23: 1 MiB). */
const FILTER_BITS = 1 << 23;
/** Ids per generation: ~12 bits each, ~1% false positives with 3 probes. */
const FILTER_CAPACITY = 700_000;
const PROBES = 3;

export class SeenIds {
  private readonly bits = new Uint32Array(FILTER_BITS >>> 5);
  private count = 0;
  /** Rows that started at or before this may exist without being in the filter. */
  private floor: number;
  /** Newest start of any row written since. */
  private newest: number;

  constructor(floor: number) {
    this.floor = floor;
    this.newest = floor;
  }

  private h1 = 0;
  private h2 = 0;

  /** Two independent 32-bit hashes of the id (FNV-1a and a multiplicative one), for double hashing. */
  private hash(id: string): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 + c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    this.h1 = h1 >>> 0;
    this.h2 = (h2 | 1) >>> 0;
  }

  /** Records that a row with this id (started at `started`) was written. */
  add(id: string, started: number): void {
    if (started > this.newest) this.newest = started;
    if (this.count >= FILTER_CAPACITY) this.forgetAll();
    this.hash(id);
    for (let i = 0; i < PROBES; i++) {
      const b = (this.h1 + Math.imul(i, this.h2)) & (FILTER_BITS - 1);
      this.bits[b >>> 5]! |= 1 << (b & 31);
    }
    this.count++;
  }

  /** false: no row with this id can exist (so no lookup is needed). */
  mayExist(id: string, started: number): boolean {
    if (started <= this.floor) return true;
    this.hash(id);
    for (let i = 0; i < PROBES; i++) {
      const b = (this.h1 + Math.imul(i, this.h2)) & (FILTER_BITS - 1);
      if ((this.bits[b >>> 5]! & (1 << (b & 31))) === 0) return false;
    }
    return true;
  }

  /** Notes a start written without add() (rows kept in the writer's memory). */
  wrote(started: number): void {
    if (started > this.newest) this.newest = started;
  }

  /** Treats every row written so far as possibly existing (after the writer forgot its memory). */
  forgetAll(): void {
    this.bits.fill(0);
    this.count = 0;
    this.floor = Math.max(this.floor, this.newest);
  }
}
