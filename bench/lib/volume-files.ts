/**
 * Volumes written straight to their files, for benches that need more needles
 * than uploading can make in a run (10^6 to 10^7): the superblock by
 * Volume.create, then records and their idx entries in large writes, laid
 * out exactly as a volume server appends them. The CRC covers only the data,
 * so one encoded record per data variant is the template and each key only
 * patches its id.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Volume } from '../../origin/volume/volume.ts';
import { IDX_ENTRY_SIZE, writeIdxEntry } from '../../shared/idx.ts';
import { encodeNeedle } from '../../shared/needle.ts';
import { parsePlacement } from '../../shared/placement.ts';
import { parseTtl } from '../../shared/ttl.ts';

/** Bytes of records per write() while generating: bounds the generator's memory. */
const BATCH_BYTES = 64 * 1024 * 1024;
/** Byte offset of the needle id in a record (after the 4-byte cookie). */
const ID_AT = 4;
/** Byte offset of Size in a record. */
const SIZE_AT = 12;

export interface VolumeFill {
  /** Data of the needles, used in turn (key k gets variant (k - 1) % length). All the same length. */
  variants: Uint8Array[];
  cookie: number;
  /** Last-Modified in Unix seconds, as an upload stores it; none when undefined. */
  lastModified?: number;
}

/** `count` needles (keys 1..count) in a new volume `id` under `dir`, written as a volume server would. */
export async function writeVolume(dir: string, id: number, count: number, fill: VolumeFill): Promise<void> {
  const config = {
    dir,
    collection: '',
    volumeId: id,
    fsync: 'never' as const,
    sizeLimitBytes: 2 ** 40,
    now: Date.now,
  };
  const volume = Volume.create(config, { placement: parsePlacement('000'), ttl: parseTtl('') });
  const datStart = volume.datSize;
  await volume.close();
  const templates = fill.variants.map((data) =>
    Buffer.from(
      encodeNeedle({
        flags: 0,
        cookie: fill.cookie,
        id: 1n,
        data,
        appendAtNs: 1n,
        ...(fill.lastModified === undefined ? {} : { lastModified: fill.lastModified }),
      }),
    ),
  );
  const recordBytes = templates[0]!.length;
  if (templates.some((t) => t.length !== recordBytes)) throw new Error('data variants differ in length');
  const size = templates[0]!.readUInt32BE(SIZE_AT);
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / recordBytes));
  const dat = openSync(join(dir, `${id}.dat`), 'r+');
  const idx = openSync(join(dir, `${id}.idx`), 'r+');
  try {
    let offset = datStart;
    for (let first = 1; first <= count; first += perBatch) {
      const n = Math.min(perBatch, count - first + 1);
      const records = Buffer.allocUnsafe(n * recordBytes);
      const entries = Buffer.allocUnsafe(n * IDX_ENTRY_SIZE);
      for (let i = 0; i < n; i++) {
        const key = first + i;
        const at = i * recordBytes;
        records.set(templates[(key - 1) % templates.length]!, at);
        records.writeBigUInt64BE(BigInt(key), at + ID_AT);
        writeIdxEntry(entries, i * IDX_ENTRY_SIZE, { key: BigInt(key), offset: (offset + at) / 8, size });
      }
      writeSync(dat, records, 0, records.length, offset);
      writeSync(idx, entries, 0, entries.length, (first - 1) * IDX_ENTRY_SIZE);
      offset += records.length;
    }
    // On disk, as a server's own writes would be: else the first fsync of the run (the restart's
    // directory fsync after taking clean-shutdown marks) pays for writing back the generated data.
    fsyncSync(dat);
    fsyncSync(idx);
  } finally {
    closeSync(dat);
    closeSync(idx);
  }
}
