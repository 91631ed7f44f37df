/**
 * One object per tiered volume, not one per replica (issue 16, item 5;
 * docs/decisions/0010-origin-free-reads.md). The first replica uploads the
 * `.dat` with its index (tier.ts); each other replica asked to upload finds
 * that object through its peers and points its `.vif` at it instead of
 * uploading its own: no bytes, one PUT saved per replica.
 *
 * Replicas do not hold byte-identical `.dat` files (each stamps its own
 * append times, and concurrent writes land in different orders), so a
 * replica cannot adopt the object by its checksum. It adopts it by its
 * index: the same live keys with the same sizes as its own needle map (keys
 * it has deleted since may be live in the index), and a sample of needles
 * read from both sides with the same cookie and CRC. Then it rewrites its
 * `.idx` with the object's offsets (plus its own deletes), so that its reads,
 * deletes and a later download all work against the shared object.
 *
 * Crash safety: the new index is written beside the old one (`.sidx`, fsync'd),
 * then the `.vif` naming the shared object is written (the commit point, which
 * also drops the local `.dat`), then `.sidx` is renamed over `.idx`, all
 * without yielding, so no delete runs in between. A crash before the commit
 * leaves a stray `.sidx` next to a local volume, removed at the next start; a
 * crash after it, a `.sidx` that the start renames into place
 * (finishInterruptedShare).
 *
 * A download (tier.ts) deletes the object only when no other replica still
 * points at it; a replica that cannot tell (a peer down) keeps it.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { ConflictError, KelpError } from '../../shared/errors.ts';
import { IDX_ENTRY_SIZE, TOMBSTONE_FILE_SIZE, writeIdxEntry } from '../../shared/idx.ts';
import { copyCount } from '../../shared/placement.ts';
import { decodeTierIndexHeader, tierIndexEntries, tierIndexSize } from '../../shared/tier-index.ts';
import type { TierBackend } from '../../tiering/backends/backend.ts';
import { fsyncDir } from '../fs/files.ts';
import type { Logger } from '../observability/log.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import { recordIn } from './data-file.ts';
import { volumePath } from './files.ts';
import type { Replicator } from './replication.ts';
import { TieredDat } from './tiered-dat.ts';
import { LARGE_NEEDLE_BYTES, type Volume, type VolumeConfig } from './volume.ts';
import type { RemoteDat } from './volume-info.ts';

/** Needles read back from both sides before a replica adopts another's object. */
export const SHARE_SAMPLE_NEEDLES = 8;
const PEER_TIMEOUT_MS = 10_000;

/** The other replicas of a volume and what each says of its tier state. */
export class TierPeers {
  private readonly replicator: () => Replicator;
  /** Peers' `/admin/tier/status`, signed as a cluster member. */
  private readonly peers: VolumeClient;

  constructor(replicator: () => Replicator, clusterKey: string | undefined) {
    this.replicator = replicator;
    this.peers = new VolumeClient({
      timeoutMs: PEER_TIMEOUT_MS,
      sign: (method, url, headers) => withClusterAuth(clusterKey, method, url, headers),
    });
  }

  /**
   * Each peer's remote record (null: local), or undefined for a peer that did
   * not answer. An empty list for an unreplicated volume.
   */
  async remotes(volume: Volume): Promise<Array<{ peer: string; remote: RemoteDat | null | undefined }>> {
    const copies = copyCount(volume.superBlock.placement);
    if (copies <= 1) return [];
    const peers = await this.replicator().peers(volume.id, copies);
    return Promise.all(
      peers.map(async (peer) => {
        try {
          return { peer, remote: (await this.peers.volumeTierStatus(peer, volume.id)).remote };
        } catch (err) {
          // No answer, or an error answer: this peer cannot tell.
          if (!(err instanceof KelpError)) throw err;
          return { peer, remote: undefined };
        }
      }),
    );
  }

