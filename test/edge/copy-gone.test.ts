/**
 * A miss stores the origin's answer and serves it back from the Cache API (so
 * Range and conditionals work alike on hits and misses). When the copy is gone
 * before it is read back, the edge answers from the origin again, uncached:
 * never a 503. Under load this happened in the coherence test: a purge event
 * (a delete at a volume server) deleted the copy a concurrent miss had just
 * stored, and the reader of a deleted blob got 503 "cache refused the object"
 * instead of its 404.
 *
 * That interleaving cannot be produced on demand (the gap between the put and
 * the match is a few microseconds inside the Worker), so the test produces
 * the state it leaves behind with a real part: Miniflare's Cache API turned
 * off (`cacheAPI: false`), which accepts every put and matches nothing.
 */
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  bundleWorker,
  bytes,
  type EdgeCluster,
  LOOPBACK_ORIGINS,
  randomBlob,
  startEdge,
  startWorker,
  tempDir,
  WORKER_ENTRY,
} from './harness.ts';

let origins: EdgeCluster;
let noCopies: Miniflare;

beforeAll(async () => {
  origins = await startEdge();
  const script = await bundleWorker(WORKER_ENTRY, tempDir());
  noCopies = startWorker(
    script,
    { MASTER_URL: `http://${origins.masterProxy.address}`, ORIGIN_ALLOW: LOOPBACK_ORIGINS },
    undefined,
    undefined,
    undefined,
    false,
  );
  await noCopies.ready;
}, 60_000);

afterAll(async () => {
  await noCopies?.dispose();
  await origins?.close();
});

const read = async (path: string, init?: RequestInit) =>
  (await noCopies.dispatchFetch(`http://edge.test${path}`, init as never)) as unknown as Response;

it('serves the origin answer, uncached, when the stored copy is gone before it is read back', async () => {
  const data = randomBlob(5000);
  const fid = await origins.upload(data, { name: 'g.bin' });
  const seen = origins.volumes[0]!.proxy.countOf(`/${fid}`);

  const whole = await read(`/${fid}`);
  expect([whole.status, whole.headers.get('x-kelp-cache')]).toEqual([200, 'BYPASS']);
  expect(await bytes(whole)).toEqual(data);
  // The fetch whose copy went, and the one answered.
  expect(origins.volumes[0]!.proxy.countOf(`/${fid}`) - seen).toBe(2);

  const ranged = await read(`/${fid}`, { headers: { range: 'bytes=100-199' } });
  expect([ranged.status, ranged.headers.get('x-kelp-cache')]).toEqual([206, 'BYPASS']);
  expect(await bytes(ranged)).toEqual(data.subarray(100, 200));

  // Deleted: the reader gets the origin's 404, not an outage.
  expect((await fetch(`http://${origins.volumes[0]!.url}/${fid}`, { method: 'DELETE' })).status).toBe(202);
  const gone = await read(`/${fid}`);
  expect(gone.status).toBe(404);
  await bytes(gone);
}, 30_000);
