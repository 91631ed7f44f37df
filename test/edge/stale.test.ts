/**
 * Origin outage: when no volume server answers, the edge serves the copy it
 * keeps for that case (`X-Kelp-Cache: STALE`) after the fresh one expired,
 * and 503 when it has none. A delete purges that copy too.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bytes, type EdgeCluster, randomBlob, sleep, startEdge, waitFor } from './harness.ts';

const EDGE_FRESH_SECONDS = 1;

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({ vars: { EDGE_FRESH_SECONDS: String(EDGE_FRESH_SECONDS) } });
});
afterAll(async () => {
  await edge?.close();
});

it('serves the stale copy when every origin is down, 503 without one, and nothing of a deleted file', async () => {
  const data = randomBlob(6000);
  const fid = await edge.upload(data, { name: 'keep.bin' });
  const deleted = await edge.upload(randomBlob(100));
  const neverRead = await edge.upload(randomBlob(100));

  const first = await edge.fetch(`/${fid}`);
  expect(first.headers.get('x-kelp-cache')).toBe('MISS');
  expect(first.headers.get('cache-control')).toBe(`public, max-age=${EDGE_FRESH_SECONDS}`);
  const etag = first.headers.get('etag');
  await bytes(first);
  expect((await edge.fetch(`/${deleted}`)).status).toBe(200);
  expect((await edge.fetch(`/${deleted}`, { method: 'DELETE' })).status).toBe(202);

  // Past EDGE_FRESH_SECONDS the copy must be confirmed by an origin before it is served.
  await sleep(EDGE_FRESH_SECONDS * 1000 + 300);
  for (const v of edge.volumes) await v.stop();

  const stale = await edge.fetch(`/${fid}`);
  expect(stale.status).toBe(200);
  expect(stale.headers.get('x-kelp-cache')).toBe('STALE');
  expect(stale.headers.get('etag')).toBe(etag);
  expect(await bytes(stale)).toEqual(data);
  const ranged = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=0-99' } });
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get('x-kelp-cache')).toBe('STALE');
  expect(await bytes(ranged)).toEqual(data.subarray(0, 100));

  for (const path of [`/${neverRead}`, `/${deleted}`]) {
    const res = await edge.fetch(path);
    expect(res.status, path).toBe(503);
    expect(res.headers.get('retry-after'), path).not.toBeNull();
    await bytes(res);
  }

  // Once the master counts the servers dead it answers the lookup with 404 (no live
  // holder of the volume): still an outage, still the stale copy.
  await waitFor(
    'the master to drop the dead volume servers',
    () => edge.master.topology.aliveNodes().length === 0,
  );
  const lookupsBefore = edge.lookups();
  const later = await edge.fetch(`/${fid}`);
  expect(edge.lookups()).toBeGreaterThan(lookupsBefore);
  expect(later.status).toBe(200);
  expect(later.headers.get('x-kelp-cache')).toBe('STALE');
  expect(await bytes(later)).toEqual(data);

  // And with the master gone as well.
  await edge.masterProxy.close();
  const noMaster = await edge.fetch(`/${fid}`);
  expect(noMaster.status).toBe(200);
  expect(noMaster.headers.get('x-kelp-cache')).toBe('STALE');
  expect(await bytes(noMaster)).toEqual(data);
});
