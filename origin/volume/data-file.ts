/**
 * The bytes under a volume's index (SeaweedFS's `BackendStorageFile`): the
 * `.dat` on this server's disk (local-dat.ts) or its copy in a tier backend
 * (tiered-dat.ts). The volume reads through this one interface and never
 * asks which it is; what differs is whether a read may be synchronous
 * (`readAtSync`, the warm fast path of decisions 0003 and 0009) and whether
 * it may be appended to (`LocalDat` only).
 *
 * Lifetime: the volume swaps its data file (replaceDat: tier upload and
 * download, vacuum, a tier share) while reads may still be in flight on the
 * old one. A reader that awaits between reads (a large needle streaming to a
 * slow client) `hold()`s the file first; `close()` then waits for the last
 * release, so no read ever lands on a descriptor closed and reused meanwhile.
 */
import { UnavailableError } from '../../shared/errors.ts';
import { toByteOffset } from '../../shared/idx.ts';
import { type Needle, needleRecordSize } from '../../shared/needle.ts';
import { decodeNeedle } from '../../shared/needle-decode.ts';

/** What a large needle streams in: one pread or one ranged GET per page. */
export const STREAM_PAGE_BYTES = 1024 * 1024;

export interface DataFile {
  /** True for the volume's own `.dat` on disk: appendable, and what fsync and the clean mark cover. */
  readonly local: boolean;
  /**
   * Exactly `length` bytes at `offset`, off the event loop (the thread pool,
   * or a ranged request with the backend's retries). Typed errors: fewer
   * bytes is `TruncatedDataError`; an unreachable tier `UnavailableError`;
   * an object missing from its tier `UpstreamError` (the index says it exists).
   */
  readAt(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Fills `into` from `offset` on the calling thread, in one attempt; absent
   * where a read cannot be a plain pread (object stores). Called only while
   * ReadMode finds such reads fast; an `UnavailableError` means "try
   * `readAt`" (its retries may cure what one attempt could not).
   */
  readAtSync?(offset: number, into: Uint8Array): void;
  /** Bytes [offset, offset + length) a page (STREAM_PAGE_BYTES) at a time; `hold()` first if you await between pages. */
  stream(offset: number, length: number): AsyncIterable<Uint8Array>;
  /** Keeps the file open across a swap until the returned release is called (once). */
  hold(): () => void;
  /** Closes once every hold is released; reads after that fail. */
  close(): Promise<void>;
}

/**
 * The whole record at `offset` (8-byte units) of any data file (or a tier
 * backend's file, which has the same `readAt`), decoded and CRC-checked.
 */
export async function recordIn(
  file: Pick<DataFile, 'readAt'>,
  key: bigint,
  offset: number,
  size: number,
  version: number,
): Promise<Needle> {
  const bytes = await file.readAt(toByteOffset(offset), needleRecordSize(size, version));
  return decodeNeedle(bytes, version, { expectedId: key, expectedSize: size });
}

/** Counts holds for a data file: `close()` resolves at once and the real close runs at the last release. */
export class Holds {
  private count = 0;
  private closing: (() => void) | undefined;
  private done: Promise<void> | undefined;

  /** Whether close() was called: a new hold is refused then. */
  get closed(): boolean {
    return this.done !== undefined;
  }

  take(what: string): () => void {
    // Only a swap racing a read can get here: the client may simply ask again.
    if (this.closed) throw new UnavailableError(`${what} was replaced meanwhile`, 1);
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.count === 0 && this.closing) this.closing();
    };
  }

  /**
   * Runs `release` now, or at the last release of a hold (then this resolves
   * at once: a shutdown does not wait for a slow client's stream). Idempotent.
   */
  close(release: () => void | Promise<void>): Promise<void> {
    if (this.done) return this.done;
    if (this.count === 0) {
      try {
        this.done = Promise.resolve(release());
      } catch (err) {
        this.done = Promise.reject(err);
      }
      return this.done;
    }
    this.done = Promise.resolve();
    this.closing = () => {
      Promise.resolve()
        .then(release)
        .catch(() => {});
    };
    return this.done;
  }
}
