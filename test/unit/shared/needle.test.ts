import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, legacyCrcValue } from '../../../shared/crc.ts';
import {
  ChecksumMismatchError,
  CorruptDataError,
  InvalidParamError,
  InvalidTtlError,
  PayloadTooLargeError,
  TruncatedDataError,
  UnsupportedVersionError,
} from '../../../shared/errors.ts';
import {
  encodeDataSize,
  encodeNeedle,
  encodeNeedleHeader,
  encodeNeedleTail,
  FLAG_GZIP,
  FLAG_HAS_MIME,
  FLAG_HAS_NAME,
  MAX_NEEDLE_SIZE,
  type Needle,
  type NeedleInput,
  needleBodySize,
  needleRecordSize,
  paddingLength,
} from '../../../shared/needle.ts';
import {
  decodeNeedle,
  decodeNeedleMeta,
  needleTailLength,
  parseDataSize,
  parseNeedleHeader,
} from '../../../shared/needle-decode.ts';
import { needleInput, version } from './arbitraries.ts';

const ascii = (s: string) => new TextEncoder().encode(s);
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, '').match(/../g) ?? [], (b) => Number.parseInt(b, 16));

// The brief's example: "hello" + name "a.txt" + mime "text/plain" + LastModified -> Size 32, record 64 bytes.
const example: NeedleInput = {
  cookie: 0x01020304,
  id: 0x0a0b0c0d0e0f1011n,
  data: ascii('hello'),
  flags: 0,
  name: ascii('a.txt'),
  mime: ascii('text/plain'),
  lastModified: 0x0102030405,
  appendAtNs: 0x1122334455667788n,
};
const EXAMPLE_BODY = `
  00000005 68656c6c6f  0e  05 612e747874  0a 746578742f706c61696e  0102030405`;
const EXAMPLE_V3 = hex(`
  01020304 0a0b0c0d0e0f1011 00000020 ${EXAMPLE_BODY}
  9a71bb4c  1122334455667788  00000000`);
const EXAMPLE_V2 = hex(`
  01020304 0a0b0c0d0e0f1011 00000020 ${EXAMPLE_BODY}
  9a71bb4c  00000000`);

/** A needle as decode returns it, for comparing with what was encoded: absent fields stay absent. */
function expected(n: NeedleInput, v: number): Needle {
  const { name, mime, lastModified, ttl, pairs } = n;
  const fields = Object.fromEntries(
    Object.entries({ name, mime, lastModified, ttl, pairs }).filter(([, x]) => x !== undefined),
  );
  const flagFor = [name, mime, lastModified, ttl, pairs].reduce<number>(
    (f, x, i) => (x === undefined ? f : f | (0x02 << i)),
    0,
  );
  return {
    ...fields,
    cookie: n.cookie,
    id: n.id,
    size: needleBodySize(n, n.data.length),
    data: n.data,
    flags: n.flags | flagFor,
    checksum: crc32c(n.data),
    appendAtNs: v === 3 ? (n.appendAtNs ?? 0n) : 0n,
  };
}

describe('needle golden bytes', () => {
  it('encodes the brief example as a 64-byte v3 record with Size 32 and 4 bytes of padding', () => {
    const bytes = encodeNeedle(example, 3);
    expect(bytes).toEqual(EXAMPLE_V3);
    expect(needleBodySize(example, 5)).toBe(32);
    expect(paddingLength(32, 3)).toBe(4);
    expect(needleRecordSize(32, 3)).toBe(64);
  });

  it('encodes the same needle as a 56-byte v2 record without AppendAtNs', () => {
    expect(encodeNeedle(example, 2)).toEqual(EXAMPLE_V2);
    expect(needleRecordSize(32, 2)).toBe(56);
  });

  it('decodes the golden records back to the needle', () => {
    const n = decodeNeedle(EXAMPLE_V3, 3);
    expect(n).toEqual(expected(example, 3));
    expect(n).toMatchObject({ size: 32, flags: 0x0e });
    expect(new TextDecoder().decode(n.name)).toBe('a.txt');
    expect(decodeNeedle(EXAMPLE_V2, 2)).toEqual(expected(example, 2));
  });

  it('encodes a tombstone as Size 0 and CRC 0: 32 bytes in v3, 24 in v2', () => {
    const tomb = { cookie: 0xdeadbeef, id: 7n, data: new Uint8Array(0), flags: 0, appendAtNs: 9n };
    expect(encodeNeedle(tomb, 3)).toEqual(
      hex('deadbeef 0000000000000007 00000000 00000000 0000000000000009 00000000'),
    );
    expect(encodeNeedle(tomb, 2)).toEqual(hex('deadbeef 0000000000000007 00000000 00000000 00000000'));
    const n = decodeNeedle(encodeNeedle(tomb, 3), 3);
    expect(n).toMatchObject({ size: 0, checksum: 0, flags: 0, appendAtNs: 9n });
    expect(n.data.length).toBe(0);
  });

  it('drops all metadata of an empty file, as SeaweedFS does: on disk it is a tombstone', () => {
    const empty = { ...example, data: new Uint8Array(0) };
    expect(needleBodySize(empty, 0)).toBe(0);
    expect(encodeNeedle(empty, 3).length).toBe(32);
  });

  it('encodes TTL and pairs after LastModified', () => {
    const n = {
      cookie: 1,
      id: 2n,
      data: ascii('x'),
      flags: FLAG_GZIP,
      ttl: { count: 3, unit: 'd' as const },
    };
    const withPairs = { ...n, pairs: ascii('{"a":"b"}') };
    // Size 8 = DataSize 4 + "x" + flags + TTL 2; 16 + 8 + 4 = 28, so 4 bytes of padding.
    expect(encodeNeedle(n, 2)).toEqual(
      hex('00000001 0000000000000002 00000008 00000001 78 11 0303 a93c5f93 00000000'),
    );
    const bytes = encodeNeedle(withPairs, 2);
    expect(bytes.subarray(20, 35)).toEqual(hex('78 31 0303 0009 7b2261223a2262227d'));
    expect(decodeNeedle(bytes, 2)).toMatchObject({
      flags: 0x31,
      ttl: { count: 3, unit: 'd' },
      pairs: withPairs.pairs,
    });
  });
});

