/**
 * What a master that does not lead does with calls only the leader may answer
 * (several masters, docs/decisions/0008-several-masters.md): it checks the
 * caller as the leader would, then forwards the call to the leader and relays
 * the answer, so clients may send anything to any master.
 *
 *   /dir/assign, /vol/grow, /col/delete      forwarded
 *   admin operations (/vol/vacuum, move...)  forwarded: one orchestrator at a time (/vol/list answered here)
 *   /dir/lookup?fileId= that earns a token    forwarded (only the leader knows which keys it issued)
 *   /submit                                   stored by this master, its fid assigned by the leader
 *   POST /edge/heat                           forwarded with its body (the key checked here first), so
 *                                             the leader's tier policy sees every report (edge-heat.ts)
 *   other lookups, heartbeats, status         answered here, from this master's own topology
 *
 * A forwarded call is signed with the cluster key (the follower vouches for a
 * caller it checked, who may have passed by the white list, which the leader
 * cannot see) and keeps the caller's Authorization. It names the follower in
 * FORWARDED_HEADER; a master that does not lead refuses such a call instead of
 * forwarding it again (no loops while leadership moves).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AssignResponse } from '../../shared/api.ts';
import {
  errorFromBody,
  MethodNotAllowedError,
  NotLeaderError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import { ADMIN_PATHS } from '../admin/endpoints.ts';
import { type PeerResponse, peerRequest } from '../http/client.ts';
import type { Access } from '../security/access.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import type { Leadership } from './election.ts';

export const FORWARDED_HEADER = 'x-kelp-forwarded-by';
/** How long the leader may take to answer a forwarded call (an assign may grow volumes). */
export const FORWARD_TIMEOUT_MS = 30_000;
/** An admin operation (a vacuum, a volume move) may run this long without a byte back. */
export const ADMIN_FORWARD_TIMEOUT_MS = 60 * 60_000;
/** Headers of the leader's answer that the caller gets too. */
const RELAYED = ['content-type', 'authorization', 'retry-after'] as const;

export interface LeaderProxyOptions {
  leadership: Leadership;
  access: Access;
  clusterKey?: string;
  signingKey?: string;
  readSigningKey?: string;
}

export class LeaderProxy {
  private readonly opts: LeaderProxyOptions;

  constructor(opts: LeaderProxyOptions) {
    this.opts = opts;
  }

  /**
   * Forwards the call to the leader when it is one only the leader answers and
   * this master does not lead; returns whether it did (false: handle it here).
   */
  async route(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    q: URLSearchParams,
  ): Promise<boolean> {
    const { leadership, access } = this.opts;
    if (leadership.isLeader()) return false;
    const url = req.url ?? '/';
    switch (pathname) {
      case '/dir/assign':
        access.requireClient(req, url);
        break;
      case '/vol/grow':
        if (req.method !== 'POST') throw new MethodNotAllowedError('/vol/grow changes the cluster: POST it');
        access.requireAdmin(req, url);
        break;
      case '/col/delete':
        if (req.method !== 'POST' && req.method !== 'DELETE')
          throw new MethodNotAllowedError('/col/delete deletes data: POST or DELETE it, never GET');
        access.requireAdmin(req, url);
        break;
      case '/dir/lookup': {
        const key = q.get('read') === 'yes' ? this.opts.readSigningKey : this.opts.signingKey;
        // No token to sign: this master's topology answers.
        if (!q.get('fileId') || !key || !access.isAuthenticatedClient(req, url)) return false;
        break;
      }
      default:
        if (!ADMIN_PATHS.has(pathname) || pathname === '/vol/list') return false;
        access.requireAdmin(req, url);
    }
    const timeoutMs = ADMIN_PATHS.has(pathname) ? ADMIN_FORWARD_TIMEOUT_MS : FORWARD_TIMEOUT_MS;
    relay(res, await this.forward(req, req.method ?? 'GET', url, timeoutMs));
    return true;
  }

  /**
   * A POST whose body this master read (and whose caller it checked) sent on
   * to the leader, the answer relayed; false when this master leads.
   */
  async routeWithBody(req: IncomingMessage, res: ServerResponse, body: Uint8Array): Promise<boolean> {
    if (this.opts.leadership.isLeader()) return false;
    relay(res, await this.forward(req, 'POST', req.url ?? '/', FORWARD_TIMEOUT_MS, body));
    return true;
  }

  /** A fid from the leader for a `/submit` this master stores (the caller was checked already). */
  async assign(req: IncomingMessage, q: URLSearchParams): Promise<AssignResponse> {
    const answer = await this.forward(req, 'GET', `/dir/assign?${q}`);
    let body: AssignResponse;
    try {
      body = JSON.parse(answer.body.toString()) as AssignResponse;
    } catch (err) {
      throw new UpstreamError(`the leader's assign answer is not JSON (${answer.status})`, { cause: err });
    }
    if (answer.status === 200) return body;
    const serverError = errorFromBody(answer.status, answer.body.toString());
    const why = `the leader could not assign: ${serverError.message}`;
    if (serverError instanceof UnavailableError) {
      throw new UnavailableError(why, Number(answer.headers['retry-after']) || 1);
    }
    throw new UpstreamError(why);
  }

  private async forward(
    req: IncomingMessage,
    method: string,
    pathAndQuery: string,
    timeoutMs = FORWARD_TIMEOUT_MS,
    body?: Uint8Array,
  ): Promise<PeerResponse> {
    const { leadership, clusterKey } = this.opts;
    if (req.headers[FORWARDED_HEADER] !== undefined) {
      throw new NotLeaderError('this master is not the leader (the call was forwarded here by mistake)', 1);
    }
    const leader = leadership.leader();
    if (!leader || leader === leadership.self) {
      throw new NotLeaderError('no leader is elected yet; retry shortly', 1);
    }
    const url = `http://${leader}${pathAndQuery}`;
    const headers: Record<string, string> = { [FORWARDED_HEADER]: leadership.self };
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    if (body) {
      headers['content-type'] = req.headers['content-type'] ?? 'application/json';
      headers['content-length'] = String(body.length);
    }
    try {
      return await peerRequest(url, {
        method,
        headers: withClusterAuth(clusterKey, method, url, headers),
        timeoutMs,
        ...(body ? { body } : {}),
      });
    } catch (err) {
      throw new UnavailableError(`the leader ${leader} did not answer; retry shortly`, 1, { cause: err });
    }
  }
}

/** The leader's answer, as the caller's. */
function relay(res: ServerResponse, answer: PeerResponse): void {
  const headers: Record<string, string> = {};
  for (const h of RELAYED) {
    const v = answer.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  res.writeHead(answer.status, headers);
  res.end(answer.body);
}
