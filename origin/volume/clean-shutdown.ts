/**
 * The clean-shutdown mark of a volume (`<stem>.clean`): written when the
 * server closes the volume after its last sync, taken (read and removed) when
 * it opens again. A volume whose `.dat` and `.idx` are still exactly as the
 * mark describes them (size, mtime, inode) was not written to since a clean
 * close, so its startup repair (recovery.ts) has nothing to find and is
 * skipped: a restart after SIGTERM needs no recovery scan.
 *
 * Every way of getting it wrong falls back to the scan, never to trusting a
 * torn tail: no mark (a crash, kill -9), a torn or unreadable one, files
 * changed since (another append, a vacuum's swap, a restored backup). The mark
 * is removed before the volume takes a write, so a crash later cannot meet a
 * stale one.
 */
import { fstatSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir } from '../fs/files.ts';

interface FileState {
  size: number;
  mtimeMs: number;
  ino: number;
}

interface CleanMark {
  dat: FileState;
  idx: FileState;
}

function stateOf(fd: number): FileState {
  const st = fstatSync(fd);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

function same(a: FileState | undefined, b: FileState): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/**
 * Records that both files are synced and closed as they are now (call after
 * the last sync). Best effort: a mark that cannot be written (a full disk)
 * only costs the next start its scan, so it never fails the close.
 */
export function writeCleanMark(path: string, datFd: number, idxFd: number): boolean {
  try {
    const mark: CleanMark = { dat: stateOf(datFd), idx: stateOf(idxFd) };
    // No fsync: a mark lost with the page cache only costs the scan it would have saved.
    writeFileSync(path, `${JSON.stringify(mark)}\n`);
    return true;
  } catch {
    rmSync(path, { force: true });
    return false;
  }
}

/** Directories whose marks were removed inside takingCleanMarks, not yet fsynced. */
let deferredDirs: Set<string> | undefined;

/**
 * Runs `open` (synchronous: a store opening its volumes at start-up) and makes
 * the removals of the marks it took durable with one fsync per directory at
 * the end, rather than one per volume: a hundred directory fsyncs cost
 * seconds of start-up on a busy disk (issue 15). `open` being synchronous,
 * nothing is written between a removal and its fsync.
 */
export function takingCleanMarks<T>(open: () => T): T {
  if (deferredDirs) return open();
  const dirs = new Set<string>();
  deferredDirs = dirs;
  try {
    return open();
  } finally {
    deferredDirs = undefined;
    for (const dir of dirs) fsyncDir(dir);
  }
}

/**
 * Whether the volume was closed cleanly and not touched since. The mark is
 * removed either way (and its removal made durable before any write: here, or
 * at the end of takingCleanMarks), so it is only ever trusted once.
 */
export function takeCleanMark(path: string, datFd: number, idxFd: number): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false; // no mark: a crash, or a volume never closed by a server
  }
  rmSync(path, { force: true });
  if (deferredDirs) deferredDirs.add(dirname(path));
  else fsyncDir(dirname(path));
  let mark: Partial<CleanMark> | undefined;
  try {
    mark = JSON.parse(text) as Partial<CleanMark>;
  } catch {
    return false; // torn: scan
  }
  return same(mark?.dat, stateOf(datFd)) && same(mark?.idx, stateOf(idxFd));
}
