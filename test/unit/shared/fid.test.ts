import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidFidError, KelpError, TruncatedDataError } from '../../../shared/errors.ts';
import {
  decodeFidBinary,
  encodeFidBinary,
  type Fid,
  formatFid,
  formatFileKey,
  MAX_KEY,
  parseFid,
  parseFidPath,
  parseFileKey,
  parseVolumeId,
} from '../../../shared/fid.ts';

const fidArb: fc.Arbitrary<Fid> = fc.record({
  volumeId: fc.integer({ min: 0, max: 0xffff_ffff }),
  // Small keys too: they exercise the dropped leading zero bytes.
  key: fc.oneof(fc.bigInt({ min: 1n, max: 0xffffn }), fc.bigInt({ min: 1n, max: MAX_KEY })),
  cookie: fc.integer({ min: 0, max: 0xffff_ffff }),
});
const golden = { volumeId: 3, key: 1n, cookie: 0x637037d6 };

function valueOrKelpError(run: () => unknown): true {
  try {
    run();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
  }
  return true;
}

describe('parseFid', () => {
  it('reads the example of the brief: 3,01637037d6', () => {
    expect(parseFid('3,01637037d6')).toEqual({ ...golden, delta: 0n });
  });

  it('adds the _N delta to the key and keeps the cookie', () => {
    expect(parseFid('3,01637037d6_2')).toEqual({ volumeId: 3, key: 3n, cookie: 0x637037d6, delta: 2n });
    expect(parseFid('3,01637037d6_0')).toEqual({ ...golden, delta: 0n });
  });

  it('accepts an odd-length key part and upper-case hex, as SeaweedFS does', () => {
    expect(parseFid('3,1637037d6')).toEqual({ ...golden, delta: 0n });
    expect(parseFid('3,01637037D6')).toEqual({ ...golden, delta: 0n });
  });

  it('reads the largest key, cookie and volume id', () => {
    expect(parseFid('4294967295,ffffffffffffffffffffffff')).toEqual({
      volumeId: 0xffff_ffff,
      key: MAX_KEY,
      cookie: 0xffff_ffff,
      delta: 0n,
    });
  });

  it.each([
    ['empty', ''],
    ['no comma', '301637037d6'],
    ['no volume id', ',01637037d6'],
    ['a non-decimal volume id', 'x3,01637037d6'],
    ['a negative volume id', '-3,01637037d6'],
    ['a volume id above u32', '4294967296,01637037d6'],
    ['a bare cookie (8 hex chars)', '3,637037d6'],
    ['more than 24 hex chars', '3,01ffffffffffffffff637037d6'],
    ['non-hex chars', '3,01637037g6'],
    ['key 0', '3,00637037d6'],
    ['an empty delta', '3,01637037d6_'],
    ['a non-decimal delta', '3,01637037d6_x'],
    ['a negative delta', '3,01637037d6_-1'],
    ['a delta that overflows the key', '3,ffffffffffffffff637037d6_1'],
    ['two commas', '3,01,637037d6'],
    ['an extension (that is a path, not a fid)', '3,01637037d6.jpg'],
    ['surrounding space', ' 3,01637037d6'],
  ])('rejects %s with InvalidFidError', (_, input) => {
    expect(() => parseFid(input)).toThrow(InvalidFidError);
  });
});

describe('formatFid', () => {
  it('writes the example of the brief', () => {
    expect(formatFid(golden)).toBe('3,01637037d6');
  });

  it('drops leading zero bytes of the key only, never of the cookie', () => {
    expect(formatFileKey(0x1234n, 0)).toBe('123400000000');
    expect(formatFileKey(0x123n, 1)).toBe('012300000001');
    expect(formatFileKey(MAX_KEY, 0xffff_ffff)).toBe('ffffffffffffffffffffffff');
  });

  it('round-trips through parseFid', () => {
    fc.assert(
      fc.property(fidArb, (fid) => {
        expect(parseFid(formatFid(fid))).toEqual({ ...fid, delta: 0n });
      }),
    );
  });

  it('round-trips with a delta suffix', () => {
    fc.assert(
      fc.property(fidArb, fc.bigInt({ min: 0n, max: 1000n }), (fid, delta) => {
        fc.pre(fid.key + delta <= MAX_KEY);
        expect(parseFid(`${formatFid(fid)}_${delta}`)).toEqual({ ...fid, key: fid.key + delta, delta });
      }),
    );
  });

  it('refuses key 0 and values out of range', () => {
    expect(() => formatFid({ ...golden, key: 0n })).toThrow(InvalidFidError);
    expect(() => formatFid({ ...golden, key: MAX_KEY + 1n })).toThrow(InvalidFidError);
    expect(() => formatFid({ ...golden, cookie: 2 ** 32 })).toThrow(InvalidFidError);
    expect(() => formatFid({ ...golden, volumeId: -1 })).toThrow(InvalidFidError);
    expect(() => formatFid({ ...golden, volumeId: 1.5 })).toThrow(InvalidFidError);
  });
});

