/**
 * Issue 10, finding 9: a write to a volume on a full disk answered `500
 * internal`, and the master went on assigning to the volume. Now: 507
 * `insufficient_storage`, nothing half-written, the volume reported full (the
 * master stops assigning to it, at once), and writes resume by themselves
 * once space is freed.
 *
 * The disk is really full: the volume server's data directory is on a 4 MiB
 * tmpfs (mounted here, which needs root, as in CI), filled by a filler file.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPOOL_THRESHOLD_BYTES } from '../../../origin/http/upload.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import {
  assignOk,
  master,
  send,
  stopAll,
  type TestMaster,
  type TestVolume,
  volume,
  waitFor,
  waitForNodes,
} from '../cluster/harness.ts';
import { raw, startInProcess } from './harness.ts';

const MiB = 1024 * 1024;
const TMPFS_BYTES = 4 * MiB;
/** Long pulses: the master must hear of a full (or no longer full) disk from the beat sent at once. */
const PULSE_SECONDS = 10;
/** Well under a pulse: how long the master may take to hear of a change. */
const HEARD_WITHIN_MS = 4000;
const LAYOUT = { collection: '', replication: '000', ttl: '' };
/** Over the spool threshold, by little: the body is whole at the server when its spool fails. */
const SPOOLED_BYTES = SPOOL_THRESHOLD_BYTES + 1024;

interface Blob {
  fid: string;
  bytes: Buffer;
}

let mnt: string;
let dataDir: string;
let filler: string;
let m: TestMaster;
let vs: TestVolume;
/** Every blob a 201 acknowledged: each must read back byte for byte, to the end. */
const acked: Blob[] = [];
/** Fids assigned while the master still took the volumes as writable. */
const spare: string[] = [];
let sealedVid = 0;

/** Appends to the filler file until the filesystem refuses: nothing is left free. */
function fillDisk(): void {
  const fd = openSync(filler, 'a');
  const chunk = Buffer.alloc(64 * 1024, 0xa5);
  try {
    for (let i = 0; i < TMPFS_BYTES / chunk.length + 16; i++) writeSync(fd, chunk);
    throw new Error('the tmpfs never filled up');
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

/** The sizes of every `.dat` and `.idx`: a refused write must leave them exactly as they were. */
function volumeFiles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of readdirSync(dataDir).sort()) {
    if (/\.(dat|idx)$/.test(name)) out[name] = statSync(join(dataDir, name)).size;
  }
  return out;
}

const spoolFiles = () => (existsSync(join(dataDir, '.spool')) ? readdirSync(join(dataDir, '.spool')) : []);

