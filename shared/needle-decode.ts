/**
 * Reading needle records (layout in `needle.ts`). Every check throws a
 * `CorruptDataError` subclass, never a RangeError: the bytes come from disks,
 * cloud tiers and torn writes, and a bad record must be named, not served.
 *
 * Two ways in:
 * - `decodeNeedle` for a whole record in memory;
 * - for streaming a large needle, `parseNeedleHeader` + `parseDataSize` on the
 *   first 20 bytes, `decodeNeedleMeta` on the bytes after the data, then the
 *   data itself through a `Crc32cHasher`, compared with `crcFormMatches`.
 */
import { crc32c, crcFormMatches } from './crc.ts';
import { ChecksumMismatchError, CorruptDataError, TruncatedDataError } from './errors.ts';
import {
  assertVersion,
  CURRENT_VERSION,
  DATA_SIZE_SIZE,
  FLAG_HAS_LAST_MODIFIED,
  FLAG_HAS_MIME,
  FLAG_HAS_NAME,
  FLAG_HAS_PAIRS,
  FLAG_HAS_TTL,
  LAST_MODIFIED_SIZE,
  MAX_NEEDLE_SIZE,
  NEEDLE_CHECKSUM_SIZE,
  NEEDLE_DATA_OFFSET,
  NEEDLE_HEADER_SIZE,
  type Needle,
  type NeedleMeta,
  needleRecordSize,
  TIMESTAMP_SIZE,
  VERSION_3,
} from './needle.ts';
import { decodeTtl, TTL_SIZE } from './ttl.ts';

export interface NeedleHeader {
  cookie: number;
  id: bigint;
  /** Body length; 0 for tombstones and empty files. */
  size: number;
}

/** The stored fields after the data, plus the record's CRC and AppendAtNs. */
export interface NeedleTail extends NeedleMeta {
  checksum: number;
  appendAtNs: bigint;
}

