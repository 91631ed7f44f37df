/**
 * A clean shutdown leaves each volume marked (clean-shutdown.ts), and the
 * next start trusts the mark only while the files are exactly as it says:
 * then no recovery scan runs. Anything else (no mark after a kill -9, files
 * changed since, a torn mark) falls back to the scan. Tested on Volume
 * directly and on a real `kelp volume` process stopped by SIGTERM.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Volume, type VolumeConfig } from '../../../origin/volume/volume.ts';
import { parsePlacement } from '../../../shared/placement.ts';
import { parseTtl } from '../../../shared/ttl.ts';
import {
  assignVolume,
  type ChildServer,
  concurrently,
  getBytes,
  newFid,
  put,
  randomBlob,
  removeTempDirs,
  startChild,
  tempDir,
} from './harness.ts';

const dirs: string[] = [];
const open: Volume[] = [];
const children: ChildServer[] = [];

afterEach(async () => {
  for (const v of open.splice(0)) await v.close();
  for (const c of children.splice(0)) await c.kill();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(removeTempDirs);

function config(dir: string): VolumeConfig {
  return { dir, collection: '', volumeId: 5, fsync: 'batch', sizeLimitBytes: 1 << 30, now: Date.now };
}

async function volumeWithBlobs(): Promise<Volume> {
  const dir = mkdtempSync(join(tmpdir(), 'kelp-clean-'));
  dirs.push(dir);
  const v = Volume.create(config(dir), { placement: parsePlacement('000'), ttl: parseTtl('') });
  for (let i = 1; i <= 20; i++) {
    await v.write({ key: BigInt(i), cookie: 7, data: randomBlob(500 + i), meta: { flags: 0 } });
  }
  return v;
}

function reopen(v: Volume): Volume {
  const again = Volume.open(v.config);
  open.push(again);
  return again;
}

describe('the clean-shutdown mark', () => {
  it('a volume closed cleanly opens without a recovery scan, once; the mark is gone after the open', async () => {
    const v = await volumeWithBlobs();
    await v.close({ markClean: true });
    expect(existsSync(v.path('clean'))).toBe(true);
    const again = reopen(v);
    expect(again.openedClean).toBe(true);
    expect(again.repairs).toEqual([]);
    expect(existsSync(v.path('clean'))).toBe(false);
    expect(again.map.liveCount).toBe(20);
    expect(again.readSync(7n, 7).kind).toBe('whole');
    // Closed without the mark (what a crash leaves): the next open checks.
    await again.close();
    open.splice(open.indexOf(again), 1);
    expect(reopen(v).openedClean).toBe(false);
  });

  it('a restart keeps when the volume was last written, as the volume recorded it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kelp-clean-'));
    dirs.push(dir);
    // A clock 5.5 s ahead of the kernel's: the .idx's mtime (the kernel's) and the volume's own time of
    // its last write (config.now) then differ by whole seconds, as across a second's edge they do by one.
    const ahead = { ...config(dir), now: () => Date.now() + 5_500 };
    const v = Volume.create(ahead, { placement: parsePlacement('000'), ttl: parseTtl('') });
    await v.write({ key: 1n, cookie: 7, data: randomBlob(100), meta: { flags: 0 } });
    const written = v.modifiedAt;
    await v.close({ markClean: true });
    const again = reopen(v);
    expect(again.modifiedAt).toBe(written);
    expect(again.openedClean, 'the clean mark still matches the files').toBe(true);
  });

  it('is not trusted when the .dat changed after it: the scan runs and repairs the torn tail', async () => {
    const v = await volumeWithBlobs();
    await v.close({ markClean: true });
    appendFileSync(v.path('dat'), Buffer.from('half a needle'));
    const again = reopen(v);
    expect(again.openedClean).toBe(false);
    expect(again.repairs.join('\n')).toMatch(/not a whole needle: truncated/);
    expect(again.map.liveCount).toBe(20);
  });

  it('is not trusted when it is torn, and is removed', async () => {
    const v = await volumeWithBlobs();
    await v.close({ markClean: true });
    writeFileSync(v.path('clean'), '{"dat":{"si');
    const again = reopen(v);
    expect(again.openedClean).toBe(false);
    expect(existsSync(v.path('clean'))).toBe(false);
  });
});

describe('kelp volume stopped by SIGTERM', () => {
  const marks = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.clean'));

  it('under writes: exits 0, every acknowledged blob survives, and the restart needs no recovery scan', async () => {
    const dir = tempDir();
    const first = await startChild(dir);
    children.push(first);
    for (const id of [1, 2, 3]) await assignVolume(first.base, id);
    const acked = new Map<string, Buffer>();
    let stop = false;
    const writers = concurrently(8, async (w) => {
      for (let i = 0; !stop && i < 10_000; i++) {
        const fid = newFid(1 + ((w + i) % 3));
        const body = randomBlob(200 + ((w * 31 + i) % 900));
        try {
          if ((await put(first.base, fid, body)).status === 201) acked.set(fid, body);
        } catch {
          return; // the server went away mid-request: not acknowledged
        }
      }
    });
    await new Promise((r) => setTimeout(r, 400));
    const exited = new Promise<number | null>((r) => first.child.once('exit', (code) => r(code)));
    first.child.kill('SIGTERM');
    const code = await exited;
    stop = true;
    await writers;
    expect(code, first.output()).toBe(0);
    expect(acked.size).toBeGreaterThan(0);
    expect(marks(dir).sort()).toEqual(['1.clean', '2.clean', '3.clean']);

    const second = await startChild(dir, ['--logLevel', 'debug']);
    children.push(second);
    const out = second.output();
    for (const id of [1, 2, 3])
      expect(out).toContain(`volume ${id}: closed cleanly last time: no recovery scan`);
    expect(out).not.toContain('checked for a torn tail');
    expect(marks(dir)).toEqual([]);
    const metrics = await (await fetch(`${second.base}/metrics`)).text();
    expect(metrics).toMatch(/^kelp_volume_open_repairs 0$/m);
    for (const [fid, body] of acked) expect((await getBytes(second.base, `/${fid}`)).equals(body)).toBe(true);
  }, 60_000);

  it('after kill -9 there is no mark, and the restart checks each volume', async () => {
    const dir = tempDir();
    const first = await startChild(dir);
    children.push(first);
    await assignVolume(first.base, 1);
    expect((await put(first.base, newFid(1), randomBlob(100))).status).toBe(201);
    await first.kill();
    expect(marks(dir)).toEqual([]);
    const second = await startChild(dir, ['--logLevel', 'debug']);
    children.push(second);
    expect(second.output()).toContain('volume 1: checked for a torn tail');
  }, 60_000);
});
