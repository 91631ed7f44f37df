import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Crc32cHasher, crc32c, crcFormMatches, crcMatches, legacyCrcValue } from '../../../shared/crc.ts';

const ascii = (s: string) => new TextEncoder().encode(s);

/** The legacy form computed independently, in 64-bit BigInt arithmetic as Go's uint32 wraps. */
function legacyReference(c: number): number {
  const x = BigInt(c >>> 0);
  const rotated = ((x >> 15n) | (x << 17n)) & 0xffffffffn;
  return Number((rotated + 0xa282ead8n) & 0xffffffffn);
}

describe('crc32c', () => {
  it('gives the Castagnoli check value for "123456789"', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
  });

  it('gives 0 for no bytes, so a tombstone stores CRC 0', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('matches published vectors (RFC 3720 B.4)', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  it('streams: any split into chunks gives the one-shot CRC', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(2000)), (data, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
        const hasher = new Crc32cHasher();
        let from = 0;
        for (const p of [...points, data.length]) {
          hasher.update(data.subarray(from, p));
          from = p;
        }
        expect(hasher.digest()).toBe(crc32c(data));
      }),
    );
  });

  it('reads a subarray view, not the whole underlying buffer', () => {
    const buf = ascii('xx123456789yy');
    expect(crc32c(buf.subarray(2, 11))).toBe(0xe3069283);
  });
});

describe('legacy CRC form', () => {
  it('is the rotate-and-add of old SeaweedFS, as an unsigned 32-bit number', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (c) => {
        const v = legacyCrcValue(c);
        expect(v).toBe(legacyReference(c));
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(0xffffffff);
      }),
    );
    expect(legacyCrcValue(0)).toBe(0xa282ead8);
  });

  it('crcMatches accepts the current and the legacy form and nothing else', () => {
    const data = ascii('hello');
    const c = crc32c(data);
    expect(c).toBe(0x9a71bb4c);
    expect(crcMatches(c, data)).toBe(true);
    expect(crcMatches(legacyCrcValue(c), data)).toBe(true);
    expect(crcMatches((c ^ 1) >>> 0, data)).toBe(false);
    expect(crcMatches(0, data)).toBe(false);
    expect(crcFormMatches(legacyCrcValue(c), c)).toBe(true);
  });
});
