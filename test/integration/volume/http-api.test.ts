/**
 * The volume server's HTTP API against a real server on 127.0.0.1 (docs/format.md §8):
 * uploads, the three read URL forms, headers, Range, 304s, gzip, errors.
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assignVolume,
  getBytes,
  newFid,
  put,
  putOk,
  type Running,
  randomBlob,
  raw,
  removeTempDirs,
  startInProcess,
  tempDir,
  volumeStatus,
  withWrongCookie,
} from './harness.ts';

const VID = 3;
let srv: Running;
let base: string;

beforeAll(async () => {
  srv = await startInProcess(tempDir());
  base = srv.base;
  await assignVolume(base, VID);
});

afterAll(async () => {
  await srv?.stop();
  removeTempDirs();
});

/** `3,01637037d6` -> `3/01637037d6` */
const slashForm = (fid: string) => fid.replace(',', '/');

describe('round trips', () => {
  it('serves a raw PUT in all three URL forms with the same bytes and ETag', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(3000);
    const res = await put(base, fid, bytes, { 'Content-Type': 'image/jpeg' });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({
      name: '',
      size: 3000,
      eTag: expect.stringMatching(/^[0-9a-f]{8}$/),
      mime: 'image/jpeg',
    });
    expect(res.headers.get('etag')).toBe(`"${body.eTag}"`);

    for (const path of [`/${fid}`, `/${slashForm(fid)}.txt`, `/${slashForm(fid)}/name.jpg`]) {
      const got = await raw(base, path);
      expect(got.status, path).toBe(200);
      expect(got.body.equals(bytes), path).toBe(true);
      expect(got.headers.etag, path).toBe(`"${body.eTag}"`);
      expect(got.headers['content-length'], path).toBe('3000');
      expect(got.headers['last-modified'], path).toMatch(/GMT$/);
    }
  });

  it('stores the first file part of a multipart POST with its name and type', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(2048);
    const form = new FormData();
    form.append('note', 'a field before the file is skipped');
    form.append('file', new Blob([bytes], { type: 'image/png' }), 'pic.png');
    form.append('second', new Blob([Buffer.from('not me')], { type: 'text/plain' }), 'other.txt');
    const res = await fetch(`${base}/${fid}`, { method: 'POST', body: form });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { name: string; size: number; eTag: string; mime: string };
    expect(body).toMatchObject({ name: 'pic.png', size: 2048, mime: 'image/png' });
    expect(res.headers.get('etag')).toBe(`"${body.eTag}"`);

    const got = await raw(base, `/${fid}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(bytes)).toBe(true);
    expect(got.headers['content-type']).toBe('image/png');
    expect(got.headers['content-disposition']).toMatch(/^inline; filename="pic\.png"/);
  });

  it('keeps a UTF-8 multipart file name intact', async () => {
    const fid = newFid(VID);
    const form = new FormData();
    form.append('file', new Blob([randomBlob(100)], { type: 'text/plain' }), 'résumé ü.txt');
    const res = await fetch(`${base}/${fid}`, { method: 'POST', body: form });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { name: string }).name).toBe('résumé ü.txt');
    const got = await raw(base, `/${fid}`);
    expect(got.headers['content-disposition']).toContain(
      `filename*=UTF-8''${encodeURIComponent('résumé ü.txt')}`,
    );
  });

  it('answers with the name it stored: a name over 255 bytes is dropped (as SeaweedFS does), and the 201 says so', async () => {
    // The 201 named the dropped name, and the blob was then served without it.
    const fid = newFid(VID);
    const long = `${'é'.repeat(128)}.txt`;
    const form = new FormData();
    form.append('file', new Blob([randomBlob(100)]), long);
    const res = await fetch(`${base}/${fid}`, { method: 'POST', body: form });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { name: string }).name).toBe('');
    expect((await raw(base, `/${fid}`)).headers['content-disposition'] ?? '').not.toContain('filename');
    const fits = newFid(VID);
    const name = `${'é'.repeat(125)}.txt`;
    const ok = new FormData();
    ok.append('file', new Blob([randomBlob(100)]), name);
    expect(
      ((await (await fetch(`${base}/${fits}`, { method: 'POST', body: ok })).json()) as { name: string })
        .name,
    ).toBe(name);
  });

  it("stores a raw body's Content-Disposition name as its last path segment, quoted-pairs undone", async () => {
    // A raw body kept `../../etc/passwd` (and served it back as the download name) where a multipart part
    // named so is stored as `passwd`; an escaped quote cut the name short (`a\\`).
    for (const [disposition, stored] of [
      ['attachment; filename="../../etc/passwd"', 'passwd'],
      ["attachment; filename*=UTF-8''..%2F..%2Fx.txt", 'x.txt'],
      ['attachment; filename="C:\\\\dir\\\\y.txt"', 'y.txt'],
      ['attachment; filename="a\\"b.txt"', 'a"b.txt'],
      ['attachment; filename=".."', ''],
      ['attachment; filename=plain.txt', 'plain.txt'],
    ] as const) {
      const fid = newFid(VID);
      const res = await put(base, fid, randomBlob(50), { 'Content-Disposition': disposition });
      expect(res.status, disposition).toBe(201);
      expect(((await res.json()) as { name: string }).name, disposition).toBe(stored);
      const served = (await raw(base, `/${fid}`)).headers['content-disposition'] ?? '';
      if (stored) expect(served, disposition).toContain(`filename*=UTF-8''${encodeURIComponent(stored)}`);
      else expect(served, disposition).not.toContain('filename');
    }
  });

  it('answers 204 when the same bytes are uploaded again', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(500);
    const first = await putOk(base, fid, bytes);
    const again = await put(base, fid, bytes);
    expect(again.status).toBe(204);
    expect(again.headers.get('etag')).toBe(`"${first.eTag}"`);
    const next = randomBlob(500);
    const changed = await put(base, fid, next);
    expect(changed.status).toBe(201);
    expect((await getBytes(base, `/${fid}`)).equals(next)).toBe(true);
  });

  it('stores and serves an empty blob', async () => {
    const fid = newFid(VID);
    expect(await putOk(base, fid, new Uint8Array(0))).toMatchObject({ size: 0 });
    const got = await raw(base, `/${fid}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-length']).toBe('0');
    expect(got.body.length).toBe(0);
    expect((await put(base, fid, new Uint8Array(0))).status).toBe(204);
    const del = await fetch(`${base}/${fid}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect(await del.json()).toEqual({ size: 0 });
    expect((await raw(base, `/${fid}`)).status).toBe(404);
  });

  it('takes Content-Type from the stored mime, else from the URL extension', async () => {
    const typed = newFid(VID);
    await putOk(base, typed, 'stored as csv', { 'Content-Type': 'text/csv' });
    expect((await raw(base, `/${typed}.png`)).headers['content-type']).toBe('text/csv');

    const untyped = newFid(VID);
    await putOk(base, untyped, randomBlob(100));
    expect((await raw(base, `/${untyped}`)).headers['content-type']).toBe('application/octet-stream');
    expect((await raw(base, `/${untyped}.png`)).headers['content-type']).toBe('image/png');
    expect((await raw(base, `/${slashForm(untyped)}.gif`)).headers['content-type']).toBe('image/gif');
    expect((await raw(base, `/${slashForm(untyped)}/photo.webp`)).headers['content-type']).toBe('image/webp');
  });

  it('serves images and text inline, HTML and SVG as attachments, and ?dl=true as an attachment', async () => {
    const cases: Array<[string, string, string]> = [
      ['image/png', 'x.png', 'inline'],
      ['text/plain', 'x.txt', 'inline'],
      ['text/html', 'x.html', 'attachment'],
      ['image/svg+xml', 'x.svg', 'attachment'],
    ];
    for (const [mime, name, kind] of cases) {
      const fid = newFid(VID);
      await putOk(base, fid, '<svg onload="alert(1)"/>', {
        'Content-Type': mime,
        'Content-Disposition': `attachment; filename="${name}"`,
      });
      const got = await raw(base, `/${fid}`);
      expect(got.headers['content-type'], mime).toBe(mime);
      expect(got.headers['content-disposition'], mime).toMatch(new RegExp(`^${kind}; filename="${name}"`));
      expect(got.headers['x-content-type-options']).toBe('nosniff');
      const dl = await raw(base, `/${fid}?dl=true`);
      expect(dl.headers['content-disposition'], mime).toMatch(/^attachment/);
    }
  });

  it('stores Kelp-* and Seaweed-* pair headers and returns them as Kelp-*', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, 'with pairs', { 'Kelp-Color': 'blue', 'Seaweed-Owner': 'ann' });
    const got = await raw(base, `/${fid}`);
    expect(got.headers['kelp-color']).toBe('blue');
    expect(got.headers['kelp-owner']).toBe('ann');
    expect(got.headers['seaweed-owner']).toBeUndefined();
  });

  it('answers HEAD with the GET headers and no body', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(777);
    const { eTag } = await putOk(base, fid, bytes, { 'Content-Type': 'image/png' });
    const head = await raw(base, `/${fid}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('777');
    expect(head.headers.etag).toBe(`"${eTag}"`);
    expect(head.body.length).toBe(0);
  });
});

