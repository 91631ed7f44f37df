/**
 * The volumes of one volume server, over one or more disk locations (a
 * directory each, with a maximum volume count). Volumes are created on the
 * master's request and reopened at startup.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, NoSpaceError, VolumeNotFoundError } from '../../shared/errors.ts';
import type { Placement } from '../../shared/placement.ts';
import type { Ttl } from '../../shared/ttl.ts';
import { parseVolumeFileName, volumePath } from './files.ts';
import type { FsyncPolicy } from './syncer.ts';
import type { BackendRegistry } from './tier.ts';
import { clearSpoolDir } from './upload.ts';
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
}

export interface DiskStatus {
  dir: string;
  all: number;
  used: number;
  free: number;
  volumeCount: number;
  maxVolumes: number;
}

export class Store {
  readonly config: StoreConfig;
  private readonly volumes = new Map<number, { volume: Volume; location: DiskLocation }>();

  private readonly log: (line: string) => void;

  private constructor(config: StoreConfig, log: (line: string) => void) {
    this.config = config;
    this.log = log;
  }

  /** Opens every volume found in the locations (creating missing directories). */
  static open(config: StoreConfig, log: (line: string) => void = () => {}): Store {
    const store = new Store(config, log);
    for (const location of config.locations) {
      mkdirSync(location.dir, { recursive: true });
      clearSpoolDir(location.dir);
      for (const name of readdirSync(location.dir).sort()) {
        const parsed = parseVolumeFileName(name);
        if (!parsed) continue;
        if (parsed.ext === 'vif') {
          // Only a tiered volume is found by its .vif: a local one is found by its .dat.
          if (existsSync(volumePath(location.dir, parsed.collection, parsed.volumeId, 'dat'))) continue;
          if (!readVolumeInfo(join(location.dir, name)).remote) {
            log(`volume ${parsed.volumeId}: ${name} has neither a .dat nor a remote copy; ignored`);
            continue;
          }
        }
        if (store.volumes.has(parsed.volumeId)) {
          throw new ConflictError(`volume ${parsed.volumeId} found twice (second in ${location.dir})`);
        }
        const volumeConfig = store.volumeConfig(location, parsed.collection, parsed.volumeId);
        finishInterruptedCompaction(volumeConfig, log);
        const volume = Volume.open(volumeConfig);
        for (const repair of volume.repairs) log(`volume ${parsed.volumeId}: ${repair}`);
        store.volumes.set(parsed.volumeId, { volume, location });
      }
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
    };
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
    const location = this.config.locations
      .map((l) => ({ l, free: l.maxVolumes - this.countIn(l) }))
      .filter((x) => x.free > 0)
      .sort((a, b) => b.free - a.free)[0]?.l;
    if (!location) throw new NoSpaceError('no free volume slot on this server');
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
          this.log(
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

  maxVolumeCount(): number {
    return this.config.locations.reduce((a, l) => a + l.maxVolumes, 0);
  }

  diskStatuses(): DiskStatus[] {
    return this.config.locations.map((l) => {
      const fs = statfsSync(l.dir);
      const all = fs.blocks * fs.bsize;
      const free = fs.bavail * fs.bsize;
      return {
        dir: l.dir,
        all,
        used: all - fs.bfree * fs.bsize,
        free,
        volumeCount: this.countIn(l),
        maxVolumes: l.maxVolumes,
      };
    });
  }

  volumeStatuses(): VolumeStatus[] {
    return this.all().map((v) => v.status());
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((v) => v.close()));
  }
}
