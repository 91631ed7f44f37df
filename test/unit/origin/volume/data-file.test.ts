/**
 * The data files a volume reads through (origin/volume/data-file.ts): the
 * `.dat` on disk and a tier copy through a real `local` tier backend. What a
 * swap relies on: a held file stays readable after close() until released,
 * and only then is closed (or, retired, removed); and a tier copy's failures
 * come back as the volume must answer them.
 */
import { existsSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalDat } from '../../../../origin/volume/local-dat.ts';
import { TieredDat } from '../../../../origin/volume/tiered-dat.ts';
import type { RemoteDat } from '../../../../origin/volume/volume-info.ts';
import { NotFoundError, UnavailableError, UpstreamError } from '../../../../shared/errors.ts';
import { LocalBackend } from '../../../../tiering/backends/local.ts';
import { removeTempDirs, tempDir } from '../../../support/temp-dirs.ts';
import { waitFor } from '../../../support/wait.ts';

afterAll(removeTempDirs);

const BYTES = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 7) & 0xff));

async function collect(pages: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; pages: number }> {
  const parts: Uint8Array[] = [];
  for await (const p of pages) parts.push(p);
  return { bytes: Buffer.concat(parts), pages: parts.length };
}

function remoteOf(key: string, size: number): RemoteDat {
  return {
    backend: 'local.default',
    key,
    size,
    sha256: '',
    mtime: new Date(0).toISOString(),
    superBlock: '',
    keepLocalDat: false,
  };
}

describe('LocalDat', () => {
  it('reads and streams exact ranges; a held file outlives close() until released, then a retired one goes', async () => {
    const dir = tempDir();
    const path = join(dir, '1.dat');
    writeFileSync(path, BYTES);
    const dat = new LocalDat(openSync(path, 'r+'), path);
    const into = Buffer.alloc(10);
    dat.readAtSync(5, into);
    expect(into.equals(BYTES.subarray(5, 15))).toBe(true);
    expect(Buffer.from(await dat.readAt(1_000_000, 99)).equals(BYTES.subarray(1_000_000, 1_000_099))).toBe(
      true,
    );

    const release = dat.hold();
    dat.retire();
    expect(existsSync(path), 'renamed out of the way at once').toBe(false);
    await dat.close();
    // Still open for the holder: a stream started before the swap ends on the same bytes.
    const s = await collect(dat.stream(100, BYTES.length - 200));
    expect(s.bytes.equals(BYTES.subarray(100, BYTES.length - 100))).toBe(true);
    expect(s.pages).toBe(3);
    expect(() => dat.hold(), 'no new holds once closed').toThrow(UnavailableError);
    expect(readdirSync(dir), 'kept while held').toHaveLength(1);
    release();
    // Closed at the last release: the retired file is then removed (off the event loop).
    await waitFor('the retired .dat to be removed', () => readdirSync(dir).length === 0, 5_000, 10);
  });
});

describe('TieredDat over a local tier', () => {
  it('streams a page per read of exactly the range; a missing object is a 502, an unconfigured backend a 503', async () => {
    const root = tempDir();
    const backend = new LocalBackend({ type: 'local', id: 'default', path: root });
    const src = join(tempDir(), 'src.dat');
    writeFileSync(src, BYTES);
    await backend.upload(src, 'v1.dat');
    const dat = new TieredDat(1, remoteOf('v1.dat', BYTES.length), backend.openFile('v1.dat', BYTES.length));
    expect(dat.readAtSync).toBeDefined();

    const before = { reads: backend.stats.reads, bytes: backend.stats.bytesRead };
    const s = await collect(dat.stream(12_345, 2 * 1024 * 1024 + 1));
    expect(s.bytes.equals(BYTES.subarray(12_345, 12_345 + 2 * 1024 * 1024 + 1))).toBe(true);
    expect(backend.stats.reads - before.reads).toBe(3);
    expect(backend.stats.bytesRead - before.bytes).toBe(2 * 1024 * 1024 + 1);
    await dat.close();

    const gone = new TieredDat(1, remoteOf('nope.dat', 100), backend.openFile('nope.dat', 100));
    await expect(gone.readAt(0, 10)).rejects.toThrow(UpstreamError);
    expect(() => gone.readAtSync!(0, Buffer.alloc(10))).toThrow(UpstreamError);
    await expect(gone.readAt(0, 10)).rejects.not.toThrow(NotFoundError);

    const unconfigured = new TieredDat(1, remoteOf('v1.dat', BYTES.length), undefined);
    expect(unconfigured.readAtSync).toBeUndefined();
    await expect(unconfigured.readAt(0, 10)).rejects.toThrow(UnavailableError);
  });
});
