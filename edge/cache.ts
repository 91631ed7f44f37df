/**
 * The edge's blob cache on the Cache API: canonical keys, the rules for what
 * may be cached, a stale copy for when every origin is down, and an index of
 * each file's cached variants so that a delete can purge them all.
 */
import { formatFid, type ParsedFid } from '../shared/fid.ts';

const BLOB_BASE = 'https://kelp-blob.internal';
const VARIANTS_BASE = 'https://kelp-variants.internal/';
const STALE_SUFFIX = '#stale';

export interface BlobKey {
  /** Canonical fid of the file (a `_N` suffix already folded into its key): the variant index is per file. */
  file: string;
  /** The cache key URL: normalised path (+ name or extension) + canonical resize query. */
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
  resize: string,
): BlobKey {
  const file = formatFid(fid);
  const suffix =
    name !== undefined ? `/${encodeURIComponent(name)}` : ext !== undefined ? `.${ext.toLowerCase()}` : '';
  return { file, url: `${BLOB_BASE}/${file}${suffix}${resize ? `?${resize}` : ''}` };
}

export function staleKey(key: BlobKey): string {
  return `${key.url}${key.url.includes('?') ? '&' : '?'}${STALE_SUFFIX.slice(1)}=1`;
}

/** Only what a shared cache may hold: no cookies, nothing private or no-store. */
export function isCacheable(res: Response): boolean {
  if (res.status !== 200 && res.status !== 404) return false;
  if (res.headers.has('set-cookie')) return false;
  const cc = res.headers.get('cache-control') ?? '';
  return !/\b(private|no-store)\b/i.test(cc);
}

/** The headers a cached copy carries; the origin's encoding negotiation is not part of it. */
export function cachedHeaders(origin: Headers, maxAge: number, immutable: boolean): Headers {
  const h = new Headers(origin);
  for (const name of [
    'vary',
    'set-cookie',
    'connection',
    'keep-alive',
    'transfer-encoding',
    'date',
    'x-kelp-cache',
  ]) {
    h.delete(name);
  }
  h.set('cache-control', `public, max-age=${maxAge}${immutable ? ', immutable' : ''}`);
  return h;
}

async function variantsOf(cache: Cache, file: string): Promise<string[]> {
  const res = await cache.match(`${VARIANTS_BASE}${file}`);
  return res ? ((await res.json()) as string[]) : [];
}

/** Index updates in flight per file: one read-modify-write at a time per isolate, or concurrent misses lose keys. */
const indexQueue = new Map<string, Promise<void>>();

/**
 * Records a cached key under its file, so purge() finds it. The index is one
 * JSON list rewritten in place, so updates are serialised per file within the
 * isolate; another isolate of the colo may still interleave (the Cache API has
 * no compare-and-set), which one re-read after the write mostly repairs.
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

const DELETED_BASE = 'https://kelp-deleted.internal/';
/**
 * How long a purge is remembered. A miss whose origin fetch began before the
 * delete must not cache the old bytes after the purge; the longest such fetch
 * is bounded by the origin timeout, far below this.
 */
export const DELETED_MARKER_SECONDS = 300;

/** Whether the file was purged recently (then a late miss must not cache it). */
export async function recentlyDeleted(cache: Cache, file: string): Promise<boolean> {
  return (await cache.match(`${DELETED_BASE}${file}`)) !== undefined;
}

/** Deletes every cached variant of the file (and their stale copies) in this colo. */
export async function purgeFile(cache: Cache, file: string): Promise<number> {
  // The marker goes first, so a miss that finishes while the purge runs sees it.
  await cache.put(
    `${DELETED_BASE}${file}`,
    new Response('deleted', { headers: { 'cache-control': `max-age=${DELETED_MARKER_SECONDS}` } }),
  );
  const keys = await variantsOf(cache, file);
  await Promise.all(keys.flatMap((url) => [cache.delete(url), cache.delete(staleKey({ file, url }))]));
  await cache.delete(`${VARIANTS_BASE}${file}`);
  return keys.length;
}
