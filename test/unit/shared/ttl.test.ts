import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, InvalidTtlError, KelpError, TruncatedDataError } from '../../../shared/errors.ts';
import {
  decodeTtl,
  EMPTY_TTL,
  encodeTtl,
  formatTtl,
  isEmptyTtl,
  parseTtl,
  type Ttl,
  type TtlUnit,
  ttlToSeconds,
} from '../../../shared/ttl.ts';

const units: TtlUnit[] = ['m', 'h', 'd', 'w', 'M', 'y'];
const ttlArb = fc.record({ count: fc.integer({ min: 1, max: 255 }), unit: fc.constantFrom(...units) });

function valueOrKelpError(run: () => unknown): true {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
  }
  return true;
}

describe('parseTtl', () => {
  it('reads each unit of the brief', () => {
    expect(parseTtl('3m')).toEqual({ count: 3, unit: 'm' });
    expect(parseTtl('4h')).toEqual({ count: 4, unit: 'h' });
    expect(parseTtl('5d')).toEqual({ count: 5, unit: 'd' });
    expect(parseTtl('6w')).toEqual({ count: 6, unit: 'w' });
    expect(parseTtl('7M')).toEqual({ count: 7, unit: 'M' });
    expect(parseTtl('8y')).toEqual({ count: 8, unit: 'y' });
  });

  it('reads a bare number as minutes', () => {
    expect(parseTtl('45')).toEqual({ count: 45, unit: 'm' });
  });

  it('reads "" and a zero count as no TTL', () => {
    expect(parseTtl('')).toBe(EMPTY_TTL);
    expect(parseTtl('0')).toBe(EMPTY_TTL);
    expect(parseTtl('0d')).toBe(EMPTY_TTL);
    expect(isEmptyTtl(parseTtl(''))).toBe(true);
  });

  it('normalises to the largest unit that holds the value exactly', () => {
    expect(parseTtl('60')).toEqual({ count: 1, unit: 'h' });
    expect(parseTtl('120m')).toEqual({ count: 2, unit: 'h' });
    expect(parseTtl('48h')).toEqual({ count: 2, unit: 'd' });
    expect(parseTtl('14d')).toEqual({ count: 2, unit: 'w' });
    expect(parseTtl('30d')).toEqual({ count: 1, unit: 'M' });
    expect(parseTtl('365d')).toEqual({ count: 1, unit: 'y' });
    expect(parseTtl('24M')).toEqual({ count: 24, unit: 'M' });
  });

  it('rounds down to the smallest unit whose count fits a byte, as SeaweedFS does', () => {
    expect(parseTtl('300m')).toEqual({ count: 5, unit: 'h' });
    expect(parseTtl('256m')).toEqual({ count: 4, unit: 'h' });
    expect(parseTtl('1000d')).toEqual({ count: 142, unit: 'w' });
  });

  it('accepts up to 255 years', () => {
    expect(parseTtl('255y')).toEqual({ count: 255, unit: 'y' });
  });

  it.each([
    ['garbage', 'abc'],
    ['a unit without a count', 'h'],
    ['a negative count', '-5m'],
    ['a signed count', '+5m'],
    ['an unknown unit', '5x'],
    ['an upper-case hour', '5H'],
    ['surrounding space', ' 5m'],
    ['a fraction', '1.5h'],
    ['two units', '5m5'],
    ['more than 255 years', '256y'],
    ['a count too big for a double', '9'.repeat(400)],
  ])('rejects %s with InvalidTtlError', (_, input) => {
    expect(() => parseTtl(input)).toThrow(InvalidTtlError);
  });

  it('keeps the seconds of any TTL that normalises exactly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 255 }), fc.constantFrom(...units), (count, unit) => {
        const ttl = parseTtl(`${count}${unit}`);
        expect(ttlToSeconds(ttl)).toBe(ttlToSeconds({ count, unit }));
      }),
    );
  });

  it('never rounds up and loses less than one unit of the result', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), (minutes) => {
        const ttl = parseTtl(String(minutes));
        const seconds = ttlToSeconds(ttl);
        expect(seconds).toBeLessThanOrEqual(minutes * 60);
        expect(minutes * 60 - seconds).toBeLessThan(ttlToSeconds({ count: 1, unit: ttl.unit }));
        expect(ttl.count).toBeGreaterThanOrEqual(1);
        expect(ttl.count).toBeLessThanOrEqual(255);
      }),
    );
  });
});

