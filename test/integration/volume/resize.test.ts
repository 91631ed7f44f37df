/**
 * Image variants from a real volume server (issue 6): JPEG, PNG, WebP and GIF
 * images made here with sharp, uploaded, read back with resize params and
 * decoded with sharp to check geometry, format, orientation, canonical ETags,
 * limits, signatures, presets, 304 and Range.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadConfig } from '../../../origin/volume/blob-headers.ts';
import { Resizer } from '../../../origin/volume/resize.ts';
import { signResize } from '../../../shared/resize-signature.ts';
import {
  assignVolume,
  idxEntryOf,
  NEEDLE_DATA_START,
  newFid,
  putOk,
  type Running,
  raw,
  removeTempDirs,
  startInProcess,
  tempDir,
} from './harness.ts';

const VID = 5;
let srv: Running;
let base: string;
let dir: string;
const extra: Running[] = [];

beforeAll(async () => {
  dir = tempDir();
  srv = await startInProcess(dir);
  base = srv.base;
  await assignVolume(base, VID);
});

afterAll(async () => {
  await srv?.stop();
  for (const s of extra) await s.stop();
  removeTempDirs();
});

type Fmt = 'jpeg' | 'png' | 'webp' | 'gif';
const MIME: Record<Fmt, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
};

/** A `width`×`height` image in `format`, noisy so that quality shows in the size. */
async function makeImage(format: Fmt, width: number, height: number, noise = false): Promise<Buffer> {
  const img = sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: 200, g: 60, b: 30 },
      ...(noise ? { noise: { type: 'gaussian' as const, mean: 128, sigma: 40 } } : {}),
    },
  });
  return img.toFormat(format).toBuffer();
}

async function upload(server: string, bytes: Uint8Array, mime: string): Promise<string> {
  const fid = newFid(VID);
  await putOk(server, fid, bytes, { 'Content-Type': mime });
  return fid;
}

async function uploadImage(
  server: string,
  format: Fmt,
  w: number,
  h: number,
  noise = false,
): Promise<string> {
  return upload(server, await makeImage(format, w, h, noise), MIME[format]);
}

