/**
 * Read heat the edge reports (`POST /edge/heat`, docs/decisions/0010-origin-free-reads.md):
 * reads the Worker answered without any origin request (cache hits, origin-free
 * reads from a bucket), which volume servers never see. Tier policies add it
 * to the volume servers' own counts, so a tiered volume that is hot at the
 * edge is promoted back by the existing `promoteAboveReadsPerDay` rule.
 *
 * Authenticated by its own bearer keys (`KELP_EDGE_HEAT_KEYS`, the Worker's
 * HEAT_KEY secret), good for this endpoint only: the worst a leaked key does
 * is skew heat. Held in memory over the last 24 hours, per master (the edge
 * and the tiering service ask the masters in the order given, so the same
 * one hears and is asked); a restarted master starts from zero.
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
  }

  /** Edge reads of the volume over the last 24 hours. */
  perDay(volumeId: number): number {
    return this.heats.get(volumeId)?.perDay() ?? 0;
  }

  /** Checks the bearer key, reads and applies one report; returns how many volumes it named. */
  async handle(req: IncomingMessage): Promise<number> {
    if (this.keys.size === 0)
      throw new ForbiddenError('edge heat reports are off here (KELP_EDGE_HEAT_KEYS is not set)');
    const token = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    if (!this.keys.has(token)) throw new UnauthorizedError('edge heat reports need an edge heat key');
    const body = await readBody(req, MAX_HEAT_BODY_BYTES);
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
