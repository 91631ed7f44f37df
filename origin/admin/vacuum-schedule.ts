/**
 * The master's vacuum schedule: every `intervalMs` it vacuums the cluster at
 * its garbage threshold, as SeaweedFS's master does (its maintenance scripts
 * every 17 minutes). Off with an interval of 0. One run at a time: a run
 * longer than the interval delays the next, never overlaps it.
 */
import type { Logger } from '../observability/log.ts';
import type { ClusterView, VolumeServerClient } from './cluster.ts';
import { type VacuumResult, vacuumCluster } from './operations.ts';

/** SeaweedFS's master runs its maintenance about this often. */
export const DEFAULT_VACUUM_INTERVAL_MS = 15 * 60_000;

export interface VacuumRun {
  startedAt: string;
  finishedAt?: string;
  compacted: number;
  failed: number;
}

export class VacuumSchedule {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  last: VacuumRun | undefined;
  nextAt: number | undefined;
  readonly intervalMs: number;
  readonly garbageThreshold: number;
  private readonly view: () => ClusterView;
  private readonly client: VolumeServerClient;
  private readonly log: Logger;
  /** Several masters: only the leader's schedule runs (docs/decisions/0008-several-masters.md). */
  private readonly leading: () => boolean;

  constructor(opts: {
    intervalMs: number;
    garbageThreshold: number;
    view: () => ClusterView;
    client: VolumeServerClient;
    log: Logger;
    leading?: () => boolean;
  }) {
    this.leading = opts.leading ?? (() => true);
    this.intervalMs = opts.intervalMs;
    this.garbageThreshold = opts.garbageThreshold;
    this.view = opts.view;
    this.client = opts.client;
    this.log = opts.log;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.nextAt = Date.now() + this.intervalMs;
    this.timer = setTimeout(() => {
      this.running = (this.leading() ? this.runOnce() : Promise.resolve())
        .then(() => undefined)
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One run now; reports what it compacted in the log. */
  async runOnce(): Promise<VacuumResult[]> {
    const run: VacuumRun = { startedAt: new Date().toISOString(), compacted: 0, failed: 0 };
    this.last = run;
    let results: VacuumResult[] = [];
    try {
      results = await vacuumCluster(this.view(), this.client, { garbageThreshold: this.garbageThreshold });
    } catch (err) {
      this.log.warn(`scheduled vacuum failed: ${(err as Error).message}`);
    }
    run.compacted = results.filter((r) => r.report?.compacted).length;
    run.failed = results.filter((r) => r.error).length;
    run.finishedAt = new Date().toISOString();
    if (run.compacted || run.failed) {
      this.log.info(`scheduled vacuum compacted ${run.compacted} replicas, ${run.failed} failed`);
    }
    return results;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