describe('Range', () => {
  const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  let fid: string;
  beforeAll(async () => {
    fid = newFid(VID);
    await putOk(base, fid, bytes);
  });

  const range = (r: string) => raw(base, `/${fid}`, { headers: { Range: r } });

  it('answers a single range with 206 and Content-Range', async () => {
    const res = await range('bytes=10-19');
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe('bytes 10-19/100');
    expect(res.headers['content-length']).toBe('10');
    expect(res.body.equals(bytes.subarray(10, 20))).toBe(true);
  });

  it('answers a suffix range with the last bytes', async () => {
    const res = await range('bytes=-5');
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe('bytes 95-99/100');
    expect(res.body.equals(bytes.subarray(95))).toBe(true);
  });

  it('answers an open range to the end', async () => {
    const res = await range('bytes=10-');
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe('bytes 10-99/100');
    expect(res.body.equals(bytes.subarray(10))).toBe(true);
  });

  it('answers several ranges with multipart/byteranges holding exactly those parts', async () => {
    const res = await range('bytes=0-4,20-24,-3');
    expect(res.status).toBe(206);
    const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(res.headers['content-type'] ?? '');
    expect(m).not.toBeNull();
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
    const parts = parseByteRanges(res.body, m![1]!);
    expect(parts.map((p) => p.contentRange)).toEqual(['bytes 0-4/100', 'bytes 20-24/100', 'bytes 97-99/100']);
    expect(parts[0]!.body.equals(bytes.subarray(0, 5))).toBe(true);
    expect(parts[1]!.body.equals(bytes.subarray(20, 25))).toBe(true);
    expect(parts[2]!.body.equals(bytes.subarray(97))).toBe(true);
  });

  it('answers an unsatisfiable range with 416 and Content-Range bytes */size', async () => {
    const res = await range('bytes=500-');
    expect(res.status).toBe(416);
    expect(res.headers['content-range']).toBe('bytes */100');
  });

  it('ranges over the plain bytes of a gzipped blob', async () => {
    const text = 'lorem ipsum dolor sit amet '.repeat(40);
    const gz = newFid(VID);
    await putOk(base, gz, text, { 'Content-Type': 'text/plain' });
    const res = await raw(base, `/${gz}`, { headers: { Range: 'bytes=6-10', 'Accept-Encoding': 'gzip' } });
    expect(res.status).toBe(206);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString()).toBe('ipsum');
  });
});

