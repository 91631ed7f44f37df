/**
 * The replica's undo log (issue 10 finding 6): bounded in count and time,
 * undoes only the change it recorded, and an undo that overtakes its change
 * makes the change be refused. On a real Volume in a temp dir; the clock is
 * injected so the time limit can be crossed without waiting a minute.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assertChangeId, UNDO_TTL_MS, UndoLog } from '../../../../origin/volume/undo-log.ts';
import { Volume, type WriteResult } from '../../../../origin/volume/volume.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../../../../shared/errors.ts';
import { parsePlacement } from '../../../../shared/placement.ts';
import { parseTtl } from '../../../../shared/ttl.ts';
import { captureLogs } from '../../../helpers/log-capture.ts';

const COOKIE = 7;
const FID = (key: bigint) => ({ key, cookie: COOKIE });
const id = (n: number) => `change-${String(n).padStart(12, '0')}`;

const dirs: string[] = [];
const volumes: Volume[] = [];
afterEach(async () => {
  for (const v of volumes.splice(0)) await v.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function volume(): Volume {
  const dir = mkdtempSync(join(tmpdir(), 'kelp-undo-log-'));
  dirs.push(dir);
  const v = Volume.create(
    { dir, collection: '', volumeId: 1, fsync: 'never', sizeLimitBytes: 1 << 30, now: Date.now },
    { placement: parsePlacement('001'), ttl: parseTtl('') },
  );
  volumes.push(v);
  return v;
}

function put(v: Volume, key: bigint): Promise<WriteResult> {
  return v.write({ key, cookie: COOKIE, data: randomBytes(64), meta: { flags: 0 } });
}

function exists(v: Volume, key: bigint): boolean {
  try {
    v.readSync(key, COOKIE);
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

describe('UndoLog', () => {
  it('undoes a recorded change once; a second undo finds nothing', async () => {
    const v = volume();
    const log = new UndoLog();
    const applying = put(v, 1n);
    log.applied(id(1), v, FID(1n), applying);
    await applying;
    expect(await log.undo(id(1), v, FID(1n))).toBe('undone');
    expect(exists(v, 1n)).toBe(false);
    expect(await log.undo(id(1), v, FID(1n))).toBe('nothing to undo');
  });

  it('waits for a change still being applied, then undoes it', async () => {
    const v = volume();
    const log = new UndoLog();
    let finish!: (r: WriteResult) => void;
    const pending = new Promise<WriteResult>((r) => {
      finish = r;
    });
    log.applied(id(2), v, FID(2n), pending);
    const undoing = log.undo(id(2), v, FID(2n));
    finish(await put(v, 2n));
    expect(await undoing).toBe('undone');
    expect(exists(v, 2n)).toBe(false);
  });

  it('an undo that overtakes its change makes the change be refused', async () => {
    const v = volume();
    const log = new UndoLog();
    expect(await log.undo(id(3), v, FID(3n))).toBe('nothing to undo');
    expect(() => log.assertNotCancelled(id(3))).toThrow(ConflictError);
    expect(() => log.assertNotCancelled(id(4))).not.toThrow();
  });

  it('never undoes another fid with a change id', async () => {
    const v = volume();
    const log = new UndoLog();
    const applying = put(v, 5n);
    log.applied(id(5), v, FID(5n), applying);
    await applying;
    await put(v, 6n);
    await expect(log.undo(id(5), v, FID(6n))).rejects.toThrow(BadRequestError);
    expect(exists(v, 6n)).toBe(true);
    expect(exists(v, 5n)).toBe(true);
  });

  it('leaves a later change standing (and says so)', async () => {
    const v = volume();
    const lines: string[] = [];
    const log = new UndoLog({ log: captureLogs(lines).logger });
    const applying = put(v, 7n);
    log.applied(id(7), v, FID(7n), applying);
    await applying;
    const later = await put(v, 7n);
    await expect(log.undo(id(7), v, FID(7n))).rejects.toThrow(ConflictError);
    expect(v.map.get(7n)).toEqual(later.change!.after);
    expect(lines.join('\n')).toMatch(/could not undo/);
  });

  it('forgets changes after UNDO_TTL_MS', async () => {
    const v = volume();
    let now = 1_000_000;
    const log = new UndoLog({ now: () => now });
    const applying = put(v, 8n);
    log.applied(id(8), v, FID(8n), applying);
    await applying;
    now += UNDO_TTL_MS;
    expect(await log.undo(id(8), v, FID(8n))).toBe('nothing to undo');
    expect(exists(v, 8n)).toBe(true);
    expect(log.size).toBe(1); // only the marker the late undo left
  });

  it('holds at most maxRecords; an unknown id is then refused, not taken for "never applied"', async () => {
    const v = volume();
    const lines: string[] = [];
    const log = new UndoLog({ maxRecords: 3, log: captureLogs(lines).logger });
    for (let i = 0; i < 5; i++) {
      const applying = put(v, BigInt(100 + i));
      log.applied(id(100 + i), v, FID(BigInt(100 + i)), applying);
      await applying;
    }
    expect(log.size).toBe(3);
    expect(lines.join('\n')).toMatch(/undo log full/);
    await expect(log.undo(id(100), v, FID(100n))).rejects.toThrow(/evicted/);
    expect(await log.undo(id(104), v, FID(104n))).toBe('undone');
  });

  it('takes only well-formed change ids', () => {
    expect(assertChangeId('AbC_-0123456789xy')).toBe('AbC_-0123456789xy');
    for (const bad of ['', 'short', 'x'.repeat(65), 'has space in it 123', '../../../etc/passwd']) {
      expect(() => assertChangeId(bad)).toThrow(BadRequestError);
    }
  });
});
