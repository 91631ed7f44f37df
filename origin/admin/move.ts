/**
 * Moving a volume from one volume server to another, or copying it there as
 * a new replica: the orchestration of the steps in origin/volume/volume-move.ts
 * (docs/decisions/0007-volume-move.md). Every run starts by asking both
 * servers where the volume stands, so running it again after a crash of the
 * source, the target or the orchestrator finishes what was started.
 */
import { ConflictError, NotFoundError } from '../../shared/errors.ts';
import type { ServerVolume, VolumeServerClient } from './cluster.ts';

export const MOVE_STEPS = ['freeze', 'copy', 'mount', 'delete', 'finish'] as const;
export type MoveStep = (typeof MOVE_STEPS)[number];

/**
 * How long a volume server trusts its lookup of a volume's replicas
 * (origin/volume/replication.ts, LOCATIONS_TTL_MS), with a margin: a new
 * replica stays frozen this long, so every replica's fan-out includes it
 * before it takes writes.
 */
export const REPLICA_LOOKUP_SETTLE_MS = 6_000;

export interface MoveRequest {
  volumeId: number;
  source: string;
  target: string;
  /** `move` removes the source's copy at the end; `copy` keeps it (a new replica). */
  mode: 'move' | 'copy';
}

export interface MoveOptions {
  /** Called (and awaited) before each step runs: progress for the CLI, a kill point for tests. */
  onStep?: (step: MoveStep, detail: string) => void | Promise<void>;
  /** Wait before a new replica takes writes (copy mode); tests shorten it. */
  settleMs?: number;
}

export interface MoveOutcome {
  volumeId: number;
  source: string;
  target: string;
  mode: 'move' | 'copy';
  /** The steps that ran this time (a resumed move skips those done before). */
  steps: MoveStep[];
  bytes: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function find(
  client: VolumeServerClient,
  server: string,
  id: number,
): Promise<ServerVolume | undefined> {
  return (await client.volumes(server)).find((v) => v.id === id);
}

export async function moveVolume(
  client: VolumeServerClient,
  req: MoveRequest,
  opts: MoveOptions = {},
): Promise<MoveOutcome> {
  const { volumeId, source, target, mode } = req;
  if (source === target) throw new ConflictError(`volume ${volumeId}: source and target are both ${source}`);
  const out: MoveOutcome = { volumeId, source, target, mode, steps: [], bytes: 0 };
  const step = async (name: MoveStep, detail: string, run: () => Promise<unknown>) => {
    await opts.onStep?.(name, detail);
    await run();
    out.steps.push(name);
  };
  const [src, dst] = await Promise.all([find(client, source, volumeId), find(client, target, volumeId)]);
  const arrived = dst?.moving?.role === 'target' && dst.moving.peer === source;
  if (arrived && dst.moving!.mode !== mode) {
    throw new ConflictError(
      `volume ${volumeId} is arriving on ${target} by a ${dst.moving!.mode}, not a ${mode}`,
    );
  }
  if (dst && !arrived) {
    // Already there for good: a finished move (source gone or still marked), or a replica of its own.
    if (src?.moving?.role === 'source' && src.moving.peer === target && mode === 'move') {
      await step('delete', `remove volume ${volumeId} from ${source}`, () =>
        client.deleteVolume(source, volumeId, { movedTo: target }),
      );
      return out;
    }
    if (!src) return out;
    throw new ConflictError(`volume ${volumeId} is on ${target} already (and on ${source})`);
  }
  if (!dst) {
    if (!src) throw new NotFoundError(`volume ${volumeId} is on neither ${source} nor ${target}`);
    if (src.remote)
      throw new ConflictError(`volume ${volumeId} is tiered to ${src.remote}: download it first`);
    await step('freeze', `freeze volume ${volumeId} on ${source}`, () =>
      client.freeze(source, volumeId, target, mode),
    );
    await step('copy', `copy volume ${volumeId} from ${source} to ${target} and verify it`, async () => {
      out.bytes += (await client.copy(target, volumeId, source, mode)).bytes;
    });
    await step('mount', `switch: put volume ${volumeId} in place on ${target}`, () =>
      client.mount(target, volumeId, source),
    );
  }
  if (mode === 'move') {
    // Gone already when a resumed move's source delete had run before the crash.
    if (src) {
      await step('delete', `remove volume ${volumeId} from ${source}`, () =>
        client.deleteVolume(source, volumeId, { movedTo: target }),
      );
    }
    await step('finish', `volume ${volumeId} takes writes on ${target}`, () =>
      client.finish(target, volumeId),
    );
    return out;
  }
  await step('finish', `volume ${volumeId} takes writes on ${source} and ${target}`, async () => {
    await sleep(opts.settleMs ?? REPLICA_LOOKUP_SETTLE_MS);
    await client.finish(target, volumeId);
    if (src || (await find(client, source, volumeId))) await client.unfreeze(source, volumeId);
  });
  return out;
}
