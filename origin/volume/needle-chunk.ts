/**
 * One sorted run of needle-map entries in a single ArrayBuffer, 12 B per
 * entry: the key's low halves and (offset, size) pairs interleaved. The
 * keys' high halves take 4 B more per entry only in a chunk whose keys differ
 * in them (keys straddling a multiple of 2^32: one chunk in four billion
 * keys); elsewhere the chunk holds the one high half they share. The
 * building block of CompactNeedleMap (needle-map.ts).
 *
 * Why this split: a random lookup in a 10 M-entry map is bound by dependent
 * cache misses (about 150 ns each here), not by instructions. The search
 * reads only the low-half array (dense, 16 keys per cache line); a hit then
 * costs one more miss for its (offset, size) pair; the high halves are read
 * only in the rare chunk whose keys straddle a multiple of 2^32.
 */

/**
 * Entries per chunk (96 KiB). From 1 Ki to 64 Ki entries, random lookups at
 * 10 M entries measured the same within noise (2.6-3.3 M/s); smaller chunks
 * bound the memmove of an out-of-order insert (at most 96 KiB here) and the
 * RAM of a nearly empty volume (one chunk), larger ones the directory.
 */
export const CHUNK_ENTRIES = 8192;

export class NeedleChunk {
  /** High halves, allocated once the keys here differ in them; until then every key's is #onlyHi. */
  #hi: Uint32Array | undefined;
  #onlyHi = 0;
  readonly lo: Uint32Array;
  /** (offset, size) of entry i at 2i and 2i+1; sizes are i32 stored as u32. */
  readonly val: Uint32Array;
  n = 0;
  // Cached bounds, so a lookup's first probe is its interpolated guess rather
  // than two cache misses at the ends of the arrays.
  /** The high half shared by every key here, or -1 if they differ. */
  commonHi = -1;
  firstLo = 0;
  lastLo = 0;

  readonly capacity: number;

  constructor(capacity: number = CHUNK_ENTRIES) {
    this.capacity = capacity;
    const buf = new ArrayBuffer(capacity * 12);
    this.lo = new Uint32Array(buf, 0, capacity);
    this.val = new Uint32Array(buf, capacity * 4, capacity * 2);
  }

  /** The high half of entry i's key. */
  hiAt(i: number): number {
    return this.#hi === undefined ? this.#onlyHi : this.#hi[i]!;
  }

  /** Bytes of the typed arrays. */
  get bytes(): number {
    return this.capacity * 12 + (this.#hi === undefined ? 0 : this.capacity * 4);
  }

  /** A copy holding the same entries with room for `capacity` (>= n): trims after a load, grows back on insert. */
  resized(capacity: number): NeedleChunk {
    const c = new NeedleChunk(capacity);
    c.#copyFrom(this, 0, this.n);
    return c;
  }

  /** Entries [from, to) of `src` become this (empty) chunk's. */
  #copyFrom(src: NeedleChunk, from: number, to: number): void {
    const n = to - from;
    this.lo.set(src.lo.subarray(from, to));
    this.val.set(src.val.subarray(2 * from, 2 * to));
    const H = src.#hi;
    if (H === undefined || n === 0) {
      this.#onlyHi = src.#onlyHi;
    } else if (H[from] === H[to - 1]) {
      // Sorted keys: equal first and last high halves mean they are all equal.
      this.#onlyHi = H[from]!;
    } else {
      this.#hi = new Uint32Array(this.capacity);
      this.#hi.set(H.subarray(from, to));
    }
    this.n = n;
    this.#refresh();
  }

  get full(): boolean {
    return this.n === this.capacity;
  }

  /** Index of the first entry >= key (n if none). */
  lowerBound(hi: number, lo: number): number {
    const n = this.n;
    if (n === 0) return 0;
    const ch = this.commonHi;
    if (ch < 0) return this.#binarySearch(hi, lo, 0, n);
    // The common case: all keys share their high half (sequencer keys stay
    // below 2^32 for the first four billion files), so only the low halves
    // are compared. They come from a sequencer, roughly evenly spaced, so
    // interpolation lands within a few entries and a gallop from there
    // touches one or two cache lines where a binary search touches a dozen.
    if (hi !== ch) return hi < ch ? 0 : n;
    const first = this.firstLo;
    const last = this.lastLo;
    if (lo <= first) return 0;
    if (lo > last) return n;
    const L = this.lo;
    const g = Math.floor(((lo - first) / (last - first)) * (n - 1));
    let a: number;
    let b: number;
    let step = 1;
    if (L[g]! < lo) {
      a = g + 1;
      let p = g + 1;
      while (p < n && L[p]! < lo) {
        a = p + 1;
        step *= 2;
        p = g + step;
      }
      b = Math.min(p, n);
    } else {
      b = g;
      let p = g - 1;
      while (p >= 0 && L[p]! >= lo) {
        b = p;
        step *= 2;
        p = g - step;
      }
      a = Math.max(p + 1, 0);
    }
    while (a < b) {
      const m = (a + b) >>> 1;
      if (L[m]! < lo) a = m + 1;
      else b = m;
    }
    return a;
  }

  /** Plain binary search on both halves, for chunks whose keys straddle a multiple of 2^32. */
  #binarySearch(hi: number, lo: number, a: number, b: number): number {
    // Only called when the keys differ in their high halves, so #hi exists.
    const H = this.#hi!;
    const L = this.lo;
    while (a < b) {
      const m = (a + b) >>> 1;
      const hm = H[m]!;
      if (hm < hi || (hm === hi && L[m]! < lo)) a = m + 1;
      else b = m;
    }
    return a;
  }

  /** Whether entry i holds exactly this key. */
  holds(i: number, hi: number, lo: number): boolean {
    return i < this.n && this.lo[i] === lo && (this.commonHi === hi || this.#hi?.[i] === hi);
  }

  offsetAt(i: number): number {
    return this.val[2 * i]!;
  }

  sizeAt(i: number): number {
    return this.val[2 * i + 1]! | 0;
  }

  setValue(i: number, offset: number, size: number): void {
    this.val[2 * i] = offset;
    this.val[2 * i + 1] = size;
  }

  insertAt(i: number, hi: number, lo: number, offset: number, size: number): void {
    const n = this.n;
    if (this.#hi === undefined) {
      if (n === 0) this.#onlyHi = hi;
      else if (hi !== this.#onlyHi) {
        this.#hi = new Uint32Array(this.capacity);
        this.#hi.fill(this.#onlyHi, 0, n);
      }
    }
    const H = this.#hi;
    if (i < n) {
      H?.copyWithin(i + 1, i, n);
      this.lo.copyWithin(i + 1, i, n);
      this.val.copyWithin(2 * i + 2, 2 * i, 2 * n);
    }
    if (H !== undefined) H[i] = hi;
    this.lo[i] = lo;
    this.setValue(i, offset, size);
    this.n = n + 1;
    this.#refresh();
  }

  /** Move entries [from, n) into a new chunk and return it. */
  splitOff(from: number): NeedleChunk {
    const c = new NeedleChunk(this.capacity);
    c.#copyFrom(this, from, this.n);
    this.n = from;
    this.#refresh();
    return c;
  }

  #refresh(): void {
    const n = this.n;
    if (n === 0) {
      this.commonHi = -1;
      return;
    }
    const H = this.#hi;
    const h = H === undefined ? this.#onlyHi : H[0]!;
    this.commonHi = H === undefined || h === H[n - 1] ? h : -1;
    this.firstLo = this.lo[0]!;
    this.lastLo = this.lo[n - 1]!;
  }
}
