import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_ENTRIES } from '../../../../origin/volume/needle-chunk.ts';
import {
  CompactNeedleMap,
  IDX_LOAD_BYTES,
  loadNeedleMapFromIdx,
  loadNeedleMapFromIdxFile,
  type NeedleValue,
} from '../../../../origin/volume/needle-map.ts';
import { IDX_ENTRY_SIZE, replayIdx, TOMBSTONE_FILE_SIZE } from '../../../../shared/idx.ts';
import { removeTempDirs, tempDir } from '../../../support/temp-dirs.ts';

const U64_MAX = (1n << 64n) - 1n;

/** The semantics CompactNeedleMap must have, written the obvious way. */
class ModelMap {
  m = new Map<bigint, NeedleValue>();
  fileCount = 0;
  deletedCount = 0;
  deletedBytes = 0;
  contentBytes = 0;

  set(key: bigint, offset: number, size: number): void {
    const prev = this.m.get(key);
    this.fileCount++;
    this.contentBytes += size;
    if (prev !== undefined && prev.size >= 0) {
      this.deletedCount++;
      this.deletedBytes += prev.size;
    }
    this.m.set(key, { offset, size });
  }

  delete(key: bigint, tombstoneOffset: number): number {
    const prev = this.m.get(key);
    if (prev === undefined) {
      this.m.set(key, { offset: tombstoneOffset, size: TOMBSTONE_FILE_SIZE });
      return 0;
    }
    if (prev.size < 0) return 0;
    this.m.set(key, { offset: prev.offset, size: prev.size > 0 ? -prev.size : TOMBSTONE_FILE_SIZE });
    this.deletedCount++;
    this.deletedBytes += prev.size;
    return prev.size;
  }

  sorted(): [bigint, number, number][] {
    return [...this.m.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, v.offset, v.size]);
  }
}

function entries(map: CompactNeedleMap): [bigint, number, number][] {
  const out: [bigint, number, number][] = [];
  map.forEach((k, o, s) => {
    out.push([k, o, s]);
  });
  return out;
}

function expectSame(map: CompactNeedleMap, model: ModelMap, probes: bigint[]): void {
  for (const k of probes) expect(map.get(k)).toEqual(model.m.get(k));
  expect(entries(map)).toEqual(model.sorted());
  expect(map.fileCount).toBe(model.fileCount);
  expect(map.deletedCount).toBe(model.deletedCount);
  expect(map.deletedBytes).toBe(model.deletedBytes);
  expect(map.contentBytes).toBe(model.contentBytes);
  expect(map.entryCount).toBe(model.m.size);
  expect(map.liveCount).toBe([...model.m.values()].filter((v) => v.size >= 0).length);
  expect(map.maxKey).toBe(model.sorted().at(-1)?.[0] ?? 0n);
}

type Op =
  | { op: 'set'; key: bigint; offset: number; size: number }
  | { op: 'delete'; key: bigint; offset: number }
  | { op: 'get'; key: bigint }
  | { op: 'compact' };

/** Keys drawn from regions that stress different paths: small and colliding, around 2^32, near 2^64-1. */
const keyArb = fc.oneof(
  fc.bigInt({ min: 0n, max: 64n }),
  fc.bigInt({ min: (1n << 32n) - 8n, max: (1n << 32n) + 8n }),
  fc.bigInt({ min: U64_MAX - 16n, max: U64_MAX }),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('set' as const),
    key: keyArb,
    offset: fc.integer({ min: 1, max: 0xffffffff }),
    size: fc.integer({ min: 0, max: 0x7fffffff }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    key: keyArb,
    offset: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({ op: fc.constant('get' as const), key: keyArb }),
);

/** opArb plus compact() now and then: trimmed chunks must take later writes anywhere. */
const opOrCompactArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: opArb, weight: 9 },
  { arbitrary: fc.constant({ op: 'compact' as const }), weight: 1 },
);

