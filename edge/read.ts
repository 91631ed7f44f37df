/**
 * GET/HEAD of a public URL. Hit: the Cache API answers (Range and 304
 * included) while the copy is fresh (freshness.ts); an older copy is
 * revalidated with If-None-Match first: 304 confirms it, 200 replaces it, 404
 * purges the file. Miss: fetch the whole object from a replica, cache it under
 * its canonical key, and answer from the cache so Range and conditionals work
 * the same either way. When every origin is down, a copy nobody purged is
 * served stale. Every response says `X-Kelp-Cache` (and `CF-Cache-Status`,
 * always the same): HIT | REVALIDATED | MISS | STALE | BYPASS.
 */
import { effectiveRange, parseHttpDate, preconditionOf } from '../shared/conditional.ts';
import {
  NotFoundError,
  PreconditionFailedError,
  UnavailableError,
  VolumeDeletedError,
} from '../shared/errors.ts';
import { type ParsedFid, parseFidPath } from '../shared/fid.ts';
import { isTrueParam } from '../shared/query.ts';
import { isIgnoredRange } from '../shared/range.ts';
import { canonicalResizeQuery, negotiateFormat, parseResizeParams } from '../shared/resize.ts';
import { signResize, verifyResizeSignature } from '../shared/resize-signature.ts';
import {
  type BlobKey,
  blobKey,
  expiresAt,
  INTERNAL_HEADERS,
  isCacheable,
  purgedAt,
  purgedInMemory,
  purgeFile,
  purgeVolume,
  storedHeaders,
  trackVariant,
  volumePurgedAt,
} from './cache.ts';
import { type EdgeConfig, type Env, edgeConfig } from './env.ts';
import {
  confirmedAt,
  EARLY_REFRESH_FRACTION,
  forgetConfirmed,
  noteConfirmed,
  singleFlight,
} from './freshness.ts';
import { noteEdgeRead } from './heat.ts';
import { fetchFromReplicas } from './origin.ts';
import { forRequest } from './request-id.ts';
import { errorResponse } from './respond.ts';
import type { TierCost } from './tier-backends/reader.ts';
import { fromTier, TIER_CONFIRMED_HEADER } from './tier-read.ts';

/** Client headers the Cache API evaluates against a cached copy. */
const MATCH_HEADERS = ['range', 'if-none-match', 'if-modified-since'];

export type CacheState = 'HIT' | 'REVALIDATED' | 'MISS' | 'STALE' | 'BYPASS';

/** One public read: what to look up, what to ask the origin, how to answer. */
interface Read {
  key: BlobKey;
  fid: ParsedFid;
  ext: string | undefined;
  name: string | undefined;
  download: boolean;
  /** No image variant asked: a tiered volume may answer from its bucket (tier-read.ts). */
  plain: boolean;
  /** What the bucket reads of this request cost, when the tier answered. */
  tierCost?: TierCost;
  request: Request;
  head: boolean;
  /** Path and query sent to the origin (canonical variant params, signature, dl). */
  originPath: string;
  originHeaders: Record<string, string>;
  /** format=auto: the answer depends on the client's Accept. */
  varyAccept: boolean;
  config: EdgeConfig;
  ctx: ExecutionContext;
}

/**
 * The response a client gets from a stored copy or an origin answer: the
 * edge's bookkeeping removed, a browser lifetime no longer than the edge's own
 * bound (and never past the blob's TTL), Vary: Accept on negotiated formats.
 */
