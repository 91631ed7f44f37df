import { fdatasync } from 'node:fs';

/**
 * When an acknowledged write reaches the disk (the `--fsync` option):
 * - `batch` (default): group commit. A write waits for the next fdatasync; a sync
 *   starts as soon as the previous one ends and covers every write that arrived
 *   meanwhile, so concurrent writes share one sync and nothing waits on a timer.
 * - `always`: the same, but every write gets a sync of its own (no sharing).
 * - `never`: acknowledge once the bytes are in the page cache: fast, and an OS
 *   crash or power loss may lose the last seconds of writes (a `kill -9` of the
 *   process does not: the kernel still holds the pages).
 */
export type FsyncPolicy = 'batch' | 'always' | 'never';
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['batch', 'always', 'never'];

/** Told of each sync: how many waiting writes it covered, how long it took, whether it failed (metrics). */
export type SyncObserver = (writes: number, seconds: number, failed: boolean) => void;

function syncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Group commit over a set of file descriptors (a volume's `.dat` and `.idx`).
 * `fds()` is read at the start of each sync, so a volume that swaps its files
 * (vacuum) syncs the current ones.
 */
export class GroupSyncer {
  readonly policy: FsyncPolicy;
  private readonly fds: () => number[];
  private readonly observe: SyncObserver | undefined;
  private waiting: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  private running = false;
  /** A kick() is queued as a microtask (sync() on an idle syncer). */
  private kickQueued = false;

  constructor(policy: FsyncPolicy, fds: () => number[], observe?: SyncObserver) {
    this.policy = policy;
    this.fds = fds;
    this.observe = observe;
  }

  /**
   * Resolves once every write issued before this call is durable under the
   * policy. An idle syncer starts the next sync in a microtask, not at once:
   * writes appended in the same synchronous run (a replica batch,
   * replica-batch-handler.ts) then share it, where starting at the first
   * would sync it alone and make the rest wait for a second sync.
   */
  sync(): Promise<void> {
    if (this.policy === 'never') return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (this.running || this.kickQueued) return;
      this.kickQueued = true;
      queueMicrotask(this.queuedKick);
    });
  }

  private readonly queuedKick = (): void => {
    this.kickQueued = false;
    this.kick();
  };

  private kick(): void {
    if (this.running || this.waiting.length === 0) return;
    const batch = this.policy === 'always' ? this.waiting.splice(0, 1) : this.waiting.splice(0);
    this.running = true;
    const started = performance.now();
    Promise.all(this.fds().map(syncFd)).then(
      () => {
        this.observe?.(batch.length, (performance.now() - started) / 1000, false);
        this.finish(batch, null);
      },
      (err: unknown) => {
        this.observe?.(batch.length, (performance.now() - started) / 1000, true);
        this.finish(batch, err);
      },
    );
  }

  private finish(batch: Array<{ resolve(): void; reject(err: unknown): void }>, err: unknown): void {
    this.running = false;
    for (const w of batch) err ? w.reject(err) : w.resolve();
    this.kick();
  }

  /** Waits for any in-flight sync, then syncs once more (used before close and renames). */
  async flush(): Promise<void> {
    if (this.policy === 'never') {
      await Promise.all(this.fds().map(syncFd));
      return;
    }
    await this.sync();
  }
}
