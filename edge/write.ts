/**
 * Writes through the edge: `POST /submit` (the master assigns and uploads in
 * one call; the body streams through, see upload-body.ts) and `DELETE /<fid>`
 * (sent to a replica, which replicates it). Both need the caller's write key
 * (edge/auth.ts), checked before any origin request. Origin sees only the
 * Worker's own credentials: MASTER_CLIENT_KEY for the master, and for a delete
 * the token the master signs for that fid. A delete purges every cached
 * variant of the file in this colo.
 */
import {
  BadRequestError,
  ForbiddenError,
  InvalidParamError,
  KelpError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
  UpstreamError,
} from '../shared/errors.ts';
import { formatFid, type ParsedFid, parseFidPath } from '../shared/fid.ts';
import { bearer, requireWriteKey } from './auth.ts';
import { purgeFile } from './cache.ts';
import { type EdgeConfig, type Env, edgeConfig } from './env.ts';
import { forgetConfirmed } from './freshness.ts';
import { masterClient, masterHeaders } from './masters.ts';
import { fetchFromReplicas } from './origin.ts';
import { forRequest } from './request-id.ts';
import { UploadBody } from './upload-body.ts';

/** Room for the multipart framing around a file of the largest allowed size. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

/** An upload may take this many lookup timeouts (the master spools it, then forwards it). */
const SUBMIT_TIMEOUT_FACTOR = 6;

/** What the master needs of the upload; never the caller's Authorization (or cookies). */
function submitHeaders(request: Request, config: EdgeConfig): Headers {
  const h = new Headers();
  for (const name of ['content-type', 'content-length']) {
    const v = request.headers.get(name);
    if (v !== null) h.set(name, v);
  }
  return masterHeaders(config, true, h);
}

/** Origin refusing the Worker is the edge's misconfiguration, not the caller's: a 502 that says what to fix. */
function refusedEdge(who: string, status: number, fix: string): UpstreamError {
  return new UpstreamError(`${who} refused the edge's credentials (${status}): ${fix}`);
}

function tooLarge(config: EdgeConfig): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `uploads through the edge are limited to ${config.maxUploadBytes} bytes (MAX_UPLOAD_BYTES)`,
  );
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
  const config = forRequest(edgeConfig(env), request);
  await requireWriteKey(request, config);
  const url = new URL(request.url);
  const limit = config.maxUploadBytes + MULTIPART_SLACK_BYTES;
  const length = declaredLength(request);
  // Refused before any origin is asked; a chunked body is cut off at the limit as it streams.
  if (length !== undefined && length > limit) throw tooLarge(config);
  const body = request.body ? new UploadBody(request.body, limit) : undefined;
  for (const [i, master] of config.masters.entries()) {
    if (body) {
      // A failed attempt's last read belongs to the replay; past REPLAY_BYTES there is none.
      await body.settled();
      if (!body.replayable) break;
    }
    let res: Response;
    try {
      res = await fetch(`${master}/submit${url.search}`, {
        method: 'POST',
        headers: submitHeaders(request, config),
        body: body ? outgoing(body, length) : null,
        signal: AbortSignal.timeout(config.originTimeoutMs * SUBMIT_TIMEOUT_FACTOR),
      });
    } catch (err) {
      if (body?.overLimit) throw tooLarge(config);
      if (err instanceof PayloadTooLargeError) throw err;
      continue; // next master, if the body can still be sent from its start
    }
    if (body?.overLimit) {
      await res.body?.cancel();
      throw tooLarge(config);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw refusedEdge('the master', res.status, "set MASTER_CLIENT_KEY to one of the master's client keys");
    }
    // 503: nothing was stored (no leader while one is elected, say); the next master may take it.
    if (res.status === 503 && i < config.masters.length - 1) {
      await res.body?.cancel();
      continue;
    }
    return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
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

/**
 * The fid as the master signs tokens for it: the base key and its `_N` suffix
 * (a parsed fid has the delta folded into its key), so the token covers the
 * fid the volume server checks, which is the base one.
 */
function tokenFileId(fid: ParsedFid): string {
  const base = formatFid({ volumeId: fid.volumeId, key: fid.key - fid.delta, cookie: fid.cookie });
  return fid.delta > 0n ? `${base}_${fid.delta}` : base;
}

/**
 * The master's delete token for `fid` (`/dir/lookup?fileId=`, asked with the
 * Worker's key; the JWT comes back as `Authorization: Bearer`), or undefined
 * when the master signs none (an open cluster).
 */
async function deleteToken(fid: ParsedFid, config: EdgeConfig): Promise<string | undefined> {
  try {
    return (await masterClient(config, { withKey: true }).lookupFile(tokenFileId(fid))).token;
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new NotFoundError(`volume ${fid.volumeId} not found`, { cause: err });
    if (err instanceof UnauthorizedError || err instanceof ForbiddenError) {
      throw refusedEdge('the master', err.status, "set MASTER_CLIENT_KEY to one of the master's client keys");
    }
    if (!(err instanceof KelpError)) throw err;
    throw new UnavailableError('no master answered the delete-token lookup', 1, { cause: err });
  }
}

export async function handleDelete(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = forRequest(edgeConfig(env), request);
  await requireWriteKey(request, config);
  const url = new URL(request.url);
  const { fid } = parseFidPath(url.pathname);
  // The volume server's own parameters (`jwt`, `type=replicate`) are the Worker's to set, not a caller's:
  // a caller's `jwt` would displace the Worker's token, `type=replicate` would skip the fan-out.
  if (url.search !== '') throw new InvalidParamError('DELETE through the edge takes no query parameters');
  const token = await deleteToken(fid, config);
  const headers = new Headers();
  if (token) headers.set('authorization', bearer(token));
  const res = await fetchFromReplicas(fid.volumeId, url.pathname, { method: 'DELETE', headers }, config, ctx);
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw refusedEdge(
      'the volume server',
      res.status,
      'give the master and the volume servers the same signing key, and the edge a MASTER_CLIENT_KEY the master accepts',
    );
  }
  if (res.ok || res.status === 404) {
    forgetConfirmed(await purgeFile(caches.default, formatFid(fid), Date.now(), config.staleTtlSeconds));
  }
  return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
}
