/**
 * One Haystack volume on local disk: an append-only `.dat` of needles, an
 * append-only `.idx` of 16-byte entries, and the needle map in RAM. A read is
 * one map lookup and one pread; a write is two appends and a (shared) sync.
 *
 * Concurrency: Node runs this on one thread, and every append below is a
 * synchronous write at a tracked end offset, so appends never interleave and
 * need no lock. Only the wait for durability (syncer.ts) is asynchronous.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import type { VolumeStatusJson } from '../../shared/api.ts';
import { Crc32cHasher, crc32c, crcFormMatches } from '../../shared/crc.ts';
import {
  ConflictError,
  CorruptDataError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  ReadOnlyVolumeError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import {
  encodeIdxEntry,
  IDX_ENTRY_SIZE,
  MAX_VOLUME_OFFSET,
  TOMBSTONE_FILE_SIZE,
  toByteOffset,
  toStoredOffset,
  writeIdxEntry,
} from '../../shared/idx.ts';
import {
  CURRENT_VERSION,
  DATA_SIZE_SIZE,
  encodeDataSize,
  encodeNeedle,
  encodeNeedleHeader,
  encodeNeedleTail,
  NEEDLE_DATA_OFFSET,
  NEEDLE_HEADER_SIZE,
  type Needle,
  type NeedleMeta,
  needleBodySize,
  needleRecordSize,
} from '../../shared/needle.ts';
import {
  decodeNeedle,
  decodeNeedleMeta,
  needleTailLength,
  parseDataSize,
  parseNeedleHeader,
} from '../../shared/needle-decode.ts';
import type { Placement } from '../../shared/placement.ts';
import { ReadHeat } from '../../shared/read-heat.ts';
import {
  type DecodedSuperBlock,
  decodeSuperBlock,
  encodeSuperBlock,
  superBlockSize,
} from '../../shared/superblock.ts';
import { isEmptyTtl, type Ttl, ttlToSeconds } from '../../shared/ttl.ts';
import type { BackendFile } from '../../tiering/backends/backend.ts';
import { tempPathFor } from '../../tiering/backends/transfer.ts';
import { fsyncDir, preadExact, pwriteAll } from '../fs/files.ts';
import { takeCleanMark, writeCleanMark } from './clean-shutdown.ts';
import { type DiskSpace, storageErrorIn } from './disk-space.ts';
import { volumePath } from './files.ts';
import { loadNeedleMapFromIdxFile, type NeedleMap, type NeedleValue } from './needle-map.ts';
import { preadExactAsync, ReadMode, timedPreadExact } from './read-mode.ts';
import { recoverVolumeFiles } from './recovery.ts';
import { type FsyncPolicy, GroupSyncer, type SyncObserver } from './syncer.ts';
import {
  type MoveMarker,
  type RemoteDat,
  readVolumeInfo,
  type VolumeInfo,
  writeVolumeInfo,
} from './volume-info.ts';

/** Needles whose record is larger than this are streamed in pages, never read whole into memory. */
export const LARGE_NEEDLE_BYTES = 1024 * 1024;
/** SeaweedFS's default volume size limit since PR #10761 (docs/format.md §7). */
export const DEFAULT_VOLUME_SIZE_LIMIT = 30 * 1024 * 1024 * 1024;
/** Bytes copied at a time from a spool file into the `.dat` (writeStreamed), and compared in unchanged checks. */
const SPOOL_COPY_CHUNK = 4 * 1024 * 1024;
/** Data at least this long is written beside its header and tail rather than copied into one record. */
const UNCOPIED_DATA_MIN_BYTES = 64 * 1024;

export interface VolumeConfig {
  dir: string;
  collection: string;
  volumeId: number;
  fsync: FsyncPolicy;
  /** Reaching this many bytes of `.dat` seals the volume. */
  sizeLimitBytes: number;
  /** Milliseconds since the epoch; injectable so TTL expiry can be tested. */
  now: () => number;
  /** Told when something the master must hear about changes (sealed, unsealed). */
  onChange?: () => void;
  /** Opens a tiered volume's remote `.dat` (tier.ts); undefined when its backend is not configured here. */
  openRemote?: (remote: RemoteDat) => BackendFile | undefined;
  /** Whether the disk under `dir` is full (disk-space.ts): shared by the volumes of one location. */
  space?: DiskSpace;
  /** Told of every fsync batch (metrics). */
  onSync?: SyncObserver;
}

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

