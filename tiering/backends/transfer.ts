/**
 * Pieces every backend shares: the range check before a read, hashing and
 * progress while bytes stream, the atomic write of a downloaded file (and the
 * sweep of the temp files such writes leave when killed), and the network
 * failures that mean "unavailable" rather than "wrong".
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDirAsync } from '../../origin/fs/files.ts';
import { ChecksumMismatchError, InternalError, TruncatedDataError } from '../../shared/errors.ts';

/**
 * Validates a read against the size recorded for the object. Returns false
 * when there is nothing to fetch (length 0). Past the end is
 * `TruncatedDataError` without a request: the index points beyond the `.dat`.
 */
export function checkRead(key: string, size: number, offset: number, length: number): boolean {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new InternalError(
      `readAt(${offset}, ${length}) on ${key}: offset and length must be integers >= 0`,
    );
  }
  if (offset + length > size) {
    throw new TruncatedDataError(`readAt(${offset}, ${length}) on ${key}: past its end (${size} bytes)`);
  }
  return length > 0;
}

/** SHA-256 and a byte count over a stream, with progress callbacks. */
export class StreamMeter {
  readonly #sha = createHash('sha256');
  readonly #total: number;
  readonly #onProgress: ((bytes: number, total: number) => void) | undefined;
  bytes = 0;

  constructor(total: number, onProgress?: (bytes: number, total: number) => void) {
    this.#total = total;
    this.#onProgress = onProgress;
  }

  update(chunk: Uint8Array): void {
    this.#sha.update(chunk);
    this.bytes += chunk.byteLength;
    this.#onProgress?.(this.bytes, this.#total);
  }

  sha256(): string {
    return this.#sha.digest('hex');
  }
}

/** Wraps `source` so every chunk passes through `observe` on its way to the consumer. */
export async function* tap(
  source: AsyncIterable<Uint8Array>,
  observe: (chunk: Uint8Array) => void,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    signal?.throwIfAborted();
    observe(chunk);
    yield chunk;
  }
}

export interface AtomicWriteOptions {
  total: number;
  onProgress?(bytes: number, total: number): void;
  signal?: AbortSignal;
  expectedSha256?: string;
  /** Refused: a stream here is checked by SHA-256 only (checkSha256). */
  expectedCrc32c?: string;
  /** The file must end up exactly `total` bytes long (a cut-off stream is `TruncatedDataError`). */
  exactSize?: boolean;
}

/**
 * Writes `source` to `dest` through a temp file in the same directory, fsyncs
 * it, checks size and SHA-256, renames it into place and fsyncs the directory:
 * `dest` is either absent or complete, even across a crash.
 */
export async function writeFileAtomic(
  dest: string,
  source: AsyncIterable<Uint8Array>,
  opts: AtomicWriteOptions,
): Promise<{ size: number; sha256: string }> {
  return replaceAtomically(dest, async (tmp) => {
    const meter = new StreamMeter(opts.total, opts.onProgress);
    const fh = await open(tmp, 'wx');
    try {
      for await (const chunk of source) {
        opts.signal?.throwIfAborted();
        await fh.write(chunk);
        meter.update(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const sha256 = meter.sha256();
    if (opts.exactSize && meter.bytes !== opts.total) {
      throw new TruncatedDataError(`${dest}: got ${meter.bytes} bytes, expected ${opts.total}`);
    }
    checkSha256(dest, sha256, opts);
    return { size: meter.bytes, sha256 };
  });
}

/**
 * A download's SHA-256 against the `.vif`'s, when there is one. For the
 * backends that compute only SHA-256 (object stores): a CRC-32C to check is
 * refused, never skipped (only `local` objects record one, decision 0018).
 */
export function checkSha256(
  dest: string,
  sha256: string,
  expected: { expectedSha256?: string | undefined; expectedCrc32c?: string | undefined },
): void {
  if (expected.expectedCrc32c !== undefined) {
    throw new InternalError(`${dest}: this backend checks a SHA-256, and was given a CRC-32C to check`);
  }
  checkDigest(dest, 'sha256', sha256, expected.expectedSha256);
}

/** A download's digest (hex) against the `.vif`'s, when there is one; a mismatch is ChecksumMismatchError. */
export function checkDigest(
  dest: string,
  algorithm: string,
  got: string,
  expected: string | undefined,
): void {
  if (expected !== undefined && got !== expected.toLowerCase()) {
    throw new ChecksumMismatchError(`${dest}: ${algorithm} ${got} does not match ${expected}`);
  }
}

/**
 * Puts a file at `dest` atomically. `fill` creates the temp file it is given
 * (beside `dest`, named by tempPathFor), writes it, fsyncs and checks it; the
 * temp file is then renamed into place and the directory fsynced. Any failure
 * removes the temp file: `dest` is either absent or complete, even across a
 * crash (what a crash leaves, sweepTempFiles removes).
 */
export async function replaceAtomically<T>(dest: string, fill: (tmp: string) => Promise<T>): Promise<T> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(dest);
  try {
    const result = await fill(tmp);
    await rename(tmp, dest);
    await fsyncDirAsync(dir);
    return result;
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** fsync of a file written through another descriptor (or by the kernel, as copyFile does). */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Where writeFileAtomic writes `dest` before its rename: a hidden file beside
 * it, `.<name>.<pid>.<random>.tmp` (the pid says which process wrote it, for
 * a person looking; the sweep does not rely on it).
 */
export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
}

/** tempPathFor's names, and only those: nothing else Kelp writes looks like this. */
const TEMP_NAME = /^\..+\.\d+\.[0-9a-z]+\.tmp$/;

export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * Removes the temp files of atomic writes that never finished (a process
 * killed mid-transfer) from `dir`, with its subdirectories when `recursive`,
 * and returns their paths. Only files named as tempPathFor names them, and
 * only those whose last write is at least `minAgeMs` old: 0 where no other
 * process can be writing (a directory one server owns, at its start), more
 * where one may. Removing a temp file under a live writer could only fail its
 * transfer (its rename finds nothing), never leave a wrong object.
 */
export function sweepTempFiles(dir: string, opts: { minAgeMs: number; recursive?: boolean }): string[] {
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: opts.recursive ?? false, encoding: 'utf8' });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    if (!isTempFileName(basename(name))) continue;
    const path = join(dir, name);
    try {
      const st = lstatSync(path);
      if (!st.isFile() || now - st.mtimeMs < opts.minAgeMs) continue;
      rmSync(path);
      removed.push(path);
    } catch (err) {
      // Renamed into place or removed by its writer meanwhile: nothing left to sweep.
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/**
 * Socket-level failures: the store is unreachable or dropped us, which is
 * worth a retry. Anything else without an HTTP status is a bug, not an outage.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** Whether `err` (or its cause chain) is a socket-level failure. */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
    if (name === 'TimeoutError') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}
