import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { publishDeletes, writeSidecars } from '../../../origin/volume/tier-sidecars.ts';
import { writeVolumeInfo } from '../../../origin/volume/volume-info.ts';
import { parseFid } from '../../../shared/fid.ts';
import { toByteOffset } from '../../../shared/idx.ts';
import { NEEDLE_DATA_OFFSET } from '../../../shared/needle.ts';
import { decodeDeletionSet } from '../../../shared/tier-index.ts';
import type { LocalBackendConfig } from '../../../tiering/backends/backend.ts';
import { createBackend } from '../../../tiering/backends/create-backend.ts';
import { isTempFileName } from '../../../tiering/backends/transfer.ts';
import { sample, scrape } from '../../helpers/metrics.ts';
import { tempDirOnAnotherFilesystem } from '../../support/temp-dirs.ts';
import {
  assignVolume,
  crc32cFile,
  datPath,
  expectAllReadBack,
  fillVolume,
  http,
  json,
  KiB,
  newFid,
  putBlob,
  sealVolume,
  sha256File,
  startDownload,
  startTierServer,
  type TierServer,
  tierDownload,
  tierStatus,
  tierUpload,
  vifOf,
  waitForJob,
} from './harness.ts';
import { describeTieredVolume } from './suite.ts';

// local.default: the folder beside the data (<first data dir>/tier) that exists with no configuration.
describeTieredVolume('local.default', () => ({
  backend: 'local.default',
  checksum: 'crc32c',
  configs: () => [],
  inspector: (dataDir) => createBackend({ type: 'local', id: 'default', path: join(dataDir, 'tier') }),
}));

