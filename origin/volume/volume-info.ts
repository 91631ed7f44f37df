import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { VolumeMoving } from '../../shared/api.ts';
import { CorruptDataError } from '../../shared/errors.ts';
import { fsyncDir } from './files.ts';

/**
 * The `.vif` beside a volume's `.idx`: what must survive a restart but is not
 * in the superblock. SeaweedFS keeps the same file (protobuf VolumeInfo as
 * JSON); Kelp's is plain JSON with camelCase fields.
 */
export interface VolumeInfo {
  readOnly: boolean;
  /** Set once the `.dat` lives in a cloud tier (tier.ts); reads then go to the backend. */
  remote?: RemoteDat;
  /**
   * A move or replica copy of this volume is under way (volume-move.ts,
   * docs/decisions/0007-volume-move.md): no write, delete, vacuum or tier
   * transfer until it is finished or undone. Persisted, so a crash of anyone
   * leaves the volume frozen (readable) rather than diverging from its copy.
   */
  moving?: MoveMarker;
}

/** One side of a volume move or copy (the shape the heartbeat reports). */
export type MoveMarker = VolumeMoving;

/** Where a tiered volume's `.dat` is, and what it must be. */
export interface RemoteDat {
  /** `type.id`, e.g. `s3.default`. */
  backend: string;
  /**
   * The bucket the object was written to (S3, GCS), so a backend reconfigured
   * to another bucket is noticed instead of read from; absent for `local`.
   */
  bucket?: string;
  key: string;
  size: number;
  sha256: string;
  /** ISO time the store reported for the object. */
  mtime: string;
  /** The superblock, base64: opening the volume needs no request to the backend. */
  superBlock: string;
  /** The local `.dat` was kept (reads stay local while it exists). */
  keepLocalDat: boolean;
  /** The needle index beside the object (tier-sidecars.ts); absent for volumes tiered before it existed. */
  indexKey?: string;
  /** Pages of the index (shared/tier-index.ts): how much of it a reader fetches first. */
  indexPages?: number;
  /** The deletion set beside the object. */
  deletesKey?: string;
  /**
   * This replica uploaded the object and writes its deletion set; the other
   * replicas point at the same object and leave it to this one.
   */
  owner?: boolean;
}

const DEFAULT_INFO: VolumeInfo = { readOnly: false };

export function readVolumeInfo(path: string): VolumeInfo {
  if (!existsSync(path)) return { ...DEFAULT_INFO };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<VolumeInfo>;
    return { ...DEFAULT_INFO, ...parsed };
  } catch (err) {
    throw new CorruptDataError(`${path} is not valid JSON`, { cause: err });
  }
}

/** Write-then-rename, both fsync'd: a crash leaves the old file or the new one, never half of one. */
export function writeVolumeInfo(path: string, info: VolumeInfo): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`, { flush: true });
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}
