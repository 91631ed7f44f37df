/**
 * Heartbeats to the masters over HTTP (`POST /heartbeat`): this server's full
 * state when it joins and on every pulse, and at once when something the
 * master must know changes (a new or sealed volume). With several masters
 * every one of them gets every beat (each signed with the cluster key), so
 * each has its own topology: followers answer lookups, and a new leader knows
 * the cluster at once (docs/decisions/0008-several-masters.md). A master that
 * is down is retried on the next pulse; the server keeps serving meanwhile.
 */
import type { HeartbeatRequest, HeartbeatResponse } from '../../shared/api.ts';
import { MasterClient } from '../../shared/client/master-client.ts';
import { formatPlacement } from '../../shared/placement.ts';
import { formatTtl } from '../../shared/ttl.ts';
import { masterList } from '../http/masters.ts';
import type { Logger } from '../observability/log.ts';
import { withClusterAuth } from '../security/cluster-auth.ts';
import type { Store } from './store.ts';
import { tierLocationOf } from './tier-sidecars.ts';
import type { Volume } from './volume.ts';

/** Shortest wait for a master's answer to a beat, however short the pulse. */
export const MIN_BEAT_TIMEOUT_MS = 2_000;

function tierOf(v: Volume, store: Store) {
  const tier = v.info.remote ? tierLocationOf(v, store.config.backends) : undefined;
  return tier ? { tier } : {};
}

export interface HeartbeatOptions {
  /** host:port of the master, or several, comma-separated: each gets every beat. */
  master: string;
  store: Store;
  url: string;
  publicUrl: string;
  dataCenter: string;
  rack: string;
  pulseSeconds: number;
  /** Signs each beat: the master takes none without it when it has a cluster key. */
  clusterKey?: string;
  log: Logger;
}

export function heartbeatOf(opts: HeartbeatOptions): HeartbeatRequest {
  let maxFileKey = 0n;
  const volumes = opts.store.all().map((v) => {
    const s = v.status();
    if (v.map.maxKey > maxFileKey) maxFileKey = v.map.maxKey;
    return {
      id: s.id,
      collection: s.collection,
      size: s.size,
      fileCount: s.fileCount,
      deleteCount: s.deleteCount,
      deletedByteCount: s.deletedByteCount,
      readOnly: s.readOnly,
      full: s.full,
      replicaPlacement: formatPlacement(s.replicaPlacement),
      ttl: formatTtl(s.ttl),
      compactRevision: s.compactRevision,
      remote: s.remote,
      ...tierOf(v, opts.store),
      readsPerDay: s.readsPerDay,
      modifiedAt: s.modifiedAt,
      ...(s.moving ? { moving: s.moving } : {}),
    };
  });
  return {
    url: opts.url,
    publicUrl: opts.publicUrl,
    dataCenter: opts.dataCenter,
    rack: opts.rack,
    maxVolumeCount: opts.store.maxVolumeCount(),
    maxFileKey: maxFileKey.toString(),
    volumes,
  };
}

export class HeartbeatClient {
  private readonly opts: HeartbeatOptions;
  private timer: NodeJS.Timeout | undefined;
  private readonly masters: string[];
  /** Masters this server is joined to (their last beat was taken). */
  private readonly joined = new Set<string>();
  /** Masters already reported unreachable (said once until they answer again). */
  private readonly warned = new Set<string>();
  /** The leader as the masters' last replies named it. */
  leader: string | undefined;

  /** The last heartbeat reached a master (readiness and metrics). */
  get connected(): boolean {
    return this.joined.size > 0;
  }
  private beating: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  /** One client per master: a beat goes to each of them, it is not failover. */
  private readonly clients = new Map<string, MasterClient>();

  constructor(opts: HeartbeatOptions) {
    this.opts = opts;
    this.masters = masterList(opts.master);
    for (const m of this.masters) {
      this.clients.set(
        m,
        new MasterClient([m], {
          sign: (method, url, headers, body) => withClusterAuth(opts.clusterKey, method, url, headers, body),
        }),
      );
    }
  }

  start(): void {
    this.schedule(0);
  }

  /** Beat as soon as possible (coalesced: changes during a beat cause one more). */
  beatNow(): void {
    if (this.stopped) return;
    if (this.beating) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.beat(), ms);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    this.beating = this.send();
    await this.beating;
    this.beating = undefined;
    if (this.again) {
      this.again = false;
      this.schedule(0);
    } else {
      this.schedule(this.opts.pulseSeconds * 1000);
    }
  }

  private async send(): Promise<void> {
    const body = JSON.stringify(heartbeatOf(this.opts));
    await Promise.all(this.masters.map((m) => this.sendTo(m, body)));
  }

  private async sendTo(master: string, body: string): Promise<void> {
    try {
      const { body: reply } = await this.clients.get(master)!.json<HeartbeatResponse>('/heartbeat', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
        // A beat may take up to a pulse: the master is busy, not gone.
        timeoutMs: Math.max(MIN_BEAT_TIMEOUT_MS, this.opts.pulseSeconds * 1000),
      });
      if (reply.pulseSeconds > 0) this.opts.pulseSeconds = reply.pulseSeconds;
      if (reply.volumeSizeLimit > 0) this.opts.store.setSizeLimit(reply.volumeSizeLimit);
      if (reply.leader) this.leader = reply.leader;
      if (!this.joined.has(master))
        this.opts.log.info({ master }, `volume server ${this.opts.url}: joined master ${master}`);
      this.joined.add(master);
      this.warned.delete(master);
    } catch (err) {
      if (!this.warned.has(master)) {
        this.opts.log.warn(
          { master },
          `volume server ${this.opts.url}: cannot reach master ${master} (${(err as Error).message}); ` +
            `retrying every ${this.opts.pulseSeconds}s`,
        );
        this.warned.add(master);
      }
      this.joined.delete(master);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.beating;
  }
}
