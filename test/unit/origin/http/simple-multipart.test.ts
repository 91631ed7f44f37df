/**
 * The in-memory reading of single-file multipart bodies must give what busboy
 * gives, or decline. Each body is parsed both ways through parseUpload: with a
 * Content-Length (read whole, the fast path when it applies) and without one
 * (streamed through busboy, as before).
 */

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSimpleMultipart } from '../../../../origin/http/simple-multipart.ts';
import { parseUpload } from '../../../../origin/http/upload.ts';
import { removeTempDirs, tempDir } from '../../../support/temp-dirs.ts';

const B = 'XbOuNdArY7f3a';
const TYPE = `multipart/form-data; boundary=${B}`;

function request(body: Buffer, withLength: boolean): IncomingMessage {
  const headers: Record<string, string> = { 'content-type': TYPE };
  if (withLength) headers['content-length'] = String(body.length);
  return Object.assign(Readable.from([body], { objectMode: false }), {
    headers,
    complete: true,
  }) as unknown as IncomingMessage;
}

function part(headers: string[], data: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from(`--${B}\r\n${headers.join('\r\n')}\r\n\r\n`), Buffer.from(data)]);
}

function form(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts.flatMap((p) => [p, Buffer.from('\r\n')]), Buffer.from(`--${B}--\r\n`)]);
}

afterAll(removeTempDirs);

async function bothWays(body: Buffer) {
  const dir = tempDir('kelp-simple-multipart-');
  // A refusal counts too: both ways must refuse alike.
  const read = async (withLength: boolean) => {
    try {
      const u = await parseUpload(request(body, withLength), '', 10 * 1024 * 1024, dir);
      return { name: u.name, mime: u.mime, data: u.data?.toString('latin1'), gzipped: u.gzipped };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  return { streamed: await read(false), whole: await read(true) };
}

describe('parseSimpleMultipart', () => {
  it('reads what curl -F sends, as busboy does, without copying the bytes', async () => {
    const body = form(
      part(
        [
          'Content-Disposition: form-data; name="file"; filename="a.txt"',
          'Content-Type: text/plain; charset=utf-8',
        ],
        'hello',
      ),
    );
    const simple = parseSimpleMultipart(body, TYPE);
    expect(simple).toMatchObject({ name: 'a.txt', mime: 'text/plain; charset=utf-8' });
    expect(simple!.data.toString()).toBe('hello');
    expect(simple!.data.buffer).toBe(body.buffer);
    const { streamed, whole } = await bothWays(body);
    expect(whole).toEqual(streamed);
    expect(whole.mime).toBe('text/plain; charset=utf-8');
  });

  it('gives text/plain to a part without a type and no type to octet-stream, as busboy does', async () => {
    for (const headers of [
      ['Content-Disposition: form-data; name="f"; filename="b.bin"'],
      [
        'content-disposition: form-data; filename="b.bin"; name="f"',
        'content-type: application/octet-stream',
      ],
    ]) {
      const body = form(part(headers, 'x'));
      expect(parseSimpleMultipart(body, TYPE)).toBeDefined();
      const { streamed, whole } = await bothWays(body);
      expect(whole).toEqual(streamed);
    }
  });

  it('declines what it does not read exactly like busboy, and busboy still reads it', async () => {
    const file = part(['Content-Disposition: form-data; name="file"; filename="a.txt"'], 'data');
    const cases = [
      // A field before the file, or a second part.
      form(part(['Content-Disposition: form-data; name="field"'], 'v'), file),
      form(file, part(['Content-Disposition: form-data; name="g"; filename="b.txt"'], 'other')),
      // Names busboy changes: a path (basename), UTF-8, the extended form.
      form(part(['Content-Disposition: form-data; name="file"; filename="dir/a.txt"'], 'd')),
      form(part(['Content-Disposition: form-data; name="file"; filename="é.txt"'], 'd')),
      form(part(['Content-Disposition: form-data; name="file"; filename*=UTF-8\'\'a%20b.txt'], 'd')),
      // A preamble, another header, no file name.
      Buffer.concat([Buffer.from('preamble\r\n'), form(file)]),
      form(part(['Content-Disposition: form-data; name="file"; filename="a"', 'X-Other: 1'], 'd')),
      form(part(['Content-Disposition: form-data; name="file"'], 'd')),
    ];
    for (const body of cases) {
      expect(parseSimpleMultipart(body, TYPE)).toBeUndefined();
      const { streamed, whole } = await bothWays(body);
      expect(whole).toEqual(streamed);
    }
  });

  it('agrees with busboy on generated single-file bodies', async () => {
    const token = fc.stringMatching(/^[a-z0-9._-]{1,12}$/);
    await fc.assert(
      fc.asyncProperty(
        token,
        fc.option(fc.constantFrom('text/plain', 'image/png', 'application/json; charset=utf-8', 'TEXT/HTML')),
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        async (name, type, data, nameFirst) => {
          const disp = nameFirst
            ? `Content-Disposition: form-data; name="file"; filename="${name}"`
            : `Content-Disposition: form-data; filename="${name}"; name="file"`;
          // The boundary inside the data (without its CRLF) must not end the part.
          const bytes = Buffer.concat([Buffer.from(data), Buffer.from(`--${B}`)]);
          const body = form(part(type ? [disp, `Content-Type: ${type}`] : [disp], bytes));
          const { streamed, whole } = await bothWays(body);
          expect(whole).toEqual(streamed);
        },
      ),
      { numRuns: 300 },
    );
  });
});