describe('parseFileKey / parseVolumeId', () => {
  it('reads the part after the comma', () => {
    expect(parseFileKey('01637037d6_1')).toEqual({ key: 2n, cookie: 0x637037d6, delta: 1n });
  });

  it('reads a decimal u32 volume id', () => {
    expect(parseVolumeId('0')).toBe(0);
    expect(parseVolumeId('4294967295')).toBe(0xffff_ffff);
    expect(() => parseVolumeId('4294967296')).toThrow(InvalidFidError);
    expect(() => parseVolumeId('1e3')).toThrow(InvalidFidError);
    expect(() => parseVolumeId('')).toThrow(InvalidFidError);
  });
});

describe('parseFidPath', () => {
  const fid = { ...golden, delta: 0n };

  it('reads /vid,key with and without an extension', () => {
    expect(parseFidPath('/3,01637037d6')).toEqual({ fid });
    expect(parseFidPath('/3,01637037d6.jpg')).toEqual({ fid, ext: 'jpg' });
  });

  it('reads /vid/key with and without an extension', () => {
    expect(parseFidPath('/3/01637037d6')).toEqual({ fid });
    expect(parseFidPath('/3/01637037d6.JPG')).toEqual({ fid, ext: 'JPG' });
  });

  it('reads /vid/key/name, taking the extension from the decoded name', () => {
    expect(parseFidPath('/3/01637037d6/photo.jpg')).toEqual({ fid, name: 'photo.jpg', ext: 'jpg' });
    expect(parseFidPath('/3/01637037d6/my%20cat%C3%A9.tar.gz')).toEqual({
      fid,
      name: 'my caté.tar.gz',
      ext: 'gz',
    });
    expect(parseFidPath('/3/01637037d6/README')).toEqual({ fid, name: 'README' });
    expect(parseFidPath('/3/01637037d6/.bashrc')).toEqual({ fid, name: '.bashrc' });
  });

  it('applies the delta suffix in every form', () => {
    const shifted = { ...golden, key: 3n, delta: 2n };
    expect(parseFidPath('/3,01637037d6_2.png').fid).toEqual(shifted);
    expect(parseFidPath('/3/01637037d6_2').fid).toEqual(shifted);
    expect(parseFidPath('/3/01637037d6_2/a.png').fid).toEqual(shifted);
  });

  it('round-trips every fid through all three forms', () => {
    fc.assert(
      fc.property(fidArb, fc.stringMatching(/^[a-z0-9]{1,5}$/), (f, ext) => {
        const [vid, key] = formatFid(f).split(',');
        const expected = { ...f, delta: 0n };
        expect(parseFidPath(`/${vid},${key}.${ext}`)).toEqual({ fid: expected, ext });
        expect(parseFidPath(`/${vid}/${key}`)).toEqual({ fid: expected });
        expect(parseFidPath(`/${vid}/${key}/f.${ext}`)).toEqual({ fid: expected, name: `f.${ext}`, ext });
      }),
    );
  });

  it('round-trips any file name through percent-encoding', () => {
    const nameArb = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
      .filter((s) => s !== '.' && s !== '..' && !/[/\\\p{Cc}]/u.test(s));
    fc.assert(
      fc.property(nameArb, (name) => {
        fc.pre(new TextEncoder().encode(name).length <= 255);
        expect(parseFidPath(`/3/01637037d6/${encodeURIComponent(name)}`).name).toBe(name);
      }),
    );
  });

  it.each([
    ['an empty path', ''],
    ['a relative path', '3,01637037d6'],
    ['the root', '/'],
    ['a volume id only', '/3'],
    ['a trailing slash', '/3/01637037d6/'],
    ['an empty segment', '/3//01637037d6'],
    ['more segments', '/3/01637037d6/a/b.jpg'],
    ['a dot-dot name', '/3/01637037d6/..'],
    ['an encoded dot-dot name', '/3/01637037d6/%2e%2E'],
    ['a dot name', '/3/01637037d6/.'],
    ['an encoded slash in the name', '/3/01637037d6/a%2Fb.jpg'],
    ['an encoded backslash in the name', '/3/01637037d6/..%5Cx'],
    ['a control character in the name', '/3/01637037d6/a%0D%0Ab.jpg'],
    ['bad percent-encoding', '/3/01637037d6/%E0%A4%A'],
    ['a name over 255 bytes', `/3/01637037d6/${'a'.repeat(256)}`],
    ['an empty extension', '/3,01637037d6.'],
    ['two extensions', '/3,01637037d6.tar.gz'],
    ['an odd extension', '/3/01637037d6.j%20g'],
    ['an extension on the key of the name form', '/3/01637037d6.jpg/a.jpg'],
    ['a fid in the volume segment', '/3,01637037d6/a.jpg'],
    ['a bad key', '/3/zz637037d6'],
    ['a bad volume id', '/v3/01637037d6'],
  ])('rejects %s with InvalidFidError', (_, input) => {
    expect(() => parseFidPath(input)).toThrow(InvalidFidError);
  });
});

