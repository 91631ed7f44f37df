/**
 * Purge events from a volume server to the edge. An overwrite or a delete of a
 * fid, and the deletion of a collection's volumes, are sent to every
 * configured edge so it stops serving the old bytes at once instead of at the
 * end of its fresh period (EDGE_FRESH_SECONDS, the bound that holds when no
 * event arrives), and so its stale-if-error copy of a deleted blob is void.
 *
 * Events are queued per edge, batched, and sent in the background: a write
 * never waits for the edge. A send that fails is retried with backoff until
 * it is delivered; the queue is bounded, and past its bound the queued fids
 * are collapsed into purges of their volumes (coarser, never lost). Every
 * failure, and the recovery after it, is logged.
 *
 * Two kinds of edge stand behind one interface: the Worker's own purge
 * endpoint (POST /_kelp/purge, its Cache API in the location that receives
 * it; the local stack, and one colo in production), and Cloudflare's
 * purge-by-tag API (every location at once, for the tags the Worker stores
 * its copies under: shared/cache-tags.ts).
 */

import { fileTag, volumeTag } from '../../shared/cache-tags.ts';
import { ConfigError } from '../config-error.ts';
import type { Logger } from '../observability/log.ts';

export interface PurgeBatch {
  fids: string[];
  volumes: number[];
}

/** Where purge events go. */
export interface EdgePurger {
  /** For logs, e.g. "edge http://127.0.0.1:8787". */
  readonly name: string;
  /** Most fids and volumes one send may carry. */
  readonly maxPerSend: number;
  /** Delivers the batch, or throws. */
  send(batch: PurgeBatch): Promise<void>;
}

/** Time limit of one send. */
export const PURGE_SEND_TIMEOUT_MS = 5_000;
/** Events arriving within this window go out in one request. */
export const PURGE_BATCH_DELAY_MS = 20;
/** First retry delay after a failed send; doubled on each failure. */
export const PURGE_RETRY_MIN_MS = 250;
export const PURGE_RETRY_MAX_MS = 30_000;
/** Fids queued per edge; beyond, they are collapsed into purges of their volumes. */
export const MAX_QUEUED_PURGE_FIDS = 100_000;
/** The Worker's MAX_PURGE_FIDS (edge/purge.ts). */
export const WORKER_PURGE_BATCH = 100;
/** Tags per Cloudflare purge request (its documented limit for purge by tag). */
export const CLOUDFLARE_TAGS_PER_PURGE = 30;

async function ok(res: Response, what: string): Promise<void> {
  if (res.ok) {
    await res.body?.cancel();
    return;
  }
  const text = (await res.text()).slice(0, 200);
  throw new Error(`${what} answered ${res.status}: ${text}`);
}

/** The Worker's POST /_kelp/purge, with its PURGE_KEY as a bearer token. */
export class WorkerPurgeEndpoint implements EdgePurger {
  readonly name: string;
  readonly maxPerSend = WORKER_PURGE_BATCH;
  private readonly url: string;
  private readonly key: string;

  constructor(edgeUrl: string, key: string) {
    const base = edgeUrl.replace(/\/+$/, '');
    this.name = `edge ${base}`;
    this.url = `${base}/_kelp/purge`;
    this.key = key;
  }

  async send(batch: PurgeBatch): Promise<void> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(batch),
      signal: AbortSignal.timeout(PURGE_SEND_TIMEOUT_MS),
    });
    await ok(res, this.url);
  }
}

export interface CloudflareZone {
  zoneId: string;
  apiToken: string;
  /** https://api.cloudflare.com/client/v4 unless a test points it elsewhere. */
  apiBase?: string;
}

/** Cloudflare's purge by cache tag: POST /zones/:zone/purge_cache {"tags": [...]}, every location at once. */
export class CloudflareTagPurge implements EdgePurger {
  readonly name: string;
  readonly maxPerSend = CLOUDFLARE_TAGS_PER_PURGE;
  private readonly url: string;
  private readonly token: string;

  constructor(zone: CloudflareZone) {
    const base = (zone.apiBase ?? 'https://api.cloudflare.com/client/v4').replace(/\/+$/, '');
    this.name = `cloudflare zone ${zone.zoneId}`;
    this.url = `${base}/zones/${encodeURIComponent(zone.zoneId)}/purge_cache`;
    this.token = zone.apiToken;
  }

  async send(batch: PurgeBatch): Promise<void> {
    const tags = [...batch.fids.map(fileTag), ...batch.volumes.map(volumeTag)];
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tags }),
      signal: AbortSignal.timeout(PURGE_SEND_TIMEOUT_MS),
    });
    await ok(res, this.name);
  }
}

/** One edge's queue: batching, retries with backoff, the bound. */
export class PurgeQueue {
  readonly purger: EdgePurger;
  private fids = new Set<string>();
  private volumes = new Set<number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sending: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private readonly log: Logger;
  /** Events delivered so far (for status and tests). */
  delivered = 0;

  private readonly maxQueued: number;

  constructor(purger: EdgePurger, log: Logger, maxQueued = MAX_QUEUED_PURGE_FIDS) {
    this.purger = purger;
    this.log = log;
    this.maxQueued = maxQueued;
  }

