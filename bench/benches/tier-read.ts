/**
 * Tiered volumes (issues 7 and 15), reads. In one run:
 *
 * 1. Throughput and latency of random 1 KiB reads through one volume server
 *    (a child process, test/tiering/volume/fixtures/volume-server.ts), loaded
 *    by wrk: a local volume (the baseline) against a copy of it tiered to
 *    `local.default`. Both volumes live in the same server, so the rounds
 *    alternate over one process.
 * 2. The same reads from a copy tiered to S3, against a bare loop doing the
 *    same signed ranged GETs of the same needle records with a lean client
 *    (bench/lib/s3-get-loop.ts) on the same store, alternating round by
 *    round: the store's own cost is in both, so the ratio is what Kelp adds
 *    to one GET. The volume server's CPU per read is noted beside it.
 * 3. Bytes fetched per read against the needle record size, from the
 *    backends' own counters (an in-process server, KELP_BENCH_TIER_SAMPLES
 *    sequential reads): the goal is equal, in exactly one request.
 *
 * Tier uploads and downloads are measured by bench/benches/tier-transfer.ts.
 *
 * S3 is Ceph's RADOS Gateway when its Debian packages are installed (15 s to
 * start; the test harness test/tiering/ceph-rgw.ts), else s3rver; set
 * KELP_BENCH_S3=ceph|s3rver|none to choose. Both run on this machine, so
 * an S3 read costs the gateway's CPU too: figures against a remote store
 * would differ by the network round trip.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readVolumeInfo } from '../../origin/volume/volume-info.ts';
import { parseFid } from '../../shared/fid.ts';
import { isLiveEntry, toByteOffset, walkIdx } from '../../shared/idx.ts';
import { CURRENT_VERSION, needleRecordSize } from '../../shared/needle.ts';
import {
  assignVolume,
  type Blob,
  http,
  newFid,
  pool,
  putBlob,
  sealVolume,
  startTierServer,
  tierUpload,
} from '../../test/tiering/volume/harness.ts';
import type { BackendConfig } from '../../tiering/backends/backend.ts';
import { type Contender, compare } from '../lib/compare.ts';
import { type Started, startServer } from '../lib/process.ts';
import { type S3Store, startS3Store } from '../lib/s3-store.ts';
import { median, type Row } from '../lib/table.ts';
import { type LoadResult, runWrk } from '../lib/wrk.ts';
import type { Bench, BenchContext } from '../run.ts';

const run = promisify(execFile);
const FIXTURE = fileURLToPath(
  new URL('../../test/tiering/volume/fixtures/volume-server.ts', import.meta.url),
);
const S3_LOOP = fileURLToPath(new URL('../lib/s3-get-loop.ts', import.meta.url));
const randomPath = fileURLToPath(new URL('../lua/random-path.lua', import.meta.url));
const BLOBS = Number(process.env.KELP_BENCH_TIER_BLOBS ?? 20_000);
const SAMPLES = Number(process.env.KELP_BENCH_TIER_SAMPLES ?? 2_000);
const BLOB_BYTES = 1024;
const BUCKET = 'kelp-bench-tier';
const BENCH = 'tier-read';

/** Volume ids: 1 local, 2 tiered to local.default, 3 tiered to S3. */
const LOCAL = 1;
const TIER_LOCAL = 2;
const TIER_S3 = 3;

/** The server's backend configs: `local.default` is implicit. */
const backendsOf = (s3: S3Store | undefined): BackendConfig[] => (s3 ? [s3.config] : []);

function copyVolume(dir: string, from: number, to: number): void {
  for (const ext of ['dat', 'idx']) copyFileSync(join(dir, `${from}.${ext}`), join(dir, `${to}.${ext}`));
}

/** `/1,<key><cookie>` as `/<to>,<key><cookie>`. */
const onVolume = (fid: string, to: number) => `/${to}${fid.slice(fid.indexOf(','))}`;

