/**
 * Heartbeats to the masters over HTTP (`POST /heartbeat`): this server's full
 * state when it joins, then on every pulse only what changed since the beat
 * that master last acknowledged (docs/decisions/0014-heartbeat-deltas.md),
 * and at once when something the master must know changes (a new or sealed
 * volume). A full list goes again every FULL_BEAT_EVERY beats, after a beat
 * that failed, when the masters name another leader, and when a master asks
 * (it restarted: its session changed). With several masters
 * every one of them gets every beat (each signed with the cluster key), so
 * each has its own topology: followers answer lookups, and a new leader knows
 * the cluster at once (docs/decisions/0008-several-masters.md). A master that
 * is down is retried on the next pulse; the server keeps serving meanwhile.
 */
import type { HeartbeatRequest, HeartbeatResponse, HeartbeatVolume } from '../../shared/api.ts';
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

/**
 * Beats between two full lists to one master: a delta the master applied
 * wrongly (a bug, a lost volume growth made) is corrected within this many
 * pulses (a minute at the default 5 s).
 */
export const FULL_BEAT_EVERY = 12;

/** What a master acknowledged: the base of the next delta to it. */
interface Acked {
  /** The master's session in its reply: the delta names it. */
  session: string;
  /** Each volume as last sent (its JSON): a volume whose JSON differs now is sent again. */
  volumes: Map<number, string>;
  /** Deltas since the last full list. */
  deltas: number;
}

/**
 * The beat to one master: the full list, or the volumes whose JSON differs
 * from what it acknowledged plus the ids it holds no longer.
 */
export function beatFor(
  full: HeartbeatRequest,
  jsons: Map<number, string>,
  acked: Acked | undefined,
): HeartbeatRequest {
  if (acked === undefined || acked.deltas + 1 >= FULL_BEAT_EVERY) return full;
  const volumes: HeartbeatVolume[] = [];
  for (const v of full.volumes) if (acked.volumes.get(v.id) !== jsons.get(v.id)) volumes.push(v);
  const deletedVolumes: number[] = [];
  for (const id of acked.volumes.keys()) if (!jsons.has(id)) deletedVolumes.push(id);
  return {
    ...full,
    volumes,
    deltaOf: acked.session,
    ...(deletedVolumes.length > 0 ? { deletedVolumes } : {}),
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
  /** Per master, what its last successful beat told it; none: the next beat is a full list. */
  private readonly acked = new Map<string, Acked>();
  /** A reply named another leader: after this round every master gets the full list. */
  private leaderChanged = false;
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
    const full = heartbeatOf(this.opts);
    const jsons = new Map(full.volumes.map((v) => [v.id, JSON.stringify(v)]));
    await Promise.all(this.masters.map((m) => this.sendTo(m, full, jsons)));
    if (this.leaderChanged) {
      this.leaderChanged = false;
      this.acked.clear();
    }
  }

  private async sendTo(master: string, full: HeartbeatRequest, jsons: Map<number, string>): Promise<void> {
    const acked = this.acked.get(master);
    const beat = beatFor(full, jsons, acked);
    const body = JSON.stringify(beat);
    // Until this beat is acknowledged its base is unknown: a failure below leaves the next one full.
    this.acked.delete(master);
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
      if (reply.leader && reply.leader !== this.leader) {
        // Another leader: every master gets the full list once more (not only the one that said so).
        if (this.leader !== undefined) this.leaderChanged = true;
        this.leader = reply.leader;
      }
      if (reply.fullListWanted) {
        // A restarted master: nothing of the delta was applied. The full list goes now, not in a pulse.
        this.again = true;
      } else if (reply.session) {
        this.acked.set(master, {
          session: reply.session,
          volumes: jsons,
          deltas: beat.deltaOf === undefined ? 0 : acked!.deltas + 1,
        });
      }
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
