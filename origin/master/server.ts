/**
 * The master: assigns file ids, knows which volume servers hold which volume
 * (from their heartbeats), grows volumes, and answers lookups (docs/format.md §7).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { HeartbeatResponse, LookupResponse, SubmitResponse } from '../../shared/api.ts';
import { VolumeClient } from '../../shared/client/volume-client.ts';
import { parseCollection } from '../../shared/collection.ts';
import {
  BadRequestError,
  clientFaultOf,
  httpStatusOf,
  InvalidFidError,
  KelpError,
  MethodNotAllowedError,
  NotFoundError,
  UnavailableError,
  UpstreamError,
  VolumeDeletedError,
} from '../../shared/errors.ts';
import { parseFid, parseFidPath, parseVolumeId } from '../../shared/fid.ts';
import { formatPlacement, parsePlacement } from '../../shared/placement.ts';
import { formatTtl, parseTtl } from '../../shared/ttl.ts';
import { clusterViewOf } from '../admin/cluster.ts';
import { ADMIN_PATHS, AdminEndpoints, masterAuth } from '../admin/endpoints.ts';
import { VacuumSchedule } from '../admin/vacuum-schedule.ts';
import { declaredLength, readBody } from '../http/body.ts';
import { type FileBody, type PeerResponse, peerRequest } from '../http/client.ts';
import { type DrainResult, drainServer } from '../http/drain.ts';
import { Health } from '../http/health.ts';
import { type InProcessUpload, type InProcessUploads, inProcessUploads } from '../http/in-process.ts';
import { closeServer, listen } from '../http/listen.ts';
import { splitUrl } from '../http/params.ts';
import { sendJson } from '../http/respond.ts';
import {
  clearSpoolDir,
  MULTIPART_OVERHEAD_BYTES,
  parseUpload,
  releaseUpload,
  SPOOL_THRESHOLD_BYTES,
  spoolDir,
  type Upload,
  type UploadAnswer,
  type UploadDescription,
  uploadHeaders,
  uploadSize,
} from '../http/upload.ts';
import { installNativeCrc32c } from '../native-crc.ts';
import { createInstrumentedServer } from '../observability/http-metrics.ts';
import { type Logger, rootLogger } from '../observability/log.ts';
import { observeTopology } from '../observability/master-metrics.ts';
import { ServerMetrics } from '../observability/metrics.ts';
import { requestIdHeader, requestIdOf } from '../observability/request-id.ts';
import { MASTER_ROUTES, masterRouteOf } from '../observability/routes.ts';
import { Access } from '../security/access.ts';
import { checkBinding } from '../security/binding.ts';
import { assertBody, sha256Hex, verifyClusterRequest, withClusterAuth } from '../security/cluster-auth.ts';
import { signFileToken } from '../security/jwt.ts';
import { KELP_VERSION_STRING } from '../version.ts';
import { type AssignContext, assertDiskType, assign, parseAssignRequest, parseNodeFilter } from './assign.ts';
import { MASTER_DEFAULTS } from './defaults.ts';
import { DeletedVolumes } from './deleted-volumes.ts';
import { EDGE_HEAT_PATH, EdgeHeat } from './edge-heat.ts';
import { EdgeHeatStore } from './edge-heat-store.ts';
import { EtcdLeadership, type Leadership, SoloLeadership } from './election.ts';
import { etcdClient } from './etcd-client.ts';
import { EtcdStateStore } from './etcd-state-store.ts';
import { type AllocateVolume, allocateOverHttp, VolumeGrowth } from './growth.ts';
import { MAX_HEARTBEAT_BYTES, parseHeartbeat } from './heartbeat-schema.ts';
import { LeaderProxy } from './leader-proxy.ts';
import { handleLeave, LEAVE_PATH } from './leave.ts';
import { assertMasterParams, PLACEMENT_PARAMS } from './params.ts';
import { Sequencer } from './sequencer.ts';
import { FileStateStore, loadWithin, type MasterStateStore } from './state-store.ts';
import { MasterStatusPage } from './status-page.ts';
import { StickyPicks } from './sticky-picks.ts';
import { Topology } from './topology.ts';

export interface MasterConfig {
  host: string;
  port: number;
  /** Directory of the master's durable state (sequencer, volume ids). */
  mdir: string;
  /** URL others reach this master at (defaults to host:port). */
  advertise?: string;
  pulseSeconds: number;
  volumeSizeLimitBytes: number;
  defaultReplication: string;
  /** HS256 key for write tokens; without one the cluster is open. */
  signingKey?: string;
  /** HS256 key for read tokens (SeaweedFS's `[jwt.signing.read]`); without one reads are open. */
  readSigningKey?: string;
  /** HMAC key of cluster members: heartbeats must be signed with it (docs/security.md). */
  clusterKey?: string;
  /** The key being rotated out: still accepted, never used to sign. */
  previousClusterKey?: string;
  /** Bearer key of admin calls (/vol/grow, /col/delete); a cluster signature passes too. */
  adminKey?: string;
  /** Bearer keys of clients of the write API (assign, /submit, lookup tokens). */
  clientKeys?: string[];
  /** Bearer keys the edge presents to report its read heat (`POST /edge/heat`, that endpoint only). */
  edgeHeatKeys?: string[];
  /** CIDRs whose callers count as clients without a key (SeaweedFS's `white_list`). */
  whiteList?: string[];
  /** Run on a non-loopback address without credentials (refused otherwise). */
  insecure?: boolean;
  maxUploadBytes: number;
  /** etcd members (host:port): several masters share the state and elect a leader there. */
  etcd?: string[];
  /** Prefix of this cluster's keys in etcd (several Kelp clusters may share one etcd). */
  etcdPrefix: string;
  /** TTL of the leader's etcd lease: how long a killed leader leads on paper. */
  leaseSeconds: number;
  /** How often the master vacuums the cluster by itself (docs/admin.md); 0 = never. */
  vacuumIntervalMs: number;
  /** Garbage ratio at which the scheduled vacuum compacts a volume. */
  garbageThreshold: number;
  /** How often the leader saves the edge heat in the state store (followers load it); 0 = never. */
  edgeHeatPersistMs: number;
  now: () => number;
  stateStore?: MasterStateStore;
  allocate?: AllocateVolume;
  /** Where log lines go (a child per component); the process logger by default. */
  logger?: Logger;
  /** Prometheus metrics at /metrics (kelp_*); off: nothing is counted and /metrics is a 404. */
  metrics: boolean;
  /** Bearer key of /metrics; without one it takes the admin credentials (docs/security.md). */
  metricsKey?: string;
  /** On SIGTERM, how long in-flight requests get to finish before their connections are closed. */
  drainSeconds: number;
}

