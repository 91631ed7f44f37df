/**
 * A volume server's side of moving a volume to another server, or copying it
 * there as a new replica (docs/decisions/0007-volume-move.md). The
 * orchestrator (origin/admin/move.ts, run by `kelp admin` or the master)
 * calls these steps in order; each is idempotent, and each leaves a state a
 * crash of anyone cannot turn into a lost or a diverging copy:
 *
 * 1. freeze (source): a persisted marker stops writes, deletes, vacuum and
 *    tier transfers, so the files are a fixed snapshot.
 * 2. copy (target): pull `.idx` and `.dat` from the source into staging files
 *    (`.mvx`, `.mvd`), then verify: sizes and the `.idx` hash as the source
 *    reports them, every live needle decoded with its CRC. Staging files are
 *    never opened as a volume and are swept at startup.
 * 3. mount (target): `.vif` (with a `target` marker), `.idx`, then `.dat`
 *    renamed into place (the `.dat` last: its name is what makes a volume
 *    exist at startup) and opened. Both servers now hold the same frozen bytes.
 * 4. delete (source, moves only): the source's files are removed.
 * 5. finish (target): the marker is cleared; the volume takes writes again
 *    if the source did.
 */
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, existsSync, openSync, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import {
  ConflictError,
  CorruptDataError,
  InvalidParamError,
  KelpError,
  UpstreamError,
} from '../../shared/errors.ts';
import { IDX_ENTRY_SIZE } from '../../shared/idx.ts';
import { needleRecordSize } from '../../shared/needle.ts';
import { decodeNeedle } from '../../shared/needle-decode.ts';
import { decodeSuperBlock, superBlockSize } from '../../shared/superblock.ts';
import { fsyncDir, preadExact } from '../fs/files.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import { volumePath } from './files.ts';
import type { DiskLocation, Store } from './store.ts';
import { loadIdx } from './volume.ts';
import { type MoveMarker, writeVolumeInfo } from './volume-info.ts';

/** Bound on pulling one file of a volume (GiBs on a slow disk). */
export const COPY_TIMEOUT_MS = 60 * 60_000;
/** Bound on the small calls (snapshot). */
const CALL_TIMEOUT_MS = 30_000;

/** What the source says its frozen copy is: what the target must end up with. */
export interface VolumeSnapshot {
  volume: number;
  collection: string;
  datSize: number;
  idxSize: number;
  idxSha256: string;
  fileCount: number;
  /** The volume's own read-only flag, under the freeze. */
  readOnly: boolean;
  moving: MoveMarker;
}

/** A verified copy in staging, waiting for its mount (kept in memory: a restart sweeps the files). */
interface Staged {
  location: DiskLocation;
  snapshot: VolumeSnapshot;
  source: string;
  mode: MoveMarker['mode'];
}

export interface CopyReport {
  volume: number;
  source: string;
  bytes: number;
  fileCount: number;
  verified: true;
}

/** Credentials of a call to another volume server: the cluster signature, else the admin key. */
export interface PeerCredentials {
  clusterKey?: string;
  adminKey?: string;
}

function peerHeaders(creds: PeerCredentials, method: string, url: string): Record<string, string> {
  if (creds.clusterKey) return withClusterAuth(creds.clusterKey, method, url);
  return creds.adminKey ? { Authorization: `Bearer ${creds.adminKey}` } : {};
}

