/**
 * Public reads through the edge Worker in workerd, against a real master and
 * volume server: the Cache API answers hits (Range and 304 included), misses
 * go to origin once, lookups are shared, bad requests never leave the edge,
 * errors are cached only briefly, and writes (with the write key) pass through and purge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFid } from '../../shared/fid.ts';
import {
  bytes,
  type EdgeCluster,
  multipart,
  randomBlob,
  sleep,
  startEdge,
  TEST_WRITE_KEY,
  WRITE_AUTH,
  waitFor,
} from './harness.ts';

/** Objects above this are not fetched whole to answer a Range (MAX_CACHEABLE_BYTES). */
const CAP = 64 * 1024;
const NEGATIVE_TTL_SECONDS = 1;

let edge: EdgeCluster;

beforeAll(async () => {
  edge = await startEdge({
    vars: {
      WRITE_KEYS: TEST_WRITE_KEY,
      MAX_CACHEABLE_BYTES: String(CAP),
      NEGATIVE_TTL_SECONDS: String(NEGATIVE_TTL_SECONDS),
      // Short, so that the variant index's lifetime can be seen to outlast it (no stale copy is read here).
      STALE_TTL_SECONDS: '1',
    },
  });
});
afterAll(async () => {
  await edge?.close();
});

/** Runs `fn` and returns how many requests the origins (master + volume servers) saw meanwhile. */
async function originRequestsDuring(fn: () => Promise<void>): Promise<number> {
  const before = edge.originRequests();
  await fn();
  return edge.originRequests() - before;
}

/** "/3/01637037d6" from "3,01637037d6". */
function slashForm(fid: string): string {
  return `/${fid.replace(',', '/')}`;
}