export interface DeleteResult {
  /** The deleted needle's stored data size. */
  size: number;
  change: EntryChange;
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

/** A needle found by read(): small ones come whole, large ones as a place to stream from. */
export type ReadResult =
  | { kind: 'whole'; needle: Needle }
  | { kind: 'large'; needle: Omit<Needle, 'data'>; dataOffset: number; dataSize: number };

/** A volume's status in memory: the `/status` JSON shape (shared/api.ts) with placement and TTL parsed. */
export type VolumeStatus = Omit<VolumeStatusJson, 'replicaPlacement' | 'ttl'> & {
  replicaPlacement: Placement;
  ttl: Ttl;
};

export class Volume {
  readonly config: VolumeConfig;
  superBlock: DecodedSuperBlock;
  /** Where the next needle goes; always a multiple of 8. */
  datSize: number;
  idxSize: number;
  datFd: number;
  idxFd: number;
  map: NeedleMap;
  info: VolumeInfo;
  readonly syncer: GroupSyncer;
  /** Startup repairs, for the log. */
  readonly repairs: string[];
  /** Opened after a clean shutdown (clean-shutdown.ts): the startup repair scan was skipped. */
  openedClean = false;
  private lastAppendAtNs = 0n;
  /** Whether small reads go to the thread pool (readAdaptive). */
  readonly readMode = new ReadMode();
  /** Scratch for the idx entry append() writes (synchronously, so one serves every append). */
  private readonly idxEntry = Buffer.alloc(IDX_ENTRY_SIZE);
  /** Set by close(): no more appends. */
  closed = false;
  /** The remote `.dat` of a tiered volume; reads use it once the local `.dat` is gone (datFd < 0). */
  remote: BackendFile | undefined;
  /**
   * A tier upload or download of this volume is running (tier.ts): the `.dat`
   * must not change under it, so deletes are index-only and the volume cannot
   * be made writable until it ends.
   */
  transferring = false;
  readonly heat: ReadHeat;
  /** Milliseconds; the last append (from the `.idx`'s mtime at open). */
  modifiedAt: number;

  private constructor(
    config: VolumeConfig,
    files: { datFd: number; idxFd: number; datSize: number; idxSize: number },
    superBlock: DecodedSuperBlock,
    map: NeedleMap,
    info: VolumeInfo,
    repairs: string[],
  ) {
    this.config = config;
    this.datFd = files.datFd;
    this.idxFd = files.idxFd;
    this.datSize = files.datSize;
    this.idxSize = files.idxSize;
    this.superBlock = superBlock;
    this.map = map;
    this.info = info;
    this.repairs = repairs;
    this.syncer = new GroupSyncer(
      config.fsync,
      () => (this.datFd >= 0 ? [this.datFd, this.idxFd] : [this.idxFd]),
      config.onSync,
    );
    this.heat = new ReadHeat(config.now);
    this.modifiedAt = fstatSync(this.idxFd).mtimeMs;
    if (info.remote) this.remote = config.openRemote?.(info.remote);
  }

  /** Reads go to the cloud tier: the local `.dat` is gone. */
  get isRemote(): boolean {
    return this.datFd < 0;
  }

  /**
   * The `.dat` is, or is about to become, a copy of an immutable remote
   * object: tiered (with or without a kept local copy) or in a tier transfer.
   * Nothing may be appended to it, so a delete is an index entry only.
   */
  get datFrozen(): boolean {
    return this.datFd < 0 || this.info.remote !== undefined || this.transferring;
  }

  path(ext: string): string {
    return volumePath(this.config.dir, this.config.collection, this.config.volumeId, ext);
  }

  get id(): number {
    return this.config.volumeId;
  }

  get version(): number {
    return this.superBlock.version;
  }

  get readOnly(): boolean {
    return this.info.readOnly;
  }

  /** A move or copy is under way: nothing may change the files (volume-move.ts). */
  get frozen(): boolean {
    return this.info.moving !== undefined;
  }

  private assertNotFrozen(what: string): void {
    const m = this.info.moving;
    if (!m) return;
    const how =
      m.role === 'source'
        ? `being ${m.mode === 'move' ? 'moved' : 'copied'} to ${m.peer}`
        : `arriving from ${m.peer}`;
    throw new ReadOnlyVolumeError(`volume ${this.id} is ${how}: ${what} refused until that ends`);
  }

  /** Sets or clears the move marker (persisted first, so a crash keeps it). */
  setMoving(marker: MoveMarker | undefined): void {
    const { moving: _old, ...rest } = this.info;
    this.info = marker ? { ...rest, moving: marker } : rest;
    writeVolumeInfo(this.path('vif'), this.info);
    this.config.onChange?.();
  }

  /** Creates the files of a new, empty volume (fsync'd, directory included) and opens it. */
  static create(config: VolumeConfig, settings: { placement: Placement; ttl: Ttl }): Volume {
    const dat = volumePath(config.dir, config.collection, config.volumeId, 'dat');
    if (existsSync(dat)) throw new ConflictError(`volume ${config.volumeId} already exists`);
    const idx = volumePath(config.dir, config.collection, config.volumeId, 'idx');
    const datFd = openSync(dat, 'wx+');
    try {
      try {
        const sb = encodeSuperBlock({
          version: CURRENT_VERSION,
          placement: settings.placement,
          ttl: settings.ttl,
          compactionRevision: 0,
          extra: new Uint8Array(0),
        });
        pwriteAll(datFd, sb, 0);
      } finally {
        closeSync(datFd);
      }
      closeSync(openSync(idx, 'w'));
      fsyncDir(config.dir);
    } catch (err) {
      // A `.dat` without its whole superblock would stop the next start: a failed create leaves nothing.
      rmSync(dat, { force: true });
      rmSync(idx, { force: true });
      throw storageErrorIn(config.space, err, `volume ${config.volumeId}: create`);
    }
    return Volume.open(config);
  }

