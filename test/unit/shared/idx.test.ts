import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InternalError, TruncatedDataError } from '../../../shared/errors.ts';
import {
  decodeIdxEntry,
  encodeIdxEntry,
  IDX_ENTRY_SIZE,
  type IdxEntry,
  idxKey,
  MAX_VOLUME_OFFSET,
  replayIdx,
  TOMBSTONE_FILE_SIZE,
  toByteOffset,
  toStoredOffset,
  walkIdx,
  writeIdxEntry,
} from '../../../shared/idx.ts';

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));

function idxFile(entries: IdxEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * IDX_ENTRY_SIZE);
  for (const [i, e] of entries.entries()) writeIdxEntry(out, i * IDX_ENTRY_SIZE, e);
  return out;
}

const entry: fc.Arbitrary<IdxEntry> = fc.record({
  key: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
  offset: fc.integer({ min: 0, max: 0xffffffff }),
  size: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
});

describe('idx entries', () => {
  it('encode as key u64, offset u32 in 8-byte units, size i32, big-endian', () => {
    expect(
      encodeIdxEntry({ key: 0x0102030405060708n, offset: toStoredOffset(0x1234 * 8), size: 75652 }),
    ).toEqual(hex('0102030405060708 00001234 00012784'));
  });

  it('encode a delete as size 0xFFFFFFFF', () => {
    const bytes = encodeIdxEntry({ key: 20n, offset: 117817, size: TOMBSTONE_FILE_SIZE });
    expect(bytes).toEqual(hex('0000000000000014 0001cc39 ffffffff'));
    expect(decodeIdxEntry(bytes)).toEqual({ key: 20n, offset: 117817, size: -1 });
  });

  it('round-trip any entry', () => {
    fc.assert(
      fc.property(entry, (e) => {
        expect(decodeIdxEntry(encodeIdxEntry(e))).toEqual(e);
      }),
    );
  });

  it('decode at an offset inside a larger buffer, and refuse a short one', () => {
    const file = idxFile([
      { key: 1n, offset: 1, size: 10 },
      { key: 2n, offset: 3, size: 20 },
    ]);
    expect(decodeIdxEntry(file.subarray(3), 13)).toEqual({ key: 2n, offset: 3, size: 20 });
    expect(() => decodeIdxEntry(file, 17)).toThrow(TruncatedDataError);
    expect(() => decodeIdxEntry(new Uint8Array(15))).toThrow(TruncatedDataError);
  });

  it('refuse values that do not fit their fields', () => {
    expect(() => encodeIdxEntry({ key: -1n, offset: 0, size: 0 })).toThrow(InternalError);
    expect(() => encodeIdxEntry({ key: 1n, offset: 2 ** 32, size: 0 })).toThrow(InternalError);
    expect(() => encodeIdxEntry({ key: 1n, offset: 1, size: 2 ** 31 })).toThrow(InternalError);
    expect(() => writeIdxEntry(new Uint8Array(20), 8, { key: 1n, offset: 1, size: 1 })).toThrow(
      InternalError,
    );
  });
});

describe('stored offsets', () => {
  it('are byte offsets in 8-byte units, up to 32 GiB', () => {
    expect(toStoredOffset(0)).toBe(0);
    expect(toStoredOffset(8)).toBe(1);
    expect(toByteOffset(114152)).toBe(913216);
    expect(toStoredOffset(MAX_VOLUME_OFFSET)).toBe(0xffffffff);
    expect(toByteOffset(0xffffffff)).toBe(MAX_VOLUME_OFFSET);
  });

  it('refuse unaligned offsets and offsets past 32 GiB', () => {
    expect(() => toStoredOffset(12)).toThrow(InternalError);
    expect(() => toStoredOffset(-8)).toThrow(InternalError);
    expect(() => toStoredOffset(MAX_VOLUME_OFFSET + 8)).toThrow(InternalError);
  });
});

describe('walkIdx', () => {
  it('visits every whole entry with the key split in halves', () => {
    const entries = [
      { key: 0xfffffffe_00000001n, offset: 1, size: 5 },
      { key: 7n, offset: 9, size: TOMBSTONE_FILE_SIZE },
    ];
    const seen: IdxEntry[] = [];
    const walk = walkIdx(idxFile(entries), (hi, lo, offset, size, i) => {
      expect(i).toBe(seen.length);
      seen.push({ key: idxKey(hi, lo), offset, size });
    });
    expect(seen).toEqual(entries);
    expect(walk).toEqual({ entries: 2, trailingBytes: 0 });
  });

  it('reports a torn last entry instead of throwing', () => {
    const file = idxFile([{ key: 1n, offset: 1, size: 5 }]);
    const torn = new Uint8Array(file.length + 7);
    torn.set(file);
    let visits = 0;
    expect(walkIdx(torn, () => visits++)).toEqual({ entries: 1, trailingBytes: 7 });
    expect(visits).toBe(1);
  });

  it('reads a subarray view in the right place', () => {
    const file = idxFile([
      { key: 1n, offset: 1, size: 5 },
      { key: 2n, offset: 2, size: 6 },
    ]);
    const keys: bigint[] = [];
    walkIdx(file.subarray(16), (hi, lo) => keys.push(idxKey(hi, lo)));
    expect(keys).toEqual([2n]);
  });
});

describe('replayIdx', () => {
  it('lets the last entry per key win and counts garbage as SeaweedFS does', () => {
    const s = replayIdx(
      idxFile([
        { key: 1n, offset: 1, size: 100 },
        { key: 2n, offset: 20, size: 200 },
        { key: 1n, offset: 50, size: 110 }, // overwrite: 100 bytes become garbage
        { key: 2n, offset: 80, size: TOMBSTONE_FILE_SIZE }, // delete: 200 more
        { key: 9n, offset: 84, size: TOMBSTONE_FILE_SIZE }, // delete of an unknown key: counted, 0 bytes
        { key: 3n, offset: 0, size: 50 }, // offset 0 is the superblock: never a needle
        { key: 4n, offset: 90, size: 0 }, // an empty file: live, as in SeaweedFS's loader (Size.IsDeleted)
      ]),
    );
    expect([...s.live]).toEqual([
      [1n, { offset: 50, size: 110 }],
      [4n, { offset: 90, size: 0 }],
    ]);
    expect(s).toMatchObject({
      entries: 7,
      trailingBytes: 0,
      liveCount: 2,
      liveBytes: 110,
      tombstoneEntries: 3,
      deletedCount: 4,
      deletedBytes: 300,
      contentBytes: 410,
      maxKey: 9n,
    });
  });

  it('agrees with a plain model on random logs', () => {
    const op = fc.record({
      key: fc.bigInt({ min: 1n, max: 20n }),
      offset: fc.integer({ min: 0, max: 1000 }),
      size: fc.oneof(fc.constant(TOMBSTONE_FILE_SIZE), fc.integer({ min: 0, max: 5000 })),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const model = new Map<bigint, { offset: number; size: number }>();
        for (const o of ops) {
          if (o.offset !== 0 && o.size >= 0) model.set(o.key, { offset: o.offset, size: o.size });
          else model.delete(o.key);
        }
        const s = replayIdx(idxFile(ops));
        expect(s.live).toEqual(model);
        expect(s.liveBytes).toBe([...model.values()].reduce((a, v) => a + v.size, 0));
        let maxKey = 0n;
        for (const o of ops) if (o.key > maxKey) maxKey = o.key;
        expect(s.maxKey).toBe(maxKey);
      }),
    );
  });
});
