/**
 * Walking a `.dat` body record by record: to rebuild a lost `.idx`, and to
 * find where the last whole record ends when a crash tore the tail. Pure:
 * bytes in, records out; the caller decides what to truncate or index.
 *
 * Records carry no magic number, so once a header is unreadable nothing after
 * it can be trusted: the scan stops there and reports the rest as a tail. A
 * record whose structure is sound but whose CRC is not (bitrot in the data)
 * is reported and stepped over, since its Size still says where the next
 * record starts.
 */
import { crc32c } from './crc.ts';
import { ChecksumMismatchError, CorruptDataError, InvalidParamError } from './errors.ts';
import { CURRENT_VERSION, type Needle, needleRecordSize } from './needle.ts';
import { assertChecksum, decodeNeedle } from './needle-decode.ts';

export interface ScannedNeedle {
  kind: 'needle';
  /** Byte offset of the record in the scanned bytes. */
  offset: number;
  /** Bytes the record occupies, padding included. */
  recordSize: number;
  /** Size 0 means a tombstone (or an empty file: on disk they are the same). */
  needle: Needle;
  /** Set when the structure is sound but the data fails its CRC: never serve this needle. */
  checksumError?: ChecksumMismatchError;
}

export interface ScanTail {
  kind: 'tail';
  /** Where the last whole record ended: truncating here drops a torn write. */
  offset: number;
  length: number;
  /** TruncatedDataError when the bytes end inside a record, CorruptDataError when they make no record. */
  error: CorruptDataError;
}

export type ScanItem = ScannedNeedle | ScanTail;

export interface ScanOptions {
  /** Check each needle's CRC (default true); an index rebuild in a hurry may skip it. */
  verifyChecksum?: boolean;
}

/**
 * Yields every record from `startOffset` (the end of the superblock) to the
 * end of `bytes`, then at most one `tail` item for bytes that are not a whole
 * record. Needle fields are views into `bytes`.
 */
export function* scanNeedles(
  bytes: Uint8Array,
  startOffset: number,
  version: number = CURRENT_VERSION,
  opts: ScanOptions = {},
): Generator<ScanItem, void, undefined> {
  if (!Number.isInteger(startOffset) || startOffset < 0 || startOffset > bytes.length) {
    throw new InvalidParamError(`scan start ${startOffset} is outside 0..${bytes.length}`);
  }
  let offset = startOffset;
  while (offset < bytes.length) {
    let needle: Needle;
    try {
      needle = decodeNeedle(bytes.subarray(offset), version, { verifyChecksum: false });
      // Key 0 is never assigned; a zeroed header is what a crash leaves in preallocated or sparse space.
      if (needle.id === 0n)
        throw new CorruptDataError(`needle id 0 at offset ${offset}: zeroed or garbage bytes`);
    } catch (err) {
      if (!(err instanceof CorruptDataError)) throw err;
      yield { kind: 'tail', offset, length: bytes.length - offset, error: err };
      return;
    }
    const recordSize = needleRecordSize(needle.size, version);
    const item: ScannedNeedle = { kind: 'needle', offset, recordSize, needle };
    if (needle.size > 0 && opts.verifyChecksum !== false) {
      try {
        assertChecksum(needle.id, needle.checksum, crc32c(needle.data));
      } catch (err) {
        if (!(err instanceof ChecksumMismatchError)) throw err;
        item.checksumError = err;
      }
    }
    yield item;
    offset += recordSize;
  }
}
