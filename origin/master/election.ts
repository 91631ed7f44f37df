/**
 * Which master leads: a single master always does (SoloLeadership); several
 * masters over one etcd cluster elect one with an etcd lease
 * (EtcdLeadership, docs/decisions/0008-several-masters.md).
 *
 * Every master holds a lease of LEASE_SECONDS and keeps it alive itself
 * (a keep-alive every KEEPALIVE_INTERVAL_MS). It registers `<prefix>/masters/<addr>`
 * under the lease (the peers of /cluster/status) and campaigns for
 * `<prefix>/leader` with a transaction that creates the key only if it does not
 * exist, attached to the lease. The master whose key it is leads until the key
 * goes: its lease expired (killed, cut off from etcd) or was revoked (a clean
 * stop). The key's create revision names the term: the state store's
 * transactions compare it, so a deposed leader can no longer reserve keys or
 * volume ids (etcd-state-store.ts).
 *
 * Fencing in time as well: a keep-alive sent at t proves the lease lives until
 * at least t + TTL on etcd's side, so the leader stops acting (isLeader() turns
 * false, assigns fail with NotLeaderError) at t + TTL - MARGIN when no later
 * keep-alive has succeeded: before etcd can expire the lease and elect another.
 */

import { type Etcd3, EtcdLeaseInvalidError, type Lease } from 'etcd3';
import { NotLeaderError } from '../../shared/errors.ts';
import type { Logger } from '../observability/log.ts';

/** TTL of each master's lease (defined with the master's defaults, which config.ts reads). */
import { LEASE_SECONDS } from './defaults.ts';

export { LEASE_SECONDS };
/** How long before the lease could expire the leader stops acting (covers clock rate and pauses). */
export const LEASE_MARGIN_MS = 1_500;
/** How often a master that does not lead tries to (and learns who does). */
export const CAMPAIGN_INTERVAL_MS = 250;
/** Keep-alive period: often, so one lost answer costs little of the lease. */
const KEEPALIVE_INTERVAL_MS = 500;
/** After a failed keep-alive, the next try (another etcd member, likely) comes this soon. */
const KEEPALIVE_RETRY_MS = 100;
/** Longest wait for one keep-alive answer. */
const KEEPALIVE_TIMEOUT_MS = 1_000;
/** Peers are re-read from etcd at most this often. */
const PEERS_REFRESH_MS = 1_000;

export interface Term {
  /** The etcd key of the leader. */
  key: string;
  /** Its create revision: the term's name (decimal). */
  revision: string;
}

export interface Leadership {
  /** This master's address (host:port). */
  readonly self: string;
  /** Whether this master leads now (and may assign, grow volumes, move the counters). */
  isLeader(): boolean;
  /** Throws NotLeaderError unless this master leads now. */
  assertLeader(): void;
  /** The leader's address as last seen; undefined while none is known. */
  leader(): string | undefined;
  /** The other masters (addresses), as last seen. */
  peers(): string[];
  /** Told when this master starts or stops leading. */
  onChange(listener: (leading: boolean) => void): void;
  close(): Promise<void>;
}

/** One master, no etcd: it always leads. */
export class SoloLeadership implements Leadership {
  self = '';
  isLeader(): boolean {
    return true;
  }
  assertLeader(): void {}
  leader(): string {
    return this.self;
  }
  peers(): string[] {
    return [];
  }
  onChange(): void {}
  async close(): Promise<void> {}
}

export interface EtcdLeadershipOptions {
  client: Etcd3;
  /** Key prefix of this Kelp cluster in etcd, e.g. `kelp`. */
  prefix: string;
  leaseSeconds?: number;
  marginMs?: number;
  log: Logger;
}

