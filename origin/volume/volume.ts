/**
 * One Haystack volume (SeaweedFS's `Volume`): an index over a data file. The
 * data file (data-file.ts) is the `.dat` on this disk or its copy in a tier;
 * the `.idx` is an append-only log of 16-byte entries, replayed into the
 * needle map in RAM at open. A read is one map lookup and one read of the
 * data file; a write is two appends and a (shared) sync.
 *
 * The class is layered, one concept per file: what a volume is and says
 * (volume-state.ts), reads (volume-read.ts), writes (volume-write.ts),
 * deletes and undo (volume-delete.ts); here, opening (volume-open.ts), the
 * one operation that swaps its files (replaceDat), and closing.
 */
import { closeSync, fstatSync, futimesSync, openSync, renameSync } from 'node:fs';
import { ConflictError } from '../../shared/errors.ts';
import { toByteOffset } from '../../shared/idx.ts';
import { needleRecordSize } from '../../shared/needle.ts';
import type { Placement } from '../../shared/placement.ts';
import type { DecodedSuperBlock } from '../../shared/superblock.ts';
import type { Ttl } from '../../shared/ttl.ts';
import { fsyncDir, preadExact } from '../fs/files.ts';
import { writeCleanMark } from './clean-shutdown.ts';
import type { DataFile } from './data-file.ts';
import { LocalDat } from './local-dat.ts';
import type { NeedleMap } from './needle-map.ts';
import { VolumeDeletes } from './volume-delete.ts';
import { type VolumeInfo, writeVolumeInfo } from './volume-info.ts';
import { createVolumeFiles, loadIdx, openVolumeFiles } from './volume-open.ts';
import type { VolumeConfig } from './volume-state.ts';

export type { DeleteResult } from './volume-delete.ts';
export { loadIdx } from './volume-open.ts';
export type { ReadResult } from './volume-read.ts';
export {
  DEFAULT_VOLUME_SIZE_LIMIT,
  LARGE_NEEDLE_BYTES,
  type VolumeConfig,
  type VolumeStatus,
} from './volume-state.ts';
export type { EntryChange, NeedleWrite, StreamedNeedleWrite, WriteResult } from './volume-write.ts';

/** What replaceDat changes; each part optional. */
export interface DatReplacement {
  /** The `.vif` to write before anything else: the commit point of a tier upload, download or share. */
  info?: VolumeInfo;
  /** The new data file; absent, the data file stays (an upload that keeps the local `.dat`). */
  dat?: DataFile;
  /** The old data file is a local `.dat` nobody wants any more: renamed away now, removed once closed. */
  retireOld?: boolean;
  /** A compacted index already in place on disk, opened (vacuum.ts). */
  index?: { idxFd: number; idxSize: number; map: NeedleMap };
  /** An index file to rename over `.idx` once the `.vif` is written (a tier share, tier-share.ts). */
  indexFrom?: string;
  superBlock?: DecodedSuperBlock;
  datSize?: number;
}

export class Volume extends VolumeDeletes {
  private constructor(config: VolumeConfig) {
    const files = openVolumeFiles(config);
    super(config, files, fstatSync(files.idxFd).mtimeMs);
  }

  /** Creates the files of a new, empty volume (fsync'd, directory included) and opens it. */
  static create(config: VolumeConfig, settings: { placement: Placement; ttl: Ttl }): Volume {
    createVolumeFiles(config, settings);
    return new Volume(config);
  }

  /** Opens an existing volume, repairing a torn tail (recovery.ts) and loading the needle map. */
  static open(config: VolumeConfig): Volume {
    return new Volume(config);
  }

  /**
   * Swaps the volume's files: a tier upload (the tier copy replaces the
   * `.dat`), a download (the reverse), vacuum (a compacted `.dat` and index)
   * and a tier share (the tier copy and the peer's index). Crash safety is
   * the caller's commit point, before or in this call: vacuum's renames (its
   * `.cpc` marker) happen before; a tier change's `.vif` is written here
   * first, and a share's index moved into place only after it
   * (tier-share.ts finishes that at the next start if a crash cuts between).
   *
   * Synchronous, so nothing (a write, a delete, a vacuum's commit) can run
   * between the caller's last check and the swap. Reads in flight on the old
   * data file start over on the new one (volume-read.ts), or hold it
   * (large-read.ts); the old files are closed once in-flight syncs are done
   * with them (syncs run one at a time, so once the next one ends, none is).
   */
  replaceDat(next: DatReplacement): void {
    if (this.closed) throw new ConflictError(`volume ${this.id} closed before its files could be swapped`);
    if (next.info) {
      writeVolumeInfo(this.path('vif'), next.info);
      this.info = next.info;
    }
    const oldDat = next.dat ? this.dat : undefined;
    if (next.dat) {
      if (next.retireOld && oldDat instanceof LocalDat) oldDat.retire();
      this.dat = next.dat;
    }
    let index = next.index;
    if (next.indexFrom) {
      renameSync(next.indexFrom, this.path('idx'));
      fsyncDir(this.config.dir);
      const idxFd = openSync(this.path('idx'), 'a+');
      const idxSize = fstatSync(idxFd).size;
      index = { idxFd, idxSize, map: loadIdx(idxFd, idxSize) };
    }
    const oldIdx = index ? this.idxFd : undefined;
    if (index) {
      this.idxFd = index.idxFd;
      this.idxSize = index.idxSize;
      this.needles = index.map;
    }
    if (next.superBlock) this.superBlock = next.superBlock;
    if (next.datSize !== undefined) this.datSize = next.datSize;
    const closeOld = () => {
      oldDat?.close().catch(() => {});
      if (oldIdx !== undefined) closeSync(oldIdx);
    };
    this.syncer.flush().then(closeOld, closeOld);
    this.config.onChange?.();
  }

  /** The bytes of the record at `offset` (8-byte units), unchecked: vacuum copies them verbatim. */
  recordBytes(offset: number, size: number): Uint8Array {
    return this.disk.readSync(toByteOffset(offset), needleRecordSize(size, this.version));
  }

  /** The `.idx` entries appended since byte `from` (vacuum replays them onto the compacted copy). */
  idxSince(from: number): Uint8Array {
    return preadExact(this.idxFd, this.idxSize - from, from);
  }

  /**
   * Waits for pending syncs, then closes both files. With `markClean` (the
   * server shutting down) a local volume is marked cleanly closed, so the next
   * open skips the repair scan (clean-shutdown.ts).
   */
  async close(opts: { markClean?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncer.flush();
    // The next open takes modifiedAt from the `.idx`'s mtime, which the kernel's coarse clock set up to a
    // tick before this.modifiedAt was read: across a second's edge, the second before. Kept exact here;
    // best effort (a read-only mount refuses it, and the close must still happen).
    try {
      futimesSync(this.idxFd, fstatSync(this.idxFd).atime, new Date(this.modifiedAt));
    } catch {
      // The mtime the kernel set stays: off by a tick at most.
    }
    if (opts.markClean && this.dat instanceof LocalDat)
      writeCleanMark(this.path('clean'), this.dat.fd, this.idxFd);
    closeSync(this.idxFd);
    await this.dat.close();
  }
}
