/**
 * Writes through the edge: `POST /submit` (the master assigns and uploads in
 * one call) and `DELETE /<fid>` (forwarded to a replica, which replicates it),
 * both with the client's Authorization. A delete purges every cached variant
 * of the file in this colo.
 */
import { UnavailableError } from '../shared/errors.ts';
import { formatFid, parseFidPath } from '../shared/fid.ts';
import { purgeFile } from './cache.ts';
import { type Env, edgeConfig } from './env.ts';
import { fetchFromReplicas } from './origin.ts';

function forwardHeaders(request: Request): Headers {
  const h = new Headers();
  for (const name of ['authorization', 'content-type', 'content-length']) {
    const v = request.headers.get(name);
    if (v !== null) h.set(name, v);
  }
  return h;
}

export async function handleSubmit(request: Request, env: Env): Promise<Response> {
  const config = edgeConfig(env);
  const url = new URL(request.url);
  // Buffered so a master that fails before reading it can be retried with the next one.
  const body = await request.arrayBuffer();
  for (const master of config.masters) {
    try {
      const res = await fetch(`${master}/submit${url.search}`, {
        method: 'POST',
        headers: forwardHeaders(request),
        body,
        signal: AbortSignal.timeout(config.originTimeoutMs * 6),
      });
      return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
    } catch {
      // next master
    }
  }
  throw new UnavailableError('no master accepted the upload', 1);
}

function withNoStore(h: Headers): Headers {
  const out = new Headers(h);
  out.set('cache-control', 'no-store');
  out.set('x-kelp-cache', 'BYPASS');
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
  if (res.ok || res.status === 404) await purgeFile(caches.default, formatFid(fid));
  return new Response(res.body, { status: res.status, headers: withNoStore(res.headers) });
}