  /** Opens an existing volume, repairing a torn tail (recovery.ts) and loading the needle map. */
  static open(config: VolumeConfig): Volume {
    const info = readVolumeInfo(volumePath(config.dir, config.collection, config.volumeId, 'vif'));
    const datPath = volumePath(config.dir, config.collection, config.volumeId, 'dat');
    if (info.remote && !existsSync(datPath)) return Volume.openTiered(config, info, info.remote);
    const datFd = openSync(datPath, 'r+');
    const idxFd = openSync(volumePath(config.dir, config.collection, config.volumeId, 'idx'), 'a+');
    try {
      const head = preadExact(datFd, 8, 0);
      const superBlock = decodeSuperBlock(preadExact(datFd, superBlockSize(head), 0));
      const clean = takeCleanMark(
        volumePath(config.dir, config.collection, config.volumeId, 'clean'),
        datFd,
        idxFd,
      );
      const report = clean
        ? { datSize: fstatSync(datFd).size, idxSize: fstatSync(idxFd).size, repairs: [] }
        : recoverVolumeFiles(datFd, idxFd, superBlock.version, superBlock.size);
      const map = loadIdx(idxFd, report.idxSize);
      const volume = new Volume(
        config,
        { datFd, idxFd, datSize: report.datSize, idxSize: report.idxSize },
        superBlock,
        map,
        info,
        report.repairs,
      );
      volume.openedClean = clean;
      return volume;
    } catch (err) {
      closeSync(datFd);
      closeSync(idxFd);
      throw err;
    }
  }

  /**
   * A volume whose `.dat` lives only in a backend: the superblock comes from
   * the `.vif` and the index from the local `.idx`, so opening it sends no
   * request (a slow or failing backend cannot stop the server from starting).
   */
  private static openTiered(config: VolumeConfig, info: VolumeInfo, remote: RemoteDat): Volume {
    const idxFd = openSync(volumePath(config.dir, config.collection, config.volumeId, 'idx'), 'a+');
    try {
      const superBlock = decodeSuperBlock(Buffer.from(remote.superBlock, 'base64'));
      const repairs: string[] = [];
      let idxSize = fstatSync(idxFd).size;
      if (idxSize % IDX_ENTRY_SIZE !== 0) {
        const whole = idxSize - (idxSize % IDX_ENTRY_SIZE);
        repairs.push(`.idx ended in a torn entry: truncated ${idxSize} -> ${whole}`);
        ftruncateSync(idxFd, whole);
        idxSize = whole;
      }
      const files = { datFd: -1, idxFd, datSize: remote.size, idxSize };
      return new Volume(config, files, superBlock, loadIdx(idxFd, idxSize), info, repairs);
    } catch (err) {
      closeSync(idxFd);
      throw err;
    }
  }

  private nextAppendAtNs(): bigint {
    const now = BigInt(this.config.now()) * 1_000_000n;
    this.lastAppendAtNs = now > this.lastAppendAtNs ? now : this.lastAppendAtNs + 1n;
    return this.lastAppendAtNs;
  }

