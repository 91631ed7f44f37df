/**
 * Needle records of volume versions 2 and 3, laid out exactly as SeaweedFS
 * writes them (docs/format.md §4), so its volumes open in Kelp and back. All integers
 * are big-endian. This file holds the layout, the size arithmetic and the
 * write side; `needle-decode.ts` reads records and `needle-scan.ts` walks a
 * `.dat` body.
 *
 *   header   cookie u32 | id u64 | Size u32            (16 bytes)
 *   body     DataSize u32 | data | flags u8 | [name] [mime] [lastModified] [ttl] [pairs]
 *                                                      (Size bytes; absent when Size = 0)
 *   tail     CRC u32 | AppendAtNs u64 (v3 only) | 1-8 bytes of padding
 *
 * The write side comes in layers (header, DataSize, data, tail) so the volume
 * server can stream a large needle to disk with an incremental CRC instead of
 * buffering it; `encodeNeedle` is those layers joined.
 */
import { crc32c } from './crc.ts';
import { InvalidParamError, PayloadTooLargeError, UnsupportedVersionError } from './errors.ts';
import { encodeTtl, TTL_SIZE, type Ttl } from './ttl.ts';

export const VERSION_2 = 2;
export const VERSION_3 = 3;
export const CURRENT_VERSION = VERSION_3;

export const NEEDLE_HEADER_SIZE = 16;
export const DATA_SIZE_SIZE = 4;
/** Where the data starts inside a record with Size > 0 (after header and DataSize). */
export const NEEDLE_DATA_OFFSET = NEEDLE_HEADER_SIZE + DATA_SIZE_SIZE;
export const NEEDLE_CHECKSUM_SIZE = 4;
export const TIMESTAMP_SIZE = 8;
/** Records start at multiples of 8 so an index can address them in 8-byte units. */
export const NEEDLE_PADDING_SIZE = 8;

export const FLAG_GZIP = 0x01;
export const FLAG_HAS_NAME = 0x02;
export const FLAG_HAS_MIME = 0x04;
export const FLAG_HAS_LAST_MODIFIED = 0x08;
export const FLAG_HAS_TTL = 0x10;
export const FLAG_HAS_PAIRS = 0x20;
export const FLAG_CHUNK_MANIFEST = 0x80;
/** Flags that announce an optional field: the encoder derives them from which fields are present. */
export const FIELD_FLAGS =
  FLAG_HAS_NAME | FLAG_HAS_MIME | FLAG_HAS_LAST_MODIFIED | FLAG_HAS_TTL | FLAG_HAS_PAIRS;

/** Names and mime types of 256+ bytes are dropped, not truncated, as SeaweedFS's upload path does. */
export const MAX_NAME_BYTES = 255;
export const MAX_MIME_BYTES = 255;
export const MAX_PAIRS_BYTES = 0xffff;
export const LAST_MODIFIED_SIZE = 5;
/** The `.idx` stores Size as an i32 whose negative values mean "deleted", so a body tops out at 2^31 - 1. */
export const MAX_NEEDLE_SIZE = 0x7fffffff;
const MAX_LAST_MODIFIED = 2 ** 40 - 1;
const MAX_U64 = 0xffff_ffff_ffff_ffffn;

/** Everything stored after the data. Byte fields are raw: names need not be UTF-8, pairs are JSON bytes. */
export interface NeedleMeta {
  /** The flags byte. On encode only its non-field bits (gzip, chunk manifest) count; field bits follow the fields present. */
  flags: number;
  name?: Uint8Array;
  mime?: Uint8Array;
  /** Unix seconds; 40 bits on disk. */
  lastModified?: number;
  ttl?: Ttl;
  /** A JSON object (from `Seaweed-*` headers), kept as bytes. */
  pairs?: Uint8Array;
}

export interface Needle extends NeedleMeta {
  cookie: number;
  id: bigint;
  /** The header's Size: body length, 0 for tombstones and empty files. */
  size: number;
  /** The data as stored (maybe gzipped). Decoders return a view into their input, not a copy. */
  data: Uint8Array;
  /** The stored CRC field, in whichever form (current or legacy) it was written. */
  checksum: number;
  /** Nanoseconds; 0n for version 2, which does not store it. */
  appendAtNs: bigint;
}

/** What `encodeNeedle` takes: Size is always derived; the CRC is computed unless given (to copy a record verbatim). */
export type NeedleInput = Omit<Needle, 'size' | 'checksum' | 'appendAtNs'> & {
  checksum?: number;
  appendAtNs?: bigint;
};