/** Splits a multipart/byteranges body into its parts. */
function parseByteRanges(body: Buffer, boundary: string) {
  const parts: Array<{ contentRange: string; body: Buffer }> = [];
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const afterDelim = at + delimiter.length;
    if (body.subarray(afterDelim, afterDelim + 2).toString() === '--') break;
    const headerEnd = body.indexOf('\r\n\r\n', afterDelim);
    const headers = body.subarray(afterDelim + 2, headerEnd).toString('latin1');
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headerEnd + 4);
    const contentRange = /Content-Range: (.*)/i.exec(headers)![1]!.trim();
    parts.push({ contentRange, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

describe('conditional requests', () => {
  let fid: string;
  let etag: string;
  let lastModified: string;
  beforeAll(async () => {
    fid = newFid(VID);
    await putOk(base, fid, randomBlob(64), {}, '?ts=1700000000');
    const res = await raw(base, `/${fid}`);
    etag = res.headers.etag!;
    lastModified = res.headers['last-modified']!;
    expect(lastModified).toBe(new Date(1_700_000_000_000).toUTCString());
  });

  it('answers 304 to If-None-Match with the exact ETag, 200 to another', async () => {
    const hit = await raw(base, `/${fid}`, { headers: { 'If-None-Match': etag } });
    expect(hit.status).toBe(304);
    expect(hit.body.length).toBe(0);
    expect(hit.headers.etag).toBe(etag);
    const miss = await raw(base, `/${fid}`, { headers: { 'If-None-Match': '"00000000"' } });
    expect(miss.status).toBe(200);
  });

  it('answers 304 to If-Modified-Since at or after Last-Modified, 200 before it', async () => {
    expect((await raw(base, `/${fid}`, { headers: { 'If-Modified-Since': lastModified } })).status).toBe(304);
    const later = new Date(1_700_000_100_000).toUTCString();
    expect((await raw(base, `/${fid}`, { headers: { 'If-Modified-Since': later } })).status).toBe(304);
    const earlier = new Date(1_600_000_000_000).toUTCString();
    expect((await raw(base, `/${fid}`, { headers: { 'If-Modified-Since': earlier } })).status).toBe(200);
  });
});

describe('If-Match and If-Range', () => {
  const v1 = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  const v2 = Buffer.from(Array.from({ length: 100 }, (_, i) => 255 - i));
  // Large enough to be read in pages (large-read.ts), one page and a bit.
  const large = randomBlob(1024 * 1024 + 5000);

  it('answers a resumed download of an overwritten blob whole (200), never a range of the new bytes', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, v1);
    const first = await raw(base, `/${fid}`, { headers: { Range: 'bytes=0-49' } });
    expect(first.status).toBe(206);
    const oldTag = first.headers.etag!;
    const oldDate = first.headers['last-modified']!;
    // Its current version: the Range holds, by ETag or by date.
    for (const ifRange of [oldTag, oldDate]) {
      const rest = await raw(base, `/${fid}`, { headers: { Range: 'bytes=50-', 'If-Range': ifRange } });
      expect(rest.status, ifRange).toBe(206);
      expect(rest.body.equals(v1.subarray(50)), ifRange).toBe(true);
    }
    await putOk(base, fid, v2, {}, '?ts=2000000000');
    // Overwritten: the client's 50 bytes plus a range of these would splice two versions.
    for (const ifRange of [oldTag, oldDate, `W/${oldTag}`]) {
      const rest = await raw(base, `/${fid}`, { headers: { Range: 'bytes=50-', 'If-Range': ifRange } });
      expect(rest.status, ifRange).toBe(200);
      expect(rest.headers['content-range'], ifRange).toBeUndefined();
      expect(rest.body.equals(v2), ifRange).toBe(true);
    }
  });

  it('honours If-Range on a large needle and on a gzipped one', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, large);
    const tag = (await raw(base, `/${fid}`, { method: 'HEAD' })).headers.etag!;
    const held = await raw(base, `/${fid}`, { headers: { Range: 'bytes=10-19', 'If-Range': tag } });
    expect(held.status).toBe(206);
    expect(held.body.equals(large.subarray(10, 20))).toBe(true);
    const other = await raw(base, `/${fid}`, { headers: { Range: 'bytes=10-19', 'If-Range': '"00000000"' } });
    expect(other.status).toBe(200);
    expect(other.body.equals(large)).toBe(true);

    const text = Buffer.from('resume me '.repeat(500));
    const gz = newFid(VID);
    await putOk(base, gz, text, { 'Content-Type': 'text/plain' });
    const gzTag = (await raw(base, `/${gz}`, { method: 'HEAD' })).headers.etag!;
    const ranged = await raw(base, `/${gz}`, {
      headers: { Range: 'bytes=0-5', 'If-Range': gzTag, 'Accept-Encoding': 'gzip' },
    });
    expect(ranged.status).toBe(206);
    expect(ranged.body.toString()).toBe('resume');
    const whole = await raw(base, `/${gz}`, {
      headers: { Range: 'bytes=0-5', 'If-Range': '"00000000"', 'Accept-Encoding': 'gzip' },
    });
    expect(whole.status).toBe(200);
    expect(whole.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(whole.body).equals(text)).toBe(true);
  });

  it('answers If-Match naming another version 412 (before any 304), and * or the current one normally', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, v1);
    const tag = (await raw(base, `/${fid}`)).headers.etag!;
    for (const ifMatch of ['"00000000"', `W/${tag}`]) {
      const res = await raw(base, `/${fid}`, { headers: { 'If-Match': ifMatch, 'If-None-Match': tag } });
      expect(res.status, ifMatch).toBe(412);
      expect(JSON.parse(res.body.toString()).code).toBe('precondition_failed');
    }
    for (const ifMatch of ['*', tag, `"00000000", ${tag}`]) {
      const res = await raw(base, `/${fid}`, { headers: { 'If-Match': ifMatch, Range: 'bytes=0-9' } });
      expect(res.status, ifMatch).toBe(206);
      expect(res.body.equals(v1.subarray(0, 10))).toBe(true);
    }
    expect((await raw(base, `/${fid}`, { headers: { 'If-Match': tag, 'If-None-Match': tag } })).status).toBe(
      304,
    );
  });
});