/** Most volume servers one master tracks: a bound on what heartbeats can make it hold. */
export const MAX_NODES = 10_000;
/** How long /cluster/status waits for the state store (etcd) before it answers from heartbeats. */
const STATUS_STATE_TIMEOUT_MS = 500;
/** A volume server that has not deleted a collection's volumes in this long fails the `/col/delete`. */
const DELETE_COLLECTION_TIMEOUT_MS = 60_000;
/** Pulses after which a dead node is forgotten (it is out of lookups after 3). */
export const FORGET_AFTER_PULSES = 12;

/** Re-exported: the defaults live apart so config.ts can read them without loading the master. */
export { MASTER_DEFAULTS };

export interface MasterServer {
  server: Server;
  /** The master's own vacuum runs (`runOnce` for tests and for `kelp admin`'s schedule check). */
  vacuumSchedule: VacuumSchedule;
  topology: Topology;
  sequencer: Sequencer;
  /** Whether this master leads (always, without etcd), who does, and its peers. */
  leadership: Leadership;
  address: string;
  /** Readiness (/readyz): topology loaded, leader known; other code may add checks. */
  health: Health;
  /** Stops at once. */
  close(): Promise<void>;
  /** The SIGTERM path: readiness fails, new connections are refused, requests in flight get `drainMs` to finish. */
  shutdown(drainMs?: number): Promise<DrainResult>;
}

function param(q: URLSearchParams | null, name: string): string | null {
  return q?.get(name) ?? null;
}

