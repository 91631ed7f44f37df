/**
 * A volume's read path: one map lookup, then one read of the needle record
 * from the data file (data-file.ts), whichever it is. The data file decides
 * how: where it can be pread (`readAtSync`: the `.dat`, a `local` tier) the
 * read runs on the event loop while ReadMode finds such reads fast, and the
 * result comes back without a promise (the hot path, decision 0003);
 * otherwise, or while reads are slow, it goes through `readAt` (the thread
 * pool, or a ranged request with retries). Every record's CRC is checked.
 * Needles over LARGE_NEEDLE_BYTES are not read whole: their header and tail
 * are, and the data streams from the data file (large-read.ts).
 */
import { CorruptDataError, InternalError, NotFoundError, UnavailableError } from '../../shared/errors.ts';
import { TOMBSTONE_FILE_SIZE, toByteOffset } from '../../shared/idx.ts';
import {
  DATA_SIZE_SIZE,
  NEEDLE_DATA_OFFSET,
  NEEDLE_HEADER_SIZE,
  type Needle,
  needleRecordSize,
} from '../../shared/needle.ts';
import {
  decodeNeedle,
  decodeNeedleMeta,
  needleTailLength,
  parseDataSize,
  parseNeedleHeader,
} from '../../shared/needle-decode.ts';
import type { Ttl } from '../../shared/ttl.ts';
import type { DataFile } from './data-file.ts';
import { LARGE_NEEDLE_BYTES, VolumeState } from './volume-state.ts';

/** A needle found by read(): small ones come whole, large ones as a place in `source` to stream from. */
export type ReadResult =
  | { kind: 'whole'; needle: Needle }
  | {
      kind: 'large';
      needle: Omit<Needle, 'data'>;
      dataOffset: number;
      dataSize: number;
      /** The data file the offsets are in: `hold()` it before streaming (it may be swapped meanwhile). */
      source: DataFile;
    };

export abstract class VolumeReads extends VolumeState {
  /**
   * The live needle for key + cookie: synchronous when the data file read
   * synchronously, else a promise. Missing, deleted, expired and wrong cookie
   * all throw the same NotFoundError, so a 404 never says which. Corrupt
   * bytes throw (CorruptDataError / ChecksumMismatchError), never return.
   * `readDeleted`: SeaweedFS's `readDeleted=true`, a deleted needle keeps its
   * offset (size negated) until vacuum drops it, and can still be read there.
   */
  read(key: bigint, cookie: number, readDeleted = false): ReadResult | Promise<ReadResult> {
    return this.readFrom(key, cookie, readDeleted, false);
  }

  /**
   * read() done on the calling thread whatever ReadMode says (tests, tools):
   * only for a data file that can be pread; an object store's throws.
   */
  readSync(key: bigint, cookie: number, readDeleted = false): ReadResult {
    const found = this.readFrom(key, cookie, readDeleted, true);
    if (found instanceof Promise) {
      found.catch(() => {});
      throw new InternalError(`volume ${this.id}: its data file cannot be read synchronously`);
    }
    return found;
  }

  private readFrom(
    key: bigint,
    cookie: number,
    readDeleted: boolean,
    forceSync: boolean,
  ): ReadResult | Promise<ReadResult> {
    const entry = this.needles.get(key);
    if (entry === undefined) throw new NotFoundError('not found');
    let size = entry.size;
    if (size < 0) {
      // Expiry still applies to a deleted needle read back.
      if (!readDeleted || size === TOMBSTONE_FILE_SIZE || entry.offset === 0)
        throw new NotFoundError('not found');
      size = -size;
    }
    this.heat.hit();
    const recordSize = needleRecordSize(size, this.version);
    const at = toByteOffset(entry.offset);
    const dat = this.dat;
    if (recordSize > LARGE_NEEDLE_BYTES)
      return this.readLarge(dat, key, cookie, at, size, readDeleted, forceSync);
    const bytes = Buffer.allocUnsafe(recordSize);
    if (dat.readAtSync !== undefined && (forceSync || this.readMode.sync())) {
      // Only the pread is timed: decoding is CPU, the same either way. The buffer is allocated
      // outside the timing: an allocation may run a garbage collection, which is not the disk's doing.
      const started = performance.now();
      try {
        dat.readAtSync(at, bytes);
      } catch (err) {
        // One attempt only: what a retry may cure (a flaky mount) goes to the retrying path.
        if (forceSync || !(err instanceof UnavailableError)) throw err;
        return this.readLater(dat, key, cookie, at, size, recordSize, readDeleted);
      }
      this.readMode.record(performance.now() - started);
      return this.wholeNeedle(bytes, this.version, key, size, cookie);
    }
    return this.readLater(dat, key, cookie, at, size, recordSize, readDeleted);
  }

