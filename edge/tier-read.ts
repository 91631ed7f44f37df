/**
 * Origin-free reads of tiered volumes (docs/decisions/0010-origin-free-reads.md):
 * the edge finds a needle in the bucket by the index beside the `.dat`
 * (shared/tier-index.ts) and reads it with one ranged GET, so a tiered blob
 * is served with no volume server in the path, and while every origin is down.
 *
 *   deletion set   revalidated (If-None-Match) once it is older than half of
 *                  EDGE_FRESH_SECONDS, before serving once older than all of
 *                  it: a delete acknowledged at origin is served at most
 *                  EDGE_FRESH_SECONDS longer, as for any other change
 *   directory      header + page directory, once per index (immutable: cached
 *                  in isolate memory and the colo's Cache API)
 *   page           one per page, cached the same way, CRC-checked
 *   needle         one ranged GET; id, Size, cookie and CRC checked before a
 *                  byte is served (a corrupt record is never served: the read
 *                  goes to the origin, which refuses it too)
 *
 * Warm (directory, page and deletion set cached): one request per read. The
 * answer is a Response shaped as a volume server's (shared/blob-headers.ts),
 * so read.ts caches and serves it like an origin's. Resize variants are still
 * made at origin; only plain reads come here.
 */
import type { TierLocation } from '../shared/api.ts';
import { blobHeaders } from '../shared/blob-headers.ts';
import { ifNoneMatchMatches } from '../shared/conditional.ts';
import { CorruptDataError, KelpError, NotFoundError, UnavailableError } from '../shared/errors.ts';
import type { ParsedFid } from '../shared/fid.ts';
import { FLAG_CHUNK_MANIFEST, FLAG_GZIP, needleRecordSize } from '../shared/needle.ts';
import { decodeNeedle } from '../shared/needle-decode.ts';
import {
  type DeletionSet,
  decodeDeletionSet,
  decodeTierDirectory,
  findInPage,
  indexHeadBytes,
  isDeleted,
  pageOf,
  pageRange,
  type TierDirectory,
  verifyPage,
} from '../shared/tier-index.ts';
import { decodeTtl, isEmptyTtl, ttlToSeconds } from '../shared/ttl.ts';
import { type BlobKey, purgedInMemory } from './cache.ts';
import type { EdgeConfig } from './env.ts';
import { EARLY_REFRESH_FRACTION, singleFlight } from './freshness.ts';
import { forgetTier, lookupTier } from './lookup.ts';
import { OBJECT_KEY, type TierCost, type TierReader } from './tier-backends/reader.ts';

/** Directories kept in isolate memory (one per tiered volume read recently). */
export const TIER_DIRECTORIES = 512;
/** Index pages kept in isolate memory: 4 KiB each, 16 MiB in all. */
export const TIER_PAGES = 4096;
/** Deletion sets kept in isolate memory. */
export const TIER_DELETION_SETS = 1024;
/** How long the colo's Cache API keeps directories and pages (immutable: keys are unique per upload). */
const IMMUTABLE_TTL_SECONDS = 30 * 86_400;
const TIER_CACHE_BASE = 'https://kelp-tier.internal/';

/** When the bucket last vouched for what a tier answer says (ms): read.ts stamps the copy with it. */
export const TIER_CONFIRMED_HEADER = 'x-kelp-tier-confirmed';

export interface TierRead {
  key: BlobKey;
  fid: ParsedFid;
  ext: string | undefined;
  name: string | undefined;
  download: boolean;
  /** The If-None-Match of a revalidation: a match is a 304. */
  ifNoneMatch?: string;
  config: EdgeConfig;
  ctx: ExecutionContext;
  cache: Cache;
}

export interface TierAnswer {
  response: Response;
  cost: TierCost;
}

// ---- bounded LRU maps in isolate memory ----

function lruGet<V>(map: Map<string, V>, key: string): V | undefined {
  const v = map.get(key);
  if (v !== undefined) {
    map.delete(key);
    map.set(key, v);
  }
  return v;
}

function lruSet<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}

const directories = new Map<string, TierDirectory>();
const pages = new Map<string, Uint8Array>();
const deletionSets = new Map<string, { set: DeletionSet; etag: string; confirmedAt: number }>();

/** Bytes of an immutable object range: isolate memory, the colo's Cache API, then the bucket. */
async function immutableRange(
  read: TierRead,
  reader: TierReader,
  objectKey: string,
  offset: number,
  length: number,
  cost: TierCost,
): Promise<Uint8Array> {
  const url = `${TIER_CACHE_BASE}${reader.bucket}/${objectKey}/${offset}-${length}`;
  const cached = await read.cache.match(url);
  if (cached) return new Uint8Array(await cached.arrayBuffer());
  const bytes = await reader.read(objectKey, offset, length, cost);
  read.ctx.waitUntil(
    read.cache
      .put(
        url,
        new Response(bytes, {
          headers: { 'cache-control': `max-age=${IMMUTABLE_TTL_SECONDS}`, 'content-length': String(length) },
        }),
      )
      .catch(() => {}),
  );
  return bytes;
}

