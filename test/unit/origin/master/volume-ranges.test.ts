import { describe, expect, it } from 'vitest';
import {
  addVolumeIds,
  hasVolumeId,
  MAX_DELETED_RANGES,
  parseVolumeRanges,
  unionVolumeRanges,
} from '../../../../origin/master/volume-ranges.ts';

describe('volume id ranges', () => {
  it('merges neighbours and overlaps into one canonical list, and finds every id in it and no other', () => {
    let ranges = addVolumeIds([], [5, 3, 4, 9]);
    expect(ranges).toEqual([
      [3, 5],
      [9, 9],
    ]);
    ranges = addVolumeIds(ranges, [6, 8, 20, 4]);
    expect(ranges).toEqual([
      [3, 6],
      [8, 9],
      [20, 20],
    ]);
    ranges = addVolumeIds(ranges, [7]);
    expect(ranges).toEqual([
      [3, 9],
      [20, 20],
    ]);
    const inside = new Set([3, 4, 5, 6, 7, 8, 9, 20]);
    for (let id = 0; id <= 25; id++) expect(hasVolumeId(ranges, id), `id ${id}`).toBe(inside.has(id));
    expect(addVolumeIds(ranges, [])).toBe(ranges);
  });

  it('agrees with a plain set on random ids (binary search over many ranges)', () => {
    const ids = new Set<number>();
    let ranges = addVolumeIds([], []);
    for (let round = 0; round < 50; round++) {
      const batch = Array.from({ length: 20 }, () => Math.floor(Math.random() * 2_000));
      for (const id of batch) ids.add(id);
      ranges = addVolumeIds(ranges, batch);
    }
    for (let id = 0; id < 2_100; id++) expect(hasVolumeId(ranges, id)).toBe(ids.has(id));
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThan(ranges[i - 1]![1] + 1);
  });

  it('unites two sets (what a master knows and what it reads from the store)', () => {
    const a = addVolumeIds([], [1, 2, 10]);
    const b = addVolumeIds([], [3, 9, 20]);
    expect(unionVolumeRanges(a, b)).toEqual([
      [1, 3],
      [9, 10],
      [20, 20],
    ]);
    expect(unionVolumeRanges(a, [])).toBe(a);
    expect(unionVolumeRanges([], b)).toBe(b);
  });

  it('keeps at most the bound, dropping the lowest ranges (the oldest deletions) first', () => {
    const evens = Array.from({ length: 10 }, (_, i) => i * 2);
    const ranges = addVolumeIds([], evens, 4);
    expect(ranges).toEqual([
      [12, 12],
      [14, 14],
      [16, 16],
      [18, 18],
    ]);
    expect(hasVolumeId(ranges, 0)).toBe(false);
    expect(MAX_DELETED_RANGES).toBeGreaterThan(0);
  });

  it('parses what it stores, in any order, and refuses anything that is not ranges of volume ids', () => {
    expect(
      parseVolumeRanges([
        [9, 12],
        [1, 2],
        [3, 3],
      ]),
    ).toEqual([
      [1, 3],
      [9, 12],
    ]);
    expect(parseVolumeRanges([])).toEqual([]);
    for (const bad of [{}, [[1]], [[2, 1]], [[-1, 3]], [[1.5, 2]], [['1', 2]], [[0, 2 ** 32]], 'x'])
      expect(() => parseVolumeRanges(bad), JSON.stringify(bad)).toThrow();
  });
});
