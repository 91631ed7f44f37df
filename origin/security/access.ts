/**
 * Who may call what (docs/security.md). Three credentials besides the fid tokens of jwt.ts:
 *
 * - cluster key: HMAC signatures of server-to-server calls (cluster-auth.ts);
 * - admin key: `Authorization: Bearer <key>` on admin endpoints (a cluster signature also passes);
 * - client keys and a CIDR white list: the write API of the master (assign, /submit,
 *   lookup with a token). A client passes with one of the keys or from a listed network,
 *   as SeaweedFS's `white_list` guards who can obtain write tokens.
 *
 * With none of a kind configured that kind of call is open: the embedded default on
 * loopback (binding.ts refuses to start on another address that way unless told --insecure).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BlockList, isIPv6 } from 'node:net';
import { InvalidParamError, UnauthorizedError } from '../../shared/errors.ts';
import { verifyClusterRequest } from './cluster-auth.ts';

export interface AccessConfig {
  clusterKey?: string;
  /** Still accepted (never used to sign) while a new cluster key is rolled out. */
  previousClusterKey?: string;
  adminKey?: string;
  clientKeys?: string[];
  /** Bearer key of `GET /metrics` (Prometheus); without one, /metrics takes the admin credentials (open when there are none). */
  metricsKey?: string;
  /** CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses whose callers count as clients. */
  whiteList?: string[];
}

/** `Authorization: Bearer <token>`, the scheme matched case-insensitively (RFC 7235 §2.1). */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (!auth) return undefined;
  const m = /^bearer[ \t]+(\S+)\s*$/i.exec(auth);
  return m ? m[1] : undefined;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Keys compared in constant time (digests of equal length, whatever the lengths of the keys). */
/** Bearer keys, compared in constant time (digests, every key checked). */
export class KeySet {
  private readonly digests: Buffer[];
  constructor(keys: string[]) {
    this.digests = keys.filter(Boolean).map(digest);
  }
  get size(): number {
    return this.digests.length;
  }
  has(candidate: string | undefined): boolean {
    if (candidate === undefined || this.digests.length === 0) return false;
    const d = digest(candidate);
    let found = false;
    for (const k of this.digests) found = timingSafeEqual(k, d) || found;
    return found;
  }
}

/** A white list entry: `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or prefix. */
export function parseWhiteList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [address, bits] = entry.split('/');
    const type = isIPv6(address ?? '') ? 'ipv6' : 'ipv4';
    try {
      if (bits === undefined) list.addAddress(address!, type);
      else {
        if (!/^\d{1,3}$/.test(bits)) throw new Error('bad prefix');
        list.addSubnet(address!, Number(bits), type);
      }
    } catch {
      throw new InvalidParamError(`white list entry "${entry}" is not an IP address or CIDR`);
    }
  }
  return list;
}

/** `::ffff:10.0.0.1` (an IPv4 caller on a dual-stack socket) → `10.0.0.1`. */
function callerAddress(req: IncomingMessage): { address: string; type: 'ipv4' | 'ipv6' } | undefined {
  const raw = req.socket.remoteAddress;
  if (!raw) return undefined;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
  if (v4) return { address: v4[1]!, type: 'ipv4' };
  return { address: raw, type: isIPv6(raw) ? 'ipv6' : 'ipv4' };
}

export class Access {
  readonly clusterKey: string | undefined;
  /** Keys a signature may be made with: the current one and, during a rotation, the previous. */
  readonly clusterKeys: readonly string[];
  private readonly admin: KeySet;
  private readonly clients: KeySet;
  private readonly metrics: KeySet;
  private readonly whiteList: BlockList | undefined;

  constructor(config: AccessConfig) {
    this.clusterKey = config.clusterKey || undefined;
    this.clusterKeys = [config.clusterKey, config.previousClusterKey].filter((k): k is string => !!k);
    this.admin = new KeySet(config.adminKey ? [config.adminKey] : []);
    this.clients = new KeySet(config.clientKeys ?? []);
    this.metrics = new KeySet(config.metricsKey ? [config.metricsKey] : []);
    this.whiteList = config.whiteList?.length ? parseWhiteList(config.whiteList) : undefined;
  }

  /** Whether admin calls need a credential (an admin key or a cluster key is set). */
  get adminGuarded(): boolean {
    return this.admin.size > 0 || this.clusterKey !== undefined;
  }

  /** Whether the write API needs a credential (client keys or a white list are set). */
  get clientsGuarded(): boolean {
    return this.clients.size > 0 || this.whiteList !== undefined || this.adminGuarded;
  }

  /** A valid cluster signature on a bodiless request (a signed body is checked by its handler). */
  private isMember(req: IncomingMessage, pathAndQuery: string): boolean {
    if (!this.clusterKey || req.headers['x-kelp-auth'] === undefined) return false;
    try {
      verifyClusterRequest(this.clusterKeys, req.method ?? 'GET', pathAndQuery, req.headers);
      return true;
    } catch {
      return false;
    }
  }

  isAdmin(req: IncomingMessage, pathAndQuery: string): boolean {
    if (!this.adminGuarded) return true;
    return this.admin.has(bearerToken(req.headers)) || this.isMember(req, pathAndQuery);
  }

  /**
   * A client of the write API: one of the client keys, a listed network, or an
   * admin or cluster member. Open when nothing is configured.
   */
  isClient(req: IncomingMessage, pathAndQuery: string): boolean {
    if (!this.clientsGuarded) return true;
    const token = bearerToken(req.headers);
    if (this.clients.has(token) || this.admin.has(token)) return true;
    const caller = callerAddress(req);
    if (this.whiteList && caller && this.whiteList.check(caller.address, caller.type)) return true;
    return this.isMember(req, pathAndQuery);
  }

  /** Whether a caller proved who it is (a key, a listed network, a signature), not merely "open". */
  isAuthenticatedClient(req: IncomingMessage, pathAndQuery: string): boolean {
    return this.clientsGuarded && this.isClient(req, pathAndQuery);
  }

  requireAdmin(req: IncomingMessage, pathAndQuery: string): void {
    if (!this.isAdmin(req, pathAndQuery)) {
      throw new UnauthorizedError('admin call: send Authorization: Bearer <admin key> (KELP_ADMIN_KEY)');
    }
  }

  /**
   * `GET /metrics`: the metrics key, or admin credentials. A scrape reveals
   * the topology (servers, volumes, disks, traffic), so it is open only where
   * admin calls are (docs/security.md).
   */
  isMetricsReader(req: IncomingMessage, pathAndQuery: string): boolean {
    if (this.metrics.has(bearerToken(req.headers))) return true;
    if (this.metrics.size > 0 && !this.adminGuarded) return false;
    return this.isAdmin(req, pathAndQuery);
  }

  requireMetricsReader(req: IncomingMessage, pathAndQuery: string): void {
    if (!this.isMetricsReader(req, pathAndQuery)) {
      throw new UnauthorizedError('metrics: send Authorization: Bearer <metrics key> (KELP_METRICS_KEY)');
    }
  }

  requireClient(req: IncomingMessage, pathAndQuery: string): void {
    if (!this.isClient(req, pathAndQuery)) {
      throw new UnauthorizedError(
        'this cluster takes writes from known clients only: send Authorization: Bearer <client key>',
      );
    }
  }
}
