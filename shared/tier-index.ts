/**
 * The needle index of a tiered volume, stored beside its `.dat` in the bucket
 * so that a reader with no volume server (the edge) can find a needle with
 * ranged GETs only (docs/decisions/0010-origin-free-reads.md). Written once
 * when the volume is tiered (a tiered `.dat` is immutable), never changed.
 *
 *   header     64 bytes: magic "KLPI", format, needle version, volume id,
 *              entries per page, entries, pages, .dat size, volume TTL,
 *              created-at, header CRC-32C
 *   directory  pages × 16 bytes: first key u64 | entries u32 | CRC-32C u32 of the page
 *   pages      pages × (entries per page × 16 bytes), fixed size (the last one
 *              zero-padded), so page i is at a computable offset
 *   entry      key u64 | offset u32 (8-byte units) | Size u32: a `.idx` entry,
 *              live needles only, sorted by key
 *
 * A reader fetches header + directory once (cached), finds the page by binary
 * search over first keys, fetches that page once (cached, CRC-checked), finds
 * the entry by binary search, then reads the needle record with one ranged GET.
 * Pure format code, Web APIs only: the volume server writes it, the Worker reads it.
 */
import { crc32c } from './crc.ts';
import { CorruptDataError, InternalError, TruncatedDataError } from './errors.ts';
import { IDX_ENTRY_SIZE, toByteOffset } from './idx.ts';
import { TTL_SIZE } from './ttl.ts';

export const INDEX_MAGIC = 0x4b4c5049; // "KLPI"
export const INDEX_FORMAT = 1;
export const INDEX_HEADER_BYTES = 64;
export const DIRECTORY_ENTRY_BYTES = 16;
/** 256 entries = 4 KiB pages: one page per read is small to fetch and to cache. */
export const DEFAULT_PAGE_ENTRIES = 256;
/** Bounds a header read from the network may claim (a corrupt header must not make a reader allocate GiBs). */
export const MAX_PAGE_ENTRIES = 65_536;
export const MAX_INDEX_PAGES = 16_777_216;

export interface TierIndexHeader {
  needleVersion: number;
  volumeId: number;
  pageEntries: number;
  entryCount: number;
  pageCount: number;
  /** Bytes of the `.dat` object the offsets point into. */
  datSize: number;
  /** The volume's TTL as the superblock stores it (2 bytes): needles without their own TTL expire by it. */
  ttl: Uint8Array;
  /** Unix ms at which the index was written: deletes after it are in the deletion set. */
  createdAt: number;
}

/** Live needles as columns (a volume can hold tens of millions: no object per needle); any order. */
export interface TierIndexColumns {
  keys: BigUint64Array;
  /** In 8-byte units. */
  offsets: Uint32Array;
  sizes: Uint32Array;
}

export interface TierIndexInput extends Omit<TierIndexHeader, 'entryCount' | 'pageCount' | 'pageEntries'> {
  entries: TierIndexColumns;
  pageEntries?: number;
}

/** The order that sorts `keys` (the identity when they are sorted already, as the needle map hands them out). */
function sortOrder(keys: BigUint64Array): Uint32Array {
  const order = new Uint32Array(keys.length);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    order[i] = i;
    if (i > 0 && keys[i]! <= keys[i - 1]!) sorted = false;
  }
  if (!sorted) order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  return order;
}

