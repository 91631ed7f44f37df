/**
 * The volumes this cluster's masters ordered deleted (a collection delete),
 * so that a lookup of one says "deleted" (410 volume_deleted) rather than "no
 * live holder" (404): the two call for opposite things at a cache in front
 * (edge/read.ts purges on a delete, serves stale through an outage;
 * docs/decisions/0005-edge-coherence.md). Volume ids are never reused, so the
 * fact is durable: it is kept in the master state store (state-store.ts), as
 * id ranges (volume-ranges.ts), and every master answers the same.
 *
 * The leader records the ids before it orders the volume servers to delete
 * them: a delete that fails half way, or a master that dies in between, leaves
 * ids recorded whose volumes still live, which is harmless (a lookup answers
 * "deleted" only while no live server holds the volume) and which a retry
 * completes; the other order would leave deleted volumes unrecorded for good.
 *
 * Other masters (followers) learn of a deletion from the store: a lookup that
 * finds no live holder and no recorded deletion reads it again (shared by
 * concurrent lookups, at most once per RELOAD_INTERVAL_MS, waited for at most
 * RELOAD_TIMEOUT_MS), so a follower answers "deleted" once the leader's
 * update is in the store and its own heartbeats no longer list the volume.
 */
import { loadWithin, type MasterStateStore } from './state-store.ts';
import { addVolumeIds, hasVolumeId, unionVolumeRanges, type VolumeRanges } from './volume-ranges.ts';

/** Least time between two reads of the store on a lookup's behalf (a volume whose holders are all down is asked often). */
export const RELOAD_INTERVAL_MS = 1_000;
/** Longest a lookup waits for that read (etcd out of reach must not hang lookups): then it answers from memory. */
export const RELOAD_TIMEOUT_MS = 500;

export class DeletedVolumes {
  private readonly store: MasterStateStore;
  private readonly now: () => number;
  private ranges: VolumeRanges;
  private reloadedAt: number;
  private reloading: Promise<void> | undefined;

  private constructor(store: MasterStateStore, ranges: VolumeRanges, now: () => number) {
    this.store = store;
    this.ranges = ranges;
    this.now = now;
    this.reloadedAt = now();
  }

  /** The deletions as stored now (a master starting up). */
  static async open(store: MasterStateStore, now: () => number = Date.now): Promise<DeletedVolumes> {
    return new DeletedVolumes(store, (await store.load()).deletedVolumes, now);
  }

  /** What this master knows without asking the store. */
  private knows(volumeId: number): boolean {
    return hasVolumeId(this.ranges, volumeId);
  }

  /**
   * Whether the volume was deleted at a master's order: memory first, then
   * (not known there) the store, read again unless it was read within
   * RELOAD_INTERVAL_MS. Asked only of a volume no live server holds.
   */
  async has(volumeId: number): Promise<boolean> {
    if (this.knows(volumeId)) return true;
    if (this.now() - this.reloadedAt >= RELOAD_INTERVAL_MS) await this.reload();
    return this.knows(volumeId);
  }

  /**
   * Records the ids durably (one store update: an fsync'd file, or an etcd
   * transaction fenced by the leader's term); resolves once they are saved.
   * Rejects with the store's error (NotLeaderError, UnavailableError) when
   * they could not be.
   */
  async record(volumeIds: readonly number[]): Promise<void> {
    if (volumeIds.length === 0) return;
    const saved = await this.store.update((s) => ({
      ...s,
      deletedVolumes: addVolumeIds(s.deletedVolumes, volumeIds),
    }));
    this.ranges = unionVolumeRanges(this.ranges, saved.deletedVolumes);
  }

  private reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        const state = await loadWithin(this.store, RELOAD_TIMEOUT_MS);
        // A union, not a replacement: the set only grows, and a read begun before this master's own
        // record() may answer after it.
        if (state) this.ranges = unionVolumeRanges(this.ranges, state.deletedVolumes);
      } finally {
        // A store that did not answer is not asked again at once either.
        this.reloadedAt = this.now();
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }
}
