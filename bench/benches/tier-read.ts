/**
 * Tiered volumes (issue 7, "Bench"), three measurements in one run:
 *
 * 1. Read throughput and latency of 1 KiB needles through one volume server
 *    (a child process, test/tiering/volume/fixtures/volume-server.ts), loaded
 *    by wrk at random paths: a local volume (the baseline) against two copies
 *    of it tiered to `local.default` and to S3. All three volumes live in the
 *    same server, so the rounds alternate over one process.
 * 2. Bytes fetched per read against the needle record size, from the
 *    backends' own counters (an in-process server, KELP_BENCH_TIER_SAMPLES
 *    sequential reads): the goal is equal, in exactly one request.
 * 3. Upload throughput of a KELP_BENCH_TIER_UPLOAD_MIB (default 256) MiB
 *    volume through `/admin/tier/upload` (hashing and verification included)
 *    against a plain copy of the same file: a streamed copy with fsync for
 *    `local.default`, one PutObject stream for S3.
 *
 * S3 is Ceph's RADOS Gateway when its Debian packages are installed (15 s to
 * start; the test harness test/tiering/ceph-rgw.ts), else s3rver; set
 * KELP_BENCH_S3=ceph|s3rver|none to choose. Both run on this machine, so
 * an S3 read costs the gateway's CPU too: figures against a remote store
 * would differ by the network round trip.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, createWriteStream, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { parseFid } from '../../shared/fid.ts';
import { needleRecordSize } from '../../shared/needle.ts';
import { assertCephInstalled, startCephRgw } from '../../test/tiering/ceph-rgw.ts';
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
import type { BackendConfig, S3BackendConfig } from '../../tiering/backend.ts';
import { createBackend } from '../../tiering/create-backend.ts';
import type { S3Backend } from '../../tiering/s3.ts';
import { type Contender, compare } from '../lib/compare.ts';
import { startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import type { Bench, BenchContext } from '../run.ts';

const FIXTURE = fileURLToPath(
  new URL('../../test/tiering/volume/fixtures/volume-server.ts', import.meta.url),
);
const randomPath = fileURLToPath(new URL('../lua/random-path.lua', import.meta.url));
const BLOBS = Number(process.env.KELP_BENCH_TIER_BLOBS ?? 20_000);
const SAMPLES = Number(process.env.KELP_BENCH_TIER_SAMPLES ?? 2_000);
const UPLOAD_MIB = Number(process.env.KELP_BENCH_TIER_UPLOAD_MIB ?? 256);
const BLOB_BYTES = 1024;
const MiB = 1024 * 1024;
const BUCKET = 'kelp-bench-tier';
const BENCH = 'tier-read';

/** Volume ids: 1 local, 2 tiered to local.default, 3 tiered to S3; 4 and 5 the upload volume's two copies. */
const LOCAL = 1;
const TIER_LOCAL = 2;
const TIER_S3 = 3;

interface S3Store {
  label: string;
  config: S3BackendConfig;
  stop(): Promise<void>;
}

async function startS3(dir: string): Promise<S3Store | undefined> {
  const choice = process.env.KELP_BENCH_S3 ?? 'auto';
  if (choice === 'none') return undefined;
  let ceph = choice === 'ceph';
  if (choice === 'auto') {
    try {
      assertCephInstalled();
      ceph = true;
    } catch {
      ceph = false;
    }
  }
  const base = {
    type: 's3',
    id: 'default',
    region: 'us-east-1',
    bucket: BUCKET,
    forcePathStyle: true,
  } as const;
  let store: S3Store;
  if (ceph) {
    const rgw = await startCephRgw();
    const config = {
      ...base,
      endpoint: rgw.endpoint,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
    };
    store = { label: 'S3 (Ceph RGW)', config, stop: () => rgw.stop() };
  } else {
    type S3rver = new (
      o: Record<string, unknown>,
    ) => { run(): Promise<AddressInfo>; close(): Promise<void>; httpServer: Server };
    const S3rverClass = createRequire(import.meta.url)('s3rver') as S3rver;
    const s3rver = new S3rverClass({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(dir, 's3rver'),
    });
    const { port } = await s3rver.run();
    const config = {
      ...base,
      endpoint: `http://127.0.0.1:${port}`,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
    };
    store = {
      label: 'S3 (s3rver)',
      config,
      stop: async () => {
        s3rver.httpServer.closeAllConnections();
        await s3rver.close();
      },
    };
  }
  const admin = (await createBackend(store.config)) as S3Backend;
  try {
    await admin.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  } finally {
    await admin.close();
  }
  return store;
}

/** The server's backend configs: `local.default` is implicit. */
const backendsOf = (s3: S3Store | undefined): BackendConfig[] => (s3 ? [s3.config] : []);

function copyVolume(dir: string, from: number, to: number): void {
  for (const ext of ['dat', 'idx']) copyFileSync(join(dir, `${from}.${ext}`), join(dir, `${to}.${ext}`));
}

/** `/1,<key><cookie>` as `/<to>,<key><cookie>`. */
const onVolume = (fid: string, to: number) => `/${to}${fid.slice(fid.indexOf(','))}`;

