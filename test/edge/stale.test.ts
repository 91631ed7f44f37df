/**
 * Origin outage: when no volume server answers, the edge serves its copy
 * (`X-Kelp-Cache: STALE`) once the copy is past its fresh period, and 503 when
 * it has none; but never a copy of a blob it has seen deleted or purged (by
 * an edge delete, a purge event from a volume server, a 404 on revalidation,
 * or a collection delete), nor one past its TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssignResponse } from '../../shared/api.ts';
import { bytes, type EdgeCluster, randomBlob, sleep, startEdge, waitFor } from './harness.ts';

const EDGE_FRESH_SECONDS = 1;

let edge: EdgeCluster;
let evented: EdgeCluster;

beforeAll(async () => {
  // Open development edges (no WRITE_KEYS): the deletes below need no key.
  [edge, evented] = await Promise.all([
    startEdge({ vars: { EDGE_FRESH_SECONDS: String(EDGE_FRESH_SECONDS), PUBLIC_WRITES: 'true' } }),
    startEdge({
      vars: { EDGE_FRESH_SECONDS: String(EDGE_FRESH_SECONDS), PUBLIC_WRITES: 'true' },
      purgeEvents: true,
      maxVolumes: 32,
    }),
  ]);
}, 60_000);
afterAll(async () => {
  await edge?.close();
  await evented?.close();
});

/** Assign (with query `q`) and upload straight to the volume server, as any client may. */
async function uploadWith(cluster: EdgeCluster, data: Uint8Array, q: string, put = ''): Promise<string> {
  const res = await fetch(`http://${cluster.master.address}/dir/assign?${q}`);
  const { fid, url } = (await res.json()) as AssignResponse;
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)]), 'b.bin');
  expect((await fetch(`http://${url}/${fid}${put}`, { method: 'POST', body: form })).status).toBe(201);
  return fid;
}

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
  // Deleted behind the edge's back (no purge events in this cluster): learnt by revalidation below.
  const learnt = await edge.upload(randomBlob(100));
  expect((await edge.fetch(`/${learnt}`)).status).toBe(200);
  expect((await fetch(`http://${edge.volumes[0]!.url}/${learnt}`, { method: 'DELETE' })).status).toBe(202);

  // Past EDGE_FRESH_SECONDS the copy must be confirmed by an origin before it is served.
  await sleep(EDGE_FRESH_SECONDS * 1000 + 300);
  const gone = await edge.fetch(`/${learnt}`);
  expect(gone.status).toBe(404);
  await bytes(gone);
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

  // What the edge learnt by revalidation stays learnt: its cached 404, or 503 once that is old; never the bytes.
  const stillGone = await edge.fetch(`/${learnt}`);
  expect([404, 503]).toContain(stillGone.status);
  await bytes(stillGone);
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

describe('never resurrects what the edge saw go', () => {
  it('deleted at the volume server, its collection deleted, or past its TTL: 503 or 404 in an outage, never the copy', async () => {
    const kept = randomBlob(500);
    const keptFid = await uploadWith(evented, kept, '');
    const deleted = await uploadWith(evented, randomBlob(500), '');
    const inCollection = await uploadWith(evented, randomBlob(500), 'collection=doomed');
    // Expires about 8 s from now (written "52 s ago" with a one-minute TTL): time for the uploads and
    // reads below to cache it before it expires, on a loaded machine too.
    const ts = Math.floor(Date.now() / 1000) - 52;
    const ttl = await uploadWith(evented, randomBlob(500), 'ttl=1m', `?ttl=1m&ts=${ts}`);
    for (const fid of [keptFid, deleted, inCollection, ttl]) {
      const res = await evented.fetch(`/${fid}`);
      expect(res.status, fid).toBe(200);
      await bytes(res);
    }
    // Changed behind the edge's back; no read follows, so only the purge events can tell it.
    expect((await fetch(`http://${evented.volumes[0]!.url}/${deleted}`, { method: 'DELETE' })).status).toBe(
      202,
    );
    const col = await fetch(`http://${evented.master.address}/col/delete?collection=doomed`, {
      method: 'POST',
    });
    expect(col.status).toBe(204);
    expect(await evented.volumes[0]!.server.edgePurge!.drained(5000)).toBe(true);

    // Past the fresh period and the TTL, every origin goes away.
    await sleep(Math.max(EDGE_FRESH_SECONDS * 1000 + 300, (ts + 60) * 1000 - Date.now() + 300));
    for (const v of evented.volumes) await v.stop();

    const stale = await evented.fetch(`/${keptFid}`);
    expect([stale.status, stale.headers.get('x-kelp-cache')]).toEqual([200, 'STALE']);
    expect(await bytes(stale)).toEqual(kept);
    for (const fid of [deleted, inCollection, ttl]) {
      const res = await evented.fetch(`/${fid}`);
      expect([404, 503], fid).toContain(res.status);
      expect(res.headers.get('x-kelp-cache'), fid).not.toBe('STALE');
      await bytes(res);
    }
  }, 30_000);
});
