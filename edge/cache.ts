/**
 * The edge's blob cache on the Cache API: canonical keys, the rules for what
 * may be cached, the headers a stored copy carries (when the origin last
 * confirmed it, when its TTL ends, its purge tags), an index of each file's
 * cached variants so that a purge can find them all, and purge markers.
 *
 * A copy is stored once, for as long as it may serve an origin outage
 * (STALE_TTL_SECONDS, never past the blob's TTL); how long it is served
 * without asking the origin is decided on each hit (freshness.ts).
 */
import { fileTag, volumeTag } from '../shared/cache-tags.ts';
import { formatFid, type ParsedFid } from '../shared/fid.ts';

const BLOB_BASE = 'https://kelp-blob.internal';
const VARIANTS_BASE = 'https://kelp-variants.internal/';
const PURGED_BASE = 'https://kelp-purged.internal/';

/** Milliseconds since the epoch at which the origin last vouched for the stored bytes. */
export const CONFIRMED_HEADER = 'x-kelp-confirmed';
/** Headers of a stored copy that are the edge's own bookkeeping, never sent to clients. */
export const INTERNAL_HEADERS = [CONFIRMED_HEADER, 'cache-tag', 'age', 'x-kelp-tier-confirmed'];

export interface BlobKey {
  /** Canonical fid of the file (a `_N` suffix already folded into its key): the variant index is per file. */
  file: string;
  volumeId: number;
  /** The cache key URL: normalised path (+ name or extension) + canonical variant query. */
  url: string;
}

/**
 * One key per variant: `/3/01637037d6.jpg?width=200` and `/3,01637037d6.jpg?width=200&utm=x`
 * are the same. The name or extension stays in the key because it changes
 * Content-Type and Content-Disposition.
 */
export function blobKey(
  fid: ParsedFid,
  ext: string | undefined,
  name: string | undefined,
  variant: string,
): BlobKey {
  const file = formatFid(fid);
  const suffix =
    name !== undefined ? `/${encodeURIComponent(name)}` : ext !== undefined ? `.${ext.toLowerCase()}` : '';
  return {
    file,
    volumeId: fid.volumeId,
    url: `${BLOB_BASE}/${file}${suffix}${variant ? `?${variant}` : ''}`,
  };
}

/** Only what a shared cache may hold: no cookies, nothing private or no-store. */
export function isCacheable(res: Response): boolean {
  if (res.status !== 200 && res.status !== 404) return false;
  if (res.headers.has('set-cookie')) return false;
  const cc = res.headers.get('cache-control') ?? '';
  return !/\b(private|no-store)\b/i.test(cc);
}

/**
 * Cloudflare cache tags of a file's copies (shared/cache-tags.ts). Production
 * purges by these tags in every location at once; locally the variant index
 * does the same job in one.
 */
export function cacheTags(key: Pick<BlobKey, 'file' | 'volumeId'>): string {
  return `${fileTag(key.file)},${volumeTag(key.volumeId)}`;
}

/** The headers a stored copy carries; the origin's encoding negotiation is not part of it. */
export function storedHeaders(
  origin: Headers,
  key: BlobKey,
  maxAgeSeconds: number,
  confirmedAt: number,
): Headers {
  const h = new Headers(origin);
  for (const name of [
    'vary',
    'set-cookie',
    'connection',
    'keep-alive',
    'transfer-encoding',
    'date',
    'age',
    'x-kelp-cache',
    'cf-cache-status',
    'x-kelp-tier-confirmed',
  ]) {
    h.delete(name);
  }
  h.set('cache-control', `public, max-age=${Math.max(0, Math.floor(maxAgeSeconds))}`);
  h.set(CONFIRMED_HEADER, String(confirmedAt));
  h.set('cache-tag', cacheTags(key));
  return h;
}

/** When the blob's TTL ends (the origin's Expires), in ms; undefined for blobs without a TTL. */
export function expiresAt(headers: Headers): number | undefined {
  const raw = headers.get('expires');
  if (raw === null) return undefined;
  const t = Date.parse(raw);
  // An unparseable Expires means "already expired" (RFC 9111 §5.3).
  return Number.isFinite(t) ? t : 0;
}

async function variantsOf(cache: Cache, file: string): Promise<string[]> {
  const res = await cache.match(`${VARIANTS_BASE}${file}`);
  return res ? ((await res.json()) as string[]) : [];
}

/** Index updates in flight per file: one read-modify-write at a time per isolate, or concurrent misses lose keys. */
const indexQueue = new Map<string, Promise<void>>();

/**
 * Records a cached key under its file, so purgeFile() finds it. The index is
 * one JSON list rewritten in place, so updates are serialised per file within
 * the isolate; another isolate of the colo may still interleave (the Cache API
 * has no compare-and-set), which one re-read after the write mostly repairs.
 */
