/**
 * Issue 10, finding 10: a tier transfer killed midway left its temp file
 * behind forever (in the tier folder for an upload, in the data directory for
 * a download). Now a starting volume server sweeps them: at once in its own
 * data directory, and in a tier folder (which may be shared with other live
 * servers) once a temp file has gone unwritten for TIER_TEMP_FILE_MAX_IDLE_MS.
 *
 * The temp files are made by really killing (SIGKILL) a volume server the
 * moment its transfer creates one. Only the neighbours that prove what the
 * sweep must leave alone (a young temp file, files that are not ours) and the
 * other leftovers of a crash (spool, compaction files) are made by hand.
 */
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalBackendConfig } from '../../../tiering/backends/backend.ts';
import { TIER_TEMP_FILE_MAX_IDLE_MS } from '../../../tiering/backends/local.ts';
import { tempDirOnAnotherFilesystem } from '../../support/temp-dirs.ts';
import {
  assignVolume,
  type Blob,
  type ChildTierServer,
  datPath,
  expectAllReadBack,
  fillVolume,
  MiB,
  sealVolume,
  startChildTierServer,
  startDownload,
  startTierServer,
  startUpload,
  type TierServer,
  tierDownload,
  tierStatus,
  tierUpload,
  vifOf,
} from './harness.ts';

/** Names as a transfer's temp file has them (tiering/backends/transfer.ts): `.<name>.<pid>.<random>.tmp`. */
const TEMP = /^\..+\.\d+\.[0-9a-z]+\.tmp$/;

/**
 * SIGKILLs the child the moment a temp file appears in `dir` (inotify, so
 * well before a copy of tens of MiB can finish) and resolves with its path.
 */
/** Downloads killed until one leaves its temp file (see the test). */
const KILL_ATTEMPTS = 3;

function killOnTempFile(child: ChildTierServer, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dir, (_event, name) => {
      if (!name || !TEMP.test(name)) return;
      child.child.kill('SIGKILL');
      clearTimeout(timer);
      watcher.close();
      resolve(join(dir, name));
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`no temp file appeared in ${dir}`));
    }, 30_000);
  });
}

/** An mtime older than the idle limit, by a minute: as left by a crash long ago. */
function makeIdle(path: string): void {
  const seconds = (Date.now() - TIER_TEMP_FILE_MAX_IDLE_MS - 60_000) / 1000;
  utimesSync(path, seconds, seconds);
}

function put(path: string, content = 'x'): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return path;
}

