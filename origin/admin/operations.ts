/**
 * The admin operations themselves, over a cluster view and a client of the
 * volume servers: run the same by the master's endpoints and schedule and by
 * `kelp admin` (cluster.ts). Each reports what it did, volume by volume; a
 * failure on one volume is reported and the rest go on.
 */
import type { VacuumReport } from '../../shared/api.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { type ClusterView, holdersById, type VolumeServerClient } from './cluster.ts';
import { type MoveOptions, moveVolume } from './move.ts';
import { type Action, describe } from './plans.ts';

/** SeaweedFS's default garbage threshold for `/vol/vacuum`. */
export const DEFAULT_GARBAGE_THRESHOLD = 0.3;

export interface VacuumOptions {
  garbageThreshold: number;
  collection?: string;
  volumeId?: number;
  dryRun?: boolean;
  /** Told before each replica is vacuumed (the CLI's progress bar). */
  onVolume?: (done: number, total: number, label: string) => void;
}

export interface VacuumResult {
  volumeId: number;
  server: string;
  /** deletedByteCount / size from the last heartbeat: what the dry run judges by. */
  garbageEstimate: number;
  report?: VacuumReport;
  skipped?: string;
  error?: string;
}

/**
 * Compacts every replica whose garbage is at least the threshold. Each volume
 * server judges its replica by its own exact ratio (the heartbeat's is an
 * estimate), so every local replica is asked; tiered and frozen ones are not.
 */
export async function vacuumCluster(
  view: ClusterView,
  client: VolumeServerClient,
  opts: VacuumOptions,
): Promise<VacuumResult[]> {
  const work: VacuumResult[] = [];
  for (const [id, hs] of holdersById(view)) {
    if (opts.volumeId !== undefined && id !== opts.volumeId) continue;
    for (const { node, v } of hs) {
      if (opts.collection !== undefined && v.collection !== opts.collection) continue;
      const garbageEstimate = v.size > 0 ? v.deletedByteCount / v.size : 0;
      const r: VacuumResult = { volumeId: id, server: node.url, garbageEstimate };
      if (v.remote) r.skipped = `tiered to ${v.remote} (kelp tier compact reclaims its space)`;
      else if (v.moving) r.skipped = 'in a move';
      else if (opts.dryRun && garbageEstimate < opts.garbageThreshold) r.skipped = 'under the threshold';
      work.push(r);
    }
  }
  if (opts.volumeId !== undefined && work.length === 0) {
    throw new NotFoundError(`volume ${opts.volumeId} is on no alive server`);
  }
  const todo = work.filter((r) => !r.skipped);
  let done = 0;
  for (const r of todo) {
    opts.onVolume?.(done++, todo.length, `volume ${r.volumeId} on ${r.server}`);
    if (opts.dryRun) continue;
    try {
      r.report = await client.vacuum(r.server, r.volumeId, opts.garbageThreshold);
    } catch (err) {
      r.error = (err as Error).message;
    }
  }
  opts.onVolume?.(todo.length, todo.length, 'done');
  return work;
}

/** Marks every alive replica of a volume read-only or writable. */
export async function markVolume(
  view: ClusterView,
  client: VolumeServerClient,
  volumeId: number,
  readOnly: boolean,
  dryRun = false,
): Promise<string[]> {
  const hs = holdersById(view).get(volumeId);
  if (!hs?.length) throw new NotFoundError(`volume ${volumeId} is on no alive server`);
  const servers = hs.map((h) => h.node.url);
  if (!dryRun) for (const s of servers) await client.mark(s, volumeId, readOnly);
  return servers;
}

export interface ActionResult {
  action: Action;
  description: string;
  ok: boolean;
  error?: string;
}

/** Carries out planned actions one at a time; `onAction` is told before each (progress). */
export async function runActions(
  client: VolumeServerClient,
  actions: Action[],
  opts: { dryRun?: boolean; onAction?: (index: number, action: Action) => void; move?: MoveOptions } = {},
): Promise<ActionResult[]> {
  const out: ActionResult[] = [];
  for (const [i, a] of actions.entries()) {
    opts.onAction?.(i, a);
    const result: ActionResult = { action: a, description: describe(a), ok: true };
    out.push(result);
    if (opts.dryRun || a.kind === 'skip') {
      result.ok = a.kind !== 'skip';
      continue;
    }
    try {
      switch (a.kind) {
        case 'move':
        case 'replicate':
        case 'resume': {
          // A replication is a copy that keeps its source; a resumed one goes on as it began.
          const mode = a.kind === 'resume' ? a.mode : a.kind === 'move' ? 'move' : 'copy';
          await moveVolume(client, { volumeId: a.volumeId, source: a.from, target: a.to, mode }, opts.move);
          break;
        }
        case 'remove':
          await client.deleteVolume(a.from, a.volumeId, { extra: true });
          break;
        case 'unfreeze':
          await client.unfreeze(a.from, a.volumeId);
          break;
        case 'dropArrival':
          await client.deleteVolume(a.from, a.volumeId, { abortArrival: true });
          break;
      }
    } catch (err) {
      result.ok = false;
      result.error = (err as Error).message;
    }
  }
  return out;
}
