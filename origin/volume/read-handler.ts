/**
 * GET/HEAD of a blob in any of the three URL forms (brief §5): headers from
 * the needle, 304s, single and multiple Ranges, gzip passed through or
 * undone, active content as attachment. Small needles are read whole with one
 * pread (volume.read); large ones stream (large-read.ts).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { InvalidParamError } from '../../shared/errors.ts';
import { type ParsedFid, parseFidPath } from '../../shared/fid.ts';
import { FLAG_GZIP, type NeedleMeta } from '../../shared/needle.ts';
import {
  canonicalResizeQuery,
  parseResizeParams,
  RESIZE_PARAMS,
  type ResizeLimits,
  type ResizeParams,
} from '../../shared/resize.ts';
import { verifyResizeSignature } from '../../shared/resize-signature.ts';
import { byteRangesBody } from '../http/byteranges.ts';
import { httpDate, isNotModified } from '../http/conditional.ts';
import { acceptsGzip } from '../http/encoding.ts';
import { essence, isInlineSafe, mimeFromExtension, OCTET_STREAM } from '../http/mime.ts';
import { contentRange, parseRange } from '../http/range.ts';
import { serveLargeNeedle } from './large-read.ts';
import { assertKnownParams } from './params.ts';
import type { Resizer } from './resize.ts';
import { serveResized } from './resize-read.ts';
import type { Store } from './store.ts';
import type { ReadResult, Volume } from './volume.ts';

const READ_PARAMS = new Set(['dl', 'sig', 'jwt', ...RESIZE_PARAMS]);
const DECODER = new TextDecoder();

export interface ReadConfig {
  /** Extra mime types served inline (e.g. text/html on a domain of its own). */
  alsoInline?: ReadonlySet<string>;
  /** Makes image variants; without one, resize params are refused (400). */
  resizer?: Resizer;
  /** Bounds and named presets of resize requests. */
  resizeLimits?: ResizeLimits;
  /** With a key, free resize params need `sig` (HMAC over path + canonical params); presets do not. */
  resizeSigningKey?: string;
}

/**
 * UTF-8 bytes of a stored name or mime type as a string. These fields are
 * short and nearly always ASCII, which String.fromCharCode turns into a
 * string several times faster than a TextDecoder call; anything else goes
 * through the decoder, so the result is the same either way.
 */
function decodeField(bytes: Uint8Array | undefined): string {
  if (bytes === undefined || bytes.length === 0) return '';
  if (bytes.length > 64) return DECODER.decode(bytes);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return DECODER.decode(bytes);
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The quoted CRC in 8 lowercase hex digits. By table: a CRC above 2^31 is a
 * heap number, whose toString(16) is ten times slower, on every read.
 */
export function etagOf(checksum: number): string {
  const c = checksum >>> 0;
  return `"${BYTE_HEX[c >>> 24]}${BYTE_HEX[(c >>> 16) & 0xff]}${BYTE_HEX[(c >>> 8) & 0xff]}${BYTE_HEX[c & 0xff]}"`;
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
  const stored = decodeField(meta.mime);
  const name = urlName ?? decodeField(meta.name);
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

/**
 * Synchronous for a small needle on local disk, the hot path (no promise is
 * made for it); a promise for remote volumes, large needles and multipart ranges.
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
  if (query) assertKnownParams(query, READ_PARAMS);
  const download = query?.get('dl') === 'true' || query?.get('dl') === '1';
  const resize = query ? parseResizeParams(query, config.resizeLimits) : null;
  const volume = store.get(fid.volumeId);
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
    );
  // Tiered volumes too: readAdaptive reads them through their backend.
  const found = volume.readAdaptive(fid.key, fid.cookie);
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
  const found = volume.isRemote
    ? await volume.readRemote(target.fid.key, target.fid.cookie)
    : volume.read(target.fid.key, target.fid.cookie);
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
  const { headers, mime } = blobHeaders(found.needle, name, ext, download, config);
  if (isNotModified(req.headers, { etag: headers.ETag as string, lastModified: found.needle.lastModified })) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  if (found.kind === 'large') return serveLargeNeedle(req, res, volume, found, headers, mime);
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
