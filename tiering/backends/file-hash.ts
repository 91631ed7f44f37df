/**
 * Hashing a file off the main thread, in parallel with its transfer: a worker
 * thread (file-hash-worker.ts) reads the file itself and hashes it in order,
 * so a tier transfer's SHA-256 and MD5s cost the volume server's event loop
 * nothing and overlap the copy or the network (docs/decisions/0009). Where the
 * file is still being written (a download), the writer says how much of it is
 * final with `advance` and the hash follows it.
 *
 * A thread hashes one file at a time; a transfer that needs two digests (S3:
 * SHA-256 for the `.vif`, MD5 per part for the ETag) uses two, which on a
 * machine with the cores hash at the same time. Starting a thread costs
 * 30-100 ms (a fifth of a 256 MiB local copy), so finished threads wait, up
 * to IDLE_HASH_THREADS of them for HASH_THREAD_IDLE_MS, for the next file;
 * an idle thread does not keep the process alive. Memory is one read buffer
 * per thread.
 */
import { Worker } from 'node:worker_threads';
import { InternalError } from '../../shared/errors.ts';

const WORKER = new URL('./file-hash-worker.ts', import.meta.url);
/** Threads kept after their file, for the next transfer's hashes (an S3 upload takes two). */
export const IDLE_HASH_THREADS = 2;
/** How long a finished thread waits for another file before it ends. */
export const HASH_THREAD_IDLE_MS = 30_000;

const idle: { worker: Worker; timer: NodeJS.Timeout }[] = [];
let started = 0;

/** Hash threads started by this process so far (tests check that finished ones are reused). */
export function hashThreadsStarted(): number {
  return started;
}

function takeThread(): Worker {
  const kept = idle.pop();
  if (!kept) {
    started++;
    return new Worker(WORKER);
  }
  clearTimeout(kept.timer);
  kept.worker.ref();
  return kept.worker;
}

function returnThread(worker: Worker): void {
  worker.removeAllListeners('message');
  worker.removeAllListeners('error');
  worker.removeAllListeners('exit');
  if (idle.length >= IDLE_HASH_THREADS) {
    void worker.terminate();
    return;
  }
  worker.unref();
  const entry = {
    worker,
    timer: setTimeout(() => {
      idle.splice(idle.indexOf(entry), 1);
      void worker.terminate();
    }, HASH_THREAD_IDLE_MS).unref(),
  };
  // A kept thread that dies (it should not) is dropped, not handed out.
  worker.once('exit', () => {
    const at = idle.indexOf(entry);
    if (at >= 0) {
      clearTimeout(entry.timer);
      idle.splice(at, 1);
    }
  });
  idle.push(entry);
}

export interface FileHashOptions {
  /** `crc32c`: 8 hex digits, the unsigned value big-endian (a local tier object's, decision 0018). */
  algorithm: 'sha256' | 'md5' | 'crc32c';
  /** The bytes to hash: [0, total). */
  total: number;
  /** Bytes already final at the start; `total` (the default) for a file that is complete. */
  available?: number;
  /** Also digest each `partSize` bytes on their own (the parts of an S3 multipart upload). */
  partSize?: number;
  /**
   * With `partSize`: the parts' digests only, not the whole range's. A second
   * digest of every byte costs as much CPU again (MD5: the slowest hash a
   * transfer runs), and a multipart upload checks its parts, not the whole.
   */
  partsOnly?: boolean;
  /**
   * With `partSize`: each part's digest is handed out (`part(i)`) as soon as
   * the thread has it, not only with the result: an S3 upload signs a part
   * with its SHA-256, so the part cannot leave before its digest is known.
   */
  streamParts?: boolean;
  /** Bytes hashed so far, every few MiB. */
  onProgress?(bytes: number): void;
}

export interface FileHashResult {
  /** Hex digest of the whole range; `''` with `partsOnly`. */
  digest: string;
  /** With `partSize`: each part's binary digest, in order. */
  parts: Buffer[];
}

