/**
 * The in-RAM needle index of one volume: key (u64) -> offset (u32, 8-byte
 * units) and size (i32). Every read is one lookup here, then one pread, so it
 * must be fast; a volume holds tens of millions of needles, so it must be small.
 *
 * Layout: a sorted list of fixed-capacity chunks (needle-chunk.ts: one
 * ArrayBuffer of parallel typed arrays, 12 B per entry), plus a directory of
 * each chunk's first key. A lookup is a binary search over the directory, then
 * an interpolation search inside one chunk.
 *
 * Why this and not a Map: a V8 Map costs 60-90 B per entry and stops at 2^24
 * entries (reference/toolchain.md). Why not one sorted run plus an overflow
 * Map for out-of-order keys: merging the overflow into a 10 M-entry run copies
 * 120 MB and stalls the event loop; here an out-of-order key costs a memmove
 * inside one chunk (at most 96 KiB), and in-order keys (the sequencer's) only
 * ever append, filling every chunk completely. After a load, compact() trims
 * the chunks that are not full (the last one, mostly) to their exact size: a
 * volume server holds many volumes, each with one partly filled chunk. Keys are split into two u32
 * halves so no bigint is touched after the entry point.
 *
 * Deleted entries stay, with the size negated (SeaweedFS's CompactMap keeps
 * the needle's offset so `?readDeleted=true` can still find the data).
 */

import { readSync } from 'node:fs';
import { TruncatedDataError } from '../../shared/errors.ts';
import { isLiveEntry, TOMBSTONE_FILE_SIZE, walkIdx } from '../../shared/idx.ts';
import { CHUNK_ENTRIES, NeedleChunk } from './needle-chunk.ts';

export interface NeedleValue {
  /** In 8-byte units. */
  offset: number;
  /** The needle's Size; negative once deleted (TOMBSTONE_FILE_SIZE when there is no data left to read). */
  size: number;
}

/** One RAM layout of a volume's index; the volume talks to this, not to the class. */
export interface NeedleMap {
  /** The entry, deleted ones included (size < 0): callers answer 404 for those unless readDeleted. */
  get(key: bigint): NeedleValue | undefined;
  /** Record a written needle (offset >= 1, size >= 0); replaces any entry for the key. */
  set(key: bigint, offset: number, size: number): void;
  /**
   * Mark the key deleted and return the size it had (0 if it was absent or
   * already deleted). A live entry keeps its offset with the size negated;
   * an unknown key gets a tombstone at `tombstoneOffset`, so the map always
   * agrees with "the last .idx entry per key wins".
   */
  delete(key: bigint, tombstoneOffset: number): number;
  /** Needles written (every set, overwrites included), as SeaweedFS's FileCounter. */
  readonly fileCount: number;
  /** Needles that stopped being live, by delete or overwrite. */
  readonly deletedCount: number;
  /** Sum of their sizes: garbage = deletedBytes / contentBytes decides vacuum (docs/format.md §9). */
  readonly deletedBytes: number;
  /** Sum of the sizes of every needle written. */
  readonly contentBytes: number;
  /** Live needles: fileCount - deletedCount. */
  readonly liveCount: number;
  /** Entries held, deleted ones included. */
  readonly entryCount: number;
  /** Largest key seen (0n when empty), reported to the master to keep its sequencer ahead. */
  readonly maxKey: bigint;
  /** Every entry, deleted ones included, in ascending key order. The map must not change meanwhile. */
  forEach(fn: (key: bigint, offset: number, size: number) => void): void;
  /** Bytes of RAM the layout holds (typed arrays plus an estimate of object overhead). */
  memoryBytes(): number;
  /** Gives back the room held for entries not yet written (after a load); later writes take it again. */
  compact(): void;
}

