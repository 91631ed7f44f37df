/**
 * The first report: a blob deleted at the volume server kept being
 * served as a HIT after the edge was stopped and started again (its Cache API
 * contents persist, as wrangler dev's do). A copy's freshness is stamped in
 * the copy itself, so a restarted edge revalidates it like any other: the
 * deleted blob is 404, the kept one is confirmed (304) and served.
 */
import type { Miniflare } from 'miniflare';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  bundleWorker,
  bytes,
  type EdgeCluster,
  LOOPBACK_ORIGINS,
  randomBlob,
  sleep,
  startEdge,
  startWorker,
  tempDir,
  WORKER_ENTRY,
} from './harness.ts';

/**
 * Short, so the test waits little past it; not shorter, because each MISS -> HIT and REVALIDATED ->
 * HIT pair below must be answered within one period on a loaded machine (CI: 2 shared cores).
 */
const FRESH_SECONDS = 3;
let origins: EdgeCluster;
const workers: Miniflare[] = [];

beforeAll(async () => {
  origins = await startEdge();
}, 60_000);
afterAll(async () => {
  for (const w of workers) await w.dispose().catch(() => {});
  await origins?.close();
});

it('a copy kept across an edge restart is revalidated: deleted meanwhile, it is 404', async () => {
  const persist = tempDir('kelp-edge-persist-');
  const script = await bundleWorker(WORKER_ENTRY, tempDir());
  const vars = {
    MASTER_URL: `http://${origins.masterProxy.address}`,
    ORIGIN_ALLOW: LOOPBACK_ORIGINS,
    EDGE_FRESH_SECONDS: String(FRESH_SECONDS),
  };
  const read = async (mf: Miniflare, path: string) => {
    const res = (await mf.dispatchFetch(`http://edge.test${path}`)) as unknown as Response;
    return { status: res.status, cache: res.headers.get('x-kelp-cache'), body: await bytes(res) };
  };
  const kept = randomBlob(400);
  const keptFid = await origins.upload(kept, { name: 'k.jpg', mime: 'image/jpeg' });
  const doomed = await origins.upload(randomBlob(400), { name: 'd.jpg', mime: 'image/jpeg' });

  const first = startWorker(script, vars, undefined, persist);
  workers.push(first);
  for (const fid of [keptFid, doomed]) {
    expect((await read(first, `/${fid}`)).cache).toBe('MISS');
    expect((await read(first, `/${fid}`)).cache).toBe('HIT');
  }
  await first.dispose();

  // Deleted while the edge is down: it hears nothing of it.
  expect((await fetch(`http://${origins.volumes[0]!.url}/${doomed}`, { method: 'DELETE' })).status).toBe(202);
  await sleep(FRESH_SECONDS * 1000 + 200);

  const second = startWorker(script, vars, undefined, persist);
  workers.push(second);
  const gone = await read(second, `/${doomed}`);
  expect(gone.status).toBe(404);
  const still = await read(second, `/${keptFid}`);
  expect([still.status, still.cache]).toEqual([200, 'REVALIDATED']);
  expect(still.body).toEqual(kept);
  expect((await read(second, `/${keptFid}`)).cache).toBe('HIT');
}, 30_000);
