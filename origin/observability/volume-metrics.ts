/**
 * The volume server's metrics (docs/operations.md lists each). State (volumes,
 * needle maps, disks, backends' request counters) is read from the store at
 * scrape time; events (fsync batches, replication fan-outs, tier transfers,
 * resize jobs, backend errors) arrive through the observers the store,
 * replicator, tier jobs, resizer and backends are given.
 */
import type { TierJob } from '../../shared/api.ts';
import type { TierBackend } from '../../tiering/backends/backend.ts';
import type { ReplicationObserver } from '../volume/replication.ts';
import type { ResizeObserver, Resizer } from '../volume/resize.ts';
import type { Store } from '../volume/store.ts';
import type { SyncObserver } from '../volume/syncer.ts';
import type { BackendRegistry, TierJobs } from '../volume/tier.ts';
import type { Volume } from '../volume/volume.ts';
import { countedBackend } from './counted-backend.ts';
import {
  collectedCounter,
  collectedGauge,
  FastHistogram,
  LATENCY_BUCKETS,
  METRIC_PREFIX as P,
  type Samples,
  type ServerMetrics,
  TRANSFER_BUCKETS,
} from './metrics.ts';

/** Writes covered by one fsync: 1 is no sharing; high numbers are group commit at work. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] as const;

export type VolumeState = 'writable' | 'full' | 'sealed' | 'tiered';

/**
 * writable: takes writes. full: read-only because it reached the size limit.
 * sealed: read-only below it (`mark readonly`, a tier upload under way).
 * tiered: its `.dat` is in a cloud tier (the `backend` label says which).
 */
export function volumeState(v: Volume): VolumeState {
  if (v.info.remote) return 'tiered';
  if (!v.readOnly) return 'writable';
  return v.datSize >= v.config.sizeLimitBytes ? 'full' : 'sealed';
}

interface Sources {
  store: Store;
  backends: BackendRegistry;
  jobs: TierJobs;
  resizer?: Resizer;
  /** Whether the last heartbeat reached the master (undefined: a standalone server). */
  masterConnected?: () => boolean;
}

/** Adds one to `map[key]`. */
function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

function splitKey(key: string, names: readonly string[]): Record<string, string> {
  const parts = key.split('\u0000');
  return Object.fromEntries(names.map((n, i) => [n, parts[i] ?? '']));
}

function samples(map: Map<string, number>, names: readonly string[]): Samples {
  return [...map].map(([k, v]) => [splitKey(k, names), v] as const);
}

export class VolumeMetrics {
  private sources: Sources | undefined;
  private readonly fsyncBatch;
  private readonly replicaBatch;
  private readonly fsyncSeconds;
  private fsyncFailures = 0;
  private readonly replication = new Map<string, number>();
  private readonly replicationFailed = new Map<string, number>();
  private readonly replicationKept = new Map<string, number>();
  private readonly transfers = new Map<string, number>();
  private readonly transferBytes = new Map<string, number>();
  private readonly transferSeconds: FastHistogram;
  private readonly backendErrors = new Map<string, number>();
  private readonly resizeJobs = new Map<string, number>();
  private readonly resizeWait;
  private readonly resizeRun;

