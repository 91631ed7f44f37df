/**
 * Vacuum (docs/format.md §9, issue 3 §7): compaction reclaims deleted space, loses no
 * write that arrives while it runs, and a crash around its renames is rolled
 * forward (after the `.cpc` marker) or discarded (before it) at startup.
 */
import { copyFileSync, existsSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  concurrently,
  newFid,
  put,
  putOk,
  type Running,
  randomBlob,
  raw,
  removeTempDirs,
  startInProcess,
  tempDir,
  volumeStatus,
} from './harness.ts';

const running: Running[] = [];

afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
  removeTempDirs();
});

async function start(dir: string): Promise<Running> {
  const r = await startInProcess(dir);
  running.push(r);
  return r;
}

async function stop(r: Running): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await r.stop();
}

async function vacuum(base: string, volumeId: number, query = '') {
  const res = await fetch(`${base}/admin/vacuum?volume=${volumeId}${query}`, { method: 'POST' });
  expect(res.status).toBe(200);
  return (await res.json()) as { compacted: boolean; sizeBefore: number; sizeAfter: number };
}

async function expectServed(base: string, live: Map<string, Buffer>, gone: Iterable<string> = []) {
  for (const [fid, bytes] of live) {
    const res = await raw(base, `/${fid}`);
    expect(res.status, fid).toBe(200);
    expect(res.body.equals(bytes), fid).toBe(true);
  }
  for (const fid of gone) expect((await raw(base, `/${fid}`)).status, fid).toBe(404);
}

/** Volume 1 with `n` blobs, every second one deleted. */
async function halfDeleted(base: string, n: number, size = 2000) {
  await assignVolume(base, 1);
  const live = new Map<string, Buffer>();
  const gone: string[] = [];
  for (let i = 0; i < n; i++) {
    const fid = newFid(1);
    const bytes = randomBlob(size + i);
    await putOk(base, fid, bytes);
    if (i % 2) live.set(fid, bytes);
    else gone.push(fid);
  }
  for (const fid of gone) expect((await fetch(`${base}/${fid}`, { method: 'DELETE' })).status).toBe(202);
  return { live, gone };
}

describe('vacuum', () => {
  it('shrinks the .dat after half the blobs are deleted and still serves every live one', async () => {
    const dir = tempDir();
    const r = await start(dir);
    const { live, gone } = await halfDeleted(r.base, 40);
    const empty = newFid(1);
    await putOk(r.base, empty, new Uint8Array(0));
    live.set(empty, Buffer.alloc(0));
    const sizeBefore = statSync(join(dir, '1.dat')).size;

    // Below the threshold nothing happens.
    expect(await vacuum(r.base, 1, '&garbageThreshold=0.9')).toMatchObject({ compacted: false });
    const report = await vacuum(r.base, 1);
    expect(report).toMatchObject({ compacted: true, sizeBefore });
    const sizeAfter = statSync(join(dir, '1.dat')).size;
    expect(report.sizeAfter).toBe(sizeAfter);
    expect(sizeAfter).toBeLessThan(sizeBefore * 0.6);
    expect(await volumeStatus(r.base, 1)).toMatchObject({
      compactRevision: 1,
      fileCount: 21,
      deleteCount: 0,
      size: sizeAfter,
    });
    for (const ext of ['cpd', 'cpx', 'cpc']) expect(existsSync(join(dir, `1.${ext}`))).toBe(false);
    await expectServed(r.base, live, gone);

    // Writes and deletes go on against the new files, and all of it survives a restart.
    const fid = newFid(1);
    live.set(fid, randomBlob(1234));
    await putOk(r.base, fid, live.get(fid)!);
    const [firstLive] = live.keys();
    expect((await fetch(`${r.base}/${firstLive}`, { method: 'DELETE' })).status).toBe(202);
    live.delete(firstLive!);
    gone.push(firstLive!);
    await stop(r);
    const again = await start(dir);
    await expectServed(again.base, live, gone);
  });

  it('loses no acknowledged write or delete that arrives while it compacts', async () => {
    const dir = tempDir();
    const r = await start(dir);
    // Big enough that the copy yields to the event loop several times.
    const { live, gone } = await halfDeleted(r.base, 120, 100 * 1024);
    const acked = new Map<string, Buffer>();
    const deletedMeanwhile: string[] = [];
    let vacuuming = false;
    let duringVacuum = 0;
    let writersDone = false;
    const writers = concurrently(8, async (worker) => {
      for (let i = 0; i < 40; i++) {
        const fid = newFid(1);
        const bytes = randomBlob(300 + worker * 10 + i);
        const res = await put(r.base, fid, bytes);
        if (res.status !== 201) throw new Error(`write during vacuum: ${res.status} ${await res.text()}`);
        acked.set(fid, bytes);
        if (vacuuming) duringVacuum++;
        if (i % 4 === 1) {
          // Also delete blobs that the compaction may be copying right now.
          const victim = [...live.keys()][(worker * 5 + i) % live.size];
          if (victim && live.delete(victim)) {
            expect((await fetch(`${r.base}/${victim}`, { method: 'DELETE' })).status).toBe(202);
            deletedMeanwhile.push(victim);
          }
        }
      }
    }).finally(() => {
      writersDone = true;
    });
    let vacuums = 0;
    while (!writersDone || vacuums === 0) {
      vacuuming = true;
      expect(await vacuum(r.base, 1, '&force=true')).toMatchObject({ compacted: true });
      vacuuming = false;
      vacuums++;
    }
    await writers;
    expect(acked.size).toBe(320);
    expect(duringVacuum).toBeGreaterThan(0);
    expect(deletedMeanwhile.length).toBeGreaterThan(0);
    const all = new Map([...live, ...acked]);
    await expectServed(r.base, all, [...gone, ...deletedMeanwhile]);
    expect((await volumeStatus(r.base, 1)).fileCount).toBe(all.size);
    await stop(r);
    const again = await start(dir);
    await expectServed(again.base, all, [...gone, ...deletedMeanwhile]);
  });
});

