/**
 * A replica's memory of the replicated changes it applied, so that their
 * primary can take one back when the fan-out failed elsewhere
 * (docs/decisions/0004-replication-rollback.md). Each replicated write or
 * delete carries a random change id; the replica keeps what the change did to
 * the key's entry under that id, for UNDO_TTL_MS and at most
 * MAX_UNDO_RECORDS of them. An undo that arrives before the change was
 * applied (a slow replica) leaves a marker instead, and the change is then
 * refused when it arrives: either way the replica ends without it.
 *
 * In memory only: a replica that restarts between applying a change and
 * hearing the undo keeps the change (the decision record names that window).
 */
import { BadRequestError, ConflictError } from '../../shared/errors.ts';
import type { Logger } from '../observability/log.ts';
import type { EntryChange, Volume } from './volume.ts';

/**
 * How long a change can still be undone. The primary undoes after its
 * fan-out settles, which takes at most the replica timeout (30 s,
 * replication.ts), then sends undos with a shorter timeout: this covers both.
 */
export const UNDO_TTL_MS = 60_000;
/** Changes remembered at once (about 200 B each); the oldest go first, with a log line. */
export const MAX_UNDO_RECORDS = 100_000;
/** A change id: what the primary sends in `change=` and `undo=` (replication.ts makes 36: a UUID). */
const CHANGE_ID = /^[A-Za-z0-9_-]{16,64}$/;
/** At most one "records evicted early" log line per this long. */
const EVICTION_LOG_INTERVAL_MS = 60_000;

export function assertChangeId(id: string): string {
  if (!CHANGE_ID.test(id)) throw new BadRequestError('a change id is 16 to 64 characters of [A-Za-z0-9_-]');
  return id;
}

type UndoRecord =
  | {
      kind: 'applied';
      at: number;
      volume: Volume;
      key: bigint;
      cookie: number;
      /** What the change did; undefined when it changed nothing (unchanged bytes, or it failed). */
      change: Promise<EntryChange | undefined>;
    }
  | { kind: 'cancelled'; at: number };

export type UndoOutcome = 'undone' | 'nothing to undo';

export class UndoLog {
  private readonly records = new Map<string, UndoRecord>();
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private readonly maxRecords: number;
  /** When a record still young enough to be undone was last pushed out by the count limit. */
  private evictedEarlyAt = Number.NEGATIVE_INFINITY;
  private loggedEvictionAt = Number.NEGATIVE_INFINITY;

  constructor(options: { now?: () => number; log?: Logger; maxRecords?: number } = {}) {
    this.now = options.now ?? Date.now;
    this.log = options.log;
    this.maxRecords = options.maxRecords ?? MAX_UNDO_RECORDS;
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * Refuses a change its primary has already undone (ConflictError). Call it
   * right before applying the change, in the same tick as `applied`.
   */
  assertNotCancelled(id: string): void {
    if (this.records.get(id)?.kind === 'cancelled') {
      throw new ConflictError(`change ${id} was already taken back by its primary`);
    }
  }

  /**
   * Remembers a change being applied. Called in the same tick as the volume
   * call that applies it, so an undo can never arrive in between; the undo
   * waits for `change` to settle.
   */
  applied(
    id: string,
    volume: Volume,
    fid: { key: bigint; cookie: number },
    change: Promise<{ change?: EntryChange }>,
  ): void {
    const settled = change.then(
      (r) => r.change,
      () => undefined,
    );
    this.put(id, {
      kind: 'applied',
      at: this.now(),
      volume,
      key: fid.key,
      cookie: fid.cookie,
      change: settled,
    });
  }

  /**
   * Takes change `id` back on `volume` if it is still the key's latest state
   * (Volume.restore). An id never seen is marked so the change is refused if
   * it arrives later. Throws ConflictError when the change cannot be undone
   * (a later change stands, the volume was compacted or tiered since), or when
   * records were pushed out by the count limit recently, so that an unknown id
   * may be a forgotten change.
   */
  async undo(id: string, volume: Volume, fid: { key: bigint; cookie: number }): Promise<UndoOutcome> {
    this.sweep();
    const record = this.records.get(id);
    if (record === undefined) {
      this.put(id, { kind: 'cancelled', at: this.now() });
      if (this.now() - this.evictedEarlyAt < UNDO_TTL_MS) {
        throw new ConflictError(`change ${id} is not remembered: records were evicted early, it may be one`);
      }
      return 'nothing to undo';
    }
    if (record.kind === 'cancelled') return 'nothing to undo';
    if (record.volume !== volume || record.key !== fid.key || record.cookie !== fid.cookie) {
      throw new BadRequestError(`change ${id} was not a change of this fid`);
    }
    this.records.delete(id);
    const change = await record.change;
    if (change === undefined) return 'nothing to undo';
    try {
      await volume.restore(change);
    } catch (err) {
      this.log?.error(
        { volume: volume.id, change: id, err },
        `volume ${volume.id}: could not undo replicated change ${id}: ${(err as Error).message}`,
      );
      throw err;
    }
    return 'undone';
  }

  private put(id: string, record: UndoRecord): void {
    this.records.delete(id);
    this.records.set(id, record);
    this.sweep();
  }

  /** Drops expired records (the map is in arrival order), then the oldest beyond the count limit. */
  private sweep(): void {
    const now = this.now();
    for (const [id, r] of this.records) {
      const expired = now - r.at >= UNDO_TTL_MS;
      if (!expired && this.records.size <= this.maxRecords) break;
      this.records.delete(id);
      if (!expired && r.kind === 'applied') this.evictedEarly(now);
    }
  }

  private evictedEarly(now: number): void {
    this.evictedEarlyAt = now;
    if (now - this.loggedEvictionAt < EVICTION_LOG_INTERVAL_MS) return;
    this.loggedEvictionAt = now;
    this.log?.warn(
      `replication undo log full (${this.maxRecords} changes in ${UNDO_TTL_MS / 1000} s): ` +
        'changes evicted before their undo window ended',
    );
  }
}