/**
 * Fills volume 1 with BLOBS needles of 1 KiB and volume 4 with UPLOAD_MIB of
 * 4 MiB needles, copies them (2, 3 and 5), then tiers 2 and 3. Returns the
 * 1 KiB blobs.
 */
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
    await assignVolume(srv.base, 4);
    const big = randomBytes(4 * MiB);
    const bigBlobs = Array.from({ length: Math.ceil(UPLOAD_MIB / 4) }, (_, i) => ({
      fid: newFid(4),
      bytes: Buffer.concat([big.subarray(i * 64), big.subarray(0, i * 64)]),
      text: false,
    }));
    await pool(bigBlobs, 4, (b) => putBlob(srv.base, b));
    await sealVolume(srv.base, 4);
  } finally {
    await srv.stop();
  }
  copyVolume(dir, LOCAL, TIER_LOCAL);
  copyVolume(dir, LOCAL, TIER_S3);
  copyVolume(dir, 4, 5);
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

/** wrk against one shared server, one contender per volume. */
async function readRows(
  dir: string,
  blobs: Blob[],
  s3: S3Store | undefined,
  ctx: BenchContext,
): Promise<Row[]> {
  const shared = await startServer([FIXTURE], {
    env: { KELP_TEST_VOLUME_SERVER: JSON.stringify({ dir, backends: backendsOf(s3) }) },
  });
  const contender = (subject: string, volumeId: number): Contender => {
    const file = pathsFile(dir, blobs, volumeId);
    return {
      subject,
      start: async () => ({ port: shared.port, stop: async () => {} }),
      load: (port) => ({ url: `http://127.0.0.1:${port}/`, script: randomPath, env: { KELP_PATHS: file } }),
    };
  };
  const list = [
    contender('local volume, 1 KiB random reads', LOCAL),
    contender('tiered to local.default', TIER_LOCAL),
  ];
  if (s3) list.push(contender(`tiered to ${s3.label}`, TIER_S3));
  try {
    const rows = await compare(list, { bench: BENCH, ...ctx });
    rows[1]!.goal = 'one pread + async hop';
    if (rows[2]) rows[2].goal = 'one ranged GET per read';
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

function uploadRow(subject: string, bytes: number, seconds: number, base?: number, goal?: string): Row {
  const mibps = bytes / MiB / seconds;
  return {
    bench: `${BENCH} upload`,
    subject,
    ratio: base === undefined ? undefined : mibps / base,
    goal: goal ?? 'baseline',
    note: `${mibps.toFixed(0)} MiB/s (${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(2)} s)`,
  };
}

/** A streamed copy with fsync: what the local backend's upload does, minus hashing and the rename. */
async function plainCopy(src: string, dest: string): Promise<void> {
  await pipeline(createReadStream(src), createWriteStream(dest));
  const fh = await open(dest, 'r');
  await fh.sync();
  await fh.close();
}

async function uploadRows(dir: string, s3: S3Store | undefined): Promise<Row[]> {
  const srv = await startTierServer(dir, backendsOf(s3));
  const rows: Row[] = [];
  try {
    const size = statSync(join(dir, '4.dat')).size;
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return (performance.now() - t) / 1000;
    };
    const copySecs = await time(() => plainCopy(join(dir, '4.dat'), join(dir, 'plain-copy.bin')));
    rmSync(join(dir, 'plain-copy.bin'));
    const copyRate = size / MiB / copySecs;
    rows.push(uploadRow('local: plain streamed copy + fsync', size, copySecs));
    const tierSecs = await time(() => tierUpload(srv.base, 4, 'local.default'));
    rows.push(uploadRow('tier upload to local.default', size, tierSecs, copyRate, 'sha256 + verify'));
    if (s3) {
      const client = (await createBackend(s3.config)) as S3Backend;
      try {
        const putSecs = await time(() =>
          client.client.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: 'plain-put.dat',
              Body: createReadStream(join(dir, '5.dat')),
              ContentLength: size,
            }),
          ),
        );
        rows.push(uploadRow(`${s3.label}: one plain PutObject`, size, putSecs));
        await client.delete('plain-put.dat');
        const s3Secs = await time(() => tierUpload(srv.base, 5, 's3.default'));
        rows.push(
          uploadRow(
            `tier upload to ${s3.label}`,
            size,
            s3Secs,
            size / MiB / putSecs,
            'multipart, md5 + sha256',
          ),
        );
      } finally {
        await client.close();
      }
    }
  } finally {
    await srv.stop();
  }
  return rows;
}

const bench: Bench = {
  name: BENCH,
  description: `tiered vs local 1 KiB reads (${BLOBS} needles), bytes per read, and a ${UPLOAD_MIB} MiB tier upload`,
  async run(ctx) {
    const scratch = await mkdtemp(join(tmpdir(), 'kelp-bench-tier-'));
    let s3: S3Store | undefined;
    try {
      s3 = await startS3(scratch);
      const dir = join(scratch, 'volumes');
      const blobs = await prepare(dir, s3);
      return [
        ...(await readRows(dir, blobs, s3, ctx)),
        ...(await bytesRows(dir, blobs, s3)),
        ...(await uploadRows(dir, s3)),
      ];
    } finally {
      await s3?.stop();
      await rm(scratch, { recursive: true, force: true });
    }
  },
};
export default bench;
