/**
 * What a volume is (SeaweedFS's `Volume`: an index over a data file): its
 * configuration, its files (the data file, data-file.ts, and the `.idx`),
 * the needle map in RAM, the `.vif` state (read-only, tiered, moving), and
 * the status the master hears. The volume's behaviour is layered on this in
 * one file per concept: reads (volume-read.ts), writes (volume-write.ts),
 * deletes and undo (volume-delete.ts), and opening, swapping and closing the
 * files (volume.ts, volume-open.ts).
 */
import type { VolumeStatusJson } from '../../shared/api.ts';
import { ConflictError, InternalError, ReadOnlyVolumeError } from '../../shared/errors.ts';
import type { Placement } from '../../shared/placement.ts';
import { ReadHeat } from '../../shared/read-heat.ts';
import type { DecodedSuperBlock } from '../../shared/superblock.ts';
import { isEmptyTtl, type Ttl, ttlToSeconds } from '../../shared/ttl.ts';
import type { BackendFile } from '../../tiering/backends/backend.ts';
import type { DataFile } from './data-file.ts';
import type { DiskSpace } from './disk-space.ts';
import { volumePath } from './files.ts';
import { LocalDat } from './local-dat.ts';
import type { NeedleMap } from './needle-map.ts';
import { ReadMode } from './read-mode.ts';
import { type FsyncPolicy, GroupSyncer, type SyncObserver } from './syncer.ts';
import { type MoveMarker, type RemoteDat, type VolumeInfo, writeVolumeInfo } from './volume-info.ts';

export const LARGE_NEEDLE_BYTES = 1024 * 1024;
/** SeaweedFS's default volume size limit since PR #10761 (docs/format.md §7). */
export const DEFAULT_VOLUME_SIZE_LIMIT = 30 * 1024 * 1024 * 1024;

export interface VolumeConfig {
  dir: string;
  collection: string;
  volumeId: number;
  fsync: FsyncPolicy;
  /** Reaching this many bytes of `.dat` seals the volume. */
  sizeLimitBytes: number;
  /** Milliseconds since the epoch; injectable so TTL expiry can be tested. */
  now: () => number;
  /** Told when something the master must hear about changes (sealed, unsealed). */
  onChange?: () => void;
  /** Opens a tiered volume's remote `.dat` (tier.ts); undefined when its backend is not configured here. */
  openRemote?: (remote: RemoteDat) => BackendFile | undefined;
  /** Whether the disk under `dir` is full (disk-space.ts): shared by the volumes of one location. */
  space?: DiskSpace;
  /** Told of every fsync batch (metrics). */
  onSync?: SyncObserver;
}

/** A volume's status in memory: the `/status` JSON shape (shared/api.ts) with placement and TTL parsed. */
export type VolumeStatus = Omit<VolumeStatusJson, 'replicaPlacement' | 'ttl'> & {
  replicaPlacement: Placement;
  ttl: Ttl;
};

/** A volume's open files, as volume-open.ts hands them over. */
export interface VolumeFiles {
  dat: DataFile;
  idxFd: number;
  datSize: number;
  idxSize: number;
  superBlock: DecodedSuperBlock;
  map: NeedleMap;
  info: VolumeInfo;
  /** Startup repairs, for the log. */
  repairs: string[];
  openedClean: boolean;
}

export abstract class VolumeState {
  readonly config: VolumeConfig;
  superBlock: DecodedSuperBlock;
  /** Where the next needle goes; always a multiple of 8. */
  datSize: number;
  idxSize: number;
  /** The bytes under the index (data-file.ts); replaced only by replaceDat (volume.ts). */
  protected dat: DataFile;
  protected idxFd: number;
  protected needles: NeedleMap;
  info: VolumeInfo;
  readonly syncer: GroupSyncer;
  /** Startup repairs, for the log. */
  readonly repairs: string[];
  /** Opened after a clean shutdown (clean-shutdown.ts): the startup repair scan was skipped. */
  readonly openedClean: boolean;
  /** Whether small reads go to the thread pool (volume-read.ts). */
  readonly readMode = new ReadMode();
  /** Set by close(): no more appends. */
  closed = false;
  private transfer = false;
  readonly heat: ReadHeat;
  /** Milliseconds; the last append (from the `.idx`'s mtime at open). */
  modifiedAt: number;

  protected constructor(config: VolumeConfig, files: VolumeFiles, modifiedAt: number) {
    this.config = config;
    this.dat = files.dat;
    this.idxFd = files.idxFd;
    this.datSize = files.datSize;
    this.idxSize = files.idxSize;
    this.superBlock = files.superBlock;
    this.needles = files.map;
    this.info = files.info;
    this.repairs = files.repairs;
    this.openedClean = files.openedClean;
    this.syncer = new GroupSyncer(
      config.fsync,
      () => (this.dat instanceof LocalDat ? [this.dat.fd, this.idxFd] : [this.idxFd]),
      config.onSync,
    );
    this.heat = new ReadHeat(config.now);
    this.modifiedAt = modifiedAt;
  }

  /**
   * A tier upload or download of this volume is running (tier.ts): the `.dat`
   * must not change under it, so deletes are index-only and the volume cannot
   * be made writable until it ends.
   */
  get transferring(): boolean {
    return this.transfer;
  }

