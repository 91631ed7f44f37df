/**
 * Startup repair of a volume's `.dat` and `.idx` after a crash.
 *
 * A write appends the needle to `.dat`, then its 16-byte entry to `.idx`, and
 * is acknowledged only after both are fdatasync'd (syncer.ts). So after a
 * crash every acknowledged write is whole in both files, and at most the
 * unacknowledged tail is torn:
 * - `.idx` may end in a partial entry, or in entries whose needle never fully
 *   reached `.dat`: dropped from the end until the last entry's needle checks.
 * - `.dat` may hold whole needles the `.idx` never heard of (rebuilt: they are
 *   indexed), and then a torn record (truncated at the last whole needle).
 * A missing `.idx` is the same case with no entries: rebuilt from `.dat`.
 * Entries are appended in `.dat` order, so only the ends need checking.
 */
import { fstatSync, ftruncateSync } from 'node:fs';
import { ChecksumMismatchError, CorruptDataError, TruncatedDataError } from '../../shared/errors.ts';
import {
  encodeIdxEntry,
  IDX_ENTRY_SIZE,
  readIdxEntry,
  TOMBSTONE_FILE_SIZE,
  toStoredOffset,
} from '../../shared/idx.ts';
import { NEEDLE_HEADER_SIZE, needleRecordSize } from '../../shared/needle.ts';
import { decodeNeedle, parseNeedleHeader } from '../../shared/needle-decode.ts';
import { scanNeedles } from '../../shared/needle-scan.ts';
import { preadExact, preadUpTo, pwriteAll } from '../fs/files.ts';

/** Bytes read at a time while scanning `.dat` for needles the index lacks. */
const SCAN_WINDOW_BYTES = 8 * 1024 * 1024;

export interface RecoveryReport {
  datSize: number;
  idxSize: number;
  /** What was repaired, for the startup log; empty when the files were clean. */
  repairs: string[];
}

/** True when the idx entry's record is whole in `.dat` and checks (id, Size, CRC). */
function entryChecks(datFd: number, datSize: number, version: number, entry: Buffer): boolean {
  const { key, byteOffset: offset, size } = readIdxEntry(entry);
  if (offset === 0) return true; // a delete with no tombstone record (remote volumes)
  const bodySize = Math.max(size, 0);
  const recordSize = needleRecordSize(bodySize, version);
  if (offset + recordSize > datSize) return false;
  try {
    decodeNeedle(preadExact(datFd, recordSize, offset), version, { expectedId: key, expectedSize: bodySize });
    return true;
  } catch (err) {
    if (err instanceof CorruptDataError) return false;
    throw err;
  }
}

export function recoverVolumeFiles(
  datFd: number,
  idxFd: number,
  version: number,
  superBlockSize: number,
): RecoveryReport {
  const repairs: string[] = [];
  let datSize = fstatSync(datFd).size;
  let idxSize = fstatSync(idxFd).size;

  if (idxSize % IDX_ENTRY_SIZE !== 0) {
    const whole = idxSize - (idxSize % IDX_ENTRY_SIZE);
    repairs.push(`.idx ended in a torn entry: truncated ${idxSize} -> ${whole}`);
    idxSize = whole;
    ftruncateSync(idxFd, idxSize);
  }

  // Walk back over entries whose needle is not whole in .dat.
  let dataEnd = superBlockSize;
  let dropped = 0;
  while (idxSize > 0) {
    const entry = preadExact(idxFd, IDX_ENTRY_SIZE, idxSize - IDX_ENTRY_SIZE);
    if (entryChecks(datFd, datSize, version, entry)) {
      const { byteOffset: offset, size } = readIdxEntry(entry);
      if (offset > 0) dataEnd = offset + needleRecordSize(Math.max(size, 0), version);
      else dataEnd = Math.max(dataEnd, lastRecordEndBefore(idxFd, idxSize - IDX_ENTRY_SIZE, version));
      break;
    }
    idxSize -= IDX_ENTRY_SIZE;
    dropped++;
  }
  if (dropped > 0) {
    repairs.push(`.idx had ${dropped} trailing entries whose needles are not whole in .dat: dropped`);
    ftruncateSync(idxFd, idxSize);
  }

  // Index whole needles past the last entry; truncate at the first torn or bad record.
  let pos = dataEnd;
  let indexed = 0;
  while (pos < datSize) {
    const window = preadUpTo(datFd, Math.min(SCAN_WINDOW_BYTES, datSize - pos), pos);
    let next = pos;
    let stop = false;
    for (const item of scanNeedles(window, 0, version)) {
      if (item.kind === 'tail') {
        // A record cut by the window (not by the file) is read again in a window of its own.
        if (item.error instanceof TruncatedDataError && pos + window.length < datSize) {
          next = pos + item.offset;
          const header = parseNeedleHeader(preadExact(datFd, NEEDLE_HEADER_SIZE, next));
          const recordSize = needleRecordSize(header.size, version);
          if (next + recordSize > datSize || recordSize <= SCAN_WINDOW_BYTES) {
            stop = next + recordSize > datSize;
            break;
          }
          const rec = preadExact(datFd, recordSize, next);
          if (!indexRecord(rec, next)) stop = true;
          else next += recordSize;
          break;
        }
        next = pos + item.offset;
        stop = true;
        break;
      }
      if (item.checksumError) {
        next = pos + item.offset;
        stop = true;
        break;
      }
      appendEntry(item.needle.id, pos + item.offset, item.needle.size);
      next = pos + item.offset + item.recordSize;
    }
    if (next === pos && !stop) stop = true; // no progress: nothing more to index
    pos = next;
    if (stop) break;
  }
  if (indexed > 0) repairs.push(`.dat held ${indexed} needles the .idx lacked: indexed`);
  if (pos < datSize) {
    repairs.push(`.dat ended in ${datSize - pos} bytes that are not a whole needle: truncated`);
    datSize = pos;
    ftruncateSync(datFd, datSize);
  }
  return { datSize, idxSize, repairs };

  function appendEntry(id: bigint, byteOffset: number, size: number): void {
    const entry = encodeIdxEntry({
      key: id,
      offset: toStoredOffset(byteOffset),
      size: size === 0 ? TOMBSTONE_FILE_SIZE : size,
    });
    pwriteAll(idxFd, entry, idxSize);
    idxSize += IDX_ENTRY_SIZE;
    indexed++;
  }

  function indexRecord(rec: Buffer, at: number): boolean {
    try {
      const n = decodeNeedle(rec, version);
      appendEntry(n.id, at, n.size);
      return true;
    } catch (err) {
      if (err instanceof CorruptDataError || err instanceof ChecksumMismatchError) return false;
      throw err;
    }
  }
}

/** The end of the furthest record the entries before `end` point at (for a trailing offset-0 delete). */
function lastRecordEndBefore(idxFd: number, end: number, version: number): number {
  for (let at = end - IDX_ENTRY_SIZE; at >= 0; at -= IDX_ENTRY_SIZE) {
    const entry = preadExact(idxFd, IDX_ENTRY_SIZE, at);
    const { byteOffset: offset, size } = readIdxEntry(entry);
    if (offset === 0) continue;
    return offset + needleRecordSize(Math.max(size, 0), version);
  }
  return 0;
}