// One scratch slot splits a bigint into u32 halves without allocating.
const K64 = new BigUint64Array(1);
const K32 = new Uint32Array(K64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;
/** Estimated V8 cost of one chunk's objects (ArrayBuffer, three views, the chunk, directory slots). */
const CHUNK_OVERHEAD_BYTES = 512;

function joinKey(hi: number, lo: number): bigint {
  K32[HI] = hi;
  K32[LO] = lo;
  return K64[0]!;
}

export interface CompactNeedleMapOptions {
  /** Entries per chunk (default CHUNK_ENTRIES); tests use tiny chunks to exercise splits. */
  chunkEntries?: number;
}

export class CompactNeedleMap implements NeedleMap {
  readonly #chunkEntries: number;
  #chunks: NeedleChunk[] = [];
  // The directory: each chunk's first key, searched before touching any chunk.
  #firstHi: number[] = [];
  #firstLo: number[] = [];
  // Largest key held; keys above it append, the sequencer's common case.
  #lastHi = -1;
  #lastLo = -1;
  #entries = 0;
  #fileCount = 0;
  #deletedCount = 0;
  #deletedBytes = 0;
  #contentBytes = 0;

  constructor(options: CompactNeedleMapOptions = {}) {
    const n = options.chunkEntries ?? CHUNK_ENTRIES;
    if (!Number.isInteger(n) || n < 2) throw new RangeError(`chunkEntries ${n} must be an integer >= 2`);
    this.#chunkEntries = n;
  }

  get fileCount(): number {
    return this.#fileCount;
  }

  get deletedCount(): number {
    return this.#deletedCount;
  }

  get deletedBytes(): number {
    return this.#deletedBytes;
  }

  get contentBytes(): number {
    return this.#contentBytes;
  }

  get liveCount(): number {
    return this.#fileCount - this.#deletedCount;
  }

  get entryCount(): number {
    return this.#entries;
  }

  get maxKey(): bigint {
    return this.#entries === 0 ? 0n : joinKey(this.#lastHi, this.#lastLo);
  }

  get(key: bigint): NeedleValue | undefined {
    K64[0] = key;
    // A key outside u64 wrapped in the store: it cannot be in the map.
    if (K64[0] !== key || this.#entries === 0) return undefined;
    const hi = K32[HI]!;
    const lo = K32[LO]!;
    const c = this.#chunks[this.#chunkFor(hi, lo)]!;
    const i = c.lowerBound(hi, lo);
    if (!c.holds(i, hi, lo)) return undefined;
    return { offset: c.offsetAt(i), size: c.sizeAt(i) };
  }

  set(key: bigint, offset: number, size: number): void {
    if (offset !== offset >>> 0 || offset === 0) throw new RangeError(`needle offset ${offset} out of range`);
    if (size !== (size | 0) || size < 0) throw new RangeError(`needle size ${size} out of range`);
    splitKey(key);
    this.setParts(K32[HI]!, K32[LO]!, offset, size);
  }

  delete(key: bigint, tombstoneOffset: number): number {
    if (tombstoneOffset !== tombstoneOffset >>> 0) {
      throw new RangeError(`tombstone offset ${tombstoneOffset} out of range`);
    }
    splitKey(key);
    return this.deleteParts(K32[HI]!, K32[LO]!, tombstoneOffset);
  }

  /** set() with the key already split and arguments trusted: the .idx replay path. */
  setParts(hi: number, lo: number, offset: number, size: number): void {
    this.#fileCount++;
    this.#contentBytes += size;
    if (this.#isAfterLast(hi, lo)) {
      this.#append(hi, lo, offset, size);
      return;
    }
    const ci = this.#chunkFor(hi, lo);
    const c = this.#chunks[ci]!;
    const i = c.lowerBound(hi, lo);
    if (c.holds(i, hi, lo)) {
      const prev = c.sizeAt(i);
      if (prev >= 0) {
        this.#deletedCount++;
        this.#deletedBytes += prev;
      }
      c.setValue(i, offset, size);
      return;
    }
    this.#insert(ci, i, hi, lo, offset, size);
  }

  /** delete() with the key already split and arguments trusted: the .idx replay path. */
  deleteParts(hi: number, lo: number, tombstoneOffset: number): number {
    if (this.#isAfterLast(hi, lo)) {
      this.#append(hi, lo, tombstoneOffset, TOMBSTONE_FILE_SIZE);
      return 0;
    }
    const ci = this.#chunkFor(hi, lo);
    const c = this.#chunks[ci]!;
    const i = c.lowerBound(hi, lo);
    if (c.holds(i, hi, lo)) {
      const prev = c.sizeAt(i);
      if (prev < 0) return 0;
      // -0 cannot mark an empty needle deleted; it has no data to read back anyway.
      c.setValue(i, c.offsetAt(i), prev > 0 ? -prev : TOMBSTONE_FILE_SIZE);
      this.#deletedCount++;
      this.#deletedBytes += prev;
      return prev;
    }
    this.#insert(ci, i, hi, lo, tombstoneOffset, TOMBSTONE_FILE_SIZE);
    return 0;
  }

  forEach(fn: (key: bigint, offset: number, size: number) => void): void {
    for (const c of this.#chunks) {
      for (let i = 0; i < c.n; i++) fn(joinKey(c.hiAt(i), c.lo[i]!), c.offsetAt(i), c.sizeAt(i));
    }
  }

  memoryBytes(): number {
    let bytes = 0;
    for (const c of this.#chunks) bytes += c.bytes + CHUNK_OVERHEAD_BYTES;
    return bytes;
  }

  compact(): void {
    const chunks = this.#chunks;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      if (c.n < c.capacity) chunks[i] = c.resized(c.n);
    }
  }

  /** Chunk ci, full but trimmed by compact(), with its room back (a copy of at most one chunk). */
  #regrow(ci: number): NeedleChunk {
    const c = this.#chunks[ci]!.resized(this.#chunkEntries);
    this.#chunks[ci] = c;
    return c;
  }

  #isAfterLast(hi: number, lo: number): boolean {
    return hi > this.#lastHi || (hi === this.#lastHi && lo > this.#lastLo);
  }

  #append(hi: number, lo: number, offset: number, size: number): void {
    const chunks = this.#chunks;
    let c = chunks[chunks.length - 1];
    if (c?.full && c.capacity < this.#chunkEntries) c = this.#regrow(chunks.length - 1);
    if (c === undefined || c.full) {
      c = new NeedleChunk(this.#chunkEntries);
      chunks.push(c);
      this.#firstHi.push(hi);
      this.#firstLo.push(lo);
    }
    c.insertAt(c.n, hi, lo, offset, size);
    this.#lastHi = hi;
    this.#lastLo = lo;
    this.#entries++;
  }

  /** Index of the last chunk whose first key is <= key, or 0 for a key below them all. */
  #chunkFor(hi: number, lo: number): number {
    const FH = this.#firstHi;
    const FL = this.#firstLo;
    let a = 1;
    let b = FH.length;
    // Find the first chunk whose first key is > key; the one before holds it.
    while (a < b) {
      const m = (a + b) >>> 1;
      const hm = FH[m]!;
      if (hm < hi || (hm === hi && FL[m]! <= lo)) a = m + 1;
      else b = m;
    }
    return a - 1;
  }

  /** Out-of-order insert of a new key at position i of chunk ci (which is below the last key). */
  #insert(ci: number, i: number, hi: number, lo: number, offset: number, size: number): void {
    this.#entries++;
    const chunks = this.#chunks;
    let c = chunks[ci]!;
    if (c.full && c.capacity < this.#chunkEntries) c = this.#regrow(ci);
    if (c.full) {
      const next = chunks[ci + 1];
      if (i === c.n && next !== undefined && !next.full) {
        // A late key just below a chunk boundary: it starts the next chunk,
        // which is usually the fresh last one, rather than splitting a full one.
        next.insertAt(0, hi, lo, offset, size);
        this.#firstHi[ci + 1] = hi;
        this.#firstLo[ci + 1] = lo;
        return;
      }
      // In the last chunk, cut where the key goes: the keys after it are the
      // few newest, and the older part stays full. Elsewhere, halve.
      const at = ci === chunks.length - 1 ? i : c.n >>> 1;
      const tail = c.splitOff(at);
      chunks.splice(ci + 1, 0, tail);
      this.#firstHi.splice(ci + 1, 0, tail.hiAt(0));
      this.#firstLo.splice(ci + 1, 0, tail.lo[0]!);
      if (i > at) {
        c = tail;
        i -= at;
      }
    }
    c.insertAt(i, hi, lo, offset, size);
    if (i === 0 && ci === 0 && c === chunks[0]) {
      // Only the first chunk can receive a key below its first key.
      this.#firstHi[0] = hi;
      this.#firstLo[0] = lo;
    }
  }
}

