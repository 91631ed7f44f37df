/**
 * Synchronous positioned file I/O and directory fsync: the few primitives the
 * volume, its recovery and vacuum, the master's state file and the tier
 * backends' transfers (tiering/backends/transfer.ts) share.
 */
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { TruncatedDataError } from '../../shared/errors.ts';

/** Reads exactly `length` bytes at `position`, or throws TruncatedDataError. */
export function preadExact(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0)
      throw new TruncatedDataError(`file ends at ${position + done}, wanted ${length} bytes at ${position}`);
    done += n;
  }
  return buf;
}

/** Reads up to `length` bytes at `position` (fewer at the end of the file). */
export function preadUpTo(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export function pwriteAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

/**
 * fsync a directory so that a create or rename in it survives a crash (the
 * file's own fsync does not cover its directory entry).
 */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * `fsyncDir` on the thread pool, for the tier transfers (tiering/backends/):
 * they run while the volume server answers reads, and a directory fsync on a
 * busy disk can take milliseconds the event loop should not wait through.
 */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
