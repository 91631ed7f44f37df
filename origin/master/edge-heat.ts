/**
 * Read heat the edge reports (`POST /edge/heat`, docs/decisions/0010-origin-free-reads.md):
 * reads the Worker answered without any origin request (cache hits, origin-free
 * reads from a bucket), which volume servers never see. Tier policies add it
 * to the volume servers' own counts, so a tiered volume that is hot at the
 * edge is promoted back by the existing `promoteAboveReadsPerDay` rule.
 *
 * Authenticated by its own bearer keys (`KELP_EDGE_HEAT_KEYS`, the Worker's
 * HEAT_KEY secret), good for this endpoint only: the worst a leaked key does
 * is skew heat. Held in memory over the last 24 hours by the leader: a
 * follower forwards reports to it (leader-proxy.ts), and the leader saves the
 * hottest volumes' counts in the state store at a bounded rate
 * (edge-heat-store.ts), so a new leader, or a restarted one, starts from them.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { BadRequestError, ForbiddenError, UnauthorizedError } from '../../shared/errors.ts';
import { ReadHeat } from '../../shared/read-heat.ts';
import { readBody } from '../http/body.ts';
import { KeySet } from '../security/access.ts';

export const EDGE_HEAT_PATH = '/edge/heat';
/** Largest report body (10,000 volumes with counts). */
export const MAX_HEAT_BODY_BYTES = 256 * 1024;
/** Volumes whose edge heat one master keeps (the oldest reported is dropped past it). */
export const MAX_HEAT_VOLUMES = 100_000;
/** Volumes whose counts a snapshot keeps (the hottest): ≤ 24 × 11 digits each, well under etcd's 1.5 MiB value. */
export const MAX_SNAPSHOT_VOLUMES = 2_048;
/** Format of a snapshot (`EdgeHeat.snapshot`). */
const SNAPSHOT_FORMAT = 1;
/** Most reads one report may claim for one volume (an isolate flushes far more often than this). */
const MAX_READS_PER_REPORT = 1_000_000_000;

const report = z.object({
  reads: z
    .record(z.string().regex(/^[1-9]\d{0,9}$/), z.number().int().min(0).max(MAX_READS_PER_REPORT))
    .refine((r) => Object.keys(r).length <= 10_000, 'at most 10,000 volumes per report'),
});

export class EdgeHeat {
  private readonly heats = new Map<number, ReadHeat>();
  private readonly keys: KeySet;
  private readonly now: () => number;
  /** Reports taken in since the last snapshot. */
  private changed = false;

  constructor(keys: string[] | undefined, now: () => number) {
    this.keys = new KeySet(keys ?? []);
    this.now = now;
  }

  add(volumeId: number, reads: number): void {
    let heat = this.heats.get(volumeId);
    if (!heat) {
      heat = new ReadHeat(this.now);
      if (this.heats.size >= MAX_HEAT_VOLUMES) this.heats.delete(this.heats.keys().next().value!);
    } else this.heats.delete(volumeId);
    this.heats.set(volumeId, heat);
    heat.add(reads);
    this.changed = true;
  }

  /** Whether a report came in since the last snapshot. */
  get dirty(): boolean {
    return this.changed;
  }

  /** A snapshot did not reach the store: the next one must be taken. */
  markDirty(): void {
    this.changed = true;
  }

  /**
   * The hottest MAX_SNAPSHOT_VOLUMES volumes' hourly counts as JSON
   * (`{format, hour, volumes: {"<id>": [counts, newest first]}}`); clears `dirty`.
   */
  snapshot(): string {
    this.changed = false;
    const all = [...this.heats].map(([id, heat]) => ({ id, ...heat.recent() }));
    const sum = (c: number[]) => c.reduce((a, b) => a + b, 0);
    all.sort((a, b) => sum(b.counts) - sum(a.counts));
    const volumes: Record<string, number[]> = {};
    let hour = 0;
    for (const v of all.slice(0, MAX_SNAPSHOT_VOLUMES)) {
      let end = v.counts.length;
      while (end > 0 && v.counts[end - 1] === 0) end--;
      if (end === 0) continue;
      volumes[String(v.id)] = v.counts.slice(0, end);
      hour = Math.max(hour, v.hour);
    }
    return JSON.stringify({ format: SNAPSHOT_FORMAT, hour, volumes });
  }

  /**
   * Takes in a snapshot (another leader's, or this one's from before a
   * restart), keeping per hour the larger count; returns the volumes it named.
   * A snapshot that is not one is ignored: heat is advice, not data.
   */
  restore(text: string): number {
    let raw: { format?: unknown; hour?: unknown; volumes?: unknown };
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch {
      return 0;
    }
    if (raw.format !== SNAPSHOT_FORMAT || !Number.isSafeInteger(raw.hour) || typeof raw.volumes !== 'object')
      return 0;
    let n = 0;
    for (const [id, counts] of Object.entries(raw.volumes as Record<string, unknown>)) {
      const volumeId = Number(id);
      if (!Number.isSafeInteger(volumeId) || volumeId <= 0 || !Array.isArray(counts)) continue;
      if (n >= MAX_SNAPSHOT_VOLUMES) break;
      let heat = this.heats.get(volumeId);
      if (!heat) {
        if (this.heats.size >= MAX_HEAT_VOLUMES) continue;
        heat = new ReadHeat(this.now);
        this.heats.set(volumeId, heat);
      }
      heat.mergeMax(raw.hour as number, counts.map(Number));
      n++;
    }
    return n;
  }

  /** Throws unless the request carries an edge heat key (a follower checks before it forwards). */
  authorize(req: IncomingMessage): void {
    if (this.keys.size === 0)
      throw new ForbiddenError('edge heat reports are off here (KELP_EDGE_HEAT_KEYS is not set)');
    const token = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    if (!this.keys.has(token)) throw new UnauthorizedError('edge heat reports need an edge heat key');
  }

  /** Edge reads of the volume over the last 24 hours. */
  perDay(volumeId: number): number {
    return this.heats.get(volumeId)?.perDay() ?? 0;
  }

  /** The report's body, once its key is checked (read whole, bounded). */
  async readReport(req: IncomingMessage): Promise<Buffer> {
    this.authorize(req);
    return readBody(req, MAX_HEAT_BODY_BYTES);
  }

  /** Applies one report (its key checked by readReport); returns how many volumes it named. */
  apply(body: Buffer): number {
    let raw: unknown;
    try {
      raw = JSON.parse(body.toString());
    } catch {
      throw new BadRequestError('edge heat report must be JSON: {"reads": {"<volume id>": <count>}}');
    }
    const parsed = report.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new BadRequestError(`edge heat report: ${issue.path.join('.') || '(body)'}: ${issue.message}`);
    }
    const entries = Object.entries(parsed.data.reads);
    for (const [id, n] of entries) if (n > 0) this.add(Number(id), n);
    return entries.length;
  }
}