/** Leaves the key's halves in K32[HI] and K32[LO]. */
function splitKey(key: bigint): void {
  K64[0] = key;
  if (K64[0] !== key) throw new RangeError(`needle key ${key} is not a u64`);
}

export interface IdxReplay {
  map: CompactNeedleMap;
  /** Whole 16-byte entries replayed. */
  entries: number;
  /**
   * Bytes of a trailing partial entry (a torn append), 0 if none. The caller
   * should truncate the .idx to `entries * IDX_ENTRY_SIZE` before appending.
   */
  tornBytes: number;
}

/**
 * Replays .idx entries into `map` (a fresh one by default) with shared/idx.ts's
 * walk and rule (`isLiveEntry`): start to end, the last entry per key wins.
 */
export function loadNeedleMapFromIdx(
  bytes: Uint8Array,
  map: CompactNeedleMap = new CompactNeedleMap(),
): IdxReplay {
  const { entries, trailingBytes } = walkIdx(bytes, (hi, lo, offset, size) => {
    if (isLiveEntry(offset, size)) map.setParts(hi, lo, offset, size);
    else map.deleteParts(hi, lo, offset);
  });
  return { map, entries, tornBytes: trailingBytes };
}

/**
 * Bytes of `.idx` read at a time while loading (16,384 entries), into one
 * buffer every load reuses: a fresh buffer per read left tens of MiB of
 * freed memory in the allocator's arenas after a start-up of 10^7 needles,
 * counted in RSS for the life of the process (issue 15).
 */
export const IDX_LOAD_BYTES = 256 * 1024;
let idxScratch: Buffer | undefined;

/**
 * The needle map of the first `idxSize` bytes of an open `.idx` (a multiple
 * of 16: the caller truncated any torn entry), compacted: no chunk keeps
 * room for entries not yet written. Synchronous, so the scratch buffer is
 * never shared by two loads at once.
 */
export function loadNeedleMapFromIdxFile(fd: number, idxSize: number): CompactNeedleMap {
  const map = new CompactNeedleMap();
  idxScratch ??= Buffer.allocUnsafe(IDX_LOAD_BYTES);
  const buf = idxScratch;
  for (let at = 0; at < idxSize; at += IDX_LOAD_BYTES) {
    const length = Math.min(IDX_LOAD_BYTES, idxSize - at);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, at + done);
      if (n === 0) throw new TruncatedDataError(`.idx ends at ${at + done}, wanted ${idxSize} bytes`);
      done += n;
    }
    loadNeedleMapFromIdx(buf.subarray(0, length), map);
  }
  map.compact();
  return map;
}
