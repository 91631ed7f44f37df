import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { byteRangesBody } from '../../../../origin/http/byteranges.ts';
import { TruncatedDataError } from '../../../../shared/errors.ts';
import type { ByteRange } from '../../../../shared/range.ts';

const blob = new TextEncoder().encode('0123456789abcdefghij');
const read = (r: ByteRange) => blob.subarray(r.start, r.end + 1);

async function collect(chunks: AsyncGenerator<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  return Buffer.concat(parts);
}

describe('byteRangesBody', () => {
  it('frames each range with its Content-Type and Content-Range', async () => {
    const ranges = [
      { start: 0, end: 3 },
      { start: 10, end: 12 },
    ];
    const body = byteRangesBody(ranges, blob.length, 'text/plain', read, 'BOUNDARY');
    expect(body.contentType).toBe('multipart/byteranges; boundary=BOUNDARY');
    const bytes = await collect(body.chunks());
    expect(bytes.toString('latin1')).toBe(
      '--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/20\r\n\r\n0123' +
        '\r\n--BOUNDARY\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-12/20\r\n\r\nabc' +
        '\r\n--BOUNDARY--\r\n',
    );
    expect(body.contentLength).toBe(bytes.length);
  });

  it('computes the exact Content-Length before reading any part', async () => {
    let reads = 0;
    const ranges = [
      { start: 0, end: 0 },
      { start: 5, end: 19 },
      { start: 2, end: 3 },
    ];
    const body = byteRangesBody(ranges, blob.length, 'image/png', (r) => {
      reads++;
      return Promise.resolve(read(r));
    });
    expect(reads).toBe(0);
    const bytes = await collect(body.chunks());
    expect(reads).toBe(3);
    expect(bytes.length).toBe(body.contentLength);
  });

  it('never lets an uploaded content type inject part headers', async () => {
    const body = byteRangesBody([{ start: 0, end: 0 }], 20, 'text/plain\r\nX-Evil: 1', read, 'b');
    const out = (await collect(body.chunks())).toString('latin1');
    expect(out).not.toContain('X-Evil');
    expect(out).toContain('Content-Type: application/octet-stream\r\n');
  });

  it('uses a fresh random boundary by default', () => {
    const a = byteRangesBody([{ start: 0, end: 1 }], 20, 'text/plain', read);
    const b = byteRangesBody([{ start: 0, end: 1 }], 20, 'text/plain', read);
    expect(a.contentType).toMatch(/^multipart\/byteranges; boundary=[0-9a-f]{24}$/);
    expect(a.contentType).not.toBe(b.contentType);
  });

  it('stops with TruncatedDataError on a short read instead of corrupting the framing', async () => {
    const body = byteRangesBody([{ start: 0, end: 9 }], 20, 'text/plain', () => blob.subarray(0, 5));
    await expect(collect(body.chunks())).rejects.toBeInstanceOf(TruncatedDataError);
  });

  it('pipes through a node stream', async () => {
    const body = byteRangesBody(
      [
        { start: 0, end: 1 },
        { start: 4, end: 5 },
      ],
      20,
      'text/plain',
      read,
      'b',
    );
    const out = await text(Readable.from(body.chunks()));
    expect(out).toContain('Content-Range: bytes 4-5/20\r\n\r\n45\r\n--b--\r\n');
    expect(Buffer.byteLength(out)).toBe(body.contentLength);
  });
});
