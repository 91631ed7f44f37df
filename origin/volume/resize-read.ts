/**
 * GET of an image variant (`?width=&height=&mode=&format=&quality=` or
 * `?preset=`): the stored bytes resized by sharp (resize.ts), with an ETag of
 * its own per variant, 304s decided before any pixel is touched, and Range
 * over the variant. A blob that is not an image Kelp resizes is served as it
 * is (unless a format was demanded: 400).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { effectiveRange, preconditionOf } from '../../shared/conditional.ts';
import { crc32c } from '../../shared/crc.ts';
import { PreconditionFailedError, UnprocessableError } from '../../shared/errors.ts';
import type { ParsedFid } from '../../shared/fid.ts';
import { essence } from '../../shared/mime.ts';
import { FLAG_GZIP } from '../../shared/needle.ts';
import { assertChecksum } from '../../shared/needle-decode.ts';
import { contentRange, parseRange } from '../../shared/range.ts';
import { canonicalResizeQuery, negotiateFormat, type ResizeParams } from '../../shared/resize.ts';
import { REQUEST_ID_HEADER, requestIdOf } from '../observability/request-id.ts';
import { blobHeaders, contentDisposition, type ReadConfig } from './blob-headers.ts';
import type { ReadResult, Volume } from './volume.ts';

/** Extensions of the formats a variant can be converted to. */
const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/avif': 'avif',
  'image/gif': 'gif',
};

/** `photo.png` -> `photo.webp` for image/webp; a name without an extension gets one. */
function withExtension(name: string, mime: string): string {
  const ext = EXTENSIONS[mime];
  if (!ext) return name;
  const dot = name.lastIndexOf('.');
  return `${dot > 0 ? name.slice(0, dot) : name}.${ext}`;
}

/** FNV-1a of the variant's canonical form: a short, stable suffix for its ETag. */
function variantTag(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

async function sourceBytes(found: ReadResult, maxBytes: number): Promise<Uint8Array> {
  let data: Uint8Array;
  if (found.kind === 'whole') {
    data = found.needle.data;
  } else {
    if (found.dataSize > maxBytes) {
      throw new UnprocessableError(
        `image of ${found.dataSize} bytes is over the ${maxBytes}-byte resize limit`,
      );
    }
    // Whole, as sharp needs it (at most maxSourceBytes): one read of the data file, held against a swap.
    const release = found.source.hold();
    try {
      data = await found.source.readAt(found.dataOffset, found.dataSize);
    } finally {
      release();
    }
    // A whole needle's CRC is checked by volume.read; a large one's only here (as large-read.ts does while streaming).
    assertChecksum(found.needle.id, found.needle.checksum, crc32c(data));
  }
  return found.needle.flags & FLAG_GZIP ? gunzipSync(data) : data;
}

export async function serveResized(
  req: IncomingMessage,
  res: ServerResponse,
  volume: Volume,
  found: ReadResult,
  params: ResizeParams,
  target: { fid: ParsedFid; name?: string; ext?: string; download: boolean },
  config: ReadConfig,
): Promise<boolean> {
  const resizer = config.resizer!;
  const { headers, mime, name } = blobHeaders(
    found.needle,
    target.name,
    target.ext,
    target.download,
    config,
    volume.expiresAt(found.needle),
  );
  const requestId = requestIdOf(req);
  if (requestId !== undefined) headers[REQUEST_ID_HEADER] = requestId;
  const format =
    params.format === 'auto' ? negotiateFormat(req.headers.accept, '') || 'source' : params.format;
  const etag = `"${(headers.ETag as string).slice(1, -1)}-${variantTag(`${canonicalResizeQuery(params)}|${format}`)}"`;
  const validators = { etag, lastModified: found.needle.lastModified };
  const outcome = preconditionOf(req.headers, validators);
  if (outcome === 'failed')
    throw new PreconditionFailedError('If-Match names no current version of this image');
  if (outcome === 'not-modified') {
    res.writeHead(304, { ...headers, ETag: etag, ...(params.format === 'auto' ? { Vary: 'Accept' } : {}) });
    res.end();
    return true;
  }
  const source = await sourceBytes(found, resizer.config.maxSourceBytes);
  const out = await resizer.resize(source, mime, params, req.headers.accept);
  if (!out) return false;
  headers['Content-Type'] = out.mime;
  if (out.mime !== essence(mime) && name) {
    // A converted variant is saved under its own format's extension (photo.png served as WebP: photo.webp).
    const kind = String(headers['Content-Disposition']).startsWith('attachment') ? 'attachment' : 'inline';
    headers['Content-Disposition'] = contentDisposition(kind, withExtension(name, out.mime));
  }
  headers.ETag = etag;
  delete headers.Vary;
  if (out.variesByAccept) headers.Vary = 'Accept';
  const body = out.data;
  const head = req.method === 'HEAD';
  const ranges = parseRange(effectiveRange(req.headers, validators), body.length);
  if (ranges === null || ranges.length > 1) {
    // Several ranges of a rendered variant are answered whole: a 200 is always correct (RFC 9110 §14.2).
    headers['Content-Length'] = body.length;
    res.writeHead(200, headers);
    res.end(head ? undefined : body);
    return true;
  }
  const r = ranges[0]!;
  headers['Content-Range'] = contentRange(r, body.length);
  headers['Content-Length'] = r.end - r.start + 1;
  res.writeHead(206, headers);
  res.end(head ? undefined : body.subarray(r.start, r.end + 1));
  return true;
}
