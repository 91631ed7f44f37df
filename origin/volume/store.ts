/**
 * The volumes of one volume server, over one or more disk locations (a
 * directory each, with a maximum volume count). Volumes are created on the
 * master's request and reopened at startup.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, InsufficientStorageError, NoSpaceError, NotFoundError } from '../../shared/errors.ts';
import type { Placement } from '../../shared/placement.ts';
import type { Ttl } from '../../shared/ttl.ts';
import type { Logger } from '../observability/log.ts';
import { DiskSpace, diskUsage } from './disk-space.ts';
import { parseVolumeFileName, volumePath } from './files.ts';
import { sweepDataDir } from './sweep.ts';
import type { FsyncPolicy, SyncObserver } from './syncer.ts';
import type { BackendRegistry } from './tier.ts';
import { finishInterruptedCompaction } from './vacuum.ts';
import { Volume, type VolumeStatus } from './volume.ts';
import { type RemoteDat, readVolumeInfo } from './volume-info.ts';

export interface DiskLocation {
  dir: string;
  /** Most volumes this directory may hold. */
  maxVolumes: number;
}

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

export interface DiskStatus {
  dir: string;
  all: number;
  used: number;
  free: number;
  /** A write here met a full disk; writes are refused until space is freed (disk-space.ts). */
  full: boolean;
  volumeCount: number;
  maxVolumes: number;
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
    for (const location of config.locations) {
      mkdirSync(location.dir, { recursive: true });
      store.spaceOf(location); // a disk that is full already says so now
      for (const name of readdirSync(location.dir).sort()) {
        const parsed = parseVolumeFileName(name);
        if (!parsed) continue;
        if (parsed.ext === 'vif') {
          // Only a tiered volume is found by its .vif: a local one is found by its .dat.
          if (existsSync(volumePath(location.dir, parsed.collection, parsed.volumeId, 'dat'))) continue;
          if (!readVolumeInfo(join(location.dir, name)).remote) {
            log?.warn(
              { volume: parsed.volumeId },
              `volume ${parsed.volumeId}: ${name} has neither a .dat nor a remote copy; ignored`,
            );
            continue;
          }
        }
        if (store.volumes.has(parsed.volumeId)) {
          throw new ConflictError(`volume ${parsed.volumeId} found twice (second in ${location.dir})`);
        }
        const volumeConfig = store.volumeConfig(location, parsed.collection, parsed.volumeId);
        finishInterruptedCompaction(volumeConfig, log);
        const volume = Volume.open(volumeConfig);
        for (const repair of volume.repairs)
          log?.warn({ volume: parsed.volumeId }, `volume ${parsed.volumeId}: ${repair}`);
        log?.debug(
          { volume: parsed.volumeId, clean: volume.openedClean },
          volume.openedClean
            ? `volume ${parsed.volumeId}: closed cleanly last time: no recovery scan`
            : `volume ${parsed.volumeId}: checked for a torn tail`,
        );
        store.volumes.set(parsed.volumeId, { volume, location });
      }
      sweepDataDir(
        location.dir,
        (collection, id) => {
          const entry = store.volumes.get(id);
          return entry?.location === location && entry.volume.config.collection === collection;
        },
        log,
      );
    }
    return store;
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

  /** The volume, or NotFoundError (a read of an unknown volume is a 404 like any other). */
  get(volumeId: number): Volume {
    const entry = this.volumes.get(volumeId);
    if (!entry) throw new NotFoundError(`volume ${volumeId} is not on this server`);
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
    const withSlots = this.config.locations
      .map((l) => ({ l, free: l.maxVolumes - this.countIn(l) }))
      .filter((x) => x.free > 0);
    const location = withSlots.filter((x) => !this.spaceOf(x.l).full).sort((a, b) => b.free - a.free)[0]?.l;
    if (!location) {
      if (withSlots.length > 0) throw new InsufficientStorageError('every disk of this server is full');
      throw new NoSpaceError('no free volume slot on this server');
    }
    const volume = Volume.create(this.volumeConfig(location, collection, volumeId), { placement, ttl });
    this.volumes.set(volumeId, { volume, location });
    this.config.onChange?.();
    return volume;
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
          await this.config.backends?.get(remote.backend).delete(remote.key);
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

  private countIn(location: DiskLocation): number {
    let n = 0;
    for (const e of this.volumes.values()) if (e.location === location) n++;
    return n;
  }

  /** Volume slots, as the master sees them: a full disk has none free (as in SeaweedFS), so growth goes elsewhere. */
  maxVolumeCount(): number {
    return this.config.locations.reduce(
      (a, l) => a + (this.spaceOf(l).full ? Math.min(l.maxVolumes, this.countIn(l)) : l.maxVolumes),
      0,
    );
  }

  diskStatuses(): DiskStatus[] {
    return this.config.locations.map((l) => ({
      dir: l.dir,
      ...diskUsage(l.dir),
      full: this.spaceOf(l).full,
      volumeCount: this.countIn(l),
      maxVolumes: l.maxVolumes,
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