/** Fills volume 1 with BLOBS needles of 1 KiB, copies it (2 and 3), then tiers the copies. Returns the blobs. */
async function prepare(dir: string, s3: S3Store | undefined): Promise<Blob[]> {
  const srv = await startTierServer(dir, backendsOf(s3));
  let blobs: Blob[];
  try {
    await assignVolume(srv.base, LOCAL);
    const pool64 = randomBytes(BLOB_BYTES * 64);
    blobs = Array.from({ length: BLOBS }, (_, i) => ({
      fid: newFid(LOCAL),
      bytes: pool64.subarray((i % 64) * BLOB_BYTES, (i % 64) * BLOB_BYTES + BLOB_BYTES),
      text: false,
    }));
    const started = performance.now();
    await pool(blobs, 32, (b) => putBlob(srv.base, b));
    console.error(`  filled ${BLOBS} x 1 KiB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await sealVolume(srv.base, LOCAL);
  } finally {
    await srv.stop();
  }
  copyVolume(dir, LOCAL, TIER_LOCAL);
  copyVolume(dir, LOCAL, TIER_S3);
  const again = await startTierServer(dir, backendsOf(s3));
  try {
    await tierUpload(again.base, TIER_LOCAL, 'local.default');
    if (s3) await tierUpload(again.base, TIER_S3, 's3.default');
  } finally {
    await again.stop();
  }
  return blobs;
}

function pathsFile(dir: string, blobs: Blob[], volumeId: number): string {
  const file = join(dir, `paths-${volumeId}.txt`);
  writeFileSync(file, `${blobs.map((b) => onVolume(b.fid, volumeId)).join('\n')}\n`);
  return file;
}

/** The needle records of a volume, from its `.idx`, as `offset length` lines: what a tiered read GETs. */
function rangesFile(dir: string, volumeId: number): string {
  const lines: string[] = [];
  walkIdx(readFileSync(join(dir, `${volumeId}.idx`)), (_hi, _lo, offset, size) => {
    if (isLiveEntry(offset, size))
      lines.push(`${toByteOffset(offset)} ${needleRecordSize(size, CURRENT_VERSION)}`);
  });
  const file = join(dir, `ranges-${volumeId}.txt`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** User + system CPU of a process so far, in ms (from /proc: Linux only, as the benches are). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** One run of the bare GET loop against the store. */
async function bareLoop(
  s3: S3Store,
  key: string,
  ranges: string,
  ctx: BenchContext,
): Promise<LoadResult & { cpuUsPerRequest: number }> {
  const { stdout } = await run(process.execPath, [S3_LOOP], {
    env: {
      ...process.env,
      KELP_S3_LOOP: JSON.stringify({
        endpoint: s3.config.endpoint,
        region: s3.config.region,
        bucket: s3.config.bucket,
        key,
        accessKeyId: s3.config.accessKeyId,
        secretAccessKey: s3.config.secretAccessKey,
        rangesFile: ranges,
        connections: ctx.connections,
        durationSec: ctx.durationSec,
      }),
    },
    timeout: (ctx.durationSec + 30) * 1000,
  });
  return JSON.parse(stdout) as LoadResult & { cpuUsPerRequest: number };
}

function loadRow(subject: string, rs: LoadResult[], base?: number, goal?: string, note?: string): Row {
  const rps = median(rs.map((r) => r.reqPerSec));
  const errors = rs.reduce((a, r) => a + r.errors, 0);
  return {
    bench: BENCH,
    subject,
    reqPerSec: rps,
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    ratio: base === undefined ? undefined : rps / base,
    goal: goal ?? 'baseline',
    note: [note, errors ? `${errors} errors` : undefined].filter(Boolean).join('; ') || undefined,
  };
}

/** wrk against one shared server: local vs tiered to local.default, then tiered to S3 vs the bare GET loop. */
async function readRows(
  dir: string,
  blobs: Blob[],
  s3: S3Store | undefined,
  ctx: BenchContext,
): Promise<Row[]> {
  const shared: Started = await startServer([FIXTURE], {
    env: { KELP_TEST_VOLUME_SERVER: JSON.stringify({ dir, backends: backendsOf(s3) }) },
  });
  const contender = (subject: string, volumeId: number): Contender => {
    const file = pathsFile(dir, blobs, volumeId);
    return {
      subject,
      // The shared child's pid: compare() notes its CPU per request over each contender's rounds.
      start: async () => ({ port: shared.port, pid: shared.child!.pid!, stop: async () => {} }),
      load: (port) => ({ url: `http://127.0.0.1:${port}/`, script: randomPath, env: { KELP_PATHS: file } }),
    };
  };
  try {
    const rows = await compare(
      [
        contender('local volume, 1 KiB random reads', LOCAL),
        contender('tiered to local.default', TIER_LOCAL),
      ],
      { bench: BENCH, ...ctx },
    );
    rows[1]!.goal = '>= 85 %: one pread, CRC checked';
    if (!s3) return rows;
    const key = readVolumeInfo(join(dir, `${TIER_S3}.vif`)).remote!.key;
    const ranges = rangesFile(dir, TIER_S3);
    const paths = pathsFile(dir, blobs, TIER_S3);
    const bare: (LoadResult & { cpuUsPerRequest: number })[] = [];
    const kelp: LoadResult[] = [];
    const cpuPerRead: number[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      bare.push(await bareLoop(s3, key, ranges, ctx));
      const cpu = cpuMs(shared.child!.pid!);
      const r = await runWrk({
        url: `http://127.0.0.1:${shared.port}/`,
        script: randomPath,
        env: { KELP_PATHS: paths },
        connections: ctx.connections,
        durationSec: ctx.durationSec,
      });
      kelp.push(r);
      cpuPerRead.push(((cpuMs(shared.child!.pid!) - cpu) * 1000) / r.requests);
    }
    const base = median(bare.map((r) => r.reqPerSec));
    const local = rows[0]!.reqPerSec!;
    rows.push(
      loadRow(
        `${s3.label}: bare loop of signed ranged GETs, lean client`,
        bare,
        undefined,
        undefined,
        `loop CPU ${median(bare.map((r) => r.cpuUsPerRequest)).toFixed(0)} µs per GET`,
      ),
    );
    const tiered = loadRow(
      `tiered to ${s3.label}, 1 KiB random reads`,
      kelp,
      base,
      '>= 60 %: one ranged GET, CRC checked',
      `volume server CPU ${median(cpuPerRead).toFixed(0)} µs per read; ${((median(kelp.map((r) => r.reqPerSec)) / local) * 100).toFixed(1)} % of local reads`,
    );
    rows.push(tiered);
    return rows;
  } finally {
    await shared.stop();
  }
}

