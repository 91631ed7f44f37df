/**
 * A directory as a tier: the embedded default (`local.default`), so tiering
 * runs without a cloud account, and a cold disk or a network mount in
 * production. Objects are plain files named by key; writes go through a temp
 * file, fsync and rename, so a key is either absent or complete.
 */
import { closeSync, constants, open as fsOpen, read as fsRead, openSync, readSync } from 'node:fs';
import { copyFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { fsyncDirAsync } from '../../origin/fs/files.ts';
import {
  InvalidParamError,
  NotFoundError,
  TruncatedDataError,
  UnavailableError,
} from '../../shared/errors.ts';
import {
  type BackendFile,
  type BackendStats,
  backendName,
  DescribedBackend,
  type DownloadOptions,
  type DownloadResult,
  type LocalBackendConfig,
  type ObjectStat,
  type TierBackend,
  type TransferOptions,
  type UploadResult,
} from './backend.ts';
import { FileHasher } from './file-hash.ts';
import { type RetryPolicy, retryPolicy, withRetry } from './retry.ts';
import { checkDigest, checkRead, fsyncFile, replaceAtomically, sweepTempFiles } from './transfer.ts';

/**
 * How long a temp file in the tier directory must have gone unwritten before
 * a starting server removes it as the remains of a killed transfer. Not 0:
 * a tier directory may be shared (a network mount several volume servers
 * tier to), so another live process may be writing a temp file there right
 * now, and a pid in the name proves nothing across hosts or pid namespaces.
 * A live transfer writes its temp file every few milliseconds (its mtime
 * moves with each chunk), so an hour without a write means no writer is left.
 */
export const TIER_TEMP_FILE_MAX_IDLE_MS = 60 * 60 * 1000;

/** Failures of a disk or mount that may pass (a flaky NFS server, fd exhaustion); retried, then 503. */
const TRANSIENT_FS_CODES = new Set(['EIO', 'ESTALE', 'ENOTCONN', 'EAGAIN', 'EMFILE', 'ENFILE', 'ETIMEDOUT']);

function fsCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A filesystem failure as a KelpError; anything unexpected passes through untouched. */
export function mapFsError(err: unknown, what: string): unknown {
  const code = fsCode(err);
  if (code === 'ENOENT') return new NotFoundError(`${what}: no such object`, { cause: err });
  if (code !== undefined && TRANSIENT_FS_CODES.has(code)) {
    return new UnavailableError(`${what}: ${code}`, undefined, { cause: err });
  }
  return err;
}

/** Keys are relative paths of plain segments: nothing may escape the backend's directory. */
export function objectPath(root: string, key: string): string {
  const segments = key.split('/');
  if (
    key === '' ||
    isAbsolute(key) ||
    key.includes('\\') ||
    key.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new InvalidParamError(`invalid object key ${JSON.stringify(key)}`);
  }
  return join(root, ...segments);
}

export class LocalBackend extends DescribedBackend implements TierBackend {
  readonly type = 'local';
  readonly id: string;
  readonly name: string;
  readonly stats: BackendStats = { requests: 0, reads: 0, bytesRead: 0 };
  readonly root: string;
  readonly #retry: RetryPolicy;

  constructor(config: LocalBackendConfig) {
    super(config);
    this.id = config.id;
    this.name = backendName(config);
    this.root = config.path;
    this.#retry = retryPolicy(config.retry);
  }

  /** Temp files of uploads (and downloads into it) that were killed, idle for TIER_TEMP_FILE_MAX_IDLE_MS. */
  sweepInterrupted(): string[] {
    // Recursive: keys with a `/` put objects, and their temp files, in subdirectories.
    return sweepTempFiles(this.root, { minAgeMs: TIER_TEMP_FILE_MAX_IDLE_MS, recursive: true });
  }

  async upload(localPath: string, key: string, opts: TransferOptions = {}): Promise<UploadResult> {
    const dest = objectPath(this.root, key);
    const total = (await stat(localPath)).size;
    this.stats.requests++;
    const { size, ...checksum } = await copyChecked(localPath, dest, total, opts);
    const written = await stat(dest);
    return { key, size, ...checksum, verifiedBy: 'fsync+size', mtime: written.mtime };
  }

  async download(key: string, localPath: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
    const src = objectPath(this.root, key);
    const what = `${this.name} download ${key}`;
    return withRetry(
      what,
      this.#retry,
      async () => {
        this.stats.requests++;
        try {
          const object = await stat(src);
          const total = object.size;
          if (opts.move) {
            const moved = await moveChecked(src, localPath, object, opts);
            if (moved) return moved;
          }
          return await copyChecked(src, localPath, total, opts);
        } catch (err) {
          throw mapFsError(err, what);
        }
      },
      opts,
    );
  }

  openFile(key: string, size: number): BackendFile {
    return new LocalFile(this, objectPath(this.root, key), key, size, this.#retry);
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectStat | undefined> {
    const path = objectPath(this.root, key);
    const what = `${this.name} stat ${key}`;
    return withRetry(
      what,
      this.#retry,
      async () => {
        this.stats.requests++;
        try {
          const st = await stat(path);
          return { size: st.size, mtime: st.mtime };
        } catch (err) {
          if (fsCode(err) === 'ENOENT') return undefined;
          throw mapFsError(err, what);
        }
      },
      signal ? { signal } : {},
    );
  }

  async delete(key: string): Promise<void> {
    const path = objectPath(this.root, key);
    const what = `${this.name} delete ${key}`;
    await withRetry(what, this.#retry, async () => {
      this.stats.requests++;
      try {
        await rm(path, { force: true });
        await fsyncDirAsync(this.root).catch(() => {});
      } catch (err) {
        throw mapFsError(err, what);
      }
    });
  }

  async close(): Promise<void> {}
}

/**
 * Copies `src` to `dest` atomically (replaceAtomically) while a thread
 * checksums `src` (file-hash.ts): the kernel's copy (copy_file_range, or a
 * reflink where the filesystem shares extents) and the checksum run at the
 * same time, instead of one pass of small reads, writes and hashing on the
 * event loop. The checksum is CRC-32C (decision 0018: a quarter of SHA-256's
 * CPU, which was twice the copy's), or SHA-256 when `expectedSha256` asks for
 * it (an object uploaded before 0018). It is of the bytes the copy read, as a
 * streamed copy's would be; a mismatch with the expected one leaves nothing
 * at `dest`. Progress follows the checksum, held below `total` until the copy
 * is in place. An abort takes effect once the kernel's copy returns (it
 * cannot be interrupted).
 *
 * Durability: one fsync of the copy, before its rename (so the name never
 * points at bytes still in the page cache), and one of the directory after
 * it (replaceAtomically: so the rename itself survives a crash). The fsync,
 * disk-bound, runs while the thread's checksum, CPU-bound, finishes.
 */
async function copyChecked(
  src: string,
  dest: string,
  total: number,
  opts: DownloadOptions,
): Promise<DownloadResult> {
  opts.signal?.throwIfAborted();
  const checksum = checksumThread(src, total, opts);
  try {
    const result = await replaceAtomically(dest, async (tmp) => {
      await copyFile(src, tmp, constants.COPYFILE_EXCL);
      opts.signal?.throwIfAborted();
      const size = (await stat(tmp)).size;
      if (size !== total) throw new TruncatedDataError(`${dest}: copied ${size} bytes, expected ${total}`);
      await fsyncFile(tmp);
      return checksum.checked(dest, size);
    });
    opts.onProgress?.(total, total);
    return result;
  } finally {
    checksum.dispose();
  }
}

/**
 * The checksum of a transfer of `src` in a thread (file-hash.ts), of the kind
 * the `.vif` asks for: SHA-256 when it has only that (an object uploaded
 * before decision 0018), else CRC-32C. Progress follows it, held below
 * `total` until the caller's transfer is in place; an abort cancels it.
 */
function checksumThread(src: string, total: number, opts: DownloadOptions) {
  const algorithm =
    opts.expectedCrc32c === undefined && opts.expectedSha256 !== undefined ? 'sha256' : 'crc32c';
  const below = Math.max(0, total - 1);
  const hasher = new FileHasher(src, {
    algorithm,
    total,
    onProgress: (n) => opts.onProgress?.(Math.min(n, below), total),
  });
  const onAbort = () => hasher.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    /** The digest, checked against the expected one when there is one (a mismatch names `what`). */
    async checked(what: string, size: number): Promise<DownloadResult> {
      const { digest } = await hasher.result().catch((err: unknown) => {
        // An abort cancels the thread: say it was the abort, not the thread's failure.
        opts.signal?.throwIfAborted();
        throw err;
      });
      if (algorithm === 'sha256') {
        checkDigest(what, algorithm, digest, opts.expectedSha256);
        return { size, sha256: digest };
      }
      checkDigest(what, algorithm, digest, opts.expectedCrc32c);
      return { size, crc32c: digest };
    },
    dispose(): void {
      opts.signal?.removeEventListener('abort', onAbort);
      hasher.cancel();
    },
  };
}

/**
 * A download the caller will delete the object after (`opts.move`), on the
 * same filesystem: the object is checked where it lies, then renamed to
 * `dest`, so the download costs one read of the object (the checksum) instead
 * of a copy, and the delete after it has nothing left to free (an `unlink`
 * of a large file frees its extents inline: 81 ms for 256 MiB on ext4 here).
 * Returns undefined, having changed nothing, when `dest` is on another
 * filesystem: the caller copies instead.
 *
 * Durability: the object was fsynced when it was uploaded; the rename is made
 * durable by an fsync of both directories. A crash between the rename and the
 * caller's commit leaves the `.dat` in place with the `.vif` still naming the
 * object, which opens as a local volume (volume-open.ts) and a retried
 * download commits it.
 */
async function moveChecked(
  src: string,
  dest: string,
  object: { size: number; dev: number },
  opts: DownloadOptions,
): Promise<DownloadResult | undefined> {
  opts.signal?.throwIfAborted();
  // Known before the object is read: a rename across filesystems would fail after the checksum's pass.
  if (object.dev !== (await stat(dirname(dest))).dev) return undefined;
  const total = object.size;
  const checksum = checksumThread(src, total, opts);
  try {
    const result = await checksum.checked(src, total);
    opts.signal?.throwIfAborted();
    try {
      await rename(src, dest);
    } catch (err) {
      if (fsCode(err) === 'EXDEV') return undefined;
      throw err;
    }
    await Promise.all([fsyncDirAsync(dirname(dest)), fsyncDirAsync(dirname(src))]);
    opts.onProgress?.(total, total);
    return result;
  } finally {
    checksum.dispose();
  }
}

/**
 * Holds one file descriptor, opened on the first read. As with any open file,
 * a delete of the object is not seen by reads through a descriptor opened
 * before it.
 */
class LocalFile implements BackendFile {
  readonly key: string;
  readonly size: number;
  readonly #backend: LocalBackend;
  readonly #path: string;
  readonly #retry: RetryPolicy;
  #fd: number | undefined;
  #opening: Promise<number> | undefined;
  /** Reads on the thread pool not yet back: close() waits for them, so none reads a descriptor reused meanwhile. */
  #inFlight = 0;
  #idle: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(backend: LocalBackend, path: string, key: string, size: number, retry: RetryPolicy) {
    this.#backend = backend;
    this.#path = path;
    this.key = key;
    this.size = size;
    this.#retry = retry;
  }

  #open(): Promise<number> {
    if (this.#fd !== undefined) return Promise.resolve(this.#fd);
    if (!this.#opening) {
      const p = openFd(this.#path, 'r').then((fd) => {
        // A synchronous read may have opened it meanwhile: keep one descriptor.
        if (this.#fd === undefined) this.#fd = fd;
        else closeSync(fd);
        return this.#fd;
      });
      this.#opening = p;
      p.then(
        () => {
          if (this.#opening === p) this.#opening = undefined;
        },
        () => {
          if (this.#opening === p) this.#opening = undefined;
        },
      );
    }
    return this.#opening;
  }

  #count(what: string, bytesRead: number, length: number): void {
    if (bytesRead !== length) throw new TruncatedDataError(`${what}: got ${bytesRead} bytes`);
    this.#backend.stats.bytesRead += length;
  }

  async readAt(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!checkRead(this.key, this.size, offset, length)) return new Uint8Array(0);
    const what = `${this.#backend.name} read ${this.key} @${offset}+${length}`;
    const stats = this.#backend.stats;
    return withRetry(
      what,
      this.#retry,
      async () => {
        signal?.throwIfAborted();
        stats.requests++;
        stats.reads++;
        this.#inFlight++;
        try {
          const buf = Buffer.allocUnsafe(length);
          const { bytesRead } = await preadAsync(await this.#open(), buf, 0, length, offset);
          this.#count(what, bytesRead, length);
          return buf;
        } catch (err) {
          throw mapFsError(err, what);
        } finally {
          if (--this.#inFlight === 0 && this.#drained) {
            this.#drained();
            this.#drained = undefined;
            this.#idle = undefined;
          }
        }
      },
      signal ? { signal } : {},
    );
  }

  readAtSync(offset: number, into: Uint8Array): void {
    const length = into.byteLength;
    if (!checkRead(this.key, this.size, offset, length)) return;
    const what = `${this.#backend.name} read ${this.key} @${offset}+${length}`;
    const stats = this.#backend.stats;
    stats.requests++;
    stats.reads++;
    try {
      this.#fd ??= openSync(this.#path, 'r');
      this.#count(what, readSync(this.#fd, into, 0, length, offset), length);
    } catch (err) {
      throw mapFsError(err, what);
    }
  }

  async close(): Promise<void> {
    const opening = this.#opening;
    this.#opening = undefined;
    await opening?.catch(() => {});
    if (this.#inFlight > 0) {
      this.#idle ??= new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
      await this.#idle;
    }
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }
}

const openFd = promisify(fsOpen);
/** `fs.read` on the thread pool: cheaper per call than a FileHandle's read. */
const preadAsync = promisify(fsRead);
