/**
 * Moving a sealed volume's `.dat` to a cloud tier and back (brief §7).
 *
 * Upload: seal → upload under a fresh key (the backend verifies size and
 * checksum) → read one needle back through the backend → write the `.vif`
 * (the commit point) → switch reads → delete the local `.dat` (unless kept).
 * A failure or crash before the `.vif` leaves the volume local, sealed and
 * readable, with no `.vif` pointing at a partial object; a retry starts over
 * under a new key. Download reverses it: fetch (checksum-checked, atomic
 * rename) → reopen locally → drop the remote entry → delete the object.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ConflictError, InvalidParamError, NotFoundError } from '../../shared/errors.ts';
import { encodeSuperBlock } from '../../shared/superblock.ts';
import {
  type BackendConfig,
  type BackendFile,
  createBackend,
  DEFAULT_LOCAL_TIER_DIR,
  type TierBackend,
} from '../../tiering/backend.ts';
import type { Volume } from './volume.ts';
import type { RemoteDat } from './volume-info.ts';

/** The backends a volume server can tier to, by name (`s3.default`). `local.default` always exists. */
export class BackendRegistry {
  private readonly backends = new Map<string, TierBackend>();

  static async create(configs: BackendConfig[], firstDataDir: string): Promise<BackendRegistry> {
    const registry = new BackendRegistry();
    const all = [...configs];
    if (!all.some((c) => c.type === 'local' && c.id === 'default')) {
      all.push({ type: 'local', id: 'default', path: join(firstDataDir, DEFAULT_LOCAL_TIER_DIR) });
    }
    for (const config of all) {
      const backend = await createBackend(config);
      registry.backends.set(backend.name, backend);
    }
    return registry;
  }

  get(name: string): TierBackend {
    const backend = this.backends.get(name) ?? this.backends.get(`${name}.default`);
    if (!backend) {
      throw new InvalidParamError(
        `no backend "${name}" here (configured: ${[...this.backends.keys()].join(', ')})`,
      );
    }
    return backend;
  }

  openRemote(remote: RemoteDat): BackendFile | undefined {
    return this.backends.get(remote.backend)?.openFile(remote.key, remote.size);
  }

  names(): string[] {
    return [...this.backends.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.backends.values()].map((b) => b.close()));
  }
}

export interface TierJob {
  volumeId: number;
  action: 'upload' | 'download';
  backend: string;
  state: 'running' | 'done' | 'failed';
  bytes: number;
  total: number;
  error?: string;
  startedAt: number;
  finishedAt?: number;
}

/** One transfer per volume at a time; the latest job per volume is kept for `status`. */
export class TierJobs {
  private readonly jobs = new Map<number, TierJob>();

  get(volumeId: number): TierJob | undefined {
    return this.jobs.get(volumeId);
  }

  all(): TierJob[] {
    return [...this.jobs.values()];
  }

  /** Starts `run` in the background; a second job for a busy volume is a 409. */
  start(
    volumeId: number,
    action: TierJob['action'],
    backend: string,
    run: (progress: (bytes: number, total: number) => void) => Promise<void>,
  ): TierJob {
    if (this.jobs.get(volumeId)?.state === 'running') {
      throw new ConflictError(`volume ${volumeId} already has a tier transfer running`);
    }
    const job: TierJob = {
      volumeId,
      action,
      backend,
      state: 'running',
      bytes: 0,
      total: 0,
      startedAt: Date.now(),
    };
    this.jobs.set(volumeId, job);
    run((bytes, total) => {
      job.bytes = bytes;
      job.total = total;
    }).then(
      () => {
        job.state = 'done';
        job.finishedAt = Date.now();
      },
      (err: unknown) => {
        job.state = 'failed';
        job.error = err instanceof Error ? err.message : String(err);
        job.finishedAt = Date.now();
      },
    );
    return job;
  }
}

export interface TierUploadOptions {
  keepLocalDat: boolean;
  onProgress?: (bytes: number, total: number) => void;
}

export async function tierUpload(
  volume: Volume,
  backend: TierBackend,
  opts: TierUploadOptions,
): Promise<RemoteDat> {
  if (volume.info.remote) {
    if (volume.isRemote || opts.keepLocalDat) return volume.info.remote;
    // Uploaded and recorded, but the local copy outlived a crash or a keep: finish the move.
    const { key, size } = volume.info.remote;
    await volume.attachRemote(volume.info.remote, volume.remote ?? backend.openFile(key, size), true);
    return volume.info.remote;
  }
  volume.setReadOnly(true);
  await volume.syncer.flush();
  const stem = volume.config.collection ? `${volume.config.collection}_${volume.id}` : String(volume.id);
  // A fresh key per attempt: a retry never meets (or trusts) the remains of an earlier one.
  const key = `${stem}-${randomUUID()}.dat`;
  const size = volume.datSize;
  let uploaded = false;
  try {
    const result = await backend.upload(volume.path('dat'), key, { onProgress: opts.onProgress });
    uploaded = true;
    if (result.size !== size) {
      throw new ConflictError(`volume ${volume.id}: uploaded ${result.size} bytes, expected ${size}`);
    }
    const file = backend.openFile(key, result.size);
    await verifyOneNeedle(volume, file);
    const remote: RemoteDat = {
      backend: backend.name,
      key,
      size: result.size,
      sha256: result.sha256,
      mtime: result.mtime.toISOString(),
      superBlock: Buffer.from(encodeSuperBlock(volume.superBlock)).toString('base64'),
      keepLocalDat: opts.keepLocalDat,
    };
    await volume.attachRemote(remote, file, !opts.keepLocalDat);
    volume.config.onChange?.();
    return remote;
  } catch (err) {
    if (uploaded) await backend.delete(key).catch(() => {});
    throw err;
  }
}

/** Reads the last needle back through the backend: proof that offsets line up before anything local changes. */
async function verifyOneNeedle(volume: Volume, file: BackendFile): Promise<void> {
  let last: { key: bigint; offset: number; size: number } | undefined;
  volume.map.forEach((key, offset, size) => {
    if (size >= 0 && (!last || offset > last.offset)) last = { key, offset, size };
  });
  if (!last) return;
  const local = volume.recordAt(last.key, last.offset, last.size);
  const remote = await volume.recordFrom(file, last.key, last.offset, last.size);
  if (remote.checksum !== local.checksum || remote.cookie !== local.cookie) {
    throw new ConflictError(`volume ${volume.id}: the uploaded copy does not read back the same`);
  }
}

export async function tierDownload(
  volume: Volume,
  registry: BackendRegistry,
  onProgress?: (bytes: number, total: number) => void,
): Promise<void> {
  const remote = volume.info.remote;
  if (!remote) throw new NotFoundError(`volume ${volume.id} is not tiered`);
  const backend = registry.get(remote.backend);
  if (volume.isRemote) {
    await backend.download(remote.key, volume.path('dat'), { expectedSha256: remote.sha256, onProgress });
  }
  await volume.detachRemote();
  await backend.delete(remote.key);
}