describe('padding', () => {
  it('is 1-8 bytes, never 0, and aligns every record to 8 bytes', () => {
    for (const v of [2, 3]) {
      for (let size = 0; size < 64; size++) {
        const pad = paddingLength(size, v);
        expect(pad).toBeGreaterThanOrEqual(1);
        expect(pad).toBeLessThanOrEqual(8);
        expect(needleRecordSize(size, v) % 8).toBe(0);
      }
    }
    expect(paddingLength(4, 3)).toBe(8); // 16 + 4 + 12 = 32: a whole block of padding, not none
    expect(paddingLength(4, 2)).toBe(8); // 16 + 4 + 4 = 24
    expect(paddingLength(8, 2)).toBe(4);
  });
});

describe('needle round trips', () => {
  it('decode(encode(n)) gives n back, in both versions', () => {
    fc.assert(
      fc.property(needleInput, version, (n, v) => {
        const bytes = encodeNeedle(n, v);
        const size = needleBodySize(n, n.data.length);
        expect(bytes.length).toBe(needleRecordSize(size, v));
        expect(bytes.length % 8).toBe(0);
        const back = decodeNeedle(bytes, v, { expectedId: n.id, expectedSize: size });
        expect(back).toEqual(expected(n, v));
        expect(encodeNeedle(back, v)).toEqual(bytes);
      }),
    );
  });

  it('header + DataSize + data + tail is the same record, so large needles can stream', () => {
    fc.assert(
      fc.property(needleInput, version, (n, v) => {
        const size = needleBodySize(n, n.data.length);
        const checksum = crc32c(n.data);
        const parts = [
          encodeNeedleHeader(n.cookie, n.id, size),
          encodeDataSize(n.data.length),
          n.data,
          encodeNeedleTail(n, n.data.length, checksum, n.appendAtNs ?? 0n, v),
        ];
        expect(concat(parts)).toEqual(encodeNeedle(n, v));
      }),
    );
  });

  it('reads back piecewise: header, DataSize, then the tail before the data', () => {
    fc.assert(
      fc.property(needleInput, version, (n, v) => {
        const bytes = encodeNeedle(n, v);
        const header = parseNeedleHeader(bytes.subarray(0, 16));
        expect(header).toEqual({ cookie: n.cookie, id: n.id, size: needleBodySize(n, n.data.length) });
        const dataSize = parseDataSize(bytes.subarray(16, 20), header.size);
        const tailStart = 20 + dataSize;
        expect(needleTailLength(header.size, dataSize, v)).toBe(bytes.length - tailStart);
        const tail = decodeNeedleMeta(bytes.subarray(tailStart), header.size, dataSize, v);
        const { data: _data, cookie: _c, id: _i, size: _s, ...rest } = decodeNeedle(bytes, v);
        expect(tail).toEqual(rest);
      }),
    );
  });

  it('keeps a given checksum, so a legacy-CRC record can be copied verbatim', () => {
    const legacy = legacyCrcValue(crc32c(example.data));
    const bytes = encodeNeedle({ ...example, checksum: legacy }, 3);
    expect(decodeNeedle(bytes, 3).checksum).toBe(legacy);
  });
});