  constructor(metrics: ServerMetrics) {
    const r = metrics.registry;
    const volumes = () => this.sources?.store.all() ?? [];

    collectedGauge(
      r,
      `${P}volumes`,
      'Volumes on this server by state (writable, full, sealed, tiered) and, when tiered, backend',
      ['state', 'backend'],
      () => {
        const by = new Map<string, number>();
        for (const s of ['writable', 'full', 'sealed']) by.set(`${s}\u0000`, 0);
        for (const v of volumes()) bump(by, `${volumeState(v)}\u0000${v.info.remote?.backend ?? ''}`);
        return samples(by, ['state', 'backend']);
      },
    );
    const perCollection = (read: (v: Volume) => number) => () => {
      const by = new Map<string, number>();
      for (const v of volumes()) bump(by, v.config.collection, read(v));
      return samples(by, ['collection']);
    };
    collectedGauge(
      r,
      `${P}volume_needles`,
      'Live needles (blobs) by collection',
      ['collection'],
      perCollection((v) => v.map.liveCount),
    );
    collectedGauge(
      r,
      `${P}needle_map_entries`,
      'Entries held in the in-RAM needle maps (deleted ones included), by collection',
      ['collection'],
      perCollection((v) => v.map.entryCount),
    );
    collectedGauge(
      r,
      `${P}needle_map_bytes`,
      'RAM held by the needle maps (about 16 bytes per entry), by collection',
      ['collection'],
      perCollection((v) => v.map.memoryBytes()),
    );
    collectedGauge(
      r,
      `${P}volume_size_bytes`,
      'Bytes of volume data (.dat, local or tiered), by collection',
      ['collection'],
      perCollection((v) => v.datSize),
    );
    collectedGauge(
      r,
      `${P}volume_garbage_bytes`,
      'Bytes of deleted or overwritten needles that a vacuum would reclaim, by collection',
      ['collection'],
      perCollection((v) => v.map.deletedBytes),
    );
    collectedGauge(
      r,
      `${P}volume_open_repairs`,
      'Repairs the volumes needed when this server started (torn tails after a crash); 0 after a clean shutdown',
      [],
      () => [[{}, volumes().reduce((a, v) => a + v.repairs.length, 0)]],
    );

    const disks = () => this.sources?.store.diskStatuses() ?? [];
    collectedGauge(
      r,
      `${P}disk_free_bytes`,
      'Free bytes on the filesystem of each data directory',
      ['dir'],
      () => disks().map((d) => [{ dir: d.dir }, d.free] as const),
    );
    collectedGauge(r, `${P}disk_size_bytes`, 'Size of the filesystem of each data directory', ['dir'], () =>
      disks().map((d) => [{ dir: d.dir }, d.all] as const),
    );
    collectedGauge(
      r,
      `${P}disk_full`,
      '1 while a data directory refuses writes because its disk filled up (507s), else 0',
      ['dir'],
      () => disks().map((d) => [{ dir: d.dir }, d.full ? 1 : 0] as const),
    );
    collectedGauge(r, `${P}disk_volume_slots`, 'Most volumes each data directory may hold', ['dir'], () =>
      disks().map((d) => [{ dir: d.dir }, d.maxVolumes] as const),
    );
    collectedGauge(r, `${P}disk_volumes`, 'Volumes in each data directory', ['dir'], () =>
      disks().map((d) => [{ dir: d.dir }, d.volumeCount] as const),
    );
    collectedGauge(
      r,
      `${P}master_connected`,
      '1 when the last heartbeat reached the master, 0 when it did not (absent on a standalone server)',
      [],
      () => {
        const connected = this.sources?.masterConnected;
        return connected ? [[{}, connected() ? 1 : 0]] : [];
      },
    );

    this.fsyncBatch = new FastHistogram(
      r,
      `${P}fsync_batch_writes`,
      'Writes made durable by one fdatasync of a volume (group commit; --fsync batch shares, always does not)',
      BATCH_BUCKETS,
    ).series();
    this.replicaBatch = new FastHistogram(
      r,
      `${P}replication_batch_writes`,
      'Small writes sent to a replica in one request (1 = sent alone; more: a batch, replica-batches.ts)',
      BATCH_BUCKETS,
    ).series();
    this.fsyncSeconds = new FastHistogram(
      r,
      `${P}fsync_duration_seconds`,
      'How long one fdatasync of a volume (.dat and .idx) took',
      LATENCY_BUCKETS,
    ).series();
    collectedCounter(
      r,
      `${P}fsync_failures_total`,
      'fdatasync calls that failed (the writes were not acknowledged)',
      [],
      () => [[{}, this.fsyncFailures]],
    );

    collectedCounter(
      r,
      `${P}replication_requests_total`,
      'Writes and deletes sent to other replicas (one per replica)',
      ['op'],
      () => samples(this.replication, ['op']),
    );
    collectedCounter(
      r,
      `${P}replication_failures_total`,
      'Replica requests that failed (op=write|delete), or fan-outs that could not start for want of live copies or of the master (op=locate); the client got an error',
      ['op'],
      () => samples(this.replicationFailed, ['op']),
    );
    collectedCounter(
      r,
      `${P}replication_kept_total`,
      'Failed replicated changes that could not be taken back everywhere (decision 0004): replicas may disagree until repaired',
      ['op'],
      () => samples(this.replicationKept, ['op']),
    );

    const transferNames = ['action', 'backend', 'result'] as const;
    collectedCounter(
      r,
      `${P}tier_transfers_total`,
      'Tier uploads and downloads of whole volumes that ended, by result (done, failed)',
      transferNames,
      () => samples(this.transfers, transferNames),
    );
    collectedCounter(
      r,
      `${P}tier_transfer_bytes_total`,
      'Bytes moved by tier transfers (failed ones count what they moved)',
      ['action', 'backend'],
      () => samples(this.transferBytes, ['action', 'backend']),
    );
    this.transferSeconds = new FastHistogram(
      r,
      `${P}tier_transfer_duration_seconds`,
      'How long tier transfers took, done or failed',
      TRANSFER_BUCKETS,
    );
    collectedGauge(r, `${P}tier_transfers_running`, 'Tier transfers running now', [], () => [
      [{}, this.sources?.jobs.runningCount ?? 0],
    ]);

    const backends = () => this.sources?.backends.all() ?? [];
    collectedCounter(
      r,
      `${P}backend_requests_total`,
      'Requests sent to each tier backend (each retry counts; file operations for a local backend)',
      ['backend'],
      () => backends().map((b) => [{ backend: b.name }, b.stats.requests] as const),
    );
    collectedCounter(
      r,
      `${P}backend_read_bytes_total`,
      'Bytes read from each tier backend by reads of tiered volumes',
      ['backend'],
      () => backends().map((b) => [{ backend: b.name }, b.stats.bytesRead] as const),
    );
    collectedCounter(
      r,
      `${P}backend_errors_total`,
      'Backend operations that failed after their retries (op: read, upload, download, stat, delete)',
      ['backend', 'op'],
      () => samples(this.backendErrors, ['backend', 'op']),
    );

    collectedCounter(
      r,
      `${P}resize_jobs_total`,
      'Image resize jobs by outcome (ok, failed, timeout, rejected: the queue was full, 429)',
      ['outcome'],
      () => samples(this.resizeJobs, ['outcome']),
    );
    collectedGauge(r, `${P}resize_queue_depth`, 'Resize jobs waiting for a slot', [], () => [
      [{}, this.sources?.resizer?.queueDepth ?? 0],
    ]);
    collectedGauge(r, `${P}resize_running`, 'Resize jobs running', [], () => [
      [{}, this.sources?.resizer?.running ?? 0],
    ]);
    this.resizeWait = new FastHistogram(
      r,
      `${P}resize_queue_wait_seconds`,
      'How long resize jobs waited for a slot',
      LATENCY_BUCKETS,
    ).series();
    this.resizeRun = new FastHistogram(
      r,
      `${P}resize_duration_seconds`,
      'How long resize jobs ran once they had a slot',
      LATENCY_BUCKETS,
    ).series();
  }

