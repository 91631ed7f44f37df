/**
 * TTL blobs at the edge (issue 11 item 2): a copy is never kept, nor given to
 * browsers, past the blob's remaining TTL (the origin's Expires), and an
 * expired blob is 404 at the edge at once, even while its copy would still be
 * fresh (here EDGE_FRESH_SECONDS is far longer than the TTL left).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AssignResponse } from '../../shared/api.ts';
import { bytes, type EdgeCluster, randomBlob, sleep, startEdge } from './harness.ts';

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({ vars: { EDGE_FRESH_SECONDS: '30' } });
}, 60_000);
afterAll(async () => {
  await edge?.close();
});

/*
 * Timed against the clock, and checked so that a loaded machine (CI: 2 shared
 * cores) cannot fake a failure: the Worker handles a read after it was sent and
 * before it was answered, so a bound on its lifetime is checked against the send
 * time, and "still served before expiry" only for a read answered before it.
 */
it('caches a TTL blob no longer than its TTL, tells browsers no more, and answers 404 from the instant it expires', async () => {
  // Written "50 s ago" with a one-minute TTL: about 10 s left, for setup on a slow machine.
  const ts = Math.floor(Date.now() / 1000) - 50;
  const expires = (ts + 60) * 1000;
  const assigned = (await (
    await fetch(`http://${edge.master.address}/dir/assign?ttl=1m`)
  ).json()) as AssignResponse;
  const data = randomBlob(700);
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(data)]), 't.bin');
  const put = await fetch(`http://${assigned.url}/${assigned.fid}?ttl=1m&ts=${ts}`, {
    method: 'POST',
    body: form,
  });
  expect(put.status).toBe(201);
  const path = `/${assigned.fid}`;

  const firstSent = Date.now();
  const first = await edge.fetch(path);
  expect(first.headers.get('x-kelp-cache')).toBe('MISS');
  expect(first.headers.get('expires')).toBe(new Date(expires).toUTCString());
  const maxAge = Number(/max-age=(\d+)/.exec(first.headers.get('cache-control') ?? '')?.[1]);
  expect(maxAge).toBeLessThanOrEqual(Math.ceil((expires - firstSent) / 1000));
  expect(maxAge).toBeGreaterThan(0);
  expect(await bytes(first)).toEqual(data);

  // The stored copy's own lifetime ends with the TTL (the Cache API drops it then).
  const stored = await (await edge.mf.getCaches()).default.match(
    `https://kelp-blob.internal/${assigned.fid}`,
  );
  const storedAge = Number(/max-age=(\d+)/.exec(stored?.headers.get('cache-control') ?? '')?.[1]);
  await stored?.arrayBuffer();
  expect(storedAge).toBeGreaterThan(0);
  // Stored no earlier than the read was sent, so its lifetime ends by the expiry.
  expect(firstSent + storedAge * 1000).toBeLessThanOrEqual(expires);

  // The copy is kept whole seconds (the Cache API's unit), rounded down: a HIT until a second before
  // (the Cache API drops it somewhere in the last second; a read answered before then must be a HIT).
  await sleep(expires - 1300 - Date.now());
  const before = await edge.fetch(path);
  await bytes(before);
  if (Date.now() < expires - 1000) {
    expect([before.status, before.headers.get('x-kelp-cache')]).toEqual([200, 'HIT']);
  }
  // In its last second it is served from the origin, uncached (BYPASS); still the blob, never early 404.
  await sleep(expires - 300 - Date.now());
  const last = await edge.fetch(path);
  await bytes(last);
  if (Date.now() < expires) expect(last.status).toBe(200);

  await sleep(expires + 20 - Date.now());
  const after = await edge.fetch(path);
  expect(after.status).toBe(404);
  await bytes(after);
  // What the Cache API holds now is the 404 the miss stored, not the blob.
  const now = await (await edge.mf.getCaches()).default.match(`https://kelp-blob.internal/${assigned.fid}`);
  await now?.arrayBuffer();
  expect(now?.status ?? 404).toBe(404);
}, 30_000);
