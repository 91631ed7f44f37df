/**
 * GET/HEAD of a blob in any of the three URL forms (brief §5): headers from
 * the needle, 304s, single and multiple Ranges, gzip passed through or
 * undone, active content as attachment. Small needles are read whole with one
 * pread (volume.read); large ones stream (large-read.ts).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { parseFidPath } from '../../shared/fid.ts';
import { FLAG_GZIP, type NeedleMeta } from '../../shared/needle.ts';
import { byteRangesBody } from '../http/byteranges.ts';
import { httpDate, isNotModified } from '../http/conditional.ts';
import { acceptsGzip } from '../http/encoding.ts';
import { essence, isInlineSafe, mimeFromExtension, OCTET_STREAM } from '../http/mime.ts';
import { contentRange, parseRange } from '../http/range.ts';
import { serveLargeNeedle } from './large-read.ts';
import { assertKnownParams } from './params.ts';
import type { Store } from './store.ts';

const READ_PARAMS = new Set(['dl']);
const DECODER = new TextDecoder();

export interface ReadConfig {
  /** Extra mime types served inline (e.g. text/html on a domain of its own). */
  alsoInline?: ReadonlySet<string>;
}

export function etagOf(checksum: number): string {
  return `"${(checksum >>> 0).toString(16).padStart(8, '0')}"`;
}

/** `filename` for ASCII-safe names plus RFC 8187 `filename*` so any UTF-8 name survives. */
function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  if (!name) return kind;
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Stored pairs come back as `Kelp-<name>` headers (never bare: a pair must not become Set-Cookie). */
function pairHeaders(pairs: Uint8Array | undefined, headers: OutgoingHttpHeaders): void {
  if (!pairs || pairs.length === 0) return;
  try {
    const parsed = JSON.parse(DECODER.decode(pairs)) as Record<string, unknown>;
    for (const [k, v] of Object.entries(parsed)) {
      const value = String(v);
      if (/^[A-Za-z0-9-]+$/.test(k) && !/[\r\n]/.test(value)) headers[`Kelp-${k}`] = value;
    }
  } catch {
    // Pairs written by another tool that are not JSON are not ours to interpret.
  }
}

/** The headers every successful read carries, from the needle and the URL. */
export function blobHeaders(
  meta: NeedleMeta & { checksum: number },
  urlName: string | undefined,
  urlExt: string | undefined,
  download: boolean,
  config: ReadConfig,
): { headers: OutgoingHttpHeaders; mime: string } {
  const stored = meta.mime && meta.mime.length > 0 ? DECODER.decode(meta.mime) : '';
  const name = urlName ?? (meta.name && meta.name.length > 0 ? DECODER.decode(meta.name) : '');
  const dot = name.lastIndexOf('.');
  const mime =
    (stored && essence(stored) !== OCTET_STREAM ? stored : undefined) ??
    (urlExt ? mimeFromExtension(urlExt) : undefined) ??
    (dot > 0 ? mimeFromExtension(name.slice(dot + 1)) : undefined) ??
    OCTET_STREAM;
  const inline = !download && isInlineSafe(mime, config.alsoInline);
  const headers: OutgoingHttpHeaders = {
    'Content-Type': mime,
    ETag: etagOf(meta.checksum),
    'Accept-Ranges': 'bytes',
    'X-Content-Type-Options': 'nosniff',
    'Content-Disposition': contentDisposition(inline ? 'inline' : 'attachment', name),
  };
  if (meta.lastModified !== undefined) headers['Last-Modified'] = httpDate(meta.lastModified);
  if (meta.flags & FLAG_GZIP) headers.Vary = 'Accept-Encoding';
  pairHeaders(meta.pairs, headers);
  return { headers, mime };
}

export async function handleRead(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  config: ReadConfig,
): Promise<void> {
  const { fid, ext, name } = parseFidPath(pathname);
  if (query) assertKnownParams(query, READ_PARAMS);
  const download = query?.get('dl') === 'true' || query?.get('dl') === '1';
  const volume = store.get(fid.volumeId);
  const found = volume.read(fid.key, fid.cookie);
  const { headers, mime } = blobHeaders(found.needle, name, ext, download, config);
  if (isNotModified(req.headers, { etag: headers.ETag as string, lastModified: found.needle.lastModified })) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  if (found.kind === 'large') {
    await serveLargeNeedle(req, res, volume, found, headers, mime);
    return;
  }
  let body: Uint8Array = found.needle.data;
  const head = req.method === 'HEAD';
  if (found.needle.flags & FLAG_GZIP) {
    if (acceptsGzip(req) && req.headers.range === undefined) {
      headers['Content-Encoding'] = 'gzip';
      headers['Content-Length'] = body.length;
      res.writeHead(200, headers);
      res.end(head ? undefined : body);
      return;
    }
    body = gunzipSync(body);
  }
  const ranges = parseRange(req.headers.range, body.length);
  if (ranges === null) {
    headers['Content-Length'] = body.length;
    res.writeHead(200, headers);
    res.end(head ? undefined : body);
    return;
  }
  if (ranges.length === 1) {
    const r = ranges[0]!;
    headers['Content-Range'] = contentRange(r, body.length);
    headers['Content-Length'] = r.end - r.start + 1;
    res.writeHead(206, headers);
    res.end(head ? undefined : body.subarray(r.start, r.end + 1));
    return;
  }
  const multi = byteRangesBody(ranges, body.length, mime, (r) => body.subarray(r.start, r.end + 1));
  headers['Content-Type'] = multi.contentType;
  headers['Content-Length'] = multi.contentLength;
  res.writeHead(206, headers);
  if (head) {
    res.end();
    return;
  }
  for await (const chunk of multi.chunks()) res.write(chunk);
  res.end();
}
