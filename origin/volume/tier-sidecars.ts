/**
 * The objects a tiered volume keeps beside its `.dat` in the bucket so that
 * the edge can read it with no volume server in the path
 * (docs/decisions/0010-origin-free-reads.md, shared/tier-index.ts):
 *
 * - the index (`<stem>.index`): written once, at upload, from the needle map;
 * - the deletion set (`<stem>.deleted`): keys deleted since, rewritten whole by
 *   the replica that owns the object after every delete. A delete is
 *   acknowledged only once the new set is in the bucket, so the edge, which
 *   revalidates the set within its fresh period, stops serving the needle at
 *   most EDGE_FRESH_SECONDS after the acknowledgement.
 *
 * Every tiered replica of the object writes it. Each replica's PUTs run one
 * at a time, each with the state at its start, and a delete is acknowledged
 * (by the primary, after every replica answered) only once each replica's PUT
 * that started after it applied the delete has landed. An older set from a
 * replica can land after a newer one from another, but only before that
 * acknowledgement: every PUT that lands after it started after the delete was
 * applied, so from the acknowledgement on the set in the bucket holds the key.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TierLocation } from '../../shared/api.ts';
import { UnavailableError } from '../../shared/errors.ts';
import { isLiveEntry } from '../../shared/idx.ts';
import {
  decodeTierIndexHeader,
  encodeDeletionSet,
  encodeTierIndex,
  sidecarKeys,
} from '../../shared/tier-index.ts';
import { encodeTtl } from '../../shared/ttl.ts';
import type { TierBackend } from '../../tiering/backends/backend.ts';
import type { Volume } from './volume.ts';
import type { RemoteDat } from './volume-info.ts';

/** Between background retries of a deletion set that could not be written (doubling up to the max). */
export const DELETES_RETRY_MS = 500;
export const DELETES_RETRY_MAX_MS = 30_000;

/** The live needles of the volume, as the index object lists them. */
export function tierIndexBytes(volume: Volume, createdAt: number): Uint8Array {
  let n = 0;
  volume.map.forEach((_k, offset, size) => {
    if (isLiveEntry(offset, size)) n++;
  });
  // Columns, not objects: a volume can hold tens of millions of needles.
  const keys = new BigUint64Array(n);
  const offsets = new Uint32Array(n);
  const sizes = new Uint32Array(n);
  let i = 0;
  volume.map.forEach((key, offset, size) => {
    if (!isLiveEntry(offset, size) || i >= n) return;
    keys[i] = key;
    offsets[i] = offset;
    sizes[i++] = size;
  });
  return encodeTierIndex({
    needleVersion: volume.version,
    volumeId: volume.id,
    datSize: volume.datSize,
    ttl: encodeTtl(volume.superBlock.ttl),
    createdAt,
    entries: { keys, offsets, sizes },
  });
}

/**
 * Every key the volume's map holds as deleted: a superset of the keys the
 * index lists and that were deleted since, which is all a reader needs.
 * Every replica holds the same set (each delete reaches each replica), so
 * any of them may write it.
 */
export function frozenDeletes(volume: Volume): bigint[] {
  const out: bigint[] = [];
  volume.map.forEach((key, _offset, size) => {
    if (size < 0) out.push(key);
  });
  return out;
}

