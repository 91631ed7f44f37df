/**
 * Volume.restore (issue 10 finding 6, docs/decisions/0004): taking back a
 * write or delete whose replication failed. The key must end with its
 * previous entry, byte-identical, and keep it across a restart: the `.idx`
 * replay (ours and SeaweedFS's last-entry-wins loader) must end with the
 * restored entry, and startup recovery must not re-index the taken-back needle.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { vacuumVolume } from '../../../origin/volume/vacuum.ts';
import { type EntryChange, Volume, type VolumeConfig } from '../../../origin/volume/volume.ts';
import { crc32c } from '../../../shared/crc.ts';
import { ConflictError, NotFoundError } from '../../../shared/errors.ts';
import { replayIdx } from '../../../shared/idx.ts';
import type { NeedleMeta } from '../../../shared/needle.ts';
import { parsePlacement } from '../../../shared/placement.ts';
import { parseTtl } from '../../../shared/ttl.ts';

const COOKIE = 0x1234abcd;
const META: NeedleMeta = { flags: 0, mime: new TextEncoder().encode('application/octet-stream') };
/** Over LARGE_NEEDLE_BYTES (1 MiB): stored with writeStreamed and restored by the chunked copy. */
const LARGE_BYTES = 5 * 1024 * 1024 + 13;

const dirs: string[] = [];
const open: Volume[] = [];

