/**
 * Read heat for tier policies (docs/decisions/0010-origin-free-reads.md): the
 * reads this isolate answered with no origin request (cache hits, stale
 * copies, reads from a tier bucket), counted per volume and reported in
 * batches to the master's `POST /edge/heat` with the HEAT_KEY secret. Volume
 * servers count the reads that reach them; together the two are the demand a
 * policy weighs, so a tiered volume that turns hot at the edge is promoted back.
 *
 * Best effort and bounded: a report goes out at most every HEAT_FLUSH_SECONDS
 * (or sooner once HEAT_FLUSH_READS have piled up), in the background
 * (waitUntil), to the first master that takes it; counts a failed report
 * carried are kept for the next one, up to HEAT_MAX_VOLUMES volumes. An
 * isolate that is evicted loses what it had not sent.
 */
import { MasterClient } from '../shared/client/master-client.ts';
import { KelpError } from '../shared/errors.ts';
import type { EdgeConfig } from './env.ts';

export const HEAT_PATH = '/edge/heat';
/** Reads pending that trigger a report before the interval is up. */
export const HEAT_FLUSH_READS = 10_000;
/** Volumes an isolate keeps counts for between reports. */
export const HEAT_MAX_VOLUMES = 10_000;

const pending = new Map<number, number>();
let pendingReads = 0;
let lastFlush = Date.now();
let flushing = false;

async function report(config: EdgeConfig, reads: Map<number, number>): Promise<boolean> {
  const body = JSON.stringify({ reads: Object.fromEntries([...reads].map(([id, n]) => [String(id), n])) });
  // The shared client's failover: a master that is down or says "not now" passes the report to the next.
  const masters = new MasterClient(config.masters, {
    timeoutMs: config.originTimeoutMs,
    sign: (_method, _url, headers) => ({ ...headers, authorization: `Bearer ${config.heatKey}` }),
  });
  try {
    await masters.json(HEAT_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return true;
  } catch (err) {
    if (!(err instanceof KelpError)) throw err;
    // Refused (a wrong key, a bad report): another master, or the same one later, would say the same.
    return err.status < 500;
  }
}

/**
 * Most reports one flush sends back to back, each with the reads that arrived while the previous one was
 * out (no other flush starts meanwhile, so a bound too low would strand the last of them until the next
 * read after the interval).
 */
const MAX_REPORTS_PER_FLUSH = 100;

async function flush(config: EdgeConfig): Promise<void> {
  flushing = true;
  try {
    for (let round = 0; round < MAX_REPORTS_PER_FLUSH && pending.size > 0; round++) {
      const batch = new Map(pending);
      pending.clear();
      pendingReads = 0;
      lastFlush = Date.now();
      if (await report(config, batch)) continue;
      for (const [id, n] of batch) {
        if (pending.size >= HEAT_MAX_VOLUMES && !pending.has(id)) break;
        pending.set(id, (pending.get(id) ?? 0) + n);
        pendingReads += n;
      }
      return;
    }
  } finally {
    flushing = false;
  }
}

/** Counts one read of the volume served without an origin; reports when due. Off without HEAT_KEY. */
export function noteEdgeRead(volumeId: number, config: EdgeConfig, ctx: ExecutionContext): void {
  if (!config.heatKey || config.masters.length === 0) return;
  if (pending.has(volumeId) || pending.size < HEAT_MAX_VOLUMES) {
    pending.set(volumeId, (pending.get(volumeId) ?? 0) + 1);
    pendingReads++;
  }
  const due = pendingReads >= HEAT_FLUSH_READS || Date.now() - lastFlush >= config.heatFlushMs;
  if (due && !flushing) ctx.waitUntil(flush(config));
}