function respond(res: Response, state: CacheState, read: Read, owned = false): Response {
  // A response this Worker built itself (a tier answer passed through) is changed in place, not copied.
  const out = owned && !read.head ? res : new Response(read.head ? null : res.body, res);
  const h = out.headers;
  for (const name of INTERNAL_HEADERS) h.delete(name);
  h.set('x-kelp-cache', state);
  h.set('cf-cache-status', state);
  const { config } = read;
  if (res.status === 200 || res.status === 206 || res.status === 304) {
    let maxAge = config.freshMs / 1000;
    const expires = expiresAt(res.headers);
    if (expires !== undefined) maxAge = Math.min(maxAge, (expires - Date.now()) / 1000);
    h.set('cache-control', `public, max-age=${Math.max(0, Math.floor(maxAge))}`);
  } else if (res.status === 404) {
    h.set('cache-control', `public, max-age=${config.negativeTtlSeconds}`);
  } else {
    h.set('cache-control', 'no-store');
  }
  if (read.varyAccept) h.set('vary', 'Accept');
  // Heat no volume server sees: reads answered here, or from a bucket (edge/heat.ts).
  if ((state === 'HIT' || state === 'STALE' || read.tierCost) && res.status !== 404) {
    noteEdgeRead(read.key.volumeId, config, read.ctx);
  }
  if (read.tierCost) {
    h.set('x-kelp-tier-requests', String(read.tierCost.requests));
    h.set('x-kelp-tier-bytes', String(read.tierCost.bytes));
  }
  return out;
}

/**
 * When the answer was vouched for: the request's start for an origin's, the
 * deletion set's confirmation for a bucket's (tier-read.ts), whichever is earlier.
 */
function confirmedBy(res: Response, startedAt: number): number {
  const tier = Number(res.headers.get(TIER_CONFIRMED_HEADER) ?? 0);
  return tier > 0 ? Math.min(tier, startedAt) : startedAt;
}

/**
 * A GET for `url` carrying the client's Range and conditional headers; the
 * bare URL when it sent none (most reads: no Request to build per read).
 */
function matchRequest(url: string, request: Request): Request | string {
  let headers: Headers | undefined;
  for (const name of MATCH_HEADERS) {
    const v = request.headers.get(name);
    if (v === null) continue;
    headers ??= new Headers();
    headers.set(name, v);
  }
  return headers ? new Request(url, { headers }) : url;
}

/**
 * Seconds the origin's answer may be kept: as long as it may serve an outage
 * (a 404: the negative TTL), never past the blob's TTL.
 */
function lifetime(res: Response, config: EdgeConfig): number {
  let seconds =
    res.status === 200 ? Math.max(config.staleTtlSeconds, config.freshMs / 1000) : config.negativeTtlSeconds;
  const expires = expiresAt(res.headers);
  if (expires !== undefined) seconds = Math.min(seconds, (expires - Date.now()) / 1000);
  return seconds;
}

/** Below this lifetime an answer is not stored (the Cache API counts whole seconds). */
const MIN_LIFETIME_SECONDS = 1;

/**
 * Stores the origin's answer as the key's copy, stamped as confirmed at
 * `confirmed` (when the request that fetched it started: a change after that
 * instant is at most one fresh period old when the copy stops being served).
 */
async function store(cache: Cache, key: BlobKey, res: Response, confirmed: number, config: EdgeConfig) {
  const headers = storedHeaders(res.headers, key, lifetime(res, config), confirmed);
  await Promise.all([
    cache.put(key.url, new Response(res.body, { status: res.status, headers })),
    // The index outlives every entry it lists, whatever this one's max-age.
    trackVariant(cache, key, Math.max(config.staleTtlSeconds, config.freshMs / 1000)),
  ]);
}

/**
 * fetchFromReplicas, except that a volume the master says was deleted
 * (VolumeDeletedError: its collection went) is a delete: the whole volume is
 * purged in this colo (no copy of it is served again, stale or not) and the
 * reader gets the 404 of a missing blob. Without purge events this is how a
 * collection delete reaches the edge when its lookup of the volume expired.
 */
async function replicas(
  cache: Cache,
  read: Read,
  headers: Record<string, string>,
  startedAt: number,
): Promise<Response> {
  try {
    return await fetchFromReplicas(
      read.key.volumeId,
      read.originPath,
      { method: 'GET', headers },
      read.config,
      read.ctx,
    );
  } catch (err) {
    if (!(err instanceof VolumeDeletedError)) throw err;
    await purgeVolume(cache, read.key.volumeId, startedAt, read.config.staleTtlSeconds);
    return errorResponse(new NotFoundError('not found'));
  }
}

/**
 * replicas(), except that the master knowing no holder of a volume this colo
 * heard was deleted (a purge event, or a lookup that said so) is the 404 it
 * is, not an outage.
 */
