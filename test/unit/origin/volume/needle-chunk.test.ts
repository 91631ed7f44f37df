import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NeedleChunk } from '../../../../origin/volume/needle-chunk.ts';

/** Index of the first key >= (hi, lo), found the slow way. */
function linearLowerBound(keys: [number, number][], hi: number, lo: number): number {
  const i = keys.findIndex(([h, l]) => h > hi || (h === hi && l >= lo));
  return i < 0 ? keys.length : i;
}

function chunkOf(keys: [number, number][]): NeedleChunk {
  const c = new NeedleChunk(Math.max(2, keys.length));
  keys.forEach(([h, l], i) => {
    c.insertAt(i, h, l, i + 1, i);
  });
  return c;
}

const sortedUnique = (hiMax: number) =>
  fc
    .uniqueArray(fc.tuple(fc.integer({ min: 0, max: hiMax }), fc.integer({ min: 0, max: 0xffffffff })), {
      selector: ([h, l]) => `${h}:${l}`,
      minLength: 1,
      maxLength: 3000,
    })
    .map((ks) => ks.sort(([ah, al], [bh, bl]) => ah - bh || al - bl));

describe('NeedleChunk.lowerBound', () => {
  it('agrees with a linear scan when every key shares its high half (interpolation and gallop)', () => {
    fc.assert(
      fc.property(
        sortedUnique(0),
        fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 50 }),
        (keys, probes) => {
          const c = chunkOf(keys);
          expect(c.commonHi).toBe(0);
          for (const lo of [...probes, ...keys.map(([, l]) => l), 0, 0xffffffff]) {
            expect(c.lowerBound(0, lo)).toBe(linearLowerBound(keys, 0, lo));
          }
          expect(c.lowerBound(1, 0)).toBe(keys.length);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('agrees with a linear scan on skewed keys, where interpolation guesses badly', () => {
    // Dense run then a huge jump: the guess lands far from the answer.
    const keys: [number, number][] = [];
    for (let i = 0; i < 2000; i++) keys.push([7, i]);
    keys.push([7, 0xfffffff0]);
    const c = chunkOf(keys);
    for (const lo of [0, 1, 999, 1999, 2000, 5000, 0xfffffff0, 0xffffffff]) {
      expect(c.lowerBound(7, lo)).toBe(linearLowerBound(keys, 7, lo));
    }
    expect(c.lowerBound(6, 0xffffffff)).toBe(0);
  });

  it('agrees with a linear scan when keys straddle multiples of 2^32', () => {
    fc.assert(
      fc.property(
        sortedUnique(3),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.nat()), { maxLength: 50 }),
        (keys, probes) => {
          const c = chunkOf(keys);
          for (const [h, l] of [...probes, ...keys]) {
            const i = c.lowerBound(h, l);
            expect(i).toBe(linearLowerBound(keys, h, l));
            expect(c.holds(i, h, l)).toBe(keys.some(([kh, kl]) => kh === h && kl === l));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('splits and keeps both halves searchable', () => {
    const keys: [number, number][] = [];
    for (let i = 0; i < 100; i++) keys.push([i < 50 ? 0 : 1, i * 10]);
    const c = chunkOf(keys);
    expect(c.commonHi).toBe(-1);
    const tail = c.splitOff(50);
    expect([c.n, tail.n, c.commonHi, tail.commonHi]).toEqual([50, 50, 0, 1]);
    expect(tail.lowerBound(1, 500)).toBe(0);
    expect(tail.offsetAt(0)).toBe(51);
    expect(c.sizeAt(49)).toBe(49);
  });
});