async function getOk(path: string, headers: Record<string, string> = {}, server = base) {
  const res = await raw(server, path, { headers });
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body.toString()}`);
  return res;
}

async function dims(body: Buffer): Promise<{ width: number; height: number; format: string }> {
  const m = await sharp(body).metadata();
  return { width: m.width!, height: m.height!, format: m.format! };
}

/** A volume server of its own with `read` config, volume VID assigned. */
async function startWith(read: ReadConfig): Promise<string> {
  const s = await startInProcess(tempDir(), { read });
  extra.push(s);
  await assignVolume(s.base, VID);
  return s.base;
}

describe('geometry (SeaweedFS semantics)', () => {
  for (const format of ['jpeg', 'png', 'webp', 'gif'] as const) {
    it(`fit, fill, no mode and never-enlarge on a 400x200 ${format}`, async () => {
      const fid = await uploadImage(base, format, 400, 200);
      const cases: Array<[string, number, number]> = [
        ['width=200&height=200&mode=fit', 200, 100],
        ['width=200&height=200&mode=fill', 200, 200],
        ['width=100&height=100&mode=cover', 100, 100],
        ['width=200&height=200&mode=contain', 200, 100],
        // No mode, square box, non-square source: a centre-cropped thumbnail.
        ['width=200&height=200', 200, 200],
        // No mode, non-square box: an exact resize.
        ['width=300&height=100', 300, 100],
        ['width=100', 100, 50],
        ['height=50', 100, 50],
        // Never enlarges.
        ['width=800', 400, 200],
        ['width=800&height=800&mode=fit', 400, 200],
      ];
      for (const [query, w, h] of cases) {
        const res = await getOk(`/${fid}?${query}`);
        const d = await dims(res.body);
        expect({ query, w: d.width, h: d.height, format: d.format }).toEqual({ query, w, h, format });
        expect(res.headers['content-type']).toBe(MIME[format]);
      }
    });
  }

  it('no mode with a square box on a square source is an exact resize', async () => {
    const fid = await uploadImage(base, 'png', 300, 300);
    expect(await dims((await getOk(`/${fid}?width=120&height=120`)).body)).toMatchObject({
      width: 120,
      height: 120,
    });
  });

  it('fill crops from the centre', async () => {
    // Left half black, right half white, 400x200: a centre crop to 100x100 keeps both halves.
    const left = await sharp({
      create: { width: 200, height: 200, channels: 3, background: '#000' },
    })
      .png()
      .toBuffer();
    const img = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#fff' } })
      .composite([{ input: left, left: 0, top: 0 }])
      .png()
      .toBuffer();
    const fid = await upload(base, img, 'image/png');
    const res = await getOk(`/${fid}?width=100&height=100&mode=fill`);
    const { data, info } = await sharp(res.body).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([100, 100]);
    const px = (x: number, y: number) => data[(y * info.width + x) * info.channels]!;
    expect(px(5, 50)).toBeLessThan(50);
    expect(px(95, 50)).toBeGreaterThan(200);
  });
});

describe('format and quality', () => {
  it('converts to webp, avif, png and jpeg', async () => {
    const fid = await uploadImage(base, 'jpeg', 300, 200);
    for (const [format, mime, decoded] of [
      ['webp', 'image/webp', 'webp'],
      ['avif', 'image/avif', 'heif'],
      ['png', 'image/png', 'png'],
      ['jpeg', 'image/jpeg', 'jpeg'],
      ['jpg', 'image/jpeg', 'jpeg'],
    ]) {
      const res = await getOk(`/${fid}?width=100&format=${format}`);
      expect(res.headers['content-type']).toBe(mime);
      const d = await dims(res.body);
      expect(d.format).toBe(decoded);
      expect([d.width, d.height]).toEqual([100, 67]);
    }
  });

  it('format alone converts at the original size', async () => {
    const fid = await uploadImage(base, 'png', 120, 80);
    const res = await getOk(`/${fid}?format=webp`);
    expect(await dims(res.body)).toEqual({ width: 120, height: 80, format: 'webp' });
  });

  it('format=auto follows Accept and says Vary: Accept', async () => {
    const fid = await uploadImage(base, 'jpeg', 300, 200);
    const avif = await getOk(`/${fid}?width=100&format=auto`, { accept: 'image/avif,image/webp,*/*' });
    expect(avif.headers['content-type']).toBe('image/avif');
    expect(avif.headers.vary).toBe('Accept');
    const webp = await getOk(`/${fid}?width=100&format=auto`, { accept: 'image/webp,*/*' });
    expect(webp.headers['content-type']).toBe('image/webp');
    expect((await dims(webp.body)).format).toBe('webp');
    expect(webp.headers.vary).toBe('Accept');
    const plain = await getOk(`/${fid}?width=100&format=auto`, { accept: '*/*' });
    expect(plain.headers['content-type']).toBe('image/jpeg');
    expect(plain.headers.vary).toBe('Accept');
    // Each negotiated variant has an ETag of its own.
    expect(new Set([avif.headers.etag, webp.headers.etag, plain.headers.etag]).size).toBe(3);
    // An explicit format does not vary.
    const fixed = await getOk(`/${fid}?width=100&format=webp`, { accept: 'image/avif' });
    expect(fixed.headers.vary).toBeUndefined();
  });

  it('quality changes the size', async () => {
    const fid = await uploadImage(base, 'jpeg', 400, 300, true);
    const low = await getOk(`/${fid}?width=300&quality=10`);
    const high = await getOk(`/${fid}?width=300&quality=95`);
    expect(low.body.length).toBeLessThan(high.body.length / 2);
    const lowWebp = await getOk(`/${fid}?width=300&format=webp&quality=10`);
    const highWebp = await getOk(`/${fid}?width=300&format=webp&quality=95`);
    expect(lowWebp.body.length).toBeLessThan(highWebp.body.length);
  });

  it('applies EXIF orientation', async () => {
    // Stored 300x200 with orientation 6 (turn 90° clockwise): shown 200x300.
    const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#888' } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const fid = await upload(base, jpeg, 'image/jpeg');
    const res = await getOk(`/${fid}?width=100`);
    const m = await sharp(res.body).metadata();
    expect([m.width, m.height]).toEqual([100, 150]);
    expect(m.orientation ?? 1).toBe(1);
    // The square-box thumbnail rule looks at the turned size too.
    const fill = await getOk(`/${fid}?width=50&height=80&mode=fit`);
    expect(await dims(fill.body)).toMatchObject({ width: 50, height: 75 });
  });
});

describe('what browsers are given', () => {
  it('flattens a transparent PNG onto white when converting it to JPEG (not black)', async () => {
    // Left half opaque red, right half fully transparent (its colour channels black, as most PNGs store it).
    const w = 40;
    const h = 20;
    const pixels = Buffer.alloc(w * h * 4);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w / 2; x++) pixels.set([220, 20, 20, 255], (y * w + x) * 4);
    const png = await sharp(pixels, { raw: { width: w, height: h, channels: 4 } })
      .png()
      .toBuffer();
    const fid = await upload(base, png, 'image/png');
    const res = await getOk(`/${fid}?format=jpeg`);
    expect(res.headers['content-type']).toBe('image/jpeg');
    const { data, info } = await sharp(res.body).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => [
      ...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3),
    ];
    const [r, g, b] = at(w - 5, h / 2);
    expect(Math.min(r!, g!, b!), 'the transparent half').toBeGreaterThan(240);
    const [r2, g2] = at(5, h / 2);
    expect(r2!, 'the opaque half keeps its colour').toBeGreaterThan(180);
    expect(g2!).toBeLessThan(80);
    // A background of the operator's choosing.
    const grey = await startWith({ resizer: new Resizer({ background: '#808080' }) });
    const gfid = await upload(grey, png, 'image/png');
    const greyed = await sharp((await getOk(`/${gfid}?format=jpeg`, {}, grey)).body)
      .raw()
      .toBuffer({ resolveWithObject: true });
    const gi = ((h / 2) * greyed.info.width + (w - 5)) * greyed.info.channels;
    expect(Math.abs(greyed.data[gi]! - 128)).toBeLessThan(10);
  });

  it('names a converted variant with its own format in Content-Disposition', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, await makeImage('png', 60, 40), {
      'Content-Type': 'image/png',
      'Content-Disposition': 'attachment; filename="photo.png"',
    });
    const webp = await getOk(`/${fid}?format=webp`);
    expect(webp.headers['content-disposition']).toBe(
      `inline; filename="photo.webp"; filename*=UTF-8''photo.webp`,
    );
    const auto = await getOk(`/${fid}?width=30&format=auto`, { accept: 'image/avif,*/*' });
    expect(auto.headers['content-disposition']).toMatch(/filename="photo\.avif"/);
    const same = await getOk(`/${fid}?width=30`);
    expect(same.headers['content-disposition']).toMatch(/filename="photo\.png"/);
    const dl = await getOk(`/${fid}?format=jpeg&dl=true`);
    expect(dl.headers['content-disposition']).toMatch(/^attachment; filename="photo\.jpg"/);
    // The URL's own name wins over the stored one, and is converted the same way.
    const named = await getOk(`/${fid.replace(',', '/')}/holiday.png?format=webp`);
    expect(named.headers['content-disposition']).toMatch(/filename="holiday\.webp"/);
  });
});

describe('canonical form and caching headers', () => {
  it('gives one ETag to the same variant however the params are written', async () => {
    const fid = await uploadImage(base, 'png', 400, 200);
    const a = await getOk(`/${fid}?height=200&width=200`);
    const b = await getOk(`/${fid}?width=200&height=200&mode=`);
    const c = await getOk(`/${fid}?width=200&height=200&mode=fit`);
    const plain = await getOk(`/${fid}`);
    expect(a.headers.etag).toBe(b.headers.etag);
    expect(a.body.equals(b.body)).toBe(true);
    expect(c.headers.etag).not.toBe(a.headers.etag);
    expect(plain.headers.etag).not.toBe(a.headers.etag);
    // Aliases are the same variant as what they map to.
    const cover = await getOk(`/${fid}?width=100&height=100&mode=cover`);
    const fill = await getOk(`/${fid}?height=100&mode=fill&width=100`);
    expect(cover.headers.etag).toBe(fill.headers.etag);
  });

  it('answers 304 to the variant ETag, and 200 to the original one', async () => {
    const fid = await uploadImage(base, 'jpeg', 300, 200);
    const first = await getOk(`/${fid}?width=100`);
    const etag = first.headers.etag!;
    const again = await raw(base, `/${fid}?width=100`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(again.headers.etag).toBe(etag);
    expect(again.body.length).toBe(0);
    const original = (await getOk(`/${fid}`)).headers.etag!;
    const other = await raw(base, `/${fid}?width=100`, { headers: { 'if-none-match': original } });
    expect(other.status).toBe(200);
  });

  it('serves a Range over the variant', async () => {
    const fid = await uploadImage(base, 'png', 300, 200, true);
    const whole = await getOk(`/${fid}?width=150`);
    const part = await raw(base, `/${fid}?width=150`, { headers: { range: 'bytes=10-99' } });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 10-99/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(10, 100))).toBe(true);
    const tail = await raw(base, `/${fid}?width=150`, { headers: { range: 'bytes=-20' } });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(whole.body.subarray(whole.body.length - 20))).toBe(true);
  });

  it('HEAD of a variant has its length and no body', async () => {
    const fid = await uploadImage(base, 'png', 300, 200);
    const whole = await getOk(`/${fid}?width=150`);
    const head = await raw(base, `/${fid}?width=150`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(whole.body.length);
    expect(head.body.length).toBe(0);
  });
});

describe('non-images and bad images', () => {
  it('serves a non-image as it is when only a size is asked', async () => {
    const fid = await upload(base, new TextEncoder().encode('just text'), 'text/plain');
    const res = await getOk(`/${fid}?width=100`);
    expect(res.body.toString()).toBe('just text');
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('serves an SVG as it is with width and format=auto (auto is not a demand), 400 with format=png', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>';
    const fid = await upload(base, new TextEncoder().encode(svg), 'image/svg+xml');
    const res = await raw(base, `/${fid}?width=100&format=auto`, { headers: { accept: 'image/avif' } });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(svg);
    expect((await raw(base, `/${fid}?width=100&format=png`)).status).toBe(400);
  });

  it('refuses to convert a non-image to a demanded format (400)', async () => {
    const fid = await upload(base, new TextEncoder().encode('just text'), 'text/plain');
    expect((await raw(base, `/${fid}?format=png`)).status).toBe(400);
  });

  it('answers 422 for corrupt bytes stored as image/png', async () => {
    const png = await makeImage('png', 100, 100);
    const corrupt = Buffer.concat([png.subarray(0, 40), Buffer.alloc(200, 7)]);
    const fid = await upload(base, corrupt, 'image/png');
    const res = await raw(base, `/${fid}?width=50`);
    expect(res.status).toBe(422);
    // The original is still served as stored.
    expect((await getOk(`/${fid}`)).body.equals(corrupt)).toBe(true);
  });

  it('rejects malformed params (400) and ignores unknown ones', async () => {
    const fid = await uploadImage(base, 'png', 100, 100);
    for (const q of [
      'width=abc',
      'width=0',
      'width=-5',
      'width=1.5',
      'mode=fit',
      'mode=stretch&width=10',
      'format=bmp',
      'quality=101',
      'width=10&width=20',
      'preset=nope',
    ]) {
      expect({ q, status: (await raw(base, `/${fid}?${q}`)).status }).toEqual({ q, status: 400 });
    }
    const ignored = await getOk(`/${fid}?width=10&colour=red`);
    expect(await dims(ignored.body)).toEqual({ width: 10, height: 10, format: 'png' });
  });
});

describe('large needles (over 1 MiB, read outside the whole-needle path)', () => {
  it('resizes a large image, and refuses one whose bytes fail their CRC', async () => {
    const big = await makeImage('png', 900, 700, true);
    expect(big.length).toBeGreaterThan(1024 * 1024 + 1000);
    const fid = await upload(base, big, 'image/png');
    const res = await getOk(`/${fid}?width=90`);
    expect(await dims(res.body)).toEqual({ width: 90, height: 70, format: 'png' });

    // Flip a byte in the middle of the stored data: never resized as if good.
    const entry = idxEntryOf(join(dir, `${VID}.idx`), fid);
    const fd = openSync(join(dir, `${VID}.dat`), 'r+');
    try {
      const at = entry.offset + NEEDLE_DATA_START + 500_000;
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] = b[0]! ^ 0xff;
      writeSync(fd, b, 0, 1, at);
    } finally {
      closeSync(fd);
    }
    const bad = await raw(base, `/${fid}?width=91`);
    expect(bad.status).toBe(500);
  });
});

describe('limits', () => {
  it('refuses a side over the maximum (400)', async () => {
    const fid = await uploadImage(base, 'png', 100, 100);
    expect((await raw(base, `/${fid}?width=4097`)).status).toBe(400);
    expect((await raw(base, `/${fid}?height=100000`)).status).toBe(400);
    expect((await raw(base, `/${fid}?width=4096`)).status).toBe(200);
  });

  it('refuses a source over maxSourcePixels (422), serving it plainly still', async () => {
    const small = await startWith({ resizer: new Resizer({ maxSourcePixels: 1_000_000 }) });
    const big = await uploadImage(small, 'png', 1100, 1000);
    const res = await raw(small, `/${big}?width=100`);
    expect(res.status).toBe(422);
    expect((await raw(small, `/${big}`)).status).toBe(200);
    const ok = await uploadImage(small, 'png', 1000, 1000);
    expect((await raw(small, `/${ok}?width=100`)).status).toBe(200);
  });

  it('answers 429 with Retry-After when the queue is full', async () => {
    const busy = await startWith({ resizer: new Resizer({ concurrency: 1, maxQueue: 0 }) });
    const fid = await uploadImage(busy, 'jpeg', 4000, 3000, true);
    const results = await Promise.all(
      Array.from({ length: 3 }, (_, i) => raw(busy, `/${fid}?width=${1000 + i}&format=png`)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses[0]).toBe(200);
    const refused = results.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    // Once the queue drains, the next job runs.
    expect((await raw(busy, `/${fid}?width=100`)).status).toBe(200);
  }, 30_000);
});

describe('signed resize URLs', () => {
  it('needs a valid sig for free params, none for plain reads or presets', async () => {
    const key = 'k';
    const signed = await startWith({
      resizer: new Resizer(),
      resizeSigningKey: key,
      resizeLimits: { maxSide: 4096, presets: { thumb: { width: 50, height: 50, mode: 'fill' } } },
    });
    const fid = await uploadImage(signed, 'jpeg', 300, 200);
    expect((await raw(signed, `/${fid}?width=100`)).status).toBe(403);
    expect((await raw(signed, `/${fid}?width=100&sig=${'0'.repeat(64)}`)).status).toBe(403);
    expect((await raw(signed, `/${fid}?width=100&sig=nothex`)).status).toBe(403);
    const sig = await signResize(key, `/${fid}`, 'width=100');
    const ok = await raw(signed, `/${fid}?width=100&sig=${sig}`);
    expect(ok.status).toBe(200);
    expect((await dims(ok.body)).width).toBe(100);
    // The signature covers the canonical params, not their order.
    const sig2 = await signResize(key, `/${fid}`, 'height=50&mode=fit&width=100');
    expect((await raw(signed, `/${fid}?width=100&mode=contain&height=50&sig=${sig2}`)).status).toBe(200);
    // ...and the path: the same sig on another fid is refused.
    const other = await uploadImage(signed, 'jpeg', 300, 200);
    expect((await raw(signed, `/${other}?width=100&sig=${sig}`)).status).toBe(403);
    // A sig for one size does not sign another.
    expect((await raw(signed, `/${fid}?width=101&sig=${sig}`)).status).toBe(403);
    expect((await raw(signed, `/${fid}`)).status).toBe(200);
    const preset = await raw(signed, `/${fid}?preset=thumb`);
    expect(preset.status).toBe(200);
    expect(await dims(preset.body)).toMatchObject({ width: 50, height: 50 });
  });
});

describe('presets', () => {
  it('maps a configured name to its params; unknown names and mixing are 400', async () => {
    const p = await startWith({
      resizeLimits: { maxSide: 4096, presets: { thumb: { width: 50, height: 50, mode: 'fill' } } },
    });
    const fid = await uploadImage(p, 'png', 300, 200);
    const res = await getOk(`/${fid}?preset=thumb`, {}, p);
    expect(await dims(res.body)).toEqual({ width: 50, height: 50, format: 'png' });
    // A preset is the same variant as its params written out.
    const same = await getOk(`/${fid}?width=50&height=50&mode=fill`, {}, p);
    expect(same.headers.etag).toBe(res.headers.etag);
    expect((await raw(p, `/${fid}?preset=huge`)).status).toBe(400);
    expect((await raw(p, `/${fid}?preset=thumb&width=10`)).status).toBe(400);
  });
});

// Last in the file: the encode it gives up on goes on for a few seconds in the background.
describe('time limit', () => {
  it('answers 503 with Retry-After past the limit, even for an AVIF encode sharp cannot interrupt', async () => {
    const slow = await startWith({
      resizer: new Resizer({ timeoutSeconds: 1, concurrency: 1, maxQueue: 0 }),
    });
    const fid = await uploadImage(slow, 'png', 1600, 1600, true);
    const started = Date.now();
    const res = await raw(slow, `/${fid}?format=avif&quality=95`);
    expect(res.status).toBe(503);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(3000);
    // The abandoned encode still holds its slot: the bound on concurrent jobs holds.
    expect((await raw(slow, `/${fid}?width=10`)).status).toBe(429);
  }, 20_000);
});
