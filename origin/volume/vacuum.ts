/**
 * Vacuum (docs/format.md §9): copy a volume's live needles into fresh files and swap
 * them in, reclaiming deleted, overwritten and expired space.
 *
 * 1. Compact (asynchronous, in slices, writes go on): note the `.idx` length,
 *    copy every needle live at that moment into `.cpd`/`.cpx` (revision + 1).
 * 2. Commit (synchronous, so no write can interleave on this thread): replay
 *    the `.idx` entries appended since step 1 (new needles, overwrites,
 *    tombstones), fsync, write the `.cpc` marker, rename `.cpd` -> `.dat` and
 *    `.cpx` -> `.idx`, remove the marker.
 * A crash before the marker leaves the old files intact (the partial `.cpd`/
 * `.cpx` are removed at startup); a crash after it is rolled forward.
 */
import { closeSync, existsSync, fdatasyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { VacuumReport } from '../../shared/api.ts';
import { ConflictError, CorruptDataError } from '../../shared/errors.ts';
import { decodeIdxEntry, encodeIdxEntry, IDX_ENTRY_SIZE, toStoredOffset } from '../../shared/idx.ts';
import { needleRecordSize } from '../../shared/needle.ts';
import { encodeSuperBlock } from '../../shared/superblock.ts';
import { fsyncDir, pwriteAll } from '../fs/files.ts';
import { asStorageError } from '../fs/no-space.ts';
import type { Logger } from '../observability/log.ts';
import { volumePath } from './files.ts';
import { LocalDat } from './local-dat.ts';
import { CompactNeedleMap } from './needle-map.ts';
import type { Volume, VolumeConfig } from './volume.ts';

export type { VacuumReport };

/** Garbage ratio above which vacuum compacts (SeaweedFS's default). */
export const DEFAULT_GARBAGE_THRESHOLD = 0.3;
/** Bytes copied between yields to the event loop, so reads and writes keep flowing during compaction. */
const SLICE_BYTES = 4 * 1024 * 1024;

/** Finishes or discards a compaction a crash interrupted; run before opening the volume. */
export function finishInterruptedCompaction(config: VolumeConfig, log?: Logger): void {
  const p = (ext: string) => volumePath(config.dir, config.collection, config.volumeId, ext);
  if (existsSync(p('cpc'))) {
    if (existsSync(p('cpd'))) renameSync(p('cpd'), p('dat'));
    if (existsSync(p('cpx'))) renameSync(p('cpx'), p('idx'));
    fsyncDir(config.dir);
    rmSync(p('cpc'));
    fsyncDir(config.dir);
    log?.warn(
      { volume: config.volumeId },
      `volume ${config.volumeId}: finished a compaction interrupted after its commit point`,
    );
    return;
  }
  for (const ext of ['cpd', 'cpx']) {
    if (existsSync(p(ext))) {
      rmSync(p(ext));
      log?.warn(
        { volume: config.volumeId },
        `volume ${config.volumeId}: removed .${ext} of a compaction interrupted before its commit point`,
      );
    }
  }
}

interface Target {
  datFd: number;
  idxFd: number;
  datSize: number;
  idxSize: number;
  map: CompactNeedleMap;
}

/** Copies one record verbatim from the old `.dat` to the target, indexing it under `idxSize` (Size or -1). */
function copyRecord(
  volume: Volume,
  t: Target,
  key: bigint,
  offset: number,
  size: number,
  idxSize: number,
): void {
  const bytes = volume.recordBytes(offset, size);
  pwriteAll(t.datFd, bytes, t.datSize);
  const stored = toStoredOffset(t.datSize);
  pwriteAll(t.idxFd, encodeIdxEntry({ key, offset: stored, size: idxSize }), t.idxSize);
  if (idxSize >= 0) t.map.set(key, stored, idxSize);
  else t.map.delete(key, stored);
  t.datSize += bytes.length;
  t.idxSize += IDX_ENTRY_SIZE;
}

export async function vacuumVolume(
  volume: Volume,
  opts: { threshold?: number; force?: boolean } = {},
): Promise<VacuumReport> {
  if (volume.info.remote) {
    throw new ConflictError(
      `volume ${volume.id} is tiered: download it first (kelp tier download) to compact it`,
    );
  }
  if (volume.frozen) {
    throw new ConflictError(`volume ${volume.id} is being moved or copied: vacuum it once that ends`);
  }
  const garbageRatio = volume.garbageRatio();
  const sizeBefore = volume.datSize;
  const report = { volumeId: volume.id, garbageRatio, sizeBefore, sizeAfter: sizeBefore, corruptSkipped: 0 };
  if (!opts.force && garbageRatio < (opts.threshold ?? DEFAULT_GARBAGE_THRESHOLD)) {
    return { ...report, compacted: false };
  }
  const p = (ext: string) => volume.path(ext);
  if (existsSync(p('cpd'))) throw new ConflictError(`volume ${volume.id} is already being compacted`);

  const revision = volume.superBlock.compactionRevision;
  const superBlock = { ...volume.superBlock, compactionRevision: (revision + 1) & 0xffff };
  const sb = encodeSuperBlock(superBlock);
  const t: Target = {
    datFd: openSync(p('cpd'), 'wx+'),
    idxFd: openSync(p('cpx'), 'wx+'),
    datSize: sb.length,
    idxSize: 0,
    map: new CompactNeedleMap(),
  };
  try {
    pwriteAll(t.datFd, sb, 0);
    // 1. Snapshot what is live now, then copy it in file order, yielding as we go.
    const idxMark = volume.idxSize;
    const live: Array<[bigint, number, number]> = [];
    volume.map.forEach((key, offset, size) => {
      if (size >= 0) live.push([key, offset, size]); // size 0: a live empty needle
    });
    live.sort((a, b) => a[1] - b[1]);
    let sinceYield = 0;
    for (const [key, offset, size] of live) {
      if (volume.map.get(key)?.offset !== offset) continue; // overwritten or deleted meanwhile: the replay has it
      const recordSize = needleRecordSize(size, volume.version);
      try {
        if (volume.isExpired(volume.recordAt(key, offset, size))) continue;
      } catch (err) {
        if (!(err instanceof CorruptDataError)) throw err;
        report.corruptSkipped++;
        continue;
      }
      copyRecord(volume, t, key, offset, size, size);
      sinceYield += recordSize;
      if (sinceYield >= SLICE_BYTES) {
        sinceYield = 0;
        await yieldToEventLoop();
        if (volume.closed) throw new ConflictError(`volume ${volume.id} closed during compaction`);
      }
    }
    await volume.syncer.flush();
    // 2. Commit: from here to the swap nothing awaits, so no append can slip in between.
    if (volume.superBlock.compactionRevision !== revision) {
      throw new ConflictError(`volume ${volume.id} was compacted by someone else meanwhile`);
    }
    const appended = volume.idxSince(idxMark);
    for (let at = 0; at < appended.length; at += IDX_ENTRY_SIZE) {
      const { key, offset, size } = decodeIdxEntry(appended, at);
      if (offset === 0) continue;
      copyRecord(volume, t, key, offset, Math.max(size, 0), size < 0 ? -1 : size);
    }
    fdatasyncSync(t.datFd);
    fdatasyncSync(t.idxFd);
    // The marker makes the two renames one step: once it exists, startup rolls forward.
    writeFileSync(p('cpc'), `${revision + 1}\n`, { flush: true });
    fsyncDir(volume.config.dir);
    renameSync(p('cpd'), p('dat'));
    renameSync(p('cpx'), p('idx'));
    fsyncDir(volume.config.dir);
    rmSync(p('cpc'));
    volume.replaceDat({
      dat: new LocalDat(t.datFd, p('dat')),
      index: { idxFd: t.idxFd, idxSize: t.idxSize, map: t.map },
      datSize: t.datSize,
      superBlock: { ...superBlock, size: sb.length },
    });
    return { ...report, compacted: true, sizeAfter: t.datSize };
  } catch (err) {
    closeSync(t.datFd);
    closeSync(t.idxFd);
    if (!existsSync(p('cpc'))) {
      rmSync(p('cpd'), { force: true });
      rmSync(p('cpx'), { force: true });
    }
    // No room for the copy is a 507; the volume itself is untouched, so its disk is not marked full.
    throw asStorageError(err, `volume ${volume.id}: compaction`);
  }
}
