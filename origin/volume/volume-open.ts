/**
 * A volume's files from disk: a new volume's (create), an existing one's
 * with a torn tail repaired (recovery.ts) unless it was closed cleanly
 * (clean-shutdown.ts), and the needle map loaded from the `.idx`. A tiered
 * volume opens with no request to its backend: the superblock comes from the
 * `.vif` and the index from the local `.idx`, so a slow or failing backend
 * cannot stop the server from starting.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, rmSync } from 'node:fs';
import { ConflictError } from '../../shared/errors.ts';
import { IDX_ENTRY_SIZE } from '../../shared/idx.ts';
import { CURRENT_VERSION } from '../../shared/needle.ts';
import type { Placement } from '../../shared/placement.ts';
import { decodeSuperBlock, encodeSuperBlock, superBlockSize } from '../../shared/superblock.ts';
import type { Ttl } from '../../shared/ttl.ts';
import { fsyncDir, preadExact, pwriteAll } from '../fs/files.ts';
import { takeCleanMark } from './clean-shutdown.ts';
import { storageErrorIn } from './disk-space.ts';
import { volumePath } from './files.ts';
import { LocalDat } from './local-dat.ts';
import { loadNeedleMapFromIdxFile, type NeedleMap } from './needle-map.ts';
import { recoverVolumeFiles } from './recovery.ts';
import { TieredDat } from './tiered-dat.ts';
import { readVolumeInfo } from './volume-info.ts';
import type { VolumeConfig, VolumeFiles } from './volume-state.ts';

/** Creates the files of a new, empty volume (fsync'd, directory included); open them with openVolumeFiles. */
export function createVolumeFiles(config: VolumeConfig, settings: { placement: Placement; ttl: Ttl }): void {
  const dat = volumePath(config.dir, config.collection, config.volumeId, 'dat');
  if (existsSync(dat)) throw new ConflictError(`volume ${config.volumeId} already exists`);
  const idx = volumePath(config.dir, config.collection, config.volumeId, 'idx');
  const datFd = openSync(dat, 'wx+');
  try {
    try {
      const sb = encodeSuperBlock({
        version: CURRENT_VERSION,
        placement: settings.placement,
        ttl: settings.ttl,
        compactionRevision: 0,
        extra: new Uint8Array(0),
      });
      pwriteAll(datFd, sb, 0);
    } finally {
      closeSync(datFd);
    }
    closeSync(openSync(idx, 'w'));
    fsyncDir(config.dir);
  } catch (err) {
    // A `.dat` without its whole superblock would stop the next start: a failed create leaves nothing.
    rmSync(dat, { force: true });
    rmSync(idx, { force: true });
    throw storageErrorIn(config.space, err, `volume ${config.volumeId}: create`);
  }
}

/** Opens an existing volume's files: the local `.dat` when it is there, else its tier copy. */
export function openVolumeFiles(config: VolumeConfig): VolumeFiles {
  const p = (ext: string) => volumePath(config.dir, config.collection, config.volumeId, ext);
  const info = readVolumeInfo(p('vif'));
  const remote = info.remote;
  if (remote && !existsSync(p('dat'))) {
    const idxFd = openSync(p('idx'), 'a+');
    try {
      const superBlock = decodeSuperBlock(Buffer.from(remote.superBlock, 'base64'));
      const repairs: string[] = [];
      let idxSize = fstatSync(idxFd).size;
      if (idxSize % IDX_ENTRY_SIZE !== 0) {
        const whole = idxSize - (idxSize % IDX_ENTRY_SIZE);
        repairs.push(`.idx ended in a torn entry: truncated ${idxSize} -> ${whole}`);
        ftruncateSync(idxFd, whole);
        idxSize = whole;
      }
      const map = loadIdx(idxFd, idxSize);
      const dat = new TieredDat(config.volumeId, remote, config.openRemote?.(remote));
      return {
        dat,
        idxFd,
        datSize: remote.size,
        idxSize,
        superBlock,
        map,
        info,
        repairs,
        openedClean: false,
      };
    } catch (err) {
      closeSync(idxFd);
      throw err;
    }
  }
  const datFd = openSync(p('dat'), 'r+');
  const idxFd = openSync(p('idx'), 'a+');
  try {
    const head = preadExact(datFd, 8, 0);
    const superBlock = decodeSuperBlock(preadExact(datFd, superBlockSize(head), 0));
    const clean = takeCleanMark(p('clean'), datFd, idxFd);
    const report = clean
      ? { datSize: fstatSync(datFd).size, idxSize: fstatSync(idxFd).size, repairs: [] }
      : recoverVolumeFiles(datFd, idxFd, superBlock.version, superBlock.size);
    return {
      dat: new LocalDat(datFd, p('dat')),
      idxFd,
      datSize: report.datSize,
      idxSize: report.idxSize,
      superBlock,
      map: loadIdx(idxFd, report.idxSize),
      info,
      repairs: report.repairs,
      openedClean: clean,
    };
  } catch (err) {
    closeSync(datFd);
    closeSync(idxFd);
    throw err;
  }
}

/** Loads the first `idxSize` bytes of `.idx` into a fresh map (needle-map.ts: one reused buffer, trimmed chunks). */
export function loadIdx(idxFd: number, idxSize: number): NeedleMap {
  return loadNeedleMapFromIdxFile(idxFd, idxSize);
}