async function fromReplicas(cache: Cache, read: Read, headers: Record<string, string>): Promise<Response> {
  const startedAt = Date.now();
  if (read.plain) {
    // A tiered volume: its bucket, no origin in the path (undefined: not tiered here, or the bucket failed).
    const tiered = await fromTier({
      key: read.key,
      fid: read.fid,
      ext: read.ext,
      name: read.name,
      download: read.download,
      ...(headers['if-none-match'] ? { ifNoneMatch: headers['if-none-match'] } : {}),
      config: read.config,
      ctx: read.ctx,
      cache,
    });
    if (tiered) {
      read.tierCost = tiered.cost;
      return tiered.response;
    }
  }
  try {
    return await replicas(cache, read, headers, startedAt);
  } catch (err) {
    if (err instanceof NotFoundError && (await volumePurgedAt(cache, read.key.volumeId)) > 0) {
      return errorResponse(new NotFoundError('not found'));
    }
    throw err;
  }
}

type Outcome = 'confirmed' | 'replaced' | 'gone' | 'unreachable' | 'refetch';

/**
 * Asks the origin whether the copy (ETag `etag`) is still current. One run per
 * key per isolate: concurrent hits on an old copy share it. `replaced` and
 * `gone` purge every variant of the file first (an overwrite or a delete
 * changed them all); `replaced` then stores the new copy.
 */
function revalidate(cache: Cache, read: Read, etag: string | null): Promise<Outcome> {
  const { key, config } = read;
  // A shared run is waited on no longer than its own two origin round trips (lookup, then fetch) may take.
  return singleFlight(
    key.url,
    async (): Promise<Outcome> => {
      const startedAt = Date.now();
      let res: Response;
      try {
        res = await fromReplicas(
          cache,
          read,
          etag ? { ...read.originHeaders, 'if-none-match': etag } : read.originHeaders,
        );
      } catch (err) {
        // NotFoundError is the master saying no live server holds the volume: an outage here. (Its
        // "deleted" never gets here: fromReplicas made it the 404 it is, and the volume is purged.)
        if (err instanceof UnavailableError || err instanceof NotFoundError) return 'unreachable';
        throw err;
      }
      if (res.status === 304) {
        await res.body?.cancel();
        // A purge that came while the question was out is news the 304 cannot overrule.
        if (purgedInMemory(key) > startedAt) return 'refetch';
        noteConfirmed(key.url, confirmedBy(res, startedAt));
        return 'confirmed';
      }
      const staleTtl = config.staleTtlSeconds;
      if (res.status === 404) {
        await res.body?.cancel();
        forgetConfirmed(await purgeFile(cache, key.file, startedAt, staleTtl));
        return 'gone';
      }
      const length = Number(res.headers.get('content-length') ?? Number.NaN);
      if (res.status === 200 && isCacheable(res) && length <= config.maxCacheableBytes) {
        // A bucket's answer is the same immutable needle: this copy was only older, the file did not
        // change (and a purge marker would read as a delete to the next tier read).
        if (!res.headers.has(TIER_CONFIRMED_HEADER))
          forgetConfirmed(await purgeFile(cache, key.file, startedAt, staleTtl));
        if (lifetime(res, config) >= MIN_LIFETIME_SECONDS) {
          await store(cache, key, res, confirmedBy(res, startedAt), config);
          return 'replaced';
        }
      }
      // Anything else (a 403 under a new signing key, a body too large to keep): drop the copy.
      await res.body?.cancel();
      await cache.delete(key.url);
      return 'refetch';
    },
    config.originTimeoutMs * 2,
  );
}

