/**
 * The volumes of one volume server, over one or more disk locations (a
 * directory each, with a maximum volume count). Volumes are created on the
 * master's request and reopened at startup.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DiskStatus } from '../../shared/api.ts';
import {
  ConflictError,
  InsufficientStorageError,
  NoSpaceError,
  NotFoundError,
  VolumeNotFoundError,
} from '../../shared/errors.ts';
import type { Placement } from '../../shared/placement.ts';
import type { Ttl } from '../../shared/ttl.ts';
import { fsyncDir } from '../fs/files.ts';
import type { Logger } from '../observability/log.ts';
import { takingCleanMarks } from './clean-shutdown.ts';
import { DiskSpace, diskUsage } from './disk-space.ts';
import { parseVolumeFileName, volumePath } from './files.ts';
import { sweepDataDir } from './sweep.ts';
import type { FsyncPolicy, SyncObserver } from './syncer.ts';
import type { BackendRegistry } from './tier.ts';
import { finishInterruptedShare } from './tier-share.ts';
import { deleteTierObjects } from './tier-sidecars.ts';
import { finishInterruptedCompaction } from './vacuum.ts';
import { Volume, type VolumeStatus } from './volume.ts';
import { type RemoteDat, readVolumeInfo } from './volume-info.ts';

export interface DiskLocation {
  dir: string;
  /**
   * Most volumes this directory may hold; 0 = as many as its free disk fits
   * (autoSlots), as SeaweedFS's `-max=0`.
   */
  maxVolumes: number;
}

/**
 * Slots of a `maxVolumes: 0` location: the volumes it has, plus as many
 * volumes of the size limit as its free space holds once the writable
 * volumes there have grown to the limit (SeaweedFS's "unclaimed space").
 */
export function autoSlots(free: number, sizeLimit: number, volumes: Volume[]): number {
  const claimed = volumes
    .filter((v) => !v.readOnly && v.hasLocalDat)
    .reduce((sum, v) => sum + Math.max(0, sizeLimit - v.datSize), 0);
  const fits = Math.max(0, Math.floor((free - claimed) / Math.max(1, sizeLimit)));
  return Math.max(volumes.length, Math.min(MAX_AUTO_SLOTS, volumes.length + fits));
}

/** Most slots a `maxVolumes: 0` location claims (a small size limit on a large disk would claim thousands). */
export const MAX_AUTO_SLOTS = 512;

export interface StoreConfig {
  locations: DiskLocation[];
  fsync: FsyncPolicy;
  sizeLimitBytes: number;
  now: () => number;
  /** Told when the set of volumes or a volume's writability changes (heartbeat.ts beats at once). */
  onChange?: () => void;
  /** Where tiered volumes' `.dat` files live (tier.ts). */
  backends?: BackendRegistry;
  /** Told of every fsync batch of every volume (metrics). */
  onSync?: SyncObserver;
}

export class Store {
  readonly config: StoreConfig;
  private readonly volumes = new Map<number, { volume: Volume; location: DiskLocation }>();
  /** Each location's full state, shared by its volumes. */
  private readonly spaces = new Map<DiskLocation, DiskSpace>();

  private readonly log: Logger | undefined;

  private constructor(config: StoreConfig, log: Logger | undefined) {
    this.config = config;
    this.log = log;
  }

