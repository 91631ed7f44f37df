/**
 * The Worker's purge endpoint (POST /_kelp/purge): only with the PURGE_KEY
 * bearer token, off without one; a fid purges every cached variant in this
 * colo; a volume voids the copies of all its files; malformed bodies are 400
 * and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFid } from '../../shared/fid.ts';
import { bytes, type EdgeCluster, randomBlob, startEdge } from './harness.ts';

const KEY = 'edge-purge-key';
let edge: EdgeCluster;
let off: EdgeCluster;

beforeAll(async () => {
  [edge, off] = await Promise.all([startEdge({ vars: { PURGE_KEY: KEY } }), startEdge()]);
}, 60_000);
afterAll(async () => {
  await edge?.close();
  await off?.close();
});

function purge(cluster: EdgeCluster, body: unknown, token: string | null = KEY): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return cluster.fetch('/_kelp/purge', { method: 'POST', headers, body: JSON.stringify(body) });
}

async function cached(cluster: EdgeCluster, paths: string[]): Promise<void> {
  for (const p of paths) {
    await bytes(await cluster.fetch(p));
    const again = await cluster.fetch(p);
    expect(again.headers.get('x-kelp-cache'), p).toBe('HIT');
    await bytes(again);
  }
}

describe('POST /_kelp/purge', () => {
  it('needs the bearer token (401), and is off without PURGE_KEY (403); neither purges anything', async () => {
    const fid = await edge.upload(randomBlob(100), { name: 'a.txt', mime: 'text/plain' });
    await cached(edge, [`/${fid}`]);
    for (const token of [null, 'wrong', `${KEY}x`]) {
      const res = await purge(edge, { fids: [fid] }, token);
      expect(res.status, String(token)).toBe(401);
      await bytes(res);
    }
    const disabled = await purge(off, { fids: [fid] });
    expect(disabled.status).toBe(403);
    expect(((await disabled.json()) as { error: string }).error).toMatch(/PURGE_KEY/);
    expect((await edge.fetch(`/${fid}`)).headers.get('x-kelp-cache')).toBe('HIT');
  });

  it('purges every variant of each fid, and says how many entries went', async () => {
    const fid = await edge.upload(randomBlob(300), { name: 'b.txt', mime: 'text/plain' });
    const paths = [`/${fid}`, `/${fid}.txt`, `/${fid.replace(',', '/')}/b.txt`, `/${fid}?dl=true`];
    await cached(edge, paths);
    const res = await purge(edge, { fids: [fid] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ fids: 1, volumes: 0, keys: paths.length });
    for (const p of paths) {
      const after = await edge.fetch(p);
      expect(after.headers.get('x-kelp-cache'), p).toBe('MISS');
      await bytes(after);
    }
  });

  it('voids the copies of a purged volume in this isolate at once', async () => {
    const fid = await edge.upload(randomBlob(300));
    await cached(edge, [`/${fid}`]);
    const res = await purge(edge, { volumes: [parseFid(fid).volumeId] });
    expect(await res.json()).toEqual({ fids: 0, volumes: 1, keys: 0 });
    // Still at the origin, so the edge confirms it there (304) instead of serving it unasked.
    const after = await edge.fetch(`/${fid}`);
    expect(after.status).toBe(200);
    expect(after.headers.get('x-kelp-cache')).not.toBe('HIT');
    await bytes(after);
  });

  it('answers malformed bodies with 400 and purges nothing', async () => {
    const fid = await edge.upload(randomBlob(100));
    await cached(edge, [`/${fid}`]);
    for (const body of [
      { fids: 'x' },
      { fids: ['not-a-fid'] },
      { volumes: ['abc'] },
      { fids: Array.from({ length: 101 }, () => fid) },
    ]) {
      const res = await purge(edge, body);
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(400);
      await bytes(res);
    }
    const notJson = await edge.fetch('/_kelp/purge', {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: '{',
    });
    expect(notJson.status).toBe(400);
    expect((await edge.fetch(`/${fid}`)).headers.get('x-kelp-cache')).toBe('HIT');
  });
});