/** One PUT with its whole body in a single write (raw bytes, stored as sent). */
function putTo(url: string, fid: string, bytes: Buffer): Promise<Response> {
  return send(`http://${url}/${fid}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: bytes,
  });
}

async function expect507(url: string, fid: string, bytes: Buffer): Promise<void> {
  const before = volumeFiles();
  const res = await putTo(url, fid, bytes);
  const body = (await res.json()) as { code: string };
  expect(res.status, JSON.stringify(body)).toBe(507);
  expect(body.code).toBe('insufficient_storage');
  // Nothing half-written: the tails were cut back, no idx entry, no spool file, and no such blob.
  expect(volumeFiles()).toEqual(before);
  expect(spoolFiles()).toEqual([]);
  expect((await raw(`http://${url}`, `/${fid}`)).status).toBe(404);
}

async function expectAllServed(base: string): Promise<void> {
  for (const b of acked) {
    const res = await raw(base, `/${b.fid}`);
    expect(res.status, `GET ${b.fid}`).toBe(200);
    expect(res.body.equals(b.bytes), `GET ${b.fid}: the bytes differ`).toBe(true);
  }
}

async function diskStatus(base: string): Promise<{ full: boolean; free: number; all: number }> {
  const status = (await (await fetch(`${base}/status`)).json()) as {
    DiskStatuses: Array<{ full: boolean; free: number; all: number }>;
  };
  return status.DiskStatuses[0]!;
}

const vidOf = (fid: string) => Number(fid.slice(0, fid.indexOf(',')));
/** Whether the master would hand out any volume of the layout. */
const masterWritable = () => m.topology.writable(LAYOUT).map((v) => v.id);

beforeAll(async () => {
  mnt = mkdtempSync(join(tmpdir(), 'kelp-diskfull-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', mnt]);
  dataDir = join(mnt, 'data');
  filler = join(mnt, 'filler');
  m = await master({ pulseSeconds: PULSE_SECONDS });
  vs = await volume(m.address, { dir: dataDir });
  await waitForNodes(m, 1);
});

afterAll(async () => {
  await stopAll();
  if (mnt) {
    try {
      execFileSync('umount', [mnt]);
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
  }
});

describe('issue 10 finding 9: disk full', () => {
  it('acknowledged writes before the disk fills (small and spooled); one volume sealed by the operator', async () => {
    for (const size of [100, 4000, 30_000, 1_200_000, 512]) {
      const a = await assignOk(m.base);
      const bytes = randomBytes(size);
      const res = await putTo(a.url, a.fid, bytes);
      expect(res.status, await res.clone().text()).toBe(201);
      acked.push({ fid: a.fid, bytes });
    }
    sealedVid = vidOf(acked[0]!.fid);
    expect((await fetch(`${vs.base}/admin/readonly?volume=${sealedVid}`, { method: 'POST' })).status).toBe(
      200,
    );
    await waitFor('the master sees the seal', () => !masterWritable().includes(sealedVid), HEARD_WITHIN_MS);
    expect(masterWritable().length).toBeGreaterThan(0);
    for (let i = 0; i < 6; i++) spare.push((await assignOk(m.base)).fid);
  });

  it('a small (in-memory) upload on a full disk answers 507 insufficient_storage and leaves the volume as it was', async () => {
    fillDisk();
    expect((await diskStatus(vs.base)).free).toBe(0);
    // Larger than a page: it needs blocks the filesystem no longer has.
    await expect507(vs.url, spare.pop()!, randomBytes(64 * 1024));
    const disk = await diskStatus(vs.base);
    expect(disk.full).toBe(true);
    const status = (await (await fetch(`${vs.base}/status`)).json()) as {
      Volumes: Array<{ id: number; full: boolean; readOnly: boolean }>;
    };
    expect(status.Volumes.every((v) => v.full)).toBe(true);
    // Full is not sealed: only the operator's seal is read-only.
    expect(status.Volumes.filter((v) => v.readOnly).map((v) => v.id)).toEqual([sealedVid]);
  });

  it('the master hears at once (not a pulse later) and stops assigning: /dir/assign answers 406, no volume there', async () => {
    await waitFor('the master drops the full volumes', () => masterWritable().length === 0, HEARD_WITHIN_MS);
    const res = await fetch(`${m.base}/dir/assign`);
    const body = (await res.json()) as { code?: string; fid?: string };
    // The layout has no writable volume, and growth finds no free slot on a full disk.
    expect(res.status, JSON.stringify(body)).toBe(406);
    expect(body.code).toBe('no_space');
    expect(m.topology.nodes.get(vs.url)?.volumes.get(vidOf(spare[0]!))?.full).toBe(true);
  });

  it('a spooled upload (over 1 MiB) answers 507 when its spool finds no room, and when the .dat then does not', async () => {
    // No room at all: the spool file is what fails.
    await expect507(vs.url, spare.pop()!, randomBytes(SPOOLED_BYTES));
    // Room for the spool but not for the needle too: the .dat append fails, and is cut back.
    truncateSync(filler, statSync(filler).size - 1.5 * MiB);
    await waitFor('the location reopens with 1.5 MiB free', async () => !(await diskStatus(vs.base)).full);
    await expect507(vs.url, spare.pop()!, randomBytes(SPOOLED_BYTES));
    expect((await diskStatus(vs.base)).full).toBe(true);
    fillDisk();
  });

  it('every acknowledged blob still reads back byte for byte', async () => {
    await expectAllServed(vs.base);
  });

  it('a restart on the full disk needs no repair, starts full, and serves every acknowledged blob', async () => {
    const port = Number(vs.url.slice(vs.url.lastIndexOf(':') + 1));
    await vs.stop();
    const logs: string[] = [];
    const srv = await startInProcess(dataDir, { logger: captureLogs(logs, 'info').logger });
    try {
      expect(srv.server.store.all().flatMap((v) => v.repairs)).toEqual([]);
      expect(logs.filter((l) => /truncated|dropped|indexed|removed/.test(l))).toEqual([]);
      expect(logs.some((l) => l.includes('disk full'))).toBe(true);
      await expectAllServed(srv.base);
      await expect507(srv.server.address, spare.pop()!, randomBytes(100));
      // Nor does it create volumes there (the master's growth): 507, and no half-made files.
      const create = await fetch(`${srv.base}/admin/assign_volume?volume=60`, { method: 'POST' });
      expect(create.status).toBe(507);
      expect(readdirSync(dataDir).filter((n) => n.startsWith('60.'))).toEqual([]);
    } finally {
      await srv.stop();
    }
    // Back in the cluster, at the same address.
    vs = await volume(m.address, { dir: dataDir, port });
    await waitForNodes(m, 1);
    expect(masterWritable()).toEqual([]);
  });

  it('once space is freed, writes resume by themselves (small and spooled); the sealed volume stays sealed', async () => {
    rmSync(filler);
    // No write, no heartbeat needed: the location's own check reopens it, and the master hears at once.
    const a = await waitFor('an assign again', () => masterWritable().length > 0, HEARD_WITHIN_MS).then(() =>
      assignOk(m.base),
    );
    expect(a.url).toBe(vs.url);
    expect((await diskStatus(vs.base)).full).toBe(false);
    for (const bytes of [randomBytes(64 * 1024), randomBytes(SPOOLED_BYTES)]) {
      const { fid, url } = await assignOk(m.base);
      expect(vidOf(fid)).not.toBe(sealedVid);
      const res = await putTo(url, fid, bytes);
      expect(res.status, await res.clone().text()).toBe(201);
      acked.push({ fid, bytes });
    }
    expect(masterWritable()).not.toContain(sealedVid);
    const sealed = await putTo(vs.url, `${sealedVid},ff00000000${'12345678'}`, randomBytes(10));
    expect(sealed.status).toBe(409);
  });

  it('a restart after all that needs no repair and serves every acknowledged blob', async () => {
    await vs.stop();
    const logs: string[] = [];
    const srv = await startInProcess(dataDir, { logger: captureLogs(logs, 'info').logger });
    try {
      expect(srv.server.store.all().flatMap((v) => v.repairs)).toEqual([]);
      expect(logs).toEqual([]);
      await expectAllServed(srv.base);
    } finally {
      await srv.stop();
    }
  });
});