export interface TierDirectory {
  header: TierIndexHeader;
  /** First key of each page. */
  firstKeys: BigUint64Array;
  counts: Uint32Array;
  crcs: Uint32Array;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Bytes of header plus directory: what a reader fetches first. */
export function indexHeadBytes(pageCount: number): number {
  return INDEX_HEADER_BYTES + pageCount * DIRECTORY_ENTRY_BYTES;
}

/** Where page `i` is in the index object. */
export function pageRange(header: TierIndexHeader, i: number): { offset: number; length: number } {
  const length = header.pageEntries * IDX_ENTRY_SIZE;
  return { offset: indexHeadBytes(header.pageCount) + i * length, length };
}

/** The whole index object. */
export function encodeTierIndex(input: TierIndexInput): Uint8Array {
  const pageEntries = input.pageEntries ?? DEFAULT_PAGE_ENTRIES;
  if (!Number.isInteger(pageEntries) || pageEntries < 1 || pageEntries > MAX_PAGE_ENTRIES) {
    throw new InternalError(`index pages hold 1..${MAX_PAGE_ENTRIES} entries, not ${pageEntries}`);
  }
  if (input.ttl.length !== TTL_SIZE) throw new InternalError('the TTL is 2 bytes');
  const { keys, offsets, sizes } = input.entries;
  const order = sortOrder(keys);
  for (let i = 1; i < order.length; i++) {
    if (keys[order[i]!] === keys[order[i - 1]!]) {
      throw new InternalError(`key ${keys[order[i]!]!.toString(16)} is in the index twice`);
    }
  }
  const total = order.length;
  const pageCount = Math.ceil(total / pageEntries);
  const pageBytes = pageEntries * IDX_ENTRY_SIZE;
  const out = new Uint8Array(indexHeadBytes(pageCount) + pageCount * pageBytes);
  const v = view(out);
  const pagesAt = indexHeadBytes(pageCount);
  for (let p = 0; p < pageCount; p++) {
    const first = p * pageEntries;
    const count = Math.min(pageEntries, total - first);
    const at = pagesAt + p * pageBytes;
    for (let i = 0; i < count; i++) {
      const j = order[first + i]!;
      const o = at + i * IDX_ENTRY_SIZE;
      v.setBigUint64(o, keys[j]!);
      v.setUint32(o + 8, offsets[j]!);
      v.setUint32(o + 12, sizes[j]!);
    }
    const d = INDEX_HEADER_BYTES + p * DIRECTORY_ENTRY_BYTES;
    v.setBigUint64(d, keys[order[first]!]!);
    v.setUint32(d + 8, count);
    v.setUint32(d + 12, crc32c(out.subarray(at, at + pageBytes)));
  }
  v.setUint32(0, INDEX_MAGIC);
  v.setUint16(4, INDEX_FORMAT);
  v.setUint8(6, input.needleVersion);
  v.setUint32(8, input.volumeId);
  v.setUint32(12, pageEntries);
  v.setUint32(16, total);
  v.setUint32(20, pageCount);
  v.setBigUint64(24, BigInt(input.datSize));
  out.set(input.ttl, 32);
  v.setBigUint64(36, BigInt(input.createdAt));
  v.setUint32(60, crc32c(out.subarray(0, 60)));
  return out;
}

/** The 64-byte header, checked (magic, format, CRC, bounds). */
export function decodeTierIndexHeader(bytes: Uint8Array): TierIndexHeader {
  if (bytes.length < INDEX_HEADER_BYTES) {
    throw new TruncatedDataError(`tier index header needs ${INDEX_HEADER_BYTES} bytes, got ${bytes.length}`);
  }
  const v = view(bytes);
  if (v.getUint32(0) !== INDEX_MAGIC) throw new CorruptDataError('not a Kelp tier index (bad magic)');
  if (v.getUint16(4) !== INDEX_FORMAT)
    throw new CorruptDataError(`tier index format ${v.getUint16(4)} is not supported`);
  if (v.getUint32(60) !== crc32c(bytes.subarray(0, 60)))
    throw new CorruptDataError('tier index header fails its CRC');
  const header: TierIndexHeader = {
    needleVersion: v.getUint8(6),
    volumeId: v.getUint32(8),
    pageEntries: v.getUint32(12),
    entryCount: v.getUint32(16),
    pageCount: v.getUint32(20),
    datSize: Number(v.getBigUint64(24)),
    ttl: bytes.slice(32, 32 + TTL_SIZE),
    createdAt: Number(v.getBigUint64(36)),
  };
  if (
    header.pageEntries < 1 ||
    header.pageEntries > MAX_PAGE_ENTRIES ||
    header.pageCount > MAX_INDEX_PAGES ||
    header.pageCount !== Math.ceil(header.entryCount / header.pageEntries)
  ) {
    throw new CorruptDataError('tier index header has impossible page counts');
  }
  return header;
}

/** Header and directory from the first `indexHeadBytes(pageCount)` bytes of the object. */
export function decodeTierDirectory(bytes: Uint8Array): TierDirectory {
  const header = decodeTierIndexHeader(bytes);
  const need = indexHeadBytes(header.pageCount);
  if (bytes.length < need) throw new TruncatedDataError(`tier index directory needs ${need} bytes`);
  const v = view(bytes);
  const firstKeys = new BigUint64Array(header.pageCount);
  const counts = new Uint32Array(header.pageCount);
  const crcs = new Uint32Array(header.pageCount);
  for (let p = 0; p < header.pageCount; p++) {
    const d = INDEX_HEADER_BYTES + p * DIRECTORY_ENTRY_BYTES;
    firstKeys[p] = v.getBigUint64(d);
    counts[p] = v.getUint32(d + 8);
    crcs[p] = v.getUint32(d + 12);
    if (counts[p]! < 1 || counts[p]! > header.pageEntries || (p > 0 && firstKeys[p]! <= firstKeys[p - 1]!)) {
      throw new CorruptDataError(`tier index directory entry ${p} is impossible`);
    }
  }
  return { header, firstKeys, counts, crcs };
}

/** The page that would hold `key` (the last whose first key is <= it), or -1. */
export function pageOf(dir: TierDirectory, key: bigint): number {
  let lo = 0;
  let hi = dir.firstKeys.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (dir.firstKeys[mid]! <= key) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Checks a fetched page against its directory CRC: a damaged page is refused, never searched. */
export function verifyPage(dir: TierDirectory, page: number, bytes: Uint8Array): void {
  const { length } = pageRange(dir.header, page);
  if (bytes.length !== length) throw new TruncatedDataError(`tier index page ${page}: ${bytes.length} bytes`);
  if (crc32c(bytes) !== dir.crcs[page]) throw new CorruptDataError(`tier index page ${page} fails its CRC`);
}

/** Binary search of a verified page: the needle's byte offset and Size, or undefined. */
export function findInPage(
  dir: TierDirectory,
  page: number,
  bytes: Uint8Array,
  key: bigint,
): { byteOffset: number; size: number } | undefined {
  const v = view(bytes);
  let lo = 0;
  let hi = dir.counts[page]! - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = v.getBigUint64(mid * IDX_ENTRY_SIZE);
    if (k === key) {
      return {
        byteOffset: toByteOffset(v.getUint32(mid * IDX_ENTRY_SIZE + 8)),
        size: v.getUint32(mid * IDX_ENTRY_SIZE + 12),
      };
    }
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

// ---- the deletion set ----

/**
 * Keys deleted since the index was written. The volume server that owns the
 * object rewrites it whole on every delete (it only grows: a tiered volume
 * takes no writes), and a reader revalidates it within the edge's fresh
 * period before serving from the index.
 *
 *   magic "KLPD" | format u16 | 0 u16 | volume id u32 | count u32 | written-at u64 (ms)
 *   | CRC-32C u32 of the keys | CRC-32C u32 of bytes 0-27 | keys: count × u64, sorted
 */
export const DELETES_MAGIC = 0x4b4c5044; // "KLPD"
export const DELETES_HEADER_BYTES = 32;

export interface DeletionSet {
  volumeId: number;
  /** Sorted ascending. */
  keys: BigUint64Array;
  writtenAt: number;
}

export function encodeDeletionSet(volumeId: number, keys: Iterable<bigint>, writtenAt: number): Uint8Array {
  const sorted = BigUint64Array.from(keys).sort();
  const out = new Uint8Array(DELETES_HEADER_BYTES + sorted.length * 8);
  const v = view(out);
  v.setUint32(0, DELETES_MAGIC);
  v.setUint16(4, INDEX_FORMAT);
  v.setUint32(8, volumeId);
  v.setUint32(12, sorted.length);
  v.setBigUint64(16, BigInt(writtenAt));
  for (let i = 0; i < sorted.length; i++) v.setBigUint64(DELETES_HEADER_BYTES + i * 8, sorted[i]!);
  v.setUint32(24, crc32c(out.subarray(DELETES_HEADER_BYTES)));
  v.setUint32(28, crc32c(out.subarray(0, 28)));
  return out;
}

export function decodeDeletionSet(bytes: Uint8Array): DeletionSet {
  if (bytes.length < DELETES_HEADER_BYTES) throw new TruncatedDataError('deletion set header is cut short');
  const v = view(bytes);
  if (v.getUint32(0) !== DELETES_MAGIC) throw new CorruptDataError('not a Kelp deletion set (bad magic)');
  if (v.getUint32(28) !== crc32c(bytes.subarray(0, 28)))
    throw new CorruptDataError('deletion set header fails its CRC');
  const count = v.getUint32(12);
  if (bytes.length !== DELETES_HEADER_BYTES + count * 8)
    throw new TruncatedDataError(`deletion set of ${count} keys has ${bytes.length} bytes`);
  if (v.getUint32(24) !== crc32c(bytes.subarray(DELETES_HEADER_BYTES)))
    throw new CorruptDataError('deletion set keys fail their CRC');
  const keys = new BigUint64Array(count);
  for (let i = 0; i < count; i++) keys[i] = v.getBigUint64(DELETES_HEADER_BYTES + i * 8);
  return { volumeId: v.getUint32(8), keys, writtenAt: Number(v.getBigUint64(16)) };
}

export function isDeleted(set: DeletionSet, key: bigint): boolean {
  let lo = 0;
  let hi = set.keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = set.keys[mid]!;
    if (k === key) return true;
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

// ---- object names ----

/** The index and deletion-set keys beside a tiered `.dat` (`3-<uuid>.dat` → `3-<uuid>.index`, `3-<uuid>.deleted`). */
export function sidecarKeys(datKey: string): { indexKey: string; deletesKey: string } {
  const stem = datKey.endsWith('.dat') ? datKey.slice(0, -4) : datKey;
  return { indexKey: `${stem}.index`, deletesKey: `${stem}.deleted` };
}

/** Every entry of a whole index object, in key order (offset in 8-byte units), checked page by page. */
export function* tierIndexEntries(
  bytes: Uint8Array,
): Generator<{ key: bigint; offset: number; size: number }> {
  const dir = decodeTierDirectory(bytes);
  for (let p = 0; p < dir.header.pageCount; p++) {
    const { offset, length } = pageRange(dir.header, p);
    if (bytes.length < offset + length) throw new TruncatedDataError(`tier index page ${p} is cut short`);
    const page = bytes.subarray(offset, offset + length);
    verifyPage(dir, p, page);
    const v = view(page);
    for (let i = 0; i < dir.counts[p]!; i++) {
      const at = i * IDX_ENTRY_SIZE;
      yield { key: v.getBigUint64(at), offset: v.getUint32(at + 8), size: v.getUint32(at + 12) };
    }
  }
}

/** Bytes of the whole index object its header describes. */
export function tierIndexSize(header: TierIndexHeader): number {
  return indexHeadBytes(header.pageCount) + header.pageCount * header.pageEntries * IDX_ENTRY_SIZE;
}