export async function startMaster(partial: Partial<MasterConfig> = {}): Promise<MasterServer> {
  // `/submit` hashes the uploads it spools (http/upload.ts): native from here on (decision 0002).
  installNativeCrc32c();
  const config: MasterConfig = { ...MASTER_DEFAULTS, ...partial };
  const log = (config.logger ?? rootLogger()).child({ component: 'master' });
  const startedAt = config.now();
  /** Heartbeat deltas name it: a restarted master (a new session) is sent full lists again. */
  const session = randomUUID();
  const access = new Access(config);
  const missing = [
    ...(config.clusterKey ? [] : ['KELP_CLUSTER_KEY']),
    ...(config.signingKey ? [] : ['KELP_JWT_SIGNING_KEY']),
    ...(config.clientKeys?.length || config.whiteList?.length ? [] : ['KELP_CLIENT_KEYS or --whiteList']),
  ];
  const warning = checkBinding('master', config.host, missing, config.insecure === true);
  if (warning) log.warn(warning);
  // Several masters: leadership and state in etcd (docs/decisions/0008-several-masters.md).
  const etcd = config.etcd?.length ? etcdClient(config.etcd) : undefined;
  const elected = etcd
    ? new EtcdLeadership({
        client: etcd,
        prefix: config.etcdPrefix,
        leaseSeconds: config.leaseSeconds,
        log: log.child({ component: 'election' }),
      })
    : undefined;
  const leadership: Leadership = elected ?? new SoloLeadership();
  const state =
    config.stateStore ??
    (etcd && elected
      ? new EtcdStateStore(etcd, config.etcdPrefix, elected)
      : new FileStateStore(config.mdir));
  // /submit's spool files left by a crash.
  clearSpoolDir(config.mdir);
  const topology = new Topology({
    pulseSeconds: config.pulseSeconds,
    volumeSizeLimit: config.volumeSizeLimitBytes,
    now: config.now,
  });
  const sequencer = await Sequencer.open(state, { guard: () => leadership.assertLeader() }).catch(
    (err: unknown) => {
      etcd?.close();
      throw err;
    },
  );
  const deleted = await DeletedVolumes.open(state).catch((err: unknown) => {
    etcd?.close();
    throw err;
  });
  // A new term reserves its own key ranges.
  leadership.onChange(() => sequencer.drop());
  const proxy = new LeaderProxy({
    leadership,
    access,
    clusterKey: config.clusterKey,
    signingKey: config.signingKey,
    readSigningKey: config.readSigningKey,
  });
  const growth = new VolumeGrowth(topology, state, config.allocate ?? allocateOverHttp(config.clusterKey));
  const ctx: AssignContext = {
    topology,
    sequencer,
    growth,
    signingKey: config.signingKey,
    defaultReplication: config.defaultReplication,
    picks: new StickyPicks(config.now),
  };
  let self = '';
  const admin = new AdminEndpoints(topology, access, masterAuth(config));
  const vacuumSchedule = new VacuumSchedule({
    intervalMs: config.vacuumIntervalMs,
    garbageThreshold: config.garbageThreshold,
    view: () => clusterViewOf(topology),
    client: admin.client,
    log: log.child({ component: 'vacuum' }),
    leading: () => leadership.isLeader(),
  });
  const edgeHeat = new EdgeHeat(config.edgeHeatKeys, config.now);
  const edgeHeatStore = new EdgeHeatStore({
    heat: edgeHeat,
    store: state,
    leadership,
    intervalMs: config.edgeHeatPersistMs,
    log: log.child({ component: 'edge-heat' }),
  });
  const statusPage = new MasterStatusPage(topology, () => self, vacuumSchedule, edgeHeat);

  /**
   * A token for a looked-up fid goes only to a client that proved who it is
   * (a key, a listed network, a signature) and only for a key this master has
   * assigned: otherwise the lookup is a token vending machine.
   */
  const lookupToken = async (
    req: IncomingMessage,
    fileId: string,
    read: boolean,
  ): Promise<string | undefined> => {
    const key = read ? config.readSigningKey : config.signingKey;
    if (!key || !access.isAuthenticatedClient(req, req.url ?? '/')) return undefined;
    const fid = parseFid(fileId);
    if (fid.key - fid.delta >= sequencer.peek()) throw new NotFoundError('not found');
    return signFileToken(key, fileId, { count: Number(fid.delta) + 1 });
  };

  /** The volume id a lookup asks about (a file id is checked whole: its key and cookie too). */
  const lookedUp = (q: URLSearchParams | null): { raw: string; volumeId: number } => {
    const raw = param(q, 'volumeId') ?? param(q, 'fileId');
    if (!raw) throw new BadRequestError('lookup needs volumeId or fileId');
    const comma = raw.indexOf(',');
    return { raw, volumeId: comma < 0 ? parseVolumeId(raw) : parseFid(raw).volumeId };
  };

  /** Where the volume is; undefined when no live server holds it (notHeld says why). Synchronous: the hot path. */
  const lookup = (q: URLSearchParams | null): LookupResponse | undefined => {
    const { raw, volumeId } = lookedUp(q);
    const collection = param(q, 'collection');
    const locations = topology.locations(volumeId);
    if (locations.length === 0) return undefined;
    if (collection !== null && topology.volume(volumeId)?.collection !== collection) {
      throw new NotFoundError(`volume ${volumeId} not found`);
    }
    const tier = topology.tierLocation(volumeId);
    return { volumeOrFileId: raw, volumeId: raw, locations, ...(tier ? { tier } : {}) };
  };

  /**
   * A volume no live server holds: deleted at a master's order says so (410), so that a cache tells the
   * delete from an outage (deleted-volumes.ts); any other is "not found" (404), which may be either.
   */
  const notHeld = async (q: URLSearchParams | null): Promise<never> => {
    const { volumeId } = lookedUp(q);
    if (await deleted.has(volumeId)) throw new VolumeDeletedError(`volume ${volumeId} was deleted`);
    throw new NotFoundError(`volume ${volumeId} not found`);
  };

  const heartbeat = async (req: IncomingMessage): Promise<HeartbeatResponse> => {
    // Signature first: an outsider's body is not even read.
    const signed = config.clusterKey
      ? verifyClusterRequest(access.clusterKeys, 'POST', req.url ?? '/heartbeat', req.headers)
      : undefined;
    const bytes = await readBody(req, MAX_HEARTBEAT_BYTES);
    if (signed) assertBody(signed, sha256Hex(bytes));
    const hb = parseHeartbeat(bytes.toString());
    const known = topology.nodes.get(hb.url);
    const reply: HeartbeatResponse = {
      volumeSizeLimit: config.volumeSizeLimitBytes,
      pulseSeconds: config.pulseSeconds,
      leader: leadership.leader() ?? '',
      session,
    };
    // A delta is applied only on the state it was made against: this master's, with the node known.
    if (hb.deltaOf !== undefined && (hb.deltaOf !== session || !known)) {
      return { ...reply, fullListWanted: true };
    }
    if (!known && topology.nodes.size >= MAX_NODES) {
      throw new UnavailableError(
        `this master tracks ${MAX_NODES} volume servers already`,
        config.pulseSeconds,
      );
    }
    const joining = !known || !topology.isAlive(known);
    topology.heartbeat(hb);
    if (!sequencer.observe(BigInt(hb.maxFileKey))) {
      log.warn(
        { url: hb.url, maxFileKey: hb.maxFileKey },
        `ignored maxFileKey ${hb.maxFileKey} from ${hb.url}: beyond the key space or far past any key this master assigned`,
      );
    }
    if (joining)
      log.info(
        { url: hb.url },
        `volume server ${hb.url} ${known ? 'rejoined' : 'joined'} (${hb.dataCenter}/${hb.rack}, ${hb.volumes.length} volumes)`,
      );
    return reply;
  };

  const submit = async (req: IncomingMessage, q: URLSearchParams | null): Promise<SubmitResponse> => {
    access.requireClient(req, req.url ?? '/');
    const declared = declaredLength(req);
    // A small body of known length passes through unparsed: the volume server parses it
    // anyway, and parsing it here too (multipart, then a rebuilt request) cost more than
    // the write itself. Within the limit as a whole, its file part is within it too
    // (and the volume server applies its own limit to the part).
    if (declared !== undefined && declared <= PASS_THROUGH_MAX_BYTES && declared <= config.maxUploadBytes) {
      const raw = await readBody(req, config.maxUploadBytes);
      return forward(
        req,
        { body: raw, headers: uploadHeaders(req), described: () => describeRaw(req, raw) },
        q,
      );
    }
    // Large bodies spool under the master's directory and stream on to the volume server.
    const upload = await parseUpload(req, '', config.maxUploadBytes, spoolDir(config.mdir));
    try {
      return await forward(req, rebuilt(upload), q);
    } finally {
      releaseUpload(upload);
    }
  };

  /** Name and size of a passed-through body, parsed only when the volume server's answer lacks them. */
  const describeRaw = async (req: IncomingMessage, raw: Buffer): Promise<Described> => {
    const source = Object.assign(Readable.from([raw]), { headers: req.headers });
    const upload = await parseUpload(
      source as unknown as IncomingMessage,
      '',
      config.maxUploadBytes,
      spoolDir(config.mdir),
    );
    try {
      return { name: upload.name, size: uploadSize(upload) };
    } finally {
      releaseUpload(upload);
    }
  };

  const forward = async (
    req: IncomingMessage,
    out: Outgoing,
    q: URLSearchParams | null,
  ): Promise<SubmitResponse> => {
    const requestId = requestIdOf(req);
    const request = parseAssignRequest(q ?? new URLSearchParams(), config.defaultReplication);
    // Not the leader: the leader assigns, this master stores.
    const assigned = leadership.isLeader()
      ? await assign(ctx, request)
      : await proxy.assign(req, assignQuery(q));
    const headers: Record<string, string> = { ...out.headers, ...requestIdHeader(requestId) };
    if (assigned.auth) headers.authorization = `Bearer ${assigned.auth}`;
    const ttl = param(q, 'ttl');
    // `kelp server`: an upload held in memory is handed to this process's own volume server as a
    // call (http/in-process.ts); any other goes over HTTP.
    const inMemory = Buffer.isBuffer(out.body) ? out.body : undefined;
    const local = inMemory && inProcessUploads(assigned.url);
    const stored = local
      ? await handOver(local, assigned.url, {
          pathname: `/${assigned.fid}`,
          query: ttl ? new URLSearchParams({ ttl }) : null,
          headers: { ...headers, 'content-length': String(inMemory.length) },
          body: inMemory,
          requestId,
        })
      : await putOverHttp(
          `http://${assigned.url}/${assigned.fid}${ttl ? `?ttl=${encodeURIComponent(ttl)}` : ''}`,
          assigned.url,
          headers,
          out,
        );
    if (stored.status === 204) {
      const { name, size } = await out.described();
      return {
        fileName: name,
        fid: assigned.fid,
        fileUrl: `${assigned.publicUrl}/${assigned.fid}`,
        size,
        eTag: stored.eTag.replaceAll('"', ''),
      };
    }
    const body = stored.body;
    return {
      fileName: body.name,
      fid: assigned.fid,
      fileUrl: `${assigned.publicUrl}/${assigned.fid}`,
      size: body.size,
      eTag: body.eTag,
    };
  };

  /** Volume servers' admin endpoints, signed as a cluster member. */
  const volumeAdmin = new VolumeClient({
    sign: (method, url, headers, body) => withClusterAuth(config.clusterKey, method, url, headers, body),
  });
  const deleteCollection = async (q: URLSearchParams | null, requestId?: string): Promise<void> => {
    const collection = parseCollection(param(q, 'collection'));
    if (!collection) throw new BadRequestError('collection is required');
    // Recorded first, every copy the master knows of (a dead server's too): a delete that fails half way
    // leaves ids recorded whose volumes live on, harmless while they do (deleted-volumes.ts); the other
    // order would lose the record of volumes gone for good. A store that cannot record fails the call
    // before anything is deleted.
    const ids = new Set<number>();
    for (const n of topology.nodes.values())
      for (const v of n.volumes.values()) if (v.collection === collection) ids.add(v.id);
    await deleted.record([...ids]);
    const holders = topology
      .aliveNodes()
      .filter((n) => [...n.volumes.values()].some((v) => v.collection === collection));
    await Promise.all(
      holders.map(async (n) => {
        try {
          await volumeAdmin.json(
            n.url,
            `/admin/delete_collection?collection=${encodeURIComponent(collection)}`,
            {
              method: 'POST',
              headers: requestIdHeader(requestId),
              timeoutMs: DELETE_COLLECTION_TIMEOUT_MS,
            },
          );
        } catch (err) {
          if (!(err instanceof KelpError)) throw err;
          throw new UpstreamError(`${n.url} could not delete collection ${collection}: ${err.message}`, {
            cause: err,
          });
        }
        for (const [id, v] of n.volumes) if (v.collection === collection) topology.removeVolume(n.url, id);
      }),
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { pathname, query } = splitUrl(req.url ?? '/');
    assertMasterParams(pathname, query);
    const q = query ?? new URLSearchParams();
    if (await proxy.route(req, res, pathname, q)) return;
    switch (pathname) {
      case '/dir/assign': {
        access.requireClient(req, req.url ?? '/');
        const out = await assign(ctx, parseAssignRequest(q, config.defaultReplication));
        return sendJson(res, 200, out, out.auth ? { Authorization: `Bearer ${out.auth}` } : {});
      }
      case '/dir/lookup': {
        const out = lookup(query) ?? (await notHeld(query));
        const fileId = param(query, 'fileId');
        // `read=yes` asks for a read token instead of a write token (docs/format.md §7).
        const token = fileId ? await lookupToken(req, fileId, param(query, 'read') === 'yes') : undefined;
        return sendJson(res, 200, out, token ? { Authorization: `Bearer ${token}` } : {});
      }
      case '/heartbeat':
        if (req.method !== 'POST') throw new MethodNotAllowedError('heartbeats are POSTed');
        return sendJson(res, 200, await heartbeat(req));
      case LEAVE_PATH:
        if (req.method !== 'POST') throw new MethodNotAllowedError('a leave is POSTed');
        return sendJson(res, 200, await handleLeave(req, { topology, clusterKeys: access.clusterKeys, log }));
      case '/submit':
        if (req.method !== 'POST') throw new MethodNotAllowedError('/submit takes a multipart POST');
        return sendJson(res, 201, await submit(req, query));
      case '/vol/grow': {
        if (req.method !== 'POST') throw new MethodNotAllowedError('/vol/grow changes the cluster: POST it');
        access.requireAdmin(req, req.url ?? '/');
        assertDiskType(q);
        const layout = {
          collection: parseCollection(q.get('collection')),
          replication: formatPlacement(parsePlacement(q.get('replication') || config.defaultReplication)),
          ttl: formatTtl(parseTtl(q.get('ttl') ?? '')),
        };
        const countRaw = q.get('count');
        const count = countRaw === null ? undefined : Number(countRaw);
        if (count !== undefined && !(Number.isInteger(count) && count > 0 && count <= 100)) {
          throw new BadRequestError('count must be 1..100');
        }
        const grown = await growth.grow(layout, parseNodeFilter(q), count);
        return sendJson(res, 200, { count: grown.length, volumeIds: grown });
      }
      case '/vol/status':
        // The size limit too: tier policies judge fullness against it (tiering/service/policy.ts).
        return sendJson(res, 200, {
          Version: KELP_VERSION_STRING,
          VolumeSizeLimit: config.volumeSizeLimitBytes,
          Volumes: volumeStatus(topology, edgeHeat),
        });
      case '/dir/status':
        return sendJson(res, 200, { Version: KELP_VERSION_STRING, Topology: topologyStatus(topology) });
      case '/':
      case '/ui/fragments.json':
        if (req.method !== 'GET' && req.method !== 'HEAD')
          throw new MethodNotAllowedError(`${pathname} takes GET`);
        return statusPage.handle(res, pathname);
      case '/cluster/status':
        return sendJson(res, 200, {
          IsLeader: leadership.isLeader(),
          Leader: leadership.leader() ?? '',
          Peers: leadership.peers(),
          // What the store says, else (etcd out of reach) what the heartbeats say.
          MaxVolumeId: Math.max(
            (await loadWithin(state, STATUS_STATE_TIMEOUT_MS))?.maxVolumeId ?? 0,
            topology.maxVolumeId(),
          ),
        });
      case EDGE_HEAT_PATH: {
        if (req.method !== 'POST') throw new MethodNotAllowedError(`${EDGE_HEAT_PATH} takes a POST`);
        const report = await edgeHeat.readReport(req);
        // A follower's policy reads nothing: the leader's does, so it hears every report.
        if (await proxy.routeWithBody(req, res, report)) return;
        return sendJson(res, 200, { volumes: edgeHeat.apply(report) });
      }
      case '/col/delete':
        if (req.method !== 'POST' && req.method !== 'DELETE')
          throw new MethodNotAllowedError('/col/delete deletes data: POST or DELETE it, never GET');
        access.requireAdmin(req, req.url ?? '/');
        await deleteCollection(query, requestIdOf(req));
        res.writeHead(204);
        res.end();
        return;
      default: {
        if (ADMIN_PATHS.has(pathname)) return admin.handle(req, res, pathname, q);
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new NotFoundError(`no endpoint ${pathname}`);
        let fid: ReturnType<typeof parseFidPath>['fid'];
        try {
          fid = parseFidPath(pathname).fid;
        } catch (err) {
          if (err instanceof InvalidFidError) throw new NotFoundError(`no endpoint ${pathname}`);
          throw err;
        }
        const holders = topology.holders(fid.volumeId);
        if (holders.length === 0) throw new NotFoundError('not found');
        const pick = holders[Math.floor(Math.random() * holders.length)]!;
        const base = pick.publicUrl.includes('://') ? pick.publicUrl : `http://${pick.publicUrl}`;
        res.writeHead(308, { Location: `${base}${req.url}` });
        res.end();
      }
    }
  };

  const metrics = config.metrics ? new ServerMetrics() : undefined;
  if (metrics) observeTopology(metrics, { topology, sequencer, leader: () => self });
  const health = new Health()
    .add('leader', () => (self ? { ok: true, detail: self } : { ok: false, detail: 'no leader known' }))
    .add('topology', () => {
      const alive = topology.aliveNodes().length;
      // One pulse after start every live volume server has beaten: before that, lookups may miss some.
      const settling = config.now() - startedAt < config.pulseSeconds * 1000;
      if (alive === 0) return { ok: false, detail: 'no volume server has joined' };
      if (settling)
        return { ok: false, detail: `waiting one pulse for every volume server to beat (${alive} so far)` };
      return { ok: true, detail: `${alive} volume servers` };
    });
  const server = createInstrumentedServer(handle, {
    routes: MASTER_ROUTES,
    routeOf: masterRouteOf,
    health,
    access,
    metrics,
    log,
  });
  const address = await listen(server, config.host, config.port);
  self = config.advertise ?? address;
  if (elected) elected.start(self);
  else (leadership as SoloLeadership).self = self;
  if (config.signingKey) log.info('writes need a signed token (jwt signing key set)');
  else
    log.warn(
      'no signing key: the cluster is OPEN, anyone who can reach a volume server can write and delete',
    );
  if (!config.clusterKey) log.warn('no cluster key: heartbeats are not authenticated');
  const pruner = setInterval(() => topology.prune(FORGET_AFTER_PULSES), config.pulseSeconds * 1000);
  pruner.unref();
  vacuumSchedule.start();
  edgeHeatStore.start();
  return {
    server,
    topology,
    sequencer,
    leadership,
    address,
    vacuumSchedule,
    health,
    close: async () => {
      health.markStopping();
      clearInterval(pruner);
      await vacuumSchedule.stop();
      await edgeHeatStore.stop();
      // Leadership first: the lease is revoked and another master elected while this one drains.
      await leadership.close();
      await closeServer(server);
      etcd?.close();
    },
    async shutdown(drainMs = config.drainSeconds * 1000) {
      health.markStopping();
      clearInterval(pruner);
      await vacuumSchedule.stop();
      await edgeHeatStore.stop();
      // Leadership first: the lease is revoked and another master elected while this one drains.
      await leadership.close();
      log.info(`shutting down: draining requests for up to ${Math.round(drainMs / 1000)} s`);
      const drained = await drainServer(server, drainMs);
      if (drained.forced)
        log.warn(`${drained.forced} connections were still busy after the drain deadline: closed`);
      etcd?.close();
      log.info('stopped');
      return drained;
    },
  };
}

/**
 * Largest /submit body the master passes through unparsed (held in memory, so
 * a retry can send it again): a file part as large as the volume server keeps
 * in memory, with its multipart framing. Larger ones are parsed and spooled.
 */
const PASS_THROUGH_MAX_BYTES = SPOOL_THRESHOLD_BYTES + MULTIPART_OVERHEAD_BYTES;

/** What a /submit's answer says of the upload when the volume server answered 204 (no body). */
interface Described {
  name: string;
  size: number;
}

/** The PUT a /submit sends to the volume server, before the assignment's headers. */
interface Outgoing {
  body: Buffer | FileBody;
  headers: Record<string, string>;
  described(): Promise<Described>;
}

/** A parsed upload as the volume server's PUT takes it (spooled bodies stream from their file). */
function rebuilt(upload: Upload): Outgoing {
  const headers: Record<string, string> = {
    'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(upload.name)}`,
  };
  if (upload.mime) headers['Content-Type'] = upload.mime;
  if (upload.gzipped) headers['Content-Encoding'] = 'gzip';
  // The client's checksum goes on with the bytes: the volume server checks it (it was dropped here).
  if (upload.md5 !== undefined) headers['Content-MD5'] = upload.md5;
  for (const [k, v] of Object.entries(upload.pairs ?? {})) headers[`Kelp-${k}`] = v;
  const body = upload.spool ? { path: upload.spool.path, size: upload.spool.size } : upload.data;
  const size = uploadSize(upload);
  return { body, headers, described: async () => ({ name: upload.name, size }) };
}

/** A /submit's upload PUT to the volume server it was assigned to; a refusal is a 502 unless the client's fault. */
async function putOverHttp(
  url: string,
  server: string,
  headers: Record<string, string>,
  out: Outgoing,
): Promise<UploadAnswer> {
  const put = () => peerRequest(url, { method: 'PUT', headers, body: out.body, timeoutMs: 60_000 });
  let res: PeerResponse;
  try {
    res = await put();
  } catch {
    // A pooled socket the volume server was closing: the same PUT again is safe
    // (same fid and bytes; a copy that did land answers 204).
    res = await put().catch((err: unknown) => {
      throw new UpstreamError(`volume server ${server} is unreachable`, { cause: err });
    });
  }
  if (res.status === 204) return { status: 204, eTag: String(res.headers.etag ?? '') };
  const body = JSON.parse(res.body.toString()) as UploadDescription & { error?: string };
  if (res.status !== 201) {
    const message = `volume server ${server} refused the upload: ${body.error ?? res.status}`;
    throw clientFaultOf(res.status, message) ?? new UpstreamError(message);
  }
  return { status: 201, eTag: String(res.headers.etag ?? ''), body };
}

/** The same upload handed to this process's own volume server: refused as over HTTP (its reason). */
async function handOver(
  local: InProcessUploads,
  server: string,
  upload: InProcessUpload,
): Promise<UploadAnswer> {
  try {
    return await local(upload);
  } catch (err) {
    const message = `volume server ${server} refused the upload: ${(err as Error).message}`;
    throw clientFaultOf(httpStatusOf(err), message, err) ?? new UpstreamError(message, { cause: err });
  }
}

/** The placement parameters of a /submit, as the leader's /dir/assign takes them. */
function assignQuery(q: URLSearchParams | null): URLSearchParams {
  const out = new URLSearchParams();
  for (const k of PLACEMENT_PARAMS) {
    const v = q?.get(k);
    if (v) out.set(k, v);
  }
  return out;
}

function volumeStatus(topology: Topology, edgeHeat: EdgeHeat) {
  const out = new Map<number, Record<string, unknown> & { locations: string[] }>();
  for (const n of topology.nodes.values()) {
    for (const v of n.volumes.values()) {
      const e = out.get(v.id) ?? { ...v, edgeReadsPerDay: edgeHeat.perDay(v.id), locations: [] };
      if (topology.isAlive(n)) e.locations.push(n.url);
      out.set(v.id, e);
    }
  }
  return [...out.values()].sort((a, b) => (a.id as number) - (b.id as number));
}

function topologyStatus(topology: Topology) {
  const dcs = new Map<string, Map<string, unknown[]>>();
  let max = 0;
  let free = 0;
  for (const n of topology.nodes.values()) {
    const alive = topology.isAlive(n);
    if (alive) {
      max += n.maxVolumeCount;
      free += topology.freeSlots(n);
    }
    const racks = dcs.get(n.dataCenter) ?? new Map<string, unknown[]>();
    const nodes = racks.get(n.rack) ?? [];
    nodes.push({
      Url: n.url,
      PublicUrl: n.publicUrl,
      Volumes: n.volumes.size,
      Max: n.maxVolumeCount,
      Free: topology.freeSlots(n),
      Alive: alive,
    });
    racks.set(n.rack, nodes);
    dcs.set(n.dataCenter, racks);
  }
  return {
    Max: max,
    Free: free,
    layouts: layoutsOf(topology),
    DataCenters: [...dcs].map(([id, racks]) => ({
      Id: id,
      Racks: [...racks].map(([rid, nodes]) => ({ Id: rid, DataNodes: nodes })),
    })),
  };
}

/**
 * SeaweedFS's `Topology.layouts`: one entry per collection, replication and
 * TTL, with the volumes that take writes now (clients read it to see what
 * can be written where).
 */
function layoutsOf(topology: Topology) {
  const keys = new Map<string, { collection: string; replication: string; ttl: string }>();
  for (const n of topology.aliveNodes()) {
    for (const v of n.volumes.values()) {
      const key = { collection: v.collection, replication: v.replicaPlacement, ttl: v.ttl };
      keys.set(JSON.stringify(key), key);
    }
  }
  return [...keys.values()]
    .sort(
      (a, b) =>
        a.collection.localeCompare(b.collection) ||
        a.replication.localeCompare(b.replication) ||
        a.ttl.localeCompare(b.ttl),
    )
    .map((k) => ({
      collection: k.collection,
      replication: k.replication,
      ttl: k.ttl,
      writables: topology
        .writable(k)
        .map((v) => v.id)
        .sort((a, b) => a - b),
    }));
}