  /** Opens every volume found in the locations (creating missing directories). */
  static open(config: StoreConfig, log?: Logger): Store {
    const store = new Store(config, log);
    // One fsync per directory for the clean-shutdown marks taken, not one per volume.
    takingCleanMarks(() => store.#openVolumes(log));
    return store;
  }

  #openVolumes(log?: Logger): void {
    const { config } = this;
    for (const location of config.locations) {
      mkdirSync(location.dir, { recursive: true });
      this.spaceOf(location); // a disk that is full already says so now
      for (const name of readdirSync(location.dir).sort()) {
        const parsed = parseVolumeFileName(name);
        if (!parsed) continue;
        if (parsed.ext === 'vif') {
          // Opened already by its .dat, which an interrupted tier share removed (tier-share.ts).
          if (this.volumes.has(parsed.volumeId)) continue;
          // Only a tiered volume is found by its .vif: a local one is found by its .dat.
          if (existsSync(volumePath(location.dir, parsed.collection, parsed.volumeId, 'dat'))) continue;
          const info = readVolumeInfo(join(location.dir, name));
          if (info.moving) {
            // The arrival of a moved copy, cut short before its .dat was renamed in: never a volume.
            for (const ext of ['vif', 'idx']) {
              rmSync(volumePath(location.dir, parsed.collection, parsed.volumeId, ext), { force: true });
            }
            log?.warn(
              { volume: parsed.volumeId },
              `volume ${parsed.volumeId}: removed the .vif and .idx of a copy whose arrival was cut short`,
            );
            continue;
          }
          if (!info.remote) {
            log?.warn(
              { volume: parsed.volumeId },
              `volume ${parsed.volumeId}: ${name} has neither a .dat nor a remote copy; ignored`,
            );
            continue;
          }
        }
        if (this.volumes.has(parsed.volumeId)) {
          throw new ConflictError(`volume ${parsed.volumeId} found twice (second in ${location.dir})`);
        }
        const volumeConfig = this.volumeConfig(location, parsed.collection, parsed.volumeId);
        finishInterruptedCompaction(volumeConfig, log);
        finishInterruptedShare(
          volumeConfig,
          readVolumeInfo(volumePath(location.dir, parsed.collection, parsed.volumeId, 'vif')).remote !==
            undefined,
          log,
        );
        const volume = Volume.open(volumeConfig);
        for (const repair of volume.repairs)
          log?.warn({ volume: parsed.volumeId }, `volume ${parsed.volumeId}: ${repair}`);
        log?.debug(
          { volume: parsed.volumeId, clean: volume.openedClean },
          volume.openedClean
            ? `volume ${parsed.volumeId}: closed cleanly last time: no recovery scan`
            : `volume ${parsed.volumeId}: checked for a torn tail`,
        );
        this.volumes.set(parsed.volumeId, { volume, location });
      }
      sweepDataDir(
        location.dir,
        (collection, id) => {
          const entry = this.volumes.get(id);
          return entry?.location === location && entry.volume.config.collection === collection;
        },
        log,
      );
    }
  }

  private volumeConfig(location: DiskLocation, collection: string, volumeId: number) {
    return {
      dir: location.dir,
      collection,
      volumeId,
      fsync: this.config.fsync,
      sizeLimitBytes: this.config.sizeLimitBytes,
      now: this.config.now,
      onChange: () => this.config.onChange?.(),
      openRemote: (remote: RemoteDat) => this.config.backends?.openRemote(remote),
      space: this.spaceOf(location),
      onSync: this.config.onSync,
    };
  }

  private spaceOf(location: DiskLocation): DiskSpace {
    let space = this.spaces.get(location);
    if (!space) {
      space = new DiskSpace(location.dir, { onChange: () => this.config.onChange?.(), log: this.log });
      this.spaces.set(location, space);
    }
    return space;
  }

  /** The volume, or VolumeNotFoundError (a 404, whose code tells an edge its lookup is out of date). */
  get(volumeId: number): Volume {
    const entry = this.volumes.get(volumeId);
    if (!entry) throw new VolumeNotFoundError(`volume ${volumeId} is not on this server`);
    return entry.volume;
  }

  has(volumeId: number): boolean {
    return this.volumes.has(volumeId);
  }

  all(): Volume[] {
    return [...this.volumes.values()].map((e) => e.volume).sort((a, b) => a.id - b.id);
  }

  /** Creates a volume in the location with the most free slots; idempotent for the same settings. */
  createVolume(volumeId: number, collection: string, placement: Placement, ttl: Ttl): Volume {
    const existing = this.volumes.get(volumeId);
    if (existing) {
      if (existing.volume.config.collection !== collection) {
        throw new ConflictError(
          `volume ${volumeId} exists in collection "${existing.volume.config.collection}"`,
        );
      }
      return existing.volume;
    }
    const location = this.locationForNewVolume();
    const volume = Volume.create(this.volumeConfig(location, collection, volumeId), { placement, ttl });
    this.volumes.set(volumeId, { volume, location });
    this.config.onChange?.();
    return volume;
  }

  /** The location with the most free slots on a disk that is not full. */
  locationForNewVolume(): DiskLocation {
    const withSlots = this.config.locations
      .map((l) => ({ l, free: this.slotsOf(l) - this.countIn(l) }))
      .filter((x) => x.free > 0);
    const location = withSlots.filter((x) => !this.spaceOf(x.l).full).sort((a, b) => b.free - a.free)[0]?.l;
    if (!location) {
      if (withSlots.length > 0) throw new InsufficientStorageError('every disk of this server is full');
      throw new NoSpaceError('no free volume slot on this server');
    }
    return location;
  }