  /** Whether another replica may still read the object (a peer that did not answer may). */
  async stillReferenced(volume: Volume, key: string): Promise<boolean> {
    try {
      const all = await this.remotes(volume);
      return all.some((p) => p.remote === undefined || p.remote?.key === key);
    } catch {
      return true;
    }
  }
}

async function readIndexObject(backend: TierBackend, key: string): Promise<Uint8Array> {
  const head = await backend.openFile(key, 64).readAt(0, 64);
  const size = tierIndexSize(decodeTierIndexHeader(head));
  return backend.openFile(key, size).readAt(0, size);
}

/**
 * The new `.idx`: the object's entries, then a tombstone for every key this
 * replica holds deleted. Undefined when the object is not this volume's data
 * (a live key missing on either side, or another size).
 */
function sharedIdx(
  volume: Volume,
  indexBytes: Uint8Array,
): { bytes: Uint8Array; sample: bigint[]; tombstoned: Set<bigint> } | undefined {
  const entries = [...tierIndexEntries(indexBytes)];
  const remoteKeys = new Set<bigint>();
  for (const e of entries) {
    remoteKeys.add(e.key);
    const mine = volume.map.get(e.key);
    // Deleted here since the object's index was written: fine, the tombstone below keeps it deleted.
    if (!mine || (mine.size >= 0 && mine.size !== e.size)) return undefined;
  }
  let mismatch = false;
  const deleted: bigint[] = [];
  volume.map.forEach((key, offset, size) => {
    if (size < 0 || offset === 0) deleted.push(key);
    else if (!remoteKeys.has(key)) mismatch = true;
  });
  if (mismatch) return undefined;
  const bytes = new Uint8Array((entries.length + deleted.length) * IDX_ENTRY_SIZE);
  let at = 0;
  for (const e of entries) {
    writeIdxEntry(bytes, at, e);
    at += IDX_ENTRY_SIZE;
  }
  for (const key of deleted) {
    writeIdxEntry(bytes, at, { key, offset: 0, size: TOMBSTONE_FILE_SIZE });
    at += IDX_ENTRY_SIZE;
  }
  const live = entries.filter((e) => (volume.map.get(e.key)?.size ?? -1) >= 0);
  const step = Math.max(1, Math.floor(live.length / SHARE_SAMPLE_NEEDLES));
  const sample = live
    .filter((_, i) => i % step === 0)
    .slice(0, SHARE_SAMPLE_NEEDLES)
    .map((e) => e.key);
  return { bytes, sample, tombstoned: new Set(deleted) };
}

/**
 * Points this replica at a peer's object of the same volume on `backend`, if
 * one is there and holds this replica's data; returns the new remote record,
 * or undefined (then the caller uploads as before). The caller has sealed the
 * volume and set `transferring`, so deletes meanwhile are index-only.
 */
export async function shareFromPeers(
  volume: Volume,
  backend: TierBackend,
  peers: TierPeers,
  bucket: string | undefined,
  log: Logger | undefined,
  signal?: AbortSignal,
): Promise<RemoteDat | undefined> {
  let candidates: Awaited<ReturnType<TierPeers['remotes']>>;
  try {
    candidates = await peers.remotes(volume);
  } catch {
    return undefined;
  }
  for (const { peer, remote } of candidates) {
    if (
      !remote?.indexKey ||
      !remote.deletesKey ||
      remote.backend !== backend.name ||
      remote.bucket !== bucket
    ) {
      continue;
    }
    signal?.throwIfAborted();
    let plan: ReturnType<typeof sharedIdx>;
    try {
      plan = sharedIdx(volume, await readIndexObject(backend, remote.indexKey));
    } catch (err) {
      log?.warn(
        `volume ${volume.id}: cannot read ${peer}'s index ${remote.indexKey}: ${(err as Error).message}`,
      );
      continue;
    }
    if (!plan) {
      log?.warn(
        `volume ${volume.id}: ${peer}'s object ${remote.key} does not hold the same needles; uploading its own`,
      );
      continue;
    }
    // The same needles with the same cookie and CRC on both sides, where they are read back.
    const file = backend.openFile(remote.key, remote.size);
    let same = true;
    for (const key of plan.sample) {
      const mine = volume.map.get(key)!;
      if (mine.size > LARGE_NEEDLE_BYTES) continue;
      const remoteOffset = offsetIn(plan.bytes, key);
      if (remoteOffset === undefined) continue;
      const local = volume.recordAt(key, mine.offset, mine.size);
      const there = await recordIn(file, key, remoteOffset, mine.size, volume.version);
      if (local.checksum !== there.checksum || local.cookie !== there.cookie) same = false;
    }
    if (!same) {
      log?.warn(
        `volume ${volume.id}: ${peer}'s object ${remote.key} reads back other bytes; uploading its own`,
      );
      continue;
    }
    signal?.throwIfAborted();
    return commitShare(
      volume,
      { ...remote, keepLocalDat: false, owner: false },
      file,
      plan.bytes,
      plan.tombstoned,
    );
  }
  return undefined;
}