/** Serves a cached copy, revalidating it first if it is past its fresh period; undefined = treat as a miss. */
async function fromCopy(cache: Cache, hit: Response, read: Read): Promise<Response | undefined> {
  const { key, config, ctx } = read;
  const now = Date.now();
  const expires = expiresAt(hit.headers);
  if (expires !== undefined && expires <= now) {
    // Past its TTL: the blob is gone at the origin too (which the miss will say, 404).
    await hit.body?.cancel();
    ctx.waitUntil(cache.delete(key.url));
    return undefined;
  }
  const confirmed = confirmedAt(key.url, hit.headers);
  const age = now - confirmed;
  if (age < config.freshMs && purgedInMemory(key) <= confirmed) {
    if (hit.status !== 404 && age >= config.freshMs * EARLY_REFRESH_FRACTION) {
      ctx.waitUntil(revalidate(cache, read, hit.headers.get('etag')).catch(() => {}));
    }
    return respond(hit, 'HIT', read);
  }
  // A cached 404 past its period is not worth a conditional request: ask again.
  if (hit.status === 404) {
    await hit.body?.cancel();
    return undefined;
  }
  const outcome = await revalidate(cache, read, hit.headers.get('etag'));
  if (outcome === 'confirmed') return respond(hit, 'REVALIDATED', read);
  if (outcome === 'unreachable') {
    // Stale-if-error, unless this colo has seen the file or its volume purged since the copy was confirmed:
    // then the copy is void and this is a miss, answered as a miss is (a sibling variant's revalidation
    // that found the file gone purged it while this one shared its lookup: the master's "no holder" is
    // then the 404 it is to a miss, not an outage).
    if ((await purgedAt(cache, key)) <= confirmed) return respond(hit, 'STALE', read);
    await hit.body?.cancel();
    return undefined;
  }
  await hit.body?.cancel();
  if (outcome === 'replaced') {
    const stored = await cache.match(matchRequest(key.url, read.request));
    if (stored) return respond(stored, 'MISS', read);
  }
  return undefined;
}

/** Fetches the object from the origin, caches it when it may be, and answers. */
async function fromOrigin(cache: Cache, read: Read): Promise<Response> {
  const { key, config, request } = read;
  const startedAt = Date.now();
  const origin = await fromReplicas(cache, read, read.originHeaders);
  const length = Number(origin.headers.get('content-length') ?? Number.NaN);
  const fits = Number.isFinite(length) && length <= config.maxCacheableBytes;
  // A blob whose TTL ends within the second is not worth storing; a purge that came after this fetch
  // began may have been about these very bytes: do not keep them (asked only of what would be kept).
  if (
    isCacheable(origin) &&
    fits &&
    lifetime(origin, config) >= MIN_LIFETIME_SECONDS &&
    !(origin.status === 200 && (await purgedAt(cache, key)) > startedAt)
  ) {
    await store(cache, key, origin, confirmedBy(origin, startedAt), config);
    const stored = await cache.match(matchRequest(key.url, request));
    if (stored) return respond(stored, 'MISS', read);
    // Gone already: a purge event deleted it between the put and this match (the blob changed while
    // this miss was out, so what was stored is out of date), or the Cache API did not keep it. Ask
    // the origin again and pass its answer on uncached; a 503 here turned a delete into an outage.
    return uncached(cache, read);
  }
  if (request.headers.has('range') && origin.status === 200) {
    // Too large to cache whole: pass the Range through, uncached.
    await origin.body?.cancel();
    return rangedBypass(read);
  }
  // A tier answer (read.tierCost set) was made by tier-read.ts, its headers mutable: no copy.
  return respond(origin, 'BYPASS', read, read.tierCost !== undefined);
}

/** The origin's answer passed on without a copy (the client's Range asked of the origin). */
async function uncached(cache: Cache, read: Read): Promise<Response> {
  if (read.request.headers.has('range')) return rangedBypass(read);
  return respond(await fromReplicas(cache, read, read.originHeaders), 'BYPASS', read);
}

/** The client's Range asked of the origin directly (the object is not cached). */
async function rangedBypass(read: Read): Promise<Response> {
  const headers = { ...read.originHeaders, range: read.request.headers.get('range')! };
  return respond(await replicas(caches.default, read, headers, Date.now()), 'BYPASS', read);
}

/**
 * The request without its Range header when that header is one the volume
 * server ignores (another unit, bad syntax: shared/range.ts): the Cache API
 * would answer it 416, the origin 200 with the whole body, and one URL must
 * not answer both ways.
 */
function withoutIgnoredRange(request: Request): Request {
  const range = request.headers.get('range');
  if (range === null || !isIgnoredRange(range)) return request;
  return without(request, ['range']);
}

function without(request: Request, names: readonly string[]): Request {
  const headers = new Headers(request.headers);
  for (const name of names) headers.delete(name);
  return new Request(request, { headers });
}

