/**
 * The cluster as the tiering service and `kelp tier` see it, over HTTP only
 * (DESIGN.md: the tiering service talks to origin over HTTP, never by import):
 * the master's `/vol/status` and `/dir/lookup`, and each volume server's
 * `/status` and `/admin/tier/{upload,download,status}`.
 *
 * The master says which volumes exist and where they live; the volume servers
 * say, live, which replica is tiered, how hot it is and which transfer is
 * running. Replicas are asked one by one because they can disagree: a move
 * interrupted between two replicas leaves one tiered and one local, and only
 * the servers know.
 */
import type {
  MasterVolume,
  RemoteDat,
  ServerTierStatus,
  TierJob,
  VacuumReport,
  VolumeStatusJson,
  VolumeTierStatus,
} from '../../shared/api.ts';

export type { MasterVolume, ServerTierStatus, TierJob, VacuumReport, VolumeTierStatus };

import { type AuthHeaders, signWith } from '../../shared/client/http.ts';
import { MasterClient } from '../../shared/client/master-client.ts';
import { VACUUM_TIMEOUT_MS, VolumeClient } from '../../shared/client/volume-client.ts';
import { KelpError, NoAnswerError, NotFoundError } from '../../shared/errors.ts';
import type { PolicyVolume } from './policy.ts';

export { VACUUM_TIMEOUT_MS };

/** Bound on every request: a hung server fails the round, it does not stall the service. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Between two polls of a running transfer. */
export const JOB_POLL_MS = 1_000;
/** Failed polls in a row before a transfer is given up on (it may go on; the next round waits for it). */
export const MAX_POLL_FAILURES = 5;

/** A request that failed or was answered with an error: printed as is by the CLI (exit 1). */
export class TierRequestError extends Error {
  /** The HTTP status, when the server answered. */
  readonly status?: number;
  /**
   * The server's error read back from its body (errorFromBody), when it
   * answered with one: callers branch on its class (`instanceof ConflictError`).
   */
  readonly serverError?: KelpError;
  constructor(message: string, status?: number, options?: { cause?: unknown; serverError?: KelpError }) {
    super(message, options);
    this.name = 'TierRequestError';
    if (status !== undefined) this.status = status;
    if (options?.serverError) this.serverError = options.serverError;
  }
}

// ---- shapes of the answers (origin/volume/tier.ts, tier-handler.ts, admin-handler.ts) ----

export type { RemoteDat };

/** One volume of a volume server's `GET /status`. */
export type ServerVolume = VolumeStatusJson;

// ---- requests (shared/client: timeouts, failover over the masters, error bodies) ----

/**
 * Credentials of a request, supplied by whoever runs the client (the cluster
 * signature or an admin key live on origin's side; tiering/ imports no origin code).
 */
export type { AuthHeaders };

const NO_AUTH: AuthHeaders = () => ({});

/** A call of the shared client, its failure as the TierRequestError the callers of this file catch. */
async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
    // No answer at all has no status; an answer's error is kept for callers to branch on its class.
    if (err instanceof NoAnswerError) throw new TierRequestError(err.message, undefined, { cause: err });
    throw new TierRequestError(err.message, err.status, { cause: err, serverError: err });
  }
}

