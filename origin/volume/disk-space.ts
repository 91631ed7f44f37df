/**
 * A disk location's "full" state (issue 10, finding 9). A write that meets
 * ENOSPC or EDQUOT marks its location full: its volumes then refuse writes
 * with 507 at once (no further doomed appends), report `full` in heartbeats
 * so the master stops assigning to them, and report no free volume slot so
 * growth does not create volumes there. The state is in memory only, so it
 * never touches an operator's seal (`.vif` readOnly); a server that starts
 * with less free than the resume level below starts full, so a restart on a
 * full disk answers as the server before it did.
 *
 * Writes resume by themselves: while full, a timer re-reads the free space
 * (statfs) every DISK_FULL_RECHECK_MS and clears the state once enough is free
 * again, whether or not any write or heartbeat comes; the heartbeat then goes
 * at once. "Enough" is a margin (DISK_RESUME_FREE_BYTES, or
 * DISK_RESUME_FREE_FRACTION of a small disk), not one byte, so the state does
 * not flap with every freed block.
 */
import { statfsSync } from 'node:fs';
import { InsufficientStorageError } from '../../shared/errors.ts';
import { asStorageError } from '../fs/no-space.ts';
import type { Logger } from '../observability/log.ts';

/** Free bytes at which a full location takes writes again (at most this much is asked for). */
export const DISK_RESUME_FREE_BYTES = 64 * 1024 * 1024;
/** ...or this fraction of the filesystem, when that is less (a small disk; SeaweedFS's minFreeSpace is 1%). */
export const DISK_RESUME_FREE_FRACTION = 0.01;
/** Milliseconds between free-space checks of a full location. */
export const DISK_FULL_RECHECK_MS = 1000;

/** asStorageError, marking `space` full when it is one (a volume opened without a store has no space). */
export function storageErrorIn(space: DiskSpace | undefined, err: unknown, what: string): unknown {
  return space ? space.storageError(err, what) : asStorageError(err, what);
}

export interface DiskUsage {
  all: number;
  used: number;
  free: number;
}

/** Bytes of the filesystem holding `dir`: `free` is what an unprivileged writer may still use. */
export function diskUsage(dir: string): DiskUsage {
  const fs = statfsSync(dir);
  const all = fs.blocks * fs.bsize;
  return { all, used: all - fs.bfree * fs.bsize, free: fs.bavail * fs.bsize };
}

/** Free bytes at which a full filesystem of `all` bytes takes writes again. */
export function resumeFreeBytes(all: number): number {
  return Math.min(DISK_RESUME_FREE_BYTES, Math.ceil(all * DISK_RESUME_FREE_FRACTION));
}

export interface DiskSpaceOptions {
  /** Told when the state flips either way (the heartbeat then beats at once). */
  onChange?: () => void;
  log?: Logger;
}

export class DiskSpace {
  readonly dir: string;
  private readonly onChange: () => void;
  private readonly log: Logger | undefined;
  /** Runs while full: the free-space check that ends it. */
  private timer: NodeJS.Timeout | undefined;

  constructor(dir: string, opts: DiskSpaceOptions = {}) {
    this.dir = dir;
    this.onChange = opts.onChange ?? (() => {});
    this.log = opts.log;
    const usage = tryUsage(dir);
    if (usage && usage.free < resumeFreeBytes(usage.all)) this.enter(`${usage.free} bytes free`, usage);
  }

  /** Whether writes here are refused. */
  get full(): boolean {
    return this.timer !== undefined;
  }

  /** A write here met ENOSPC or EDQUOT. */
  markFull(): void {
    if (this.full) return;
    this.enter('a write found no room', tryUsage(this.dir));
    this.onChange();
  }

  /** Throws InsufficientStorageError while the location is full. */
  assertRoom(what: string): void {
    if (this.full) throw new InsufficientStorageError(`${what}: the disk at ${this.dir} is full`);
  }

  /**
   * `err` as an InsufficientStorageError when the disk ran out of room (and
   * the location is then marked full); any other error unchanged.
   */
  storageError(err: unknown, what: string): unknown {
    const mapped = asStorageError(err, what);
    if (mapped instanceof InsufficientStorageError) this.markFull();
    return mapped;
  }

  /** Stops the check (the server is closing). */
  close(): void {
    clearInterval(this.timer);
  }

  private enter(why: string, usage: DiskUsage | undefined): void {
    // unref: a full disk never keeps the process alive.
    this.timer = setInterval(() => this.recheck(), DISK_FULL_RECHECK_MS).unref();
    const until = usage ? ` until ${resumeFreeBytes(usage.all)} bytes are free` : '';
    this.log?.error({ dir: this.dir }, `${this.dir}: disk full (${why}): writes refused${until}`);
  }

  private recheck(): void {
    const usage = tryUsage(this.dir);
    // Cannot tell, or not enough yet: stay full, and look again later.
    if (!usage || usage.free < resumeFreeBytes(usage.all)) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.log?.info({ dir: this.dir }, `${this.dir}: ${usage.free} bytes free again: writes resume`);
    this.onChange();
  }
}

function tryUsage(dir: string): DiskUsage | undefined {
  try {
    return diskUsage(dir);
  } catch {
    return undefined;
  }
}