describe('needle encoder limits', () => {
  it('drops names and mime types of 256+ bytes instead of truncating them', () => {
    const n = { ...example, name: new Uint8Array(256), mime: new Uint8Array(300) };
    const back = decodeNeedle(encodeNeedle(n), 3);
    expect(back.name).toBeUndefined();
    expect(back.mime).toBeUndefined();
    expect(back.flags & (FLAG_HAS_NAME | FLAG_HAS_MIME)).toBe(0);
    expect(decodeNeedle(encodeNeedle({ ...example, name: new Uint8Array(255) })).name?.length).toBe(255);
  });

  it('refuses out-of-range fields with a KelpError', () => {
    expect(() => encodeNeedle({ ...example, pairs: new Uint8Array(65536) })).toThrow(PayloadTooLargeError);
    expect(() => encodeNeedle({ ...example, lastModified: Date.now() })).toThrow(InvalidParamError);
    expect(() => encodeNeedle({ ...example, cookie: -1 })).toThrow(InvalidParamError);
    expect(() => encodeNeedle({ ...example, id: 1n << 64n })).toThrow(InvalidParamError);
    expect(() => encodeNeedle({ ...example, flags: 256 })).toThrow(InvalidParamError);
    expect(() => encodeNeedle({ ...example, ttl: { count: 300, unit: 'm' } })).toThrow(InvalidTtlError);
    expect(() => encodeNeedle(example, 1)).toThrow(UnsupportedVersionError);
    expect(() => needleBodySize(example, MAX_NEEDLE_SIZE)).toThrow(PayloadTooLargeError);
  });
});

describe('needle decoder rejects damage', () => {
  const record = encodeNeedle(example, 3);
  const flip = (bytes: Uint8Array, at: number, mask = 0x01) => {
    const copy = bytes.slice();
    copy[at]! ^= mask;
    return copy;
  };

  it('throws ChecksumMismatchError for any flipped bit in the data or the CRC', () => {
    fc.assert(
      fc.property(needleInput, version, fc.nat(), fc.integer({ min: 0, max: 7 }), (n, v, pick, bit) => {
        const bytes = encodeNeedle(n, v);
        const crcAt = 16 + needleBodySize(n, n.data.length);
        const targets = [...Array.from({ length: n.data.length }, (_, i) => 20 + i), crcAt, crcAt + 3];
        const at = targets[pick % targets.length]!;
        expect(() => decodeNeedle(flip(bytes, at, 1 << bit), v)).toThrow(ChecksumMismatchError);
      }),
    );
  });

  it('skips the CRC check when asked to, for fast scans', () => {
    expect(decodeNeedle(flip(record, 20), 3, { verifyChecksum: false }).data[0]).toBe(0x69);
  });

  it('throws TruncatedDataError for every prefix of a record', () => {
    for (let len = 0; len < record.length; len++) {
      expect(() => decodeNeedle(record.subarray(0, len), 3)).toThrow(TruncatedDataError);
    }
  });

  it('throws CorruptDataError when DataSize does not fit Size', () => {
    expect(() => decodeNeedle(flip(record, 19, 0x40), 3)).toThrow(CorruptDataError);
    const size28 = record.slice();
    size28[19] = 28; // DataSize 28 + 4 = Size 32: no room for the flags byte
    expect(() => decodeNeedle(size28, 3)).toThrow(/no flags byte|does not fit/);
  });

  it('throws CorruptDataError when a flagged field runs past the body or bytes are left over', () => {
    const longName = flip(record, 26, 0x20); // name length 5 -> 37, past the 48-byte body end
    expect(() => decodeNeedle(longName, 3)).toThrow(/name runs past/);
    const noMtime = flip(record, 25, 0x08); // flags 0x0e -> 0x06: 5 bytes unexplained
    expect(() => decodeNeedle(noMtime, 3)).toThrow(/no flag accounts for/);
    const bogusTtl = flip(record, 25, 0x18); // flags 0x0e -> 0x16: TTL read from mtime bytes, 3 left over
    expect(() => decodeNeedle(bogusTtl, 3)).toThrow(CorruptDataError);
  });

  it('throws CorruptDataError for a Size no SeaweedFS reader accepts', () => {
    const huge = record.slice();
    huge.set([0x80, 0, 0, 0], 12);
    expect(() => decodeNeedle(huge, 3)).toThrow(CorruptDataError);
  });

  it('checks the id and Size the index expects', () => {
    expect(() => decodeNeedle(record, 3, { expectedId: 1n })).toThrow(CorruptDataError);
    expect(() => decodeNeedle(record, 3, { expectedSize: 31 })).toThrow(CorruptDataError);
    expect(() => decodeNeedle(record.subarray(0, 20), 3, { expectedSize: 31 })).toThrow(/expected 31/);
    expect(decodeNeedle(record, 3, { expectedId: example.id, expectedSize: 32 }).size).toBe(32);
  });

  it('refuses versions other than 2 and 3', () => {
    for (const v of [0, 1, 4, 255]) expect(() => decodeNeedle(record, v)).toThrow(UnsupportedVersionError);
  });

  it('ignores whatever the padding holds (SeaweedFS leaves garbage there)', () => {
    const garbage = record.slice();
    garbage.fill(0xa5, 60);
    expect(decodeNeedle(garbage, 3).size).toBe(32);
  });
});
