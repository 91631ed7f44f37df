/**
 * The volume server: node:http straight to the handlers (no framework on the
 * hot read path), errors turned into responses in one place (respond.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { MethodNotAllowedError } from '../../shared/errors.ts';
import { parseFidPath } from '../../shared/fid.ts';
import type { BackendConfig } from '../../tiering/backend.ts';
import { MAX_UPLOAD_BYTES } from '../http/body.ts';
import { closeServer, listen } from '../http/listen.ts';
import { sendError } from '../http/respond.ts';
import { Access } from '../security/access.ts';
import { checkBinding } from '../security/binding.ts';
import { tokenFrom, verifyFileToken } from '../security/jwt.ts';
import { handleAdmin, handleStatus } from './admin-handler.ts';
import { type EdgePurgeConfig, EdgePurgeEvents, edgePurgers } from './edge-purge.ts';
import { HeartbeatClient } from './heartbeat.ts';
import { handleVolumeMove } from './move-handler.ts';
import { splitUrl } from './params.ts';
import { handleRead, type ReadConfig } from './read-handler.ts';
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
import { handleDelete, handleWrite, type WriteConfig } from './write-handler.ts';

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
  log: (line: string) => void;
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
  /** Edges told about overwrites, deletes and deleted collections (edge-purge.ts); none by default. */
  edgePurge?: EdgePurgeConfig;
}

export const VOLUME_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  fsync: 'batch' as FsyncPolicy,
  sizeLimitBytes: DEFAULT_VOLUME_SIZE_LIMIT,
  maxUploadBytes: MAX_UPLOAD_BYTES,
  now: Date.now,
  read: {},
  log: (line: string) => console.log(line),
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
  close(): Promise<void>;
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
  const missing = [
    ...(config.clusterKey ? [] : ['KELP_CLUSTER_KEY']),
    ...(config.signingKey ? [] : ['KELP_JWT_SIGNING_KEY']),
  ];
  const warning = checkBinding('volume server', config.host, missing, config.insecure === true);
  if (warning) config.log(warning);
  const access = new Access(config);
  // Image variants are on by default (sharp, bounded queue); a test or a config may pass its own resizer.
  config.read = { ...config.read, resizer: config.read.resizer ?? new Resizer() };
  let heartbeat: HeartbeatClient | undefined;
  const backends = await BackendRegistry.create(config.backends, config.locations[0]!.dir, config.log);
  const store = Store.open({ ...config, backends, onChange: () => heartbeat?.beatNow() }, config.log);
  const tier: TierContext = {
    backends,
    jobs: new TierJobs(),
    // Replicas share one tier object (tier-share.ts); `write` is set just below, the replicator later.
    peers: new TierPeers(() => write.replicator, config.clusterKey),
    log: config.log,
  };
  const purgers = edgePurgers(config.edgePurge);
  const write: WriteConfig = {
    maxUploadBytes: config.maxUploadBytes,
    now: config.now,
    signingKey: config.signingKey,
    clusterKey: config.clusterKey,
    clusterKeys: access.clusterKeys,
    replicator: new Replicator(config.master, [], config.log, config.clusterKey),
    ...(purgers.length ? { edgePurge: new EdgePurgeEvents(purgers, config.log) } : {}),
  };
  const moves = new VolumeMoves(store, { clusterKey: config.clusterKey, adminKey: config.adminKey });
  const page = new VolumeStatusPage(store, tier, config);
  const handle = route(store, config, write, tier, access, moves, page);
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    page.errors.note(req, err);
    sendError(res, err);
  };
  const server = createServer((req, res) => {
    let pending: void | Promise<void>;
    try {
      pending = handle(req, res);
    } catch (err) {
      fail(req, res, err);
      return;
    }
    if (pending) pending.catch((err: unknown) => fail(req, res, err));
  });
  const address = await listen(server, config.host, config.port);
  const port = address.slice(address.lastIndexOf(':') + 1);
  const url = config.host === '0.0.0.0' || config.host === '::' ? `127.0.0.1:${port}` : address;
  const publicUrl = config.publicUrl ?? url;
  write.replicator = new Replicator(config.master, [url, publicUrl, address], config.log, config.clusterKey);
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
      log: config.log,
    });
    heartbeat.start();
  }
  const volumeServer: VolumeServer = {
    server,
    store,
    ...(write.edgePurge ? { edgePurge: write.edgePurge } : {}),
    address,
    async close() {
      await heartbeat?.stop();
      await closeServer(server);
      await write.edgePurge?.close();
      await tier.jobs.close();
      await store.close();
      await backends.close();
    },
  };
  return volumeServer;
}