describe('gzip', () => {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(200));

  it('stores a compressible upload gzipped and serves it gzipped or plain as the client accepts', async () => {
    const fid = newFid(VID);
    const before = (await volumeStatus(base, VID)).size;
    const res = await putOk(base, fid, text, { 'Content-Type': 'text/plain' });
    expect(res.size).toBe(text.length);
    const grew = (await volumeStatus(base, VID)).size - before;
    expect(grew).toBeLessThan(text.length / 4);

    const gz = await raw(base, `/${fid}`, { headers: { 'Accept-Encoding': 'gzip, deflate' } });
    expect(gz.status).toBe(200);
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers.vary).toBe('Accept-Encoding');
    expect(gunzipSync(gz.body).equals(text)).toBe(true);

    const plain = await raw(base, `/${fid}`);
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(text)).toBe(true);

    // fetch asks for gzip itself and undoes it: the bytes still come out plain.
    expect(Buffer.from(await (await fetch(`${base}/${fid}`)).arrayBuffer()).equals(text)).toBe(true);
  });

  it('keeps incompressible uploads as they are', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(4000);
    await putOk(base, fid, bytes, { 'Content-Type': 'text/plain' });
    const res = await raw(base, `/${fid}`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.equals(bytes)).toBe(true);
  });

  it('stores a client-gzipped upload as sent and serves it plain to a client without gzip', async () => {
    const fid = newFid(VID);
    const gzipped = gzipSync(text);
    const res = await putOk(base, fid, gzipped, { 'Content-Type': 'text/plain', 'Content-Encoding': 'gzip' });
    expect(res.size).toBe(text.length);
    const plain = await raw(base, `/${fid}`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.equals(text)).toBe(true);
    const gz = await raw(base, `/${fid}`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.body.equals(gzipped)).toBe(true);
  });

  it('takes a multipart file part sent gzipped (part Content-Encoding, as SeaweedFS clients send it)', async () => {
    // busboy does not report a part's Content-Encoding: the gzip bytes were stored as the blob's data.
    const multipartWith = (encoding: string, data: Buffer) =>
      Buffer.concat([
        Buffer.from(
          '--kelpb\r\nContent-Disposition: form-data; name="file"; filename="fox.txt"\r\n' +
            `Content-Type: text/plain\r\nContent-Encoding: ${encoding}\r\n\r\n`,
        ),
        data,
        Buffer.from('\r\n--kelpb--\r\n'),
      ]);
    const type = { 'Content-Type': 'multipart/form-data; boundary=kelpb' };
    const fid = newFid(VID);
    const stored = await putOk(base, fid, multipartWith('gzip', gzipSync(text)), type);
    expect(stored).toMatchObject({ name: 'fox.txt', size: text.length, mime: 'text/plain' });
    expect((await raw(base, `/${fid}`)).body.equals(text)).toBe(true);
    const gz = await raw(base, `/${fid}`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(text)).toBe(true);

    const br = newFid(VID);
    const refused = await put(base, br, multipartWith('br', brotliCompressSync(text)), type);
    expect(refused.status).toBe(415);
    expect((await raw(base, `/${br}`)).status).toBe(404);
    const notGzip = await put(base, newFid(VID), multipartWith('gzip', text), type);
    expect(notGzip.status).toBe(400);
  });

  it("checks a multipart upload against the request's Content-MD5 (in memory, through busboy, spooled)", async () => {
    for (const [what, data, field] of [
      ['one small part', Buffer.from('checked\n'), false],
      ['a field first (busboy)', Buffer.from('checked\n'), true],
      ['over the spool threshold', randomBlob(1536 * 1024), false],
    ] as const) {
      const form = () => {
        const f = new FormData();
        if (field) f.append('note', 'x');
        f.append('file', new Blob([new Uint8Array(data)]), 'c.bin');
        return f;
      };
      const send = (digest: string) =>
        fetch(`${base}/${newFid(VID)}`, { method: 'POST', body: form(), headers: { 'Content-MD5': digest } });
      const refused = await send(createHash('md5').update('other').digest('base64'));
      expect(refused.status, what).toBe(400);
      expect(((await refused.json()) as { error: string }).error, what).toMatch(/Content-MD5/);
      expect((await send(createHash('md5').update(data).digest('base64'))).status, what).toBe(201);
    }
  });

  it('refuses a body labelled gzip that is not gzip', async () => {
    const res = await put(base, newFid(VID), 'not gzip at all', { 'Content-Encoding': 'gzip' });
    expect(res.status).toBe(400);
  });

  it('refuses a body in any other coding (415, Accept-Encoding: gzip) and stores nothing; takes x-gzip and identity', async () => {
    // Stored as sent and served without its coding, a br body read back as garbage (it was a 201).
    const before = (await volumeStatus(base, VID)).size;
    for (const coding of ['br', 'deflate', 'gzip, br', 'compress']) {
      const fid = newFid(VID);
      const res = await put(base, fid, brotliCompressSync(text), { 'Content-Encoding': coding });
      expect(res.status, coding).toBe(415);
      expect(res.headers.get('accept-encoding'), coding).toBe('gzip');
      expect(((await res.json()) as { code: string }).code).toBe('unsupported_encoding');
      expect((await raw(base, `/${fid}`)).status, coding).toBe(404);
    }
    expect((await volumeStatus(base, VID)).size).toBe(before);
    const xgz = newFid(VID);
    await putOk(base, xgz, gzipSync(text), { 'Content-Type': 'text/plain', 'Content-Encoding': 'x-gzip' });
    expect((await raw(base, `/${xgz}`)).body.equals(text)).toBe(true);
    const identity = newFid(VID);
    await putOk(base, identity, 'plain', { 'Content-Encoding': 'identity' });
    expect((await raw(base, `/${identity}`)).body.toString()).toBe('plain');
  });
});

