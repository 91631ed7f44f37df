/**
 * The one place on origin where a thrown value becomes an HTTP response.
 * Status and body come from shared/errors.ts; this file only adds the
 * headers some errors imply and takes care of the connection.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  errorBody,
  httpStatusOf,
  KelpError,
  RangeNotSatisfiableError,
  UnsupportedEncodingError,
} from '../../shared/errors.ts';
import { rootLogger } from '../observability/log.ts';
import { requestIdOf } from '../observability/request-id.ts';

/**
 * `?pretty=<anything>` asks for indented JSON, as SeaweedFS answers it (its
 * docs and scripts use `?pretty=y`). Asked of the URL only when it mentions
 * `pretty`, so other requests pay one substring search.
 */
function wantsPretty(url: string | undefined): boolean {
  if (url === undefined || !url.includes('pretty=')) return false;
  return Boolean(new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('pretty'));
}

/** JSON response with an exact Content-Length; HEAD gets the headers only. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const bytes = Buffer.from(
    wantsPretty(res.req?.url) ? `${JSON.stringify(body, null, 2)}\n` : JSON.stringify(body),
  );
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': bytes.length,
  });
  res.end(res.req?.method === 'HEAD' ? undefined : bytes);
}

/**
 * Headers that describe the body or its caching: set for a success that did
 * not happen, they would mislabel the error (gzip, a Content-Length) or let a
 * CDN keep it for a year. Others (CORS, request ids) stay.
 */
const SUCCESS_ONLY_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-range',
  'content-disposition',
  'content-language',
  'content-location',
  'etag',
  'last-modified',
  'cache-control',
  'expires',
  'accept-ranges',
];

// Unknown errors are bugs: log each one once, even if it is rethrown through
// several handlers and reaches sendError more than once.
const logged = new WeakSet<object>();

function logUnknown(err: unknown, req: IncomingMessage | undefined): void {
  if (typeof err === 'object' && err !== null) {
    if (logged.has(err)) return;
    logged.add(err);
  }
  rootLogger().error(
    { component: 'http', err, reqId: req && requestIdOf(req), method: req?.method, url: req?.url },
    'unexpected error',
  );
}

/**
 * Whether the request declared a body that has not been received in full.
 * `complete` alone will not do: a body-less GET is not yet "complete" while
 * its handler runs synchronously, and closing those would end keep-alive
 * after every 404.
 */
function bodyPending(req: IncomingMessage | undefined): boolean {
  if (req === undefined || req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Answer `err`. KelpErrors say what they are; anything else is a 500 that
 * says nothing of its internals and is logged to stderr.
 *
 * - Headers set before the failure that describe the body or its caching
 *   (ETag, Content-Encoding, Cache-Control...) are dropped.
 * - 416 carries `Content-Range: bytes * /size` (RFC 9110 §15.5.17); errors with
 *   `retryAfter` carry `Retry-After`.
 * - If the request body was not read to its end (a 413, or an error before the
 *   handler consumed the upload), the connection is closed after the answer:
 *   keeping it alive would mean reading, and discarding, the rest of an
 *   upload we already refused.
 * - If the response has already started, no status can be sent any more: the
 *   socket is destroyed so the client sees a truncated response, never a
 *   short body that looks complete.
 */
export function sendError(res: ServerResponse, err: unknown): void {
  if (!(err instanceof KelpError)) logUnknown(err, res.req);
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  for (const name of SUCCESS_ONLY_HEADERS) res.removeHeader(name);
  const headers: OutgoingHttpHeaders = {};
  if (err instanceof RangeNotSatisfiableError) headers['Content-Range'] = `bytes */${err.size}`;
  if (err instanceof UnsupportedEncodingError) headers['Accept-Encoding'] = err.accepted;
  if (err instanceof KelpError && err.retryAfter !== undefined) {
    headers['Retry-After'] = String(Math.max(0, Math.ceil(err.retryAfter)));
  }
  const status = httpStatusOf(err);
  const req = res.req;
  if (bodyPending(req)) {
    if (status !== 413 && drainable(req)) {
      // A small body: read it to its end before answering, so a client still
      // sending never meets a closed socket (EPIPE) instead of our status.
      let sent = false;
      const send = (close: boolean) => {
        if (sent) return;
        sent = true;
        clearTimeout(timer);
        sendJson(res, status, errorBody(err), close ? { ...headers, Connection: 'close' } : headers);
      };
      const timer = setTimeout(() => send(true), DRAIN_TIMEOUT_MS);
      req.once('end', () => send(false));
      req.once('close', () => send(true));
      req.resume();
      return;
    }
    headers.Connection = 'close';
  }
  sendJson(res, status, errorBody(err), headers);
}

/** Refused bodies up to this size are read and discarded so the connection can stay open. */
const DRAIN_LIMIT_BYTES = 1024 * 1024;
const DRAIN_TIMEOUT_MS = 5_000;

function drainable(req: IncomingMessage): boolean {
  const declared = Number(req.headers['content-length']);
  return (
    req.headers['transfer-encoding'] === undefined &&
    Number.isFinite(declared) &&
    declared <= DRAIN_LIMIT_BYTES
  );
}