/** A part's digest that someone waits for, or that came before anyone asked. */
interface PartSlot {
  promise: Promise<Buffer>;
  resolve(digest: Buffer): void;
  reject(err: unknown): void;
}

function partSlot(): PartSlot {
  let resolve!: (digest: Buffer) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<Buffer>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A part nobody asked for (the upload failed first) must not surface as an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function settlePart(slot: PartSlot, r: FileHashResult, index: number): void {
  const digest = r.parts[index];
  if (digest) slot.resolve(digest);
  else slot.reject(new InternalError(`hashing has no part ${index} (${r.parts.length} parts)`));
}

export class FileHasher {
  readonly #worker: Worker;
  readonly #result: Promise<FileHashResult>;
  /** With `streamParts`: each part's digest, by index, as it arrives or is asked for. */
  readonly #parts = new Map<number, PartSlot>();
  #settled = false;
  #reject: (err: unknown) => void = () => {};

  constructor(path: string, opts: FileHashOptions) {
    this.#worker = takeThread();
    const worker = this.#worker;
    this.#result = new Promise<FileHashResult>((resolve, reject) => {
      this.#reject = reject;
      worker.on(
        'message',
        (m: {
          progress?: number;
          part?: Uint8Array;
          index?: number;
          digest?: string;
          parts?: Uint8Array[];
          error?: string;
        }) => {
          if (m.progress !== undefined) {
            opts.onProgress?.(m.progress);
            return;
          }
          if (m.part !== undefined) {
            this.#slot(m.index!).resolve(Buffer.from(m.part));
            return;
          }
          this.#settled = true;
          if (m.error !== undefined) {
            // A thread whose job failed is not trusted with another.
            void worker.terminate();
            reject(new InternalError(`hashing ${path}: ${m.error}`));
          } else {
            returnThread(worker);
            resolve({ digest: m.digest!, parts: (m.parts ?? []).map((p) => Buffer.from(p)) });
          }
        },
      );
      worker.once('error', (err) => {
        this.#settled = true;
        reject(err);
      });
      worker.once('exit', (code) => {
        if (!this.#settled) reject(new InternalError(`hashing ${path}: the hash thread exited (${code})`));
      });
    });
    // Every part awaited gets its digest or the hash's failure (a part already given is not changed);
    // this also keeps a hasher cancelled after a failed transfer from an unhandled rejection.
    this.#result.then(
      (r) => {
        for (const [i, slot] of this.#parts) settlePart(slot, r, i);
      },
      (err: unknown) => {
        for (const slot of this.#parts.values()) slot.reject(err);
      },
    );
    worker.postMessage({
      type: 'job',
      path,
      algorithm: opts.algorithm,
      total: opts.total,
      available: opts.available ?? opts.total,
      partSize: opts.partSize ?? 0,
      partsOnly: (opts.partsOnly ?? false) && (opts.partSize ?? 0) > 0,
      streamParts: (opts.streamParts ?? false) && (opts.partSize ?? 0) > 0,
    });
  }

  #slot(index: number): PartSlot {
    let slot = this.#parts.get(index);
    if (slot === undefined) {
      slot = partSlot();
      this.#parts.set(index, slot);
      // Asked for after the hash ended: settled from its result.
      if (this.#settled) {
        const asked = slot;
        this.#result.then((r) => settlePart(asked, r, index), asked.reject);
      }
    }
    return slot;
  }

  /**
   * The binary digest of part `index` (0-based) once the thread has it: for
   * a hasher made with `streamParts`; rejects if the hash fails or is
   * cancelled first.
   */
  part(index: number): Promise<Buffer> {
    return this.#slot(index).promise;
  }

  /** Bytes [0, available) of the file are written and final. */
  advance(available: number): void {
    if (!this.#settled) this.#worker.postMessage({ type: 'advance', available });
  }

  result(): Promise<FileHashResult> {
    return this.#result;
  }

  /** Stops the hash (a failed or aborted transfer): its thread ends, and `result()` rejects. */
  cancel(): void {
    if (this.#settled) return;
    this.#settled = true;
    void this.#worker.terminate();
    this.#reject(new InternalError('hashing cancelled'));
  }
}