export async function handlePublicRead(
  clientRequest: Request,
  env: Env,
  ctx: ExecutionContext,
): Promise<Response> {
  const request = withoutIgnoredRange(clientRequest);
  const h = request.headers;
  if (h.has('if-match') || (h.has('if-range') && h.has('range'))) return preconditioned(request, env, ctx);
  return publicRead(request, env, ctx);
}

/**
 * If-Match and If-Range, which the Cache API does not evaluate: it answered
 * a resumed download (Range + If-Range) of a blob overwritten since with a
 * range of the new bytes, to be spliced onto the old. The read runs without
 * them and without the Range; they are then decided against the validators
 * of what answered (shared/conditional.ts, as the volume server decides
 * them), and a Range that still holds is read again, kept only if that
 * answer is the same version (else the whole, which is always correct).
 */
async function preconditioned(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const h = request.headers;
  const conditions = {
    'if-match': h.get('if-match') ?? undefined,
    'if-range': h.get('if-range') ?? undefined,
    range: h.get('range') ?? undefined,
  };
  const whole = await publicRead(without(request, ['range', 'if-range', 'if-match']), env, ctx);
  // Only a representation that exists has preconditions (RFC 9110 §13.2.2): a 404 stays a 404.
  if (whole.status !== 200 && whole.status !== 304) return whole;
  const etag = whole.headers.get('etag') ?? undefined;
  const modified = whole.headers.get('last-modified');
  const validators = { etag, lastModified: (modified ? parseHttpDate(modified) : null) ?? undefined };
  if (preconditionOf(conditions, validators) === 'failed') {
    await whole.body?.cancel();
    return errorResponse(new PreconditionFailedError('If-Match names no current version of this blob'));
  }
  if (whole.status === 304 || effectiveRange(conditions, validators) === undefined) return whole;
  const ranged = await publicRead(without(request, ['if-range', 'if-match']), env, ctx);
  if (ranged.headers.get('etag') === (etag ?? null)) {
    await whole.body?.cancel();
    return ranged;
  }
  await ranged.body?.cancel();
  return whole;
}

async function publicRead(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const config = forRequest(edgeConfig(env), request);
  const url = new URL(request.url);
  // Both throw 400-class errors before any origin call.
  const { fid, ext, name } = parseFidPath(url.pathname);
  // No query (most reads): nothing to parse.
  const params = url.search
    ? parseResizeParams(url.searchParams, { maxSide: config.maxResizeSide, presets: config.resizePresets })
    : null;
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
  // ?dl=true is an attachment (its own copy: the Content-Disposition differs).
  const download = isTrueParam(url.searchParams.get('dl'));
  const variant = [resize, negotiated && `as=${negotiated}`, download && 'dl=1'].filter(Boolean).join('&');
  const key = blobKey(fid, ext, name, variant);

  // A preset goes to the origin expanded, as the edge's config defines it (the key above names
  // that expansion; the origin's presets may differ or be absent), signed by the edge when it
  // has the key. Free params carry the client's signature through. Encoded: a raw `sig`
  // holding `&height=5` would make the origin render another variant than the key names.
  const originSig =
    preset && config.resizeSigningKey ? await signResize(config.resizeSigningKey, url.pathname, resize) : sig;
  const query = [
    resize,
    resize && originSig ? `sig=${encodeURIComponent(originSig)}` : '',
    download ? 'dl=true' : '',
  ]
    .filter(Boolean)
    .join('&');
  const originHeaders: Record<string, string> = { 'accept-encoding': 'identity' };
  if (negotiated) originHeaders.accept = request.headers.get('accept') ?? '';
  const read: Read = {
    key,
    fid,
    ext,
    name,
    download,
    plain: !resize && !negotiated,
    request,
    head: request.method === 'HEAD',
    originPath: `${url.pathname}${query ? `?${query}` : ''}`,
    originHeaders,
    varyAccept: negotiated !== '',
    config,
    ctx,
  };

  const cache = caches.default;
  const hit = await cache.match(matchRequest(key.url, request));
  if (hit) {
    const served = await fromCopy(cache, hit, read);
    if (served) return served;
  }
  return fromOrigin(cache, read);
}
