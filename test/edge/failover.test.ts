/**
 * Replica failover through the edge: a volume replicated on two volume
 * servers ("001") stays readable when one of them goes away, inside the same
 * request, and the dead location makes the edge ask the master afresh.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseFid } from '../../shared/fid.ts';
import { bytes, type EdgeCluster, startEdge } from './harness.ts';

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({ volumes: 2 });
});
afterAll(async () => {
  await edge?.close();
});

it('reads uncached files from the other replica when one is down, then looks the volume up again', async () => {
  const { fids, blobs } = await edge.uploadBatch(4, 5000, { replication: '001' });
  const volumeId = parseFid(fids[0]!).volumeId;
  expect((await edge.lookup(volumeId)).locations).toHaveLength(2);

  // The replica that served the first read is the one the edge tries first: stop it.
  const first = await edge.fetch(`/${fids[0]}`);
  expect(first.status).toBe(200);
  expect(await bytes(first)).toEqual(blobs[0]);
  expect(edge.lookups()).toBe(1);
  const [a, b] = edge.volumes as [(typeof edge.volumes)[0], (typeof edge.volumes)[0]];
  const [dead, alive] = a.proxy.count > 0 ? [a, b] : [b, a];
  expect(dead.proxy.count).toBe(1);
  expect(alive.proxy.count).toBe(0);
  await dead.stop();

  // Within one request: the cached lookup still lists the dead server first; the read
  // fails over to the live one without asking the master.
  const second = await edge.fetch(`/${fids[1]}`);
  expect(second.status).toBe(200);
  expect(second.headers.get('x-kelp-cache')).toBe('MISS');
  expect(await bytes(second)).toEqual(blobs[1]);
  expect(alive.proxy.count).toBe(1);
  expect(edge.lookups()).toBe(1);

  // The failure dropped the cached lookup: the next read asks the master again.
  const third = await edge.fetch(`/${fids[2]}`);
  expect(third.status).toBe(200);
  expect(await bytes(third)).toEqual(blobs[2]);
  expect(edge.lookups()).toBe(2);

  // Cached objects do not need either.
  const before = edge.originRequests();
  const again = await edge.fetch(`/${fids[0]}`);
  expect(again.headers.get('x-kelp-cache')).toBe('HIT');
  expect(await bytes(again)).toEqual(blobs[0]);
  expect(edge.originRequests()).toBe(before);
});
