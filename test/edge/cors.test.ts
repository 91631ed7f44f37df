/**
 * Cross-origin reads through the edge Worker in workerd (CORS_ALLOW_ORIGINS,
 * edge/cors.ts), against a real master and volume server: an allowed origin's
 * script can read a blob on a miss, a hit, a Range, a HEAD and a 404, and its
 * preflight is answered at the edge; another origin gets nothing; unset, the
 * edge answers as it did before CORS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes, type EdgeCluster, type ExtraWorker, randomBlob, startEdge } from './harness.ts';

const APP = 'https://app.example';
const EVIL = 'https://evil.example';

let edge: EdgeCluster;
let open: ExtraWorker;
let unset: ExtraWorker;
let broken: ExtraWorker;

beforeAll(async () => {
  edge = await startEdge({ vars: { CORS_ALLOW_ORIGINS: `${APP},https://*.cdn.example` } });
  [open, unset, broken] = await Promise.all([
    edge.worker({ CORS_ALLOW_ORIGINS: '*' }),
    edge.worker({}),
    edge.worker({ CORS_ALLOW_ORIGINS: 'app.example' }),
  ]);
});
afterAll(async () => {
  await Promise.all([open?.close(), unset?.close(), broken?.close()]);
  await edge?.close();
});

describe('an origin on the list', () => {
  it('reads a blob on a miss and on a hit, byte for byte, with the headers it needs exposed', async () => {
    const blob = randomBlob(3000);
    const fid = await edge.upload(blob, { name: 'a.bin' });
    for (const state of ['MISS', 'HIT']) {
      const res = await edge.fetch(`/${fid}`, { headers: { origin: APP } });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-kelp-cache')).toBe(state);
      expect(res.headers.get('access-control-allow-origin')).toBe(APP);
      expect(res.headers.get('access-control-expose-headers')).toMatch(/ETag.*X-Kelp-Cache/);
      expect(res.headers.get('vary')).toContain('Origin');
      expect(await bytes(res)).toEqual(blob);
    }
  });

  it('gets CORS on a Range, a HEAD, a 304, a 404 and a 412 too (a script must see the status)', async () => {
    const blob = randomBlob(2000);
    const fid = await edge.upload(blob);
    const ranged = await edge.fetch(`/${fid}`, { headers: { origin: APP, range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(await bytes(ranged)).toEqual(blob.slice(10, 20));
    const head = await edge.fetch(`/${fid}`, { method: 'HEAD', headers: { origin: APP } });
    const etag = head.headers.get('etag')!;
    const notModified = await edge.fetch(`/${fid}`, { headers: { origin: APP, 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    const missing = await edge.fetch(`/${fid.split(',')[0]},ffffffff01234567`, { headers: { origin: APP } });
    expect(missing.status).toBe(404);
    const failed = await edge.fetch(`/${fid}`, { headers: { origin: APP, 'if-match': '"another"' } });
    expect(failed.status).toBe(412);
    for (const res of [ranged, head, notModified, missing, failed]) {
      expect(res.headers.get('access-control-allow-origin')).toBe(APP);
      if (!res.bodyUsed) await res.body?.cancel();
    }
  });

  it('matches a host pattern: any subdomain of cdn.example, not cdn.example itself', async () => {
    const fid = await edge.upload(randomBlob(100));
    const sub = await edge.fetch(`/${fid}`, { headers: { origin: 'https://img.cdn.example' } });
    expect(sub.headers.get('access-control-allow-origin')).toBe('https://img.cdn.example');
    const bare = await edge.fetch(`/${fid}`, { headers: { origin: 'https://cdn.example' } });
    expect(bare.headers.get('access-control-allow-origin')).toBeNull();
    await Promise.all([sub.body?.cancel(), bare.body?.cancel()]);
  });

  it('has a preflight for a ranged, conditional read answered at the edge, without asking the origin', async () => {
    const fid = await edge.upload(randomBlob(100));
    const before = edge.originRequests();
    const res = await edge.fetch(`/${fid}`, {
      method: 'OPTIONS',
      headers: {
        origin: APP,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'range,if-none-match',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, HEAD');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Range/);
    expect(edge.originRequests()).toBe(before);
  });
});

describe('an origin not on the list', () => {
  it('gets the blob as any non-browser client would, but no permission to read it from script', async () => {
    const blob = randomBlob(500);
    const fid = await edge.upload(blob);
    const res = await edge.fetch(`/${fid}`, { headers: { origin: EVIL } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('vary')).toContain('Origin');
    expect(await bytes(res)).toEqual(blob);
  });

  it('is refused at preflight, and so is a write from a listed origin', async () => {
    for (const [origin, method] of [
      [EVIL, 'GET'],
      [APP, 'POST'],
      [APP, 'DELETE'],
    ] as const) {
      const res = await edge.fetch('/submit', {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': method },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
  });
});

describe('CORS_ALLOW_ORIGINS=*', () => {
  it('lets every origin read, with one answer for all (no Vary: Origin)', async () => {
    const blob = randomBlob(700);
    const fid = await edge.upload(blob);
    for (const origin of [EVIL, undefined]) {
      const res = await open.fetch(`/${fid}`, origin ? { headers: { origin } } : {});
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('vary') ?? '').not.toContain('Origin');
      expect(await bytes(res)).toEqual(blob);
    }
  });
});

describe('CORS_ALLOW_ORIGINS unset or malformed', () => {
  it('unset: no CORS header on any answer, and OPTIONS is not served', async () => {
    const fid = await edge.upload(randomBlob(100));
    const res = await unset.fetch(`/${fid}`, { headers: { origin: APP } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('vary')).toBeNull();
    await res.body?.cancel();
    const pre = await unset.fetch(`/${fid}`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'GET' },
    });
    expect(pre.status).toBe(405);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('malformed: reads and preflights answer with the configuration error, naming the variable', async () => {
    const fid = await edge.upload(randomBlob(100));
    const read = await broken.fetch(`/${fid}`, { headers: { origin: APP } });
    const pre = await broken.fetch(`/${fid}`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'GET' },
    });
    for (const res of [read, pre]) {
      expect(res.status).toBe(500);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(((await res.json()) as { error: string }).error).toContain(
        'CORS_ALLOW_ORIGINS entry "app.example"',
      );
    }
  });
});
