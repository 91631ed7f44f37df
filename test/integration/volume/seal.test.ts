/**
 * Seal (issue 3 §8): read-only on command (persisted in `.vif`) or when the
 * volume reaches its size limit; writes to a sealed volume get 409.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  getBytes,
  newFid,
  put,
  putOk,
  type Running,
  randomBlob,
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

async function start(dir: string, options: Parameters<typeof startInProcess>[1] = {}): Promise<Running> {
  const r = await startInProcess(dir, options);
  running.push(r);
  return r;
}

async function stop(r: Running): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await r.stop();
}

const admin = (base: string, action: string, volumeId: number) =>
  fetch(`${base}/admin/${action}?volume=${volumeId}`, { method: 'POST' });

async function expectReadOnlyRefusal(res: Response): Promise<void> {
  expect(res.status).toBe(409);
  expect(await res.json()).toMatchObject({ code: 'volume_read_only' });
}

describe('seal', () => {
  it('refuses writes with 409 after /admin/readonly, keeps serving reads, and persists across restart', async () => {
    const dir = tempDir();
    const r = await start(dir);
    await assignVolume(r.base, 1);
    const fid = newFid(1);
    const bytes = randomBlob(1000);
    await putOk(r.base, fid, bytes);

    const sealed = await admin(r.base, 'readonly', 1);
    expect(sealed.status).toBe(200);
    expect(await sealed.json()).toEqual({ volume: 1, readOnly: true });
    expect((await volumeStatus(r.base, 1)).readOnly).toBe(true);
    await expectReadOnlyRefusal(await put(r.base, newFid(1), 'refused'));
    // Even an overwrite of an existing key with new bytes.
    await expectReadOnlyRefusal(await put(r.base, fid, randomBlob(1000)));
    expect((await getBytes(r.base, `/${fid}`)).equals(bytes)).toBe(true);

    await stop(r);
    const again = await start(dir);
    expect((await volumeStatus(again.base, 1)).readOnly).toBe(true);
    await expectReadOnlyRefusal(await put(again.base, newFid(1), 'still refused'));
    expect((await getBytes(again.base, `/${fid}`)).equals(bytes)).toBe(true);

    expect(await (await admin(again.base, 'writable', 1)).json()).toEqual({ volume: 1, readOnly: false });
    const later = newFid(1);
    await putOk(again.base, later, 'writable again');
    await stop(again);
    const third = await start(dir);
    expect((await volumeStatus(third.base, 1)).readOnly).toBe(false);
    expect((await getBytes(third.base, `/${later}`)).toString()).toBe('writable again');
  });

  it('seals a volume once it reaches the size limit', async () => {
    const limit = 64 * 1024;
    const r = await start(tempDir(), { sizeLimitBytes: limit });
    await assignVolume(r.base, 1);
    await assignVolume(r.base, 2);
    const stored = new Map<string, Buffer>();
    let refused: Response | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const fid = newFid(1);
      const bytes = randomBlob(10 * 1024);
      const res = await put(r.base, fid, bytes);
      if (res.status === 201) stored.set(fid, bytes);
      else refused = res;
    }
    expect(refused).toBeDefined();
    await expectReadOnlyRefusal(refused!);
    const status = await volumeStatus(r.base, 1);
    expect(status.readOnly).toBe(true);
    expect(status.size).toBeGreaterThanOrEqual(limit);
    // The write that crossed the limit was the last one taken.
    expect(status.size).toBeLessThan(limit + 10 * 1024 + 64);
    expect(stored.size).toBeGreaterThan(1);
    for (const [fid, bytes] of stored) expect((await getBytes(r.base, `/${fid}`)).equals(bytes)).toBe(true);
    // Other volumes are not affected.
    await putOk(r.base, newFid(2), 'volume 2 is still open');
    expect((await volumeStatus(r.base, 2)).readOnly).toBe(false);
  });

  it('answers 404 to readonly/writable of an unknown volume and 400 without a volume', async () => {
    const r = await start(tempDir());
    expect((await admin(r.base, 'readonly', 42)).status).toBe(404);
    expect((await fetch(`${r.base}/admin/readonly`, { method: 'POST' })).status).toBe(400);
  });
});
