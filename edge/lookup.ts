/**
 * Volume id → replica locations, from the master's `/dir/lookup`, cached in
 * isolate memory (bounded LRU with a TTL) and in the Cache API (shared by the
 * isolates of a colo). Concurrent misses for one volume share one lookup.
 * A location that fails a read drops the entry (invalidate) so the next
 * request asks the master again.
 */
import type { Location, LookupResponse } from '../shared/api.ts';
import { NotFoundError, UnavailableError } from '../shared/errors.ts';
import type { EdgeConfig } from './env.ts';
import { REQUEST_ID_HEADER } from './request-id.ts';

/** Entries kept in isolate memory. */
export const LOOKUP_CACHE_ENTRIES = 10_000;
const CACHE_KEY_BASE = 'https://kelp-lookup.internal/volume/';

interface Entry {
  locations: Location[];
  expires: number;
}

const memory = new Map<number, Entry>();
const inFlight = new Map<number, Promise<Location[]>>();

function remember(volumeId: number, entry: Entry): void {
  memory.delete(volumeId);
  memory.set(volumeId, entry);
  if (memory.size > LOOKUP_CACHE_ENTRIES) memory.delete(memory.keys().next().value!);
}

async function cacheApi(): Promise<Cache | undefined> {
  return typeof caches === 'undefined' ? undefined : caches.default;
}

async function askMasters(volumeId: number, config: EdgeConfig): Promise<Location[]> {
  let lastError: unknown;
  for (const master of config.masters) {
    try {
      const res = await fetch(`${master}/dir/lookup?volumeId=${volumeId}`, {
        headers: config.requestId ? { [REQUEST_ID_HEADER]: config.requestId } : {},
        signal: AbortSignal.timeout(config.originTimeoutMs),
      });
      if (res.status === 404) throw new NotFoundError(`volume ${volumeId} not found`);
      if (!res.ok) throw new UnavailableError(`master ${master} answered ${res.status}`);
      const body = (await res.json()) as LookupResponse;
      if (!body.locations?.length) throw new NotFoundError(`volume ${volumeId} not found`);
      return body.locations;
    } catch (err) {
      if (err instanceof NotFoundError) throw err;
      lastError = err;
    }
  }
  throw new UnavailableError('no master answered the lookup', 1, { cause: lastError });
}

/** Locations of the volume: memory, then the colo's Cache API, then the master. */
export async function lookupVolume(
  volumeId: number,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<Location[]> {
  const now = Date.now();
  const hit = memory.get(volumeId);
  if (hit && hit.expires > now) return hit.locations;
  const running = inFlight.get(volumeId);
  if (running) return running;
  const p = (async () => {
    const cache = await cacheApi();
    const key = `${CACHE_KEY_BASE}${volumeId}`;
    const cached = await cache?.match(key);
    if (cached) {
      const entry = (await cached.json()) as Entry;
      if (entry.expires > Date.now()) {
        remember(volumeId, entry);
        return entry.locations;
      }
    }
    const locations = await askMasters(volumeId, config);
    const entry = { locations, expires: Date.now() + config.lookupTtlMs };
    remember(volumeId, entry);
    const put = cache?.put(
      key,
      new Response(JSON.stringify(entry), {
        headers: {
          'content-type': 'application/json',
          'cache-control': `max-age=${Math.ceil(config.lookupTtlMs / 1000)}`,
        },
      }),
    );
    if (put) ctx ? ctx.waitUntil(put) : await put;
    return locations;
  })().finally(() => inFlight.delete(volumeId));
  inFlight.set(volumeId, p);
  return p;
}

/** Forget the volume's locations (a replica failed): the next read asks the master again. */
export async function invalidateVolume(volumeId: number, ctx: ExecutionContext | undefined): Promise<void> {
  memory.delete(volumeId);
  const del = (await cacheApi())?.delete(`${CACHE_KEY_BASE}${volumeId}`);
  if (del) ctx ? ctx.waitUntil(del) : await del;
}
