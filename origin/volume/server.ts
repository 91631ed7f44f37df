/**
 * The volume server: node:http straight to the handlers (no framework on the
 * hot read path), errors turned into responses in one place (respond.ts).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { MethodNotAllowedError } from '../../shared/errors.ts';
import { parseFidPath } from '../../shared/fid.ts';
import type { BackendConfig } from '../../tiering/backends/backend.ts';
import { bufferedRequest, MAX_UPLOAD_BYTES } from '../http/body.ts';
import { DEFAULT_DRAIN_SECONDS, type DrainResult, drainServer } from '../http/drain.ts';
import { Health } from '../http/health.ts';
import { serveInProcess } from '../http/in-process.ts';
import { closeServer, listen } from '../http/listen.ts';
import { splitUrl } from '../http/params.ts';
import { installNativeCrc32c } from '../native-crc.ts';
import { createInstrumentedServer } from '../observability/http-metrics.ts';
import { type Logger, rootLogger } from '../observability/log.ts';
import { ServerMetrics } from '../observability/metrics.ts';
import { VOLUME_READ_ROUTE, VOLUME_ROUTES, volumeRouteOf } from '../observability/routes.ts';
import { VolumeMetrics } from '../observability/volume-metrics.ts';
import { Access } from '../security/access.ts';
import { checkBinding } from '../security/binding.ts';
import { tokenFrom, verifyFileToken } from '../security/jwt.ts';
import { handleAdmin, handleStatus } from './admin-handler.ts';
import type { ReadConfig } from './blob-headers.ts';
import { type EdgePurgeConfig, EdgePurgeEvents, edgePurgers } from './edge-purge.ts';
import { HeartbeatClient } from './heartbeat.ts';
import { sendLeave } from './leave.ts';
import { handleVolumeMove } from './move-handler.ts';
import { handleRead } from './read-handler.ts';
import { REPLICA_BATCH_PATH } from './replica-batch.ts';
import { handleReplicaBatch } from './replica-batch-handler.ts';
import { Replicator } from './replication.ts';
import { Resizer } from './resize.ts';
import { VolumeStatusPage } from './status-page.ts';
import { type DiskLocation, Store } from './store.ts';
import type { FsyncPolicy } from './syncer.ts';
import { BackendRegistry, TierJobs } from './tier.ts';
import { handleTier, handleTierStatus, type TierContext } from './tier-handler.ts';
import { TierPeers } from './tier-share.ts';
import { DEFAULT_VOLUME_SIZE_LIMIT } from './volume.ts';
import { VolumeMoves } from './volume-move.ts';
import { acceptWrite, handleDelete, handleWrite, type WriteConfig } from './write-handler.ts';

export interface VolumeServerConfig {
  host: string;
  port: number;
  locations: DiskLocation[];
  fsync: FsyncPolicy;
  sizeLimitBytes: number;
  maxUploadBytes: number;
  /** Milliseconds since the epoch; tests inject a clock to expire TTLs. */
  now: () => number;
  read: ReadConfig;
  /** Where log lines go (a child per component); the process logger by default. */
  logger?: Logger;
  /** Prometheus metrics at /metrics (kelp_*); off: nothing is counted and /metrics is a 404. */
  metrics: boolean;
  /** Bearer key of /metrics; without one it takes the admin credentials (docs/security.md). */
  metricsKey?: string;
  /** On SIGTERM, how long in-flight requests get to finish before their connections are closed. */
  drainSeconds: number;
  /** Edges told about overwrites, deletes and deleted collections (edge-purge.ts); none by default. */
  edgePurge?: EdgePurgeConfig;
  /** host:port of the master to heartbeat to; none = a standalone server. */
  master?: string;
  dataCenter: string;
  rack: string;
  /** host:port (or URL) clients should use for reads; defaults to the bound address. */
  publicUrl?: string;
  /** HS256 key shared with the master: writes and deletes then need its token. */
  signingKey?: string;
  /** HS256 key for read tokens: with one, GET/HEAD of a blob needs the master's read token (401 otherwise). */
  readSigningKey?: string;
  /** HMAC key of cluster members: replica traffic and heartbeats are signed with it (docs/security.md). */
  clusterKey?: string;
  /** The key being rotated out: still accepted, never used to sign. */
  previousClusterKey?: string;
  /** Bearer key of admin calls (/admin/*); a cluster signature passes too. */
  adminKey?: string;
  /** Run on a non-loopback address without credentials (refused otherwise). */
  insecure?: boolean;
  /** Seconds between heartbeats (the master's reply may change it). */
  pulseSeconds: number;
  /** Cloud tiers this server may move sealed volumes to; `local.default` (a folder beside the data) is always there. */
  backends: BackendConfig[];
  /**
   * Callers in this process (the master of `kelp server`) reach this server
   * without a socket (http/in-process.ts); off by default.
   */
  inProcess?: boolean;
}

