import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidPlacementError, KelpError } from '../../../shared/errors.ts';
import {
  copyCount,
  formatPlacement,
  NO_REPLICATION,
  type Placement,
  parsePlacement,
  placementFromByte,
  placementToByte,
} from '../../../shared/placement.ts';

const digitArb = fc.integer({ min: 0, max: 2 });
const placementArb: fc.Arbitrary<Placement> = fc.record({
  diffDataCenter: digitArb,
  diffRack: digitArb,
  sameRack: digitArb,
});

function valueOrKelpError(run: () => unknown): true {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
  }
  return true;
}

describe('parsePlacement', () => {
  it('reads x = other data centers, y = other racks, z = other servers in the rack', () => {
    expect(parsePlacement('001')).toEqual({ diffDataCenter: 0, diffRack: 0, sameRack: 1 });
    expect(parsePlacement('010')).toEqual({ diffDataCenter: 0, diffRack: 1, sameRack: 0 });
    expect(parsePlacement('200')).toEqual({ diffDataCenter: 2, diffRack: 0, sameRack: 0 });
  });

  it('reads "" as 000', () => {
    expect(parsePlacement('')).toEqual(NO_REPLICATION);
    expect(formatPlacement(parsePlacement(''))).toBe('000');
  });

  it.each([
    ['a digit above 2', '003'],
    ['too few digits', '1'],
    ['too many digits', '0010'],
    ['letters', 'abc'],
    ['a sign', '-01'],
    ['spaces', ' 01'],
  ])('rejects %s with InvalidPlacementError', (_, input) => {
    expect(() => parsePlacement(input)).toThrow(InvalidPlacementError);
  });

  it('round-trips through formatPlacement', () => {
    fc.assert(
      fc.property(placementArb, (p) => {
        expect(parsePlacement(formatPlacement(p))).toEqual(p);
      }),
    );
  });
});

describe('copyCount', () => {
  it('counts the original plus every replica', () => {
    expect(copyCount(parsePlacement('000'))).toBe(1);
    expect(copyCount(parsePlacement('001'))).toBe(2);
    expect(copyCount(parsePlacement('110'))).toBe(3);
    expect(copyCount(parsePlacement('222'))).toBe(7);
  });
});

describe('placement byte', () => {
  it('is 100x + 10y + z as in the superblock', () => {
    expect(placementToByte(parsePlacement('010'))).toBe(10);
    expect(placementToByte(parsePlacement('201'))).toBe(201);
    expect(placementFromByte(1)).toEqual(parsePlacement('001'));
  });

  it('round-trips every placement', () => {
    fc.assert(
      fc.property(placementArb, (p) => {
        expect(placementFromByte(placementToByte(p))).toEqual(p);
      }),
    );
  });

  it('rejects a byte with a digit above 2 or out of range', () => {
    expect(() => placementFromByte(3)).toThrow(InvalidPlacementError);
    expect(() => placementFromByte(255)).toThrow(InvalidPlacementError);
    expect(() => placementFromByte(256)).toThrow(InvalidPlacementError);
    expect(() => placementFromByte(-1)).toThrow(InvalidPlacementError);
  });

  it('refuses to encode counts above 2', () => {
    expect(() => placementToByte({ diffDataCenter: 0, diffRack: 3, sameRack: 0 })).toThrow(
      InvalidPlacementError,
    );
  });
});

describe('fuzz', () => {
  it('parsePlacement returns a placement or throws a KelpError for any string', () => {
    const input = fc.oneof(fc.string({ unit: 'binary', maxLength: 5 }), fc.stringMatching(/^[0-9]{0,4}$/));
    fc.assert(
      fc.property(input, (s) => valueOrKelpError(() => parsePlacement(s))),
      { numRuns: 10_000 },
    );
  });

  it('placementFromByte returns a placement or throws a KelpError for any number', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -5, max: 300 }), fc.double()), (b) =>
        valueOrKelpError(() => placementFromByte(b)),
      ),
      { numRuns: 10_000 },
    );
  });
});
