/**
 * `kelp tier compact` (docs/format.md §10; SeaweedFS's volume.tier.compact): a delete on a tiered
 * volume only writes a local tombstone, so the cloud object keeps the dead
 * bytes. Compaction reclaims them, one replica at a time, over HTTP only:
 * download the `.dat`, seal the volume, vacuum it (forced), upload it again to
 * the same backend with the same keepLocalDat. The download deletes the old
 * object; the upload writes a new one under a fresh key.
 *
 * Garbage ratio, as decided before anything moves: the replica's
 * `deletedByteCount / size` from the volume server's `/status`, i.e. bytes of
 * dead needles over the `.dat`'s size. That is a little below vacuum's own
 * ratio (dead over bytes ever written, without headers), so it never compacts
 * where vacuum would not.
 *
 * Re-running after a crash midway is safe: a transfer still running is waited
 * for; a replica that is local again (its download done, the re-upload not)
 * is vacuumed and uploaded back to the backend of its last transfer (or
 * `backend`), whatever its garbage; a replica already compacted is under the
 * threshold and left alone.
 */
import { ConflictError } from '../../shared/errors.ts';
import type { RemoteDat, TierClient, TierJob, VacuumReport } from './client.ts';
import { TierRequestError } from './client.ts';

export const DEFAULT_COMPACT_THRESHOLD = 0.3;

export interface CompactOptions {
  garbageThreshold?: number;
  force?: boolean;
  /** For a replica found local: the backend to upload it back to (default: that of its last transfer). */
  backend?: string;
  pollMs?: number;
  log?: (line: string) => void;
  /** A progress display per transfer (the CLI's bars). */
  track?: (label: string) => { update(job: TierJob): void; done(): void };
}

export type ReplicaOutcome =
  | { server: string; kind: 'skipped'; reason: string }
  | { server: string; kind: 'failed'; error: string }
  | {
      server: string;
      kind: 'compacted';
      backend: string;
      /** The remote object before (or the local `.dat`, when compaction resumed on a local replica). */
      bytesBefore: number;
      bytesAfter: number;
      vacuum: VacuumReport;
    };

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Compacts every live replica of `volumeId`; stops at the first failure. */
export async function compactVolume(
  client: TierClient,
  volumeId: number,
  opts: CompactOptions = {},
): Promise<ReplicaOutcome[]> {
  const threshold = opts.garbageThreshold ?? DEFAULT_COMPACT_THRESHOLD;
  const log = opts.log ?? (() => {});
  const servers = await client.locations(volumeId);
  if (servers.length === 0) {
    throw new TierRequestError(`volume ${volumeId}: the master knows no live server holding it`);
  }
  // Where the replicas are tiered now: a replica left local by a crash goes back to its siblings' backend.
  const tiers = new Map<string, RemoteDat | null>();
  for (const server of servers) tiers.set(server, (await client.volumeTier(server, volumeId)).remote);
  const sibling = [...tiers.values()].find((r) => r !== null) ?? undefined;

  const wait = async (server: string, action: string): Promise<TierJob> => {
    const bar = opts.track?.(`volume ${volumeId} on ${server} ${action}`);
    const job = await client.waitForJob(server, volumeId, {
      pollMs: opts.pollMs ?? 250,
      onProgress: (j) => bar?.update(j),
    });
    bar?.done();
    return job;
  };

  const out: ReplicaOutcome[] = [];
  for (const server of servers) {
    const name = `volume ${volumeId} on ${server}`;
    let status = await client.volumeTier(server, volumeId);
    if (status.job?.state === 'running') {
      log(`${name}: its ${status.job.action} is already running; waiting for it`);
      await wait(server, status.job.action);
      status = await client.volumeTier(server, volumeId);
    }
    const remote = status.remote;
    const vol = (await client.serverVolumes(server)).find((v) => v.id === volumeId);
    if (!vol) {
      out.push({ server, kind: 'skipped', reason: 'the server no longer holds it' });
      log(`${name}: the server no longer holds it; skipped`);
      continue;
    }
    let backend: string;
    let keepLocalDat: boolean;
    let bytesBefore: number;
    if (remote) {
      backend = remote.backend;
      keepLocalDat = remote.keepLocalDat === true;
      bytesBefore = remote.size;
      const garbage = vol.size > 0 ? (vol.deletedByteCount ?? 0) / vol.size : 0;
      if (!opts.force && garbage < threshold) {
        const reason = `garbage ${pct(garbage)} (${vol.deletedByteCount ?? 0} of ${vol.size} bytes), under garbageThreshold ${pct(threshold)}`;
        out.push({ server, kind: 'skipped', reason });
        log(`${name}: ${reason}; nothing to do`);
        continue;
      }
      log(`${name}: garbage ${pct(garbage)} of ${bytesBefore} bytes on ${backend}; downloading`);
      try {
        await client.startDownload(server, volumeId);
      } catch (err) {
        // Started elsewhere in the meantime (the tiering service): wait for that one instead.
        if (!(err instanceof TierRequestError && err.serverError instanceof ConflictError)) throw err;
      }
      const job = await wait(server, 'download');
      if (job.state === 'failed') {
        const error = `download failed: ${job.error ?? 'unknown error'}`;
        out.push({ server, kind: 'failed', error });
        log(`${name}: ${error}`);
        return out;
      }
    } else {
      // Local: an interrupted compaction (download done, upload not), or a volume never tiered.
      const last = status.job?.backend;
      const resumeTo = opts.backend ?? sibling?.backend ?? last;
      if (!resumeTo) {
        out.push({ server, kind: 'skipped', reason: 'not tiered' });
        log(`${name}: not tiered; nothing to compact`);
        continue;
      }
      backend = resumeTo;
      keepLocalDat = sibling?.keepLocalDat === true;
      bytesBefore = vol.size;
      log(`${name}: local (an interrupted compaction?); vacuuming and uploading it back to ${backend}`);
    }
    // Sealed first, so no write lands between the vacuum and the upload.
    await client.setReadOnly(server, volumeId);
    const vacuum = await client.vacuum(server, volumeId, { force: true });
    log(`${name}: vacuumed, .dat ${vacuum.sizeBefore} -> ${vacuum.sizeAfter} bytes; uploading to ${backend}`);
    try {
      await client.startUpload(server, volumeId, backend, keepLocalDat);
    } catch (err) {
      if (!(err instanceof TierRequestError && err.serverError instanceof ConflictError)) throw err;
    }
    const job = await wait(server, 'upload');
    const after = (await client.volumeTier(server, volumeId)).remote;
    if (job.state === 'failed' || !after) {
      const error = `upload failed: ${job.error ?? 'the volume is not tiered after it'} (the volume stays local and sealed; re-run to retry)`;
      out.push({ server, kind: 'failed', error });
      log(`${name}: ${error}`);
      return out;
    }
    out.push({ server, kind: 'compacted', backend, bytesBefore, bytesAfter: after.size, vacuum });
    log(
      `${name}: compacted on ${backend}: ${bytesBefore} -> ${after.size} bytes (${bytesBefore - after.size} reclaimed)`,
    );
  }
  return out;
}