describe('errors', () => {
  it('answers a wrong cookie and a deleted blob with the same 404', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, 'secret');
    const wrong = await raw(base, `/${withWrongCookie(fid)}`);
    const gone = newFid(VID);
    await putOk(base, gone, 'to delete');
    expect((await fetch(`${base}/${gone}`, { method: 'DELETE' })).status).toBe(202);
    const deleted = await raw(base, `/${gone}`);
    const missing = await raw(base, `/${newFid(VID)}`);
    expect(wrong.status).toBe(404);
    expect(deleted.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(wrong.body.toString()).toBe(deleted.body.toString());
    expect(missing.body.toString()).toBe(deleted.body.toString());
    expect(wrong.headers['content-type']).toBe(deleted.headers['content-type']);
  });

  it('answers a malformed fid with 400', async () => {
    for (const path of ['/3,zz', '/3,0163', '/x,01637037d6', '/3/01637037d6/a/b', '/3,00000000']) {
      expect((await raw(base, path)).status, path).toBe(400);
    }
  });

  it('ignores unknown query parameters on reads, as SeaweedFS does, but refuses them on writes', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, 'x');
    for (const q of ['?v=2', '?utm_source=mail&cb=123', '?widht=200']) {
      const res = await raw(base, `/${fid}${q}`);
      expect(res.status, q).toBe(200);
      expect(res.body.toString(), q).toBe('x');
    }
    // A write's parameters change what is stored: a typo there must not look like success.
    expect((await put(base, newFid(VID), 'x', {}, '?tll=1m')).status).toBe(400);
  });

  it('answers a bad ttl or ts, and a multipart body without a file part, with 400', async () => {
    expect((await put(base, newFid(VID), 'x', {}, '?ttl=5q')).status).toBe(400);
    expect((await put(base, newFid(VID), 'x', {}, '?ts=yesterday')).status).toBe(400);
    const form = new FormData();
    form.append('field', 'no file here');
    expect((await fetch(`${base}/${newFid(VID)}`, { method: 'POST', body: form })).status).toBe(400);
  });

  it('takes uploads in the comma form only', async () => {
    const fid = newFid(VID);
    expect((await fetch(`${base}/${slashForm(fid)}`, { method: 'PUT', body: 'x' })).status).toBe(400);
    expect((await raw(base, `/${fid}`)).status).toBe(404);
  });

  it('answers an unknown volume with 404', async () => {
    expect((await raw(base, '/99,01637037d6')).status).toBe(404);
    expect((await put(base, '99,01637037d6', 'x')).status).toBe(404);
  });

  it('deletes with 202 {size}, then answers 404 to reads and deletes', async () => {
    const fid = newFid(VID);
    const bytes = randomBlob(321);
    await putOk(base, fid, bytes);
    const wrongCookie = await fetch(`${base}/${withWrongCookie(fid)}`, { method: 'DELETE' });
    expect(wrongCookie.status).toBe(404);
    expect((await getBytes(base, `/${fid}`)).equals(bytes)).toBe(true);
    const res = await fetch(`${base}/${fid}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ size: 321 });
    expect((await raw(base, `/${fid}`)).status).toBe(404);
    expect((await fetch(`${base}/${fid}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses a write to a key taken by another cookie', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, 'first');
    const res = await put(base, withWrongCookie(fid), 'second');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect((await getBytes(base, `/${fid}`)).toString()).toBe('first');
  });
});