const now = () => performance.now();

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from etcd in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class EtcdLeadership implements Leadership {
  self = '';
  private readonly client: Etcd3;
  private readonly leaderKey: string;
  private readonly mastersPrefix: string;
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly log: Logger;
  private readonly listeners: Array<(leading: boolean) => void> = [];

  private lease: Lease | undefined;
  private leaseId: string | undefined;
  /** performance.now() until which the lease surely lives (last successful keep-alive's send time + TTL). */
  private validUntil = 0;
  /** The term this master leads, if it does. */
  private term: Term | undefined;
  private leading = false;
  private leaderAddress: string | undefined;
  private leaderSeenAt = 0;
  private peerList: string[] = [];
  private peersAt = 0;
  private closed = false;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private campaignTimer: NodeJS.Timeout | undefined;
  private stepDownTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(opts: EtcdLeadershipOptions) {
    this.client = opts.client;
    const prefix = opts.prefix.replace(/\/+$/, '');
    this.leaderKey = `${prefix}/leader`;
    this.mastersPrefix = `${prefix}/masters/`;
    this.ttlMs = (opts.leaseSeconds ?? LEASE_SECONDS) * 1000;
    this.marginMs = opts.marginMs ?? LEASE_MARGIN_MS;
    this.log = opts.log;
    if (this.marginMs >= this.ttlMs * (2 / 3)) {
      throw new RangeError('the lease margin must leave room for a keep-alive round');
    }
  }

  /** Starts keeping a lease and campaigning as `self`. */
  start(self: string): void {
    this.self = self;
    this.scheduleCampaign(0);
  }

  isLeader(): boolean {
    return this.leading && now() < this.validUntil - this.marginMs;
  }

  assertLeader(): void {
    if (this.isLeader()) return;
    const leader = this.leader();
    throw new NotLeaderError(
      leader && leader !== this.self
        ? `this master is not the leader; ${leader} is`
        : 'no leader is elected yet; retry shortly',
      1,
    );
  }

  /** The leader known within one lease TTL; older knowledge is no knowledge. */
  leader(): string | undefined {
    if (this.isLeader()) return this.self;
    if (this.leaderAddress === this.self) return undefined;
    return now() - this.leaderSeenAt < this.ttlMs ? this.leaderAddress : undefined;
  }

  peers(): string[] {
    return this.peerList.filter((p) => p !== this.self);
  }

  /** The term to fence writes with; NotLeaderError unless this master leads now. */
  currentTerm(): Term {
    this.assertLeader();
    return this.term!;
  }

  onChange(listener: (leading: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** Stops leading at once: called when a fenced write found another term. */
  deposed(why: string): void {
    this.setLeading(undefined, why);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.campaignTimer);
    clearTimeout(this.stepDownTimer);
    await this.running?.catch(() => {});
    this.setLeading(undefined, 'shutting down');
    // Revoking hands leadership over now instead of after a TTL.
    if (this.lease) await withTimeout(this.lease.revoke(), 1_000, 'lease revoke').catch(() => {});
  }

  private setLeading(term: Term | undefined, why: string): void {
    const was = this.leading;
    this.term = term;
    this.leading = term !== undefined;
    clearTimeout(this.stepDownTimer);
    if (this.leading) this.armStepDown();
    if (was === this.leading) return;
    this.log.info(
      this.leading
        ? `master ${this.self}: leader (term ${term!.revision})`
        : `master ${this.self}: no longer the leader (${why})`,
    );
    for (const l of this.listeners) l(this.leading);
  }

  /** A timer at the moment the lease could run out: say so then, not at the next request. */
  private armStepDown(): void {
    clearTimeout(this.stepDownTimer);
    const ms = this.validUntil - this.marginMs - now();
    this.stepDownTimer = setTimeout(() => {
      if (this.leading && !this.isLeader()) this.setLeading(undefined, 'lease keep-alive overdue');
      else if (this.leading) this.armStepDown();
    }, Math.max(0, ms) + 5);
    this.stepDownTimer.unref();
  }

  private scheduleCampaign(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.campaignTimer);
    this.campaignTimer = setTimeout(() => {
      this.running = this.campaign().finally(() => {
        this.running = undefined;
        this.scheduleCampaign(CAMPAIGN_INTERVAL_MS);
      });
    }, ms);
    this.campaignTimer.unref();
  }

  /** A lease, then this master's registration under it. */
  private async ensureLease(): Promise<void> {
    if (this.leaseId !== undefined) return;
    const lease = this.client.lease(this.ttlMs / 1000, { autoKeepAlive: false });
    lease.on('lost', () => {});
    const sent = now();
    const id = await withTimeout(lease.grant(), this.ttlMs / 3, 'lease grant');
    this.lease = lease;
    this.leaseId = id;
    this.validUntil = sent + this.ttlMs;
    await withTimeout(
      this.client.put(`${this.mastersPrefix}${this.self}`).value(this.self).lease(id).exec(),
      this.ttlMs / 3,
      'register',
    );
    this.scheduleKeepalive();
  }

  private scheduleKeepalive(ms = KEEPALIVE_INTERVAL_MS): void {
    clearTimeout(this.keepaliveTimer);
    if (this.closed) return;
    this.keepaliveTimer = setTimeout(() => void this.keepalive(), ms);
    this.keepaliveTimer.unref();
  }

  /** One keep-alive; success moves the validity on, failure tries again soon. */
  private async keepalive(): Promise<void> {
    const lease = this.lease;
    if (!lease || this.closed) return;
    const sent = now();
    try {
      await withTimeout(
        lease.keepaliveOnce({ deadline: Date.now() + KEEPALIVE_TIMEOUT_MS }),
        KEEPALIVE_TIMEOUT_MS,
        'lease keep-alive',
      );
      if (lease !== this.lease) return;
      this.validUntil = sent + this.ttlMs;
      if (this.leading) this.armStepDown();
      this.scheduleKeepalive();
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) {
        // Expired on etcd's side: whatever this master held under it is gone.
        if (lease === this.lease) this.dropLease('lease expired');
        return;
      }
      if (lease === this.lease) this.scheduleKeepalive(KEEPALIVE_RETRY_MS);
    }
  }

  private dropLease(why: string): void {
    this.lease?.release();
    this.lease = undefined;
    this.leaseId = undefined;
    this.validUntil = 0;
    if (this.leading) this.setLeading(undefined, why);
  }

  /** One campaign step: become leader if there is none, else learn who is. */
  private async campaign(): Promise<void> {
    try {
      if (this.leaseId !== undefined && now() > this.validUntil) {
        // Not kept alive for a whole TTL: it may be gone; start over with a new one.
        this.dropLease('lease keep-alive lost');
      }
      await this.ensureLease();
      // The leader runs the same transaction: it reads the key back and sees its term is still there.
      const leaseId = this.leaseId!;
      const r = await withTimeout(
        this.client
          .if(this.leaderKey, 'Create', '==', 0)
          .then(this.client.put(this.leaderKey).value(this.self).lease(leaseId))
          .else(this.client.get(this.leaderKey))
          .commit(),
        this.ttlMs / 3,
        'campaign',
      );
      const seenAt = now();
      let term: Term | undefined;
      if (r.succeeded) {
        term = { key: this.leaderKey, revision: r.header.revision };
        this.leaderAddress = this.self;
      } else {
        const kv = r.responses[0]?.response_range?.kvs[0];
        this.leaderAddress = kv?.value.toString();
        // Its own key under its own lease: still the leader (a keep-alive was late, not lost).
        if (kv && kv.lease === leaseId) term = { key: this.leaderKey, revision: kv.create_revision };
      }
      this.leaderSeenAt = seenAt;
      // Leading, but the key is another's (deleted by hand, say): stop at once.
      if (this.leading && term?.revision !== this.term?.revision)
        this.setLeading(undefined, 'the leader key changed');
      // Only with time left on the lease: isLeader() would say no anyway.
      if (term && now() < this.validUntil - this.marginMs) this.setLeading(term, '');
      await this.refreshPeers();
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) this.dropLease('lease expired');
      // etcd unreachable: the keep-alive clock decides when a leader stops.
    }
  }

  private async refreshPeers(): Promise<void> {
    if (now() - this.peersAt < PEERS_REFRESH_MS) return;
    const keys = await withTimeout(
      this.client.getAll().prefix(this.mastersPrefix).keys(),
      this.ttlMs / 3,
      'peers',
    );
    this.peerList = keys.map((k) => k.slice(this.mastersPrefix.length)).sort();
    this.peersAt = now();
  }
}