export const VOLUME_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  fsync: 'batch' as FsyncPolicy,
  sizeLimitBytes: DEFAULT_VOLUME_SIZE_LIMIT,
  maxUploadBytes: MAX_UPLOAD_BYTES,
  now: Date.now,
  read: {},
  metrics: true,
  drainSeconds: DEFAULT_DRAIN_SECONDS,
  dataCenter: 'DefaultDataCenter',
  rack: 'DefaultRack',
  pulseSeconds: 5,
  backends: [] as BackendConfig[],
};

export interface VolumeServer {
  server: Server;
  store: Store;
  /** Purge events to the edge, when configured. */
  edgePurge?: EdgePurgeEvents;
  /** The bound address, e.g. 127.0.0.1:8080. */
  address: string;
  /** Readiness (/readyz): volumes loaded, master reachable. */
  health: Health;
  /** Stops at once: connections closed, volumes synced and closed (marked clean). */
  close(): Promise<void>;
  /**
   * The SIGTERM path: readiness fails, the master is told this server is
   * leaving, new connections are refused, requests in flight get `drainMs`
   * (default: the drainSeconds setting) to finish, then transfers are stopped
   * and the volumes synced, marked clean and closed.
   */
  shutdown(drainMs?: number): Promise<DrainResult>;
}

function route(
  store: Store,
  config: VolumeServerConfig,
  write: WriteConfig,
  tier: TierContext,
  access: Access,
  moves: VolumeMoves,
  page: VolumeStatusPage,
) {
  // Not async: a small local read completes synchronously and makes no promise.
  return (req: IncomingMessage, res: ServerResponse): void | Promise<void> => {
    const { pathname, query } = splitUrl(req.url ?? '/');
    switch (req.method) {
      case 'GET':
      case 'HEAD':
        if (pathname === '/status') return handleStatus(res, store);
        if (pathname === '/admin/tier/status') return handleTierStatus(res, store, tier, query);
        if (pathname.startsWith('/ui/')) return page.handle(res, pathname);
        if (pathname.startsWith('/admin/volume/')) {
          access.requireAdmin(req, req.url ?? '/');
          return handleVolumeMove(req, res, moves, pathname, query);
        }
        if (config.readSigningKey) {
          return authorizeRead(req, pathname, query, config.readSigningKey).then(() =>
            handleRead(req, res, store, pathname, query, config.read),
          );
        }
        return handleRead(req, res, store, pathname, query, config.read);
      case 'POST':
      case 'PUT':
        if (pathname.startsWith('/admin/')) {
          access.requireAdmin(req, req.url ?? '/');
          if (pathname.startsWith('/admin/tier/')) return handleTier(req, res, store, tier, pathname, query);
          if (pathname.startsWith('/admin/volume/'))
            return handleVolumeMove(req, res, moves, pathname, query);
          return handleAdmin(req, res, store, pathname, query, write.edgePurge);
        }
        if (pathname === REPLICA_BATCH_PATH) return handleReplicaBatch(req, res, store, query, write);
        return handleWrite(req, res, store, pathname, query, write);
      case 'DELETE':
        return handleDelete(req, res, store, pathname, query, write);
      default:
        throw new MethodNotAllowedError(`method ${req.method} is not supported`);
    }
  };
}

/** Read tokens, when configured: the same HS256 `{fid, exp}` tokens as writes, signed with the read key. */
async function authorizeRead(
  req: IncomingMessage,
  pathname: string,
  query: URLSearchParams | null,
  key: string,
): Promise<void> {
  const { fid } = parseFidPath(pathname);
  await verifyFileToken(key, tokenFrom(req, query), fid);
}

