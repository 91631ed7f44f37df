import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RangeNotSatisfiableError } from '../../../shared/errors.ts';
import {
  contentRange,
  isIgnoredRange,
  MAX_RANGES,
  parseContentRange,
  parseRange,
  rangesLength,
} from '../../../shared/range.ts';

function unsatisfiable(header: string, size: number): RangeNotSatisfiableError {
  try {
    parseRange(header, size);
  } catch (err) {
    if (err instanceof RangeNotSatisfiableError) return err;
    throw err;
  }
  throw new Error(`expected 416 for ${header}`);
}

describe('parseRange', () => {
  it('reads the three forms of a byte range', () => {
    expect(parseRange('bytes=0-499', 10_000)).toEqual([{ start: 0, end: 499 }]);
    expect(parseRange('bytes=9500-', 10_000)).toEqual([{ start: 9500, end: 9999 }]);
    expect(parseRange('bytes=-500', 10_000)).toEqual([{ start: 9500, end: 9999 }]);
  });

  it('serves bytes=0-0 as the first byte', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual([{ start: 0, end: 0 }]);
  });

  it('clips an end beyond the size and a suffix longer than the size', () => {
    expect(parseRange('bytes=5-1000', 10)).toEqual([{ start: 5, end: 9 }]);
    expect(parseRange('bytes=-1000', 10)).toEqual([{ start: 0, end: 9 }]);
    expect(parseRange(`bytes=0-${'9'.repeat(40)}`, 10)).toEqual([{ start: 0, end: 9 }]);
  });

  it('answers 416 when no range is satisfiable, carrying the size', () => {
    expect(unsatisfiable('bytes=10-', 10).size).toBe(10);
    expect(unsatisfiable('bytes=10-20', 10).status).toBe(416);
    expect(unsatisfiable('bytes=-0', 10).size).toBe(10);
    expect(unsatisfiable('bytes=20-30, 40-', 10).size).toBe(10);
    expect(unsatisfiable(`bytes=${'9'.repeat(40)}-`, 10).size).toBe(10);
    expect(unsatisfiable('bytes=0-', 0).size).toBe(0);
  });

  it('drops unsatisfiable ranges when others are satisfiable', () => {
    expect(parseRange('bytes=50-60, 0-1', 10)).toEqual([{ start: 0, end: 1 }]);
  });

  it('serves an empty blob whole for a suffix range: there is no byte to point at', () => {
    expect(parseRange('bytes=-5', 0)).toBeNull();
  });

  it('keeps several disjoint ranges in request order', () => {
    expect(parseRange('bytes=0-1, 5-6,8-', 10)).toEqual([
      { start: 0, end: 1 },
      { start: 5, end: 6 },
      { start: 8, end: 9 },
    ]);
    expect(parseRange('bytes=8-9,0-1', 10)).toEqual([
      { start: 8, end: 9 },
      { start: 0, end: 1 },
    ]);
  });

  it('coalesces overlapping and adjacent ranges, so repeats cannot amplify a response', () => {
    expect(parseRange('bytes=0-4,2-6', 10)).toEqual([{ start: 0, end: 6 }]);
    expect(parseRange('bytes=0-1,2-3', 10)).toEqual([{ start: 0, end: 3 }]);
    expect(parseRange('bytes=5-9,-3,0-0', 10)).toEqual([
      { start: 0, end: 0 },
      { start: 5, end: 9 },
    ]);
    const abuse = `bytes=${Array(MAX_RANGES).fill('0-').join(',')}`;
    expect(parseRange(abuse, 1_000_000)).toEqual([{ start: 0, end: 999_999 }]);
  });

  it('ignores more than MAX_RANGES ranges (200 whole), overridable', () => {
    const many = `bytes=${Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`;
    expect(parseRange(many, 1000)).toBeNull();
    expect(parseRange(many, 1000, { maxRanges: MAX_RANGES + 1 })).toHaveLength(MAX_RANGES + 1);
  });

  it('ignores a missing header, another unit, or a malformed range-set', () => {
    for (const h of [
      undefined,
      '',
      'bytes',
      'items=0-5',
      'bytes=',
      'bytes=,',
      'bytes=5',
      'bytes=-',
      'bytes=a-b',
      'bytes=5-2',
      'bytes=0-1,5-2',
      'bytes=1.5-2',
      'bytes=0 - 5',
      'bytes=+1-2',
      'bytes=0x10-',
      'bytes=0-1;2-3',
    ]) {
      expect(parseRange(h, 100), String(h)).toBeNull();
    }
  });

  it('accepts the unit in any case, spaces around commas and empty list elements', () => {
    expect(parseRange('Bytes=0-1', 10)).toEqual([{ start: 0, end: 1 }]);
    expect(parseRange('bytes= 0-1 ,, 4-5 ', 10)).toEqual([
      { start: 0, end: 1 },
      { start: 4, end: 5 },
    ]);
  });

  it('always returns disjoint, in-bounds ranges covering no more than the size', () => {
    const spec = fc.oneof(
      fc.tuple(fc.nat(300), fc.option(fc.nat(300))).map(([a, b]) => `${a}-${b ?? ''}`),
      fc.nat(300).map((n) => `-${n}`),
    );
    fc.assert(
      fc.property(fc.array(spec, { minLength: 1, maxLength: 20 }), fc.nat(200), (specs, size) => {
        let ranges: ReturnType<typeof parseRange>;
        try {
          ranges = parseRange(`bytes=${specs.join(',')}`, size);
        } catch (err) {
          expect(err).toBeInstanceOf(RangeNotSatisfiableError);
          return;
        }
        if (ranges === null) return;
        expect(ranges.length).toBeGreaterThan(0);
        for (const r of ranges) {
          expect(r.start).toBeGreaterThanOrEqual(0);
          expect(r.end).toBeGreaterThanOrEqual(r.start);
          expect(r.end).toBeLessThan(size);
        }
        const sorted = [...ranges].sort((a, b) => a.start - b.start);
        for (let i = 1; i < sorted.length; i++)
          expect(sorted[i]!.start).toBeGreaterThan(sorted[i - 1]!.end + 1);
        expect(rangesLength(ranges)).toBeLessThanOrEqual(size);
      }),
    );
  });
});