  /** What the scrape reads from, once the server has opened it. */
  attach(sources: Sources): void {
    this.sources = sources;
    if (sources.resizer) sources.resizer.observer = this.onResize;
  }

  readonly onSync: SyncObserver = (writes, seconds, failed) => {
    if (failed) {
      this.fsyncFailures++;
      return;
    }
    this.fsyncBatch.observe(writes);
    this.fsyncSeconds.observe(seconds);
  };

  /** Told of each request of small writes to a replica: how many writes it carried. */
  readonly onReplicaBatch = (writes: number): void => {
    this.replicaBatch.observe(writes);
  };

  readonly onReplication: ReplicationObserver = (op, peers, failed, kept) => {
    if (op === 'locate') {
      bump(this.replicationFailed, op);
      return;
    }
    bump(this.replication, op, peers);
    if (failed) bump(this.replicationFailed, op, failed);
    if (kept) bump(this.replicationKept, op);
  };

  readonly onTierJob = (job: TierJob): void => {
    bump(this.transfers, `${job.action}\u0000${job.backend}\u0000${job.state}`);
    bump(this.transferBytes, `${job.action}\u0000${job.backend}`, job.bytes);
    const seconds = ((job.finishedAt ?? Date.now()) - job.startedAt) / 1000;
    this.transferSeconds.series({ action: job.action, backend: job.backend }).observe(seconds);
  };

  readonly onResize: ResizeObserver = (outcome, waitSeconds, runSeconds) => {
    bump(this.resizeJobs, outcome);
    if (outcome === 'rejected') return;
    this.resizeWait.observe(waitSeconds);
    this.resizeRun.observe(runSeconds);
  };

  /** `backend` with its failed operations counted (kelp_backend_errors_total): counted-backend.ts. */
  readonly countBackendErrors = (backend: TierBackend): TierBackend =>
    countedBackend(backend, (op) => bump(this.backendErrors, `${backend.name}\u0000${op}`));
}