  /** The record through `readAt`; started over if the files were swapped under it. */
  private readLater(
    dat: DataFile,
    key: bigint,
    cookie: number,
    at: number,
    size: number,
    recordSize: number,
    readDeleted: boolean,
  ): Promise<ReadResult> {
    const { needles, version } = this;
    return dat.readAt(at, recordSize).then(
      (bytes) =>
        this.swappedSince(dat, needles)
          ? this.read(key, cookie, readDeleted)
          : this.wholeNeedle(bytes, version, key, size, cookie),
      (err: unknown) => {
        if (this.swappedSince(dat, needles)) return this.read(key, cookie, readDeleted);
        throw err;
      },
    );
  }

  /**
   * The files changed under an asynchronous read (vacuum swapped them, or the
   * `.dat` went to a tier or came back): what it read, or failed to, may be
   * another file's bytes, so the read starts over on the current ones.
   */
  private swappedSince(dat: DataFile, needles: unknown): boolean {
    return this.dat !== dat || this.needles !== needles;
  }

  /** A large needle's header and tail (two small reads), checked against the index; its data stays put. */
  private readLarge(
    dat: DataFile,
    key: bigint,
    cookie: number,
    at: number,
    size: number,
    readDeleted: boolean,
    forceSync: boolean,
  ): ReadResult | Promise<ReadResult> {
    const version = this.version;
    const finish = (head: Uint8Array, tail: Uint8Array, dataSize: number): ReadResult => {
      const header = parseNeedleHeader(head);
      const meta = decodeNeedleMeta(tail, header.size, dataSize, version);
      const needle = { ...meta, ...header };
      this.assertVisible(needle, cookie);
      return {
        kind: 'large',
        needle,
        dataOffset: at + NEEDLE_HEADER_SIZE + DATA_SIZE_SIZE,
        dataSize,
        source: dat,
      };
    };
    const dataSizeOf = (head: Uint8Array): number => {
      const header = parseNeedleHeader(head);
      if (header.id !== key || header.size !== size) {
        throw new CorruptDataError(`volume ${this.id}: record at ${at} is not needle ${key.toString(16)}`);
      }
      return parseDataSize(head.subarray(NEEDLE_HEADER_SIZE), header.size);
    };
    const tailAt = (dataSize: number) => at + NEEDLE_DATA_OFFSET + dataSize;
    const tailLength = (dataSize: number) => needleTailLength(size, dataSize, version);
    if (dat.readAtSync !== undefined && (forceSync || dat.local)) {
      // The `.dat` on disk: two small preads, as any read of it was before ReadMode.
      const head = Buffer.allocUnsafe(NEEDLE_DATA_OFFSET);
      dat.readAtSync(at, head);
      const dataSize = dataSizeOf(head);
      const tail = Buffer.allocUnsafe(tailLength(dataSize));
      dat.readAtSync(tailAt(dataSize), tail);
      return finish(head, tail, dataSize);
    }
    const needles = this.needles;
    return (async () => {
      const head = await dat.readAt(at, NEEDLE_DATA_OFFSET);
      const dataSize = dataSizeOf(head);
      const tail = await dat.readAt(tailAt(dataSize), tailLength(dataSize));
      if (this.swappedSince(dat, needles)) return this.read(key, cookie, readDeleted);
      return finish(head, tail, dataSize);
    })();
  }

  /** A small needle's record, decoded and verified (CRC included), if `cookie` may see it. */
  private wholeNeedle(
    bytes: Uint8Array,
    version: number,
    key: bigint,
    size: number,
    cookie: number,
  ): ReadResult {
    const needle = decodeNeedle(bytes, version, { expectedId: key, expectedSize: size });
    this.assertVisible(needle, cookie);
    return { kind: 'whole', needle };
  }

  protected assertVisible(
    needle: { cookie: number; lastModified?: number; ttl?: Ttl },
    cookie: number,
  ): void {
    if (needle.cookie !== cookie) throw new NotFoundError('not found');
    if (this.isExpired(needle)) throw new NotFoundError('not found');
  }

  /** Whether the key has a live needle (a write to it is an overwrite). */
  holds(key: bigint): boolean {
    const entry = this.needles.get(key);
    return entry !== undefined && entry.size >= 0;
  }

  /** Decodes and verifies the whole record at `offset` (8-byte units), read on this thread (a local `.dat`). */
  recordAt(key: bigint, offset: number, size: number): Needle {
    const bytes = this.disk.readSync(toByteOffset(offset), needleRecordSize(size, this.version));
    return decodeNeedle(bytes, this.version, { expectedId: key, expectedSize: size });
  }

  /**
   * The whole record at `offset` wherever the data file is: on this thread
   * where it can be pread, else (or when one attempt was not enough) through
   * `readAt` with its retries. CRC checked.
   */
  protected recordOf(key: bigint, offset: number, size: number): Needle | Promise<Needle> {
    const dat = this.dat;
    const version = this.version;
    const bytes = Buffer.allocUnsafe(needleRecordSize(size, version));
    const decode = (b: Uint8Array) => decodeNeedle(b, version, { expectedId: key, expectedSize: size });
    if (dat.readAtSync !== undefined) {
      try {
        dat.readAtSync(toByteOffset(offset), bytes);
        return decode(bytes);
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
      }
    }
    return dat.readAt(toByteOffset(offset), bytes.length).then(decode);
  }
}
