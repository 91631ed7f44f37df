/**
 * Writes through the edge: `POST /submit` (the master assigns and uploads in
 * one call; the body streams through, see upload-body.ts) and `DELETE /<fid>`
 * (forwarded to a replica, which replicates it), both with the client's
 * Authorization. A delete purges every cached variant of the file in this colo.
 */
import { BadRequestError, PayloadTooLargeError, UnavailableError } from '../shared/errors.ts';
import { formatFid, parseFidPath } from '../shared/fid.ts';
import { purgeFile } from './cache.ts';
import { type Env, edgeConfig } from './env.ts';
import { forgetConfirmed } from './freshness.ts';
import { fetchFromReplicas } from './origin.ts';
import { UploadBody } from './upload-body.ts';

/** Room for the multipart framing around a file of the largest allowed size. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

function forwardHeaders(request: Request): Headers {
  const h = new Headers();
  for (const name of ['authorization', 'content-type', 'content-length']) {
    const v = request.headers.get(name);
    if (v !== null) h.set(name, v);
  }
  return h;
}

function declaredLength(request: Request): number | undefined {
  const raw = request.headers.get('content-length');
  if (raw === null) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new BadRequestError('Content-Length must be a whole number of bytes');
  return Number(raw);
}

/**
 * The body as the origin request's: with a declared length it goes out with
 * that Content-Length (FixedLengthStream), else chunked.
 */
function outgoing(body: UploadBody, length: number | undefined): ReadableStream<Uint8Array> {
  const stream = body.stream();
  if (length === undefined) return stream;
  const fixed = new FixedLengthStream(length);
  stream.pipeTo(fixed.writable).catch(() => {});
  return fixed.readable;
}

export async function handleSubmit(request: Request, env: Env): Promise<Response> {
  const config = edgeConfig(env);
  const url = new URL(request.url);
  const limit = config.maxUploadBytes + MULTIPART_SLACK_BYTES;
  const length = declaredLength(request);
  // Refused before any origin is asked.
  if (length !== undefined && length > limit) {
    throw new PayloadTooLargeError(
      `upload of ${length} bytes exceeds the ${config.maxUploadBytes}-byte limit`,
    );
  }
  const body = request.body ? new UploadBody(request.body, limit) : undefined;
  for (const master of config.masters) {
    if (body) {
      // A failed attempt's last read belongs to the replay; past REPLAY_BYTES there is none.
      await body.settled();
      if (!body.replayable) break;
    }
    try {
      const res = await fetch(`${master}/submit${url.search}`, {
        method: 'POST',
        headers: forwardHeaders(request),
        body: body ? outgoing(body, length) : null,
        signal: AbortSignal.timeout(config.originTimeoutMs * 6),
      });
      if (body?.overLimit) {
        await res.body?.cancel();
        throw new PayloadTooLargeError(`upload exceeds the ${config.maxUploadBytes}-byte limit`);
      }
      return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
    } catch (err) {
      if (body?.overLimit)
        throw new PayloadTooLargeError(`upload exceeds the ${config.maxUploadBytes}-byte limit`);
      if (err instanceof PayloadTooLargeError) throw err;
      // next master, if the body can still be sent from its start
    }
  }
  await body?.cancel();
  throw new UnavailableError('no master accepted the upload', 1);
}

function withNoStore(h: Headers): Headers {
  const out = new Headers(h);
  out.set('cache-control', 'no-store');
  out.set('x-kelp-cache', 'BYPASS');
  out.set('cf-cache-status', 'BYPASS');
  return out;
}

export async function handleDelete(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = edgeConfig(env);
  const url = new URL(request.url);
  const { fid } = parseFidPath(url.pathname);
  const res = await fetchFromReplicas(
    fid.volumeId,
    `${url.pathname}${url.search}`,
    { method: 'DELETE', headers: forwardHeaders(request) },
    config,
    ctx,
  );
  if (res.ok || res.status === 404) {
    forgetConfirmed(await purgeFile(caches.default, formatFid(fid), Date.now(), config.staleTtlSeconds));
  }
  return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
}
