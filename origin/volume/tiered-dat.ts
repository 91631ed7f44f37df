/**
 * A tiered volume's `.dat` in a tier backend: the data file (data-file.ts)
 * over any backend's `BackendFile` (tiering/backend.ts), read-only. Each read
 * is one ranged request with the backend's retries; a `local` tier can also
 * be pread on the event loop (`readAtSync`, decision 0009). A large needle
 * streams a page (one ranged GET) at a time, so it is never held whole.
 *
 * Errors as the volume answers them: the object missing is the store's
 * failure (UpstreamError, 502), never a 404 a client or cache could take for
 * a deleted blob; a backend not configured on this server is a 503.
 */
import { NotFoundError, UnavailableError, UpstreamError } from '../../shared/errors.ts';
import type { BackendFile } from '../../tiering/backends/backend.ts';
import { type DataFile, Holds, STREAM_PAGE_BYTES } from './data-file.ts';
import type { RemoteDat } from './volume-info.ts';

export class TieredDat implements DataFile {
  readonly local = false;
  readonly readAtSync: ((offset: number, into: Uint8Array) => void) | undefined;
  private readonly file: BackendFile | undefined;
  private readonly what: string;
  private readonly remote: RemoteDat;
  private readonly holds = new Holds();

  /** `file` undefined: the backend is not configured here, and every read says so (503). */
  constructor(volumeId: number, remote: RemoteDat, file: BackendFile | undefined) {
    this.file = file;
    this.remote = remote;
    this.what = `volume ${volumeId}`;
    // Present only where the backend can pread (a `local` tier); called as a method, so no bound closure.
    this.readAtSync = file?.readAtSync ? this.preadTier : undefined;
  }

  private preadTier(offset: number, into: Uint8Array): void {
    try {
      this.file!.readAtSync!(offset, into);
    } catch (err) {
      throw this.failure(err);
    }
  }

  private opened(): BackendFile {
    if (this.file) return this.file;
    const r = this.remote;
    throw new UnavailableError(
      `${this.what} is tiered to ${r.backend}${r.bucket ? ` (bucket ${r.bucket})` : ''}, which is not configured here`,
    );
  }

  /** The index says the needle exists: a missing object is the store's failure. */
  private failure(err: unknown): unknown {
    if (!(err instanceof NotFoundError)) return err;
    const r = this.remote;
    return new UpstreamError(`${this.what}: its object ${r.backend}/${r.key} is missing`, { cause: err });
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const file = this.opened();
    try {
      return await file.readAt(offset, length);
    } catch (err) {
      throw this.failure(err);
    }
  }

  async *stream(offset: number, length: number): AsyncGenerator<Uint8Array> {
    for (let done = 0; done < length; ) {
      const n = Math.min(STREAM_PAGE_BYTES, length - done);
      yield await this.readAt(offset + done, n);
      done += n;
    }
  }

  hold(): () => void {
    return this.holds.take(`${this.what}'s tier object`);
  }

  close(): Promise<void> {
    return this.holds.close(() => this.file?.close());
  }
}
