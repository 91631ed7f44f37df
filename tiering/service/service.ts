/**
 * The tiering service (`kelp tier serve`, docs/format.md §10): a loop that asks the
 * master for volumes, evaluates the policies (policy.ts) and tells the volume
 * servers holding a volume to move it, one volume at a time and one replica
 * at a time, polling each transfer to its end.
 *
 * It keeps no state that matters, so it is safe to stop or kill anywhere and
 * to restart: each round starts from what the cluster says now. A transfer
 * running when a round starts (its own from before a restart, or one started
 * by `kelp tier upload`) is waited on, never started again; a volume already
 * tiered where the policy wants it is left alone; a move interrupted between
 * two replicas shows up as a partly tiered volume, which the policy finishes.
 * The volume server makes each move safe on its side (origin/volume/tier.ts:
 * nothing local changes before the remote copy is verified).
 *
 * Bounded: every request has a timeout, a failed move backs off (doubling, up
 * to MAX_BACKOFF_MS) before that volume is tried again, and a volume is moved
 * at most once per interval, so no rule can make it flap faster than that.
 */
import { type Logger, pino } from 'pino';
import { ConflictError } from '../../shared/errors.ts';
import {
  type ClusterSnapshot,
  type ClusterVolume,
  JOB_POLL_MS,
  readCluster,
  sleep,
  type TierClient,
  type TierJob,
  TierRequestError,
} from './client.ts';
import { formatDuration } from './duration.ts';
import { evaluate, type TierDecision, type TierRule } from './policy.ts';

/** The longest a failed volume waits before it is tried again. */
export const MAX_BACKOFF_MS = 3_600_000;
/** Progress lines of a long transfer: one per this many ms at most. */
const PROGRESS_LOG_MS = 30_000;

/**
 * The policies applied to a snapshot, with what the policy cannot see: a
 * volume with no live replica, or with a server that did not answer, is left
 * alone this round.
 */
export function planCluster(
  snapshot: ClusterSnapshot,
  rules: readonly TierRule[],
  now: number,
): TierDecision[] {
  const byId = new Map(snapshot.volumes.map((v) => [v.id, v]));
  return evaluate(snapshot.volumes, rules, { now, volumeSizeLimit: snapshot.volumeSizeLimit }).map((d) => {
    const v = byId.get(d.volumeId)!;
    const down = v.replicas.filter((r) => r.unreachable).map((r) => r.server);
    if (d.action === 'none' || (v.replicas.length > 0 && down.length === 0)) return d;
    const text =
      v.replicas.length === 0
        ? 'no replica is alive'
        : `would ${d.action} (${d.reason}), but ${down.join(', ')} did not answer`;
    return {
      ...d,
      action: 'none',
      reason: text,
      conditions: [...d.conditions, { name: 'rule', ok: false, text }],
    };
  });
}

