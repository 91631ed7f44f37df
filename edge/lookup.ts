/**
 * Volume id → replica locations, from the master's `/dir/lookup`, cached in
 * isolate memory (bounded LRU with a TTL) and in the Cache API (shared by the
 * isolates of a colo). Concurrent misses for one volume share one lookup.
 * A location that fails a read drops the entry (invalidate) so the next
 * request asks the master again.
 *
 * A tiered volume's answer also says where its bytes are in the bucket
 * (`tier`): kept beside the locations, and also for STALE_TTL_SECONDS in a
 * second entry, so that origin-free reads (tier-read.ts) go on while no
 * master answers. That is safe because the bucket is the authority: an object
 * that is gone (the volume came back from the tier, its collection was
 * deleted) is a miss there, never other bytes.
 */
import type { Location, LookupResponse, TierLocation } from '../shared/api.ts';
import { KelpError, NotFoundError, UnavailableError, VolumeDeletedError } from '../shared/errors.ts';
import type { EdgeConfig } from './env.ts';
import { masterClient } from './masters.ts';

/** Entries kept in isolate memory. */
export const LOOKUP_CACHE_ENTRIES = 10_000;
const CACHE_KEY_BASE = 'https://kelp-lookup.internal/volume/';
const TIER_KEY_BASE = 'https://kelp-lookup.internal/tier/';

interface Entry {
  locations: Location[];
  tier?: TierLocation;
  expires: number;
}

const memory = new Map<number, Entry>();
const inFlight = new Map<number, Promise<Entry>>();
/** Tier locations by volume, kept past the lookup TTL for reads while no master answers. */
const tierMemory = new Map<number, { tier: TierLocation; until: number }>();

function remember(volumeId: number, entry: Entry): void {
  memory.delete(volumeId);
  memory.set(volumeId, entry);
  if (memory.size > LOOKUP_CACHE_ENTRIES) memory.delete(memory.keys().next().value!);
}

async function cacheApi(): Promise<Cache | undefined> {
  return typeof caches === 'undefined' ? undefined : caches.default;
}

/**
 * The masters' answer (the shared client's failover: a master that is down or
 * says "not now", or knows no location yet, passes to the next). What the
 * public sees of a failure is "not found", "deleted" or "unavailable", never a
 * master's address or message: those stay in the cause. "Deleted"
 * (VolumeDeletedError, a NotFoundError) is the master's word that the volume
 * was deleted, not that no holder is alive now: edge/read.ts treats it as the
 * delete it is, never as an outage.
 */
async function askMasters(volumeId: number, config: EdgeConfig): Promise<LookupResponse> {
  try {
    return await masterClient(config).lookupVolume(volumeId);
  } catch (err) {
    if (err instanceof VolumeDeletedError)
      throw new VolumeDeletedError(`volume ${volumeId} was deleted`, { cause: err });
    if (err instanceof NotFoundError) throw new NotFoundError(`volume ${volumeId} not found`, { cause: err });
    if (!(err instanceof KelpError)) throw err;
    throw new UnavailableError('no master answered the lookup', 1, { cause: err });
  }
}

/** Locations of the volume: memory, then the colo's Cache API, then the master. */
export async function lookupVolume(
  volumeId: number,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<Location[]> {
  return (await lookupEntry(volumeId, config, ctx)).locations;
}

function rememberTier(
  volumeId: number,
  tier: TierLocation | undefined,
  config: EdgeConfig,
  ctx?: ExecutionContext,
) {
  if (!tier) return;
  const until = Date.now() + Math.max(config.staleTtlSeconds * 1000, config.lookupTtlMs);
  const known = tierMemory.get(volumeId);
  tierMemory.delete(volumeId);
  tierMemory.set(volumeId, { tier, until });
  if (tierMemory.size > LOOKUP_CACHE_ENTRIES) tierMemory.delete(tierMemory.keys().next().value!);
  if (known && known.tier.key === tier.key && known.until - until < config.lookupTtlMs) return;
  const put = (async () =>
    (await cacheApi())?.put(
      `${TIER_KEY_BASE}${volumeId}`,
      new Response(JSON.stringify({ tier, until }), {
        headers: { 'content-type': 'application/json', 'cache-control': `max-age=${config.staleTtlSeconds}` },
      }),
    ))();
  if (ctx) ctx.waitUntil(put.catch(() => {}));
}

/**
 * Where the tiered volume's bytes are, if it is tiered: from the lookup when a
 * master answers, else from the last answer that said so (for as long as a
 * copy may be served stale). Undefined for a local volume or none known.
 */
export async function lookupTier(
  volumeId: number,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<TierLocation | undefined> {
  try {
    return (await lookupEntry(volumeId, config, ctx)).tier;
  } catch (err) {
    // Deleted: its bucket object goes with it, the last known location is void.
    if (err instanceof VolumeDeletedError) {
      await forgetTier(volumeId, ctx);
      throw err;
    }
    // No master answers, or none knows a live holder (every origin is down): the last known location.
    if (!(err instanceof UnavailableError || err instanceof NotFoundError)) throw err;
    const known = tierMemory.get(volumeId);
    if (known && known.until > Date.now()) return known.tier;
    const cached = await (await cacheApi())?.match(`${TIER_KEY_BASE}${volumeId}`);
    if (cached) {
      const entry = (await cached.json()) as { tier: TierLocation; until: number };
      if (entry.until > Date.now()) {
        tierMemory.set(volumeId, entry);
        return entry.tier;
      }
    }
    throw err;
  }
}

async function lookupEntry(
  volumeId: number,
  config: EdgeConfig,
  ctx: ExecutionContext | undefined,
): Promise<Entry> {
  const now = Date.now();
  const hit = memory.get(volumeId);
  if (hit && hit.expires > now) return hit;
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
        return entry;
      }
    }
    const body = await askMasters(volumeId, config);
    const entry: Entry = {
      locations: body.locations,
      ...(body.tier ? { tier: body.tier } : {}),
      expires: Date.now() + config.lookupTtlMs,
    };
    remember(volumeId, entry);
    rememberTier(volumeId, entry.tier, config, ctx);
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
    return entry;
  })().finally(() => inFlight.delete(volumeId));
  inFlight.set(volumeId, p);
  return p;
}

/** Forget where the volume's bytes were in a bucket (the object is gone: it came back from the tier). */
export async function forgetTier(volumeId: number, ctx: ExecutionContext | undefined): Promise<void> {
  tierMemory.delete(volumeId);
  const hit = memory.get(volumeId);
  if (hit?.tier) memory.delete(volumeId);
  const cache = await cacheApi();
  const del = Promise.all([
    cache?.delete(`${TIER_KEY_BASE}${volumeId}`),
    cache?.delete(`${CACHE_KEY_BASE}${volumeId}`),
  ]);
  ctx ? ctx.waitUntil(del) : await del;
}

/** Forget the volume's locations (a replica failed): the next read asks the master again. */
export async function invalidateVolume(volumeId: number, ctx: ExecutionContext | undefined): Promise<void> {
  memory.delete(volumeId);
  const del = (await cacheApi())?.delete(`${CACHE_KEY_BASE}${volumeId}`);
  if (del) ctx ? ctx.waitUntil(del) : await del;
}