describe('formatTtl', () => {
  it('writes count and unit, and nothing for no TTL', () => {
    expect(formatTtl({ count: 7, unit: 'M' })).toBe('7M');
    expect(formatTtl(EMPTY_TTL)).toBe('');
  });

  it('round-trips through parseTtl once normalised', () => {
    fc.assert(
      fc.property(ttlArb, (t) => {
        const normal = parseTtl(formatTtl(t));
        expect(parseTtl(formatTtl(normal))).toEqual(normal);
      }),
    );
  });

  it('rejects a count that does not fit a byte', () => {
    expect(() => formatTtl({ count: 256, unit: 'm' })).toThrow(InvalidTtlError);
  });
});

describe('ttlToSeconds', () => {
  it('counts a month as 30 days and a year as 365 days', () => {
    expect(ttlToSeconds({ count: 3, unit: 'm' })).toBe(180);
    expect(ttlToSeconds({ count: 1, unit: 'w' })).toBe(7 * 86_400);
    expect(ttlToSeconds({ count: 1, unit: 'M' })).toBe(30 * 86_400);
    expect(ttlToSeconds({ count: 1, unit: 'y' })).toBe(365 * 86_400);
    expect(ttlToSeconds(EMPTY_TTL)).toBe(0);
  });
});

describe('encodeTtl / decodeTtl', () => {
  it('stores count then unit byte 1-6', () => {
    expect([...encodeTtl({ count: 3, unit: 'm' })]).toEqual([3, 1]);
    expect([...encodeTtl({ count: 8, unit: 'y' })]).toEqual([8, 6]);
    expect([...encodeTtl(EMPTY_TTL)]).toEqual([0, 0]);
  });

  it('round-trips every valid TTL', () => {
    fc.assert(
      fc.property(ttlArb, (t) => {
        expect(decodeTtl(encodeTtl(t))).toEqual(t);
      }),
    );
  });

  it('reads at an offset', () => {
    expect(decodeTtl(Uint8Array.of(9, 9, 5, 3), 2)).toEqual({ count: 5, unit: 'd' });
  });

  it('reads a zero count or unit 0 (older SeaweedFS) as no TTL', () => {
    expect(decodeTtl(Uint8Array.of(0, 1))).toBe(EMPTY_TTL);
    expect(decodeTtl(Uint8Array.of(5, 0))).toBe(EMPTY_TTL);
  });

  it('rejects a unit byte above 6 as corrupt', () => {
    expect(() => decodeTtl(Uint8Array.of(1, 7))).toThrow(CorruptDataError);
  });

  it('rejects short input as truncated', () => {
    expect(() => decodeTtl(Uint8Array.of(1))).toThrow(TruncatedDataError);
    expect(() => decodeTtl(Uint8Array.of(1, 1), 1)).toThrow(TruncatedDataError);
    expect(() => decodeTtl(Uint8Array.of(1, 1), -1)).toThrow(TruncatedDataError);
  });

  it('refuses to encode an invalid TTL', () => {
    expect(() => encodeTtl({ count: 1.5, unit: 'h' })).toThrow(InvalidTtlError);
    expect(() => encodeTtl({ count: 1, unit: 'x' } as unknown as Ttl)).toThrow(InvalidTtlError);
    expect(() => encodeTtl({ count: 1, unit: 'toString' } as unknown as Ttl)).toThrow(InvalidTtlError);
  });
});

describe('fuzz', () => {
  it('parseTtl returns a TTL or throws a KelpError for any string', () => {
    const input = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc.stringMatching(/^[-+ 0-9.mhdwMyx]{0,8}$/),
    );
    fc.assert(
      fc.property(input, (s) => valueOrKelpError(() => parseTtl(s))),
      { numRuns: 10_000 },
    );
  });

  it('decodeTtl returns a TTL or throws a KelpError for any bytes and offset', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4 }), fc.integer({ min: -2, max: 5 }), (bytes, offset) =>
        valueOrKelpError(() => decodeTtl(bytes, offset)),
      ),
      { numRuns: 10_000 },
    );
  });
});