describe('local tier: keepLocalDat and a backend missing from the config', () => {
  const dirs: string[] = [];
  const servers: TierServer[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'kelp-tier-local-'));
    dirs.push(d);
    return d;
  };
  const start = async (dir: string, backends: LocalBackendConfig[] = []) => {
    const s = await startTierServer(dir, backends);
    servers.push(s);
    return s;
  };
  const stop = async (s: TierServer) => {
    servers.splice(servers.indexOf(s), 1);
    await s.stop();
  };
  afterAll(async () => {
    for (const s of servers) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('keepLocalDat=true records the remote copy but reads stay local; a later upload without it finishes the move', async () => {
    const dir = tempDir();
    let srv = await start(dir);
    await assignVolume(srv.base, 2);
    const blobs = await fillVolume(srv.base, 2, { small: 200 });
    await sealVolume(srv.base, 2);

    await tierUpload(srv.base, 2, 'local.default', true);
    const kept = vifOf(dir, 2)!.remote!;
    expect(kept).toMatchObject({ backend: 'local.default', keepLocalDat: true });
    expect(existsSync(datPath(dir, 2))).toBe(true);
    let stats = srv.stats('local.default');
    const before = stats.reads;
    await expectAllReadBack(srv.base, blobs);
    expect(stats.reads - before, 'reads stay on the local .dat').toBe(0);

    // The kept .dat must stay the uploaded object: no writes, and a delete is an index entry only.
    expect((await http(srv.base, '/admin/writable?volume=2', { method: 'POST' })).status).toBe(409);
    expect((await http(srv.base, `/${newFid(2)}`, { method: 'PUT', body: Buffer.from('x') })).status).toBe(
      409,
    );
    const [gone, ...rest] = blobs;
    expect((await http(srv.base, `/${gone!.fid}`, { method: 'DELETE' })).status).toBe(202);
    expect(crc32cFile(datPath(dir, 2))).toBe(kept.crc32c);

    const requests = stats.requests;
    await tierUpload(srv.base, 2, 'local.default', false);
    expect(stats.requests - requests, 'no second upload').toBe(0);
    expect(existsSync(datPath(dir, 2))).toBe(false);
    expect(vifOf(dir, 2)!.remote).toEqual({ ...kept, keepLocalDat: false });
    await expectAllReadBack(srv.base, rest);
    expect(stats.reads - before).toBe(rest.length);
    expect((await http(srv.base, `/${gone!.fid}`)).status).toBe(404);

    // Down again and reopened: the delete made while a local copy was kept still holds.
    await tierDownload(srv.base, 2);
    await stop(srv);
    srv = await start(dir);
    stats = srv.stats('local.default');
    expect((await http(srv.base, `/${gone!.fid}`)).status).toBe(404);
    await expectAllReadBack(srv.base, rest);
    expect(stats.reads).toBe(0);
  });

  it('a volume tiered to a backend the server no longer has: the server starts, reads are 503, and work again once it is configured', async () => {
    const dir = tempDir();
    const cold: LocalBackendConfig = { type: 'local', id: 'cold', path: join(tempDir(), 'cold') };
    let srv = await start(dir, [cold]);
    // In a collection, so the tiered volume is found again by `photos_3.vif` and its key is `photos_3-<uuid>.dat`.
    await assignVolume(srv.base, 3, 'photos');
    const blobs = await fillVolume(srv.base, 3, { small: 20, large: [300 * KiB] });
    await tierUpload(srv.base, 3, 'local.cold');
    expect(vifOf(dir, 3, 'photos')?.remote?.key).toMatch(/^photos_3-[0-9a-f-]{36}\.dat$/);
    expect(existsSync(datPath(dir, 3, 'photos'))).toBe(false);
    await stop(srv);

    srv = await start(dir);
    const r = await http(srv.base, `/${blobs[0]!.fid}`);
    expect(r.status).toBe(503);
    expect(r.body.toString()).toContain('local.cold');
    await stop(srv);

    srv = await start(dir, [cold]);
    await expectAllReadBack(srv.base, blobs);

    // Deleting the collection deletes the tiered volume's object too, not only its local files.
    const key = vifOf(dir, 3, 'photos')!.remote!.key;
    const inspector = await createBackend(cold);
    expect(await inspector.stat(key)).toBeDefined();
    const del = await http(srv.base, '/admin/delete_collection?collection=photos', { method: 'POST' });
    expect(del.status).toBe(200);
    expect(vifOf(dir, 3, 'photos')).toBeUndefined();
    expect(await inspector.stat(key)).toBeUndefined();
  });

  it('refuses an unknown backend (400), a bad keepLocalDat (400), a download of a volume that is not tiered (404); lists backends and jobs', async () => {
    const dir = tempDir();
    const srv = await start(dir);
    await assignVolume(srv.base, 4);
    const unknown = await http(srv.base, '/admin/tier/upload?volume=4&backend=s3.nowhere', {
      method: 'POST',
    });
    expect(unknown.status).toBe(400);
    const bad = await http(srv.base, '/admin/tier/upload?volume=4&keepLocalDat=yes', { method: 'POST' });
    expect(bad.status).toBe(400);
    expect(vifOf(dir, 4)?.readOnly ?? false).toBe(false);
    const down = await http(srv.base, '/admin/tier/download?volume=4', { method: 'POST' });
    expect(down.status).toBe(404);
    await tierUpload(srv.base, 4, 'local'); // `local` is `local.default`
    const all = await json<{ backends: string[]; jobs: { volumeId: number; state: string }[] }>(
      http(srv.base, '/admin/tier/status'),
      200,
    );
    expect(all.backends).toEqual(['local.default']);
    expect(all.jobs).toMatchObject([
      { volumeId: 4, action: 'upload', backend: 'local.default', state: 'done' },
    ]);
  });

  it("an object lost behind the server's back: reads and deletes answer 502, never 404, and a download fails leaving the volume tiered", async () => {
    const dir = tempDir();
    let srv = await start(dir);
    await assignVolume(srv.base, 6);
    const blobs = await fillVolume(srv.base, 6, { small: 10 });
    const { remote } = await tierUpload(srv.base, 6, 'local.default');
    await stop(srv); // the local backend keeps the file it has open readable, as any open file
    await (await createBackend({ type: 'local', id: 'x', path: join(dir, 'tier') })).delete(remote!.key);
    srv = await start(dir);
    const r = await http(srv.base, `/${blobs[0]!.fid}`);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toContain(remote!.key);
    expect((await http(srv.base, `/${blobs[1]!.fid}`, { method: 'DELETE' })).status).toBe(502);
    await startDownload(srv.base, 6);
    expect((await waitForJob(srv.base, 6)).job).toMatchObject({ state: 'failed' });
    expect(vifOf(dir, 6)?.remote).toEqual(remote);
    expect(existsSync(datPath(dir, 6))).toBe(false);
  });

  it('a byte changed in the tiered object is a CRC error on either read path (event loop, thread pool), never other bytes', async () => {
    const dir = tempDir();
    const srv = await start(dir);
    await assignVolume(srv.base, 7);
    const blobs = (await fillVolume(srv.base, 7, { small: 60 })).filter((b) => !b.text);
    const { remote } = await tierUpload(srv.base, 7, 'local.default');
    const volume = srv.server.store.get(7);
    const victim = blobs[20]!;
    const entry = volume.map.get(parseFid(victim.fid).key)!;
    // In place, as a failing disk would: the server holds the object open, so a replaced file would go unseen.
    const at = toByteOffset(entry.offset) + NEEDLE_DATA_OFFSET + 50;
    const flip = () => {
      const fd = openSync(join(dir, 'tier', remote!.key), 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0]! ^= 0x5a;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    };
    flip();
    const others = blobs.filter((b) => b !== victim);
    for (const pooled of [false, true]) {
      // false: the record is pread on the event loop (readAtSync); true: through readAt on the thread pool.
      volume.readMode.pooled = pooled;
      volume.readMode.slowFraction = pooled ? 1 : 0;
      const r = await http(srv.base, `/${victim.fid}`);
      expect(r.status, `pooled=${pooled}`).toBe(500);
      expect(JSON.parse(r.body.toString())).toMatchObject({ code: 'checksum_mismatch' });
      await expectAllReadBack(srv.base, others);
    }
    flip();
    await expectAllReadBack(srv.base, blobs);
  });

  it('a volume tiered here is read on the event loop with metrics on, and a failed read there is counted', async () => {
    const dir = tempDir();
    const srv = await start(dir);
    await assignVolume(srv.base, 8);
    const blobs = (await fillVolume(srv.base, 8, { small: 4 })).filter((b) => !b.text);
    const { remote } = await tierUpload(srv.base, 8, 'local.default');
    const volume = srv.server.store.get(8);
    // The metrics wrapper around the backend once dropped readAtSync: every read went to the thread pool.
    const { key, cookie } = parseFid(blobs[0]!.fid);
    const found = volume.read(key, cookie);
    expect(found).not.toBeInstanceOf(Promise);
    const synced = volume.readSync(key, cookie);
    expect(synced.kind === 'whole' && Buffer.from(synced.needle.data)).toEqual(blobs[0]!.bytes);
    const readErrors = async (base: string) =>
      sample(await scrape(base), 'kelp_backend_errors_total', { backend: 'local.default', op: 'read' }) ?? 0;
    expect(await readErrors(srv.base)).toBe(0);
    await stop(srv);
    // The object gone before a restarted server's first read: the pread on the loop fails, counted once.
    rmSync(join(dir, 'tier', remote!.key));
    const again = await start(dir);
    expect((await http(again.base, `/${blobs[1]!.fid}`)).status).toBe(502);
    expect(await readErrors(again.base)).toBe(1);
  });

  it('a download checks the .vif checksum: CRC-32C one byte off fails leaving the volume tiered and nothing local; a .vif from before 0018 (SHA-256 only) is checked by its SHA-256', async () => {
    const dir = tempDir();
    let srv = await start(dir);
    await assignVolume(srv.base, 8);
    const blobs = (await fillVolume(srv.base, 8, { small: 60 })).filter((b) => !b.text);
    const { remote } = await tierUpload(srv.base, 8, 'local.default');
    const object = join(dir, 'tier', remote!.key);
    expect(remote).toMatchObject({ crc32c: crc32cFile(object) });
    expect(remote!.sha256).toBeUndefined();
    const entry = srv.server.store.get(8).map.get(parseFid(blobs[30]!.fid).key)!;
    // In place, as a failing disk would, in a needle's data: the one byte the download alone must catch.
    const flip = () => {
      const at = toByteOffset(entry.offset) + NEEDLE_DATA_OFFSET + 7;
      const fd = openSync(object, 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0]! ^= 0x01;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    };
    const expectFailedDownload = async (what: string) => {
      const vif = vifOf(dir, 8);
      await startDownload(srv.base, 8);
      expect((await waitForJob(srv.base, 8)).job, what).toMatchObject({ state: 'failed' });
      expect(vifOf(dir, 8), `${what}: still tiered`).toEqual(vif);
      expect(existsSync(datPath(dir, 8)), `${what}: no .dat`).toBe(false);
      expect(readdirSync(dir).filter(isTempFileName), `${what}: no temp file`).toEqual([]);
      expect(existsSync(object), `${what}: the object kept`).toBe(true);
    };

    flip();
    await expectFailedDownload('CRC-32C, one byte off');
    flip();

    // The .vif a build before decision 0018 wrote: the same record with the object's SHA-256 instead.
    await stop(srv);
    const sha256 = sha256File(object);
    const { crc32c: _, ...old } = remote!;
    writeVolumeInfo(join(dir, '8.vif'), { ...vifOf(dir, 8)!, remote: { ...old, sha256 } });
    srv = await start(dir);
    flip();
    await expectFailedDownload('SHA-256, one byte off');
    flip();
    await tierDownload(srv.base, 8);
    expect(sha256File(datPath(dir, 8))).toBe(sha256);
    expect(vifOf(dir, 8)?.remote).toBeUndefined();
    expect(existsSync(object), 'the object deleted once the volume is back').toBe(false);
    await expectAllReadBack(srv.base, blobs);
  });

  it('a download on the same filesystem moves the checked object into place (same inode, no copy); from another filesystem it copies', async () => {
    const dir = tempDir();
    // A folder on another filesystem than the data: tmpfs under /dev/shm (or /run) on Linux.
    const remoteDir = tempDirOnAnotherFilesystem(dir, 'kelp-tier-other-fs-');
    expect(remoteDir, "a filesystem other than the data directory's to tier to").toBeDefined();
    dirs.push(remoteDir!);
    const other: LocalBackendConfig = { type: 'local', id: 'otherfs', path: remoteDir! };
    const srv = await start(dir, [other]);
    for (const [vid, backend] of [
      [5, 'local.default'],
      [6, 'local.otherfs'],
    ] as const) {
      await assignVolume(srv.base, vid);
      const blobs = await fillVolume(srv.base, vid, { small: 30, large: [200 * KiB] });
      const { remote } = await tierUpload(srv.base, vid, backend);
      const object = join(backend === 'local.default' ? join(dir, 'tier') : remoteDir!, remote!.key);
      const inode = statSync(object).ino;
      await tierDownload(srv.base, vid);
      expect(vifOf(dir, vid)?.remote, backend).toBeUndefined();
      expect(existsSync(object), `${backend}: the object is gone`).toBe(false);
      const moved = statSync(datPath(dir, vid)).ino === inode;
      expect(moved, `${backend}: moved rather than copied`).toBe(backend === 'local.default');
      await expectAllReadBack(srv.base, blobs);
    }
  });

  it('a crash between the move and the .vif commit: the moved .dat opens as the local volume, and the retried download commits', async () => {
    const dir = tempDir();
    let srv = await start(dir);
    await assignVolume(srv.base, 7);
    const blobs = await fillVolume(srv.base, 7, { small: 40, large: [300 * KiB] });
    const { remote } = await tierUpload(srv.base, 7, 'local.default');
    await stop(srv);
    // The files as that crash leaves them, made by hand: a kill cannot be timed between the
    // rename and the .vif write. The object is renamed into place, the .vif still names it.
    renameSync(join(dir, 'tier', remote!.key), datPath(dir, 7));
    srv = await start(dir);
    await expectAllReadBack(srv.base, blobs);
    expect(srv.stats('local.default').reads, 'read from the local .dat').toBe(0);
    await tierDownload(srv.base, 7);
    expect(vifOf(dir, 7)?.remote).toBeUndefined();
    expect(readdirSync(join(dir, 'tier')), 'the sidecars deleted with it').toEqual([]);
    await expectAllReadBack(srv.base, blobs);
  });

  it('an upload puts its deletion set once when no delete comes before the commit, and again when one does', async () => {
    const dir = tempDir();
    const srv = await start(dir);
    await assignVolume(srv.base, 9);
    const blobs = await fillVolume(srv.base, 9, { small: 20 });
    const keyOf = (i: number) => parseFid(blobs[i]!.fid).key;
    expect((await http(srv.base, `/${blobs[0]!.fid}`, { method: 'DELETE' })).status).toBe(202);
    const stats = srv.stats('local.default');
    const before = { requests: stats.requests, reads: stats.reads };
    const { remote } = await tierUpload(srv.base, 9, 'local.default');
    // Besides its reads: the .dat, the index and one deletion set (the publish after the commit found it current).
    expect(stats.requests - before.requests - (stats.reads - before.reads), 'uploads').toBe(3);
    const setPath = join(dir, 'tier', remote!.deletesKey!);
    const setKeys = () => [...decodeDeletionSet(readFileSync(setPath)).keys].sort();
    expect(setKeys()).toEqual([keyOf(0)]);

    // The same steps driven by hand: the sidecars, a delete before the publish, the publish.
    const volume = srv.server.store.get(9);
    const backends = srv.server.store.config.backends!;
    await writeSidecars(volume, backends.get('local.default'), remote!.key);
    expect((await http(srv.base, `/${blobs[1]!.fid}`, { method: 'DELETE' })).status).toBe(202);
    expect(setKeys(), 'the delete is in the bucket once acknowledged').toEqual([keyOf(0), keyOf(1)].sort());
    // And with none in between the publish leaves the set as written: each put is a new file (a rename).
    await writeSidecars(volume, backends.get('local.default'), remote!.key);
    const written = statSync(setPath).ino;
    await publishDeletes(volume, backends);
    expect(statSync(setPath).ino).toBe(written);
    expect(setKeys()).toEqual([keyOf(0), keyOf(1)].sort());
    expect((await http(srv.base, `/${blobs[1]!.fid}`)).status).toBe(404);
  });

  it('an empty volume (a superblock and nothing else) tiers, reopens and comes back writable', async () => {
    const dir = tempDir();
    let srv = await start(dir);
    await assignVolume(srv.base, 5);
    await tierUpload(srv.base, 5, 'local.default');
    expect(vifOf(dir, 5)?.remote?.size).toBe(8);
    await stop(srv);
    srv = await start(dir);
    expect((await tierStatus(srv.base, 5)).remote?.size).toBe(8);
    await tierDownload(srv.base, 5);
    const blob = { fid: newFid(5), bytes: Buffer.from('first needle'), text: false };
    await putBlob(srv.base, blob);
    await expectAllReadBack(srv.base, [blob]);
  });
});