  /** Opens a volume whose files were just put in place in `location` (a moved copy, volume-move.ts). */
  adopt(location: DiskLocation, collection: string, volumeId: number): Volume {
    if (this.volumes.has(volumeId)) throw new ConflictError(`volume ${volumeId} is already on this server`);
    const volume = Volume.open(this.volumeConfig(location, collection, volumeId));
    for (const repair of volume.repairs)
      this.log?.warn({ volume: volumeId }, `volume ${volumeId}: ${repair}`);
    this.volumes.set(volumeId, { volume, location });
    this.config.onChange?.();
    return volume;
  }

  /** The disk location holding the volume. */
  locationOf(volumeId: number): DiskLocation {
    const entry = this.volumes.get(volumeId);
    if (!entry) throw new NotFoundError(`volume ${volumeId} is not on this server`);
    return entry.location;
  }

  /**
   * Closes and removes one volume's files (a moved volume's source, an extra
   * replica). The `.dat` goes first: without it the rest is never opened again.
   */
  async deleteVolume(volumeId: number): Promise<void> {
    const entry = this.volumes.get(volumeId);
    if (!entry) throw new NotFoundError(`volume ${volumeId} is not on this server`);
    const { volume } = entry;
    if (volume.info.remote) {
      throw new ConflictError(`volume ${volumeId} is tiered: download it before deleting a replica`);
    }
    this.volumes.delete(volumeId);
    await volume.close();
    rmSync(volume.path('dat'), { force: true });
    fsyncDir(entry.location.dir);
    for (const ext of ['idx', 'vif']) rmSync(volume.path(ext), { force: true });
    fsyncDir(entry.location.dir);
    this.config.onChange?.();
  }

  /** The master's size limit, when it sends one, applies to every volume here. */
  setSizeLimit(bytes: number): void {
    this.config.sizeLimitBytes = bytes;
    for (const { volume } of this.volumes.values()) volume.config.sizeLimitBytes = bytes;
  }

  /**
   * Closes and removes every volume of the collection (the master's
   * `/col/delete`), the remote copy of a tiered one included (best effort: a
   * backend that is down or gone leaves the object behind, and says so in the log).
   */
  async deleteCollection(collection: string): Promise<number[]> {
    const removed: number[] = [];
    for (const [id, { volume }] of this.volumes) {
      if (volume.config.collection !== collection) continue;
      const remote = volume.info.remote;
      await volume.close();
      for (const ext of ['dat', 'idx', 'vif']) rmSync(volume.path(ext), { force: true });
      this.volumes.delete(id);
      removed.push(id);
      if (remote) {
        try {
          const backend = this.config.backends?.get(remote.backend);
          if (backend) await deleteTierObjects(backend, remote);
        } catch (err) {
          this.log?.error(
            { volume: id, err },
            `volume ${id}: could not delete its remote copy ${remote.backend}/${remote.key}: ${(err as Error).message}`,
          );
        }
      }
    }
    if (removed.length) this.config.onChange?.();
    return removed;
  }

  /** The location's volume slots: its maxVolumes, or with 0 what its free disk fits now. */
  slotsOf(location: DiskLocation): number {
    if (location.maxVolumes > 0) return location.maxVolumes;
    const here = [...this.volumes.values()].filter((e) => e.location === location).map((e) => e.volume);
    return autoSlots(diskUsage(location.dir).free, this.config.sizeLimitBytes, here);
  }

  private countIn(location: DiskLocation): number {
    let n = 0;
    for (const e of this.volumes.values()) if (e.location === location) n++;
    return n;
  }

  /** Volume slots, as the master sees them: a full disk has none free (as in SeaweedFS), so growth goes elsewhere. */
  maxVolumeCount(): number {
    return this.config.locations.reduce((a, l) => {
      const slots = this.slotsOf(l);
      return a + (this.spaceOf(l).full ? Math.min(slots, this.countIn(l)) : slots);
    }, 0);
  }

  diskStatuses(): DiskStatus[] {
    return this.config.locations.map((l) => ({
      dir: l.dir,
      ...diskUsage(l.dir),
      full: this.spaceOf(l).full,
      volumeCount: this.countIn(l),
      maxVolumes: this.slotsOf(l),
    }));
  }

  volumeStatuses(): VolumeStatus[] {
    return this.all().map((v) => v.status());
  }

  /** Syncs and closes every volume, marking each cleanly closed (clean-shutdown.ts). */
  async close(): Promise<void> {
    for (const space of this.spaces.values()) space.close();
    await Promise.all(this.all().map((v) => v.close({ markClean: true })));
  }
}