/** Puts `bytes` under `key` through the backend's verified upload (size and checksum checked by the store). */
async function putObject(backend: TierBackend, key: string, bytes: Uint8Array, signal?: AbortSignal) {
  const dir = await mkdtemp(join(tmpdir(), 'kelp-sidecar-'));
  try {
    const path = join(dir, 'object');
    await writeFile(path, bytes);
    await backend.upload(path, key, signal ? { signal } : {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the index and a first deletion set beside `datKey`; returns their keys. */
export async function writeSidecars(
  volume: Volume,
  backend: TierBackend,
  datKey: string,
  signal?: AbortSignal,
): Promise<{ indexKey: string; indexPages: number; deletesKey: string }> {
  const keys = sidecarKeys(datKey);
  const now = volume.config.now();
  const index = tierIndexBytes(volume, now);
  await putObject(backend, keys.indexKey, index, signal);
  const deleted = frozenDeletes(volume);
  await putObject(backend, keys.deletesKey, encodeDeletionSet(volume.id, deleted, now), signal);
  firstSets.set(volume, { deletesKey: keys.deletesKey, keys: deleted });
  return { ...keys, indexPages: decodeTierIndexHeader(index).pageCount };
}

/**
 * The deletion set writeSidecars put for an upload, until the first publish
 * after its commit: when no delete came in between, that set is the current
 * one already, and putting it again (a temp file, a copy and two fsyncs, or a
 * PUT, on every upload) would change only its `writtenAt`, which no reader
 * uses.
 */
const firstSets = new WeakMap<Volume, { deletesKey: string; keys: bigint[] }>();

/** Whether `first` is still the set to publish: written for this object, and exactly the deletes now. */
function stillCurrent(
  first: { deletesKey: string; keys: bigint[] } | undefined,
  deletesKey: string,
  now: Set<bigint>,
) {
  return (
    first?.deletesKey === deletesKey && first.keys.length === now.size && first.keys.every((k) => now.has(k))
  );
}

/**
 * Removes the `.dat` object and its sidecars (idempotent; each delete of a
 * missing key succeeds). The three at once: each waits on its own request or
 * directory fsync, and a local `.dat`'s removal (freeing its extents) takes
 * the longest; all have settled before this returns or throws.
 */
export async function deleteTierObjects(
  backend: TierBackend,
  remote: Pick<RemoteDat, 'key' | 'indexKey' | 'deletesKey'>,
): Promise<void> {
  const { indexKey, deletesKey } = sidecarKeys(remote.key);
  const deletes = await Promise.allSettled([
    backend.delete(remote.key),
    backend.delete(remote.indexKey ?? indexKey),
    backend.delete(remote.deletesKey ?? deletesKey),
  ]);
  for (const d of deletes) if (d.status === 'rejected') throw d.reason;
}

// ---- the deletion-set writer of an owned object ----

interface Writer {
  /** The object this writer's state is about: a volume tiered again gets a new writer. */
  remoteKey: string | undefined;
  /**
   * The deleted keys, read from the needle map once (a walk of every entry) and then kept up to date by
   * the deletes that publish: a tiered volume's deletes are never undone (restore refuses a frozen .dat).
   */
  keys?: Set<bigint>;
  current?: Promise<void>;
  queued?: Promise<void>;
  /** A set with every delete so far has reached the bucket since this process opened the volume. */
  published: boolean;
  retryMs: number;
  timer?: ReturnType<typeof setTimeout>;
}

const writers = new WeakMap<Volume, Writer>();

/** Backends by name (the server's BackendRegistry, or one backend during an upload). */
export interface BackendsByName {
  get(name: string): TierBackend;
}

function writerOf(volume: Volume): Writer {
  const remoteKey = volume.info.remote?.key;
  let w = writers.get(volume);
  if (!w || w.remoteKey !== remoteKey) {
    w = { remoteKey, published: false, retryMs: DELETES_RETRY_MS };
    writers.set(volume, w);
  }
  return w;
}

function ownedRemote(volume: Volume): (RemoteDat & { deletesKey: string }) | undefined {
  const r = volume.info.remote;
  return r?.deletesKey ? (r as RemoteDat & { deletesKey: string }) : undefined;
}

async function putDeletes(volume: Volume, backends: BackendsByName, w: Writer): Promise<void> {
  const remote = ownedRemote(volume);
  if (!remote || volume.closed) return;
  const backend = backends.get(remote.backend);
  const wasPublished = w.published;
  try {
    w.keys ??= new Set(frozenDeletes(volume));
    const first = firstSets.get(volume);
    firstSets.delete(volume);
    if (!stillCurrent(first, remote.deletesKey, w.keys)) {
      await putObject(backend, remote.deletesKey, encodeDeletionSet(volume.id, w.keys, volume.config.now()));
    }
  } catch (err) {
    w.published = false;
    // Until one lands, keep trying in the background: the delete that failed was answered 503,
    // and a retry of it finds the key deleted already (404) and would not publish again.
    if (!w.timer && !volume.closed) {
      w.timer = setTimeout(() => {
        w.timer = undefined;
        void publishDeletes(volume, backends).catch(() => {});
      }, w.retryMs);
      w.timer.unref?.();
      w.retryMs = Math.min(DELETES_RETRY_MAX_MS, w.retryMs * 2);
    }
    throw new UnavailableError(
      `volume ${volume.id}: the delete is done here, but the tier's deletion set could not be written ` +
        '(the edge may serve the blob until it is; retrying in the background)',
      1,
      { cause: err },
    );
  }
  w.published = true;
  w.retryMs = DELETES_RETRY_MS;
  // The tier location is reported to the master only once the set is published.
  if (!wasPublished) volume.config.onChange?.();
}

/**
 * Writes the volume's deletion set when it owns a tiered object (a no-op
 * otherwise). Resolves once a set written after this call started is in the
 * bucket; concurrent callers share PUTs (one in flight, one queued).
 */
export function publishDeletes(
  volume: Volume,
  backends: BackendsByName | undefined,
  deletedKey?: bigint,
): Promise<void> {
  if (!backends || !ownedRemote(volume)) return Promise.resolve();
  const w = writerOf(volume);
  if (deletedKey !== undefined) w.keys?.add(deletedKey);
  if (!w.current) {
    w.current = putDeletes(volume, backends, w).finally(() => {
      w.current = undefined;
    });
    return w.current;
  }
  w.queued ??= w.current
    .catch(() => {})
    .then(() => {
      w.queued = undefined;
      return publishDeletes(volume, backends);
    });
  return w.queued;
}

/**
 * Where readers find the volume's bytes, for the heartbeat (and so the
 * master's lookup); undefined while an owner's deletion set is not yet
 * known to be current (one is then written in the background, and the next
 * beat carries the location).
 */
export function tierLocationOf(
  volume: Volume,
  backends: BackendsByName | undefined,
): TierLocation | undefined {
  const r = volume.info.remote;
  if (!r?.indexKey || !r.deletesKey || r.indexPages === undefined || !backends) return undefined;
  let kind: string;
  try {
    kind = backends.get(r.backend).type;
  } catch {
    return undefined;
  }
  if (!writerOf(volume).published) {
    void publishDeletes(volume, backends).catch(() => {});
    return undefined;
  }
  return {
    kind,
    backend: r.backend,
    ...(r.bucket !== undefined ? { bucket: r.bucket } : {}),
    key: r.key,
    size: r.size,
    indexKey: r.indexKey,
    indexPages: r.indexPages,
    deletesKey: r.deletesKey,
  };
}