describe('lookups', () => {
  // First in the file: it needs a volume the edge has never looked up.
  it('asks the master once for 50 reads of different files in one volume, 25 of them concurrent', async () => {
    const { fids, blobs } = await edge.uploadBatch(50, 200);
    const volumeId = parseFid(fids[0]!).volumeId;
    const lookupsOfVolume = () => edge.masterProxy.countOf(`/dir/lookup?volumeId=${volumeId}`);
    expect(lookupsOfVolume()).toBe(0);

    const read = async (i: number) => {
      const res = await edge.fetch(`/${fids[i]}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-kelp-cache')).toBe('MISS');
      expect(await bytes(res)).toEqual(blobs[i]);
    };
    await Promise.all(Array.from({ length: 25 }, (_, i) => read(i)));
    for (let i = 25; i < 50; i++) await read(i);
    expect(lookupsOfVolume()).toBe(1);
    expect(edge.volumes[0]!.proxy.countOf(`/${volumeId},`)).toBe(50);
  });
});

describe('hot reads', () => {
  it('answers a MISS from origin, then a HIT from the cache with identical bytes, in all three URL forms', async () => {
    const forms = [
      (fid: string) => `/${fid}`,
      (fid: string) => slashForm(fid),
      (fid: string) => `${slashForm(fid)}/photo.jpg`,
    ];
    for (const form of forms) {
      const data = randomBlob(3000);
      const fid = await edge.upload(data, { name: 'photo.jpg', mime: 'image/jpeg' });
      const first = await edge.fetch(form(fid));
      expect(first.status).toBe(200);
      expect(first.headers.get('x-kelp-cache')).toBe('MISS');
      expect(first.headers.get('content-type')).toBe('image/jpeg');
      // Browsers keep it no longer than the edge trusts it unconfirmed (EDGE_FRESH_SECONDS, default 5).
      expect(first.headers.get('cache-control')).toBe('public, max-age=5');
      expect(first.headers.get('cf-cache-status')).toBe('MISS');
      expect(await bytes(first)).toEqual(data);

      const n = await originRequestsDuring(async () => {
        const second = await edge.fetch(form(fid));
        expect(second.status).toBe(200);
        expect(second.headers.get('x-kelp-cache')).toBe('HIT');
        expect(second.headers.get('etag')).toBe(first.headers.get('etag'));
        expect(await bytes(second)).toEqual(data);
      });
      expect(n).toBe(0);
    }
  });

  it('serves the comma and slash forms, and any unrelated query string, from one cache entry', async () => {
    const data = randomBlob(500);
    const fid = await edge.upload(data, { name: 'a.txt', mime: 'text/plain' });
    expect((await edge.fetch(`/${fid}.txt`)).headers.get('x-kelp-cache')).toBe('MISS');
    const n = await originRequestsDuring(async () => {
      for (const path of [`${slashForm(fid)}.txt`, `/${fid}.TXT`, `/${fid}.txt?utm_source=x&v=2`]) {
        const res = await edge.fetch(path);
        expect(res.headers.get('x-kelp-cache'), path).toBe('HIT');
        expect(await bytes(res)).toEqual(data);
      }
    });
    expect(n).toBe(0);
  });

  it('answers HEAD with the headers and no body, on a miss and on a hit', async () => {
    const data = randomBlob(1234);
    const fid = await edge.upload(data);
    const miss = await edge.fetch(`/${fid}`, { method: 'HEAD' });
    expect(miss.status).toBe(200);
    expect(miss.headers.get('x-kelp-cache')).toBe('MISS');
    expect((await bytes(miss)).length).toBe(0);
    const n = await originRequestsDuring(async () => {
      const hit = await edge.fetch(`/${fid}`, { method: 'HEAD' });
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-kelp-cache')).toBe('HIT');
      expect(hit.headers.get('etag')).toMatch(/^"[0-9a-f]{8}"$/);
      expect((await bytes(hit)).length).toBe(0);
      // The HEAD's miss cached the whole object: a GET is a hit too.
      const get = await edge.fetch(`/${fid}`);
      expect(get.headers.get('x-kelp-cache')).toBe('HIT');
      expect(await bytes(get)).toEqual(data);
    });
    expect(n).toBe(0);
  });
});

describe('downloads', () => {
  it('answers ?dl=true (or 1) with an attachment, as the volume server does, cached apart from the inline copy', async () => {
    const data = randomBlob(600);
    const fid = await edge.upload(data, { name: 'report.txt', mime: 'text/plain' });
    const inline = await edge.fetch(`/${fid}`);
    expect(inline.headers.get('content-disposition')).toMatch(/^inline; filename="report.txt"/);
    await bytes(inline);
    for (const q of ['dl=true', 'dl=1', 'dl=true&utm=x']) {
      const res = await edge.fetch(`/${fid}?${q}`);
      expect(res.headers.get('content-disposition'), q).toMatch(/^attachment; filename="report.txt"/);
      expect(await bytes(res), q).toEqual(data);
    }
    expect((await edge.fetch(`/${fid}?dl=1`)).headers.get('x-kelp-cache')).toBe('HIT');
    const again = await edge.fetch(`/${fid}`);
    expect(again.headers.get('content-disposition')).toMatch(/^inline/);
    expect(again.headers.get('x-kelp-cache')).toBe('HIT');
  });
});

describe('Range and conditional requests', () => {
  it('answers a Range on a cached object with 206, the right bytes and Content-Range', async () => {
    const data = randomBlob(10_000);
    const fid = await edge.upload(data);
    await bytes(await edge.fetch(`/${fid}`));
    const n = await originRequestsDuring(async () => {
      const res = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=100-1099' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('x-kelp-cache')).toBe('HIT');
      expect(res.headers.get('content-range')).toBe('bytes 100-1099/10000');
      expect(await bytes(res)).toEqual(data.subarray(100, 1100));
      const suffix = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=-10' } });
      expect(suffix.status).toBe(206);
      expect(suffix.headers.get('content-range')).toBe('bytes 9990-9999/10000');
      expect(await bytes(suffix)).toEqual(data.subarray(9990));
    });
    expect(n).toBe(0);
  });

  it('answers a Range miss under the cap from the whole object, which it caches', async () => {
    const data = randomBlob(CAP - 1000);
    const fid = await edge.upload(data);
    const res = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=5-14' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('x-kelp-cache')).toBe('MISS');
    expect(res.headers.get('content-range')).toBe(`bytes 5-14/${data.length}`);
    expect(await bytes(res)).toEqual(data.subarray(5, 15));
    // The origin was asked for the whole object, never for a range.
    const volume = edge.volumes[0]!.proxy;
    expect(volume.seen.filter((s) => s.path === `/${fid}`)).toHaveLength(1);
    const n = await originRequestsDuring(async () => {
      const full = await edge.fetch(`/${fid}`);
      expect(full.status).toBe(200);
      expect(full.headers.get('x-kelp-cache')).toBe('HIT');
      expect(await bytes(full)).toEqual(data);
    });
    expect(n).toBe(0);
  });

  it('passes a Range on an object over MAX_CACHEABLE_BYTES through to origin, uncached', async () => {
    const data = randomBlob(CAP + 10_000);
    const fid = await edge.upload(data);
    for (let i = 0; i < 2; i++) {
      const n = await originRequestsDuring(async () => {
        const res = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=70000-70099' } });
        expect(res.status).toBe(206);
        expect(res.headers.get('x-kelp-cache')).toBe('BYPASS');
        expect(res.headers.get('content-range')).toBe(`bytes 70000-70099/${data.length}`);
        expect(await bytes(res)).toEqual(data.subarray(70_000, 70_100));
      });
      expect(n).toBeGreaterThan(0);
    }
    // A plain GET of it passes through whole, uncached, too.
    const full = await edge.fetch(`/${fid}`);
    expect(full.headers.get('x-kelp-cache')).toBe('BYPASS');
    expect(await bytes(full)).toEqual(data);
  });

  it('ignores a Range it cannot honour (other unit, bad syntax, last < first) as origin does: 200 whole, hit or miss', async () => {
    // RFC 9110 §14.2: a Range with a unit the server does not understand MUST be ignored; an invalid one
    // MAY be. The Cache API answered all three 416 while the volume server answered 200.
    const ignored = ['items=0-9', 'bytes=abc', 'bytes=30-10'];
    const data = randomBlob(1000);
    const fid = await edge.upload(data);
    for (const range of ignored) {
      const origin = await fetch(`http://${edge.volumes[0]!.url}/${fid}`, { headers: { range } });
      expect(origin.status, `origin, ${range}`).toBe(200);
      await bytes(origin);
    }
    // A miss first (nothing cached yet), then hits.
    for (const [i, range] of [...ignored, ...ignored].entries()) {
      const res = await edge.fetch(`/${fid}`, { headers: { range } });
      expect(res.status, range).toBe(200);
      expect(res.headers.get('x-kelp-cache'), range).toBe(i === 0 ? 'MISS' : 'HIT');
      expect(res.headers.get('content-range'), range).toBeNull();
      expect(await bytes(res), range).toEqual(data);
    }
    // Over the cap the object passes through: the same 200 whole, not the origin's 416 or a ranged part.
    const large = randomBlob(CAP + 10_000);
    const largeFid = await edge.upload(large);
    for (const range of ignored) {
      const res = await edge.fetch(`/${largeFid}`, { headers: { range } });
      expect(res.status, range).toBe(200);
      expect(await bytes(res), range).toEqual(large);
    }
  });

  it('evaluates If-Range itself: a Range for another version gets the whole (200), for this one its part', async () => {
    // The Cache API ignored If-Range: a resumed download of a blob overwritten since got a range of the
    // new bytes to splice onto the old. "Another version" here is a tag or date that is not this copy's.
    for (const size of [10_000, CAP + 10_000]) {
      const data = randomBlob(size);
      const fid = await edge.upload(data);
      const first = await edge.fetch(`/${fid}`);
      const etag = first.headers.get('etag')!;
      const modified = first.headers.get('last-modified')!;
      await bytes(first);
      const earlier = new Date(Date.parse(modified) - 1000).toUTCString();
      for (const other of ['"00000000"', `W/${etag}`, earlier]) {
        const res = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=50-99', 'if-range': other } });
        expect(res.status, `${size}: ${other}`).toBe(200);
        expect(res.headers.get('content-range')).toBeNull();
        expect(await bytes(res), `${size}: ${other}`).toEqual(data);
      }
      for (const same of [etag, modified]) {
        const res = await edge.fetch(`/${fid}`, { headers: { range: 'bytes=50-99', 'if-range': same } });
        expect(res.status, `${size}: ${same}`).toBe(206);
        expect(res.headers.get('content-range')).toBe(`bytes 50-99/${size}`);
        expect(await bytes(res), `${size}: ${same}`).toEqual(data.subarray(50, 100));
      }
    }
  });

  it('answers If-Match naming another version 412, and * or this version as usual; a missing blob stays 404', async () => {
    const data = randomBlob(3000);
    const fid = await edge.upload(data);
    const first = await edge.fetch(`/${fid}`);
    const etag = first.headers.get('etag')!;
    await bytes(first);
    for (const other of ['"00000000"', `W/${etag}`]) {
      const res = await edge.fetch(`/${fid}`, { headers: { 'if-match': other, 'if-none-match': etag } });
      expect(res.status, other).toBe(412);
      expect(((await res.json()) as { code: string }).code).toBe('precondition_failed');
    }
    for (const ok of ['*', etag]) {
      const res = await edge.fetch(`/${fid}`, { headers: { 'if-match': ok, range: 'bytes=0-9' } });
      expect(res.status, ok).toBe(206);
      expect(await bytes(res)).toEqual(data.subarray(0, 10));
    }
    const notModified = await edge.fetch(`/${fid}`, { headers: { 'if-match': etag, 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    const missing = fid.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    const gone = await edge.fetch(`/${missing}`, { headers: { 'if-match': '*' } });
    expect(gone.status).toBe(404);
    await bytes(gone);
  });

  it('answers If-None-Match with the ETag with 304 from the cache', async () => {
    const fid = await edge.upload(randomBlob(2000));
    const first = await edge.fetch(`/${fid}`);
    const etag = first.headers.get('etag')!;
    await bytes(first);
    const n = await originRequestsDuring(async () => {
      const res = await edge.fetch(`/${fid}`, { headers: { 'if-none-match': etag } });
      expect(res.status).toBe(304);
      expect(res.headers.get('x-kelp-cache')).toBe('HIT');
      expect(res.headers.get('etag')).toBe(etag);
      expect((await bytes(res)).length).toBe(0);
      const other = await edge.fetch(`/${fid}`, { headers: { 'if-none-match': '"00000000"' } });
      expect(other.status).toBe(200);
      await bytes(other);
    });
    expect(n).toBe(0);
  });
});

describe('bad requests', () => {
  it('rejects malformed paths and over-limit resize params with 400 and no origin request', async () => {
    const fid = await edge.upload(randomBlob(100));
    const bad = [
      '/abc',
      '/3,zz',
      '/3,',
      '/3/..',
      '/3/%2e%2e',
      '/..%2f..%2fetc/passwd',
      `/${fid.replace(',', '/')}/..%2f..%2fetc%2fpasswd`,
      `/${fid.replace(',', '/')}/%2e%2e`,
      '/1/2/3/4',
      `${slashForm(fid)}/name.jpg/extra`,
      '/4294967296,01637037d6',
      `/${fid}.tar.gz`,
      `/${fid}.j%20pg`,
      `/${fid}?width=99999`,
      `/${fid}?width=0`,
      `/${fid}?width=12.5`,
      `/${fid}?height=5000`,
      `/${fid}?width=100&mode=bogus`,
      `/${fid}?mode=bogus`,
      `/${fid}?mode=fill`,
      `/${fid}?format=gif`,
      `/${fid}?quality=101`,
      `/${fid}?width=10&width=20`,
    ];
    const n = await originRequestsDuring(async () => {
      for (const path of bad) {
        const res = await edge.fetch(path);
        expect(res.status, path).toBe(400);
        expect(res.headers.get('x-kelp-cache'), path).not.toBeNull();
        const body = (await res.json()) as { code: string };
        expect(body.code, path).toMatch(/^invalid_/);
      }
      for (const method of ['DELETE', 'HEAD']) {
        const res = await edge.fetch('/abc', { method, headers: WRITE_AUTH });
        expect(res.status, method).toBe(400);
        await bytes(res);
      }
    });
    expect(n).toBe(0);
  });
});

describe('errors', () => {
  it('caches a 404 for NEGATIVE_TTL_SECONDS, then asks origin again', async () => {
    const fid = parseFid(await edge.upload(randomBlob(100)));
    // Same volume and cookie, a key that was never written.
    const missing = `/${fid.volumeId},${(fid.key + 1000n).toString(16)}${fid.cookie.toString(16).padStart(8, '0')}`;
    const first = await edge.fetch(missing);
    expect(first.status).toBe(404);
    expect(first.headers.get('x-kelp-cache')).toBe('MISS');
    await bytes(first);
    const n = await originRequestsDuring(async () => {
      const second = await edge.fetch(missing);
      expect(second.status).toBe(404);
      expect(second.headers.get('x-kelp-cache')).toBe('HIT');
      expect(second.headers.get('cache-control')).toBe(`public, max-age=${NEGATIVE_TTL_SECONDS}`);
      await bytes(second);
    });
    expect(n).toBe(0);
    await sleep(NEGATIVE_TTL_SECONDS * 1000 + 200);
    const m = await originRequestsDuring(async () => {
      const third = await edge.fetch(missing);
      expect(third.status).toBe(404);
      expect(third.headers.get('x-kelp-cache')).toBe('MISS');
      await bytes(third);
    });
    expect(m).toBeGreaterThan(0);
  });
});

describe('writes through the edge', () => {
  it('uploads with POST /submit (201), readable through the edge afterwards', async () => {
    const data = randomBlob(4096);
    const { body, headers } = await multipart(data, 'up.png', 'image/png');
    const res = await edge.fetch('/submit', { method: 'POST', body, headers: { ...headers, ...WRITE_AUTH } });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const out = (await res.json()) as { fid: string; size: number; fileName: string };
    expect(out.fileName).toBe('up.png');
    expect(edge.masterProxy.countOf('/submit')).toBe(1);
    const read = await edge.fetch(`/${out.fid}.png`);
    expect(read.status).toBe(200);
    expect(read.headers.get('x-kelp-cache')).toBe('MISS');
    expect(read.headers.get('content-type')).toBe('image/png');
    expect(await bytes(read)).toEqual(data);
  });

  it('DELETE /<fid> deletes at origin and purges every cached variant of the file', async () => {
    const data = randomBlob(800);
    const fid = await edge.upload(data, { name: 'note.txt', mime: 'text/plain' });
    // Variants of one file: the bare fid, the extension form, the name form and a resize
    // variant (a text file is not an image, so the origin serves it as it is under that key).
    const variants = [`/${fid}`, `/${fid}.txt`, `${slashForm(fid)}/note.txt`, `/${fid}?width=100`];
    for (const path of variants) {
      expect((await edge.fetch(path)).headers.get('x-kelp-cache'), path).toBe('MISS');
      expect((await edge.fetch(path)).headers.get('x-kelp-cache'), path).toBe('HIT');
    }

    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(202);
    expect(del.headers.get('cache-control')).toBe('no-store');
    await bytes(del);

    for (const path of variants) {
      const res = await edge.fetch(path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('x-kelp-cache'), path).toBe('MISS');
      await bytes(res);
    }
  });

  it('does not keep bytes an origin read before a purge that overtook them (a miss racing the delete)', async () => {
    const data = randomBlob(500);
    const fid = await edge.upload(data, { name: 'race.txt', mime: 'text/plain' });
    const volume = edge.volumes[0]!.proxy;
    // The origin reads the blob at once, but its answer reaches the edge only after the delete's purge.
    volume.responseDelayMs = 1500;
    const racing = edge.fetch(`/${fid}`);
    await waitFor('the racing read to reach the origin', () =>
      volume.seen.some((s) => s.method === 'GET' && s.path === `/${fid}`),
    );
    volume.responseDelayMs = 0;
    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(202);
    await bytes(del);
    const raced = await racing;
    expect(raced.status).toBe(200);
    expect(raced.headers.get('x-kelp-cache')).toBe('BYPASS');
    expect(await bytes(raced)).toEqual(data);
    const after = await edge.fetch(`/${fid}`);
    expect(after.status).toBe(404);
    await bytes(after);
  });

  it('caches a fid written again after its purge (a purge voids older copies, it bans nothing)', async () => {
    const fid = await edge.upload(randomBlob(300), { name: 'again.txt', mime: 'text/plain' });
    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(202);
    await bytes(del);
    const data = randomBlob(400);
    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(data)]), 'again.txt');
    const reup = await fetch(`http://${edge.volumes[0]!.url}/${fid}`, { method: 'POST', body: form });
    expect(reup.status).toBe(201);
    const first = await edge.fetch(`/${fid}`);
    expect([first.status, first.headers.get('x-kelp-cache')]).toEqual([200, 'MISS']);
    expect(await bytes(first)).toEqual(data);
    const second = await edge.fetch(`/${fid}`);
    expect(second.headers.get('x-kelp-cache')).toBe('HIT');
    expect(await bytes(second)).toEqual(data);
  });

  it('purges variants cached concurrently (the variant index loses none)', async () => {
    const fid = await edge.upload(randomBlob(300), { name: 'c.txt', mime: 'text/plain' });
    const variants = [
      `/${fid}`,
      `/${fid}.txt`,
      `/${fid}.bin`,
      `${slashForm(fid)}/c.txt`,
      `${slashForm(fid)}/d.txt`,
    ];
    await Promise.all(variants.map(async (path) => bytes(await edge.fetch(path))));
    for (const path of variants)
      expect((await edge.fetch(path)).headers.get('x-kelp-cache'), path).toBe('HIT');
    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(202);
    for (const path of variants) {
      const res = await edge.fetch(path);
      expect(res.status, path).toBe(404);
      await bytes(res);
    }
  });

  it('keeps the variant index as long as its longest-lived entry, even when a 404 was recorded last', async () => {
    const data = randomBlob(300);
    const fid = await edge.upload(data, { name: 'x.txt', mime: 'text/plain' });
    const ok = await edge.fetch(`/${fid}.txt`);
    expect(ok.headers.get('x-kelp-cache')).toBe('MISS');
    await bytes(ok);
    // Deleted at origin behind the edge's back: the bare fid's miss now caches a 404 variant.
    const direct = await fetch(`http://${edge.volumes[0]!.url}/${fid}`, { method: 'DELETE' });
    expect(direct.status).toBe(202);
    const gone = await edge.fetch(`/${fid}`);
    expect(gone.status).toBe(404);
    await bytes(gone);
    // Past the 404's and the stale copies' lifetimes; the .txt entry lives a year.
    await sleep(NEGATIVE_TTL_SECONDS * 1000 + 300);
    expect((await edge.fetch(`/${fid}.txt`)).headers.get('x-kelp-cache')).toBe('HIT');
    const del = await edge.fetch(`/${fid}`, { method: 'DELETE', headers: WRITE_AUTH });
    expect(del.status).toBe(404);
    await bytes(del);
    const after = await edge.fetch(`/${fid}.txt`);
    expect(after.status).toBe(404);
    expect(after.headers.get('x-kelp-cache')).toBe('MISS');
    await bytes(after);
  });
});
