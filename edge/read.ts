/**
 * GET/HEAD of a public URL. Hit: the Cache API answers, Range and 304
 * included. Miss: fetch the whole object from a replica, cache it under its
 * canonical key, and answer from the cache so Range and conditionals work the
 * same either way. Every response says `X-Kelp-Cache: HIT|MISS|STALE|BYPASS`.
 */
import { NotFoundError, UnavailableError } from '../shared/errors.ts';
import { parseFidPath } from '../shared/fid.ts';
import { canonicalResizeQuery, negotiateFormat, parseResizeParams } from '../shared/resize.ts';
import { signResize, verifyResizeSignature } from '../shared/resize-signature.ts';
import {
  type BlobKey,
  blobKey,
  cachedHeaders,
  isCacheable,
  recentlyDeleted,
  staleKey,
  trackVariant,
} from './cache.ts';
import { type EdgeConfig, type Env, edgeConfig } from './env.ts';
import { fetchFromReplicas } from './origin.ts';
import { forRequest } from './request-id.ts';

/** Client headers the Cache API evaluates against a cached copy. */
const MATCH_HEADERS = ['range', 'if-none-match', 'if-modified-since'];

function withCacheState(res: Response, state: string, head: boolean): Response {
  const out = new Response(head ? null : res.body, res);
  out.headers.set('x-kelp-cache', state);
  return out;
}

/** A GET for `url` carrying the client's Range and conditional headers. */
function matchRequest(url: string, request: Request): Request {
  const headers = new Headers();
  for (const name of MATCH_HEADERS) {
    const v = request.headers.get(name);
    if (v !== null) headers.set(name, v);
  }
  return new Request(url, { headers });
}

async function putCopies(cache: Cache, key: BlobKey, res: Response, config: EdgeConfig): Promise<void> {
  const ok = res.status === 200;
  const maxAge = ok ? config.cacheTtlSeconds : config.negativeTtlSeconds;
  const body = await res.arrayBuffer();
  const headers = cachedHeaders(res.headers, maxAge, ok);
  const puts = [cache.put(key.url, new Response(body, { status: res.status, headers }))];
  if (ok) {
    // A second copy, kept longer, that only an origin outage may serve (there is no stale-if-error in the Cache API).
    const staleHeaders = cachedHeaders(res.headers, Math.max(config.staleTtlSeconds, maxAge), true);
    puts.push(cache.put(staleKey(key), new Response(body, { status: 200, headers: staleHeaders })));
  }
  // The index outlives every entry it lists, whatever this one's max-age: a short-lived
  // entry (a 404) recorded last must not shorten it below a long-lived one's.
  puts.push(trackVariant(cache, key, Math.max(config.staleTtlSeconds, config.cacheTtlSeconds)));
  await Promise.all(puts);
}

export async function handlePublicRead(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = forRequest(edgeConfig(env), request);
  const url = new URL(request.url);
  // Both throw 400-class errors before any origin call.
  const { fid, ext, name } = parseFidPath(url.pathname);
  const params = parseResizeParams(url.searchParams, {
    maxSide: config.maxResizeSide,
    presets: config.resizePresets,
  });
  const resize = canonicalResizeQuery(params);
  const preset = url.searchParams.get('preset');
  const sig = url.searchParams.get('sig');
  if (params && !preset && config.resizeSigningKey) {
    // Refused here, before any origin call; the origin checks again with its own key.
    await verifyResizeSignature(config.resizeSigningKey, url.pathname, resize, sig);
  }
  // format=auto: the variant depends on Accept, so the negotiated format is part of the key.
  const negotiated =
    params?.format === 'auto' ? negotiateFormat(request.headers.get('accept'), 'source') : '';
  const key = blobKey(fid, ext, name, negotiated ? `${resize}&as=${negotiated}` : resize);
  const head = request.method === 'HEAD';
  const cache = caches.default;

  const hit = await cache.match(matchRequest(key.url, request));
  if (hit) return withCacheState(hit, 'HIT', head);

  // A preset goes to the origin expanded, as the edge's config defines it (the key above names
  // that expansion; the origin's presets may differ or be absent), signed by the edge when it
  // has the key. Free params carry the client's signature through.
  const originSig =
    preset && config.resizeSigningKey ? await signResize(config.resizeSigningKey, url.pathname, resize) : sig;
  // Encoded: a raw `sig` holding `&height=5` would make the origin render another variant than the key names.
  const originQuery = `${resize}${resize && originSig ? `&sig=${encodeURIComponent(originSig)}` : ''}`;
  const path = `${url.pathname}${resize ? `?${originQuery}` : ''}`;
  const originHeaders: Record<string, string> = { 'accept-encoding': 'identity' };
  if (negotiated) originHeaders.accept = request.headers.get('accept') ?? '';
  let origin: Response;
  try {
    origin = await fetchFromReplicas(
      fid.volumeId,
      path,
      { method: 'GET', headers: originHeaders },
      config,
      ctx,
    );
  } catch (err) {
    // NotFoundError here is the master's lookup saying no live server holds the volume (a
    // replica's own 404 comes back as a response): an outage as much as a timeout is.
    if (!(err instanceof UnavailableError || err instanceof NotFoundError)) throw err;
    const stale = await cache.match(matchRequest(staleKey(key), request));
    if (stale) return withCacheState(stale, 'STALE', head);
    throw err;
  }

  const length = Number(origin.headers.get('content-length') ?? Number.NaN);
  const fits = Number.isFinite(length) && length <= config.maxCacheableBytes;
  const deleted = origin.status === 200 && (await recentlyDeleted(cache, key.file));
  if (!isCacheable(origin) || !fits || deleted) {
    if (request.headers.has('range') && origin.status === 200) {
      // Too large to cache whole: pass the Range through, uncached.
      await origin.body?.cancel();
      const ranged = await fetchFromReplicas(
        fid.volumeId,
        path,
        { method: 'GET', headers: { ...originHeaders, range: request.headers.get('range')! } },
        config,
        ctx,
      );
      return withCacheState(ranged, 'BYPASS', head);
    }
    return withCacheState(origin, 'BYPASS', head);
  }
  await putCopies(cache, key, origin, config);
  const stored = await cache.match(matchRequest(key.url, request));
  if (!stored) throw new UnavailableError('cache refused the object', 1);
  return withCacheState(stored, 'MISS', head);
}
