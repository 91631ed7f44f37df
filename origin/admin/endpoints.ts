/**
 * The master's admin endpoints (docs/admin.md): each needs an admin
 * credential (`access.requireAdmin`) and changes state only on POST, with one
 * exception for SeaweedFS's clients: `GET /vol/vacuum` is taken when no admin
 * credential is configured at all (an open cluster on loopback), because
 * clients such as node-seaweedfs send GET (docs/security.md).
 *
 *   GET|POST /vol/vacuum?garbageThreshold=&collection=&volumeId=&dryRun=
 *   GET      /vol/list
 *   POST     /vol/balance?collection=&dryRun=
 *   POST     /vol/move?volumeId=&source=&target=
 *   POST     /vol/fix_replication?dryRun=
 *   POST     /vol/mark?volumeId=&state=readonly|writable
 *
 * Calls to volume servers are signed with the cluster key (or carry the
 * admin key when only that is set).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCollection } from '../../shared/collection.ts';
import { InvalidParamError, MethodNotAllowedError, NotFoundError } from '../../shared/errors.ts';
import { parseVolumeId } from '../../shared/fid.ts';
import { HOST_PORT } from '../http/address.ts';
import { sendJson } from '../http/respond.ts';
import type { Topology } from '../master/topology.ts';
import type { Access } from '../security/access.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import { type AuthHeaders, clusterViewOf, VolumeServerClient } from './cluster.ts';
import { moveVolume } from './move.ts';
import { DEFAULT_GARBAGE_THRESHOLD, markVolume, runActions, vacuumCluster } from './operations.ts';
import { planBalance, planFixReplication } from './plans.ts';

export const ADMIN_PATHS = new Set([
  '/vol/vacuum',
  '/vol/list',
  '/vol/balance',
  '/vol/move',
  '/vol/fix_replication',
  '/vol/mark',
]);

/** How the master authenticates to volume servers: the cluster signature, else its admin key. */
export function masterAuth(o: { clusterKey?: string; adminKey?: string }): AuthHeaders {
  return (method, url) => {
    if (o.clusterKey) return withClusterAuth(o.clusterKey, method, url);
    return o.adminKey ? { Authorization: `Bearer ${o.adminKey}` } : {};
  };
}

export function parseThreshold(raw: string | null | undefined): number {
  if (raw === null || raw === undefined || raw === '') return DEFAULT_GARBAGE_THRESHOLD;
  const n = Number(raw);
  if (!(n >= 0 && n <= 1)) throw new InvalidParamError('garbageThreshold must be a ratio 0..1');
  return n;
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw new InvalidParamError(`${name} must be true or false`);
}

function volumeIdParam(q: URLSearchParams): number {
  const raw = q.get('volumeId') ?? q.get('volume');
  if (!raw) throw new InvalidParamError('volumeId is required');
  return parseVolumeId(raw);
}

function server(q: URLSearchParams, name: string): string {
  const v = q.get(name) ?? '';
  if (!HOST_PORT.test(v)) throw new InvalidParamError(`${name} must be a volume server's host:port`);
  return v;
}

export class AdminEndpoints {
  readonly client: VolumeServerClient;
  private readonly topology: Topology;
  private readonly access: Access;

  constructor(topology: Topology, access: Access, auth: AuthHeaders) {
    this.topology = topology;
    this.access = access;
    this.client = new VolumeServerClient(auth);
  }

  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    q: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const readOnlyCall = pathname === '/vol/list' || (pathname === '/vol/vacuum' && flag(q, 'dryRun'));
    if (method !== 'POST' && !(method === 'GET' && (readOnlyCall || this.openVacuum(pathname)))) {
      throw new MethodNotAllowedError(
        pathname === '/vol/vacuum'
          ? '/vol/vacuum changes volumes: POST it (GET is taken only from an open cluster with no admin key, docs/security.md)'
          : `${pathname} ${readOnlyCall ? 'takes GET' : 'changes the cluster: POST it'}`,
      );
    }
    this.access.requireAdmin(req, req.url ?? '/');
    const view = clusterViewOf(this.topology);
    switch (pathname) {
      case '/vol/list':
        return sendJson(res, 200, view);
      case '/vol/vacuum': {
        const collection = q.has('collection') ? parseCollection(q.get('collection')) : undefined;
        const garbageThreshold = parseThreshold(q.get('garbageThreshold'));
        const results = await vacuumCluster(view, this.client, {
          garbageThreshold,
          dryRun: flag(q, 'dryRun'),
          ...(collection !== undefined ? { collection } : {}),
          ...(q.has('volumeId') ? { volumeId: volumeIdParam(q) } : {}),
        });
        return sendJson(res, 200, { garbageThreshold, volumes: results });
      }
      case '/vol/balance': {
        const collection = q.has('collection') ? parseCollection(q.get('collection')) : undefined;
        const plan = planBalance(view, collection !== undefined ? { collection } : {});
        return sendJson(res, 200, {
          actions: await runActions(this.client, plan, { dryRun: flag(q, 'dryRun') }),
        });
      }
      case '/vol/fix_replication': {
        const plan = planFixReplication(view);
        return sendJson(res, 200, {
          actions: await runActions(this.client, plan, { dryRun: flag(q, 'dryRun') }),
        });
      }
      case '/vol/move': {
        const outcome = await moveVolume(this.client, {
          volumeId: volumeIdParam(q),
          source: server(q, 'source'),
          target: server(q, 'target'),
          mode: 'move',
        });
        return sendJson(res, 200, outcome);
      }
      case '/vol/mark': {
        const state = q.get('state');
        if (state !== 'readonly' && state !== 'writable')
          throw new InvalidParamError('state must be readonly or writable');
        const id = volumeIdParam(q);
        const servers = await markVolume(view, this.client, id, state === 'readonly');
        return sendJson(res, 200, { volumeId: id, state, servers });
      }
      default:
        throw new NotFoundError(`no endpoint ${pathname}`);
    }
  }

  /** SeaweedFS clients GET /vol/vacuum: allowed only where no admin credential exists to require. */
  private openVacuum(pathname: string): boolean {
    return pathname === '/vol/vacuum' && !this.access.adminGuarded;
  }
}