/** How a decision reads in logs and `kelp tier plan`. */
export function describeDecision(d: TierDecision): string {
  const what =
    d.action === 'upload'
      ? `upload to ${d.backend}${d.keepLocalDat ? ' (keeping the local .dat)' : ''}`
      : d.action === 'download'
        ? `download from ${d.backend}`
        : 'stays';
  const collection = d.collection ? ` (${d.collection})` : '';
  return `volume ${d.volumeId}${collection}: ${what}: ${d.reason}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export interface TierServiceOptions {
  client: TierClient;
  rules: readonly TierRule[];
  /** Between rounds when there was nothing to do (or a move failed). */
  intervalMs: number;
  /** Where its lines go; JSON on stdout by default. */
  logger?: Logger;
  pollMs?: number;
  now?: () => number;
  /** Told of each round `run()` makes, with how long it took (metrics). */
  onRound?: (outcome: RoundOutcome, seconds: number) => void;
}

export type RoundOutcome =
  | { kind: 'idle' }
  | { kind: 'waited'; server: string; job: TierJob }
  | { kind: 'moved'; decision: TierDecision }
  | { kind: 'failed'; decision?: TierDecision; error: string };

export class TierService {
  private readonly o: Required<Omit<TierServiceOptions, 'onRound'>> & Pick<TierServiceOptions, 'onRound'>;
  private readonly log: Logger;
  /** Volume id → epoch ms it was first seen: a lower bound of its age (policy.ts, minAge). */
  private readonly firstSeen = new Map<number, number>();
  private readonly failures = new Map<number, { count: number; retryAt: number }>();
  private readonly lastMoved = new Map<number, number>();
  /** What was last logged per volume, so an unchanged decision is not logged every round. */
  private readonly logged = new Map<number, string>();
  /** The first round that evaluates says how many volumes there are and how many move. */
  private summarized = false;
  /** Lines logged by logOnce, by key. */
  private readonly once = new Map<string, string>();

  constructor(options: TierServiceOptions) {
    this.o = {
      pollMs: JOB_POLL_MS,
      now: Date.now,
      ...options,
      logger: options.logger ?? pino(),
    };
    this.log = this.o.logger;
  }

  /**
   * Runs rounds until `signal` aborts: straight on after a move (the next
   * volume may be waiting), after `intervalMs` otherwise. Resolves once
   * stopped; a transfer being polled then goes on in its volume server.
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let outcome: RoundOutcome;
      const started = performance.now();
      try {
        outcome = await this.round(signal);
        this.once.delete('round failed');
      } catch (err) {
        if (signal.aborted) break;
        outcome = { kind: 'failed', error: err instanceof Error ? err.message : String(err) };
        // Once per distinct error: a master that is down for an hour is one line, not sixty.
        this.logOnce(
          'round failed',
          `${outcome.error} (trying again every ${formatDuration(this.o.intervalMs)})`,
        );
      }
      this.o.onRound?.(outcome, (performance.now() - started) / 1000);
      if (outcome.kind === 'moved' || outcome.kind === 'waited') continue;
      try {
        await sleep(this.o.intervalMs, signal);
      } catch {
        break;
      }
    }
  }

  /** One round: wait for a running transfer, or move at most one volume. */
  async round(signal?: AbortSignal): Promise<RoundOutcome> {
    const now = this.o.now();
    const snapshot = await readCluster(this.o.client, { signal, firstSeen: this.firstSeen, now });
    for (const key of this.once.keys())
      if (key.startsWith('server ') && !snapshot.unreachable.has(key.slice('server '.length)))
        this.once.delete(key);
    for (const [server, why] of snapshot.unreachable) this.logOnce(`server ${server}`, why);

    // One transfer at a time across the cluster, whoever started it.
    const running = snapshot.running[0];
    if (running) {
      const { server, job } = running;
      this.log.info(
        `waiting for the running ${job.action} of volume ${job.volumeId} on ${server} (${job.backend})`,
      );
      const ended = await this.wait(server, job.volumeId, signal);
      this.log.info(`volume ${job.volumeId} on ${server}: ${job.action} ${this.ending(ended)}`);
      return { kind: 'waited', server, job: ended };
    }

    const decisions = planCluster(snapshot, this.o.rules, now);
    const moves = decisions.filter((d) => d.action !== 'none');
    for (const d of decisions) this.logDecision(d);
    if (!this.summarized) {
      this.summarized = true;
      this.log.info(`${decisions.length} volumes, ${moves.length} to move`);
    }
    const byId = new Map(snapshot.volumes.map((v) => [v.id, v]));
    const next = moves.find((d) => this.ready(d.volumeId, now));
    if (!next) return { kind: 'idle' };
    try {
      await this.execute(byId.get(next.volumeId)!, next, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      const error = err instanceof Error ? err.message : String(err);
      const f = this.failures.get(next.volumeId) ?? { count: 0, retryAt: 0 };
      f.count++;
      const backoff = Math.min(MAX_BACKOFF_MS, this.o.intervalMs * 2 ** (f.count - 1));
      f.retryAt = this.o.now() + backoff;
      this.failures.set(next.volumeId, f);
      this.log.warn(
        { volume: next.volumeId, action: next.action, backend: next.backend },
        `volume ${next.volumeId}: ${next.action} failed (${error}); trying again in ${Math.round(backoff / 1000)} s at the earliest`,
      );
      return { kind: 'failed', decision: next, error };
    }
    this.failures.delete(next.volumeId);
    this.lastMoved.set(next.volumeId, this.o.now());
    return { kind: 'moved', decision: next };
  }

  /** Not backing off from a failure, and not moved within the last interval. */
  private ready(volumeId: number, now: number): boolean {
    const f = this.failures.get(volumeId);
    if (f && now < f.retryAt) return false;
    const moved = this.lastMoved.get(volumeId);
    return moved === undefined || now - moved >= this.o.intervalMs;
  }

  /** Moves each replica that is not where the decision wants it, one at a time. */
  private async execute(v: ClusterVolume, d: TierDecision, signal?: AbortSignal): Promise<void> {
    const targets = v.replicas.filter((r) =>
      d.action === 'upload' ? r.remote !== d.backend : r.remote !== undefined,
    );
    this.log.info({ volume: d.volumeId, action: d.action, backend: d.backend }, describeDecision(d));
    this.logged.set(d.volumeId, `${d.action}|${d.backend}`);
    for (const r of targets) {
      signal?.throwIfAborted();
      const started = Date.now();
      try {
        if (d.action === 'upload')
          await this.o.client.startUpload(r.server, v.id, d.backend!, d.keepLocalDat, signal);
        else await this.o.client.startDownload(r.server, v.id, signal);
      } catch (err) {
        // Someone else started one in the meantime: wait for it rather than fail.
        if (!(err instanceof TierRequestError && err.serverError instanceof ConflictError)) throw err;
        const now = await this.o.client.volumeTier(r.server, v.id, signal);
        if (now.job?.state !== 'running') throw err;
        this.log.info(`volume ${v.id} on ${r.server}: its ${now.job.action} is already running; waiting`);
      }
      const job = await this.wait(r.server, v.id, signal);
      if (job.state === 'failed') throw new Error(`${r.server}: ${job.error ?? 'failed'}`);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      this.log.info(`volume ${v.id} on ${r.server}: ${job.action} ${this.ending(job)} in ${secs} s`);
    }
  }

  private wait(server: string, volumeId: number, signal?: AbortSignal): Promise<TierJob> {
    let lastLog = Date.now();
    return this.o.client.waitForJob(server, volumeId, {
      signal,
      pollMs: this.o.pollMs,
      onProgress: (job) => {
        if (job.state !== 'running' || Date.now() - lastLog < PROGRESS_LOG_MS) return;
        lastLog = Date.now();
        const pct = job.total ? Math.floor((job.bytes / job.total) * 100) : 0;
        this.log.info(
          `volume ${volumeId} on ${server}: ${job.action} ${pct}% (${formatBytes(job.bytes)} of ${formatBytes(job.total)})`,
        );
      },
    });
  }

  private ending(job: TierJob): string {
    if (job.state === 'failed') return `failed: ${job.error ?? 'unknown error'}`;
    return `done (${job.backend}, ${formatBytes(job.total)})`;
  }

  /** Logs a decision when its gist (action, backend, failing conditions) changed since it was last logged. */
  private logDecision(d: TierDecision): void {
    if (d.action !== 'none') return; // logged when acted on
    const gist = `none|${d.backend}|${d.conditions
      .filter((c) => !c.ok)
      .map((c) => c.name)
      .join(',')}`;
    if (this.logged.get(d.volumeId) === gist) return;
    this.logged.set(d.volumeId, gist);
    this.log.info({ volume: d.volumeId, action: d.action, backend: d.backend }, describeDecision(d));
  }

  private logOnce(key: string, text: string): void {
    if (this.once.get(key) === text) return;
    this.once.set(key, text);
    this.log.warn(`${key}: ${text}`);
  }
}