describe('upload size limit', () => {
  let small: Running;
  beforeAll(async () => {
    small = await startInProcess(tempDir(), { maxUploadBytes: 1024 });
    await assignVolume(small.base, 1);
  });
  afterAll(() => small?.stop());

  it('accepts an upload at the limit', async () => {
    expect((await put(small.base, newFid(1), randomBlob(1024))).status).toBe(201);
  });

  it('answers 413 to a Content-Length over the limit', async () => {
    const res = await raw(small.base, `/${newFid(1)}`, {
      method: 'PUT',
      headers: { 'Content-Length': '2048' },
      body: randomBlob(2048),
    });
    expect(res.status).toBe(413);
  });

  it('answers 413 to a chunked body that grows over the limit', async () => {
    const fid = newFid(1);
    const res = await raw(small.base, `/${fid}`, {
      method: 'PUT',
      headers: { 'Transfer-Encoding': 'chunked' },
      body: [randomBlob(600), randomBlob(600), randomBlob(600)],
    });
    expect(res.status).toBe(413);
    expect((await raw(small.base, `/${fid}`)).status).toBe(404);
  });

  it('answers 413 to a multipart file over the limit', async () => {
    const form = new FormData();
    form.append('file', new Blob([randomBlob(4096)]), 'big.bin');
    const res = await fetch(`${small.base}/${newFid(1)}`, { method: 'POST', body: form });
    expect(res.status).toBe(413);
  });
});

