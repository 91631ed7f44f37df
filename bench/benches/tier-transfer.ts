/**
 * Tier transfers (issue 15, item 4): uploading a sealed volume of
 * KELP_BENCH_TIER_TRANSFER_MIB (default 256) MiB to a tier and downloading it
 * back, through the volume server's `/admin/tier/*` jobs (hashing,
 * verification, the `.vif` commit, fsyncs and the removal of the source
 * included; timed by the job's own start and finish), against the plain
 * transfer of the same file:
 *
 * - `local.default`: `fs.copyFile` + fsync, the fastest plain copy, both ways
 *   (a streamed copy + fsync, and the local backend's transfer alone without
 *   the job around it, are shown too);
 * - S3: one PutObject of the file as a stream, and one GetObject streamed
 *   to a file + fsync, with the same SDK client. Beside the plain PutObject,
 *   one the store verifies (the file's SHA-256 computed first, the request
 *   signed with it, as Kelp's parts are): what that check costs here, with the
 *   store on the same cores (the CPU its daemons spend is reported per row).
 *
 * The volume server is a child process started for the transfers, so its
 * peak RSS growth during each job (sampled from /proc every 20 ms) is the
 * transfer's memory. Each plain/Kelp pair runs KELP_BENCH_TIER_TRANSFER_ROUNDS
 * (default 3) times, which goes first alternating by round (a store filling
 * up, or a page cache, favours neither); medians, each round's rate noted.
 * S3 is Ceph's RGW on the same cores (bench/lib/s3-store.ts), whose memstore
 * OSD holds what is uploaded in RAM (about 2.5 times its size; three objects a
 * round, and deletes are freed only by RGW's garbage collection hours later):
 * a 1 GiB run is `KELP_BENCH_TIER_TRANSFER_MIB=1024
 * KELP_BENCH_TIER_TRANSFER_ROUNDS=2` (about 15 GiB of RAM at its peak).
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { copyFile, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { tempDirOnAnotherFilesystem } from '../../test/support/temp-dirs.ts';
import {
  assignVolume,
  type ChildTierServer,
  http,
  newFid,
  pool,
  putBlob,
  sealVolume,
  startChildTierServer,
  startTierServer,
  type TierStatus,
  tierDownload,
  tierUpload,
  vifOf,
} from '../../test/tiering/volume/harness.ts';
import type { BackendConfig, UploadResult } from '../../tiering/backends/backend.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import type { S3Backend } from '../../tiering/backends/s3.ts';
import { signPayload } from '../../tiering/backends/s3-upload.ts';
import { cpuSeconds } from '../lib/cpu.ts';
import { type S3Store, startS3Store } from '../lib/s3-store.ts';
import { median, type Row } from '../lib/table.ts';
import type { Bench } from '../run.ts';

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.KELP_BENCH_TIER_TRANSFER_MIB ?? 256);
const ROUNDS = Number(process.env.KELP_BENCH_TIER_TRANSFER_ROUNDS ?? 3);
const NEEDLE_BYTES = 4 * MiB;
const BUCKET = 'kelp-bench-transfer';
const BENCH = 'tier-transfer';
const RSS_SAMPLE_MS = 20;
/** Volume ids: 1 the filled volume; copies of it per round, 10+ for local.default and 20+ for S3. */
const SOURCE = 1;

/**
 * A local tier on another filesystem than the data (tmpfs under /dev/shm): a download from it is a
 * copy, where one from `local.default` (beside the data) moves the checked object into place.
 */
const OTHER_FS_BACKEND = 'local.otherfs';
const OTHER_FS_VOLUME = 30;

const backendsOf = (s3: S3Store | undefined, otherFs: string | undefined): BackendConfig[] => [
  ...(s3 ? [s3.config] : []),
  ...(otherFs ? [{ type: 'local' as const, id: 'otherfs', path: otherFs }] : []),
];

/**
 * A copy of a volume for one round's job, written back to disk before anything is timed: the plain
 * transfers read the settled source, and a job reading a copy still under writeback (gigabytes of
 * them at 1 GiB) would share the disk with it.
 */