describe('issue 10 finding 10: temp files of interrupted transfers are swept at startup', () => {
  const dirs: string[] = [];
  let child: ChildTierServer | undefined;
  let srv: TierServer | undefined;
  afterAll(async () => {
    await child?.kill();
    await srv?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const dir = mkdtempSync(join(tmpdir(), 'kelp-tier-sweep-'));
  dirs.push(dir);
  const tierDir = join(dir, 'tier');
  let blobs2: Blob[];
  let blobs3: Blob[];
  let uploadTemp: string;

  it('an upload to the local tier killed midway leaves a temp file in the tier folder; a start leaves it while it is young', async () => {
    mkdirSync(tierDir, { recursive: true });
    child = await startChildTierServer(dir);
    // Volume 3: tiered whole, so the tier folder holds a real object the sweep must keep.
    await assignVolume(child.base, 3);
    blobs3 = await fillVolume(child.base, 3, { small: 50, large: [1.25 * MiB] });
    await sealVolume(child.base, 3);
    await tierUpload(child.base, 3, 'local.default');
    // Volume 2: about 30 MiB, so its copy takes far longer than the kill.
    await assignVolume(child.base, 2);
    blobs2 = await fillVolume(child.base, 2, { small: 100, large: Array(24).fill(1.25 * MiB) });
    await sealVolume(child.base, 2);
    const datSize = statSync(datPath(dir, 2)).size;

    const killed = killOnTempFile(child, tierDir);
    await startUpload(child.base, 2, 'local.default');
    uploadTemp = await killed;
    await child.kill();
    child = undefined;
    expect(existsSync(uploadTemp)).toBe(true);
    expect(statSync(uploadTemp).size).toBeLessThan(datSize);
    expect(vifOf(dir, 2)).toEqual({ readOnly: true });

    // Young: it might be another live server's upload into a shared folder, so it stays.
    srv = await startTierServer(dir);
    expect(existsSync(uploadTemp)).toBe(true);
    await expectAllReadBack(srv.base, blobs2);
    await srv.stop();
    srv = undefined;
  }, 120_000);

  it('once idle for the limit it is removed at the next start; young temp files, other files and objects stay, and the upload then completes', async () => {
    makeIdle(uploadTemp);
    // Keys with a `/` put objects (and temp files) in subdirectories: swept too.
    const nestedIdle = put(join(tierDir, 'some', `.deep.dat.4242.q1w2e3.tmp`));
    makeIdle(nestedIdle);
    const young = put(join(tierDir, `.2-${randomUUID()}.dat.4242.a1b2c3.tmp`));
    // Not our names, however old.
    const foreign = [join(tierDir, 'notes.tmp'), join(tierDir, '.keep'), join(tierDir, '.x.dat.tmp')];
    for (const f of foreign) makeIdle(put(f));
    const objects = readdirSync(tierDir).filter((n) => n.endsWith('.dat') && !n.startsWith('.'));
    expect(objects).toHaveLength(1);

    srv = await startTierServer(dir);
    expect(existsSync(uploadTemp), "the killed upload's temp file").toBe(false);
    expect(existsSync(nestedIdle)).toBe(false);
    expect(existsSync(young)).toBe(true);
    for (const f of foreign) expect(existsSync(f), f).toBe(true);
    for (const o of objects) expect(existsSync(join(tierDir, o)), o).toBe(true);
    await expectAllReadBack(srv.base, blobs3);

    const done = await tierUpload(srv.base, 2, 'local.default');
    expect(done.remote?.size).toBeGreaterThan(30 * MiB);
    await expectAllReadBack(srv.base, blobs2);
    await srv.stop();
    srv = undefined;
  }, 120_000);

  it('a download killed midway leaves a temp .dat in the data directory; the next start removes it at once, with the other leftovers of a crash', async () => {
    // A download that copies, so it has a temp .dat: from a local tier on another filesystem than
    // the data (one from local.default, on the data's own filesystem, moves the object instead).
    const otherFs = tempDirOnAnotherFilesystem(dir, 'kelp-tier-sweep-');
    expect(otherFs, "a filesystem other than the data directory's to tier to").toBeDefined();
    dirs.push(otherFs!);
    const backends: LocalBackendConfig[] = [{ type: 'local', id: 'otherfs', path: otherFs! }];
    child = await startChildTierServer(dir, backends);
    await assignVolume(child.base, 4);
    // About 100 MiB: a copy from tmpfs is quick, and the kill must land well before it ends.
    const blobs4 = await fillVolume(child.base, 4, { small: 100, large: Array(80).fill(1.25 * MiB) });
    await sealVolume(child.base, 4);
    await tierUpload(child.base, 4, 'local.otherfs');
    // The kill is sent when the temp file appears; on loaded cores it can land after the copy's rename,
    // which leaves nothing to sweep: then the server starts again and the download is killed once more.
    let downloadTemp: string | undefined;
    for (let attempt = 1; attempt <= KILL_ATTEMPTS && downloadTemp === undefined; attempt++) {
      if (!child) {
        child = await startChildTierServer(dir, backends);
        if (!vifOf(dir, 4)?.remote) await tierUpload(child.base, 4, 'local.otherfs');
      }
      const killed = killOnTempFile(child, dir);
      await startDownload(child.base, 4);
      const temp = await killed;
      await child.kill();
      child = undefined;
      if (existsSync(temp)) downloadTemp = temp;
    }
    expect(downloadTemp, `a temp .dat left by a kill, in ${KILL_ATTEMPTS} tries`).toBeDefined();
    expect(vifOf(dir, 4)?.remote?.backend).toBe('local.otherfs');

    // The other leftovers: an upload's spool file, and the compaction files of a volume that is gone.
    const spool = put(join(dir, '.spool', 'a1b2c3d4e5f6a1b2c3d4e5f6'));
    const orphans = ['9.cpd', '9.cpx', 'pics_9.cpc'].map((n) => put(join(dir, n)));
    // Not ours: kept.
    const foreign = [join(dir, 'notes.txt'), join(dir, '.2.dat.tmp')].map((f) => put(f));

    srv = await startTierServer(dir, backends);
    expect(existsSync(downloadTemp!), "the killed download's temp .dat").toBe(false);
    expect(existsSync(spool)).toBe(false);
    for (const o of orphans) expect(existsSync(o), o).toBe(false);
    for (const f of foreign) expect(existsSync(f), f).toBe(true);
    // Still tiered and served from the tier; a retry of the download completes.
    expect((await tierStatus(srv.base, 4)).remote?.backend).toBe('local.otherfs');
    await expectAllReadBack(srv.base, blobs4);
    await tierDownload(srv.base, 4);
    expect(vifOf(dir, 4)?.remote).toBeUndefined();
    await expectAllReadBack(srv.base, blobs4);
    // Volume 2, in local.default: its download moves the object into place.
    await tierDownload(srv.base, 2);
    expect(vifOf(dir, 2)?.remote).toBeUndefined();
    await expectAllReadBack(srv.base, blobs2);
    await expectAllReadBack(srv.base, blobs3);
  }, 120_000);
});
