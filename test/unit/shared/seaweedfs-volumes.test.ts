/**
 * Real volume files written by SeaweedFS (test/fixtures/seaweedfs, see its
 * README): Kelp's decoders must read them exactly as manifest.json describes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32c, legacyCrcValue } from '../../../shared/crc.ts';
import { ChecksumMismatchError, TruncatedDataError } from '../../../shared/errors.ts';
import {
  encodeIdxEntry,
  IDX_ENTRY_SIZE,
  idxKey,
  replayIdx,
  TOMBSTONE_FILE_SIZE,
  toByteOffset,
  toStoredOffset,
  walkIdx,
} from '../../../shared/idx.ts';
import { FLAG_GZIP, needleRecordSize } from '../../../shared/needle.ts';
import { decodeNeedle } from '../../../shared/needle-decode.ts';
import { type ScanItem, scanNeedles } from '../../../shared/needle-scan.ts';

interface ManifestNeedle {
  key: number;
  cookie: string;
  fid_suffix: string;
  offset_units: number;
  size: number;
  data_size: number;
  flags: number;
  gzipped: boolean;
  name: string;
  mime: string;
  last_modified: number;
  crc: 'castagnoli' | 'legacy' | 'MISMATCH';
  sha256_stored: string;
  sha256_plain: string;
  plain_size: number;
}
interface IdxFacts {
  bytes: number;
  entries: number;
  trailing_bytes: number;
  tombstone_entries: number;
  live_keys: number;
}
interface Manifest {
  volumes: Record<
    string,
    {
      dat_bytes: number;
      superblock: {
        version: number;
        replica_placement_byte: number;
        ttl: number[];
        compaction_revision: number;
      };
      idx: IdxFacts | null;
      live_needles: ManifestNeedle[];
    }
  >;
  indexes: Record<string, IdxFacts>;
}

const dir = new URL('../../fixtures/seaweedfs/', import.meta.url);
const load = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const manifest = JSON.parse(new TextDecoder().decode(load('manifest.json'))) as Manifest;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

/** Superblock bytes 6-7 (extra length) are 0 in every fixture, so needles start at 8. */
function needlesStart(dat: Uint8Array): number {
  expect((dat[6]! << 8) | dat[7]!).toBe(0);
  return 8;
}

/** Rebuilds `.idx` bytes from a scan, as SeaweedFS's `weed fix` would. */
function rebuildIdx(items: ScanItem[]): Uint8Array {
  const needles = items.filter((i) => i.kind === 'needle');
  const out = new Uint8Array(needles.length * IDX_ENTRY_SIZE);
  needles.forEach((item, i) => {
    const { id, size } = item.needle;
    const entry = {
      key: id,
      offset: toStoredOffset(item.offset),
      size: size === 0 ? TOMBSTONE_FILE_SIZE : size,
    };
    out.set(encodeIdxEntry(entry), i * IDX_ENTRY_SIZE);
  });
  return out;
}

describe.each(['healthy_volume', 'legacy_crc_volume'])('%s', (volume) => {
  const facts = manifest.volumes[volume]!;
  const dat = load(`${volume}.dat`);
  const idx = replayIdx(load(`${volume}.idx`));

  it('is a version 3 volume of the stated length', () => {
    expect(dat.length).toBe(facts.dat_bytes);
    expect(dat[0]).toBe(facts.superblock.version);
  });

  it('indexes exactly the manifest live needles', () => {
    expect(idx.liveCount).toBe(facts.live_needles.length);
    for (const n of facts.live_needles) {
      expect(idx.live.get(BigInt(n.key))).toEqual({ offset: n.offset_units, size: n.size });
    }
  });

  it('decodes every live needle with the manifest key, cookie, flags, name, mime, time, CRC form and bytes', () => {
    for (const m of facts.live_needles) {
      const at = toByteOffset(m.offset_units);
      const n = decodeNeedle(dat.subarray(at, at + needleRecordSize(m.size, 3)), 3, {
        expectedId: BigInt(m.key),
        expectedSize: m.size,
      });
      expect(n.cookie.toString(16).padStart(8, '0')).toBe(m.cookie);
      const keyHex = n.id.toString(16); // whole bytes in a fid: an even number of digits
      expect(`${keyHex.length % 2 ? '0' : ''}${keyHex}${m.cookie}`).toBe(m.fid_suffix);
      expect(n.flags).toBe(m.flags);
      expect(n.data.length).toBe(m.data_size);
      expect(text(n.name)).toBe(m.name);
      expect(text(n.mime)).toBe(m.mime);
      expect(n.lastModified).toBe(m.last_modified);
      expect(sha256(n.data)).toBe(m.sha256_stored);
      const crc = crc32c(n.data);
      expect(n.checksum).toBe(m.crc === 'legacy' ? legacyCrcValue(crc) : crc);
      expect((n.flags & FLAG_GZIP) !== 0).toBe(m.gzipped);
      const plain = m.gzipped ? new Uint8Array(gunzipSync(n.data)) : n.data;
      expect(plain.length).toBe(m.plain_size);
      expect(sha256(plain)).toBe(m.sha256_plain);
    }
  });

  it('scans end to end into the very .idx SeaweedFS wrote', () => {
    const items = [...scanNeedles(dat, needlesStart(dat))];
    expect(items.every((i) => i.kind === 'needle' && !i.checksumError)).toBe(true);
    expect(rebuildIdx(items)).toEqual(load(`${volume}.idx`));
  });
});