/** Sequential reads in-process, with the backends' counters: requests and bytes per read vs the record. */
async function bytesRows(dir: string, blobs: Blob[], s3: S3Store | undefined): Promise<Row[]> {
  const srv = await startTierServer(dir, backendsOf(s3));
  const rows: Row[] = [];
  try {
    const targets: [number, string][] = [[TIER_LOCAL, 'local.default']];
    if (s3) targets.push([TIER_S3, 's3.default']);
    for (const [volumeId, backend] of targets) {
      const volume = srv.server.store.get(volumeId);
      const stats = srv.stats(backend);
      const before = { reads: stats.reads, requests: stats.requests, bytes: stats.bytesRead };
      let recordBytes = 0;
      const started = performance.now();
      for (let i = 0; i < SAMPLES; i++) {
        const b = blobs[Math.floor(Math.random() * blobs.length)]!;
        const r = await http(srv.base, onVolume(b.fid, volumeId));
        if (r.status !== 200 || !r.body.equals(b.bytes)) throw new Error(`bad read of ${b.fid}: ${r.status}`);
        recordBytes += needleRecordSize(volume.map.get(parseFid(b.fid).key)!.size, volume.version);
      }
      const ms = (performance.now() - started) / SAMPLES;
      const reads = stats.reads - before.reads;
      const requests = stats.requests - before.requests;
      const fetched = stats.bytesRead - before.bytes;
      rows.push({
        bench: `${BENCH} bytes`,
        subject: `${backend}: bytes fetched per read`,
        ratio: fetched / recordBytes,
        goal: 'equal, no extra request',
        note:
          `${(fetched / SAMPLES).toFixed(0)} B in ${(requests / SAMPLES).toFixed(2)} requests ` +
          `(${(reads / SAMPLES).toFixed(2)} GETs) per read; record ${(recordBytes / SAMPLES).toFixed(0)} B; ` +
          `${ms.toFixed(2)} ms mean over ${SAMPLES} sequential reads`,
      });
    }
  } finally {
    await srv.stop();
  }
  return rows;
}

const bench: Bench = {
  name: BENCH,
  description: `tiered vs local 1 KiB reads (${BLOBS} needles), tiered to S3 vs a bare GET loop, bytes per read`,
  async run(ctx) {
    const scratch = await mkdtemp(join(tmpdir(), 'kelp-bench-tier-'));
    let s3: S3Store | undefined;
    try {
      s3 = await startS3Store({ bucket: BUCKET, dir: scratch });
      const dir = join(scratch, 'volumes');
      const blobs = await prepare(dir, s3);
      return [...(await readRows(dir, blobs, s3, ctx)), ...(await bytesRows(dir, blobs, s3))];
    } finally {
      await s3?.stop();
      await rm(scratch, { recursive: true, force: true });
    }
  },
};
export default bench;
