/**
 * File keys: never issued twice, across restarts too. Keys are handed out
 * from memory; before a key past the persisted high-water mark goes out, the
 * mark moves a whole batch ahead and is saved (one fsync per batch, not per
 * assign). A restart resumes above the mark, so at most a batch of keys is
 * skipped, never reused. Heartbeats raise the counter past any key a volume
 * server already stores (brief §4), but only within the key space and by a
 * plausible amount: a key far past anything this master reserved is not one it
 * handed out (a made-up key, a forged beat), and following it could push the
 * counter to the end of the key space, where every assign fails.
 */
import { NoSpaceError } from '../../shared/errors.ts';
import type { MasterStateStore } from './state-store.ts';

/** Keys reserved per save of the high-water mark. */
export const KEY_BATCH = 10_000n;
/**
 * Farthest a heartbeat may move the counter past the reserved mark. A master
 * restored from an old copy of its state is behind by what it assigned since,
 * far less than this; 2^32 such jumps would still not exhaust the key space.
 */
export const MAX_OBSERVED_JUMP = 2n ** 32n;
/** Keys at or above this are never issued: room for counts and batches below 2^64. */
export const KEY_SPACE_END = 2n ** 63n;

export class Sequencer {
  private next: bigint;
  private reservedUpTo: bigint;
  private readonly store: MasterStateStore;

  constructor(store: MasterStateStore) {
    this.store = store;
    const state = store.load();
    this.reservedUpTo = state.maxFileKey;
    this.next = state.maxFileKey + 1n;
  }

  /** The first of `count` consecutive fresh keys. */
  take(count: number): bigint {
    const first = this.next;
    if (first + BigInt(count) > KEY_SPACE_END) throw new NoSpaceError('the file key space is exhausted');
    this.next += BigInt(count);
    this.reserve(this.next - 1n);
    return first;
  }

  /**
   * A volume server stores `maxKey`: never issue it or anything below it again.
   * Returns false (and changes nothing) for an implausible key.
   */
  observe(maxKey: bigint): boolean {
    if (maxKey < this.next) return true;
    if (maxKey >= KEY_SPACE_END || maxKey > this.reservedUpTo + MAX_OBSERVED_JUMP) return false;
    this.next = maxKey + 1n;
    this.reserve(maxKey);
    return true;
  }

  peek(): bigint {
    return this.next;
  }

  private reserve(upTo: bigint): void {
    if (upTo <= this.reservedUpTo) return;
    const state = this.store.load();
    this.reservedUpTo = upTo + KEY_BATCH;
    this.store.save({ ...state, maxFileKey: this.reservedUpTo });
  }
}