export interface DecodeNeedleOptions {
  /** The id the index says lives here: a different one means the index or the file is wrong. */
  expectedId?: bigint;
  /** The Size the index recorded for this record. */
  expectedSize?: number;
  /** Check the CRC (default true). Scans that only rebuild an index may skip it. */
  verifyChecksum?: boolean;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function idHex(id: bigint): string {
  return id.toString(16);
}

/** Cookie, id and Size from the first 16 bytes of a record. */
export function parseNeedleHeader(bytes: Uint8Array): NeedleHeader {
  if (bytes.length < NEEDLE_HEADER_SIZE) {
    throw new TruncatedDataError(`needle header needs ${NEEDLE_HEADER_SIZE} bytes, got ${bytes.length}`);
  }
  const view = viewOf(bytes);
  const size = view.getUint32(12);
  // Readers of SeaweedFS treat a negative i32 Size as deleted; on disk it is never written.
  if (size > MAX_NEEDLE_SIZE) throw new CorruptDataError(`needle Size ${size} is over ${MAX_NEEDLE_SIZE}`);
  return { cookie: view.getUint32(0), id: view.getBigUint64(4), size };
}

/**
 * DataSize from the 4 bytes at record offset 16, checked against Size: the
 * body must hold DataSize, the data and at least the flags byte.
 */
export function parseDataSize(bytes: Uint8Array, size: number): number {
  if (bytes.length < DATA_SIZE_SIZE) {
    throw new TruncatedDataError(`needle DataSize needs ${DATA_SIZE_SIZE} bytes, got ${bytes.length}`);
  }
  const dataSize = viewOf(bytes).getUint32(0);
  if (DATA_SIZE_SIZE + dataSize + 1 > size) {
    throw new CorruptDataError(`needle DataSize ${dataSize} does not fit its Size ${size}`);
  }
  return dataSize;
}

/** Bytes from the end of the data to the end of the record, padding included. */
export function needleTailLength(size: number, dataSize: number, version: number = CURRENT_VERSION): number {
  const dataEnd = size === 0 ? NEEDLE_HEADER_SIZE : NEEDLE_DATA_OFFSET + dataSize;
  return needleRecordSize(size, version) - dataEnd;
}

/**
 * Parses what follows the data: `tail` starts right after the data (or after
 * the header when Size is 0) and must reach at least the end of the CRC
 * (v2) or AppendAtNs (v3); padding, if included, is ignored. Flagged fields
 * must fill the rest of the body exactly.
 */
export function decodeNeedleMeta(
  tail: Uint8Array,
  size: number,
  dataSize: number,
  version: number = CURRENT_VERSION,
): NeedleTail {
  assertVersion(version);
  const view = viewOf(tail);
  const metaLength = parseTail(tail, view, 0, tail.length, size, dataSize, version);
  return {
    flags: fields.flags,
    name: fields.name,
    mime: fields.mime,
    lastModified: fields.lastModified,
    ttl: fields.ttl,
    pairs: fields.pairs,
    checksum: view.getUint32(metaLength),
    appendAtNs: version === VERSION_3 ? view.getBigUint64(metaLength + NEEDLE_CHECKSUM_SIZE) : 0n,
  };
}

/**
 * The optional fields of the record being decoded. Decoding is synchronous, so
 * one scratch object serves every call, and each result is built in a single
 * object literal of one shape (absent fields are `undefined`): no object
 * spreads or added properties, which are slow runtime calls on the read path.
 */
const fields: NeedleMeta = {
  flags: 0,
  name: undefined,
  mime: undefined,
  lastModified: undefined,
  ttl: undefined,
  pairs: undefined,
};

/**
 * Checks the length of the tail, the `length` bytes of `bytes` from `base`,
 * and parses its fields into `fields`; returns where the CRC starts, counted
 * from `base`. `view` covers `bytes`.
 */
function parseTail(
  bytes: Uint8Array,
  view: DataView,
  base: number,
  length: number,
  size: number,
  dataSize: number,
  version: number,
): number {
  const metaLength = size === 0 ? 0 : size - DATA_SIZE_SIZE - dataSize;
  if (size !== 0 && metaLength < 1) {
    throw new CorruptDataError(`needle DataSize ${dataSize} leaves no flags byte in Size ${size}`);
  }
  const needed = metaLength + NEEDLE_CHECKSUM_SIZE + (version === VERSION_3 ? TIMESTAMP_SIZE : 0);
  if (length < needed) {
    throw new TruncatedDataError(`needle tail needs ${needed} bytes, got ${length}`);
  }
  fields.name = undefined;
  fields.mime = undefined;
  fields.lastModified = undefined;
  fields.ttl = undefined;
  fields.pairs = undefined;
  if (size === 0) fields.flags = 0;
  else parseFields(bytes, view, base, metaLength);
  return metaLength;
}

function runsPast(field: string, flags: number): CorruptDataError {
  return new CorruptDataError(`needle ${field} runs past the body (flags 0x${flags.toString(16)})`);
}

function parseFields(bytes: Uint8Array, view: DataView, base: number, end: number): void {
  // Positions count from `base`, the flags byte.
  const flags = bytes[base]!;
  fields.flags = flags;
  let p = 1;
  if (flags & FLAG_HAS_NAME) {
    if (p + 1 > end) throw runsPast('name length', flags);
    const len = bytes[base + p++]!;
    if (p + len > end) throw runsPast('name', flags);
    fields.name = bytes.subarray(base + p, base + p + len);
    p += len;
  }
  if (flags & FLAG_HAS_MIME) {
    if (p + 1 > end) throw runsPast('mime length', flags);
    const len = bytes[base + p++]!;
    if (p + len > end) throw runsPast('mime', flags);
    fields.mime = bytes.subarray(base + p, base + p + len);
    p += len;
  }
  if (flags & FLAG_HAS_LAST_MODIFIED) {
    if (p + LAST_MODIFIED_SIZE > end) throw runsPast('lastModified', flags);
    fields.lastModified = bytes[base + p]! * 2 ** 32 + view.getUint32(base + p + 1);
    p += LAST_MODIFIED_SIZE;
  }
  if (flags & FLAG_HAS_TTL) {
    if (p + TTL_SIZE > end) throw runsPast('TTL', flags);
    fields.ttl = decodeTtl(bytes, base + p);
    p += TTL_SIZE;
  }
  if (flags & FLAG_HAS_PAIRS) {
    if (p + 2 > end) throw runsPast('pairs length', flags);
    const len = view.getUint16(base + p);
    p += 2;
    if (p + len > end) throw runsPast('pairs', flags);
    fields.pairs = bytes.subarray(base + p, base + p + len);
    p += len;
  }
  // SeaweedFS's reader ignores leftovers; here they mean a damaged flags byte or Size, so refuse them.
  if (p !== end) throw new CorruptDataError(`needle body has ${end - p} bytes no flag accounts for`);
}

/**
 * Decodes the record at the start of `bytes` (bytes past the record are
 * ignored). Verifies structure and CRC, accepting the legacy CRC form. Byte
 * fields of the result are views into `bytes`.
 */
export function decodeNeedle(
  bytes: Uint8Array,
  version: number = CURRENT_VERSION,
  opts: DecodeNeedleOptions = NO_OPTIONS,
): Needle {
  assertVersion(version);
  if (bytes.length < NEEDLE_HEADER_SIZE) {
    throw new TruncatedDataError(`needle header needs ${NEEDLE_HEADER_SIZE} bytes, got ${bytes.length}`);
  }
  // One view over the whole record: header, DataSize and tail are read through it.
  const view = viewOf(bytes);
  const cookie = view.getUint32(0);
  const id = view.getBigUint64(4);
  const size = view.getUint32(12);
  // Readers of SeaweedFS treat a negative i32 Size as deleted; on disk it is never written.
  if (size > MAX_NEEDLE_SIZE) throw new CorruptDataError(`needle Size ${size} is over ${MAX_NEEDLE_SIZE}`);
  if (opts.expectedId !== undefined && id !== opts.expectedId) {
    throw new CorruptDataError(`needle id ${idHex(id)} found where ${idHex(opts.expectedId)} was expected`);
  }
  if (opts.expectedSize !== undefined && size !== opts.expectedSize) {
    throw new CorruptDataError(`needle ${idHex(id)} has Size ${size}, expected ${opts.expectedSize}`);
  }
  const recordSize = needleRecordSize(size, version);
  if (bytes.length < recordSize) {
    throw new TruncatedDataError(`needle ${idHex(id)} needs ${recordSize} bytes, got ${bytes.length}`);
  }
  let dataSize = 0;
  let dataEnd = NEEDLE_HEADER_SIZE;
  if (size > 0) {
    // The record is whole (checked above), so the 4 bytes of DataSize are there.
    dataSize = view.getUint32(NEEDLE_HEADER_SIZE);
    if (DATA_SIZE_SIZE + dataSize + 1 > size) {
      throw new CorruptDataError(`needle DataSize ${dataSize} does not fit its Size ${size}`);
    }
    dataEnd = NEEDLE_DATA_OFFSET + dataSize;
  }
  const data = size > 0 ? bytes.subarray(NEEDLE_DATA_OFFSET, dataEnd) : bytes.subarray(0, 0);
  const metaLength = parseTail(bytes, view, dataEnd, recordSize - dataEnd, size, dataSize, version);
  const crcAt = dataEnd + metaLength;
  const checksum = view.getUint32(crcAt);
  // Size 0 carries no data to check; SeaweedFS does not check its CRC field either.
  if (size > 0 && opts.verifyChecksum !== false) assertChecksum(id, checksum, crc32c(data));
  return {
    flags: fields.flags,
    name: fields.name,
    mime: fields.mime,
    lastModified: fields.lastModified,
    ttl: fields.ttl,
    pairs: fields.pairs,
    checksum,
    appendAtNs: version === VERSION_3 ? view.getBigUint64(crcAt + NEEDLE_CHECKSUM_SIZE) : 0n,
    cookie,
    id,
    size,
    data,
  };
}

const NO_OPTIONS: DecodeNeedleOptions = {};

/**
 * Throws ChecksumMismatchError unless the stored CRC field matches `actual`,
 * the CRC-32C computed over the data (at once or by a `Crc32cHasher` while streaming).
 */
export function assertChecksum(id: bigint, stored: number, actual: number): void {
  if (!crcFormMatches(stored, actual)) {
    throw new ChecksumMismatchError(
      `needle ${idHex(id)}: stored CRC ${hex32(stored)} does not match data CRC ${hex32(actual)}`,
    );
  }
}

function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