export async function startVolumeServer(
  partial: Partial<VolumeServerConfig> & { locations: DiskLocation[] },
) {
  const config: VolumeServerConfig = { ...VOLUME_SERVER_DEFAULTS, ...partial };
  // Every needle write and read computes a CRC-32C: native from here on (decision 0002).
  installNativeCrc32c();
  const log = (config.logger ?? rootLogger()).child({ component: 'volume' });
  const metrics = config.metrics ? new ServerMetrics() : undefined;
  const volumeMetrics = metrics ? new VolumeMetrics(metrics) : undefined;
  const missing = [
    ...(config.clusterKey ? [] : ['KELP_CLUSTER_KEY']),
    ...(config.signingKey ? [] : ['KELP_JWT_SIGNING_KEY']),
  ];
  const warning = checkBinding('volume server', config.host, missing, config.insecure === true);
  if (warning) log.warn(warning);
  const access = new Access(config);
  // Image variants are on by default (sharp, bounded queue); a test or a config may pass its own resizer.
  config.read = { ...config.read, resizer: config.read.resizer ?? new Resizer() };
  let heartbeat: HeartbeatClient | undefined;
  const backends = await BackendRegistry.create(
    config.backends,
    config.locations[0]!.dir,
    log.child({ component: 'tier' }),
    volumeMetrics?.countBackendErrors,
  );
  const store = Store.open(
    { ...config, backends, onChange: () => heartbeat?.beatNow(), onSync: volumeMetrics?.onSync },
    log.child({ component: 'store' }),
  );
  const tier: TierContext = {
    backends,
    jobs: new TierJobs(volumeMetrics?.onTierJob),
    // Replicas share one tier object (tier-share.ts); `write` is set just below, the replicator later.
    peers: new TierPeers(() => write.replicator, config.clusterKey),
    log: log.child({ component: 'tier' }),
  };
  const replicationLog = log.child({ component: 'replication' });
  const purgers = edgePurgers(config.edgePurge);
  const write: WriteConfig = {
    maxUploadBytes: config.maxUploadBytes,
    now: config.now,
    signingKey: config.signingKey,
    clusterKey: config.clusterKey,
    clusterKeys: access.clusterKeys,
    replicationLog,
    replicator: new Replicator(
      config.master,
      [],
      replicationLog,
      config.clusterKey,
      volumeMetrics?.onReplication,
      volumeMetrics?.onReplicaBatch,
    ),
    ...(purgers.length
      ? { edgePurge: new EdgePurgeEvents(purgers, log.child({ component: 'edge-purge' })) }
      : {}),
  };
  const moves = new VolumeMoves(store, { clusterKey: config.clusterKey, adminKey: config.adminKey });
  const page = new VolumeStatusPage(store, tier, config);
  const health = new Health().add('volumes', () => ({ ok: true, detail: `${store.all().length} loaded` }));
  const server = createInstrumentedServer(route(store, config, write, tier, access, moves, page), {
    routes: VOLUME_ROUTES,
    routeOf: volumeRouteOf,
    echoesRequestId: VOLUME_READ_ROUTE,
    health,
    access,
    metrics,
    log,
    // The status page lists the last 5xx answers (by method and path only).
    onError: (req, err) => page.errors.note(req, err),
  });
  const address = await listen(server, config.host, config.port);
  const port = address.slice(address.lastIndexOf(':') + 1);
  const url = config.host === '0.0.0.0' || config.host === '::' ? `127.0.0.1:${port}` : address;
  const publicUrl = config.publicUrl ?? url;
  // Under the address the master knows this server by (the one heartbeats give); uploads already
  // read whole (the master's small /submit bodies) are taken as calls to the same write path.
  const unlink = config.inProcess
    ? serveInProcess(url, server, (u) =>
        acceptWrite(bufferedRequest(u.body, u.headers), store, u.pathname, u.query, write, u.requestId),
      )
    : undefined;
  write.replicator = new Replicator(
    config.master,
    [url, publicUrl, address],
    replicationLog,
    config.clusterKey,
    volumeMetrics?.onReplication,
    volumeMetrics?.onReplicaBatch,
  );
  if (config.master) {
    heartbeat = new HeartbeatClient({
      master: config.master,
      store,
      url,
      publicUrl,
      dataCenter: config.dataCenter,
      rack: config.rack,
      pulseSeconds: config.pulseSeconds,
      clusterKey: config.clusterKey,
      log: log.child({ component: 'heartbeat' }),
    });
    heartbeat.start();
  }
  const beats = heartbeat;
  health.add('master', () =>
    beats
      ? {
          ok: beats.connected,
          detail: beats.connected ? `joined ${config.master}` : `cannot reach ${config.master}`,
        }
      : { ok: true, detail: 'standalone (no master)' },
  );
  volumeMetrics?.attach({
    store,
    backends,
    jobs: tier.jobs,
    resizer: config.read.resizer,
    masterConnected: beats ? () => beats.connected : undefined,
  });
  const closeRest = async () => {
    await write.edgePurge?.close();
    await tier.jobs.close();
    await store.close();
    await backends.close();
  };
  let closing: Promise<unknown> | undefined;
  const volumeServer: VolumeServer = {
    server,
    store,
    ...(write.edgePurge ? { edgePurge: write.edgePurge } : {}),
    address,
    health,
    close() {
      closing ??= (async () => {
        health.markStopping();
        await unlink?.();
        await heartbeat?.stop();
        await closeServer(server);
        await closeRest();
      })();
      return closing.then(() => {});
    },
    shutdown(drainMs = config.drainSeconds * 1000) {
      const run = async (): Promise<DrainResult> => {
        health.markStopping();
        log.info(`shutting down: draining requests for up to ${Math.round(drainMs / 1000)} s`);
        await heartbeat?.stop();
        if (config.master)
          await sendLeave({ master: config.master, url, clusterKey: config.clusterKey, log });
        // In-memory callers drain like socket ones: no new calls, those in flight get drainMs.
        const [, drained] = await Promise.all([unlink?.(drainMs), drainServer(server, drainMs)]);
        if (drained.forced)
          log.warn(`${drained.forced} connections were still busy after the drain deadline: closed`);
        await closeRest();
        log.info(`stopped: volumes synced and closed cleanly (${store.all().length})`);
        return drained;
      };
      if (closing) return closing.then(() => ({ forced: 0, elapsedMs: 0 }));
      const p = run();
      closing = p;
      return p;
    },
  };
  return volumeServer;
}