export function assertVersion(version: number): void {
  if (version !== VERSION_2 && version !== VERSION_3) {
    throw new UnsupportedVersionError(`needle version ${version} is not supported (only 2 and 3)`);
  }
}

/** Bytes after Size: CRC, AppendAtNs in v3. */
function trailerSize(version: number): number {
  return NEEDLE_CHECKSUM_SIZE + (version === VERSION_3 ? TIMESTAMP_SIZE : 0);
}

/** Padding after a record with body `size`: 1-8 bytes, never 0 (the repo README's "0-7" is wrong). */
export function paddingLength(size: number, version: number = CURRENT_VERSION): number {
  assertVersion(version);
  return NEEDLE_PADDING_SIZE - ((NEEDLE_HEADER_SIZE + size + trailerSize(version)) % NEEDLE_PADDING_SIZE);
}

/** Bytes a record with body `size` occupies on disk, padding included. */
export function needleRecordSize(size: number, version: number = CURRENT_VERSION): number {
  return NEEDLE_HEADER_SIZE + size + trailerSize(version) + paddingLength(size, version);
}

/** The optional fields an encoder will actually write, with the flags byte that announces them. */
interface MetaLayout {
  flags: number;
  name: Uint8Array | undefined;
  mime: Uint8Array | undefined;
  lastModified: number | undefined;
  /** The two stored bytes. */
  ttl: Uint8Array | undefined;
  pairs: Uint8Array | undefined;
  /** Bytes from the flags byte through the last field. */
  length: number;
}

function checkUint(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidParamError(`${what} must be an integer in 0..${max}, got ${value}`);
  }
}

function layoutMeta(meta: NeedleMeta): MetaLayout {
  checkUint(meta.flags, 0xff, 'needle flags');
  const name = meta.name !== undefined && meta.name.length <= MAX_NAME_BYTES ? meta.name : undefined;
  const mime = meta.mime !== undefined && meta.mime.length <= MAX_MIME_BYTES ? meta.mime : undefined;
  const { lastModified, pairs } = meta;
  const ttl = meta.ttl === undefined ? undefined : encodeTtl(meta.ttl);
  let flags = meta.flags & ~FIELD_FLAGS;
  let length = 1;
  if (name !== undefined) {
    flags |= FLAG_HAS_NAME;
    length += 1 + name.length;
  }
  if (mime !== undefined) {
    flags |= FLAG_HAS_MIME;
    length += 1 + mime.length;
  }
  if (lastModified !== undefined) {
    checkUint(lastModified, MAX_LAST_MODIFIED, 'lastModified seconds');
    flags |= FLAG_HAS_LAST_MODIFIED;
    length += LAST_MODIFIED_SIZE;
  }
  if (ttl !== undefined) {
    flags |= FLAG_HAS_TTL;
    length += TTL_SIZE;
  }
  if (pairs !== undefined) {
    if (pairs.length > MAX_PAIRS_BYTES) {
      throw new PayloadTooLargeError(`needle pairs are ${pairs.length} bytes, over ${MAX_PAIRS_BYTES}`);
    }
    flags |= FLAG_HAS_PAIRS;
    length += 2 + pairs.length;
  }
  return { flags, name, mime, lastModified, ttl, pairs, length };
}

function sizeFor(layout: MetaLayout, dataLength: number): number {
  checkUint(dataLength, Number.MAX_SAFE_INTEGER, 'data length');
  // SeaweedFS writes no body at all for empty data: an empty file looks like a tombstone on disk.
  if (dataLength === 0) return 0;
  const size = DATA_SIZE_SIZE + dataLength + layout.length;
  if (size > MAX_NEEDLE_SIZE) {
    throw new PayloadTooLargeError(`needle body of ${size} bytes is over ${MAX_NEEDLE_SIZE}`);
  }
  return size;
}

/** The header's Size for a needle with this metadata and `dataLength` bytes of data. */
export function needleBodySize(meta: NeedleMeta, dataLength: number): number {
  return sizeFor(layoutMeta(meta), dataLength);
}

/** The 16-byte record header. */
export function encodeNeedleHeader(cookie: number, id: bigint, size: number): Uint8Array {
  const out = new Uint8Array(NEEDLE_HEADER_SIZE);
  writeHeader(new DataView(out.buffer), 0, cookie, id, size);
  return out;
}