describe('what browsers are given', () => {
  it('keeps the charset given at upload, multipart or raw, and serves it', async () => {
    const text = 'Grüße, ½ € ✓ 日本語\n';
    const form = new FormData();
    form.append('comment', 'a field before the file');
    form.append('file', new Blob([text], { type: 'text/plain; charset=utf-8' }), 'note.txt');
    const multipart = newFid(VID);
    expect((await fetch(`${base}/${multipart}`, { method: 'POST', body: form })).status).toBe(201);
    const rawFid = newFid(VID);
    await putOk(base, rawFid, Buffer.from(text), { 'Content-Type': 'text/plain; charset=utf-8' });
    for (const fid of [multipart, rawFid]) {
      const got = await raw(base, `/${fid}`);
      expect(got.headers['content-type'], fid).toBe('text/plain; charset=utf-8');
      expect(got.body.toString('utf8'), fid).toBe(text);
    }
    // No charset given: none invented.
    const bare = new FormData();
    bare.append('file', new Blob(['plain'], { type: 'text/plain' }), 'bare.txt');
    const bareFid = newFid(VID);
    expect((await fetch(`${base}/${bareFid}`, { method: 'POST', body: bare })).status).toBe(201);
    expect((await raw(base, `/${bareFid}`)).headers['content-type']).toBe('text/plain');
  });

  it('reads dl as SeaweedFS does (1, t, true, TRUE: attachment; 0, false: inline)', async () => {
    const fid = newFid(VID);
    await putOk(base, fid, 'x', { 'Content-Type': 'text/plain' });
    for (const v of ['1', 't', 'true', 'TRUE', 'True']) {
      expect((await raw(base, `/${fid}?dl=${v}`)).headers['content-disposition'], v).toMatch(/^attachment/);
    }
    for (const v of ['0', 'false', 'no', '']) {
      expect((await raw(base, `/${fid}?dl=${v}`)).headers['content-disposition'], v).toMatch(/^inline/);
    }
  });

  it('serves a deleted blob with readDeleted=true until vacuum reclaims it, and 404 without', async () => {
    const vid = VID + 10;
    await assignVolume(base, vid);
    const fid = newFid(vid);
    const bytes = randomBlob(700);
    await putOk(base, fid, bytes);
    expect((await raw(base, `/${fid}`, { method: 'DELETE' })).status).toBe(202);
    expect((await raw(base, `/${fid}`)).status).toBe(404);
    // SeaweedFS compares with "true" exactly.
    expect((await raw(base, `/${fid}?readDeleted=1`)).status).toBe(404);
    const back = await raw(base, `/${fid}?readDeleted=true`);
    expect(back.status).toBe(200);
    expect(back.body.equals(bytes)).toBe(true);
    // A wrong cookie is still a 404, deleted or not.
    expect((await raw(base, `/${withWrongCookie(fid)}?readDeleted=true`)).status).toBe(404);
    const vacuum = await raw(base, `/admin/vacuum?volume=${vid}&garbageThreshold=0`, { method: 'POST' });
    expect(vacuum.status).toBe(200);
    expect((await raw(base, `/${fid}?readDeleted=true`)).status).toBe(404);
  });

  it('answers a volume it does not hold with 404 code volume_not_found (an edge then looks it up again)', async () => {
    const res = await raw(base, '/4000,01637037d6');
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body.toString())).toEqual({ error: 'not found', code: 'volume_not_found' });
    // A missing blob in a volume it holds says only "not found".
    const missing = await raw(base, `/${newFid(VID)}`);
    expect(JSON.parse(missing.body.toString())).toEqual({ error: 'not found', code: 'not_found' });
  });
});