function copyVolume(dir: string, from: number, to: number): void {
  for (const ext of ['dat', 'idx']) {
    const copy = join(dir, `${to}.${ext}`);
    copyFileSync(join(dir, `${from}.${ext}`), copy);
    const fd = openSync(copy, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** Fills volume 1 with SIZE_MIB of 4 MiB needles (each a rotation of one random block) and seals it. */
async function fill(dir: string): Promise<void> {
  const srv = await startTierServer(dir);
  try {
    await assignVolume(srv.base, SOURCE);
    const block = randomBytes(NEEDLE_BYTES);
    const blobs = Array.from({ length: Math.ceil((SIZE_MIB * MiB) / NEEDLE_BYTES) }, (_, i) => ({
      fid: newFid(SOURCE),
      bytes: Buffer.concat([
        block.subarray((i * 4099) % NEEDLE_BYTES),
        block.subarray(0, (i * 4099) % NEEDLE_BYTES),
      ]),
      text: false,
    }));
    await pool(blobs, 4, (b) => putBlob(srv.base, b));
    await sealVolume(srv.base, SOURCE);
  } finally {
    await srv.stop();
  }
}

/** Resident set of a process, in bytes (Linux /proc, as the benches are). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * CPU time a process has used, in ms (bench/lib/cpu.ts: all its threads, the hash threads too). The
 * machine's load stretches wall-clock rates; CPU per transfer moves far less with it, so the notes give both.
 */
function cpuMsOf(pid: number): number {
  const seconds = cpuSeconds(pid);
  if (seconds === undefined) throw new Error(`no CPU time for pid ${pid} in /proc`);
  return seconds * 1000;
}

interface Timed {
  seconds: number;
  /** CPU the transfer cost its process (the bench for a plain one, the volume server for a job). */
  cpuMs?: number;
  /** Peak RSS growth of the volume server during the job, for Kelp's transfers. */
  rssGrowth?: number;
  /** CPU the store's own processes spent meanwhile (Ceph on the same cores), where the bench can see them. */
  storeCpuMs?: number;
}

/** `timed`, with the CPU the store's processes spent while it ran. */
async function withStoreCpu(store: S3Store, timed: () => Promise<Timed>): Promise<Timed> {
  const pids = store.pids?.() ?? [];
  const cpu = () => pids.reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  const before = cpu();
  const t = await timed();
  return pids.length ? { ...t, storeCpuMs: cpu() - before } : t;
}

async function time(fn: () => Promise<unknown>): Promise<Timed> {
  const t = performance.now();
  const cpu = cpuMsOf(process.pid);
  await fn();
  return { seconds: (performance.now() - t) / 1000, cpuMs: cpuMsOf(process.pid) - cpu };
}

/** Runs a tier job on the child server, timed by the job itself, sampling the server's RSS meanwhile. */
async function job(srv: ChildTierServer, run: () => Promise<TierStatus>): Promise<Timed> {
  const pid = srv.child.pid!;
  const before = rssOf(pid);
  const cpu = cpuMsOf(pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, RSS_SAMPLE_MS);
  try {
    const s = await run();
    peak = Math.max(peak, rssOf(pid));
    const j = s.job!;
    return {
      seconds: (j.finishedAt! - j.startedAt) / 1000,
      rssGrowth: peak - before,
      cpuMs: cpuMsOf(pid) - cpu,
    };
  } finally {
    clearInterval(sampler);
  }
}

async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  await fh.sync();
  await fh.close();
}

function row(subject: string, bytes: number, runs: Timed[], base?: number, goal?: string): Row {
  const seconds = median(runs.map((r) => r.seconds));
  const mibps = bytes / MiB / seconds;
  const rss = runs.map((r) => r.rssGrowth).filter((r): r is number => r !== undefined);
  const cpu = runs.map((r) => r.cpuMs).filter((r): r is number => r !== undefined);
  const storeCpu = runs.map((r) => r.storeCpuMs).filter((r): r is number => r !== undefined);
  const spread =
    runs.length > 1
      ? `; ${runs.map((r) => (bytes / MiB / r.seconds).toFixed(0)).join(' / ')} MiB/s per round`
      : '';
  return {
    bench: BENCH,
    subject,
    ratio: base === undefined ? undefined : mibps / base,
    goal: goal ?? 'baseline',
    note:
      `${mibps.toFixed(0)} MiB/s (${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(2)} s)` +
      (rss.length ? `; volume server RSS +${(Math.max(...rss) / MiB).toFixed(0)} MiB at peak` : '') +
      (cpu.length ? `; CPU ${median(cpu).toFixed(0)} ms (median)` : '') +
      (storeCpu.length ? `; store CPU ${median(storeCpu).toFixed(0)} ms` : '') +
      spread,
  };
}

const rate = (bytes: number, runs: Timed[]) => bytes / MiB / median(runs.map((r) => r.seconds));

/** Runs a plain transfer and Kelp's in alternating order by round, so neither always meets a warmer store. */
async function pair(round: number, plain: () => Promise<void>, kelp: () => Promise<void>): Promise<void> {
  if (round % 2 === 0) {
    await plain();
    await kelp();
  } else {
    await kelp();
    await plain();
  }
}

async function localRows(
  dir: string,
  srv: ChildTierServer,
  size: number,
  otherFs: string | undefined,
): Promise<Row[]> {
  const src = join(dir, `${SOURCE}.dat`);
  const scratch = join(dir, 'plain-copy.bin');
  // The backend alone, in this process: the copy with its hash thread, fsync and rename, no job around it.
  const alone = await createBackend({ type: 'local', id: 'alone', path: join(dir, 'alone') });
  const plainCopy = async (into: Timed[]) => {
    into.push(
      await time(async () => {
        await copyFile(src, scratch);
        await fsync(scratch);
      }),
    );
    rmSync(scratch);
  };
  const copy: Timed[] = [];
  const streamed: Timed[] = [];
  const backendUp: Timed[] = [];
  const up: Timed[] = [];
  const copyBack: Timed[] = [];
  const backendDown: Timed[] = [];
  const down: Timed[] = [];
  const copyAcross: Timed[] = [];
  const downAcross: Timed[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const vid = 10 + round;
    let uploaded: UploadResult | undefined;
    backendUp.push(
      await time(async () => {
        uploaded = await alone.upload(src, 'alone.dat');
      }),
    );
    // Checked against what the upload recorded, as a tier download job checks the `.vif`'s.
    const expected = { expectedCrc32c: uploaded?.crc32c, expectedSha256: uploaded?.sha256 };
    backendDown.push(await time(() => alone.download('alone.dat', scratch, expected)));
    rmSync(scratch);
    await alone.delete('alone.dat');
    streamed.push(
      await time(async () => {
        await pipeline(createReadStream(src), createWriteStream(scratch));
        await fsync(scratch);
      }),
    );
    rmSync(scratch);
    await pair(
      round,
      () => plainCopy(copy),
      async () => {
        up.push(await job(srv, () => tierUpload(srv.base, vid, 'local.default')));
      },
    );
    // The way back's plain copy is of the same bytes from the same disk (the object is gone after the job).
    await pair(
      round,
      () => plainCopy(copyBack),
      async () => {
        down.push(await job(srv, () => tierDownload(srv.base, vid)));
      },
    );
    if (otherFs) {
      const across = OTHER_FS_VOLUME + round;
      await tierUpload(srv.base, across, OTHER_FS_BACKEND);
      // The plain copy's source: the same bytes on the same filesystem (the job deletes its object).
      const object = join(otherFs, 'plain-source.bin');
      copyFileSync(join(otherFs, vifOf(dir, across)!.remote!.key), object);
      await pair(
        round,
        async () => {
          copyAcross.push(
            await time(async () => {
              await copyFile(object, scratch);
              await fsync(scratch);
            }),
          );
          rmSync(scratch);
        },
        async () => {
          downAcross.push(await job(srv, () => tierDownload(srv.base, across)));
        },
      );
      rmSync(object);
    }
  }
  const copyRate = rate(size, copy);
  const backRate = rate(size, copyBack);
  return [
    row('local: plain copyFile + fsync', size, copy),
    row('local: plain streamed copy + fsync (for reference)', size, streamed, copyRate, 'vs copyFile'),
    row(
      'local backend upload alone (copy, crc32c thread, fsync, rename)',
      size,
      backendUp,
      copyRate,
      'vs copyFile',
    ),
    row('tier upload job to local.default', size, up, copyRate, '>= 80 %: + verify, .vif, .dat moved out'),
    row('local: plain copyFile + fsync, again', size, copyBack),
    row('local backend download alone (crc32c checked)', size, backendDown, backRate, 'vs copyFile'),
    row(
      'tier download job from local.default',
      size,
      down,
      backRate,
      '>= 80 %: checked, moved into place (same filesystem), reopened',
    ),
    ...(otherFs
      ? [
          row('local: plain copyFile + fsync from another filesystem (tmpfs)', size, copyAcross),
          row(
            'tier download job from a local tier on another filesystem',
            size,
            downAcross,
            rate(size, copyAcross),
            '>= 80 %: copied, checked, reopened, object deleted',
          ),
        ]
      : []),
  ];
}

async function s3Rows(dir: string, srv: ChildTierServer, s3: S3Store, size: number): Promise<Row[]> {
  const src = join(dir, `${SOURCE}.dat`);
  const scratch = join(dir, 'plain-get.bin');
  const client = (await createBackend(s3.config)) as S3Backend;
  const put: Timed[] = [];
  const checkedPut: Timed[] = [];
  const up: Timed[] = [];
  const get: Timed[] = [];
  const down: Timed[] = [];
  // A plain transfer timed in this process, with what it cost the store.
  const timed = (fn: () => Promise<unknown>) => withStoreCpu(s3, () => time(fn));
  const putFile = (key: string) =>
    new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: createReadStream(src), ContentLength: size });
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const vid = 20 + round;
      // The plain object is the same bytes as the tier's; the plain GET reads it, so the order can alternate.
      const key = `plain-${round}.dat`;
      const checkedKey = `plain-checked-${round}.dat`;
      await pair(
        round,
        async () => {
          put.push(await timed(() => client.client.send(putFile(key))));
          // The same as an upload the store verifies: the file's SHA-256 first, then the PutObject signed with it.
          checkedPut.push(
            await timed(async () => {
              const hash = createHash('sha256');
              await pipeline(createReadStream(src), hash);
              await client.client.send(signPayload(putFile(checkedKey), hash.digest('hex')));
            }),
          );
        },
        async () => {
          up.push(await withStoreCpu(s3, () => job(srv, () => tierUpload(srv.base, vid, 's3.default'))));
        },
      );
      await pair(
        round,
        async () => {
          get.push(
            await timed(async () => {
              const res = await client.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
              await pipeline(res.Body as Readable, createWriteStream(scratch));
              await fsync(scratch);
            }),
          );
          rmSync(scratch);
        },
        async () => {
          down.push(await withStoreCpu(s3, () => job(srv, () => tierDownload(srv.base, vid))));
        },
      );
      await client.delete(key);
      await client.delete(checkedKey);
    }
  } finally {
    await client.close();
  }
  return [
    row(`${s3.label}: one plain PutObject (file stream)`, size, put),
    row(
      `tier upload job to ${s3.label}`,
      size,
      up,
      rate(size, put),
      '>= 80 %: multipart, signed part SHA-256s',
    ),
    row(
      `${s3.label}: one PutObject the store verifies (signed with the file's SHA-256, hashed first)`,
      size,
      checkedPut,
      rate(size, put),
      'ceiling, not a goal: vs the plain PutObject',
    ),
    row(
      `tier upload job to ${s3.label}, against the verified PutObject`,
      size,
      up,
      rate(size, checkedPut),
      'both checked by the store',
    ),
    row(`${s3.label}: one plain GetObject to a file + fsync`, size, get),
    row(`tier download job from ${s3.label}`, size, down, rate(size, get), '>= 80 %: ranged GETs, sha256'),
  ];
}