/** The stored offset (8-byte units) of `key` among the first entries of an `.idx` image. */
function offsetIn(idx: Uint8Array, key: bigint): number | undefined {
  const v = new DataView(idx.buffer, idx.byteOffset, idx.byteLength);
  for (let at = 0; at < idx.length; at += IDX_ENTRY_SIZE) {
    if (v.getBigUint64(at) === key && v.getUint32(at + 8) !== 0) return v.getUint32(at + 8);
  }
  return undefined;
}

/** Writes `.sidx`, commits with the `.vif`, renames `.sidx` over `.idx`: synchronously, nothing runs between. */
function commitShare(
  volume: Volume,
  remote: RemoteDat,
  file: ReturnType<TierBackend['openFile']>,
  idx: Uint8Array,
  tombstoned: Set<bigint>,
): RemoteDat {
  if (volume.closed) throw new ConflictError(`volume ${volume.id} closed while it was being shared`);
  // Deletes that came while the peer's index was checked: the last entries, as tombstones.
  const extra: bigint[] = [];
  volume.map.forEach((key, offset, size) => {
    if ((size < 0 || offset === 0) && !tombstoned.has(key)) extra.push(key);
  });
  const bytes = new Uint8Array(idx.length + extra.length * IDX_ENTRY_SIZE);
  bytes.set(idx);
  for (const [i, key] of extra.entries()) {
    writeIdxEntry(bytes, idx.length + i * IDX_ENTRY_SIZE, { key, offset: 0, size: TOMBSTONE_FILE_SIZE });
  }
  const sidx = volume.path('sidx');
  writeFileSync(sidx, bytes, { flush: true });
  volume.replaceDat({
    info: volume.tieredInfo(remote),
    dat: new TieredDat(volume.id, remote, file),
    retireOld: true,
    indexFrom: sidx,
  });
  return remote;
}

/**
 * At start, before the volume opens: a `.sidx` left by a share the crash cut
 * short goes into place if the `.vif` committed it, else away.
 */
export function finishInterruptedShare(
  config: Pick<VolumeConfig, 'dir' | 'collection' | 'volumeId'>,
  committed: boolean,
  log: Logger | undefined,
): void {
  const sidx = volumePath(config.dir, config.collection, config.volumeId, 'sidx');
  if (!existsSync(sidx)) return;
  if (committed) {
    renameSync(sidx, volumePath(config.dir, config.collection, config.volumeId, 'idx'));
    rmSync(volumePath(config.dir, config.collection, config.volumeId, 'dat'), { force: true });
    fsyncDir(config.dir);
    log?.warn(
      `volume ${config.volumeId}: finished pointing it at its peer's tier object (interrupted by a stop)`,
    );
  } else {
    rmSync(sidx);
    log?.warn(`volume ${config.volumeId}: removed the .sidx of a tier share that never committed`);
  }
}