afterEach(async () => {
  for (const v of open.splice(0)) await v.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function config(dir: string, sizeLimitBytes = 1 << 30): VolumeConfig {
  return { dir, collection: '', volumeId: 7, fsync: 'batch', sizeLimitBytes, now: Date.now };
}

function fresh(sizeLimitBytes?: number): Volume {
  const dir = mkdtempSync(join(tmpdir(), 'kelp-rollback-'));
  dirs.push(dir);
  const v = Volume.create(config(dir, sizeLimitBytes), {
    placement: parsePlacement('001'),
    ttl: parseTtl(''),
  });
  open.push(v);
  return v;
}

/** Closes the volume and opens its files again, as a restart does (recovery included). */
async function restart(v: Volume): Promise<Volume> {
  open.splice(open.indexOf(v), 1);
  await v.close();
  const again = Volume.open(v.config);
  open.push(again);
  expect(again.repairs, 'startup found nothing to repair').toEqual([]);
  return again;
}

function bytesOf(v: Volume, key: bigint): Buffer {
  const r = v.readSync(key, COOKIE);
  if (r.kind === 'whole') return Buffer.from(r.needle.data);
  const out = Buffer.allocUnsafe(r.dataSize);
  r.source.readAtSync!(r.dataOffset, out);
  return out;
}

async function write(v: Volume, key: bigint, data: Uint8Array): Promise<EntryChange> {
  const r = await v.write({ key, cookie: COOKIE, data, meta: META });
  expect(r.change).toBeDefined();
  return r.change!;
}

/** writeStreamed from a spool file, as an upload over 1 MiB is stored. */
async function writeLarge(v: Volume, key: bigint, data: Buffer): Promise<EntryChange> {
  const path = join(v.config.dir, `spool-${key}`);
  writeFileSync(path, data);
  const r = await v.writeStreamed({
    key,
    cookie: COOKIE,
    spool: { path, size: data.length, crc: crc32c(data) },
    meta: META,
  });
  rmSync(path);
  return r.change!;
}

/** The last `.idx` entry for `key`, as a SeaweedFS-style loader replays the file. */
function lastIdxEntry(v: Volume, key: bigint) {
  return replayIdx(new Uint8Array(readFileSync(v.path('idx')))).live.get(key);
}

describe('Volume.restore takes a change back, durably', () => {
  it('an overwrite: the old bytes come back, byte-identical, and stay after a restart', async () => {
    let v = fresh();
    const old = randomBytes(3000);
    await write(v, 1n, old);
    await write(v, 2n, randomBytes(100)); // a neighbour, untouched throughout
    const change = await write(v, 1n, randomBytes(5000));
    await v.restore(change);
    expect(bytesOf(v, 1n).equals(old)).toBe(true);

    v = await restart(v);
    expect(bytesOf(v, 1n).equals(old)).toBe(true);
    expect(v.readSync(2n, COOKIE).kind).toBe('whole');
    // The replayed index ends with the restored entry: a copy of the old needle at the end of the .dat.
    const entry = lastIdxEntry(v, 1n)!;
    expect(entry.offset).toBe(v.map.get(1n)!.offset);
    expect(entry.offset).toBeGreaterThan(change.after.offset);
    expect(entry.size).toBe(change.before!.size);
  });

  it('a new key: gone again (404), after a restart too', async () => {
    let v = fresh();
    await write(v, 5n, randomBytes(100));
    const change = await write(v, 9n, randomBytes(2000));
    expect(change.before).toBeUndefined();
    await v.restore(change);
    expect(() => v.readSync(9n, COOKIE)).toThrow(NotFoundError);
    v = await restart(v);
    expect(() => v.readSync(9n, COOKIE)).toThrow(NotFoundError);
    expect(lastIdxEntry(v, 9n)).toBeUndefined();
    expect(v.readSync(5n, COOKIE).kind).toBe('whole');
  });

  it('a delete: the blob comes back, and stays after a restart', async () => {
    let v = fresh();
    const old = randomBytes(700);
    await write(v, 3n, old);
    const { change } = await v.delete(3n, COOKIE);
    expect(() => v.readSync(3n, COOKIE)).toThrow(NotFoundError);
    await v.restore(change);
    expect(bytesOf(v, 3n).equals(old)).toBe(true);
    v = await restart(v);
    expect(bytesOf(v, 3n).equals(old)).toBe(true);
  });

  it('a re-write of a deleted key: deleted again', async () => {
    let v = fresh();
    await write(v, 4n, randomBytes(300));
    await v.delete(4n, COOKIE);
    const change = await write(v, 4n, randomBytes(400));
    expect(change.before!.size).toBeLessThan(0);
    await v.restore(change);
    expect(() => v.readSync(4n, COOKIE)).toThrow(NotFoundError);
    v = await restart(v);
    expect(() => v.readSync(4n, COOKIE)).toThrow(NotFoundError);
  });

  it('a large (streamed) overwrite: the old large needle comes back by a chunked copy', async () => {
    let v = fresh();
    const old = randomBytes(LARGE_BYTES);
    await writeLarge(v, 11n, old);
    const change = await writeLarge(v, 11n, randomBytes(LARGE_BYTES + 8));
    await v.restore(change);
    expect(bytesOf(v, 11n).equals(old)).toBe(true);
    v = await restart(v);
    expect(bytesOf(v, 11n).equals(old)).toBe(true);
  });

  it('undoes the write that sealed the volume (read-only by size)', async () => {
    const v = fresh(4096);
    const change = await write(v, 1n, randomBytes(5000));
    expect(v.readOnly).toBe(true);
    await v.restore(change);
    expect(() => v.readSync(1n, COOKIE)).toThrow(NotFoundError);
  });
});

describe('Volume.restore refuses rather than corrupts', () => {
  it('leaves a later change standing', async () => {
    const v = fresh();
    const first = await write(v, 1n, randomBytes(100));
    const later = randomBytes(200);
    await write(v, 1n, later);
    await expect(v.restore(first)).rejects.toThrow(ConflictError);
    expect(bytesOf(v, 1n).equals(later)).toBe(true);
  });

  it('once vacuum has compacted the volume (every offset moved)', async () => {
    let v = fresh();
    const old = randomBytes(1000);
    await write(v, 1n, old);
    const newer = randomBytes(1000);
    const change = await write(v, 1n, newer);
    const idxBefore = v.idxSize;
    const report = await vacuumVolume(v, { force: true });
    expect(report.compacted).toBe(true);
    await expect(v.restore(change)).rejects.toThrow(/compacted/);
    expect(v.idxSize).toBeLessThan(idxBefore); // compacted, and nothing appended by the refusal
    expect(bytesOf(v, 1n).equals(newer)).toBe(true);
    v = await restart(v);
    expect(bytesOf(v, 1n).equals(newer)).toBe(true);
  });
});
