import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  installNativeCrc32c,
  NATIVE_CRC_MIN_BYTES,
  nativeCrc32cUpdate,
  originCrc32cUpdate,
} from '../../../origin/native-crc.ts';
import {
  activeCrc32cUpdate,
  Crc32cHasher,
  crc32c,
  installCrc32cUpdate,
  jsCrc32cUpdate,
} from '../../../shared/crc.ts';

const ascii = (s: string) => new TextEncoder().encode(s);
const seed = fc.integer({ min: 0, max: 0xffffffff });
// Sizes around the native/JS switch and well past it, so both branches of the origin step run.
const bytes = fc.uint8Array({ maxLength: 3 * NATIVE_CRC_MIN_BYTES });

describe('native CRC-32C (@node-rs/crc32) agrees with the JS one (crc-32)', () => {
  afterEach(() => installCrc32cUpdate(jsCrc32cUpdate));

  it('gives the Castagnoli check value e3069283 for "123456789"', () => {
    expect(nativeCrc32cUpdate(ascii('123456789'), 0)).toBe(0xe3069283);
    expect(originCrc32cUpdate(ascii('123456789'), 0)).toBe(0xe3069283);
  });

  it('gives the same CRC for random bytes from any seed', () => {
    fc.assert(
      fc.property(bytes, seed, (data, s) => {
        const want = jsCrc32cUpdate(data, s);
        expect(nativeCrc32cUpdate(data, s)).toBe(want);
        expect(originCrc32cUpdate(data, s)).toBe(want);
      }),
    );
  });

  it('chains seeds the same way: native over chunks equals JS one-shot', () => {
    fc.assert(
      fc.property(bytes, fc.array(fc.nat(3 * NATIVE_CRC_MIN_BYTES)), (data, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (data.length + 1))), data.length].sort(
          (a, b) => a - b,
        );
        let native = 0;
        let from = 0;
        for (const p of points) {
          native = nativeCrc32cUpdate(data.subarray(from, p), native);
          from = p;
        }
        expect(native).toBe(jsCrc32cUpdate(data, 0));
      }),
    );
  });

  it('reads a subarray view at its offset, not the whole underlying buffer', () => {
    const buf = new Uint8Array(4 * NATIVE_CRC_MIN_BYTES).map((_, i) => (i * 31) & 0xff);
    const view = buf.subarray(7, 7 + 2 * NATIVE_CRC_MIN_BYTES);
    expect(nativeCrc32cUpdate(view, 0)).toBe(jsCrc32cUpdate(view, 0));
  });

  it('once installed, shared crc32c and Crc32cHasher give the JS values at every size', () => {
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 6 }), (chunks) => {
        installCrc32cUpdate(jsCrc32cUpdate);
        const jsHasher = new Crc32cHasher();
        for (const c of chunks) jsHasher.update(c);
        const jsOneShot = chunks.map((c) => crc32c(c));

        installNativeCrc32c();
        const hasher = new Crc32cHasher();
        for (const c of chunks) hasher.update(c);
        expect(hasher.digest()).toBe(jsHasher.digest());
        expect(chunks.map((c) => crc32c(c))).toEqual(jsOneShot);
      }),
    );
  });

  it('installing makes the origin step the active one; the JS step is the default', () => {
    // Values cannot tell the two apart (that is the point), so look at which step is in use.
    expect(activeCrc32cUpdate()).toBe(jsCrc32cUpdate);
    installNativeCrc32c();
    expect(activeCrc32cUpdate()).toBe(originCrc32cUpdate);
  });
});
