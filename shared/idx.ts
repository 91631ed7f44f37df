/**
 * `.idx` files: an append-only log of 16-byte entries, one per write or delete
 * (docs/format.md §5). Replaying it start to end rebuilds the needle map, so it must
 * read SeaweedFS's files exactly and survive a torn last entry.
 *
 *   key u64 | offset u32 (in 8-byte units) | size i32 (the needle's Size; -1 = deleted)
 *
 * Only the default 4-byte-offset layout (volumes up to 32 GiB) is supported,
 * not SeaweedFS's 17-byte "5BytesOffset" build.
 */
import { InternalError, TruncatedDataError } from './errors.ts';
import { NEEDLE_PADDING_SIZE } from './needle.ts';

export { NEEDLE_PADDING_SIZE };

export const IDX_ENTRY_SIZE = 16;
/** The size an entry records for a delete. */
export const TOMBSTONE_FILE_SIZE = -1;
/** The largest byte offset a u32 of 8-byte units addresses: just under 32 GiB. */
export const MAX_VOLUME_OFFSET = 0xffffffff * NEEDLE_PADDING_SIZE;

export interface IdxEntry {
  key: bigint;
  /** In 8-byte units; 0 is the superblock, never a needle. */
  offset: number;
  /** The needle's Size, or TOMBSTONE_FILE_SIZE. */
  size: number;
}

/** A record's byte offset as the index stores it. Records are 8-aligned, so anything else is a bug. */
export function toStoredOffset(byteOffset: number): number {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % NEEDLE_PADDING_SIZE !== 0) {
    throw new InternalError(`byte offset ${byteOffset} is not a multiple of ${NEEDLE_PADDING_SIZE}`);
  }
  if (byteOffset > MAX_VOLUME_OFFSET) {
    throw new InternalError(`byte offset ${byteOffset} is past the 32 GiB a 4-byte index offset reaches`);
  }
  return byteOffset / NEEDLE_PADDING_SIZE;
}

export function toByteOffset(units: number): number {
  return units * NEEDLE_PADDING_SIZE;
}

/**
 * Whether an entry leaves its key live: the one replay rule, used by every
 * loader (shared and server). A negative Size (-1, SeaweedFS's
 * TombstoneFileSize) deletes, and so does offset 0 (the superblock is never a
 * needle; a tiered volume's deletes are index-only entries). Size 0 at a real
 * offset is a live empty needle: SeaweedFS's own loader keeps it
 * (`Size.IsDeleted()` is `s < 0 || s == TombstoneFileSize`; "size=0 is NOT
 * considered deleted"), and Kelp stores empty uploads that way.
 */
export function isLiveEntry(offset: number, size: number): boolean {
  return offset !== 0 && size >= 0;
}

/** One entry of an `.idx` read with a 16-byte pread, its offset in bytes. */
export function readIdxEntry(entry: Uint8Array): { key: bigint; byteOffset: number; size: number } {
  const { key, offset, size } = decodeIdxEntry(entry);
  return { key, byteOffset: toByteOffset(offset), size };
}

/** Writes one entry at `at` in `target` (for batching many entries into one append). */
export function writeIdxEntry(target: Uint8Array, at: number, entry: IdxEntry): void {
  const { key, offset, size } = entry;
  if (key < 0n || key > 0xffff_ffff_ffff_ffffn) throw new InternalError(`idx key ${key} is not a u64`);
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) {
    throw new InternalError(`idx offset ${offset} is not a u32`);
  }
  if (!Number.isInteger(size) || size < -0x80000000 || size > 0x7fffffff) {
    throw new InternalError(`idx size ${size} is not an i32`);
  }
  if (!Number.isInteger(at) || at < 0 || target.length - at < IDX_ENTRY_SIZE) {
    throw new InternalError(`no room for an idx entry at ${at} in ${target.length} bytes`);
  }
  const view = new DataView(target.buffer, target.byteOffset + at, IDX_ENTRY_SIZE);
  view.setBigUint64(0, key);
  view.setUint32(8, offset);
  view.setInt32(12, size);
}

