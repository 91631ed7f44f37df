/**
 * The master's durable state: the file-key high-water mark and the largest
 * volume id handed out. Behind an interface so that several masters can later
 * share it (etcd); the default keeps it in one JSON file in `--mdir`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError } from '../../shared/errors.ts';
import { fsyncDir } from '../volume/files.ts';

export interface MasterState {
  /** No file key at or below this was ever issued by a previous run... and none above it yet. */
  maxFileKey: bigint;
  maxVolumeId: number;
}

export interface MasterStateStore {
  load(): MasterState;
  /** Durably records the state before the caller relies on it (returns once it is on disk). */
  save(state: MasterState): void;
}

/** JSON in `<mdir>/master-state.json`, replaced atomically (write, fsync, rename, fsync dir). */
export class FileStateStore implements MasterStateStore {
  readonly path: string;
  private readonly dir: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.dir = dir;
    this.path = join(dir, 'master-state.json');
  }

  load(): MasterState {
    if (!existsSync(this.path)) return { maxFileKey: 0n, maxVolumeId: 0 };
    try {
      const raw = JSON.parse(readFileSync(this.path, 'utf8')) as { maxFileKey: string; maxVolumeId: number };
      return { maxFileKey: BigInt(raw.maxFileKey), maxVolumeId: raw.maxVolumeId };
    } catch (err) {
      throw new CorruptDataError(`${this.path} is not a valid master state file`, { cause: err });
    }
  }

  save(state: MasterState): void {
    const tmp = `${this.path}.tmp`;
    const body = JSON.stringify({ maxFileKey: state.maxFileKey.toString(), maxVolumeId: state.maxVolumeId });
    writeFileSync(tmp, `${body}\n`, { flush: true });
    renameSync(tmp, this.path);
    fsyncDir(this.dir);
  }
}

/** For tests and throwaway clusters: nothing survives a restart. */
export class MemoryStateStore implements MasterStateStore {
  private state: MasterState = { maxFileKey: 0n, maxVolumeId: 0 };
  load(): MasterState {
    return { ...this.state };
  }
  save(state: MasterState): void {
    this.state = { ...state };
  }
}