/** Header and page directory of the index, read when isolate memory lacks them. */
async function readDirectory(
  read: TierRead,
  reader: TierReader,
  loc: TierLocation,
  cost: TierCost,
): Promise<TierDirectory> {
  const id = `${reader.bucket}/${loc.indexKey}`;
  const dir = await singleFlight(
    `dir:${id}`,
    async () =>
      decodeTierDirectory(
        await immutableRange(read, reader, loc.indexKey, 0, indexHeadBytes(loc.indexPages), cost),
      ),
    read.config.originTimeoutMs,
  );
  if (dir.header.volumeId !== read.fid.volumeId || dir.header.datSize !== loc.size) {
    throw new CorruptDataError(`${id} is not the index of volume ${read.fid.volumeId}'s object ${loc.key}`);
  }
  lruSet(directories, id, dir, TIER_DIRECTORIES);
  return dir;
}

/** Page `page` of the index, read (and CRC-checked) when isolate memory lacks it. */
async function readPage(
  read: TierRead,
  reader: TierReader,
  loc: TierLocation,
  dir: TierDirectory,
  page: number,
  cost: TierCost,
): Promise<Uint8Array> {
  const id = `${reader.bucket}/${loc.indexKey}#${page}`;
  const { offset, length } = pageRange(dir.header, page);
  const bytes = await immutableRange(read, reader, loc.indexKey, offset, length, cost);
  verifyPage(dir, page, bytes);
  lruSet(pages, id, bytes, TIER_PAGES);
  return bytes;
}

/** The object is gone from the bucket: the volume is no longer tiered there. */
class TierGoneError extends NotFoundError {}

async function refreshDeletes(reader: TierReader, loc: TierLocation, cost: TierCost, volumeId: number) {
  const id = `${reader.bucket}/${loc.deletesKey}`;
  const known = deletionSets.get(id);
  const startedAt = Date.now();
  const got = await reader.readIfChanged(loc.deletesKey, known?.etag, cost);
  if (got.kind === 'missing') {
    deletionSets.delete(id);
    throw new TierGoneError(`${id} is gone`);
  }
  const entry =
    got.kind === 'unchanged' && known
      ? { ...known, confirmedAt: startedAt }
      : got.kind === 'changed'
        ? { set: decodeDeletionSet(got.bytes), etag: got.etag, confirmedAt: startedAt }
        : undefined;
  if (!entry) throw new CorruptDataError(`${id}: not modified, but nothing is known of it`);
  if (entry.set.volumeId !== volumeId) throw new CorruptDataError(`${id} is not volume ${volumeId}'s`);
  lruSet(deletionSets, id, entry, TIER_DELETION_SETS);
  return entry;
}

/**
 * The deletion set, no older than the fresh period: a set past half of it is
 * served while a refresh runs in the background; past all of it, it is
 * refreshed first. `notBefore` forces a set confirmed after that instant.
 */
type KnownDeletes = { set: DeletionSet; etag: string; confirmedAt: number };

/**
 * The deletion set if isolate memory holds one within the fresh period
 * (refreshed in the background past half of it), else undefined: a plain
 * value, no promise, so a warm read does not wait a turn for what it has.
 */
function freshDeletions(
  read: TierRead,
  reader: TierReader,
  loc: TierLocation,
  cost: TierCost,
): KnownDeletes | undefined {
  const id = `${reader.bucket}/${loc.deletesKey}`;
  const known = lruGet(deletionSets, id);
  if (!known) return undefined;
  const { freshMs, originTimeoutMs } = read.config;
  const age = Date.now() - known.confirmedAt;
  if (age >= freshMs) return undefined;
  if (age >= freshMs * EARLY_REFRESH_FRACTION) {
    // Counted in this read's cost: it is sent (and counted) before the answer's headers are made.
    read.ctx.waitUntil(
      singleFlight(
        `del:${id}`,
        () => refreshDeletes(reader, loc, cost, read.fid.volumeId),
        originTimeoutMs,
      ).catch(() => {}),
    );
  }
  return known;
}

/** The deletion set, confirmed no longer than the fresh period ago (read first when it is older). */
function deletionsOf(
  read: TierRead,
  reader: TierReader,
  loc: TierLocation,
  cost: TierCost,
): KnownDeletes | Promise<KnownDeletes> {
  return (
    freshDeletions(read, reader, loc, cost) ??
    singleFlight(
      `del:${reader.bucket}/${loc.deletesKey}`,
      () => refreshDeletes(reader, loc, cost, read.fid.volumeId),
      read.config.originTimeoutMs,
    )
  );
}

function notFound(confirmedAt: number): Response {
  return new Response(JSON.stringify({ error: 'not found', code: 'not_found' }), {
    status: 404,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      [TIER_CONFIRMED_HEADER]: String(confirmedAt),
    },
  });
}

async function gunzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * The blob from its bucket, or undefined when this read is not one for the
 * tier (the volume is not tiered, its backend is not configured here, the
 * needle is too large or a chunk manifest) or the bucket failed it (down,
 * corrupt bytes, the object gone): the caller then asks the origin.
 */