const bench: Bench = {
  name: BENCH,
  description: `tier upload and download of a ${SIZE_MIB} MiB volume vs plain copies / PutObject / GetObject`,
  async run() {
    const scratch = await mkdtemp(join(tmpdir(), 'kelp-bench-transfer-'));
    let s3: S3Store | undefined;
    let srv: ChildTierServer | undefined;
    let otherFs: string | undefined;
    try {
      const dir = join(scratch, 'volumes');
      const started = performance.now();
      await fill(dir);
      const size = statSync(join(dir, `${SOURCE}.dat`)).size;
      console.error(
        `  filled ${(size / MiB).toFixed(0)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      s3 = await startS3Store({
        bucket: BUCKET,
        dir: scratch,
        // Per round: the plain, the verified and the tier's copy (deletes are freed only much later).
        memstoreBytes: 3 * ROUNDS * size + 512 * MiB,
      });
      otherFs = tempDirOnAnotherFilesystem(dir, 'kelp-bench-transfer-');
      for (let round = 0; round < ROUNDS; round++) {
        copyVolume(dir, SOURCE, 10 + round);
        if (s3) copyVolume(dir, SOURCE, 20 + round);
        if (otherFs) copyVolume(dir, SOURCE, OTHER_FS_VOLUME + round);
      }
      srv = await startChildTierServer(dir, backendsOf(s3, otherFs));
      // One read, so the server has loaded what a first request loads before anything is timed.
      await http(srv.base, '/status');
      const rows = await localRows(dir, srv, size, otherFs);
      if (s3) rows.push(...(await s3Rows(dir, srv, s3, size)));
      return rows;
    } finally {
      await srv?.stop();
      await s3?.stop();
      await rm(scratch, { recursive: true, force: true });
      if (otherFs) await rm(otherFs, { recursive: true, force: true });
    }
  },
};
export default bench;