export function encodeIdxEntry(entry: IdxEntry): Uint8Array {
  const out = new Uint8Array(IDX_ENTRY_SIZE);
  writeIdxEntry(out, 0, entry);
  return out;
}

export function decodeIdxEntry(bytes: Uint8Array, at = 0): IdxEntry {
  if (!Number.isInteger(at) || at < 0 || bytes.length - at < IDX_ENTRY_SIZE) {
    throw new TruncatedDataError(`idx entry at ${at} needs ${IDX_ENTRY_SIZE} bytes of ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, IDX_ENTRY_SIZE);
  return { key: view.getBigUint64(0), offset: view.getUint32(8), size: view.getInt32(12) };
}

/** The u64 key from the halves `walkIdx` hands out. */
export function idxKey(keyHi: number, keyLo: number): bigint {
  return (BigInt(keyHi) << 32n) | BigInt(keyLo);
}

/**
 * Called per entry with the key split into u32 halves: a bigint per entry would
 * be a heap allocation, and a volume's index can hold tens of millions.
 */
export type IdxVisitor = (keyHi: number, keyLo: number, offset: number, size: number, index: number) => void;

export interface IdxWalk {
  entries: number;
  /** Bytes of a torn last entry (0-15); the entries before it are whole and were visited. */
  trailingBytes: number;
}

/** Visits every whole entry in order. A torn tail is reported, not thrown: it is what a crash leaves. */
export function walkIdx(bytes: Uint8Array, visit: IdxVisitor): IdxWalk {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries = Math.floor(bytes.length / IDX_ENTRY_SIZE);
  for (let i = 0, p = 0; i < entries; i++, p += IDX_ENTRY_SIZE) {
    visit(view.getUint32(p), view.getUint32(p + 4), view.getUint32(p + 8), view.getInt32(p + 12), i);
  }
  return { entries, trailingBytes: bytes.length - entries * IDX_ENTRY_SIZE };
}

export interface IdxSummary extends IdxWalk {
  /** Key -> where its latest version lives. Offsets in 8-byte units. */
  live: Map<bigint, { offset: number; size: number }>;
  liveCount: number;
  liveBytes: number;
  /** Entries that delete: a negative size, or offset 0 (isLiveEntry). */
  tombstoneEntries: number;
  /** Versions made garbage, by overwrite or delete, as SeaweedFS counts them (DeletionCounter). */
  deletedCount: number;
  deletedBytes: number;
  /** Size of every write ever logged: the denominator of vacuum's garbage ratio (FileByteCounter). */
  contentBytes: number;
  /** Largest key seen in any entry, deletes included (reported to the master's sequencer). */
  maxKey: bigint;
}

/**
 * Replays an index as SeaweedFS's loader does: the last entry per key wins;
 * `isLiveEntry` says which entries delete.
 */
export function replayIdx(bytes: Uint8Array): IdxSummary {
  const live = new Map<bigint, { offset: number; size: number }>();
  let tombstoneEntries = 0;
  let deletedCount = 0;
  let deletedBytes = 0;
  let contentBytes = 0;
  let maxKey = 0n;
  const walk = walkIdx(bytes, (hi, lo, offset, size) => {
    const key = idxKey(hi, lo);
    if (key > maxKey) maxKey = key;
    const old = live.get(key);
    if (isLiveEntry(offset, size)) {
      contentBytes += size;
      live.set(key, { offset, size });
      if (old !== undefined) {
        deletedCount++;
        deletedBytes += old.size;
      }
    } else {
      tombstoneEntries++;
      // SeaweedFS counts a delete even of an unknown key, with 0 bytes.
      deletedCount++;
      if (old !== undefined) {
        deletedBytes += old.size;
        live.delete(key);
      }
    }
  });
  let liveBytes = 0;
  for (const v of live.values()) liveBytes += v.size;
  return {
    ...walk,
    live,
    liveCount: live.size,
    liveBytes,
    tombstoneEntries,
    deletedCount,
    deletedBytes,
    contentBytes,
    maxKey,
  };
}
