/**
 * The master's durable state: the file-key high-water mark, the largest
 * volume id handed out and the ids of the volumes it deleted
 * (deleted-volumes.ts). Behind an interface so that several masters can share
 * it: etcd-state-store.ts keeps it in etcd, fenced by the leader's term
 * (docs/decisions/0008-several-masters.md); the default keeps it in one JSON
 * file in `--mdir`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptDataError } from '../../shared/errors.ts';
import { fsyncDir } from '../fs/files.ts';
import { parseVolumeRanges, type VolumeRanges } from './volume-ranges.ts';

export interface MasterState {
  /** No file key at or below this was ever issued by a previous run... and none above it yet. */
  maxFileKey: bigint;
  maxVolumeId: number;
  /**
   * Volumes deleted at the master's order (a collection delete), as ranges of
   * ids (volume-ranges.ts): ids are never reused, so this stays true. A state
   * saved before it existed has none.
   */
  deletedVolumes: VolumeRanges;
}

export interface MasterStateStore {
  /** The state as last saved (a read: any master may call it). */
  load(): Promise<MasterState>;
  /**
   * Reads the state, applies `change` and saves the result durably, as one
   * atomic step; resolves with what was saved, once it is saved. A shared
   * store runs `change` again on a conflict (so it must be pure) and rejects
   * with NotLeaderError when this master no longer leads: only the leader
   * moves the counters.
   */
  update(change: (current: MasterState) => MasterState): Promise<MasterState>;
  /**
   * The edge heat snapshot last saved (edge-heat-store.ts), undefined when
   * none was. Heat is advice for tier policies: it is kept beside the state,
   * not in it, and written far less often than it changes.
   */
  loadEdgeHeat(): Promise<string | undefined>;
  /** Replaces the snapshot; a shared store rejects with NotLeaderError when this master no longer leads. */
  saveEdgeHeat(snapshot: string): Promise<void>;
  close?(): Promise<void>;
}

/** The state, or undefined when the store does not answer within `ms` (a status page must not hang on etcd). */
export async function loadWithin(store: MasterStateStore, ms: number): Promise<MasterState | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([store.load().catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The state of a cluster that never ran. */
export const EMPTY_STATE: MasterState = { maxFileKey: 0n, maxVolumeId: 0, deletedVolumes: [] };

/** The state as stored in JSON (a bigint has no JSON form; no deletions, no field: older builds read it). */
export function encodeState(state: MasterState): string {
  return JSON.stringify({
    maxFileKey: state.maxFileKey.toString(),
    maxVolumeId: state.maxVolumeId,
    ...(state.deletedVolumes.length > 0 ? { deletedVolumes: state.deletedVolumes } : {}),
  });
}

/** Throws (not a KelpError) on anything but a stored state: callers say where it came from. */
export function decodeState(text: string): MasterState {
  const raw = JSON.parse(text) as { maxFileKey: unknown; maxVolumeId: unknown; deletedVolumes?: unknown };
  if (typeof raw.maxFileKey !== 'string' || !/^\d{1,20}$/.test(raw.maxFileKey))
    throw new Error('bad maxFileKey');
  if (!Number.isSafeInteger(raw.maxVolumeId) || (raw.maxVolumeId as number) < 0)
    throw new Error('bad maxVolumeId');
  return {
    maxFileKey: BigInt(raw.maxFileKey),
    maxVolumeId: raw.maxVolumeId as number,
    // Absent in a state saved before deletions were remembered: none.
    deletedVolumes: raw.deletedVolumes === undefined ? [] : parseVolumeRanges(raw.deletedVolumes),
  };
}

/** JSON in `<mdir>/master-state.json`, replaced atomically (write, fsync, rename, fsync dir). */
export class FileStateStore implements MasterStateStore {
  readonly path: string;
  readonly heatPath: string;
  private readonly dir: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.dir = dir;
    this.path = join(dir, 'master-state.json');
    this.heatPath = join(dir, 'edge-heat.json');
  }

  async loadEdgeHeat(): Promise<string | undefined> {
    return existsSync(this.heatPath) ? readFileSync(this.heatPath, 'utf8') : undefined;
  }

  /**
   * Replaced by a rename so it is never torn; not fsync'd: heat is advice, and
   * a power cut costing the last interval's counts costs the policy nothing it
   * would not rebuild within the hour.
   */
  async saveEdgeHeat(snapshot: string): Promise<void> {
    const tmp = `${this.heatPath}.tmp`;
    writeFileSync(tmp, snapshot);
    renameSync(tmp, this.heatPath);
  }

  async load(): Promise<MasterState> {
    return this.read();
  }

  /** Synchronous inside: one master process, one writer, no interleaving. */
  async update(change: (current: MasterState) => MasterState): Promise<MasterState> {
    const next = change(this.read());
    this.write(next);
    return next;
  }

  private read(): MasterState {
    if (!existsSync(this.path)) return { ...EMPTY_STATE };
    try {
      return decodeState(readFileSync(this.path, 'utf8'));
    } catch (err) {
      throw new CorruptDataError(`${this.path} is not a valid master state file`, { cause: err });
    }
  }

  private write(state: MasterState): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, `${encodeState(state)}\n`, { flush: true });
    renameSync(tmp, this.path);
    fsyncDir(this.dir);
  }
}

/** For tests and throwaway clusters: nothing survives a restart. */
export class MemoryStateStore implements MasterStateStore {
  private state: MasterState = { ...EMPTY_STATE };
  private heat: string | undefined;
  async loadEdgeHeat(): Promise<string | undefined> {
    return this.heat;
  }
  async saveEdgeHeat(snapshot: string): Promise<void> {
    this.heat = snapshot;
  }
  async load(): Promise<MasterState> {
    return { ...this.state };
  }
  async update(change: (current: MasterState) => MasterState): Promise<MasterState> {
    this.state = { ...change({ ...this.state }) };
    return { ...this.state };
  }
}