  private assertWritable(extraBytes: number): void {
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
  private append(record: Uint8Array | readonly Uint8Array[], key: bigint, size: number): number {
    const offset = this.datSize;
    let end = offset;
    try {
      for (const part of record instanceof Uint8Array ? [record] : record) {
        pwriteAll(this.datFd, part, end);
        end += part.length;
      }
      writeIdxEntry(this.idxEntry, 0, { key, offset: toStoredOffset(offset), size });
      pwriteAll(this.idxFd, this.idxEntry, this.idxSize);
    } catch (err) {
      ftruncateSync(this.datFd, this.datSize);
      ftruncateSync(this.idxFd, this.idxSize);
      throw this.appendFailure(err);
    }
    this.datSize = end;
    this.idxSize += IDX_ENTRY_SIZE;
    this.modifiedAt = this.config.now();
    return offset;
  }

  /**
   * A failed append (its tail already cut back): a full disk is a 507 and
   * marks the location full (disk-space.ts); anything else is a 500.
   */
  private appendFailure(err: unknown): Error {
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
  private async durable(): Promise<void> {
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
    const existing = this.map.get(w.key);
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
    this.map.set(w.key, toStoredOffset(offset), size);
    const change = this.changed(w.key, w.cookie, existing);
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
    return { size, checksum, unchanged: false, change };
  }

  /** The key's entry now, against the one it had: called right after the map changed. */
  private changed(key: bigint, cookie: number, before: NeedleValue | undefined): EntryChange {
    const after = this.map.get(key)!;
    return { key, cookie, before, after, revision: this.superBlock.compactionRevision };
  }

  /**
   * The key is free, deleted, or already this cookie's: only its header is
   * read, so overwriting a large needle does not load it whole.
   */
  private assertCookie(key: bigint, cookie: number, offset: number): void {
    const header = parseNeedleHeader(preadExact(this.datFd, NEEDLE_HEADER_SIZE, toByteOffset(offset)));
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
    const existing = this.map.get(w.key);
    if (existing !== undefined && existing.size >= 0) {
      this.assertCookie(w.key, w.cookie, existing.offset);
      if (existing.size === size && this.sameAsSpool(existing.offset, size, spool)) {
        return { size, checksum: spool.crc, unchanged: true };
      }
    }
    const spoolFd = openSync(spool.path, 'r');
    const offset = this.datSize;
    try {
      const head = Buffer.allocUnsafe(NEEDLE_DATA_OFFSET);
      head.set(encodeNeedleHeader(w.cookie, w.key, size), 0);
      head.set(encodeDataSize(spool.size), NEEDLE_HEADER_SIZE);
      pwriteAll(this.datFd, head, offset);
      const crc = new Crc32cHasher();
      const chunk = Buffer.allocUnsafe(Math.min(SPOOL_COPY_CHUNK, spool.size));
      for (let at = 0; at < spool.size; ) {
        const n = readSync(spoolFd, chunk, 0, Math.min(chunk.length, spool.size - at), at);
        if (n === 0) throw new Error(`spool file ended at ${at} of ${spool.size} bytes`);
        const piece = chunk.subarray(0, n);
        crc.update(piece);
        pwriteAll(this.datFd, piece, offset + NEEDLE_DATA_OFFSET + at);
        at += n;
      }
      if (crc.digest() !== spool.crc) throw new Error('spool file changed since it was written');
      const tail = encodeNeedleTail(w.meta, spool.size, spool.crc, this.nextAppendAtNs(), this.version);
      pwriteAll(this.datFd, tail, offset + NEEDLE_DATA_OFFSET + spool.size);
      writeIdxEntry(this.idxEntry, 0, { key: w.key, offset: toStoredOffset(offset), size });
      pwriteAll(this.idxFd, this.idxEntry, this.idxSize);
    } catch (err) {
      ftruncateSync(this.datFd, this.datSize);
      ftruncateSync(this.idxFd, this.idxSize);
      throw this.appendFailure(err);
    } finally {
      closeSync(spoolFd);
    }
    this.datSize += needleRecordSize(size, this.version);
    this.idxSize += IDX_ENTRY_SIZE;
    this.modifiedAt = this.config.now();
    this.map.set(w.key, toStoredOffset(offset), size);
    const change = this.changed(w.key, w.cookie, existing);
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
    return { size, checksum: spool.crc, unchanged: false, change };
  }

  /** Whether the needle at `offset` (8-byte units) stores exactly the spool file's bytes. */
  private sameAsSpool(offset: number, size: number, spool: StreamedNeedleWrite['spool']): boolean {
    const at = toByteOffset(offset);
    const head = preadExact(this.datFd, NEEDLE_DATA_OFFSET, at);
    const dataSize = parseDataSize(head.subarray(NEEDLE_HEADER_SIZE), size);
    if (dataSize !== spool.size) return false;
    const tail = preadExact(
      this.datFd,
      needleTailLength(size, dataSize, this.version),
      at + NEEDLE_DATA_OFFSET + dataSize,
    );
    if (!crcFormMatches(decodeNeedleMeta(tail, size, dataSize, this.version).checksum, spool.crc))
      return false;
    const fd = openSync(spool.path, 'r');
    try {
      for (let done = 0; done < dataSize; ) {
        const n = Math.min(SPOOL_COPY_CHUNK, dataSize - done);
        if (!preadExact(fd, n, done).equals(preadExact(this.datFd, n, at + NEEDLE_DATA_OFFSET + done)))
          return false;
        done += n;
      }
      return true;
    } finally {
      closeSync(fd);
    }
  }

  /** Decodes and verifies the whole record at `offset` (8-byte units) of the local `.dat`. */
  recordAt(key: bigint, offset: number, size: number): Needle {
    const recordSize = needleRecordSize(size, this.version);
    const bytes = preadExact(this.datFd, recordSize, toByteOffset(offset));
    return decodeNeedle(bytes, this.version, { expectedId: key, expectedSize: size });
  }

  /**
   * The live needle for key + cookie. Missing, deleted, expired and wrong
   * cookie all throw the same NotFoundError, so a 404 never says which.
   * Corrupt bytes throw (CorruptDataError / ChecksumMismatchError), never return.
   */
  read(key: bigint, cookie: number, readDeleted = false): ReadResult {
    const entry = this.map.get(key);
    if (entry === undefined) throw new NotFoundError('not found');
    let size = entry.size;
    if (size < 0) {
      // SeaweedFS's `readDeleted=true`: a deleted needle keeps its offset (size negated) until
      // vacuum drops it, and can still be read there. Expiry still applies.
      if (!readDeleted || size === TOMBSTONE_FILE_SIZE || entry.offset === 0)
        throw new NotFoundError('not found');
      size = -size;
    }
    this.heat.hit();
    const recordSize = needleRecordSize(size, this.version);
    if (recordSize <= LARGE_NEEDLE_BYTES) {
      const needle = this.recordAt(key, entry.offset, size);
      this.assertVisible(needle, cookie);
      return { kind: 'whole', needle };
    }
    const at = toByteOffset(entry.offset);
    const head = preadExact(this.datFd, NEEDLE_DATA_OFFSET, at);
    const header = parseNeedleHeader(head);
    if (header.id !== key || header.size !== size) {
      throw new CorruptDataError(`volume ${this.id}: record at ${at} is not needle ${key.toString(16)}`);
    }
    const dataSize = parseDataSize(head.subarray(NEEDLE_HEADER_SIZE), header.size);
    const tailLength = needleTailLength(header.size, dataSize, this.version);
    const tail = preadExact(this.datFd, tailLength, at + NEEDLE_DATA_OFFSET + dataSize);
    const meta = decodeNeedleMeta(tail, header.size, dataSize, this.version);
    const needle = { ...meta, ...header };
    this.assertVisible(needle, cookie);
    return { kind: 'large', needle, dataOffset: at + NEEDLE_HEADER_SIZE + DATA_SIZE_SIZE, dataSize };
  }

  /** Whether the key has a live needle (a write to it is an overwrite). */
  holds(key: bigint): boolean {
    const entry = this.map.get(key);
    return entry !== undefined && entry.size >= 0;
  }

  /**
   * read() for the HTTP hot path: the record's pread runs on the event loop
   * or on the thread pool as ReadMode decides (read-mode.ts), so a cold page
   * cache does not stall every connection. Same results and errors as read();
   * synchronous when the read was.
   */
  readAdaptive(key: bigint, cookie: number): ReadResult | Promise<ReadResult> {
    if (this.isRemote) return this.readRemoteAdaptive(key, cookie);
    const entry = this.map.get(key);
    if (entry === undefined || entry.size < 0) throw new NotFoundError('not found');
    const recordSize = needleRecordSize(entry.size, this.version);
    // A large needle's header and tail preads stay synchronous; its data streams anyway.
    if (recordSize > LARGE_NEEDLE_BYTES) return this.read(key, cookie);
    this.heat.hit();
    const at = toByteOffset(entry.offset);
    const bytes = Buffer.allocUnsafe(recordSize);
    if (this.readMode.sync()) {
      // Only the pread is timed: decoding is CPU, the same either way.
      this.readMode.record(timedPreadExact(this.datFd, bytes, at));
      return this.wholeNeedle(bytes, this.version, key, entry.size, cookie);
    }
    const { datFd, map, version } = this;
    return preadExactAsync(datFd, bytes, at).then(
      (bytes) =>
        this.datFd !== datFd || this.map !== map
          ? this.readAgain(key, cookie)
          : this.wholeNeedle(bytes, version, key, entry.size, cookie),
      (err: unknown) => {
        if (this.datFd !== datFd || this.map !== map) return this.readAgain(key, cookie);
        throw err;
      },
    );
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

  /**
   * The files changed under an asynchronous read (vacuum swapped them, or the
   * `.dat` went to a cloud tier and was closed): what it read, or failed to,
   * may be another file's bytes, so the read starts over on the current ones.
   */
  private readAgain(key: bigint, cookie: number): ReadResult | Promise<ReadResult> {
    return this.isRemote ? this.readRemote(key, cookie) : this.read(key, cookie);
  }

  private assertVisible(needle: { cookie: number; lastModified?: number; ttl?: Ttl }, cookie: number): void {
    if (needle.cookie !== cookie) throw new NotFoundError('not found');
    if (this.isExpired(needle)) throw new NotFoundError('not found');
  }

  /** A needle's own TTL wins over the volume's; both count from its last-modified time. */
  isExpired(needle: { lastModified?: number; ttl?: Ttl }): boolean {
    const at = this.expiresAt(needle);
    return at !== undefined && at <= this.config.now();
  }

  /** When the needle's TTL ends (ms since the epoch), or undefined if it never expires. */
  expiresAt(needle: { lastModified?: number; ttl?: Ttl }): number | undefined {
    const ttl = needle.ttl && !isEmptyTtl(needle.ttl) ? needle.ttl : this.superBlock.ttl;
    if (isEmptyTtl(ttl) || needle.lastModified === undefined) return undefined;
    return (needle.lastModified + ttlToSeconds(ttl)) * 1000;
  }

  /**
   * Appends a tombstone record and a delete entry. Returns the deleted needle's
   * stored data size and what changed. A wrong cookie is a 404, like a missing key.
   */
  async delete(key: bigint, cookie: number): Promise<DeleteResult> {
    const entry = this.map.get(key);
    if (entry === undefined || entry.size < 0) throw new NotFoundError('not found');
    const needle = this.isRemote
      ? await this.readRemoteRecord(key, entry.offset, entry.size)
      : this.recordAt(key, entry.offset, entry.size);
    if (needle.cookie !== cookie) throw new NotFoundError('not found');
    if (this.closed) throw new ReadOnlyVolumeError(`volume ${this.id} is closing`);
    this.assertNotFrozen('deletes are');
    if (this.datFrozen) {
      // The remote .dat is immutable: a delete is an index entry only, with no
      // tombstone record (offset 0, as SeaweedFS does); `kelp tier compact` reclaims the bytes.
      // The same while a kept local copy or a transfer exists: a tombstone appended there would
      // be lost with it, and its index entry, pointing past the object's end, dropped at the next
      // open (recovery.ts), bringing the needle back.
      try {
        pwriteAll(this.idxFd, encodeIdxEntry({ key, offset: 0, size: TOMBSTONE_FILE_SIZE }), this.idxSize);
      } catch (err) {
        ftruncateSync(this.idxFd, this.idxSize);
        throw this.appendFailure(err);
      }
      this.idxSize += IDX_ENTRY_SIZE;
      this.modifiedAt = this.config.now();
      this.map.delete(key, 0);
      const change = this.changed(key, cookie, entry);
      await this.durable();
      return { size: needle.data.length, change };
    }
    const record = encodeNeedle(
      { flags: 0, cookie, id: key, data: new Uint8Array(0), appendAtNs: this.nextAppendAtNs() },
      this.version,
    );
    const offset = this.append(record, key, TOMBSTONE_FILE_SIZE);
    this.map.delete(key, toStoredOffset(offset));
    const change = this.changed(key, cookie, entry);
    await this.durable();
    return { size: needle.data.length, change };
  }

  /**
   * Undoes `change` (a replicated write or delete whose fan-out failed,
   * docs/decisions/0004): the key gets back the entry it had before. A needle
   * that was there is copied, record verbatim, to the end of the `.dat` (its
   * bytes are still there: the `.dat` is append-only); a key that was absent
   * or deleted gets a tombstone. Appending rather than pointing the index back
   * at the old offset keeps what recovery.ts relies on: entries follow `.dat`
   * order, so the last entry's record ends where unindexed records may start
   * (an entry pointing back would make it re-index, and so bring back, the
   * very needle this removes). Durable under the fsync policy once it resolves.
   *
   * Refused (ConflictError, nothing changed) when the key's entry is no longer
   * the one the change left (a later write or delete stands), when vacuum has
   * compacted the volume since (every offset moved, and the old needle may be
   * gone), or when the `.dat` is frozen (tiered: nothing may be appended).
   * Not refused for read-only: the change being undone may be what sealed it.
   */
  async restore(change: EntryChange): Promise<void> {
    const { key, cookie, before, after } = change;
    const what = `volume ${this.id}, needle ${key.toString(16)}`;
    if (this.closed) throw new ReadOnlyVolumeError(`volume ${this.id} is closing`);
    // A copy is reading the files: the change is kept (and copied), as when vacuum moved it.
    if (this.frozen) throw new ConflictError(`volume ${this.id} is being moved: the change is kept`);
    if (this.superBlock.compactionRevision !== change.revision) {
      throw new ConflictError(`${what}: the volume was compacted since the change, which is kept`);
    }
    const now = this.map.get(key);
    if (now === undefined || now.offset !== after.offset || now.size !== after.size) {
      throw new ConflictError(`${what}: changed again since, so the later change stands`);
    }
    if (this.datFrozen) {
      throw new ConflictError(`${what}: the volume is tiered or in a tier transfer, so the change is kept`);
    }
    if (before === undefined || before.size < 0) {
      const record = encodeNeedle(
        { flags: 0, cookie, id: key, data: new Uint8Array(0), appendAtNs: this.nextAppendAtNs() },
        this.version,
      );
      this.assertRoom(record.length);
      this.map.delete(key, toStoredOffset(this.append(record, key, TOMBSTONE_FILE_SIZE)));
    } else {
      this.map.set(key, toStoredOffset(this.appendCopy(key, before.offset, before.size)), before.size);
    }
    this.modifiedAt = this.config.now();
    if (this.datSize >= this.config.sizeLimitBytes) this.setReadOnly(true);
    await this.durable();
  }

  private assertRoom(extraBytes: number): void {
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
  private appendCopy(key: bigint, from: number, size: number): number {
    const recordSize = needleRecordSize(size, this.version);
    this.assertRoom(recordSize);
    if (recordSize <= LARGE_NEEDLE_BYTES) {
      this.recordAt(key, from, size);
    } else {
      const header = parseNeedleHeader(preadExact(this.datFd, NEEDLE_HEADER_SIZE, toByteOffset(from)));
      if (header.id !== key || header.size !== size) {
        throw new CorruptDataError(
          `volume ${this.id}: record at ${toByteOffset(from)} is not needle ${key.toString(16)}`,
        );
      }
    }
    const offset = this.datSize;
    try {
      for (let done = 0; done < recordSize; ) {
        const n = Math.min(SPOOL_COPY_CHUNK, recordSize - done);
        pwriteAll(this.datFd, preadExact(this.datFd, n, toByteOffset(from) + done), offset + done);
        done += n;
      }
      writeIdxEntry(this.idxEntry, 0, { key, offset: toStoredOffset(offset), size });
      pwriteAll(this.idxFd, this.idxEntry, this.idxSize);
    } catch (err) {
      ftruncateSync(this.datFd, this.datSize);
      ftruncateSync(this.idxFd, this.idxSize);
      throw this.appendFailure(err);
    }
    this.datSize += recordSize;
    this.idxSize += IDX_ENTRY_SIZE;
    return offset;
  }

  /** The whole record at `offset` of a remote `.dat`: exactly one ranged GET, CRC checked. */
  async recordFrom(file: BackendFile, key: bigint, offset: number, size: number): Promise<Needle> {
    const bytes = await file.readAt(toByteOffset(offset), needleRecordSize(size, this.version));
    return decodeNeedle(bytes, this.version, { expectedId: key, expectedSize: size });
  }

  private async readRemoteRecord(key: bigint, offset: number, size: number): Promise<Needle> {
    const r = this.info.remote;
    if (!this.remote) {
      throw new UnavailableError(
        `volume ${this.id} is tiered to ${r?.backend}${r?.bucket ? ` (bucket ${r.bucket})` : ''}, ` +
          'which is not configured here',
      );
    }
    try {
      return await this.recordFrom(this.remote, key, offset, size);
    } catch (err) {
      throw this.remoteFailure(err);
    }
  }

  /**
   * The index says the needle exists: a missing object is the store's failure, not a 404 a client
   * (or a cache in front) could take for a deleted blob.
   */
  private remoteFailure(err: unknown): unknown {
    if (!(err instanceof NotFoundError)) return err;
    const r = this.info.remote;
    return new UpstreamError(`volume ${this.id}: its object ${r?.backend}/${r?.key} is missing`, {
      cause: err,
    });
  }

  /**
   * readRemote() for the HTTP hot path. A remote file that can be pread (a
   * `local` tier) is read on the event loop while ReadMode finds such reads
   * fast, as the volume's own `.dat` is (read-mode.ts), and answered without
   * a promise; otherwise, and for large records, through `readAt` with its
   * retries. The CRC is checked either way (decodeNeedle).
   */
  private readRemoteAdaptive(key: bigint, cookie: number): ReadResult | Promise<ReadResult> {
    const file = this.remote;
    if (!file?.readAtSync) return this.readRemote(key, cookie);
    const entry = this.map.get(key);
    if (entry === undefined || entry.size < 0) throw new NotFoundError('not found');
    const recordSize = needleRecordSize(entry.size, this.version);
    if (recordSize > LARGE_NEEDLE_BYTES || !this.readMode.sync()) return this.readRemote(key, cookie);
    const bytes = Buffer.allocUnsafe(recordSize);
    const started = performance.now();
    try {
      file.readAtSync(toByteOffset(entry.offset), bytes);
    } catch (err) {
      // One attempt only: what a retry may cure (a flaky mount) goes to the retrying path.
      if (err instanceof UnavailableError) return this.readRemote(key, cookie);
      throw this.remoteFailure(err);
    }
    this.readMode.record(performance.now() - started);
    this.heat.hit();
    return this.wholeNeedle(bytes, this.version, key, entry.size, cookie);
  }

  /** read() for a tiered volume: the index lookup in RAM, then one ranged GET of the needle record. */
  async readRemote(key: bigint, cookie: number): Promise<ReadResult> {
    const entry = this.map.get(key);
    if (entry === undefined || entry.size < 0) throw new NotFoundError('not found');
    this.heat.hit();
    const needle = await this.readRemoteRecord(key, entry.offset, entry.size);
    this.assertVisible(needle, cookie);
    return { kind: 'whole', needle };
  }

  /**
   * Switches reads to the backend once its copy is verified (tier.ts): the
   * `.vif` is the commit point. With `dropLocal` the local `.dat` is then
   * deleted; otherwise reads stay local and the remote copy waits for the day
   * the file is removed. Synchronous, so nothing (a delete, a vacuum's commit)
   * can run between the caller's last check and the switch. The old
   * descriptor is closed once in-flight syncs are done with it, as in swapFiles.
   */
  attachRemote(remote: RemoteDat, file: BackendFile, dropLocal: boolean): void {
    if (this.closed) throw new ConflictError(`volume ${this.id} closed before its tier upload finished`);
    this.info = { ...this.info, readOnly: true, remote };
    writeVolumeInfo(this.path('vif'), this.info);
    this.remote = file;
    if (!dropLocal || this.datFd < 0) return;
    const fd = this.datFd;
    this.datFd = -1;
    // Renamed out of the way here, removed later off the event loop: freeing the blocks of a multi-GiB file
    // takes a while (hundreds of ms per GiB where the disk discards on delete) and would stall every
    // request. A crash before the removal leaves a temp file that the next start sweeps (sweep.ts).
    const doomed = tempPathFor(this.path('dat'));
    renameSync(this.path('dat'), doomed);
    fsyncDir(this.config.dir);
    const closeOld = () => {
      closeSync(fd);
      rm(doomed, { force: true }).catch(() => {});
    };
    this.syncer.flush().then(closeOld, closeOld);
  }

  /** After a download put the `.dat` back (tier.ts): reads and writes are local again. */
  async detachRemote(): Promise<void> {
    if (this.closed) throw new ConflictError(`volume ${this.id} closed before its tier download finished`);
    if (this.datFd < 0) {
      const fd = openSync(this.path('dat'), 'r+');
      const size = fstatSync(fd).size;
      if (size !== this.datSize) {
        closeSync(fd);
        throw new CorruptDataError(
          `volume ${this.id}: downloaded .dat has ${size} bytes, expected ${this.datSize}`,
        );
      }
      this.datFd = fd;
    }
    const { remote: _gone, ...rest } = this.info;
    this.info = { ...rest, readOnly: this.datSize >= this.config.sizeLimitBytes };
    writeVolumeInfo(this.path('vif'), this.info);
    const file = this.remote;
    this.remote = undefined;
    this.config.onChange?.();
    await file?.close();
  }

  /**
   * Switches to compacted files (vacuum.ts, after its renames). The old
   * descriptors stay open until the next sync ends, since a sync already in
   * flight may still be using them; syncs run one at a time, so by then none is.
   */
  swapFiles(next: {
    datFd: number;
    idxFd: number;
    datSize: number;
    idxSize: number;
    map: NeedleMap;
    superBlock: DecodedSuperBlock;
  }): void {
    const oldDat = this.datFd;
    const oldIdx = this.idxFd;
    this.datFd = next.datFd;
    this.idxFd = next.idxFd;
    this.datSize = next.datSize;
    this.idxSize = next.idxSize;
    this.map = next.map;
    this.superBlock = next.superBlock;
    const closeOld = () => {
      closeSync(oldDat);
      closeSync(oldIdx);
    };
    this.syncer.flush().then(closeOld, closeOld);
  }

  setReadOnly(readOnly: boolean): void {
    if (this.info.readOnly === readOnly) return;
    this.assertNotFrozen('marking it is');
    if (!readOnly && (this.info.remote || this.transferring)) {
      // A write would land in no copy the volume keeps (tiered) or change the bytes being copied.
      throw new ConflictError(
        `volume ${this.id} is ${this.info.remote ? `tiered to ${this.info.remote.backend}` : 'in a tier transfer'}: ` +
          'download it first (kelp tier download) to write to it',
      );
    }
    this.info = { ...this.info, readOnly };
    writeVolumeInfo(this.path('vif'), this.info);
    this.config.onChange?.();
  }

  /** Garbage ratio as vacuum sees it (docs/format.md §9): bytes of dead needles over bytes ever written. */
  garbageRatio(): number {
    return this.map.contentBytes === 0 ? 0 : this.map.deletedBytes / this.map.contentBytes;
  }

  status(): VolumeStatus {
    return {
      id: this.id,
      collection: this.config.collection,
      size: this.datSize,
      fileCount: this.map.liveCount,
      deleteCount: this.map.deletedCount,
      deletedByteCount: this.map.deletedBytes,
      // Frozen for a move: the master must not assign it (topology.writable).
      readOnly: this.info.readOnly || this.frozen,
      full: this.config.space?.full ?? false,
      replicaPlacement: this.superBlock.placement,
      ttl: this.superBlock.ttl,
      version: this.version,
      compactRevision: this.superBlock.compactionRevision,
      maxFileKey: this.map.maxKey.toString(),
      remote: this.info.remote?.backend,
      readsPerDay: this.heat.perDay(),
      modifiedAt: Math.floor(this.modifiedAt / 1000),
      ...(this.info.moving ? { moving: this.info.moving } : {}),
    };
  }

  /**
   * Waits for pending syncs, then closes both files. With `markClean` (the
   * server shutting down) a local volume is marked cleanly closed, so the next
   * open skips the repair scan (clean-shutdown.ts).
   */
  async close(opts: { markClean?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncer.flush();
    if (opts.markClean && this.datFd >= 0) writeCleanMark(this.path('clean'), this.datFd, this.idxFd);
    if (this.datFd >= 0) closeSync(this.datFd);
    closeSync(this.idxFd);
    await this.remote?.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Loads the first `idxSize` bytes of `.idx` into a fresh map (needle-map.ts: one reused buffer, trimmed chunks). */
export function loadIdx(idxFd: number, idxSize: number): NeedleMap {
  return loadNeedleMapFromIdxFile(idxFd, idxSize);
}
