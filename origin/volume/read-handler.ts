/**
 * GET/HEAD of a blob in any of the three URL forms (docs/format.md §8): headers from
 * the needle, 304s, single and multiple Ranges, gzip passed through or
 * undone, active content as attachment, `Expires` when the blob has a TTL (so
 * a cache in front never keeps it longer). Small needles are read whole with
 * one read of the volume's data file, on disk or in a tier (volume.read);
 * large ones stream from it (large-read.ts). Query parameters
 * other than the ones below are ignored, as SeaweedFS ignores them (cache
 * busters such as `?v=2` are common on public URLs).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { blobHeaders } from '../../shared/blob-headers.ts';
import { effectiveRange, preconditionOf } from '../../shared/conditional.ts';
import { InvalidParamError, PreconditionFailedError } from '../../shared/errors.ts';
import { type ParsedFid, parseFidPath } from '../../shared/fid.ts';
import { FLAG_GZIP } from '../../shared/needle.ts';
import { isTrueParam } from '../../shared/query.ts';
import { contentRange, parseRange } from '../../shared/range.ts';
import { canonicalResizeQuery, parseResizeParams, type ResizeParams } from '../../shared/resize.ts';
import { verifyResizeSignature } from '../../shared/resize-signature.ts';
import { byteRangesBody } from '../http/byteranges.ts';
import { acceptsGzip } from '../http/encoding.ts';
import { REQUEST_ID_HEADER, requestIdOf } from '../observability/request-id.ts';
import type { ReadConfig } from './blob-headers.ts';
import { serveLargeNeedle } from './large-read.ts';
import { serveResized } from './resize-read.ts';
import type { Store } from './store.ts';
import type { ReadResult, Volume } from './volume.ts';

/**
 * Synchronous for a small needle read on the event loop, the hot path (no
 * promise is made for it); a promise for reads off the loop (a cold disk, an
 * object store), large needles and multipart ranges.
 */
export function handleRead(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  pathname: string,
  query: URLSearchParams | null,
  config: ReadConfig,
): void | Promise<void> {
  const { fid, ext, name } = parseFidPath(pathname);
  const download = isTrueParam(query?.get('dl'));
  const resize = query ? parseResizeParams(query, config.resizeLimits) : null;
  const volume = store.get(fid.volumeId);
  // SeaweedFS compares with "true" exactly; the data of a deleted needle is there until vacuum.
  const readDeleted = query?.get('readDeleted') === 'true';
  if (resize)
    return handleResizedRead(
      req,
      res,
      volume,
      pathname,
      query!,
      resize,
      { fid, name, ext, download },
      config,
      readDeleted,
    );
  // One read path for every data file: synchronous when the volume's data file read synchronously.
  const found = volume.read(fid.key, fid.cookie, readDeleted);
  if (found instanceof Promise) {
    return found.then((f) => respond(req, res, volume, f, name, ext, download, config));
  }
  return respond(req, res, volume, found, name, ext, download, config);
}

async function handleResizedRead(
  req: IncomingMessage,
  res: ServerResponse,
  volume: Volume,
  pathname: string,
  query: URLSearchParams,
  params: ResizeParams,
  target: { fid: ParsedFid; name?: string; ext?: string; download: boolean },
  config: ReadConfig,
  readDeleted: boolean,
): Promise<void> {
  if (!config.resizer) throw new InvalidParamError('image resizing is not enabled on this server');
  if (config.resizeSigningKey && !query.has('preset')) {
    await verifyResizeSignature(
      config.resizeSigningKey,
      pathname,
      canonicalResizeQuery(params),
      query.get('sig'),
    );
  }
  const found = await volume.read(target.fid.key, target.fid.cookie, readDeleted);
  if (await serveResized(req, res, volume, found, params, target, config)) return;
  await respond(req, res, volume, found, target.name, target.ext, target.download, config);
}

function respond(
  req: IncomingMessage,
  res: ServerResponse,
  volume: Volume,
  found: ReadResult,
  name: string | undefined,
  ext: string | undefined,
  download: boolean,
  config: ReadConfig,
): void | Promise<void> {
  const { headers, mime } = blobHeaders(
    found.needle,
    name,
    ext,
    download,
    config,
    volume.expiresAt(found.needle),
  );
  // In the headers object, not res.setHeader: writeHead then stays on node's fast path.
  const requestId = requestIdOf(req);
  if (requestId !== undefined) headers[REQUEST_ID_HEADER] = requestId;
  const h = req.headers;
  // Most reads carry no precondition: no validators object is made for them.
  let range = h.range;
  if (
    h['if-none-match'] !== undefined ||
    h['if-modified-since'] !== undefined ||
    h['if-match'] !== undefined ||
    h['if-range'] !== undefined
  ) {
    const validators = { etag: headers.ETag as string, lastModified: found.needle.lastModified };
    const outcome = preconditionOf(h, validators);
    if (outcome === 'failed')
      throw new PreconditionFailedError('If-Match names no current version of this blob');
    if (outcome === 'not-modified') {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    range = effectiveRange(h, validators);
  }
  if (found.kind === 'large') return serveLargeNeedle(req, res, volume, found, headers, mime, range);
  let body: Uint8Array = found.needle.data;
  const head = req.method === 'HEAD';
  if (found.needle.flags & FLAG_GZIP) {
    if (acceptsGzip(req) && range === undefined) {
      headers['Content-Encoding'] = 'gzip';
      headers['Content-Length'] = body.length;
      res.writeHead(200, headers);
      res.end(head ? undefined : body);
      return;
    }
    body = gunzipSync(body);
  }
  const ranges = parseRange(range, body.length);
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
  const whole = body;
  const multi = byteRangesBody(ranges, whole.length, mime, (r) => whole.subarray(r.start, r.end + 1));
  headers['Content-Type'] = multi.contentType;
  headers['Content-Length'] = multi.contentLength;
  res.writeHead(206, headers);
  if (head) {
    res.end();
    return;
  }
  return writeParts(res, multi.chunks());
}

async function writeParts(res: ServerResponse, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const chunk of chunks) res.write(chunk);
  res.end();
}