export function trackVariant(cache: Cache, key: BlobKey, ttlSeconds: number): Promise<void> {
  const prev = indexQueue.get(key.file) ?? Promise.resolve();
  const next = prev.then(() => addToIndex(cache, key, ttlSeconds));
  const tail = next.catch(() => {});
  indexQueue.set(key.file, tail);
  void tail.then(() => {
    if (indexQueue.get(key.file) === tail) indexQueue.delete(key.file);
  });
  return next;
}

async function addToIndex(cache: Cache, key: BlobKey, ttlSeconds: number): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const known = await variantsOf(cache, key.file);
    if (known.includes(key.url)) return;
    known.push(key.url);
    await cache.put(
      `${VARIANTS_BASE}${key.file}`,
      new Response(JSON.stringify(known), {
        headers: { 'content-type': 'application/json', 'cache-control': `max-age=${ttlSeconds}` },
      }),
    );
  }
}

// ---- purge markers ----

/** Entries of the isolate's own memory of purges (a cheap check on every hit). */
export const PURGE_MEMORY_ENTRIES = 10_000;
const PURGED_HEADER = 'x-kelp-purged';
const purgedMemory = new Map<string, number>();

function rememberPurge(scope: string, at: number): void {
  purgedMemory.delete(scope);
  purgedMemory.set(scope, Math.max(at, purgedMemory.get(scope) ?? 0));
  if (purgedMemory.size > PURGE_MEMORY_ENTRIES) purgedMemory.delete(purgedMemory.keys().next().value!);
}

const fileScope = (file: string) => `file/${file}`;
const volumeScope = (volumeId: number) => `volume/${volumeId}`;

/**
 * Records that everything in `scope` cached before `at` is void. Markers live
 * as long as a copy may (`ttlSeconds` = the stale lifetime), so no copy, and
 * no origin answer that was on its way when the purge came, can outlive one.
 */
async function markPurged(cache: Cache, scope: string, at: number, ttlSeconds: number): Promise<void> {
  rememberPurge(scope, at);
  const url = `${PURGED_BASE}${scope}`;
  const prev = await cache.match(url);
  const prevAt = Number(prev?.headers.get(PURGED_HEADER) ?? 0);
  await prev?.body?.cancel();
  if (prevAt >= at) return;
  await cache.put(
    url,
    new Response(null, {
      headers: { [PURGED_HEADER]: String(at), 'cache-control': `max-age=${ttlSeconds}` },
    }),
  );
}

/** The isolate's memory only: the latest purge of the file or its volume, 0 if none. */
export function purgedInMemory(key: Pick<BlobKey, 'file' | 'volumeId'>): number {
  if (purgedMemory.size === 0) return 0;
  return Math.max(
    purgedMemory.get(fileScope(key.file)) ?? 0,
    purgedMemory.get(volumeScope(key.volumeId)) ?? 0,
  );
}

/** The latest purge of the file or of its whole volume in this colo (ms), 0 if none. */
export async function purgedAt(cache: Cache, key: Pick<BlobKey, 'file' | 'volumeId'>): Promise<number> {
  const [f, v] = await Promise.all([
    cache.match(`${PURGED_BASE}${fileScope(key.file)}`),
    cache.match(`${PURGED_BASE}${volumeScope(key.volumeId)}`),
  ]);
  const at = Math.max(Number(f?.headers.get(PURGED_HEADER) ?? 0), Number(v?.headers.get(PURGED_HEADER) ?? 0));
  await Promise.all([f?.body?.cancel(), v?.body?.cancel()]);
  return Math.max(at, purgedInMemory(key));
}

/**
 * When this colo last heard the whole volume was deleted (ms), 0 if never.
 * Volume ids are never reused, so a marker means the volume is gone for good.
 */
export async function volumePurgedAt(cache: Cache, volumeId: number): Promise<number> {
  const res = await cache.match(`${PURGED_BASE}${volumeScope(volumeId)}`);
  await res?.body?.cancel();
  return Math.max(Number(res?.headers.get(PURGED_HEADER) ?? 0), purgedMemory.get(volumeScope(volumeId)) ?? 0);
}

/**
 * Deletes every cached variant of the file in this colo, after recording the
 * purge (so a miss that finishes meanwhile, or a stale copy another isolate
 * still holds, is not served). Returns the keys deleted.
 */
export async function purgeFile(
  cache: Cache,
  file: string,
  at: number,
  ttlSeconds: number,
): Promise<string[]> {
  await markPurged(cache, fileScope(file), at, ttlSeconds);
  const keys = await variantsOf(cache, file);
  await Promise.all(keys.map((url) => cache.delete(url)));
  await cache.delete(`${VARIANTS_BASE}${file}`);
  return keys;
}

/**
 * A whole volume is gone (its collection was deleted): copies of its files
 * are not enumerable here, so the marker voids them instead. Stale-if-error
 * and misses check it in the colo, hits in this isolate's memory; elsewhere a
 * copy lives on until its freshness ends, when the origin's 404 purges it.
 */
export async function purgeVolume(
  cache: Cache,
  volumeId: number,
  at: number,
  ttlSeconds: number,
): Promise<void> {
  await markPurged(cache, volumeScope(volumeId), at, ttlSeconds);
}
