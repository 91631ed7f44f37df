import fc from 'fast-check';
import { FLAG_CHUNK_MANIFEST, FLAG_GZIP, type NeedleInput } from '../../../shared/needle.ts';
import type { Ttl, TtlUnit } from '../../../shared/ttl.ts';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });

const ttl: fc.Arbitrary<Ttl> = fc.record({
  count: fc.integer({ min: 1, max: 255 }),
  unit: fc.constantFrom<TtlUnit>('m', 'h', 'd', 'w', 'M', 'y'),
});

/** Needles as the encoder accepts them; data is never empty (an empty body stores no metadata). */
export const needleInput: fc.Arbitrary<NeedleInput> = fc.record(
  {
    cookie: u32,
    id: fc.bigInt({ min: 1n, max: 0xffff_ffff_ffff_ffffn }),
    data: fc.uint8Array({ minLength: 1, maxLength: 600 }),
    flags: fc.constantFrom(0, FLAG_GZIP, FLAG_CHUNK_MANIFEST, FLAG_GZIP | FLAG_CHUNK_MANIFEST),
    name: fc.uint8Array({ maxLength: 255 }),
    mime: fc.uint8Array({ maxLength: 255 }),
    lastModified: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
    ttl,
    pairs: fc.uint8Array({ maxLength: 300 }),
    appendAtNs: u64,
  },
  { requiredKeys: ['cookie', 'id', 'data', 'flags'] },
);

export const version = fc.constantFrom(2, 3);
