/**
 * A tier share (origin/volume/tier-share.ts) cut short by a stop: the `.sidx`
 * written before the `.vif` commit is renamed into place at the next start
 * when the `.vif` names the remote object (and a `.dat` left beside it is
 * dropped, the volume opened once), and removed when it does not. The crash
 * states are laid out on disk as a kill -9 between the steps would leave them.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  datPath,
  expectAllReadBack,
  fillVolume,
  sealVolume,
  startTierServer,
  tierUpload,
  vifOf,
} from './harness.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'kelp-share-recovery-'));
  dirs.push(d);
  return d;
};

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('a tier share interrupted by a stop', () => {
  it('committed (the .vif names the object): the .sidx goes into place, a leftover .dat goes, the volume opens once', async () => {
    const dir = tempDir();
    let server = await startTierServer(dir);
    await assignVolume(server.base, 3);
    const blobs = await fillVolume(server.base, 3, { small: 60 });
    await sealVolume(server.base, 3);
    await tierUpload(server.base, 3, 'local.default');
    await server.stop();
    expect(vifOf(dir, 3)?.remote?.indexKey).toBeDefined();
    // The share wrote .sidx, committed the .vif, and died before the rename and the .dat removal.
    const idx = join(dir, '3.idx');
    copyFileSync(idx, join(dir, '3.sidx'));
    truncateSync(idx, 0);
    writeFileSync(datPath(dir, 3), 'bytes of the replica that no longer match its index');
    server = await startTierServer(dir);
    try {
      expect(existsSync(join(dir, '3.sidx'))).toBe(false);
      expect(existsSync(datPath(dir, 3))).toBe(false);
      await expectAllReadBack(server.base, blobs);
    } finally {
      await server.stop();
    }
  });

  it('not committed (the .vif is local): the stray .sidx is removed and the local volume reads as before', async () => {
    const dir = tempDir();
    let server = await startTierServer(dir);
    await assignVolume(server.base, 4);
    const blobs = await fillVolume(server.base, 4, { small: 40 });
    await server.stop();
    writeFileSync(join(dir, '4.sidx'), new Uint8Array(64).fill(9));
    server = await startTierServer(dir);
    try {
      expect(existsSync(join(dir, '4.sidx'))).toBe(false);
      expect(vifOf(dir, 4)?.remote).toBeUndefined();
      await expectAllReadBack(server.base, blobs);
    } finally {
      await server.stop();
    }
  });
});
