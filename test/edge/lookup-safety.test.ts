/**
 * Lookup safety (issue 11 item 4): the edge fetches only from origins that
 * ORIGIN_ALLOW names (scheme, host pattern, port), refuses to fetch at all
 * without it and says why, and drops a volume's cached lookup when the volume
 * has moved, finding its new place within the same request.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { volumePath } from '../../origin/volume/files.ts';
import type { AssignResponse } from '../../shared/api.ts';
import { parseFid } from '../../shared/fid.ts';
import { bytes, type EdgeCluster, randomBlob, startEdge, tempDir, waitFor } from './harness.ts';

let edge: EdgeCluster;
let unset: EdgeCluster;

beforeAll(async () => {
  [edge, unset] = await Promise.all([startEdge({ volumes: 1 }), startEdge({ vars: { ORIGIN_ALLOW: '' } })]);
}, 60_000);
afterAll(async () => {
  await edge?.close();
  await unset?.close();
});

describe('ORIGIN_ALLOW', () => {
  it('unset: no origin is fetched, and the error says which var to set', async () => {
    const fid = await unset.upload(randomBlob(100));
    const volumeRequests = () => unset.volumes.reduce((n, v) => n + v.proxy.count, 0);
    const res = await unset.fetch(`/${fid}`);
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: string; code: string };
    expect(body.error).toMatch(/ORIGIN_ALLOW is not set/);
    expect(volumeRequests()).toBe(0);
  });

  it('refuses a lookup answer naming an origin outside the list (502), without a request to it', async () => {
    // A real volume server that advertises itself as localhost:<port>: ORIGIN_ALLOW names 127.0.0.1 only.
    const outside = await edge.addVolume(tempDir(), 'localhost');
    await waitFor('the new server to join', () => edge.master.topology.aliveNodes().length === 2);
    const res = await fetch(
      `http://${edge.master.address}/dir/assign?dataNode=${encodeURIComponent(outside.url)}`,
    );
    const assigned = (await res.json()) as AssignResponse;
    expect(assigned.publicUrl).toBe(`localhost:${outside.proxy.port}`);
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(randomBlob(100))]), 'x.bin');
    expect(
      (await fetch(`http://${assigned.url}/${assigned.fid}`, { method: 'POST', body: form })).status,
    ).toBe(201);

    const lookups = edge.lookups();
    const refused = await edge.fetch(`/${assigned.fid}`);
    expect(refused.status).toBe(502);
    const body = (await refused.json()) as { error: string; code: string };
    expect(body.code).toBe('upstream_failed');
    expect(body.error).toContain(`http://localhost:${outside.proxy.port}`);
    expect(body.error).toContain('ORIGIN_ALLOW');
    expect(outside.proxy.count).toBe(0);
    // The refused answer is not kept: the next request asks the master again.
    await bytes(await edge.fetch(`/${assigned.fid}`));
    expect(edge.lookups()).toBeGreaterThan(lookups + 1);
    expect(outside.proxy.count).toBe(0);
    await outside.stop();
    await waitFor('the master to drop it', () => edge.master.topology.aliveNodes().length === 1, 15_000);
  }, 30_000);
});

describe('a volume that moved', () => {
  it('is looked up again within the request that finds it gone, and read from its new place', async () => {
    const a = edge.volumes[0]!;
    const res = await fetch(
      `http://${edge.master.address}/dir/assign?collection=mv&count=2&dataNode=${encodeURIComponent(a.url)}`,
    );
    const assigned = (await res.json()) as AssignResponse;
    const fids = [assigned.fid, `${assigned.fid}_1`];
    const blobs = [randomBlob(800), randomBlob(900)];
    for (let i = 0; i < 2; i++) {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(blobs[i]!)]), `m${i}.bin`);
      expect((await fetch(`http://${a.url}/${fids[i]}`, { method: 'POST', body: form })).status).toBe(201);
    }
    const volumeId = parseFid(assigned.fid).volumeId;
    // The edge reads one file: the volume's lookup (on A) is now cached.
    const first = await edge.fetch(`/${fids[0]}`);
    expect(await bytes(first)).toEqual(blobs[0]);

    // The move: A's files copied to a new server B, then the volume deleted on A.
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    const from = a.server.store.get(volumeId).config.dir;
    for (const ext of ['dat', 'idx', 'vif']) {
      const src = volumePath(from, 'mv', volumeId, ext);
      if (existsSync(src)) copyFileSync(src, join(dir, `mv_${volumeId}.${ext}`));
    }
    const b = await edge.addVolume(dir);
    await waitFor('B to report the volume', async () => (await edge.lookup(volumeId)).locations.length === 2);
    const del = await fetch(`http://${a.url}/admin/delete_collection?collection=mv`, { method: 'POST' });
    expect(del.status).toBe(200);
    await waitFor('the master to know it on B only', async () => {
      const { locations } = await edge.lookup(volumeId);
      return locations.length === 1 && locations[0]!.url === b.url;
    });

    const lookups = edge.lookups();
    const aSeen = a.proxy.count;
    const moved = await edge.fetch(`/${fids[1]}`);
    expect(moved.status).toBe(200);
    expect(await bytes(moved)).toEqual(blobs[1]);
    // One try at the old place, one new lookup, one read at the new place.
    expect(a.proxy.count).toBe(aSeen + 1);
    expect(edge.lookups()).toBe(lookups + 1);
    expect(b.proxy.seen.filter((s) => s.path === `/${fids[1]}`)).toHaveLength(1);
  }, 30_000);
});
