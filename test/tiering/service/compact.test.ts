/**
 * `kelp tier compact` (as a child process) against a real master and volume
 * server on 127.0.0.1 with the embedded local.default backend: deletes on a
 * tiered volume only hide blobs, compaction downloads, vacuums and re-uploads,
 * and the remote object shrinks while every surviving blob reads the same.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MasterServer, startMaster } from '../../../origin/master/server.ts';
import { silentLogger } from '../../../origin/observability/log.ts';
import { startVolumeServer, type VolumeServer } from '../../../origin/volume/server.ts';
import { formatFid } from '../../../shared/fid.ts';
import { DEFAULT_LOCAL_TIER_DIR } from '../../../tiering/backends/backend.ts';
import type { RemoteDat, VolumeTierStatus } from '../../../tiering/service/client.ts';

const CLI = new URL('../../../origin/cli.ts', import.meta.url).pathname;
const BLOBS = 40;
/** Deleted before compaction: all but every fourth. */
const doomed = (i: number) => i % 4 !== 0;

let dir: string;
let master: MasterServer;
let volume: VolumeServer;
let base: string;
let vid: number;
const blobs: { fid: string; bytes: Buffer }[] = [];

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tierStatus(): Promise<VolumeTierStatus> {
  return (await (await fetch(`${base}/admin/tier/status?volume=${vid}`)).json()) as VolumeTierStatus;
}

async function remote(): Promise<RemoteDat> {
  const r = (await tierStatus()).remote;
  expect(r).not.toBeNull();
  return r!;
}

const objectPath = (key: string) => join(dir, 'data', DEFAULT_LOCAL_TIER_DIR, key);
const datPath = () => join(dir, 'data', `docs_${vid}.dat`);

/** Survivors byte-identical, the deleted 404. */
async function readAll(deleted: boolean): Promise<void> {
  for (const [i, b] of blobs.entries()) {
    const res = await fetch(`${base}/${b.fid}`);
    if (deleted && doomed(i)) {
      expect(res.status, b.fid).toBe(404);
      await res.arrayBuffer();
      continue;
    }
    expect(res.status, b.fid).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(b.bytes), b.fid).toBe(true);
  }
}

async function kelp(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KELP_')));
  const child = spawn(process.execPath, [CLI, ...args, '--master', master.address], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kelp-tier-compact-'));
  master = await startMaster({
    host: '127.0.0.1',
    port: 0,
    mdir: join(dir, 'master'),
    pulseSeconds: 1,
    volumeSizeLimitBytes: 64 * 1024 * 1024,
    logger: silentLogger(),
  });
  volume = await startVolumeServer({
    host: '127.0.0.1',
    port: 0,
    locations: [{ dir: join(dir, 'data'), maxVolumes: 8 }],
    master: master.address,
    pulseSeconds: 1,
    logger: silentLogger(),
  });
  base = `http://${volume.address}`;
  const assigned = await until('an assign', async () => {
    const res = await fetch(`http://${master.address}/dir/assign?collection=docs`, { method: 'POST' });
    return res.ok ? ((await res.json()) as { fid: string }) : undefined;
  });
  vid = Number(assigned.fid.split(',')[0]);
  for (let i = 0; i < BLOBS; i++) {
    const fid = formatFid({ volumeId: vid, key: 2_000_000n + BigInt(i), cookie: 0x4321 + i });
    // Random bytes: no compression, so the garbage is the bytes deleted.
    const bytes = randomBytes(8000 + i * 500);
    const res = await fetch(`${base}/${fid}`, { method: 'PUT', body: bytes });
    expect(res.status).toBe(201);
    blobs.push({ fid, bytes });
  }
  expect((await fetch(`${base}/admin/readonly?volume=${vid}`, { method: 'POST' })).status).toBe(200);
  const up = await kelp(['tier', 'upload', '--volume', String(vid), '--backend', 'local.default']);
  expect(up.code, up.stderr).toBe(0);
  expect(existsSync(datPath())).toBe(false);
});

afterAll(async () => {
  await volume?.close();
  await master?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('kelp tier compact', () => {
  it('leaves a tiered volume under the garbage threshold alone', async () => {
    const before = await remote();
    const run = await kelp(['tier', 'compact', '--volume', String(vid)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `volume ${vid} on ${volume.address}: garbage 0\\.0% \\(0 of \\d+ bytes\\), under garbageThreshold 30\\.0%; nothing to do`,
      ),
    );
    expect((await remote()).key).toBe(before.key);
  });

  it('reclaims the cloud space of blobs deleted on the tiered volume', async () => {
    const before = await remote();
    for (const [i, b] of blobs.entries()) {
      if (!doomed(i)) continue;
      const res = await fetch(`${base}/${b.fid}`, { method: 'DELETE' });
      expect(res.status, b.fid).toBeLessThan(300);
      await res.arrayBuffer();
    }
    await readAll(true);
    // Deletes only tombstone locally: the object still holds every byte.
    expect(statSync(objectPath(before.key)).size).toBe(before.size);

    const run = await kelp(['tier', 'compact', '--volume', String(vid)]);
    expect(run.code, run.stderr).toBe(0);
    const after = await remote();
    expect(run.stdout).toContain(`volume ${vid} on ${volume.address}: garbage `);
    expect(run.stdout).toContain(
      `volume ${vid} on ${volume.address}: compacted on local.default: ${before.size} -> ${after.size} bytes (${before.size - after.size} reclaimed)`,
    );
    expect(after).toMatchObject({ backend: 'local.default', keepLocalDat: false });
    // Three quarters deleted: the new object is well under half the old.
    expect(after.size).toBeLessThan(before.size / 2);
    expect(after.key).not.toBe(before.key);
    expect(existsSync(objectPath(before.key))).toBe(false);
    expect(statSync(objectPath(after.key)).size).toBe(after.size);
    expect(existsSync(datPath())).toBe(false);
    await readAll(true);

    // Run again: nothing left to reclaim.
    const again = await kelp(['tier', 'compact', '--volume', String(vid)]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('nothing to do');
    expect((await remote()).key).toBe(after.key);
  });

  it('resumes a compaction interrupted after its download: vacuum and upload back', async () => {
    // A crash after the download: the volume is local, the re-upload never ran.
    const down = await kelp(['tier', 'download', '--volume', String(vid)]);
    expect(down.code, down.stderr).toBe(0);
    expect((await tierStatus()).remote).toBeNull();
    expect(existsSync(datPath())).toBe(true);

    const run = await kelp(['tier', 'compact', '--volume', String(vid)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      `volume ${vid} on ${volume.address}: local (an interrupted compaction?); vacuuming and uploading it back to local.default`,
    );
    expect(run.stdout).toMatch(/compacted on local\.default: \d+ -> \d+ bytes/);
    const after = await remote();
    expect(statSync(objectPath(after.key)).size).toBe(after.size);
    expect(existsSync(datPath())).toBe(false);
    await readAll(true);
  });

  it('--force compacts under the threshold; bad flags and unknown volumes fail with a reason', async () => {
    const before = await remote();
    const forced = await kelp(['tier', 'compact', '--volume', String(vid), '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain(`compacted on local.default: ${before.size} -> ${before.size} bytes`);
    expect((await remote()).key).not.toBe(before.key);
    await readAll(true);

    const bad = await kelp(['tier', 'compact', '--volume', String(vid), '--garbageThreshold', '2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--garbageThreshold: "2" is not a ratio in 0..1');

    const missing = await kelp(['tier', 'compact', '--volume', '4000']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('kelp: volume 4000: the master knows no live server holding it');
  });
});