  get pending(): number {
    return this.fids.size + this.volumes.size;
  }

  add(fids: readonly string[], volumes: readonly number[] = []): void {
    if (this.closed) return;
    for (const f of fids) this.fids.add(f);
    for (const v of volumes) this.volumes.add(v);
    if (this.fids.size > this.maxQueued) this.collapse();
    if (!this.timer && !this.sending) this.schedule(PURGE_BATCH_DELAY_MS);
  }

  /** Too many fids queued (the edge has been unreachable a long time): purge their volumes instead. */
  private collapse(): void {
    const volumes = new Set<number>();
    for (const f of this.fids) volumes.add(Number(f.slice(0, f.indexOf(','))));
    for (const v of volumes) this.volumes.add(v);
    this.log.warn(
      `${this.purger.name}: more than ${this.maxQueued} purges queued; sending them as purges of volumes ${[...volumes].join(', ')}`,
    );
    this.fids.clear();
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sending = this.flush().finally(() => {
        this.sending = undefined;
        if (this.pending > 0 && !this.closed && !this.timer) this.schedule(this.retryDelay());
      });
    }, ms);
    this.timer.unref();
  }

  private retryDelay(): number {
    if (this.failures === 0) return 0;
    return Math.min(PURGE_RETRY_MAX_MS, PURGE_RETRY_MIN_MS * 2 ** (this.failures - 1));
  }

  /** Sends what is queued, one batch after another, until the queue is empty or a send fails. */
  private async flush(): Promise<void> {
    while (this.pending > 0) {
      const batch = this.take();
      try {
        await this.purger.send(batch);
      } catch (err) {
        // Put them back: the next attempt sends them again (purges are idempotent).
        for (const f of batch.fids) this.fids.add(f);
        for (const v of batch.volumes) this.volumes.add(v);
        this.failures++;
        if (this.failures === 1) {
          this.log.warn(
            `${this.purger.name}: purge failed (${(err as Error).message}); ${this.pending} queued, retrying with backoff`,
          );
        }
        return;
      }
      this.delivered += batch.fids.length + batch.volumes.length;
      if (this.failures > 0) {
        this.log.info(`${this.purger.name}: purges delivered again after ${this.failures} failed attempts`);
        this.failures = 0;
      }
    }
  }

  private take(): PurgeBatch {
    const batch: PurgeBatch = { fids: [], volumes: [] };
    let room = this.purger.maxPerSend;
    for (const v of this.volumes) {
      if (room-- <= 0) break;
      batch.volumes.push(v);
      this.volumes.delete(v);
    }
    for (const f of this.fids) {
      if (room-- <= 0) break;
      batch.fids.push(f);
      this.fids.delete(f);
    }
    return batch;
  }

  /** Resolves once nothing is queued or in flight (tests), or after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while ((this.pending > 0 || this.sending) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.pending === 0 && !this.sending;
  }

  /** One last attempt within `timeoutMs`; what is still queued then is logged, not silently dropped. */
  async close(timeoutMs: number): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      if (!this.sending) this.sending = this.flush().finally(() => (this.sending = undefined));
    }
    await this.drained(timeoutMs);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.pending > 0) {
      this.log.warn(
        `${this.purger.name}: ${this.pending} purges not delivered at shutdown; the edge stops serving those blobs within its fresh period (EDGE_FRESH_SECONDS) anyway`,
      );
    }
  }
}

/** The volume server's side: what changed, sent to every configured edge. */
export class EdgePurgeEvents {
  readonly queues: PurgeQueue[];

  constructor(purgers: EdgePurger[], log: Logger) {
    this.queues = purgers.map((p) => new PurgeQueue(p, log));
  }

  /** The fid's bytes were overwritten or deleted. */
  fileChanged(fid: string): void {
    for (const q of this.queues) q.add([fid]);
  }

  /** The volumes were deleted (with their collection). */
  volumesRemoved(ids: readonly number[]): void {
    if (ids.length === 0) return;
    for (const q of this.queues) q.add([], ids);
  }

  async drained(timeoutMs: number): Promise<boolean> {
    const all = await Promise.all(this.queues.map((q) => q.drained(timeoutMs)));
    return all.every(Boolean);
  }

  async close(timeoutMs = 2_000): Promise<void> {
    await Promise.all(this.queues.map((q) => q.close(timeoutMs)));
  }
}

export interface EdgePurgeConfig {
  /** Worker base URLs whose POST /_kelp/purge receives the events. */
  urls: string[];
  /** Their PURGE_KEY. */
  key?: string;
  cloudflare?: CloudflareZone;
}

/** The purgers a config names; none when it names no edge. */
export function edgePurgers(config: EdgePurgeConfig | undefined): EdgePurger[] {
  if (!config) return [];
  const out: EdgePurger[] = config.urls.map((url) => {
    if (!config.key)
      throw new ConfigError(`edge purge URL ${url} needs the edge's purge key ([edge] purgeKey)`);
    return new WorkerPurgeEndpoint(url, config.key);
  });
  if (config.cloudflare) out.push(new CloudflareTagPurge(config.cloudflare));
  return out;
}
