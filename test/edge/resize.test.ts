/**
 * Image variants through the edge Worker (issue 6): cached under their
 * canonical key, HITs byte-identical, bad or unsigned params refused before
 * any origin call, purged with the original.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signResize } from '../../shared/resize-signature.ts';
import { bytes, type EdgeCluster, startEdge, TEST_WRITE_KEY, WRITE_AUTH } from './harness.ts';

const KEY = 'edge-secret';
let edge: EdgeCluster;
let signed: EdgeCluster;

beforeAll(async () => {
  [edge, signed] = await Promise.all([
    startEdge({
      vars: {
        WRITE_KEYS: TEST_WRITE_KEY,
        MAX_RESIZE_SIDE: '1000',
        RESIZE_PRESETS: JSON.stringify({ thumb: { width: 40, height: 40, mode: 'fill' } }),
      },
    }),
    startEdge({ vars: { RESIZE_SIGNING_KEY: KEY } }),
  ]);
}, 60_000);
afterAll(async () => {
  await edge?.close();
  await signed?.close();
});

async function jpeg(width: number, height: number): Promise<Uint8Array> {
  return new Uint8Array(
    await sharp({ create: { width, height, channels: 3, background: { r: 10, g: 120, b: 200 } } })
      .jpeg()
      .toBuffer(),
  );
}

async function during(cluster: EdgeCluster, fn: () => Promise<void>): Promise<number> {
  const before = cluster.originRequests();
  await fn();
  return cluster.originRequests() - before;
}

async function read(cluster: EdgeCluster, path: string, headers: Record<string, string> = {}) {
  const res = await cluster.fetch(path, { headers });
  return { res, status: res.status, cache: res.headers.get('x-kelp-cache'), body: await bytes(res) };
}

describe('variants at the edge', () => {
  it('a repeated variant is a HIT with identical bytes and no origin request', async () => {
    const fid = await edge.upload(await jpeg(400, 300), { name: 'p.jpg', mime: 'image/jpeg' });
    const first = await read(edge, `/${fid}.jpg?width=200&height=200`);
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    const meta = await sharp(first.body).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([200, 200, 'jpeg']);
    let second!: Awaited<ReturnType<typeof read>>;
    expect(
      await during(edge, async () => {
        second = await read(edge, `/${fid}.jpg?width=200&height=200`);
      }),
    ).toBe(0);
    expect(second.cache).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(second.res.headers.get('etag')).toBe(first.res.headers.get('etag'));
    // The original is a cache entry of its own.
    const original = await read(edge, `/${fid}.jpg`);
    expect(original.cache).toBe('MISS');
    expect(original.body.length).not.toBe(first.body.length);
  });

  it('params in any order, with empty values, share one cache entry', async () => {
    const fid = await edge.upload(await jpeg(400, 300), { name: 'q.jpg', mime: 'image/jpeg' });
    const a = await read(edge, `/${fid}?width=200&height=200`);
    expect(a.cache).toBe('MISS');
    const b = await read(edge, `/${fid}?height=200&width=200`);
    expect(b.cache).toBe('HIT');
    expect(b.body).toEqual(a.body);
    const c = await read(edge, `/${fid}?width=200&height=200&mode=&quality=`);
    expect(c.cache).toBe('HIT');
    // Unrelated query params (cache busters) are not part of the variant.
    const d = await read(edge, `/${fid}?height=200&width=200&sig=`);
    expect([d.status, d.cache]).toEqual([200, 'HIT']);
  });

  it('rejects over-limit and malformed params with no origin request', async () => {
    const fid = await edge.upload(await jpeg(100, 100), { name: 'r.jpg', mime: 'image/jpeg' });
    const n = await during(edge, async () => {
      for (const q of [
        'width=1001',
        'height=99999',
        'width=abc',
        'mode=stretch&width=5',
        'preset=nope',
        'format=bmp',
      ]) {
        const res = await read(edge, `/${fid}?${q}`);
        expect({ q, status: res.status }).toEqual({ q, status: 400 });
      }
    });
    expect(n).toBe(0);
  });

  it('cannot be made to cache another variant under a key by params smuggled in sig', async () => {
    const fid = await edge.upload(await jpeg(400, 300), { name: 'w.jpg', mime: 'image/jpeg' });
    const smuggled = await read(edge, `/${fid}?width=100&sig=x%26height%3D5`);
    expect(smuggled.status).toBe(200);
    const plain = await read(edge, `/${fid}?width=100`);
    expect(plain.cache).toBe('HIT');
    const meta = await sharp(plain.body).metadata();
    expect([meta.width, meta.height]).toEqual([100, 75]);
  });

  it('serves a preset and caches it', async () => {
    const fid = await edge.upload(await jpeg(300, 200), { name: 's.jpg', mime: 'image/jpeg' });
    const a = await read(edge, `/${fid}?preset=thumb`);
    expect(a.status).toBe(200);
    const meta = await sharp(a.body).metadata();
    expect([meta.width, meta.height]).toEqual([40, 40]);
    expect((await read(edge, `/${fid}?preset=thumb`)).cache).toBe('HIT');
  });

  it('format=auto is cached per negotiated format', async () => {
    const fid = await edge.upload(await jpeg(300, 200), { name: 't.jpg', mime: 'image/jpeg' });
    const webp = await read(edge, `/${fid}?width=100&format=auto`, { accept: 'image/webp,*/*' });
    expect(webp.status).toBe(200);
    expect(webp.res.headers.get('content-type')).toBe('image/webp');
    expect((await sharp(webp.body).metadata()).format).toBe('webp');
    const plain = await read(edge, `/${fid}?width=100&format=auto`, { accept: '*/*' });
    expect(plain.res.headers.get('content-type')).toBe('image/jpeg');
    expect(plain.cache).toBe('MISS');
    const webp2 = await read(edge, `/${fid}?width=100&format=auto`, { accept: 'image/webp' });
    expect([webp2.cache, webp2.res.headers.get('content-type')]).toEqual(['HIT', 'image/webp']);
    expect(webp2.body).toEqual(webp.body);
    // Downstream caches (browsers included) must key it by Accept too, and never keep it as immutable.
    for (const r of [webp, plain, webp2]) {
      expect(r.res.headers.get('vary')).toBe('Accept');
      expect(r.res.headers.get('cache-control')).toBe('public, max-age=5');
    }
    // A fixed format does not vary.
    expect((await read(edge, `/${fid}?width=100&format=webp`)).res.headers.get('vary')).toBeNull();
  });

  it('a delete purges the variants', async () => {
    const fid = await edge.upload(await jpeg(300, 200), { name: 'u.jpg', mime: 'image/jpeg' });
    const paths = [`/${fid}?width=100`, `/${fid}?preset=thumb`, `/${fid}`];
    for (const p of paths) {
      expect((await read(edge, p)).cache, p).toBe('MISS');
      expect((await read(edge, p)).cache, p).toBe('HIT');
    }
    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(202);
    await bytes(del);
    for (const p of paths) {
      const after = await read(edge, p);
      expect([after.status, after.cache], p).toEqual([404, 'MISS']);
    }
  });
});

describe('signed resize URLs at the edge', () => {
  it('refuses unsigned or wrongly signed params with no origin request; a good sig is served and cached', async () => {
    const fid = await signed.upload(await jpeg(300, 200), { name: 'v.jpg', mime: 'image/jpeg' });
    const n = await during(signed, async () => {
      expect((await read(signed, `/${fid}?width=100`)).status).toBe(403);
      expect((await read(signed, `/${fid}?width=100&sig=${'a'.repeat(64)}`)).status).toBe(403);
    });
    expect(n).toBe(0);
    const sig = await signResize(KEY, `/${fid}`, 'height=50&width=100');
    const ok = await read(signed, `/${fid}?width=100&height=50&sig=${sig}`);
    expect([ok.status, ok.cache]).toEqual([200, 'MISS']);
    expect((await read(signed, `/${fid}?height=50&width=100&sig=${sig}`)).cache).toBe('HIT');
    // A HIT still needs the signature.
    expect((await read(signed, `/${fid}?height=50&width=100`)).status).toBe(403);
    // Plain reads need none.
    expect((await read(signed, `/${fid}`)).status).toBe(200);
  });
});