/** setTimeout as a promise that an abort rejects at once. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export interface WaitOptions {
  signal?: AbortSignal;
  pollMs?: number;
  onProgress?: (job: TierJob) => void;
}

export class TierClient {
  /** The first master (base URL). */
  readonly master: string;
  /** Every master given (`a:9333,b:9333`), asked in order: any of them knows the volumes. */
  readonly masters: string[];
  private readonly masterClient: MasterClient;
  private readonly volumeClient: VolumeClient;

  constructor(master: string, auth: AuthHeaders = NO_AUTH) {
    this.masterClient = new MasterClient(master, { timeoutMs: REQUEST_TIMEOUT_MS });
    this.masters = this.masterClient.masters;
    this.master = this.masters[0] ?? master;
    this.volumeClient = new VolumeClient({
      timeoutMs: REQUEST_TIMEOUT_MS,
      sign: signWith(auth),
    });
  }

  /** Every volume the master knows, with the size limit at which volumes seal. */
  async volumes(signal?: AbortSignal): Promise<{ volumeSizeLimit: number; volumes: MasterVolume[] }> {
    return call(() => this.masterClient.volumes(signal ? { signal } : {}));
  }

  /** The alive servers (`host:port`) holding volume `id`; a 404 is an empty list. */
  async locations(volumeId: number, signal?: AbortSignal): Promise<string[]> {
    try {
      const found = await call(() => this.masterClient.lookupVolume(volumeId, signal ? { signal } : {}));
      return found.locations.map((l) => l.url);
    } catch (err) {
      if (err instanceof TierRequestError && err.serverError instanceof NotFoundError) return [];
      throw err;
    }
  }

  async serverVolumes(server: string, signal?: AbortSignal): Promise<ServerVolume[]> {
    return (await call(() => this.volumeClient.status(server, signal))).Volumes;
  }

  async serverTier(server: string, signal?: AbortSignal): Promise<ServerTierStatus> {
    return call(() => this.volumeClient.tierStatus(server, signal));
  }

  async volumeTier(server: string, volumeId: number, signal?: AbortSignal): Promise<VolumeTierStatus> {
    return call(() => this.volumeClient.volumeTierStatus(server, volumeId, signal));
  }

  /** Starts an upload on `server` (202 and the job); a transfer already running there is a 409 TierRequestError. */
  async startUpload(
    server: string,
    volumeId: number,
    backend: string,
    keepLocalDat: boolean,
    signal?: AbortSignal,
  ): Promise<TierJob> {
    return call(() => this.volumeClient.startTierUpload(server, volumeId, backend, keepLocalDat, signal));
  }

  async startDownload(server: string, volumeId: number, signal?: AbortSignal): Promise<TierJob> {
    return call(() => this.volumeClient.startTierDownload(server, volumeId, signal));
  }

  /**
   * Compacts a local volume on `server` (`POST /admin/vacuum`). The answer
   * comes when the compaction is done, so it gets VACUUM_TIMEOUT_MS, not the
   * usual bound.
   */
  async vacuum(
    server: string,
    volumeId: number,
    opts: { garbageThreshold?: number; force?: boolean; signal?: AbortSignal } = {},
  ): Promise<VacuumReport> {
    return call(() => this.volumeClient.vacuum(server, volumeId, opts));
  }

  /** Seals volume `volumeId` on `server` (`POST /admin/readonly`, persisted in its `.vif`). */
  async setReadOnly(server: string, volumeId: number, signal?: AbortSignal): Promise<void> {
    await call(() => this.volumeClient.setReadOnly(server, volumeId, signal));
  }

  /**
   * Polls the transfer of `volumeId` on `server` until it is done or failed,
   * and returns it as it ended. A job that disappears (the server restarted)
   * or a server that stops answering is a TierRequestError: the caller looks
   * again later rather than assume an outcome.
   */
  async waitForJob(server: string, volumeId: number, opts: WaitOptions = {}): Promise<TierJob> {
    let failures = 0;
    for (;;) {
      let status: VolumeTierStatus;
      try {
        status = await this.volumeTier(server, volumeId, opts.signal);
        failures = 0;
      } catch (err) {
        if (!(err instanceof TierRequestError) || ++failures >= MAX_POLL_FAILURES) throw err;
        await sleep(opts.pollMs ?? JOB_POLL_MS, opts.signal);
        continue;
      }
      const job = status.job;
      if (!job) {
        throw new TierRequestError(
          `${server}: volume ${volumeId} has no transfer any more (did the server restart?)`,
        );
      }
      opts.onProgress?.(job);
      if (job.state !== 'running') return job;
      await sleep(opts.pollMs ?? JOB_POLL_MS, opts.signal);
    }
  }
}

// ---- the cluster, put together ----

/** One copy of a volume on one server. */
export interface Replica {
  server: string;
  /** Live from the server, or the master's heartbeat copy when the server did not answer. */
  size: number;
  readOnly: boolean;
  remote?: string;
  readsPerDay: number;
  modifiedAt: number;
  /** The latest transfer of this volume on this server, if any. */
  job?: TierJob;
  /** The server did not answer: the fields above are the master's (a pulse old). */
  unreachable?: boolean;
}

