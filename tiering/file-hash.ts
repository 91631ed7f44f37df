/**
 * Hashing a file off the main thread, in parallel with its transfer: a worker
 * thread (file-hash-worker.ts) reads the file itself and hashes it in order,
 * so a tier transfer's SHA-256 and MD5s cost the volume server's event loop
 * nothing and overlap the copy or the network (docs/decisions/0009). Where the
 * file is still being written (a download), the writer says how much of it is
 * final with `advance` and the hash follows it.
 *
 * Memory is one read buffer per hasher. A hasher is one thread; a transfer
 * that needs two digests (S3: SHA-256 for the `.vif`, MD5 per part for the
 * ETag) runs two, which on a machine with the cores hash at the same time.
 */
import { Worker } from 'node:worker_threads';
import { InternalError } from '../shared/errors.ts';

const WORKER = new URL('./file-hash-worker.ts', import.meta.url);

export interface FileHashOptions {
  algorithm: 'sha256' | 'md5';
  /** The bytes to hash: [0, total). */
  total: number;
  /** Bytes already final at the start; `total` (the default) for a file that is complete. */
  available?: number;
  /** Also digest each `partSize` bytes on their own (the parts of an S3 multipart upload). */
  partSize?: number;
  /** Bytes hashed so far, every few MiB. */
  onProgress?(bytes: number): void;
}

export interface FileHashResult {
  /** Hex digest of the whole range. */
  digest: string;
  /** With `partSize`: each part's binary digest, in order. */
  parts: Buffer[];
}

export class FileHasher {
  readonly #worker: Worker;
  readonly #result: Promise<FileHashResult>;
  #settled = false;
  #reject: (err: unknown) => void = () => {};

  constructor(path: string, opts: FileHashOptions) {
    this.#worker = new Worker(WORKER, {
      workerData: {
        path,
        algorithm: opts.algorithm,
        total: opts.total,
        available: opts.available ?? opts.total,
        partSize: opts.partSize ?? 0,
      },
    });
    this.#result = new Promise<FileHashResult>((resolve, reject) => {
      this.#reject = reject;
      this.#worker.on(
        'message',
        (m: { progress?: number; digest?: string; parts?: Uint8Array[]; error?: string }) => {
          if (m.progress !== undefined) {
            opts.onProgress?.(m.progress);
            return;
          }
          this.#settled = true;
          void this.#worker.terminate();
          if (m.error !== undefined) reject(new InternalError(`hashing ${path}: ${m.error}`));
          else resolve({ digest: m.digest!, parts: (m.parts ?? []).map((p) => Buffer.from(p)) });
        },
      );
      this.#worker.once('error', (err) => {
        this.#settled = true;
        reject(err);
      });
      this.#worker.once('exit', (code) => {
        if (!this.#settled) reject(new InternalError(`hashing ${path}: the hash thread exited (${code})`));
      });
    });
    // A hasher cancelled or abandoned after a failed transfer must not surface as an unhandled rejection.
    this.#result.catch(() => {});
  }

  /** Bytes [0, available) of the file are written and final. */
  advance(available: number): void {
    if (!this.#settled) this.#worker.postMessage({ available });
  }

  result(): Promise<FileHashResult> {
    return this.#result;
  }

  /** Stops the thread (a failed or aborted transfer); `result()` then rejects. */
  cancel(): void {
    if (this.#settled) return;
    this.#settled = true;
    void this.#worker.terminate();
    this.#reject(new InternalError('hashing cancelled'));
  }
}
