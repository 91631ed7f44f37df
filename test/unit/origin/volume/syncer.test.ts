/**
 * Group commit (syncer.ts) on real files: writes issued in one synchronous
 * run share one fdatasync (a replica batch appends all its writes in one
 * tick, replica-batch-handler.ts); writes that arrive while a sync runs share
 * the next; `always` still syncs each write on its own.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type FsyncPolicy, GroupSyncer } from '../../../../origin/volume/syncer.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A syncer over two real files, and the write count of each sync it ran. */
function syncer(policy: FsyncPolicy) {
  const dir = mkdtempSync(join(tmpdir(), 'kelp-syncer-'));
  const fds = ['a.dat', 'a.idx'].map((f) => openSync(join(dir, f), 'w'));
  cleanups.push(() => {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  const syncs: number[] = [];
  const s = new GroupSyncer(
    policy,
    () => fds,
    (writes, _seconds, failed) => {
      if (!failed) syncs.push(writes);
    },
  );
  const write = () => writeSync(fds[0]!, Buffer.from('x'));
  return { s, syncs, write };
}

describe('GroupSyncer', () => {
  it('batch: writes issued in one synchronous run share one sync, not one for the first and one for the rest', async () => {
    const { s, syncs, write } = syncer('batch');
    const waits = Array.from({ length: 5 }, () => {
      write();
      return s.sync();
    });
    await Promise.all(waits);
    expect(syncs).toEqual([5]);
  });

  it('batch: writes that arrive while a sync runs share the next one', async () => {
    const { s, syncs, write } = syncer('batch');
    write();
    const first = s.sync();
    // The first sync starts in a microtask; these come after it started.
    await Promise.resolve();
    await Promise.resolve();
    const later = [1, 2, 3].map(() => {
      write();
      return s.sync();
    });
    await Promise.all([first, ...later]);
    expect(syncs).toEqual([1, 3]);
  });

  it('always: one sync per write', async () => {
    const { s, syncs, write } = syncer('always');
    await Promise.all(
      [1, 2, 3].map(() => {
        write();
        return s.sync();
      }),
    );
    expect(syncs).toEqual([1, 1, 1]);
  });
});