function sha256File(path: string, length: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let at = 0; at < length; at += 4 * 1024 * 1024) {
      hash.update(preadExact(fd, Math.min(4 * 1024 * 1024, length - at), at));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export class VolumeMoves {
  private readonly store: Store;
  /** The source volume server, as a peer: signed with the cluster key, else the admin key. */
  private readonly peers: VolumeClient;
  private readonly staged = new Map<number, Staged>();
  private readonly copying = new Set<number>();

  constructor(store: Store, creds: PeerCredentials) {
    this.store = store;
    this.peers = new VolumeClient({
      timeoutMs: CALL_TIMEOUT_MS,
      sign: (method, url, headers) => ({ ...headers, ...peerHeaders(creds, method, url) }),
    });
  }

  /** Step 1, on the source. Idempotent for the same peer and mode. */
  async freeze(volumeId: number, peer: string, mode: MoveMarker['mode']): Promise<VolumeSnapshot> {
    const volume = this.store.get(volumeId);
    const m = volume.info.moving;
    if (m && !(m.role === 'source' && m.peer === peer && m.mode === mode)) {
      throw new ConflictError(
        `volume ${volumeId} is already ${m.role === 'source' ? `being ${m.mode === 'move' ? 'moved' : 'copied'} to` : 'arriving from'} ${m.peer}`,
      );
    }
    if (volume.info.remote) {
      throw new ConflictError(
        `volume ${volumeId} is tiered to ${volume.info.remote.backend}: download it first`,
      );
    }
    if (volume.transferring) throw new ConflictError(`volume ${volumeId} has a tier transfer running`);
    if (existsSync(volume.path('cpd'))) throw new ConflictError(`volume ${volumeId} is being compacted`);
    if (!m) volume.setMoving({ role: 'source', peer, mode, since: new Date().toISOString() });
    // Appends are synchronous: from here on the files are fixed; let the last ones reach the disk.
    await volume.syncer.flush();
    return this.snapshot(volumeId);
  }

  /** Undoes step 1 (an abandoned move): the source takes writes again. */
  unfreeze(volumeId: number): void {
    const volume = this.store.get(volumeId);
    const m = volume.info.moving;
    if (!m) return;
    if (m.role !== 'source') {
      throw new ConflictError(
        `volume ${volumeId} is an arriving copy: finish it or delete it, not unfreeze it`,
      );
    }
    volume.setMoving(undefined);
  }

  /** The frozen source's sizes and `.idx` hash (what a copy is verified against). */
  snapshot(volumeId: number): VolumeSnapshot {
    const volume = this.store.get(volumeId);
    const m = volume.info.moving;
    if (m?.role !== 'source')
      throw new ConflictError(`volume ${volumeId} is not frozen for a move: freeze it first`);
    return {
      volume: volumeId,
      collection: volume.config.collection,
      datSize: volume.datSize,
      idxSize: volume.idxSize,
      idxSha256: sha256File(volume.path('idx'), volume.idxSize),
      fileCount: volume.map.liveCount,
      readOnly: volume.info.readOnly,
      moving: m,
    };
  }

  /** The path and length of a frozen source's file, for `GET /admin/volume/file`. */
  fileOf(volumeId: number, ext: string): { path: string; length: number } {
    if (ext !== 'dat' && ext !== 'idx') throw new InvalidParamError('ext must be dat or idx');
    const snap = this.snapshot(volumeId);
    const volume = this.store.get(volumeId);
    return { path: volume.path(ext), length: ext === 'dat' ? snap.datSize : snap.idxSize };
  }

  private async call<T>(source: string, pathAndQuery: string): Promise<T> {
    try {
      return await this.peers.json<T>(source, pathAndQuery);
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      throw new UpstreamError(err.message, { cause: err });
    }
  }

  /**
   * Streams the source's file into `path`; returns how many bytes arrived.
   * COPY_TIMEOUT_MS bounds the whole copy, not only the wait for its headers.
   */
  private async pull(source: string, pathAndQuery: string, path: string): Promise<number> {
    let res: Response;
    try {
      res = await this.peers.get(source, pathAndQuery, {
        timeoutMs: COPY_TIMEOUT_MS,
        signal: AbortSignal.timeout(COPY_TIMEOUT_MS),
      });
    } catch (err) {
      if (!(err instanceof KelpError)) throw err;
      throw new UpstreamError(err.message, { cause: err });
    }
    if (!res.body) throw new UpstreamError(`${source}${pathAndQuery}: no body`);
    const out = createWriteStream(path, { flags: 'w', flush: true });
    await pipeline(Readable.fromWeb(res.body as never), out);
    return out.bytesWritten;
  }

  /** Step 2, on the target: pull the frozen source's files into staging and verify them. */
  async copy(volumeId: number, source: string, mode: MoveMarker['mode']): Promise<CopyReport> {
    if (this.store.has(volumeId)) throw new ConflictError(`volume ${volumeId} is already on this server`);
    if (this.copying.has(volumeId))
      throw new ConflictError(`volume ${volumeId} is being copied here already`);
    this.copying.add(volumeId);
    this.staged.delete(volumeId);
    const base = '/admin/volume';
    let location: DiskLocation | undefined;
    let snapshot: VolumeSnapshot | undefined;
    try {
      snapshot = await this.call<VolumeSnapshot>(source, `${base}/snapshot?volume=${volumeId}`);
      location = this.store.locationForNewVolume();
      const p = (ext: string) => volumePath(location!.dir, snapshot!.collection, volumeId, ext);
      const idxBytes = await this.pull(source, `${base}/file?volume=${volumeId}&ext=idx`, p('mvx'));
      const datBytes = await this.pull(source, `${base}/file?volume=${volumeId}&ext=dat`, p('mvd'));
      verifyStaged(p('mvd'), p('mvx'), snapshot, { idxBytes, datBytes });
      fsyncDir(location.dir);
      this.staged.set(volumeId, { location, snapshot, source, mode });
      return {
        volume: volumeId,
        source,
        bytes: datBytes + idxBytes,
        fileCount: snapshot.fileCount,
        verified: true,
      };
    } catch (err) {
      if (location && snapshot) {
        for (const ext of ['mvx', 'mvd']) {
          rmSync(volumePath(location.dir, snapshot.collection, volumeId, ext), { force: true });
        }
      }
      throw err;
    } finally {
      this.copying.delete(volumeId);
    }
  }

  /** Step 3, on the target: put the verified copy in place, frozen with a `target` marker. Idempotent. */
  mount(volumeId: number, source: string): void {
    if (this.store.has(volumeId)) {
      const m = this.store.get(volumeId).info.moving;
      if (m?.role === 'target' && m.peer === source) return;
      throw new ConflictError(`volume ${volumeId} is already on this server`);
    }
    const staged = this.staged.get(volumeId);
    if (!staged || staged.source !== source) {
      throw new ConflictError(
        `volume ${volumeId}: no verified copy from ${source} is staged here; copy it first`,
      );
    }
    const { location, snapshot } = staged;
    const p = (ext: string) => volumePath(location.dir, snapshot.collection, volumeId, ext);
    writeVolumeInfo(p('vif'), {
      readOnly: snapshot.readOnly,
      moving: { role: 'target', peer: source, mode: staged.mode, since: new Date().toISOString() },
    });
    renameSync(p('mvx'), p('idx'));
    renameSync(p('mvd'), p('dat'));
    fsyncDir(location.dir);
    this.staged.delete(volumeId);
    this.store.adopt(location, snapshot.collection, volumeId);
  }

  /** Step 5, on the target: the copy is confirmed; it takes writes again if the source did. */
  finish(volumeId: number): void {
    const volume = this.store.get(volumeId);
    const m = volume.info.moving;
    if (!m) return;
    if (m.role !== 'target')
      throw new ConflictError(`volume ${volumeId} is the source of a move, not its target`);
    volume.setMoving(undefined);
  }

  /**
   * Step 4 (source of a move), or removing an extra replica or an abandoned
   * arriving copy. `movedTo` must name the marker's target, so a delete meant
   * for one move never removes the volume of another.
   */
  async delete(
    volumeId: number,
    opts: { movedTo?: string; extra?: boolean; abortArrival?: boolean },
  ): Promise<void> {
    if (!this.store.has(volumeId)) return;
    const m = this.store.get(volumeId).info.moving;
    if (opts.movedTo !== undefined) {
      if (m?.role !== 'source' || m.mode !== 'move' || m.peer !== opts.movedTo) {
        throw new ConflictError(`volume ${volumeId} is not being moved to ${opts.movedTo} here`);
      }
    } else if (opts.abortArrival) {
      if (m?.role !== 'target') throw new ConflictError(`volume ${volumeId} is not an arriving copy here`);
    } else if (!opts.extra || m) {
      throw new ConflictError(
        m
          ? `volume ${volumeId} is in a move (${m.role} of ${m.peer})`
          : 'say movedTo=, extra=true or abortArrival=true',
      );
    }
    await this.store.deleteVolume(volumeId);
  }
}

/**
 * The staged copy is what the source froze: the sizes and the `.idx` hash it
 * reported, a superblock that decodes, and every live needle whole, at the
 * offset its entry says, with a good CRC.
 */
export function verifyStaged(
  datPath: string,
  idxPath: string,
  snapshot: VolumeSnapshot,
  got: { idxBytes: number; datBytes: number },
): void {
  const fail = (why: string) => {
    throw new CorruptDataError(`volume ${snapshot.volume}: the copy does not verify: ${why}`);
  };
  if (got.idxBytes !== snapshot.idxSize)
    fail(`.idx has ${got.idxBytes} bytes, the source ${snapshot.idxSize}`);
  if (got.datBytes !== snapshot.datSize)
    fail(`.dat has ${got.datBytes} bytes, the source ${snapshot.datSize}`);
  if (snapshot.idxSize % IDX_ENTRY_SIZE !== 0) fail('.idx is not whole entries');
  if (sha256File(idxPath, snapshot.idxSize) !== snapshot.idxSha256) fail('.idx differs from the source');
  const datFd = openSync(datPath, 'r');
  const idxFd = openSync(idxPath, 'r');
  try {
    const head = preadExact(datFd, 8, 0);
    const superBlock = decodeSuperBlock(preadExact(datFd, superBlockSize(head), 0));
    const map = loadIdx(idxFd, snapshot.idxSize);
    if (map.liveCount !== snapshot.fileCount)
      fail(`${map.liveCount} live needles, the source has ${snapshot.fileCount}`);
    map.forEach((key, offset, size) => {
      if (size < 0) return;
      const bytes = preadExact(datFd, needleRecordSize(size, superBlock.version), offset * 8);
      decodeNeedle(bytes, superBlock.version, { expectedId: key, expectedSize: size });
    });
  } finally {
    closeSync(datFd);
    closeSync(idxFd);
  }
}
