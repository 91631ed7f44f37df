/**
 * Data of 64 KiB and more is written beside its header and tail instead of
 * being copied into one record (volume.ts encodeWrite): the bytes on disk must
 * be exactly the record encodeNeedle makes, for every size around the switch.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Volume } from '../../../../origin/volume/volume.ts';
import { encodeNeedle } from '../../../../shared/needle.ts';
import { decodeNeedle } from '../../../../shared/needle-decode.ts';
import { parsePlacement } from '../../../../shared/placement.ts';
import { parseTtl } from '../../../../shared/ttl.ts';

const SIZES = [1000, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 3, 1024 * 1024];

describe('Volume.write of large data', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('stores the same record bytes as encodeNeedle, reads back with its CRC checked, and survives a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kelp-large-write-'));
    dirs.push(dir);
    const config = {
      dir,
      collection: '',
      volumeId: 1,
      fsync: 'batch' as const,
      sizeLimitBytes: 1 << 30,
      now: Date.now,
    };
    const volume = Volume.create(config, { placement: parsePlacement('000'), ttl: parseTtl('') });
    const meta = { flags: 0, lastModified: 1_700_000_000, name: new TextEncoder().encode('b.bin') };
    const datas = SIZES.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (j * 31 + i) & 0xff));
    for (const [i, data] of datas.entries()) {
      const r = await volume.write({ key: BigInt(i + 1), cookie: 9, data, meta });
      expect(r.unchanged).toBe(false);
    }
    // The same bytes again: recognised as unchanged, nothing appended.
    const before = volume.datSize;
    expect((await volume.write({ key: 5n, cookie: 9, data: datas[4]!, meta })).unchanged).toBe(true);
    expect(volume.datSize).toBe(before);
    const dat = readFileSync(volume.path('dat'));
    for (const [i, data] of datas.entries()) {
      const at = volume.map.get(BigInt(i + 1))!.offset * 8;
      const stored = decodeNeedle(dat.subarray(at));
      const expected = encodeNeedle({
        ...meta,
        cookie: 9,
        id: BigInt(i + 1),
        data,
        appendAtNs: stored.appendAtNs,
      });
      expect(Buffer.from(dat.subarray(at, at + expected.length)).equals(Buffer.from(expected))).toBe(true);
      // 1 MiB and more is answered as a range of the .dat (streamed, CRC checked as it goes).
      const read = volume.readSync(BigInt(i + 1), 9);
      if (read.kind === 'whole') expect(Buffer.from(read.needle.data).equals(Buffer.from(data))).toBe(true);
      else expect(read.dataSize).toBe(data.length);
    }
    await volume.close();
    const reopened = Volume.open(config);
    const read = reopened.readSync(4n, 9);
    expect(read.kind === 'whole' && Buffer.from(read.needle.data).equals(Buffer.from(datas[3]!))).toBe(true);
    await reopened.close();
  });
});