export interface ClusterVolume extends PolicyVolume {
  replicas: Replica[];
}

export interface ClusterSnapshot {
  volumeSizeLimit: number;
  volumes: ClusterVolume[];
  /** Servers that did not answer, with why. */
  unreachable: Map<string, string>;
  /** Transfers running anywhere. */
  running: { server: string; job: TierJob }[];
}

/**
 * The master's volumes, each replica checked with its server: tier state,
 * heat and running transfers. `firstSeen` (volume id → epoch ms) is kept by
 * the caller across rounds, for the age of volumes (policy.ts, minAge).
 */
export async function readCluster(
  client: TierClient,
  opts: { signal?: AbortSignal; firstSeen?: Map<number, number>; now?: number } = {},
): Promise<ClusterSnapshot> {
  const { volumeSizeLimit, volumes } = await client.volumes(opts.signal);
  const servers = [...new Set(volumes.flatMap((v) => v.locations))];
  const unreachable = new Map<string, string>();
  const live = new Map<string, { volumes: Map<number, ServerVolume>; tier: ServerTierStatus }>();
  await Promise.all(
    servers.map(async (server) => {
      try {
        const [vols, tier] = await Promise.all([
          client.serverVolumes(server, opts.signal),
          client.serverTier(server, opts.signal),
        ]);
        live.set(server, { volumes: new Map(vols.map((v) => [v.id, v])), tier });
      } catch (err) {
        if (!(err instanceof TierRequestError)) throw err;
        unreachable.set(server, err.message);
      }
    }),
  );
  const now = opts.now ?? Date.now();
  const out: ClusterVolume[] = [];
  for (const mv of volumes) {
    const replicas: Replica[] = [];
    for (const server of mv.locations) {
      const s = live.get(server);
      const sv = s?.volumes.get(mv.id);
      const job = s?.tier.jobs.find((j) => j.volumeId === mv.id);
      // Not there any more (deleted since the heartbeat): no replica. Not answering: the master's copy.
      if (s && !sv) continue;
      const src = sv ?? mv;
      replicas.push({
        server,
        size: src.size,
        readOnly: src.readOnly,
        ...(src.remote ? { remote: src.remote } : {}),
        readsPerDay: src.readsPerDay ?? 0,
        modifiedAt: src.modifiedAt ?? 0,
        ...(job ? { job } : {}),
        ...(s ? {} : { unreachable: true }),
      });
    }
    if (opts.firstSeen && !opts.firstSeen.has(mv.id)) opts.firstSeen.set(mv.id, now);
    const tiered = replicas.filter((r) => r.remote !== undefined);
    const anyUnreachable = replicas.some((r) => r.unreachable);
    const backendSets = replicas.map((r) => live.get(r.server)?.tier.backends ?? []);
    out.push({
      id: mv.id,
      collection: mv.collection,
      size: Math.max(0, ...replicas.map((r) => r.size)),
      readOnly: replicas.length > 0 ? replicas.every((r) => r.readOnly) : mv.readOnly,
      modifiedAt: Math.max(0, ...replicas.map((r) => r.modifiedAt)),
      // Demand as a whole: what the volume servers served plus what the edge served without them.
      readsPerDay: replicas.reduce((sum, r) => sum + r.readsPerDay, 0) + (mv.edgeReadsPerDay ?? 0),
      originReadsPerDay: replicas.reduce((sum, r) => sum + r.readsPerDay, 0),
      edgeReadsPerDay: mv.edgeReadsPerDay ?? 0,
      ...(tiered.length ? { remote: tiered[0]!.remote } : {}),
      ...(tiered.length > 0 && tiered.length < replicas.length ? { partial: true } : {}),
      ...(opts.firstSeen?.has(mv.id) ? { firstSeenMs: opts.firstSeen.get(mv.id) } : {}),
      ...(anyUnreachable || replicas.length === 0
        ? {}
        : { backends: backendSets.reduce((a, b) => a.filter((x) => b.includes(x))) }),
      replicas,
    });
  }
  const running = [...live].flatMap(([server, s]) =>
    s.tier.jobs.filter((j) => j.state === 'running').map((job) => ({ server, job })),
  );
  return { volumeSizeLimit, volumes: out, unreachable, running };
}