describe('contentRange', () => {
  it('formats a satisfied range', () => {
    expect(contentRange({ start: 0, end: 0 }, 10)).toBe('bytes 0-0/10');
  });
});

describe('parseContentRange', () => {
  it('reads back what contentRange writes, and an unknown total', () => {
    expect(parseContentRange(contentRange({ start: 100, end: 199 }, 5000))).toEqual({
      start: 100,
      end: 199,
      total: 5000,
    });
    expect(parseContentRange(' bytes 0-9/* ')).toEqual({ start: 0, end: 9, total: undefined });
  });

  it('is undefined for anything but one satisfied byte range', () => {
    for (const h of [undefined, null, '', 'bytes */5000', 'items 0-9/10', 'bytes 0-/10', 'bytes 5-9']) {
      expect(parseContentRange(h)).toBeUndefined();
    }
  });
});

describe('isIgnoredRange', () => {
  it('is true exactly where parseRange ignores the header whatever the size', () => {
    for (const header of [
      'items=0-9',
      'bytes=abc',
      'bytes=30-10',
      'bytes=-',
      'bytes=',
      '0-9',
      'bytes=1-2;x',
    ]) {
      expect(isIgnoredRange(header), header).toBe(true);
      for (const size of [1, 100, 10_000]) expect(parseRange(header, size), header).toBeNull();
    }
    const many = `bytes=${Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',')}`;
    expect(isIgnoredRange(many)).toBe(true);
    // Valid headers, satisfiable or not, are not ignored: the Cache API answers them (206 or 416).
    for (const header of ['bytes=0-9', 'BYTES=5-', 'bytes=-0', 'bytes=500-', 'bytes=0-1, ,3-4']) {
      expect(isIgnoredRange(header), header).toBe(false);
    }
  });

  it('agrees with parseRange on arbitrary headers', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.integer({ min: 1, max: 1000 }), (tail, size) => {
        const header = `bytes=${tail}`;
        let parsed: unknown;
        try {
          parsed = parseRange(header, size);
        } catch (err) {
          if (!(err instanceof RangeNotSatisfiableError)) throw err;
          parsed = 'unsatisfiable';
        }
        // Ignored means parseRange says null for every non-empty size; not ignored, never null.
        expect(parsed === null).toBe(isIgnoredRange(header));
      }),
    );
  });
});