describe('binary fid', () => {
  it('stores key, cookie then volume id, big-endian, in 16 bytes', () => {
    expect([...encodeFidBinary(golden)]).toEqual([
      0, 0, 0, 0, 0, 0, 0, 1, 0x63, 0x70, 0x37, 0xd6, 0, 0, 0, 3,
    ]);
  });

  it('round-trips every fid, also at an offset', () => {
    fc.assert(
      fc.property(fidArb, fc.nat({ max: 8 }), (fid, offset) => {
        const bytes = new Uint8Array(offset + 16);
        bytes.set(encodeFidBinary(fid), offset);
        expect(decodeFidBinary(bytes, offset)).toEqual(fid);
      }),
    );
  });

  it('rejects short input and key 0', () => {
    expect(() => decodeFidBinary(new Uint8Array(15))).toThrow(TruncatedDataError);
    expect(() => decodeFidBinary(new Uint8Array(16))).toThrow(InvalidFidError);
  });
});

describe('fuzz', () => {
  // Random strings from an alphabet near the grammar reach deeper than arbitrary text alone.
  const fidChars = fc.stringMatching(/^[0-9a-fA-F,_.\-/%x]{0,30}$/);

  it('parseFid returns a fid or throws a KelpError for any string', () => {
    const nearValid = fc
      .tuple(
        fc.stringMatching(/^[0-9]{0,11}$/),
        fc.constantFrom(',', ',', ''),
        fc.stringMatching(/^[0-9a-fA-F]{0,26}$/),
        fc.stringMatching(/^(_[0-9]{0,21})?$/),
      )
      .map((parts) => parts.join(''));
    const input = fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fidChars, nearValid);
    fc.assert(
      fc.property(input, (s) => valueOrKelpError(() => parseFid(s))),
      { numRuns: 10_000 },
    );
  });

  it('parseFidPath returns a path or throws a KelpError for any string', () => {
    const mutated = fc
      .tuple(fc.constantFrom('/3,01637037d6', '/3/01637037d6', '/3/01637037d6/'), fidChars)
      .map(([prefix, tail]) => prefix + tail);
    const input = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fidChars.map((s) => `/${s}`),
      mutated,
    );
    fc.assert(
      fc.property(input, (s) => valueOrKelpError(() => parseFidPath(s))),
      { numRuns: 10_000 },
    );
  });

  it('decodeFidBinary returns a fid or throws a KelpError for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: -1, max: 6 }), (bytes, offset) =>
        valueOrKelpError(() => decodeFidBinary(bytes, offset)),
      ),
      { numRuns: 10_000 },
    );
  });
});
