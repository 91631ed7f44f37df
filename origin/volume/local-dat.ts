/**
 * A volume's `.dat` on this server's disk: the data file (data-file.ts) that
 * can be appended to. Reads are preads, on the event loop (`readAtSync`) or
 * the thread pool (`readAt`); writes are synchronous pwrites at offsets the
 * volume tracks (appends never interleave: volume-write.ts). The fsync is the
 * volume's group commit (syncer.ts), which syncs `fd`.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TruncatedDataError } from '../../shared/errors.ts';
import { tempPathFor } from '../../tiering/backends/transfer.ts';
import { fsyncDir, preadExact, pwriteAll } from '../fs/files.ts';
import { type DataFile, Holds } from './data-file.ts';
import { readPages } from './page-pool.ts';
import { preadExactAsync } from './read-mode.ts';

export class LocalDat implements DataFile {
  readonly local = true;
  readonly fd: number;
  private path: string;
  private readonly holds = new Holds();
  /** Set by retire(): the file was renamed here and goes once closed. */
  private doomed: string | undefined;

  constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
  }

  /** Opens `path` for reads and appends. */
  static open(path: string): LocalDat {
    return new LocalDat(openSync(path, 'r+'), path);
  }

  /** The file's size on disk now. */
  size(): number {
    return fstatSync(this.fd).size;
  }

  readAtSync(offset: number, into: Uint8Array): void {
    let done = 0;
    while (done < into.length) {
      const n = readSync(this.fd, into, done, into.length - done, offset + done);
      if (n === 0) {
        const msg = `file ends at ${offset + done}, wanted ${into.length} bytes at ${offset}`;
        throw new TruncatedDataError(msg);
      }
      done += n;
    }
  }

  /** readAtSync into a new buffer. */
  readSync(offset: number, length: number): Buffer {
    return preadExact(this.fd, length, offset);
  }

  readAt(offset: number, length: number): Promise<Uint8Array> {
    return preadExactAsync(this.fd, Buffer.allocUnsafe(length), offset);
  }

  async *stream(offset: number, length: number): AsyncGenerator<Uint8Array> {
    if (length <= 0) return;
    // Pooled pages (page-pool.ts): a reader gives each back with releasePage once done with it.
    yield* readPages(this.fd, offset, offset + length - 1);
  }

  /** Writes all of `bytes` at `offset` (no fsync: the volume's syncer does that). */
  writeAt(bytes: Uint8Array, offset: number): void {
    pwriteAll(this.fd, bytes, offset);
  }

  /** Cuts the file back to `size` (a failed append's tail). */
  truncate(size: number): void {
    ftruncateSync(this.fd, size);
  }

  hold(): () => void {
    return this.holds.take(`the .dat ${this.path}`);
  }

  /**
   * Moves the file out of the way now (its name is free for what replaces
   * it, or gone), to be removed once closed: freeing the blocks of a
   * multi-GiB file takes a while (hundreds of ms per GiB where the disk
   * discards on delete) and must not stall requests. A crash before the
   * removal leaves a temp file that the next start sweeps (sweep.ts).
   */
  retire(): void {
    const doomed = tempPathFor(this.path);
    renameSync(this.path, doomed);
    fsyncDir(dirname(this.path));
    this.doomed = doomed;
    this.path = doomed;
  }

  close(): Promise<void> {
    return this.holds.close(() => {
      closeSync(this.fd);
      if (this.doomed) rm(this.doomed, { force: true }).catch(() => {});
    });
  }
}
