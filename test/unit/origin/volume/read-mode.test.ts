import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDat } from '../../../../origin/volume/local-dat.ts';
import { ReadMode, SLOW_READ_MS } from '../../../../origin/volume/read-mode.ts';
import { Volume } from '../../../../origin/volume/volume.ts';
import { ChecksumMismatchError, NotFoundError } from '../../../../shared/errors.ts';
import { parsePlacement } from '../../../../shared/placement.ts';
import { parseTtl } from '../../../../shared/ttl.ts';

const FAST = SLOW_READ_MS / 20;
const SLOW = SLOW_READ_MS * 5;

describe('ReadMode', () => {
  it('stays on the loop while reads come from the page cache, with the odd slow one', () => {
    const mode = new ReadMode();
    for (let i = 0; i < 10_000; i++) {
      expect(mode.sync()).toBe(true);
      mode.record(i % 100 === 0 ? SLOW : FAST);
    }
    expect(mode.pooled).toBe(false);
  });

  it('goes to the thread pool once reads are slow, probing one read in 64', () => {
    const mode = new ReadMode();
    let reads = 0;
    while (!mode.pooled) {
      mode.record(SLOW);
      reads++;
    }
    expect(reads).toBeLessThan(16);
    let probes = 0;
    for (let i = 0; i < 640; i++) {
      if (!mode.sync()) continue;
      probes++;
      mode.record(SLOW);
    }
    expect(probes).toBe(10);
    expect(mode.pooled).toBe(true);
  });

  it('comes back to the loop once the probes are fast again', () => {
    const mode = new ReadMode();
    while (!mode.pooled) mode.record(SLOW);
    let reads = 0;
    while (mode.pooled && reads < 100_000) {
      reads++;
      if (mode.sync()) mode.record(FAST);
    }
    expect(mode.pooled).toBe(false);
    expect(reads).toBeLessThan(4_000);
  });
});

describe('Volume.read, adaptive', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function volumeWith(count: number): Promise<Volume> {
    const dir = mkdtempSync(join(tmpdir(), 'kelp-read-mode-'));
    dirs.push(dir);
    const volume = Volume.create(
      {
        dir,
        collection: '',
        volumeId: 1,
        fsync: 'never',
        sizeLimitBytes: 1 << 30,
        now: Date.now,
      },
      { placement: parsePlacement('000'), ttl: parseTtl('') },
    );
    for (let i = 1; i <= count; i++) {
      await volume.write({
        key: BigInt(i),
        cookie: 7,
        data: new Uint8Array(1000).fill(i),
        meta: { flags: 0, lastModified: 1_700_000_000 },
      });
    }
    return volume;
  }

  function pooled(volume: Volume): void {
    while (!volume.readMode.pooled) volume.readMode.record(SLOW);
  }

  it('answers from the thread pool exactly as read() does', async () => {
    const volume = await volumeWith(3);
    pooled(volume);
    const pending = volume.read(2n, 7);
    expect(pending).toBeInstanceOf(Promise);
    const found = await pending;
    expect(found).toEqual(volume.readSync(2n, 7));
    expect(found.kind === 'whole' && found.needle.data[0]).toBe(2);
    await volume.close();
  });

  it('gives the same 404s and checksum errors', async () => {
    const volume = await volumeWith(2);
    pooled(volume);
    expect(() => volume.read(9n, 7)).toThrow(NotFoundError);
    await expect(Promise.resolve().then(() => volume.read(1n, 8))).rejects.toThrow(NotFoundError);
    // Flip a data byte of needle 1 behind the volume's back.
    const entry = volume.map.get(1n)!;
    const fd = openSync(volume.path('dat'), 'r+');
    writeSync(fd, new Uint8Array([0xff]), 0, 1, entry.offset * 8 + 40);
    closeSync(fd);
    await expect(Promise.resolve().then(() => volume.read(1n, 7))).rejects.toThrow(ChecksumMismatchError);
    await volume.close();
  });

  it('starts over on the current files when they are swapped under a read', async () => {
    const volume = await volumeWith(2);
    pooled(volume);
    const pending = volume.read(1n, 7);
    // What vacuum's replaceDat does, minus the compaction: another data file under the index.
    volume.replaceDat({ dat: LocalDat.open(volume.path('dat')) });
    const found = await pending;
    expect(found.kind === 'whole' && found.needle.data[0]).toBe(1);
    await volume.close();
  });
});
