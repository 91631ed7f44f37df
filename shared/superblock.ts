/**
 * The volume superblock at offset 0 of every .dat (docs/format.md §3): 8 bytes, then
 * (versions 2 and 3) `extra length` bytes of extra. The extra is a SeaweedFS
 * protobuf (erasure-coding info, normally empty); Kelp keeps it opaque and
 * writes it back unchanged so volumes stay readable by SeaweedFS.
 */
import { CorruptDataError, InternalError, TruncatedDataError, UnsupportedVersionError } from './errors.ts';
import { type Placement, placementFromByte, placementToByte } from './placement.ts';
import { decodeTtl, encodeTtl, type Ttl } from './ttl.ts';

export type VolumeVersion = 1 | 2 | 3;

export const CURRENT_VOLUME_VERSION: VolumeVersion = 3;

export const SUPERBLOCK_SIZE = 8;

/** SeaweedFS keeps the top values of the u16 length free for future use; so does Kelp. */
export const MAX_SUPERBLOCK_EXTRA = 65_534;

export type SuperBlock = {
  readonly version: VolumeVersion;
  readonly placement: Placement;
  readonly ttl: Ttl;
  /** +1 per vacuum; a u16 that wraps. */
  readonly compactionRevision: number;
  readonly extra: Uint8Array;
};

export type DecodedSuperBlock = SuperBlock & {
  /** Bytes the superblock occupies: where the first needle may start. */
  readonly size: number;
};

export function encodeSuperBlock(sb: SuperBlock): Uint8Array<ArrayBuffer> {
  checkVersion(sb.version);
  if (
    !(
      Number.isInteger(sb.compactionRevision) &&
      sb.compactionRevision >= 0 &&
      sb.compactionRevision <= 0xffff
    )
  ) {
    throw new InternalError(`compaction revision ${sb.compactionRevision} is not a u16`);
  }
  if (sb.version === 1 && sb.extra.length > 0) throw new InternalError('version 1 superblocks have no extra');
  if (sb.extra.length > MAX_SUPERBLOCK_EXTRA) {
    throw new InternalError(`superblock extra of ${sb.extra.length} bytes exceeds ${MAX_SUPERBLOCK_EXTRA}`);
  }
  const out = new Uint8Array(SUPERBLOCK_SIZE + sb.extra.length);
  const view = new DataView(out.buffer);
  out[0] = sb.version;
  out[1] = placementToByte(sb.placement);
  out.set(encodeTtl(sb.ttl), 2);
  view.setUint16(4, sb.compactionRevision);
  view.setUint16(6, sb.extra.length);
  out.set(sb.extra, SUPERBLOCK_SIZE);
  return out;
}

/**
 * The superblock's full size from its first 8 bytes, so a reader (a local file or
 * one ranged GET on a cloud tier) knows how much more to fetch before decoding.
 */
export function superBlockSize(header: Uint8Array): number {
  if (header.length < SUPERBLOCK_SIZE) {
    throw new TruncatedDataError(`superblock needs ${SUPERBLOCK_SIZE} bytes, got ${header.length}`);
  }
  const version = header[0]!;
  checkVersion(version);
  // Version 1 predates the extra: bytes 6-7 were reserved there, not a length.
  if (version === 1) return SUPERBLOCK_SIZE;
  return SUPERBLOCK_SIZE + ((header[6]! << 8) | header[7]!);
}

export function decodeSuperBlock(bytes: Uint8Array): DecodedSuperBlock {
  const size = superBlockSize(bytes);
  if (bytes.length < size) {
    throw new TruncatedDataError(`superblock with extra needs ${size} bytes, got ${bytes.length}`);
  }
  let placement: Placement;
  try {
    placement = placementFromByte(bytes[1]!);
  } catch (err) {
    // A bad byte on disk is corruption, not a bad request.
    throw new CorruptDataError(`superblock replica placement byte ${bytes[1]} is not 000-222`, {
      cause: err,
    });
  }
  return {
    version: bytes[0] as VolumeVersion,
    placement,
    ttl: decodeTtl(bytes, 2),
    compactionRevision: (bytes[4]! << 8) | bytes[5]!,
    extra: bytes.slice(SUPERBLOCK_SIZE, size),
    size,
  };
}

function checkVersion(version: number): asserts version is VolumeVersion {
  if (version !== 1 && version !== 2 && version !== 3) {
    throw new UnsupportedVersionError(`volume version ${version} is not 1, 2 or 3`);
  }
}
