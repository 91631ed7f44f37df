/**
 * A collection delete reaches an edge without purge events (its purge key not
 * given to the volume servers) through revalidation. When the edge's cached
 * lookup of the volume has expired by then, the revalidation asks the master
 * first; the master's "volume N was deleted" (410 volume_deleted,
 * origin/master/deleted-volumes.ts) is a delete, never an outage: the copy is
 * purged and the reader gets a 404. Before, the master answered the same 404
 * as for "every holder is down", which the edge served STALE for the whole
 * stale lifetime.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FRESH_SECONDS } from '../../edge/env.ts';
import type { AssignResponse } from '../../shared/api.ts';
import { bytes, type EdgeCluster, multipart, randomBlob, sleep, startEdge } from './harness.ts';

/** Past the fresh period (revalidation) and the 1 s lookup TTL (the lookup is asked again). */
const PAST_FRESH_MS = DEFAULT_FRESH_SECONDS * 1000 + 600;

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({ maxVolumes: 20, vars: { LOOKUP_TTL_SECONDS: '1' } });
}, 60_000);

afterAll(async () => {
  await edge?.close();
});

/** A blob of `collection`, written straight to the volume server. */
async function upload(collection: string, data: Uint8Array): Promise<string> {
  const res = await fetch(`http://${edge.master.address}/dir/assign?collection=${collection}`);
  expect(res.status).toBe(200);
  const assigned = (await res.json()) as AssignResponse;
  const { body, headers } = await multipart(data, 'd.bin');
  const put = await fetch(`http://${assigned.url}/${assigned.fid}`, { method: 'POST', body, headers });
  expect(put.status).toBe(201);
  return assigned.fid;
}

async function deleteCollection(collection: string): Promise<void> {
  const res = await fetch(`http://${edge.master.address}/col/delete?collection=${collection}`, {
    method: 'POST',
  });
  expect(res.status).toBe(204);
}

describe('a deleted collection at an edge without purge events', () => {
  it('is a 404 once the copy is past its fresh period, even when the edge must look the volume up again (was STALE)', async () => {
    const data = randomBlob(3000);
    const fid = await upload('zz', data);
    const first = await edge.fetch(`/${fid}`);
    expect([first.status, first.headers.get('x-kelp-cache')]).toEqual([200, 'MISS']);
    expect(await bytes(first)).toEqual(data);
    const hit = await edge.fetch(`/${fid}`);
    expect([hit.status, hit.headers.get('x-kelp-cache')]).toEqual([200, 'HIT']);
    await bytes(hit);

    await deleteCollection('zz');
    await sleep(PAST_FRESH_MS);
    const after = await edge.fetch(`/${fid}`);
    const body = await bytes(after);
    expect([after.status, after.headers.get('x-kelp-cache')]).not.toEqual([200, 'STALE']);
    expect(after.status).toBe(404);
    expect(body).not.toEqual(data);
    // And it stays one: the copy was purged, not kept for an outage.
    const again = await edge.fetch(`/${fid}`);
    expect(again.status).toBe(404);
    await bytes(again);
  }, 30_000);

  it('is a 404 on a miss, at an edge that never held a copy', async () => {
    const fid = await upload('yy', randomBlob(100));
    await deleteCollection('yy');
    // The master says 410 volume_deleted for the volume; the public sees the blob's 404.
    const lookup = await fetch(`http://${edge.master.address}/dir/lookup?volumeId=${fid.split(',')[0]}`);
    expect(lookup.status).toBe(410);
    await lookup.body?.cancel();
    const other = await edge.worker({ LOOKUP_TTL_SECONDS: '1' });
    try {
      const res = await other.fetch(`/${fid}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('x-kelp-cache')).not.toBe('STALE');
      await bytes(res);
    } finally {
      await other.close();
    }
  }, 30_000);
});
