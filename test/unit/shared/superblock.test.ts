import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CorruptDataError,
  InternalError,
  KelpError,
  TruncatedDataError,
  UnsupportedVersionError,
} from '../../../shared/errors.ts';
import { parsePlacement } from '../../../shared/placement.ts';
import {
  CURRENT_VOLUME_VERSION,
  decodeSuperBlock,
  encodeSuperBlock,
  type SuperBlock,
  superBlockSize,
} from '../../../shared/superblock.ts';
import { EMPTY_TTL, parseTtl } from '../../../shared/ttl.ts';

const digitArb = fc.integer({ min: 0, max: 2 });
const superBlockArb: fc.Arbitrary<SuperBlock> = fc
  .record({
    version: fc.constantFrom(1 as const, 2 as const, 3 as const),
    placement: fc.record({ diffDataCenter: digitArb, diffRack: digitArb, sameRack: digitArb }),
    ttl: fc.oneof(
      fc.constant(EMPTY_TTL),
      fc.record({
        count: fc.integer({ min: 1, max: 255 }),
        unit: fc.constantFrom('m', 'h', 'd', 'w', 'M', 'y'),
      }),
    ),
    compactionRevision: fc.integer({ min: 0, max: 0xffff }),
    extra: fc.uint8Array({ maxLength: 64 }),
  })
  .map((sb) => (sb.version === 1 ? { ...sb, extra: new Uint8Array(0) } : sb));

function valueOrKelpError(run: () => unknown): true {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
  }
  return true;
}

describe('encodeSuperBlock', () => {
  it('lays out version, placement, TTL, revision and extra length big-endian', () => {
    const bytes = encodeSuperBlock({
      version: 3,
      placement: parsePlacement('010'),
      ttl: parseTtl('3d'),
      compactionRevision: 0x0102,
      extra: new Uint8Array(0),
    });
    expect([...bytes]).toEqual([3, 10, 3, 3, 1, 2, 0, 0]);
  });

  it('appends the extra after its u16 length', () => {
    const bytes = encodeSuperBlock({
      version: 2,
      placement: parsePlacement('000'),
      ttl: EMPTY_TTL,
      compactionRevision: 0,
      extra: Uint8Array.of(0xaa, 0xbb, 0xcc),
    });
    expect([...bytes]).toEqual([2, 0, 0, 0, 0, 0, 0, 3, 0xaa, 0xbb, 0xcc]);
  });

  it('refuses versions it cannot write and values that do not fit', () => {
    const base: SuperBlock = {
      version: CURRENT_VOLUME_VERSION,
      placement: parsePlacement(''),
      ttl: EMPTY_TTL,
      compactionRevision: 0,
      extra: new Uint8Array(0),
    };
    expect(() => encodeSuperBlock({ ...base, version: 4 as 3 })).toThrow(UnsupportedVersionError);
    expect(() => encodeSuperBlock({ ...base, compactionRevision: 0x10000 })).toThrow(InternalError);
    expect(() => encodeSuperBlock({ ...base, version: 1, extra: Uint8Array.of(1) })).toThrow(InternalError);
    expect(() => encodeSuperBlock({ ...base, extra: new Uint8Array(65_535) })).toThrow(InternalError);
  });
});

describe('decodeSuperBlock', () => {
  it('reads a plain v3 header with size 8', () => {
    const sb = decodeSuperBlock(Uint8Array.of(3, 1, 5, 2, 0, 7, 0, 0));
    expect(sb).toEqual({
      version: 3,
      placement: parsePlacement('001'),
      ttl: { count: 5, unit: 'h' },
      compactionRevision: 7,
      extra: new Uint8Array(0),
      size: 8,
    });
  });

  it('keeps the extra opaque and counts it in size, ignoring bytes after it', () => {
    const sb = decodeSuperBlock(Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 2, 0x08, 0x01, 0xff, 0xff));
    expect([...sb.extra]).toEqual([0x08, 0x01]);
    expect(sb.size).toBe(10);
  });

  it('reads version 1 bytes 6-7 as reserved, not as an extra length', () => {
    const sb = decodeSuperBlock(Uint8Array.of(1, 0, 0, 0, 0, 0, 0xff, 0xff));
    expect(sb.size).toBe(8);
    expect(sb.extra.length).toBe(0);
  });

  it('round-trips every superblock', () => {
    fc.assert(
      fc.property(superBlockArb, (sb) => {
        const bytes = encodeSuperBlock(sb);
        expect(decodeSuperBlock(bytes)).toEqual({ ...sb, size: bytes.length });
        expect(superBlockSize(bytes.subarray(0, 8))).toBe(bytes.length);
      }),
    );
  });

  it('rejects short input as truncated', () => {
    expect(() => decodeSuperBlock(Uint8Array.of(3, 0, 0, 0))).toThrow(TruncatedDataError);
    expect(() => decodeSuperBlock(Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 4, 1, 2))).toThrow(TruncatedDataError);
  });

  it('rejects an unknown version', () => {
    expect(() => decodeSuperBlock(new Uint8Array(8))).toThrow(UnsupportedVersionError);
    expect(() => decodeSuperBlock(Uint8Array.of(4, 0, 0, 0, 0, 0, 0, 0))).toThrow(UnsupportedVersionError);
  });

  it('rejects a placement or TTL byte no writer produces as corrupt', () => {
    expect(() => decodeSuperBlock(Uint8Array.of(3, 3, 0, 0, 0, 0, 0, 0))).toThrow(CorruptDataError);
    expect(() => decodeSuperBlock(Uint8Array.of(3, 0, 1, 9, 0, 0, 0, 0))).toThrow(CorruptDataError);
  });

  it('returns a copy of the extra, not a view of the input', () => {
    const bytes = Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 1, 42);
    const sb = decodeSuperBlock(bytes);
    bytes[8] = 0;
    expect(sb.extra[0]).toBe(42);
  });
});

describe('fuzz', () => {
  it('decodeSuperBlock returns a superblock or throws a KelpError for any bytes', () => {
    // Header fields near their valid ranges, so decoding gets past the first checks.
    const nearValid = fc
      .tuple(
        fc.integer({ min: 0, max: 4 }),
        fc.oneof(fc.constantFrom(0, 1, 2, 10, 100, 222), fc.integer({ min: 0, max: 255 })),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ minLength: 2, maxLength: 2 }),
        fc.integer({ min: 0, max: 7 }),
        fc.uint8Array({ maxLength: 8 }),
      )
      .map(([version, placement, count, unit, revision, extraLength, tail]) =>
        Uint8Array.of(version, placement, count, unit, ...revision, 0, extraLength, ...tail),
      );
    const input = fc.oneof(fc.uint8Array({ maxLength: 24 }), nearValid);
    fc.assert(
      fc.property(input, (bytes) => valueOrKelpError(() => decodeSuperBlock(bytes))),
      { numRuns: 10_000 },
    );
  });
});
