/**
 * Durability (issue 3 §6): a restart keeps every blob, and a `kill -9` during
 * concurrent writes loses none whose upload was acknowledged.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  type ChildServer,
  concurrently,
  getBytes,
  newFid,
  putOk,
  type Running,
  randomBlob,
  raw,
  removeTempDirs,
  startChild,
  startInProcess,
  tempDir,
  volumeStatus,
} from './harness.ts';

const running: Array<Running> = [];

afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
  removeTempDirs();
});

async function track<T extends Running>(r: Promise<T>): Promise<T> {
  const started = await r;
  running.push(started);
  return started;
}

describe('restart', () => {
  it('keeps every blob, deletion, mime, name and read-only flag across close and start', async () => {
    const dir = tempDir();
    const first = await track(startInProcess(dir));
    await assignVolume(first.base, 1);
    await assignVolume(first.base, 2, 'collection=photos');
    const blobs = new Map<string, Buffer>();
    for (let i = 0; i < 40; i++) {
      const fid = newFid(i % 2 ? 1 : 2);
      const bytes =
        i % 5 === 0 ? Buffer.from('compressible text '.repeat(100 + i)) : randomBlob(100 + i * 50);
      blobs.set(fid, bytes);
      await putOk(first.base, fid, bytes, { 'Content-Type': i % 5 === 0 ? 'text/plain' : 'image/png' });
    }
    const big = newFid(1);
    blobs.set(big, randomBlob(1536 * 1024));
    await putOk(first.base, big, blobs.get(big)!);
    const deleted = [...blobs.keys()].slice(0, 6);
    for (const fid of deleted) {
      expect((await fetch(`${first.base}/${fid}`, { method: 'DELETE' })).status).toBe(202);
      blobs.delete(fid);
    }
    await fetch(`${first.base}/admin/readonly?volume=2`, { method: 'POST' });
    const statusBefore = [await volumeStatus(first.base, 1), await volumeStatus(first.base, 2)];
    await first.stop();
    running.splice(running.indexOf(first), 1);

    const second = await track(startInProcess(dir));
    expect([await volumeStatus(second.base, 1), await volumeStatus(second.base, 2)]).toEqual(statusBefore);
    expect(statusBefore[1]).toMatchObject({ collection: 'photos', readOnly: true });
    for (const [fid, bytes] of blobs) {
      expect((await getBytes(second.base, `/${fid}`)).equals(bytes), fid).toBe(true);
    }
    for (const fid of deleted) expect((await raw(second.base, `/${fid}`)).status).toBe(404);
    const typed = [...blobs.keys()].find((f) => f.startsWith('1,'))!;
    expect((await raw(second.base, `/${typed}`)).headers['content-type']).toMatch(
      /^(image\/png|text\/plain)$/,
    );
  });
});

describe('disk locations', () => {
  it('spreads volumes over several directories, refuses one too many, and reopens each', async () => {
    const dirs = [tempDir(), tempDir()];
    const locations = dirs.map((dir) => ({ dir, maxVolumes: 1 }));
    const first = await track(startInProcess(dirs[0]!, { locations }));
    await assignVolume(first.base, 1);
    await assignVolume(first.base, 1); // idempotent
    await assignVolume(first.base, 2, 'collection=pics');
    const third = await fetch(`${first.base}/admin/assign_volume?volume=3`, { method: 'POST' });
    expect(third.status).toBe(406);
    expect(existsSync(join(dirs[0]!, '1.dat')) !== existsSync(join(dirs[1]!, '1.dat'))).toBe(true);
    expect(existsSync(join(dirs[0]!, 'pics_2.dat')) !== existsSync(join(dirs[1]!, 'pics_2.dat'))).toBe(true);
    const other = await fetch(`${first.base}/admin/assign_volume?volume=1&collection=pics`, {
      method: 'POST',
    });
    expect(other.status).toBe(409);
    const a = newFid(1);
    const b = newFid(2);
    await putOk(first.base, a, 'in volume 1');
    await putOk(first.base, b, 'in volume 2');
    await first.stop();
    running.splice(running.indexOf(first), 1);
    const second = await track(startInProcess(dirs[0]!, { locations }));
    expect((await getBytes(second.base, `/${a}`)).toString()).toBe('in volume 1');
    expect((await getBytes(second.base, `/${b}`)).toString()).toBe('in volume 2');
    const status = (await (await fetch(`${second.base}/status`)).json()) as {
      DiskStatuses: Array<{ dir: string; volumeCount: number; maxVolumes: number; free: number }>;
    };
    expect(status.DiskStatuses.map((d) => [d.dir, d.volumeCount, d.maxVolumes])).toEqual([
      [dirs[0], 1, 1],
      [dirs[1], 1, 1],
    ]);
    expect(status.DiskStatuses[0]!.free).toBeGreaterThan(0);
  });
});

describe.each(['batch', 'never'])('kill -9 with --fsync %s', (fsync) => {
  it('finds every acknowledged blob after a SIGKILL during concurrent writes', async () => {
    const dir = tempDir();
    const child: ChildServer = await track(startChild(dir, ['--fsync', fsync]));
    await assignVolume(child.base, 1);
    await assignVolume(child.base, 2);

    const acked = new Map<string, Buffer>();
    const attempted = new Set<string>();
    const KILL_AFTER = 150;
    const PER_WORKER = 60;
    let killing: Promise<void> | undefined;
    let failures = 0;
    await concurrently(8, async (worker) => {
      for (let i = 0; i < PER_WORKER; i++) {
        const fid = newFid(1 + (worker % 2));
        const bytes = randomBlob(200 + ((worker * 997 + i * 131) % 6000));
        attempted.add(fid);
        try {
          const res = await fetch(`${child.base}/${fid}`, { method: 'PUT', body: bytes });
          if (res.status === 201) acked.set(fid, bytes);
          else await res.arrayBuffer();
        } catch {
          failures++;
          return; // the server is gone
        }
        if (acked.size >= KILL_AFTER && !killing) killing = child.kill();
      }
    });
    await killing;
    expect(child.child.signalCode).toBe('SIGKILL');
    // The kill landed mid-stream: some uploads were cut off, and most were acknowledged before it.
    expect(failures).toBeGreaterThan(0);
    expect(acked.size).toBeGreaterThanOrEqual(KILL_AFTER);
    running.splice(running.indexOf(child), 1);

    const again = await track(startChild(dir));
    for (const [fid, bytes] of acked) {
      const res = await raw(again.base, `/${fid}`);
      expect(res.status, fid).toBe(200);
      expect(res.body.equals(bytes), fid).toBe(true);
    }
    // Unacknowledged uploads may or may not be there, but never with wrong bytes (no 5xx either).
    for (const fid of attempted) {
      if (acked.has(fid)) continue;
      expect([200, 404], fid).toContain((await raw(again.base, `/${fid}`)).status);
    }
    // And the volumes still take writes after the recovery.
    const after = newFid(1);
    await putOk(again.base, after, 'after recovery');
    expect((await getBytes(again.base, `/${after}`)).toString()).toBe('after recovery');
  });
});

describe('kill -9 during vacuum', () => {
  it('finds every acknowledged blob after a SIGKILL while compactions and writes run', async () => {
    const dir = tempDir();
    const child = await track(startChild(dir));
    await assignVolume(child.base, 1);
    const live = new Map<string, Buffer>();
    const deleted: string[] = [];
    for (let i = 0; i < 60; i++) {
      const fid = newFid(1);
      const bytes = randomBlob(64 * 1024 + i);
      await putOk(child.base, fid, bytes);
      if (i % 2) live.set(fid, bytes);
      else {
        expect((await fetch(`${child.base}/${fid}`, { method: 'DELETE' })).status).toBe(202);
        deleted.push(fid);
      }
    }
    const acked = new Map<string, Buffer>();
    let stop = false;
    const writers = concurrently(4, async () => {
      while (!stop) {
        const fid = newFid(1);
        const bytes = randomBlob(500);
        try {
          const res = await fetch(`${child.base}/${fid}`, { method: 'PUT', body: bytes });
          if (res.status === 201) acked.set(fid, bytes);
        } catch {
          return;
        }
      }
    });
    const vacuums = (async () => {
      while (!stop) {
        try {
          await (
            await fetch(`${child.base}/admin/vacuum?volume=1&force=true`, { method: 'POST' })
          ).arrayBuffer();
        } catch {
          return;
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await child.kill();
    stop = true;
    await Promise.all([writers, vacuums]);
    running.splice(running.indexOf(child), 1);
    expect(acked.size).toBeGreaterThan(0);

    const again = await track(startChild(dir));
    for (const [fid, bytes] of [...live, ...acked]) {
      const res = await raw(again.base, `/${fid}`);
      expect(res.status, fid).toBe(200);
      expect(res.body.equals(bytes), fid).toBe(true);
    }
    // Nothing deleted comes back from a half-done compaction.
    for (const fid of deleted) expect((await raw(again.base, `/${fid}`)).status, fid).toBe(404);
    // Unacknowledged writes may have landed too, but nothing else.
    const { fileCount } = await volumeStatus(again.base, 1);
    expect(fileCount).toBeGreaterThanOrEqual(live.size + acked.size);
    expect(fileCount).toBeLessThanOrEqual(live.size + acked.size + 4);
  });
});
