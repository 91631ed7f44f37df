/**
 * The hash thread of tier transfers (tiering/backends/file-hash.ts): digests of a
 * complete file, of a file still being written (it must never read past what
 * the writer said is final), part digests handed out as they are done, and
 * failures: a file shorter than promised, a cancelled hash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../shared/crc.ts';
import { InternalError } from '../../shared/errors.ts';
import { FileHasher, hashThreadsStarted } from '../../tiering/backends/file-hash.ts';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('FileHasher', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kelp-file-hash-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hashes a complete file, reporting progress on the way', async () => {
    const data = randomBytes(9 * MiB + 17);
    const path = join(dir, 'whole.dat');
    await writeFile(path, data);
    const progress: number[] = [];
    const r = await new FileHasher(path, {
      algorithm: 'sha256',
      total: data.length,
      onProgress: (n) => progress.push(n),
    }).result();
    expect(r.digest).toBe(sha256(data));
    expect(r.parts).toEqual([]);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((n, i) => n > (progress[i - 1] ?? 0) && n <= data.length)).toBe(true);
  });

  it('CRC-32C (local tier objects, decision 0018): 8 hex digits, the value the JS step gives, also across chunks', async () => {
    const check = Buffer.from('123456789');
    const small = join(dir, 'check.dat');
    await writeFile(small, check);
    const r = await new FileHasher(small, { algorithm: 'crc32c', total: check.length }).result();
    expect(r.digest).toBe('e3069283'); // the standard check value of CRC-32C
    // Over several of the thread's reads, with an odd tail: each chained onto the last.
    const data = randomBytes(3 * MiB + 333);
    const path = join(dir, 'crc.dat');
    await writeFile(path, data);
    const whole = await new FileHasher(path, { algorithm: 'crc32c', total: data.length }).result();
    expect(whole.digest).toBe(crc32c(data).toString(16).padStart(8, '0'));
  });

  it('follows a writer: hashes only what advance() has made final, and the whole once it is', async () => {
    const data = randomBytes(6 * MiB + 5);
    const path = join(dir, 'growing.dat');
    const fd = openSync(path, 'w');
    const hasher = new FileHasher(path, { algorithm: 'sha256', total: data.length, available: 0 });
    // Written in pieces, each announced after it is on disk: a read past the announced end would meet
    // the end of the file and fail the hash, so success means the thread waited each time.
    for (let at = 0; at < data.length; ) {
      const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 2 * MiB));
      writeSync(fd, data, at, n, at);
      at += n;
      hasher.advance(at);
      await new Promise((r) => setTimeout(r, 5));
    }
    closeSync(fd);
    expect((await hasher.result()).digest).toBe(sha256(data));
  });

  it('hands a finished thread the next file instead of starting one (a start costs tens of ms)', async () => {
    const data = randomBytes(100_000);
    const path = join(dir, 'reuse.dat');
    await writeFile(path, data);
    await new FileHasher(path, { algorithm: 'sha256', total: data.length }).result();
    const before = hashThreadsStarted();
    for (const algorithm of ['md5', 'sha256'] as const) {
      const r = await new FileHasher(path, { algorithm, total: data.length }).result();
      expect(r.digest).toBe(createHash(algorithm).update(data).digest('hex'));
    }
    const crc = await new FileHasher(path, { algorithm: 'crc32c', total: data.length }).result();
    expect(crc.digest).toBe(crc32c(data).toString(16).padStart(8, '0'));
    expect(hashThreadsStarted()).toBe(before);
  });

  it('fails, never returns a digest, when the file is shorter than promised', async () => {
    const path = join(dir, 'short.dat');
    await writeFile(path, randomBytes(1000));
    await expect(new FileHasher(path, { algorithm: 'md5', total: 1001 }).result()).rejects.toBeInstanceOf(
      InternalError,
    );
  });

  it('a cancelled hash rejects instead of waiting for bytes that never come', async () => {
    const path = join(dir, 'cancelled.dat');
    await writeFile(path, randomBytes(MiB));
    // Waiting for bytes that never come: only cancel() ends it.
    const hasher = new FileHasher(path, { algorithm: 'sha256', total: MiB, available: 0 });
    hasher.cancel();
    await expect(hasher.result()).rejects.toBeInstanceOf(InternalError);
  });
  it("hands out each part's digest as it is done, before the whole (an S3 part is signed with it)", async () => {
    const partSize = 2 * MiB;
    const data = randomBytes(3 * partSize + 7);
    const path = join(dir, 'parts.dat');
    const fd = openSync(path, 'w');
    writeSync(fd, data, 0, data.length, 0);
    closeSync(fd);
    const parts = [0, 1, 2, 3].map((i) => data.subarray(i * partSize, (i + 1) * partSize));
    // Only the first part is final: its digest comes, the whole cannot have.
    const hasher = new FileHasher(path, {
      algorithm: 'sha256',
      total: data.length,
      available: partSize,
      partSize,
      streamParts: true,
    });
    let whole = false;
    void hasher.result().then(() => {
      whole = true;
    });
    expect((await hasher.part(0)).toString('hex')).toBe(sha256(parts[0]!));
    expect(whole).toBe(false);
    hasher.advance(data.length);
    const digests = await Promise.all([3, 1, 2].map((i) => hasher.part(i)));
    expect(digests.map((d) => d.toString('hex'))).toEqual([3, 1, 2].map((i) => sha256(parts[i]!)));
    const r = await hasher.result();
    expect(r.digest).toBe(sha256(data));
    // Asked for after the end: from the result; a part there is not: refused, not left waiting.
    expect((await hasher.part(2)).toString('hex')).toBe(sha256(parts[2]!));
    await expect(hasher.part(4)).rejects.toBeInstanceOf(InternalError);
  });

  it('a cancelled hash fails the parts still awaited', async () => {
    const path = join(dir, 'parts-cancelled.dat');
    await writeFile(path, randomBytes(2 * MiB));
    const hasher = new FileHasher(path, {
      algorithm: 'sha256',
      total: 2 * MiB,
      available: 0,
      partSize: MiB,
      streamParts: true,
    });
    const waiting = hasher.part(1);
    hasher.cancel();
    await expect(waiting).rejects.toBeInstanceOf(InternalError);
  });
});