function run(map: CompactNeedleMap, model: ModelMap, ops: Op[]): bigint[] {
  const probes: bigint[] = [];
  for (const o of ops) {
    if (o.op !== 'compact') probes.push(o.key);
    if (o.op === 'set') {
      map.set(o.key, o.offset, o.size);
      model.set(o.key, o.offset, o.size);
    } else if (o.op === 'delete') {
      expect(map.delete(o.key, o.offset)).toBe(model.delete(o.key, o.offset));
    } else if (o.op === 'compact') {
      map.compact();
    } else {
      expect(map.get(o.key)).toEqual(model.m.get(o.key));
    }
  }
  return probes;
}

describe('CompactNeedleMap', () => {
  it('behaves like a Map under random set/delete/get, with tiny chunks so splits happen constantly', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 300 }),
        fc.integer({ min: 2, max: 6 }),
        (ops, chunkEntries) => {
          const map = new CompactNeedleMap({ chunkEntries });
          const model = new ModelMap();
          const probes = run(map, model, ops);
          expectSame(map, model, [...probes, 0n, U64_MAX, 1n << 32n]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('behaves like a Map with compact() between random operations (trimmed chunks grow back)', () => {
    fc.assert(
      fc.property(
        fc.array(opOrCompactArb, { maxLength: 300 }),
        fc.integer({ min: 2, max: 6 }),
        (ops, chunkEntries) => {
          const map = new CompactNeedleMap({ chunkEntries });
          const model = new ModelMap();
          const probes = run(map, model, ops);
          map.compact();
          expectSame(map, model, [...probes, 0n, U64_MAX, 1n << 32n]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('behaves like a Map for mostly increasing keys with late arrivals (the sequencer pattern)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.nat(9)), {
          minLength: 1,
          maxLength: 400,
        }),
        fc.integer({ min: 2, max: 8 }),
        (steps, chunkEntries) => {
          // Increasing keys; a "late" step swaps with the previous key, a few deletes sprinkled in.
          const keys: bigint[] = [];
          let k = (1n << 32n) - 200n; // crosses the 2^32 boundary partway
          for (const [gap] of steps) {
            k += BigInt(gap);
            keys.push(k);
          }
          steps.forEach(([, late], i) => {
            if (late && i > 0) [keys[i - 1], keys[i]] = [keys[i]!, keys[i - 1]!];
          });
          const ops: Op[] = [];
          keys.forEach((key, i) => {
            ops.push({ op: 'set', key, offset: i + 1, size: 100 + i });
            const d = steps[i]![2];
            if (d === 0) ops.push({ op: 'delete', key: keys[Math.floor(i / 2)]!, offset: 7 });
          });
          const map = new CompactNeedleMap({ chunkEntries });
          const model = new ModelMap();
          const probes = run(map, model, ops);
          expectSame(map, model, [...probes, k + 1n, keys[0]! - 1n]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('holds many chunks of the default size and finds every key', () => {
    const map = new CompactNeedleMap();
    const n = 50_000;
    for (let i = 0; i < n; i++) map.set(BigInt(3 * i + 1), i + 1, i);
    // Out-of-order inserts into full chunks in the middle: they split.
    for (let i = 0; i < 500; i++) map.set(BigInt(3 * i * 97 + 2), 1, 5);
    for (let i = 0; i < n; i++) expect(map.get(BigInt(3 * i + 1))).toEqual({ offset: i + 1, size: i });
    for (let i = 0; i < 500; i++) expect(map.get(BigInt(3 * i * 97 + 2))).toEqual({ offset: 1, size: 5 });
    expect(map.get(0n)).toBeUndefined();
    expect(map.get(BigInt(3 * n + 1))).toBeUndefined();
    expect(map.entryCount).toBe(n + 500);
    expect(map.maxKey).toBe(BigInt(3 * (n - 1) + 1));
    const keys = entries(map).map(([k]) => k);
    expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : 1)));
  });

  it('fills chunks completely with in-order keys, late ones included: about 16 bytes per entry', () => {
    const map = new CompactNeedleMap();
    const n = 12 * CHUNK_ENTRIES;
    for (let i = 1; i <= n; i += 2) {
      // every pair arrives swapped, as two concurrent uploads can
      map.set(BigInt(i + 1), i, 10);
      map.set(BigInt(i), i, 10);
    }
    expect(map.entryCount).toBe(n);
    expect(map.memoryBytes() / n).toBeLessThan(12.1);
  });

  it('trims a partly filled chunk with compact() and takes appends and late keys after it', () => {
    const map = new CompactNeedleMap();
    const n = 2 * CHUNK_ENTRIES + 100; // the last chunk holds 100 of CHUNK_ENTRIES
    for (let i = 1; i <= n; i++) map.set(BigInt(2 * i), i, 1);
    const before = map.memoryBytes();
    map.compact();
    // The trimmed chunk gives back (CHUNK_ENTRIES - 100) entries of 12 B.
    expect(before - map.memoryBytes()).toBe((CHUNK_ENTRIES - 100) * 12);
    map.set(BigInt(2 * n + 2), n + 1, 1); // append: the last chunk grows back
    map.set(BigInt(2 * n - 1), n + 2, 1); // a late key inside it
    map.set(3n, n + 3, 1); // a late key in a full chunk: it splits
    expect(map.get(BigInt(2 * n + 2))).toEqual({ offset: n + 1, size: 1 });
    expect(map.get(BigInt(2 * n - 1))).toEqual({ offset: n + 2, size: 1 });
    expect(map.get(3n)).toEqual({ offset: n + 3, size: 1 });
    for (let i = 1; i <= n; i++) expect(map.get(BigInt(2 * i))).toEqual({ offset: i, size: 1 });
    expect(map.entryCount).toBe(n + 3);
  });

  it('keeps high halves (4 B more per entry) only in a chunk whose keys straddle a multiple of 2^32', () => {
    const map = new CompactNeedleMap({ chunkEntries: 1000 });
    const base = (1n << 32n) - 500n;
    for (let i = 0n; i < 3000n; i++) map.set(base + i, 1, 1);
    // Chunks [base, base+1000) straddle 2^32; the next two share their high half.
    expect(map.memoryBytes()).toBe(1000 * 16 + 2 * 1000 * 12 + 3 * 512);
    for (let i = 0n; i < 3000n; i++) expect(map.get(base + i)).toEqual({ offset: 1, size: 1 });
    expect(map.get(1n << 32n)).toEqual({ offset: 1, size: 1 });
    expect(map.get((1n << 33n) + 1n)).toBeUndefined();
  });

  it('marks deletes with a negated size, keeps the offset, and counts like SeaweedFS', () => {
    const map = new CompactNeedleMap();
    map.set(5n, 10, 300);
    map.set(5n, 20, 400); // overwrite: the first needle becomes garbage
    expect(map.delete(5n, 30)).toBe(400);
    expect(map.get(5n)).toEqual({ offset: 20, size: -400 });
    expect(map.delete(5n, 40)).toBe(0); // already deleted: nothing changes
    expect(map.get(5n)).toEqual({ offset: 20, size: -400 });
    expect(map.delete(9n, 50)).toBe(0); // unknown: a tombstone
    expect(map.get(9n)).toEqual({ offset: 50, size: TOMBSTONE_FILE_SIZE });
    map.set(7n, 60, 0); // an empty needle is live
    expect(map.get(7n)).toEqual({ offset: 60, size: 0 });
    expect(map.delete(7n, 70)).toBe(0);
    expect(map.get(7n)).toEqual({ offset: 60, size: TOMBSTONE_FILE_SIZE });
    expect({
      fileCount: map.fileCount,
      deletedCount: map.deletedCount,
      deletedBytes: map.deletedBytes,
      contentBytes: map.contentBytes,
      liveCount: map.liveCount,
      maxKey: map.maxKey,
    }).toEqual({
      fileCount: 3,
      deletedCount: 3,
      deletedBytes: 700,
      contentBytes: 700,
      liveCount: 0,
      maxKey: 9n,
    });
  });

  it('handles keys at the ends of the u64 range and rejects keys outside it', () => {
    const map = new CompactNeedleMap();
    map.set(U64_MAX, 1, 1);
    map.set(0n, 2, 2);
    expect(map.get(U64_MAX)).toEqual({ offset: 1, size: 1 });
    expect(map.get(0n)).toEqual({ offset: 2, size: 2 });
    expect(map.maxKey).toBe(U64_MAX);
    expect(map.get(-1n)).toBeUndefined(); // would wrap to U64_MAX if unchecked
    expect(map.get(U64_MAX + 1n)).toBeUndefined(); // would wrap to 0
    expect(() => map.set(-1n, 1, 1)).toThrow(RangeError);
    expect(() => map.set(1n << 64n, 1, 1)).toThrow(RangeError);
    expect(() => map.delete(-1n, 0)).toThrow(RangeError);
  });

  it('rejects offsets and sizes no needle can have', () => {
    const map = new CompactNeedleMap();
    expect(() => map.set(1n, 0, 1)).toThrow(RangeError); // offset 0 is the superblock
    expect(() => map.set(1n, 2 ** 32, 1)).toThrow(RangeError);
    expect(() => map.set(1n, 1, -1)).toThrow(RangeError);
    expect(() => map.set(1n, 1, 2 ** 31)).toThrow(RangeError);
    expect(() => map.set(1n, 1.5, 1)).toThrow(RangeError);
    expect(() => map.delete(1n, -1)).toThrow(RangeError);
    expect(map.entryCount).toBe(0);
  });

  it('is empty to begin with', () => {
    const map = new CompactNeedleMap();
    expect(map.get(1n)).toBeUndefined();
    expect(map.maxKey).toBe(0n);
    expect(map.memoryBytes()).toBe(0);
    expect(entries(map)).toEqual([]);
  });
});

function idxBytes(rows: [bigint, number, number][], extra = 0): Uint8Array {
  const bytes = new Uint8Array(rows.length * IDX_ENTRY_SIZE + extra);
  const dv = new DataView(bytes.buffer);
  rows.forEach(([key, offset, size], i) => {
    dv.setBigUint64(i * 16, key);
    dv.setUint32(i * 16 + 8, offset);
    dv.setUint32(i * 16 + 12, size >>> 0);
  });
  return bytes;
}

describe('loadNeedleMapFromIdx', () => {
  it('replays entries in order: last entry per key wins, tombstones and offset 0 delete', () => {
    const {
      map,
      entries: n,
      tornBytes,
    } = loadNeedleMapFromIdx(
      idxBytes([
        [1n, 1, 100],
        [2n, 3, 200],
        [1n, 5, 150], // overwrite
        [2n, 7, 0xffffffff], // tombstone
        [3n, 0, 50], // offset 0 is never a needle: a delete
        [4n, 9, 0], // empty needle, live
        [U64_MAX, 11, 10],
      ]),
    );
    expect(n).toBe(7);
    expect(tornBytes).toBe(0);
    expect(map.get(1n)).toEqual({ offset: 5, size: 150 });
    expect(map.get(2n)).toEqual({ offset: 3, size: -200 });
    expect(map.get(3n)).toEqual({ offset: 0, size: TOMBSTONE_FILE_SIZE });
    expect(map.get(4n)).toEqual({ offset: 9, size: 0 });
    expect(map.maxKey).toBe(U64_MAX);
    expect(map.fileCount).toBe(5);
    expect(map.contentBytes).toBe(100 + 200 + 150 + 0 + 10);
    expect(map.deletedCount).toBe(2);
    expect(map.deletedBytes).toBe(100 + 200);
    expect(map.liveCount).toBe(3);
  });

  it('reports a torn trailing entry and replays only whole ones', () => {
    for (const torn of [1, 8, 15]) {
      const bytes = idxBytes(
        [
          [1n, 1, 10],
          [2n, 2, 20],
        ],
        torn,
      );
      bytes.fill(0xff, 32); // garbage in the partial entry must not be read
      const r = loadNeedleMapFromIdx(bytes);
      expect(r.entries).toBe(2);
      expect(r.tornBytes).toBe(torn);
      expect(r.map.entryCount).toBe(2);
    }
    expect(loadNeedleMapFromIdx(new Uint8Array(0)).entries).toBe(0);
  });

  it('reads from a view at an unaligned offset and replays into an existing map', () => {
    const inner = idxBytes([[42n, 3, 30]]);
    const buf = new Uint8Array(inner.length + 3);
    buf.set(inner, 3);
    const map = new CompactNeedleMap();
    map.set(42n, 1, 10);
    const r = loadNeedleMapFromIdx(buf.subarray(3), map);
    expect(r.map).toBe(map);
    expect(map.get(42n)).toEqual({ offset: 3, size: 30 });
    expect(map.deletedBytes).toBe(10);
  });

  it('agrees with replaying the same entries through set/delete', () => {
    const row = fc.tuple(
      fc.oneof(fc.bigInt({ min: 0n, max: 40n }), fc.bigInt({ min: U64_MAX - 4n, max: U64_MAX })),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffffffff })),
      fc.oneof(fc.constant(-1), fc.constant(0), fc.integer({ min: -5, max: 1_000_000 })),
    );
    fc.assert(
      fc.property(fc.array(row, { maxLength: 200 }), (rows) => {
        const model = new ModelMap();
        for (const [key, offset, size] of rows) {
          if (offset !== 0 && size >= 0) model.set(key, offset, size);
          else model.delete(key, offset);
        }
        const { map } = loadNeedleMapFromIdx(idxBytes(rows), new CompactNeedleMap({ chunkEntries: 3 }));
        expectSame(
          map,
          model,
          rows.map(([k]) => k),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('keeps exactly the entries shared/idx.ts replayIdx keeps (one replay rule, size 0 live)', () => {
    const row = fc.tuple(
      fc.bigInt({ min: 0n, max: 30n }),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffff })),
      fc.oneof(fc.constant(-1), fc.constant(0), fc.integer({ min: 1, max: 5000 })),
    );
    fc.assert(
      fc.property(fc.array(row, { maxLength: 120 }), (rows) => {
        const bytes = idxBytes(rows);
        const { map } = loadNeedleMapFromIdx(bytes);
        const shared = replayIdx(bytes);
        expect(map.liveCount).toBe(shared.liveCount);
        for (const [key, v] of shared.live) expect(map.get(key)).toEqual(v);
        for (const [key] of rows) {
          const got = map.get(key);
          if (!shared.live.has(key)) expect(got === undefined || got.size < 0).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('loadNeedleMapFromIdxFile', () => {
  it('reads an .idx many buffers long into the same map as one replay of its bytes, compacted', () => {
    const perBuffer = IDX_LOAD_BYTES / IDX_ENTRY_SIZE;
    const n = Math.floor(3.5 * perBuffer) + 1000; // the last chunk partly filled
    const rows: [bigint, number, number][] = [];
    for (let i = 0; i < n; i++) {
      // Mostly new keys; every 7th overwrites an older one, every 11th deletes one (across buffers).
      const key = i % 7 === 6 ? BigInt(i - perBuffer) : BigInt(i + 1);
      rows.push([key < 1n ? 1n : key, i + 1, i % 11 === 10 ? 0xffffffff : 100 + (i % 50)]);
    }
    const bytes = idxBytes(rows);
    const path = join(tempDir('kelp-idx-'), '1.idx');
    writeFileSync(path, bytes);
    const fd = openSync(path, 'r');
    try {
      const map = loadNeedleMapFromIdxFile(fd, bytes.length);
      const whole = loadNeedleMapFromIdx(bytes).map;
      expect(entries(map)).toEqual(entries(whole));
      expect(map.fileCount).toBe(whole.fileCount);
      expect(map.deletedBytes).toBe(whole.deletedBytes);
      // Compacted: no chunk keeps room beyond its entries (12 B each, plus the per-chunk estimate).
      const before = whole.memoryBytes();
      whole.compact();
      expect(map.memoryBytes()).toBe(whole.memoryBytes());
      expect(map.memoryBytes()).toBeLessThan(before);
      // A file shorter than the size asked for is an error, not a short map.
      expect(() => loadNeedleMapFromIdxFile(fd, bytes.length + IDX_ENTRY_SIZE)).toThrow(/ends at/);
    } finally {
      closeSync(fd);
      removeTempDirs();
    }
  });
});
