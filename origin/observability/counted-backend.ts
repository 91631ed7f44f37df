/**
 * A tier backend whose failed operations are reported (to
 * kelp_backend_errors_total, volume-metrics.ts), otherwise the backend
 * itself: the same stats, and the same optional capabilities. A file keeps
 * `readAtSync` where the backend's has it: without it every read of a
 * volume tiered to `local.default` went to the thread pool through
 * `readAt`'s retries instead of the event loop's pread (decision 0003),
 * and cost 1.7x the CPU of a local read.
 */
import { UnavailableError } from '../../shared/errors.ts';
import type { BackendFile, TierBackend } from '../../tiering/backends/backend.ts';

/** Called once per failed operation: `upload`, `download`, `read`, `stat`, `delete`. */
export type BackendFailure = (op: string) => void;

/** `p`, with its failure reported as `op`'s; an operation aborted on purpose (shutdown) is not the backend's failure. */
function counted<T>(failed: BackendFailure, op: string, p: Promise<T>, signal?: AbortSignal): Promise<T> {
  return p.catch((err: unknown) => {
    if (!signal?.aborted) failed(op);
    throw err;
  });
}

export function countedBackend(backend: TierBackend, failed: BackendFailure): TierBackend {
  const guard = <T>(op: string, p: Promise<T>, signal?: AbortSignal) => counted(failed, op, p, signal);
  return {
    type: backend.type,
    id: backend.id,
    name: backend.name,
    stats: backend.stats,
    upload: (path, key, opts) => guard('upload', backend.upload(path, key, opts), opts?.signal),
    download: (key, path, opts) => guard('download', backend.download(key, path, opts), opts?.signal),
    openFile: (key, size) => countedFile(backend.openFile(key, size), failed),
    stat: (key, signal) => guard('stat', backend.stat(key, signal), signal),
    delete: (key) => guard('delete', backend.delete(key)),
    describe: () => backend.describe(),
    ...(backend.sweepInterrupted ? { sweepInterrupted: () => backend.sweepInterrupted!() } : {}),
    close: () => backend.close(),
  };
}

function countedFile(file: BackendFile, failed: BackendFailure): BackendFile {
  const wrapped: BackendFile = {
    key: file.key,
    size: file.size,
    readAt: (offset, length, signal) => counted(failed, 'read', file.readAt(offset, length, signal), signal),
    close: () => file.close(),
  };
  if (file.readAtSync) {
    wrapped.readAtSync = (offset, into) => {
      try {
        file.readAtSync!(offset, into);
      } catch (err) {
        // Unavailable: the volume tries again through readAt, which counts it if that fails too.
        if (!(err instanceof UnavailableError)) failed('read');
        throw err;
      }
    };
  }
  return wrapped;
}
