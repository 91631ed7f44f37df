import { describe, expect, it } from 'vitest';
import { CorruptDataError } from '../../../shared/errors.ts';
import {
  decodeDeletionSet,
  decodeTierDirectory,
  encodeDeletionSet,
  encodeTierIndex,
  findInPage,
  indexHeadBytes,
  isDeleted,
  pageOf,
  pageRange,
  verifyPage,
} from '../../../shared/tier-index.ts';

function build(n: number, pageEntries = 4) {
  // Keys out of order, with gaps: the encoder sorts them.
  const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt((n - i) * 3));
  const offsets = Uint32Array.from({ length: n }, (_, i) => 100 + i);
  const sizes = Uint32Array.from({ length: n }, (_, i) => 1000 + i);
  const bytes = encodeTierIndex({
    needleVersion: 3,
    volumeId: 7,
    datSize: 123_456,
    ttl: new Uint8Array([0, 0]),
    createdAt: 1_700_000_000_000,
    entries: { keys, offsets, sizes },
    pageEntries,
  });
  return { bytes, keys, offsets, sizes };
}

function lookup(bytes: Uint8Array, key: bigint) {
  const dir = decodeTierDirectory(
    bytes.subarray(0, indexHeadBytes(decodeTierDirectory(bytes).header.pageCount)),
  );
  const page = pageOf(dir, key);
  if (page < 0) return undefined;
  const { offset, length } = pageRange(dir.header, page);
  const pageBytes = bytes.subarray(offset, offset + length);
  verifyPage(dir, page, pageBytes);
  return findInPage(dir, page, pageBytes, key);
}

describe('tier index', () => {
  it('finds every key through the directory and one page, and misses absent keys', () => {
    const { bytes, keys, offsets, sizes } = build(37);
    const dir = decodeTierDirectory(bytes);
    expect(dir.header).toMatchObject({
      volumeId: 7,
      entryCount: 37,
      pageCount: 10,
      pageEntries: 4,
      datSize: 123_456,
    });
    expect(bytes.length).toBe(64 + 10 * 16 + 10 * 4 * 16);
    for (let i = 0; i < keys.length; i++) {
      expect(lookup(bytes, keys[i]!)).toEqual({ byteOffset: offsets[i]! * 8, size: sizes[i]! });
    }
    for (const absent of [0n, 1n, 2n, 4n, 112n, 10n ** 18n]) expect(lookup(bytes, absent)).toBeUndefined();
  });

  it('costs 16 bytes per needle plus 1/16 of a byte of directory at 256 entries a page', () => {
    const n = 256 * 40;
    const { bytes } = build(n, 256);
    expect(bytes.length).toBe(64 + 40 * 16 + n * 16);
    expect(bytes.length / n).toBeCloseTo(16.07, 2);
  });

  it('refuses a damaged header or page', () => {
    const { bytes } = build(9);
    const bad = bytes.slice();
    bad[20] = bad[20]! ^ 1;
    expect(() => decodeTierDirectory(bad)).toThrow(CorruptDataError);
    const dir = decodeTierDirectory(bytes);
    const { offset, length } = pageRange(dir.header, 1);
    const page = bytes.slice(offset, offset + length);
    page[3] = page[3]! ^ 1;
    expect(() => verifyPage(dir, 1, page)).toThrow(CorruptDataError);
  });

  it('a deletion set round-trips and answers membership; a damaged one is refused', () => {
    const set = decodeDeletionSet(encodeDeletionSet(7, [9n, 3n, 2n ** 63n], 42));
    expect(set).toMatchObject({ volumeId: 7, writtenAt: 42 });
    expect([...set.keys]).toEqual([3n, 9n, 2n ** 63n]);
    expect(isDeleted(set, 9n)).toBe(true);
    expect(isDeleted(set, 4n)).toBe(false);
    const bytes = encodeDeletionSet(7, [5n], 1);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    expect(() => decodeDeletionSet(bytes)).toThrow(CorruptDataError);
  });
});
