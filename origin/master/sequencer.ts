/**
 * File keys: never issued twice, across restarts and leader changes too.
 * Keys are handed out from memory, from ranges reserved in the state store:
 * a reservation moves the stored high-water mark a whole batch ahead in one
 * atomic update (one fsync, or one etcd transaction, per batch, not per
 * assign), and the keys between the old and the new mark are this master's
 * alone. The next range is reserved in the background while a quarter of the
 * current one is left, so the store is not on an assign's path. A restart or
 * a new leader resumes above the mark: at most the unused part of a range is
 * skipped, never reused.
 *
 * Heartbeats raise the counter past any key a volume server already stores
 * (docs/format.md §7), but only within the key space and by a plausible amount: a key
 * far past anything this cluster reserved is not one it handed out (a
 * made-up key, a forged beat), and following it could push the counter to the
 * end of the key space, where every assign fails.
 */
import { NoSpaceError, UnavailableError } from '../../shared/errors.ts';
import type { MasterStateStore } from './state-store.ts';

/** Keys reserved per update of the high-water mark. */
export const KEY_BATCH = 10_000n;
/**
 * Farthest a heartbeat may move the counter past the reserved mark. A master
 * restored from an old copy of its state is behind by what it assigned since,
 * far less than this; 2^32 such jumps would still not exhaust the key space.
 */
export const MAX_OBSERVED_JUMP = 2n ** 32n;
/** Keys at or above this are never issued: room for counts and batches below 2^64. */
export const KEY_SPACE_END = 2n ** 63n;
/** Reservations one take may wait for (each is one store update) before it gives up. */
const MAX_RESERVATIONS_PER_TAKE = 3;

interface Range {
  /** Next key to hand out. */
  next: bigint;
  /** Last key of the range (inclusive). */
  end: bigint;
}

export interface SequencerOptions {
  /** Keys per reservation (KEY_BATCH). */
  batch?: bigint;
  /** Throws (NotLeaderError) when this master may not hand out keys now: checked on every take. */
  guard?: () => void;
}

export class Sequencer {
  private readonly store: MasterStateStore;
  private readonly batch: bigint;
  private readonly guard: () => void;
  /** Reserved ranges, oldest first: keys are taken from the first. */
  private ranges: Range[] = [];
  /** No key at or below this is ever handed out: the stored mark when loaded, heartbeats, keys issued. */
  private floor: bigint;
  /** The highest mark this master knows was stored (judges how plausible a heartbeat's key is). */
  private knownMark: bigint;
  private reserving: Promise<void> | undefined;
  /** Keys wanted by takes waiting for a reservation: the next one covers them all. */
  private demand = 0n;

  private constructor(store: MasterStateStore, floor: bigint, opts: SequencerOptions) {
    this.store = store;
    this.batch = opts.batch ?? KEY_BATCH;
    this.guard = opts.guard ?? (() => {});
    this.floor = floor;
    this.knownMark = floor;
  }

  /** A sequencer starting above the stored mark. */
  static async open(store: MasterStateStore, opts: SequencerOptions = {}): Promise<Sequencer> {
    return new Sequencer(store, (await store.load()).maxFileKey, opts);
  }

  /** The first of `count` consecutive fresh keys. */
  async take(count: number): Promise<bigint> {
    const n = BigInt(count);
    for (let i = 0; i <= MAX_RESERVATIONS_PER_TAKE; i++) {
      this.guard();
      const first = this.takeReserved(n);
      if (first !== undefined) return first;
      if (i === MAX_RESERVATIONS_PER_TAKE) break;
      this.demand += n;
      try {
        await this.reserve();
      } finally {
        this.demand -= n;
      }
    }
    throw new UnavailableError('could not reserve file keys; retry shortly', 1);
  }

  /**
   * A volume server stores `maxKey`: never issue it or anything below it again.
   * Returns false (and changes nothing) for an implausible key.
   */
  observe(maxKey: bigint): boolean {
    if (maxKey <= this.floor) return true;
    if (maxKey >= KEY_SPACE_END || maxKey > this.knownMark + MAX_OBSERVED_JUMP) return false;
    this.floor = maxKey;
    return true;
  }

  /** One past the highest key that may have been handed out. */
  peek(): bigint {
    return this.floor + 1n;
  }

  /** Forgets the reserved ranges (this master stopped leading): a new term reserves afresh. */
  drop(): void {
    this.ranges = [];
  }

  private takeReserved(n: bigint): bigint | undefined {
    while (this.ranges.length) {
      const r = this.ranges[0]!;
      const first = r.next > this.floor ? r.next : this.floor + 1n;
      if (first + n > KEY_SPACE_END) throw new NoSpaceError('the file key space is exhausted');
      if (first + n - 1n <= r.end) {
        r.next = first + n;
        this.floor = first + n - 1n;
        // A quarter left: the next range is reserved before this one runs out.
        if (r.end - r.next < this.batch / 4n && this.ranges.length === 1) void this.reserve().catch(() => {});
        return first;
      }
      // Too few keys left in it for this count (or all below the floor): the rest is skipped.
      this.ranges.shift();
    }
    return undefined;
  }

  /** One reservation at a time; concurrent takes wait for the same one. */
  private reserve(): Promise<void> {
    this.reserving ??= this.reserveNow().finally(() => {
      this.reserving = undefined;
    });
    return this.reserving;
  }

  private async reserveNow(): Promise<void> {
    // Sized for every take waiting now (a burst), a batch at least.
    let size = this.batch;
    if (this.demand > size) size = this.demand;
    let base = 0n;
    const saved = await this.store.update((s) => {
      base = s.maxFileKey;
      if (this.floor > base) base = this.floor;
      if (base + size >= KEY_SPACE_END) throw new NoSpaceError('the file key space is exhausted');
      return { ...s, maxFileKey: base + size };
    });
    this.knownMark = saved.maxFileKey;
    this.ranges.push({ next: base + 1n, end: saved.maxFileKey });
  }
}
