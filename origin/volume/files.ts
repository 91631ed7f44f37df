import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseCollection } from '../../shared/collection.ts';
import { TruncatedDataError } from '../../shared/errors.ts';

/** `<collection>_<vid>` or `<vid>` (brief §2): the stem of a volume's .dat/.idx/.vif files. */
export function volumeStem(collection: string, volumeId: number): string {
  // Checked here too, where the name becomes a path: nothing path-like ever reaches the disk.
  return parseCollection(collection) ? `${collection}_${volumeId}` : String(volumeId);
}

export function volumePath(dir: string, collection: string, volumeId: number, ext: string): string {
  return join(dir, `${volumeStem(collection, volumeId)}.${ext}`);
}

/**
 * Parses a `.dat` (or, for a volume tiered to the cloud, `.vif`) file name back
 * into (collection, volume id); null for anything else.
 */
export function parseVolumeFileName(
  name: string,
): { collection: string; volumeId: number; ext: 'dat' | 'vif' } | null {
  const m = /^(?:(.+)_)?(\d{1,10})\.(dat|vif)$/.exec(name);
  if (!m) return null;
  const volumeId = Number(m[2]);
  if (volumeId > 0xffffffff) return null;
  return { collection: m[1] ?? '', volumeId, ext: m[3] as 'dat' | 'vif' };
}

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
