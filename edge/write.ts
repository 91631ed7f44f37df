/**
 * Writes through the edge: `POST /submit` (the master assigns and uploads in
 * one call) and `DELETE /<fid>` (sent to a replica, which replicates it).
 * Both need the caller's write key (edge/auth.ts), checked before any origin
 * request. Origin sees only the Worker's own credentials: MASTER_CLIENT_KEY
 * for the master, and for a delete the token the master signs for that fid.
 * A delete purges every cached variant of the file in this colo.
 */
import {
  InvalidParamError,
  NotFoundError,
  PayloadTooLargeError,
  UnavailableError,
  UpstreamError,
} from '../shared/errors.ts';
import { formatFid, type ParsedFid, parseFidPath } from '../shared/fid.ts';
import { bearer, bearerToken, requireWriteKey } from './auth.ts';
import { purgeFile } from './cache.ts';
import { type EdgeConfig, type Env, edgeConfig } from './env.ts';
import { fetchFromReplicas } from './origin.ts';
import { forRequest, REQUEST_ID_HEADER } from './request-id.ts';

/** An upload may take this many lookup timeouts (the master spools it, then forwards it). */
const SUBMIT_TIMEOUT_FACTOR = 6;

/** The Worker's credential for the master, when it has one. */
function masterAuth(config: EdgeConfig, h: Headers = new Headers()): Headers {
  if (config.masterClientKey) h.set('authorization', bearer(config.masterClientKey));
  if (config.requestId) h.set(REQUEST_ID_HEADER, config.requestId);
  return h;
}

/** What the master needs of the upload; never the caller's Authorization (or cookies). */
function submitHeaders(request: Request, config: EdgeConfig): Headers {
  const h = new Headers();
  for (const name of ['content-type', 'content-length']) {
    const v = request.headers.get(name);
    if (v !== null) h.set(name, v);
  }
  return masterAuth(config, h);
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

export async function handleSubmit(request: Request, env: Env): Promise<Response> {
  const config = forRequest(edgeConfig(env), request);
  await requireWriteKey(request, config);
  const declared = Number(request.headers.get('content-length'));
  if (declared > config.maxUploadBytes) throw tooLarge(config);
  const url = new URL(request.url);
  // Buffered so a master that fails before reading it can be retried with the next one.
  const body = await request.arrayBuffer();
  // A body without Content-Length (chunked) is only measured once read.
  if (body.byteLength > config.maxUploadBytes) throw tooLarge(config);
  for (const master of config.masters) {
    let res: Response;
    try {
      res = await fetch(`${master}/submit${url.search}`, {
        method: 'POST',
        headers: submitHeaders(request, config),
        body,
        signal: AbortSignal.timeout(config.originTimeoutMs * SUBMIT_TIMEOUT_FACTOR),
      });
    } catch {
      continue; // next master
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw refusedEdge('the master', res.status, "set MASTER_CLIENT_KEY to one of the master's client keys");
    }
    return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
  }
  throw new UnavailableError('no master accepted the upload', 1);
}

function withNoStore(h: Headers): Headers {
  const out = new Headers(h);
  out.set('cache-control', 'no-store');
  out.set('x-kelp-cache', 'BYPASS');
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
  let lastError: unknown;
  for (const master of config.masters) {
    let res: Response;
    try {
      // A formatted fid is digits, hex, a comma and an underscore: nothing to escape in a query.
      res = await fetch(`${master}/dir/lookup?fileId=${tokenFileId(fid)}`, {
        headers: masterAuth(config),
        signal: AbortSignal.timeout(config.originTimeoutMs),
      });
    } catch (err) {
      lastError = err;
      continue;
    }
    await res.body?.cancel();
    if (res.status === 404) throw new NotFoundError(`volume ${fid.volumeId} not found`);
    if (res.status === 401 || res.status === 403) {
      throw refusedEdge('the master', res.status, "set MASTER_CLIENT_KEY to one of the master's client keys");
    }
    if (!res.ok) {
      lastError = new UpstreamError(`master ${master} answered ${res.status}`);
      continue;
    }
    return bearerToken(res.headers.get('authorization'));
  }
  throw new UnavailableError('no master answered the delete-token lookup', 1, { cause: lastError });
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
  if (res.ok || res.status === 404) await purgeFile(caches.default, formatFid(fid));
  return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
}