export async function fromTier(read: TierRead): Promise<TierAnswer | undefined> {
  const { config, fid } = read;
  if (config.tierReaders.size === 0) return undefined;
  let loc: TierLocation | undefined;
  try {
    loc = await lookupTier(fid.volumeId, config, read.ctx);
  } catch {
    return undefined;
  }
  if (!loc) return undefined;
  const reader = config.tierReaders.get(loc.backend);
  // A lookup naming another bucket than this backend's, or keys Kelp never writes, is not followed.
  if (
    !reader ||
    reader.bucket !== loc.bucket ||
    !OBJECT_KEY.test(loc.key) ||
    !OBJECT_KEY.test(loc.indexKey) ||
    !OBJECT_KEY.test(loc.deletesKey) ||
    !Number.isSafeInteger(loc.indexPages)
  ) {
    return undefined;
  }
  const cost: TierCost = { requests: 0, bytes: 0 };
  try {
    return { response: await answer(read, reader, loc, cost), cost };
  } catch (err) {
    if (err instanceof TierGoneError) {
      await forgetTier(fid.volumeId, read.ctx);
      return undefined;
    }
    if (err instanceof KelpError && !(err instanceof NotFoundError)) {
      // Unavailable, or bytes that failed a check: never served; the origin may still answer.
      if (err instanceof CorruptDataError)
        console.error(`kelp edge: tier read of ${read.key.file}: ${err.message}`);
      return undefined;
    }
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** UnavailableError when there is nothing to serve from (kept apart from a blob's 404). */
async function answer(
  read: TierRead,
  reader: TierReader,
  loc: TierLocation,
  cost: TierCost,
): Promise<Response> {
  const { fid, config } = read;
  // Warm, all three are in isolate memory and nothing here waits: the needle's GET is the one await.
  const knownDeletes = deletionsOf(read, reader, loc, cost);
  const knownDir = lruGet(directories, `${reader.bucket}/${loc.indexKey}`);
  const [deletes, dir] =
    knownDir && !(knownDeletes instanceof Promise)
      ? [knownDeletes, knownDir]
      : await Promise.all([knownDeletes, knownDir ?? readDirectory(read, reader, loc, cost)]);
  const confirmedAt = deletes.confirmedAt;
  if (isDeleted(deletes.set, fid.key)) return notFound(confirmedAt);
  // A purge this isolate heard of after the index was written can only be a delete (a tiered volume takes
  // no writes). Memory only: the colo's markers cost two Cache API reads a read, and the deletion set
  // already bounds what any colo serves.
  if (purgedInMemory(read.key) > dir.header.createdAt) return notFound(confirmedAt);
  const page = pageOf(dir, fid.key);
  if (page < 0) return notFound(confirmedAt);
  const pageBytes =
    lruGet(pages, `${reader.bucket}/${loc.indexKey}#${page}`) ??
    (await readPage(read, reader, loc, dir, page, cost));
  const entry = findInPage(dir, page, pageBytes, fid.key);
  if (!entry) return notFound(confirmedAt);
  const version = dir.header.needleVersion;
  const recordSize = needleRecordSize(entry.size, version);
  if (recordSize > config.maxTierReadBytes) {
    throw new UnavailableError(`needle of ${recordSize} bytes: read through the origin`);
  }
  const record = await reader.read(loc.key, entry.byteOffset, recordSize, cost);
  // Id, Size and CRC: a record that fails any is CorruptDataError, never served.
  const needle = decodeNeedle(record, version, { expectedId: fid.key, expectedSize: entry.size });
  if (needle.cookie !== fid.cookie) return notFound(confirmedAt);
  if (needle.flags & FLAG_CHUNK_MANIFEST)
    throw new UnavailableError('a chunked blob: read through the origin');
  const ttl = needle.ttl && !isEmptyTtl(needle.ttl) ? needle.ttl : decodeTtl(dir.header.ttl);
  const expires =
    isEmptyTtl(ttl) || needle.lastModified === undefined
      ? undefined
      : (needle.lastModified + ttlToSeconds(ttl)) * 1000;
  if (expires !== undefined && expires <= Date.now()) return notFound(confirmedAt);
  const { headers } = blobHeaders(needle, read.name, read.ext, read.download, {}, expires);
  const out = new Headers();
  for (const [k, v] of Object.entries(headers)) out.set(k, String(v));
  out.set(TIER_CONFIRMED_HEADER, String(confirmedAt));
  if (read.ifNoneMatch && ifNoneMatchMatches(read.ifNoneMatch, out.get('etag')!)) {
    return new Response(null, { status: 304, headers: out });
  }
  // The edge asks origins for identity too: a gzipped needle is served decoded.
  const body = needle.flags & FLAG_GZIP ? await gunzip(needle.data) : needle.data;
  out.delete('vary');
  out.set('content-length', String(body.length));
  return new Response(body, { status: 200, headers: out });
}
