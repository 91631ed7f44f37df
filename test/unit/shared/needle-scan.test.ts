import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChecksumMismatchError,
  CorruptDataError,
  InvalidParamError,
  TruncatedDataError,
} from '../../../shared/errors.ts';
import { encodeNeedle, type NeedleInput } from '../../../shared/needle.ts';
import { type ScanItem, type ScanTail, scanNeedles } from '../../../shared/needle-scan.ts';
import { needleInput } from './arbitraries.ts';

const SUPERBLOCK = Uint8Array.of(3, 0, 0, 0, 0, 0, 0, 0);
const ascii = (s: string) => new TextEncoder().encode(s);

function volume(needles: NeedleInput[], version = 3): { bytes: Uint8Array; offsets: number[] } {
  const records = needles.map((n) => encodeNeedle(n, version));
  const bytes = new Uint8Array(SUPERBLOCK.length + records.reduce((a, r) => a + r.length, 0));
  bytes.set(SUPERBLOCK);
  const offsets: number[] = [];
  let at = SUPERBLOCK.length;
  for (const r of records) {
    offsets.push(at);
    bytes.set(r, at);
    at += r.length;
  }
  return { bytes, offsets };
}

const needles: NeedleInput[] = [
  { cookie: 1, id: 1n, data: ascii('first'), flags: 0, name: ascii('a') },
  { cookie: 2, id: 2n, data: ascii('second needle'), flags: 1, mime: ascii('text/plain'), appendAtNs: 5n },
  { cookie: 1, id: 1n, data: new Uint8Array(0), flags: 0, appendAtNs: 6n }, // tombstone of 1
  { cookie: 3, id: 3n, data: ascii('third'), flags: 0, lastModified: 1_700_000_000 },
];

function tailOf(items: ScanItem[]): ScanTail | undefined {
  const last = items.at(-1);
  return last?.kind === 'tail' ? last : undefined;
}

describe('scanNeedles', () => {
  it('walks every record in order with its offset and size, tombstones included', () => {
    const { bytes, offsets } = volume(needles);
    const items = [...scanNeedles(bytes, 8)];
    expect(items.map((i) => i.kind)).toEqual(['needle', 'needle', 'needle', 'needle']);
    expect(items.map((i) => i.offset)).toEqual(offsets);
    expect(items.map((i) => (i.kind === 'needle' ? [i.needle.id, i.needle.size] : null))).toEqual([
      [1n, 12], // 4 + 5 + flags + name (1+1)
      [2n, 29], // 4 + 13 + flags + mime (1+10)
      [1n, 0],
      [3n, 15], // 4 + 5 + flags + lastModified 5
    ]);
    expect(items.every((i) => i.kind === 'needle' && i.checksumError === undefined)).toBe(true);
  });

  it('walks version 2 records too', () => {
    const { bytes, offsets } = volume(needles, 2);
    expect([...scanNeedles(bytes, 8, 2)].map((i) => i.offset)).toEqual(offsets);
  });

  it('yields nothing for a volume that is only a superblock', () => {
    expect([...scanNeedles(SUPERBLOCK, 8)]).toEqual([]);
  });

  it('reports a torn last record as a tail at the end of the last whole record', () => {
    const { bytes, offsets } = volume(needles);
    const last = offsets.at(-1)!;
    for (let cut = last + 1; cut < bytes.length; cut++) {
      const items = [...scanNeedles(bytes.subarray(0, cut), 8)];
      expect(items).toHaveLength(4);
      const tail = tailOf(items);
      expect(tail).toMatchObject({ offset: last, length: cut - last });
      expect(tail?.error).toBeInstanceOf(TruncatedDataError);
    }
  });

  it('stops at zeroed bytes after the last record rather than reading them as tombstones of key 0', () => {
    const { bytes } = volume(needles);
    const padded = new Uint8Array(bytes.length + 64);
    padded.set(bytes);
    const tail = tailOf([...scanNeedles(padded, 8)]);
    expect(tail).toMatchObject({ offset: bytes.length, length: 64 });
    expect(tail?.error).toBeInstanceOf(CorruptDataError);
  });

  it('flags a record whose data fails its CRC and carries on past it', () => {
    const { bytes, offsets } = volume(needles);
    bytes[offsets[1]! + 20]! ^= 0xff;
    const items = [...scanNeedles(bytes, 8)];
    expect(items).toHaveLength(4);
    const bad = items[1]!;
    expect(bad.kind === 'needle' && bad.checksumError).toBeInstanceOf(ChecksumMismatchError);
    expect(items[3]).toMatchObject({ kind: 'needle', needle: { id: 3n } });
    expect(
      [...scanNeedles(bytes, 8, 3, { verifyChecksum: false })].every((i) => !('checksumError' in i)),
    ).toBe(true);
  });

  it('stops at a header it cannot trust: nothing after it can be located', () => {
    const { bytes, offsets } = volume(needles);
    bytes[offsets[1]! + 12] = 0x80; // Size over 2^31
    const items = [...scanNeedles(bytes, 8)];
    expect(items).toHaveLength(2);
    expect(tailOf(items)).toMatchObject({ offset: offsets[1], length: bytes.length - offsets[1]! });
  });

  it('always ends at the byte length: records plus tail cover the input exactly', () => {
    fc.assert(
      fc.property(fc.array(needleInput, { maxLength: 5 }), fc.nat(), (ns, cutSeed) => {
        const { bytes } = volume(ns);
        const cut = 8 + (cutSeed % (bytes.length - 7));
        let end = 8;
        for (const item of scanNeedles(bytes.subarray(0, cut), 8)) {
          expect(item.offset).toBe(end);
          end += item.kind === 'needle' ? item.recordSize : item.length;
        }
        expect(end).toBe(cut);
      }),
    );
  });

  it('refuses a start outside the input', () => {
    expect(() => [...scanNeedles(SUPERBLOCK, 9)]).toThrow(InvalidParamError);
    expect(() => [...scanNeedles(SUPERBLOCK, -1)]).toThrow(InvalidParamError);
  });
});
