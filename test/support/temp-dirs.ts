/**
 * Temp directories of a test file: each made under the OS temp dir and
 * remembered, so one removeTempDirs() in afterAll (or a harness's stopAll)
 * deletes them all, whichever harness made them.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tempDirs: string[] = [];

/** A fresh directory `<tmp>/<prefix><random>`; removeTempDirs() deletes it. */
export function tempDir(prefix = 'kelp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Where a filesystem other than the OS temp dir's may be mounted on Linux (tmpfs). */
const OTHER_FILESYSTEMS = ['/dev/shm', '/run'];

/**
 * A fresh directory on another filesystem than `than` (tmpfs under /dev/shm
 * or /run), or undefined if there is none. Not remembered: the caller removes
 * it (a tmpfs holds its files in RAM).
 */
export function tempDirOnAnotherFilesystem(than: string, prefix = 'kelp-test-'): string | undefined {
  const dev = statSync(than).dev;
  const root = OTHER_FILESYSTEMS.find((d) => existsSync(d) && statSync(d).dev !== dev);
  if (root === undefined) return undefined;
  return mkdtempSync(join(root, prefix));
}