describe('bitrot_volume', () => {
  const facts = manifest.volumes.bitrot_volume!;
  const dat = load('bitrot_volume.dat');

  it('rejects the two damaged needles (keys 3 and 48) and serves the other five', () => {
    const rejected: number[] = [];
    for (const m of facts.live_needles) {
      const at = toByteOffset(m.offset_units);
      const read = () =>
        decodeNeedle(dat.subarray(at), 3, { expectedId: BigInt(m.key), expectedSize: m.size });
      if (m.crc === 'MISMATCH') {
        expect(read).toThrow(ChecksumMismatchError);
        rejected.push(m.key);
      } else {
        expect(sha256(read().data)).toBe(m.sha256_stored);
      }
    }
    expect(rejected).toEqual([3, 48]);
  });

  it('scans past the damage, flags it, and reports the stray byte after the last needle', () => {
    const items = [...scanNeedles(dat, needlesStart(dat))];
    const flagged = items.flatMap((i) => (i.kind === 'needle' && i.checksumError ? [i.needle.id] : []));
    expect(flagged).toEqual([3n, 48n]);
    const tail = items.at(-1);
    expect(tail).toMatchObject({ kind: 'tail', offset: dat.length - 1, length: 1 });
    expect(tail?.kind === 'tail' && tail.error).toBeInstanceOf(TruncatedDataError);
    expect(dat.at(-1)).toBe(0x0a);
    expect(rebuildIdx(items)).toEqual(load('bitrot_volume.idx'));
  });
});

describe('empty_volume', () => {
  it('holds a superblock and no needles', () => {
    const dat = load('empty_volume.dat');
    expect([...scanNeedles(dat, needlesStart(dat))]).toEqual([]);
    expect(replayIdx(load('empty_volume.idx'))).toMatchObject({ entries: 0, liveCount: 0, trailingBytes: 0 });
  });
});

describe('no_index_volume', () => {
  it('rebuilds its index by scanning: one 1.15 MB needle at offset 8', () => {
    const m = manifest.volumes.no_index_volume!.live_needles[0]!;
    const dat = load('no_index_volume.dat');
    const items = [...scanNeedles(dat, needlesStart(dat))];
    expect(items).toHaveLength(1);
    const idx = replayIdx(rebuildIdx(items));
    expect([...idx.live]).toEqual([[BigInt(m.key), { offset: m.offset_units, size: m.size }]]);
    const item = items[0]!;
    if (item.kind !== 'needle') throw new Error(`expected a needle, got ${item.error}`);
    expect(text(item.needle.name)).toBe(m.name);
    expect(sha256(item.needle.data)).toBe(m.sha256_stored);
    expect(item.needle.checksum).toBe(legacyCrcValue(crc32c(item.needle.data)));
  });
});

describe('idx files', () => {
  it.each(Object.entries(manifest.indexes))('%s replays to the manifest counts', (file, facts) => {
    const bytes = load(file);
    expect(bytes.length).toBe(facts.bytes);
    const s = replayIdx(bytes);
    expect({
      entries: s.entries,
      trailing_bytes: s.trailingBytes,
      tombstone_entries: s.tombstoneEntries,
      live_keys: s.liveCount,
    }).toEqual({
      entries: facts.entries,
      trailing_bytes: facts.trailing_bytes,
      tombstone_entries: facts.tombstone_entries,
      live_keys: facts.live_keys,
    });
  });

  it('reads the whole entries of a torn index: the same as the intact one up to the tear', () => {
    const torn = load('simple_index_truncated.idx');
    const whole = load('simple_index.idx');
    const keys = (b: Uint8Array) => {
      const out: bigint[] = [];
      return { walk: walkIdx(b, (hi, lo) => out.push(idxKey(hi, lo))), out };
    };
    const a = keys(torn);
    const b = keys(whole);
    expect(a.walk).toEqual({ entries: 158, trailingBytes: 12 });
    expect(a.out).toEqual(b.out.slice(0, 158));
  });
});
