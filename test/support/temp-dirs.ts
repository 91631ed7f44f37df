/**
 * Temp directories of a test file: each made under the OS temp dir and
 * remembered, so one removeTempDirs() in afterAll (or a harness's stopAll)
 * deletes them all, whichever harness made them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
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