  /** Marks a tier transfer as running (refused if one already is); returns what ends it. */
  startTransfer(): () => void {
    if (this.transfer) throw new ConflictError(`volume ${this.id} already has a tier transfer running`);
    this.transfer = true;
    return () => {
      this.transfer = false;
    };
  }

  /** The `.vif` of this volume once tiered to `remote`: sealed (replaceDat writes it). */
  tieredInfo(remote: RemoteDat): VolumeInfo {
    return { ...this.info, readOnly: true, remote };
  }

  /** The `.vif` of this volume back on local disk: writable again unless full. */
  untieredInfo(): VolumeInfo {
    const { remote: _gone, ...rest } = this.info;
    return { ...rest, readOnly: this.datSize >= this.config.sizeLimitBytes };
  }

  /** The needle map (read it; the volume's own methods change it). */
  get map(): NeedleMap {
    return this.needles;
  }

  /** The volume's `.dat` is on this server's disk (possibly beside a tier copy); false once it lives only in a tier. */
  get hasLocalDat(): boolean {
    return this.dat.local;
  }

  /** The `.dat` on disk, for what only a local file can do (appends, the clean mark). */
  protected get disk(): LocalDat {
    if (this.dat instanceof LocalDat) return this.dat;
    throw new InternalError(`volume ${this.id}: its .dat is in a tier, not on this disk`);
  }

  /**
   * The `.dat` is, or is about to become, a copy of an immutable remote
   * object: tiered (with or without a kept local copy) or in a tier transfer.
   * Nothing may be appended to it, so a delete is an index entry only.
   */
  get datFrozen(): boolean {
    return !this.dat.local || this.info.remote !== undefined || this.transferring;
  }

  path(ext: string): string {
    return volumePath(this.config.dir, this.config.collection, this.config.volumeId, ext);
  }

  get id(): number {
    return this.config.volumeId;
  }

  get version(): number {
    return this.superBlock.version;
  }

  get readOnly(): boolean {
    return this.info.readOnly;
  }

  /** A move or copy is under way: nothing may change the files (volume-move.ts). */
  get frozen(): boolean {
    return this.info.moving !== undefined;
  }

  protected assertNotFrozen(what: string): void {
    const m = this.info.moving;
    if (!m) return;
    const how =
      m.role === 'source'
        ? `being ${m.mode === 'move' ? 'moved' : 'copied'} to ${m.peer}`
        : `arriving from ${m.peer}`;
    throw new ReadOnlyVolumeError(`volume ${this.id} is ${how}: ${what} refused until that ends`);
  }

  /** Sets or clears the move marker (persisted first, so a crash keeps it). */
  setMoving(marker: MoveMarker | undefined): void {
    const { moving: _old, ...rest } = this.info;
    this.info = marker ? { ...rest, moving: marker } : rest;
    writeVolumeInfo(this.path('vif'), this.info);
    this.config.onChange?.();
  }

  setReadOnly(readOnly: boolean): void {
    if (this.info.readOnly === readOnly) return;
    this.assertNotFrozen('marking it is');
    if (!readOnly && (this.info.remote || this.transferring)) {
      // A write would land in no copy the volume keeps (tiered) or change the bytes being copied.
      throw new ConflictError(
        `volume ${this.id} is ${this.info.remote ? `tiered to ${this.info.remote.backend}` : 'in a tier transfer'}: ` +
          'download it first (kelp tier download) to write to it',
      );
    }
    this.info = { ...this.info, readOnly };
    writeVolumeInfo(this.path('vif'), this.info);
    this.config.onChange?.();
  }

  /** A needle's own TTL wins over the volume's; both count from its last-modified time. */
  isExpired(needle: { lastModified?: number; ttl?: Ttl }): boolean {
    const at = this.expiresAt(needle);
    return at !== undefined && at <= this.config.now();
  }

  /** When the needle's TTL ends (ms since the epoch), or undefined if it never expires. */
  expiresAt(needle: { lastModified?: number; ttl?: Ttl }): number | undefined {
    const ttl = needle.ttl && !isEmptyTtl(needle.ttl) ? needle.ttl : this.superBlock.ttl;
    if (isEmptyTtl(ttl) || needle.lastModified === undefined) return undefined;
    return (needle.lastModified + ttlToSeconds(ttl)) * 1000;
  }

  /** Garbage ratio as vacuum sees it (docs/format.md §9): bytes of dead needles over bytes ever written. */
  garbageRatio(): number {
    return this.map.contentBytes === 0 ? 0 : this.map.deletedBytes / this.map.contentBytes;
  }

  status(): VolumeStatus {
    return {
      id: this.id,
      collection: this.config.collection,
      size: this.datSize,
      fileCount: this.map.liveCount,
      deleteCount: this.map.deletedCount,
      deletedByteCount: this.map.deletedBytes,
      // Frozen for a move: the master must not assign it (topology.writable).
      readOnly: this.info.readOnly || this.frozen,
      full: this.config.space?.full ?? false,
      replicaPlacement: this.superBlock.placement,
      ttl: this.superBlock.ttl,
      version: this.version,
      compactRevision: this.superBlock.compactionRevision,
      maxFileKey: this.map.maxKey.toString(),
      remote: this.info.remote?.backend,
      readsPerDay: this.heat.perDay(),
      modifiedAt: Math.floor(this.modifiedAt / 1000),
      ...(this.info.moving ? { moving: this.info.moving } : {}),
    };
  }
}
