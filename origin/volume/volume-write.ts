/**
 * A volume's write path: a needle is appended to the `.dat` and its entry to
 * the `.idx`, then the (shared) group-commit fsync makes both durable
 * (syncer.ts: the fsync happens there, batched across writes, before any
 * write is acknowledged).
 *
 * Concurrency: Node runs this on one thread, and every append below is a
 * synchronous write at a tracked end offset, so appends never interleave and
 * need no lock. Only the wait for durability is asynchronous.
 */
import { closeSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { Crc32cHasher, crc32c, crcFormMatches } from '../../shared/crc.ts';
import {
  ConflictError,
  CorruptDataError,
  InternalError,
  PayloadTooLargeError,
  ReadOnlyVolumeError,
} from '../../shared/errors.ts';
import {
  IDX_ENTRY_SIZE,
  MAX_VOLUME_OFFSET,
  toByteOffset,
  toStoredOffset,
  writeIdxEntry,
} from '../../shared/idx.ts';
import {
  encodeDataSize,
  encodeNeedle,
  encodeNeedleHeader,
  encodeNeedleTail,
  NEEDLE_DATA_OFFSET,
  NEEDLE_HEADER_SIZE,
  type NeedleMeta,
  needleBodySize,
  needleRecordSize,
} from '../../shared/needle.ts';
import {
  decodeNeedleMeta,
  needleTailLength,
  parseDataSize,
  parseNeedleHeader,
} from '../../shared/needle-decode.ts';
import { preadExact, pwriteAll } from '../fs/files.ts';
import { storageErrorIn } from './disk-space.ts';
import type { NeedleValue } from './needle-map.ts';
import { VolumeReads } from './volume-read.ts';
import { LARGE_NEEDLE_BYTES } from './volume-state.ts';

/** Bytes copied at a time from a spool file into the `.dat` (writeStreamed), and compared in unchanged checks. */
const SPOOL_COPY_CHUNK = 4 * 1024 * 1024;
/** Data at least this long is written beside its header and tail rather than copied into one record. */
const UNCOPIED_DATA_MIN_BYTES = 64 * 1024;

export interface NeedleWrite {
  key: bigint;
  cookie: number;
  /** Bytes as stored (gzipped when meta.flags has FLAG_GZIP). */
  data: Uint8Array;
  meta: NeedleMeta;
}

/** A needle whose data is in a file (a spooled upload, upload.ts) rather than in memory. */
export interface StreamedNeedleWrite {
  key: bigint;
  cookie: number;
  /** The data as stored: `size` bytes (> 0) at `path`, with their CRC-32C. */
  spool: { path: string; size: number; crc: number };
  meta: NeedleMeta;
}

export interface WriteResult {
  /** The needle's Size field. */
  size: number;
  checksum: number;
  /** The same bytes were already stored under this key and cookie: nothing was appended. */
  unchanged: boolean;
  /** What the write did to the key's entry (absent when unchanged), so a failed replication can undo it. */
  change?: EntryChange;
}

/**
 * What one write or delete did to its key's index entry: enough to undo it
 * with restore() (a replicated change whose fan-out failed, replication.ts).
 */
export interface EntryChange {
  key: bigint;
  cookie: number;
  /** The entry before the change; undefined when the key was absent. A negative size: deleted. */
  before: NeedleValue | undefined;
  /** The entry the change left. */
  after: NeedleValue;
  /** The compaction revision both offsets belong to: vacuum moves every needle. */
  revision: number;
}

export abstract class VolumeWrites extends VolumeReads {
  private lastAppendAtNs = 0n;
  /** Scratch for the idx entry append() writes (synchronously, so one serves every append). */
  private readonly idxEntry = Buffer.alloc(IDX_ENTRY_SIZE);

  protected nextAppendAtNs(): bigint {
    const now = BigInt(this.config.now()) * 1_000_000n;
    this.lastAppendAtNs = now > this.lastAppendAtNs ? now : this.lastAppendAtNs + 1n;
    return this.lastAppendAtNs;
  }

  protected assertWritable(extraBytes: number): void {
    if (this.closed) throw new ReadOnlyVolumeError(`volume ${this.id} is closing`);
    this.assertNotFrozen('writes are');
    if (this.info.readOnly) throw new ReadOnlyVolumeError(`volume ${this.id} is read-only`);
    this.config.space?.assertRoom(`volume ${this.id}`);
    if (this.datSize + extraBytes > MAX_VOLUME_OFFSET) {
      throw new PayloadTooLargeError(`volume ${this.id} cannot address ${extraBytes} more bytes`);
    }
  }

  /**
   * Appends the record and its index entry. Both writes are synchronous, so no
   * other append can land between them; on a failed write the tail is cut back,
   * so a half record never stays behind a good one.
   */
  protected append(record: Uint8Array | readonly Uint8Array[], key: bigint, size: number): number {
    const offset = this.appendIndexed(key, size, (at) => {
      let end = at;
      for (const part of record instanceof Uint8Array ? [record] : record) {
        this.disk.writeAt(part, end);
        end += part.length;
      }
      return end - at;
    });
    this.modifiedAt = this.config.now();
    return offset;
  }

  /**
   * The one append rule: `writeRecord(offset)` writes the record's bytes at
   * the end of the `.dat` (returning how many), then the index entry follows;
   * if either write fails both files are cut back to where they were, so a
   * half record never stays behind a good one. Synchronous: no other append
   * lands in between. Returns the record's byte offset.
   */
  private appendIndexed(key: bigint, size: number, writeRecord: (offset: number) => number): number {
    const offset = this.datSize;
    let length: number;
    try {
      length = writeRecord(offset);
      writeIdxEntry(this.idxEntry, 0, { key, offset: toStoredOffset(offset), size });
      pwriteAll(this.idxFd, this.idxEntry, this.idxSize);
    } catch (err) {
      this.disk.truncate(this.datSize);
      ftruncateSync(this.idxFd, this.idxSize);
      throw this.appendFailure(err);
    }
    this.datSize = offset + length;
    this.idxSize += IDX_ENTRY_SIZE;
    return offset;
  }

  /**
   * A failed append (its tail already cut back): a full disk is a 507 and
   * marks the location full (disk-space.ts); anything else is a 500.
   */
  protected appendFailure(err: unknown): Error {
    const what = `volume ${this.id}: append`;
    const mapped = storageErrorIn(this.config.space, err, what);
    if (mapped !== err) return mapped as Error;
    return new InternalError(`${what} failed: ${(err as Error).message}`, { cause: err });
  }

  /**
   * Waits for the append to be durable. An fsync that fails for want of space
   * (thin-provisioned or network storage; local filesystems refuse at the
   * write) is a 507 like a failed append, and marks the location full. The
   * record stays in the files, whole as pwrite put it there: never torn, but
   * not acknowledged either, as with any other fsync failure.
   */
  protected async durable(): Promise<void> {
    try {
      await this.syncer.sync();
    } catch (err) {
      throw storageErrorIn(this.config.space, err, `volume ${this.id}: fsync`);
    }
  }

  /**
   * The record of a write, as the pieces append() writes in order. Large data
   * is not copied into a record of its own: header, data and tail are written
   * one after the other (a 1 MiB copy per write was a third of the allocation,
   * and the garbage collector a third of the CPU, of 1 MiB writes).
   */
  private encodeWrite(w: NeedleWrite): { record: Uint8Array[]; size: number; checksum: number } {
    const m = w.meta;
    const appendAtNs = this.nextAppendAtNs();
    if (w.data.length >= UNCOPIED_DATA_MIN_BYTES) {
      const size = needleBodySize(m, w.data.length);
      const checksum = crc32c(w.data);
      const head = Buffer.allocUnsafe(NEEDLE_DATA_OFFSET);
      head.set(encodeNeedleHeader(w.cookie, w.key, size), 0);
      head.set(encodeDataSize(w.data.length), NEEDLE_HEADER_SIZE);
      const tail = encodeNeedleTail(m, w.data.length, checksum, appendAtNs, this.version);
      return { record: [head, w.data, tail], size, checksum };
    }
    // Fields listed rather than spread (a spread is a slow runtime call), into
    // pooled memory: the record only lives until append() has written it.
    const record = encodeNeedle(
      {
        flags: m.flags,
        name: m.name,
        mime: m.mime,
        lastModified: m.lastModified,
        ttl: m.ttl,
        pairs: m.pairs,
        cookie: w.cookie,
        id: w.key,
        data: w.data,
        appendAtNs,
      },
      this.version,
      Buffer.allocUnsafe,
    ) as Buffer;
    const size = record.readUInt32BE(12);
    const checksum = size > 0 ? record.readUInt32BE(NEEDLE_HEADER_SIZE + size) : 0;
    return { record: [record], size, checksum };
  }

  /** Writes a needle; resolves once it is durable under the fsync policy. */
  async write(w: NeedleWrite): Promise<WriteResult> {
    const existing = this.needles.get(w.key);
    // Size 0 is a live empty needle (the map keeps those); deleted ones are negative.
    if (existing !== undefined && existing.size >= 0) this.assertCookie(w.key, w.cookie, existing.offset);
    const { record, size, checksum } = this.encodeWrite(w);
    if (existing !== undefined && existing.size === size) {
      const old = this.recordAt(w.key, existing.offset, existing.size);
      if (old.checksum === checksum && sameBytes(old.data, w.data))
        return { size, checksum, unchanged: true };
    }
    this.assertWritable(record.reduce((n, part) => n + part.length, 0));
    const offset = this.append(record, w.key, size);
    this.needles.set(w.key, toStoredOffset(offset), size);
    const change = this.changed(w.key, w.cookie, existing);
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
    return { size, checksum, unchanged: false, change };
  }

  /** The key's entry now, against the one it had: called right after the map changed. */
  protected changed(key: bigint, cookie: number, before: NeedleValue | undefined): EntryChange {
    const after = this.needles.get(key)!;
    return { key, cookie, before, after, revision: this.superBlock.compactionRevision };
  }

  /**
   * The key is free, deleted, or already this cookie's: only its header is
   * read, so overwriting a large needle does not load it whole.
   */
  private assertCookie(key: bigint, cookie: number, offset: number): void {
    const header = parseNeedleHeader(this.disk.readSync(toByteOffset(offset), NEEDLE_HEADER_SIZE));
    if (header.id !== key) {
      throw new CorruptDataError(
        `volume ${this.id}: record at ${toByteOffset(offset)} is not needle ${key.toString(16)}`,
      );
    }
    if (header.cookie !== cookie) throw new ConflictError(`file key ${key.toString(16)} is taken`);
  }

  /**
   * write() for a needle whose data is in a spool file (uploads over 1 MiB):
   * header, DataSize, the data copied from the file in SPOOL_COPY_CHUNK pieces,
   * the tail, then the idx entry; then the same group-commit sync. The same
   * checks as write() (cookie conflict, unchanged bytes, read-only, size).
   *
   * The copy is synchronous, start to finish. That keeps the volume's one
   * invariant, that appends never interleave, without an append lock that
   * write(), delete(), vacuum's replay and the tier freeze would all have to
   * honour; the price is that the event loop is blocked for the copy (the
   * bytes go to the page cache: about 0.1 s for a 256 MiB upload, the default
   * maximum). The data is CRC-checked again on the way, so a spool file
   * changed or cut short since the upload is refused, never stored.
   * On any failure the `.dat` and `.idx` are cut back, as in append().
   */
  async writeStreamed(w: StreamedNeedleWrite): Promise<WriteResult> {
    const { spool } = w;
    const size = needleBodySize(w.meta, spool.size);
    if (spool.size === 0 || size === 0) throw new InternalError('writeStreamed needs a non-empty spool file');
    this.assertWritable(needleRecordSize(size, this.version));
    const existing = this.needles.get(w.key);
    if (existing !== undefined && existing.size >= 0) {
      this.assertCookie(w.key, w.cookie, existing.offset);
      if (existing.size === size && this.sameAsSpool(existing.offset, size, spool)) {
        return { size, checksum: spool.crc, unchanged: true };
      }
    }
    const spoolFd = openSync(spool.path, 'r');
    let offset: number;
    try {
      offset = this.appendIndexed(w.key, size, (start) => {
        const head = Buffer.allocUnsafe(NEEDLE_DATA_OFFSET);
        head.set(encodeNeedleHeader(w.cookie, w.key, size), 0);
        head.set(encodeDataSize(spool.size), NEEDLE_HEADER_SIZE);
        this.disk.writeAt(head, start);
        const crc = new Crc32cHasher();
        const chunk = Buffer.allocUnsafe(Math.min(SPOOL_COPY_CHUNK, spool.size));
        for (let at = 0; at < spool.size; ) {
          const n = readSync(spoolFd, chunk, 0, Math.min(chunk.length, spool.size - at), at);
          if (n === 0) throw new Error(`spool file ended at ${at} of ${spool.size} bytes`);
          const piece = chunk.subarray(0, n);
          crc.update(piece);
          this.disk.writeAt(piece, start + NEEDLE_DATA_OFFSET + at);
          at += n;
        }
        if (crc.digest() !== spool.crc) throw new Error('spool file changed since it was written');
        const tail = encodeNeedleTail(w.meta, spool.size, spool.crc, this.nextAppendAtNs(), this.version);
        this.disk.writeAt(tail, start + NEEDLE_DATA_OFFSET + spool.size);
        return needleRecordSize(size, this.version);
      });
    } finally {
      closeSync(spoolFd);
    }
    this.modifiedAt = this.config.now();
    this.needles.set(w.key, toStoredOffset(offset), size);
    const change = this.changed(w.key, w.cookie, existing);
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
    return { size, checksum: spool.crc, unchanged: false, change };
  }

  /** Whether the needle at `offset` (8-byte units) stores exactly the spool file's bytes. */
  private sameAsSpool(offset: number, size: number, spool: StreamedNeedleWrite['spool']): boolean {
    const at = toByteOffset(offset);
    const head = this.disk.readSync(at, NEEDLE_DATA_OFFSET);
    const dataSize = parseDataSize(head.subarray(NEEDLE_HEADER_SIZE), size);
    if (dataSize !== spool.size) return false;
    const tail = this.disk.readSync(
      at + NEEDLE_DATA_OFFSET + dataSize,
      needleTailLength(size, dataSize, this.version),
    );
    if (!crcFormMatches(decodeNeedleMeta(tail, size, dataSize, this.version).checksum, spool.crc))
      return false;
    const fd = openSync(spool.path, 'r');
    try {
      for (let done = 0; done < dataSize; ) {
        const n = Math.min(SPOOL_COPY_CHUNK, dataSize - done);
        if (!preadExact(fd, n, done).equals(this.disk.readSync(at + NEEDLE_DATA_OFFSET + done, n)))
          return false;
        done += n;
      }
      return true;
    } finally {
      closeSync(fd);
    }
  }

  protected assertRoom(extraBytes: number): void {
    if (this.datSize + extraBytes > MAX_VOLUME_OFFSET) {
      throw new PayloadTooLargeError(`volume ${this.id} cannot address ${extraBytes} more bytes`);
    }
  }

  /**
   * Appends a verbatim copy of the record at `from` (8-byte units) and its
   * index entry; returns the copy's byte offset. Copied in SPOOL_COPY_CHUNK
   * pieces, synchronously, as writeStreamed does (appends never interleave).
   * The record is checked first (whole, CRC included, when small; header when
   * large), so a bad record is never copied to where recovery would cut it off.
   */
  protected appendCopy(key: bigint, from: number, size: number): number {
    const recordSize = needleRecordSize(size, this.version);
    this.assertRoom(recordSize);
    if (recordSize <= LARGE_NEEDLE_BYTES) {
      this.recordAt(key, from, size);
    } else {
      const header = parseNeedleHeader(this.disk.readSync(toByteOffset(from), NEEDLE_HEADER_SIZE));
      if (header.id !== key || header.size !== size) {
        throw new CorruptDataError(
          `volume ${this.id}: record at ${toByteOffset(from)} is not needle ${key.toString(16)}`,
        );
      }
    }
    return this.appendIndexed(key, size, (offset) => {
      for (let done = 0; done < recordSize; ) {
        const n = Math.min(SPOOL_COPY_CHUNK, recordSize - done);
        this.disk.writeAt(this.disk.readSync(toByteOffset(from) + done, n), offset + done);
        done += n;
      }
      return recordSize;
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
