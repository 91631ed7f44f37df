/**
 * Edge heat across leader changes and restarts (docs/decisions/0010-origin-free-reads.md § 5):
 * the leader saves a snapshot of the hottest volumes' hourly counts
 * (edge-heat.ts) in the state store (etcd with several masters, a file in
 * `--mdir` with one) every `edgeHeatPersistInterval`, when reports came in
 * since the last one; followers load it at the same interval. So a follower's
 * `/vol/status` lags the leader's by at most two intervals, and a new leader,
 * or a restarted one, starts from the counts of at most one interval ago
 * instead of from zero, which a policy would read as "cold" and tier a volume
 * that is hot at the edge. Taking a snapshot in keeps the larger count per
 * hour, so loading one twice, or one older than what is held, changes nothing.
 *
 * Bounded: one store write per interval at most, of at most
 * MAX_SNAPSHOT_VOLUMES volumes × 24 counts.
 */
import { NotLeaderError } from '../../shared/errors.ts';
import type { Logger } from '../observability/log.ts';
import type { EdgeHeat } from './edge-heat.ts';
import type { Leadership } from './election.ts';
import type { MasterStateStore } from './state-store.ts';

/** How long a stopping master waits for its last save. */
export const STOP_SAVE_TIMEOUT_MS = 2_000;
/** A tick the store has not answered in this long is left behind (the next one runs; both are idempotent). */
const TICK_TIMEOUT_MS = 10_000;

/** `work`, or nothing once `ms` have passed. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([work.then(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface EdgeHeatStoreOptions {
  heat: EdgeHeat;
  store: MasterStateStore;
  leadership: Leadership;
  /** 0: never saved nor loaded (heat lives in memory only). */
  intervalMs: number;
  log: Logger;
}

export class EdgeHeatStore {
  private readonly opts: EdgeHeatStoreOptions;
  private timer: NodeJS.Timeout | undefined;
  /** This term's leader has taken in the saved snapshot: only then may it overwrite it. */
  private restored = false;
  private running: Promise<void> = Promise.resolve();

  constructor(opts: EdgeHeatStoreOptions) {
    this.opts = opts;
    opts.leadership.onChange(() => {
      this.restored = false;
      // A new leader takes in what the last one saved at once, not an interval later.
      this.kick();
    });
  }

  start(): void {
    if (this.opts.intervalMs <= 0) return;
    this.kick();
    this.timer = setInterval(() => this.kick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; a leader saves what came in since its last save (a clean stop hands over all of it). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.opts.intervalMs <= 0) return;
    const last = this.running.then(() => (this.opts.leadership.isLeader() ? this.tick() : undefined));
    // A store that does not answer must not hold up a shutdown: the heat is advice.
    await within(last, STOP_SAVE_TIMEOUT_MS);
  }

  /** One tick at a time: a slow store is not asked again while it still answers the last one. */
  private kick(): void {
    if (this.opts.intervalMs <= 0) return;
    this.running = this.running.then(() => within(this.tick(), TICK_TIMEOUT_MS));
  }

  private async tick(): Promise<void> {
    const { heat, store, leadership, log } = this.opts;
    try {
      const leading = leadership.isLeader();
      if (!leading || !this.restored) {
        const saved = await store.loadEdgeHeat();
        if (saved !== undefined) heat.restore(saved);
        if (leading) this.restored = true;
      }
      if (leading && heat.dirty) {
        const snapshot = heat.snapshot();
        await store.saveEdgeHeat(snapshot).catch((err: unknown) => {
          heat.markDirty();
          throw err;
        });
      }
    } catch (err) {
      // The next tick tries again; a deposed leader becomes a follower that loads.
      if (!(err instanceof NotLeaderError))
        log.warn(`edge heat snapshot: ${(err as Error).message}; trying again next interval`);
    }
  }
}