describe('interrupted compaction', () => {
  /**
   * Real files on both sides of a compaction: the volume before it (`old`),
   * and the `.dat`/`.idx` it produced (`compacted`).
   */
  async function compactionFiles() {
    const dir = tempDir();
    const r = await start(dir);
    const { live, gone } = await halfDeleted(r.base, 30);
    await stop(r);
    const p = (ext: string) => join(dir, `1.${ext}`);
    copyFileSync(p('dat'), p('old-dat'));
    copyFileSync(p('idx'), p('old-idx'));
    const again = await start(dir);
    expect(await vacuum(again.base, 1)).toMatchObject({ compacted: true });
    await stop(again);
    copyFileSync(p('dat'), p('compacted-dat'));
    copyFileSync(p('idx'), p('compacted-idx'));
    const oldSize = statSync(p('old-dat')).size;
    const compactedSize = statSync(p('compacted-dat')).size;
    expect(compactedSize).toBeLessThan(oldSize);
    return { dir, p, live, gone, oldSize, compactedSize };
  }

  it('rolls forward a compaction that crashed after writing .cpc, before the renames', async () => {
    const f = await compactionFiles();
    renameSync(f.p('compacted-dat'), f.p('cpd'));
    renameSync(f.p('compacted-idx'), f.p('cpx'));
    copyFileSync(f.p('old-dat'), f.p('dat'));
    copyFileSync(f.p('old-idx'), f.p('idx'));
    writeFileSync(f.p('cpc'), '1\n');
    const r = await start(f.dir);
    expect(await volumeStatus(r.base, 1)).toMatchObject({ compactRevision: 1, size: f.compactedSize });
    for (const ext of ['cpd', 'cpx', 'cpc']) expect(existsSync(f.p(ext)), ext).toBe(false);
    await expectServed(r.base, f.live, f.gone);
  });

  it('rolls forward a compaction that crashed between its two renames', async () => {
    const f = await compactionFiles();
    // .cpd is already the .dat; the old .idx is still in place beside .cpx.
    renameSync(f.p('compacted-idx'), f.p('cpx'));
    copyFileSync(f.p('old-idx'), f.p('idx'));
    writeFileSync(f.p('cpc'), '1\n');
    const r = await start(f.dir);
    expect(await volumeStatus(r.base, 1)).toMatchObject({ compactRevision: 1, size: f.compactedSize });
    for (const ext of ['cpd', 'cpx', 'cpc']) expect(existsSync(f.p(ext)), ext).toBe(false);
    await expectServed(r.base, f.live, f.gone);
  });

  it('discards .cpd and .cpx left without a .cpc and keeps the old volume', async () => {
    const f = await compactionFiles();
    renameSync(f.p('compacted-dat'), f.p('cpd'));
    renameSync(f.p('compacted-idx'), f.p('cpx'));
    // A copy cut short, as a crash mid-compaction leaves it.
    truncateSync(f.p('cpd'), Math.floor(f.compactedSize / 2));
    copyFileSync(f.p('old-dat'), f.p('dat'));
    copyFileSync(f.p('old-idx'), f.p('idx'));
    const r = await start(f.dir);
    expect(await volumeStatus(r.base, 1)).toMatchObject({ compactRevision: 0, size: f.oldSize });
    for (const ext of ['cpd', 'cpx', 'cpc']) expect(existsSync(f.p(ext)), ext).toBe(false);
    await expectServed(r.base, f.live, f.gone);
    // And a vacuum can run again.
    expect(await vacuum(r.base, 1)).toMatchObject({ compacted: true });
    await expectServed(r.base, f.live, f.gone);
  });
});
