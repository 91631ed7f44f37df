/**
 * File keys: never issued twice, across restarts too. Keys are handed out
 * from memory; before a key past the persisted high-water mark goes out, the
 * mark moves a whole batch ahead and is saved (one fsync per batch, not per
 * assign). A restart resumes above the mark, so at most a batch of keys is
 * skipped, never reused. Heartbeats raise the counter past any key a volume
 * server already stores (brief §4).
 */
import type { MasterStateStore } from './state-store.ts';

/** Keys reserved per save of the high-water mark. */
export const KEY_BATCH = 10_000n;

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
    this.next += BigInt(count);
    this.reserve(this.next - 1n);
    return first;
  }

  /** A volume server stores `maxKey`: never issue it or anything below it again. */
  observe(maxKey: bigint): void {
    if (maxKey < this.next) return;
    this.next = maxKey + 1n;
    this.reserve(maxKey);
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