function writeHeader(view: DataView, at: number, cookie: number, id: bigint, size: number): void {
  checkUint(cookie, 0xffffffff, 'cookie');
  if (id < 0n || id > MAX_U64) throw new InvalidParamError(`needle id ${id} is not a u64`);
  checkUint(size, MAX_NEEDLE_SIZE, 'needle Size');
  view.setUint32(at, cookie);
  view.setBigUint64(at + 4, id);
  view.setUint32(at + 12, size);
}

/** The 4-byte DataSize that precedes the data; written only when the data is not empty. */
export function encodeDataSize(dataLength: number): Uint8Array {
  checkUint(dataLength, MAX_NEEDLE_SIZE, 'data length');
  const out = new Uint8Array(DATA_SIZE_SIZE);
  new DataView(out.buffer).setUint32(0, dataLength);
  return out;
}

/**
 * Everything after the data: flags and optional fields (only when the data is
 * not empty), CRC, AppendAtNs (v3) and zeroed padding. Header + DataSize +
 * data + this tail is exactly `encodeNeedle`'s record.
 */
export function encodeNeedleTail(
  meta: NeedleMeta,
  dataLength: number,
  checksum: number,
  appendAtNs: bigint,
  version: number = CURRENT_VERSION,
): Uint8Array {
  assertVersion(version);
  const layout = layoutMeta(meta);
  const size = sizeFor(layout, dataLength);
  const metaLength = size === 0 ? 0 : layout.length;
  const out = new Uint8Array(metaLength + trailerSize(version) + paddingLength(size, version));
  writeTail(out, 0, size === 0 ? undefined : layout, checksum, appendAtNs, version);
  return out;
}

function writeTail(
  out: Uint8Array,
  at: number,
  layout: MetaLayout | undefined,
  checksum: number,
  appendAtNs: bigint,
  version: number,
): void {
  checkUint(checksum, 0xffffffff, 'checksum');
  if (appendAtNs < 0n || appendAtNs > MAX_U64)
    throw new InvalidParamError(`appendAtNs ${appendAtNs} is not a u64`);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = at;
  if (layout !== undefined) {
    out[p++] = layout.flags;
    if (layout.name !== undefined) {
      out[p++] = layout.name.length;
      out.set(layout.name, p);
      p += layout.name.length;
    }
    if (layout.mime !== undefined) {
      out[p++] = layout.mime.length;
      out.set(layout.mime, p);
      p += layout.mime.length;
    }
    if (layout.lastModified !== undefined) {
      // 40 bits: the high byte, then the low 32.
      out[p] = Math.floor(layout.lastModified / 2 ** 32);
      view.setUint32(p + 1, layout.lastModified >>> 0);
      p += LAST_MODIFIED_SIZE;
    }
    if (layout.ttl !== undefined) {
      out.set(layout.ttl, p);
      p += TTL_SIZE;
    }
    if (layout.pairs !== undefined) {
      view.setUint16(p, layout.pairs.length);
      out.set(layout.pairs, p + 2);
      p += 2 + layout.pairs.length;
    }
  }
  view.setUint32(p, checksum);
  if (version === VERSION_3) view.setBigUint64(p + NEEDLE_CHECKSUM_SIZE, appendAtNs);
}

const zeroed = (length: number): Uint8Array => new Uint8Array(length);

/**
 * A whole record, padding included. Size is derived; the CRC-32C of the data
 * is computed unless given. `alloc` may hand out uninitialised memory (the
 * volume server passes Node's pooled allocator, cheaper than a fresh
 * ArrayBuffer per write): every byte of the record, padding included, is
 * written here.
 */
export function encodeNeedle(
  n: NeedleInput,
  version: number = CURRENT_VERSION,
  alloc: (length: number) => Uint8Array = zeroed,
): Uint8Array {
  assertVersion(version);
  const layout = layoutMeta(n);
  const size = sizeFor(layout, n.data.length);
  const recordSize = needleRecordSize(size, version);
  const out = alloc(recordSize);
  out.fill(0, recordSize - paddingLength(size, version), recordSize);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  writeHeader(view, 0, n.cookie, n.id, size);
  let p = NEEDLE_HEADER_SIZE;
  if (size > 0) {
    view.setUint32(p, n.data.length);
    out.set(n.data, NEEDLE_DATA_OFFSET);
    p = NEEDLE_DATA_OFFSET + n.data.length;
  }
  const checksum = n.checksum ?? crc32c(n.data);
  writeTail(out, p, size === 0 ? undefined : layout, checksum, n.appendAtNs ?? 0n, version);
  return out;
}
