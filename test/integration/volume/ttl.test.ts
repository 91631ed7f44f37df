/**
 * TTL (issue 3 §5): per-needle `?ttl=` and per-volume TTL expire against an
 * injected clock; expired needles answer 404 and vacuum reclaims them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  getBytes,
  newFid,
  putOk,
  type Running,
  randomBlob,
  raw,
  removeTempDirs,
  startInProcess,
  tempDir,
  volumeStatus,
} from './harness.ts';

let clock = Date.UTC(2030, 0, 1);
let srv: Running;

beforeAll(async () => {
  srv = await startInProcess(tempDir(), { now: () => clock });
});

afterAll(async () => {
  await srv?.stop();
  removeTempDirs();
});

describe('TTL', () => {
  it('serves a ?ttl=1m upload until the clock passes a minute, then answers 404', async () => {
    await assignVolume(srv.base, 1);
    const fid = newFid(1);
    const forever = newFid(1);
    const bytes = randomBlob(200);
    await putOk(srv.base, fid, bytes, {}, '?ttl=1m');
    await putOk(srv.base, forever, bytes);
    clock += 59_000;
    expect((await getBytes(srv.base, `/${fid}`)).equals(bytes)).toBe(true);
    clock += 2_000;
    const expired = await raw(srv.base, `/${fid}`);
    expect(expired.status).toBe(404);
    // The same 404 as any missing blob: expiry is not a hint either.
    expect(expired.body.toString()).toBe((await raw(srv.base, `/${newFid(1)}`)).body.toString());
    expect((await getBytes(srv.base, `/${forever}`)).equals(bytes)).toBe(true);
  });

  it('says when a TTL blob expires (Expires), so no cache keeps it longer; blobs without a TTL have none', async () => {
    await assignVolume(srv.base, 9);
    const fid = newFid(9);
    await putOk(srv.base, fid, 'brief', {}, '?ttl=5m');
    const written = Math.floor(clock / 1000);
    const res = await raw(srv.base, `/${fid}`);
    expect(res.headers.expires).toBe(new Date((written + 300) * 1000).toUTCString());
    const variant = await raw(srv.base, `/${fid}?width=10`);
    expect(variant.headers.expires).toBe(res.headers.expires);
    const forever = newFid(9);
    await putOk(srv.base, forever, 'stays');
    expect((await raw(srv.base, `/${forever}`)).headers.expires).toBeUndefined();
  });

  it('expires every needle of a volume created with ttl=', async () => {
    await assignVolume(srv.base, 2, 'ttl=2h');
    expect((await volumeStatus(srv.base, 2)).ttl).toBe('2h');
    const fid = newFid(2);
    await putOk(srv.base, fid, 'short-lived');
    clock += 3_600_000;
    expect((await getBytes(srv.base, `/${fid}`)).toString()).toBe('short-lived');
    clock += 3_600_000;
    expect((await raw(srv.base, `/${fid}`)).status).toBe(404);
  });

  it('lets a needle TTL override the volume TTL', async () => {
    await assignVolume(srv.base, 3, 'ttl=1h');
    const fid = newFid(3);
    await putOk(srv.base, fid, 'longer', {}, '?ttl=3h');
    clock += 2 * 3_600_000;
    expect((await getBytes(srv.base, `/${fid}`)).toString()).toBe('longer');
    clock += 2 * 3_600_000;
    expect((await raw(srv.base, `/${fid}`)).status).toBe(404);
  });

  it('reclaims expired needles on vacuum and keeps the live ones', async () => {
    await assignVolume(srv.base, 4);
    const short = Array.from({ length: 10 }, () => newFid(4));
    const long = Array.from({ length: 5 }, () => newFid(4));
    const blobs = new Map<string, Buffer>();
    for (const fid of short) await putOk(srv.base, fid, randomBlob(4000), {}, '?ttl=5m');
    for (const fid of long) {
      blobs.set(fid, randomBlob(4000));
      await putOk(srv.base, fid, blobs.get(fid)!, {}, '?ttl=1d');
    }
    const before = (await volumeStatus(srv.base, 4)).size;
    clock += 10 * 60_000;
    const res = await fetch(`${srv.base}/admin/vacuum?volume=4&force=true`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ compacted: true });
    const after = await volumeStatus(srv.base, 4);
    expect(after.size).toBeLessThan(before / 2);
    expect(after.fileCount).toBe(5);
    for (const fid of short) expect((await raw(srv.base, `/${fid}`)).status).toBe(404);
    for (const [fid, bytes] of blobs) expect((await getBytes(srv.base, `/${fid}`)).equals(bytes)).toBe(true);
  });
});
