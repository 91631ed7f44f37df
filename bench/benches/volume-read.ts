/**
 * 1 KiB random reads: a Kelp volume server filled with KELP_BENCH_BLOBS
 * (default 50,000) blobs of 1 KiB, read at random through wrk, against bare
 * node:http servers that pread 1 KiB at a random offset of a file of the same
 * size as the volume's `.dat`. Every Kelp read looks up the needle map, preads
 * the whole record and checks its CRC-32C.
 *
 * A third bare server preads the same way and answers with the headers a
 * Kelp blob read carries (bare-http.ts `pread-sync-headers`): the share of
 * the gap that is node formatting and sending them, not Kelp's own work.
 *
 * The Kelp server runs twice, with metrics on (the default) and with
 * `--metrics false`, alternating in the same rounds: their ratio is what the
 * metrics cost the read path (issue 12: under 3 %).
 *
 * Then the same three, cold: the page cache dropped (`echo 3 >
 * /proc/sys/vm/drop_caches`, needs root) right before one run each, so the
 * run starts with every read going to the disk.
 *
 * Then the scales of issue 15 item 2, each against bare `readSync` over the
 * same bytes in the same rounds (volumes written straight to their files by
 * bench/lib/volume-files.ts: uploading 10^6 blobs takes longer than a run):
 * 10^5 and 10^6 blobs of 1 KiB in one volume, 10^5 spread over 100 volumes
 * (the bare server reads 100 files), and 1 MiB blobs in MB/s against a bare
 * server streaming the range with a read stream (and bare `readSync` of the
 * whole MiB beside it). KELP_BENCH_READ_SCALES picks some of `1e5,1e6,100v,1mib`
 * (all by default; `none` for only the rows above; KELP_BENCH_BLOBS=0 for only
 * the scales). With KELP_BENCH_COMPARE_TREE (another checkout,
 * bench/lib/kelp.ts) its volume server runs beside this one's in every group:
 * before/after figures from the same rounds.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatFid } from '../../shared/fid.ts';
import { type Contender, compare } from '../lib/compare.ts';
import {
  assignVolume,
  BENCH_COOKIE,
  comparedCli,
  fillVolume,
  scratchDir,
  startKelpVolume,
} from '../lib/kelp.ts';
import { type Started, startServer } from '../lib/process.ts';
import type { Row } from '../lib/table.ts';
import { writeVolume } from '../lib/volume-files.ts';
import { runWrk } from '../lib/wrk.ts';
import type { Bench, BenchContext } from '../run.ts';

const bare = fileURLToPath(new URL('../baselines/bare-http.ts', import.meta.url));
const randomPath = fileURLToPath(new URL('../lua/random-path.lua', import.meta.url));
const BLOBS = Number(process.env.KELP_BENCH_BLOBS ?? 50_000);
const BLOB_BYTES = 1024;
const MIB = 1024 * 1024;
/** Data variants the written volumes cycle through (distinct bytes, so no two neighbours are alike). */
const VARIANTS = 64;
/** More volumes than the 100-volume scale opens: the server's `--max` for written volumes. */
const MAX_VOLUMES = 128;

interface Scale {
  name: string;
  label: string;
  blobs: number;
  volumes: number;
  blobBytes: number;
}

const SCALES: Scale[] = [
  { name: '1e5', label: '10^5 x 1 KiB, one volume', blobs: 100_000, volumes: 1, blobBytes: BLOB_BYTES },
  { name: '1e6', label: '10^6 x 1 KiB, one volume', blobs: 1_000_000, volumes: 1, blobBytes: BLOB_BYTES },
  { name: '100v', label: '10^5 x 1 KiB in 100 volumes', blobs: 100_000, volumes: 100, blobBytes: BLOB_BYTES },
  { name: '1mib', label: '256 x 1 MiB, one volume', blobs: 256, volumes: 1, blobBytes: MIB },
];

interface Setup {
  kelpDir: string;
  pathsFile: string;
  /** The `.dat` size, rounded up to a MiB: the bare servers read a file this large. */
  readBytes: number;
}

/** Starts a Kelp volume server, fills it and writes the paths file; stops it again. */
async function prepare(dir: string): Promise<Setup> {
  const kelpDir = join(dir, 'kelp');
  const kelp = await startKelpVolume(kelpDir, 'never');
  try {
    await assignVolume(kelp.port, 1);
    const started = performance.now();
    const paths = await fillVolume(kelp.port, 1, BLOBS, BLOB_BYTES);
    const secs = (performance.now() - started) / 1000;
    console.error(`  filled ${BLOBS} x 1 KiB in ${secs.toFixed(1)} s (${Math.round(BLOBS / secs)} PUT/s)`);
    const pathsFile = join(dir, 'paths.txt');
    writeFileSync(pathsFile, `${paths.join('\n')}\n`);
    const datBytes = statSync(join(kelpDir, '1.dat')).size;
    return { kelpDir, pathsFile, readBytes: Math.ceil(datBytes / MIB) * MIB };
  } finally {
    await kelp.stop();
  }
}

function contenders(setup: Setup, dir: string): Contender[] {
  const bareMode = (mode: string): Contender => ({
    subject: `bare ${mode}`,
    start: () => startServer([bare, mode, dir], { env: { KELP_BENCH_READ_BYTES: String(setup.readBytes) } }),
    // The same Lua script and paths as Kelp (the bare server ignores the path), so
    // wrk, which shares the machine's cores, spends the same on either.
    load: (port) => ({
      url: `http://127.0.0.1:${port}/`,
      script: randomPath,
      env: { KELP_PATHS: setup.pathsFile },
    }),
  });
  const kelp = (subject: string, args: string[]): Contender => ({
    subject,
    start: () => startKelpVolume(setup.kelpDir, 'never', args),
    load: (port) => ({
      url: `http://127.0.0.1:${port}/`,
      script: randomPath,
      env: { KELP_PATHS: setup.pathsFile },
    }),
  });
  const other = comparedCli();
  const list = [
    bareMode('pread-sync'),
    bareMode('pread-callback'),
    kelp('kelp volume (fsync never), CRC checked', []),
    kelp('kelp volume, --metrics false', ['--metrics', 'false']),
    // What the headers a blob read must carry cost on their own: the bare pread, answered with them.
    bareMode('pread-sync-headers'),
  ];
  if (other) {
    list.push({
      ...kelp(`kelp volume at ${other.label}, same data`, []),
      start: () => startKelpVolume(setup.kelpDir, 'never', [], other.cli),
    });
  }
  return list;
}

function dropCaches(): boolean {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

/** One run per contender, each right after dropping the page cache. */
async function coldRows(list: Contender[], ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of list) {
    const server: Started = await c.start();
    try {
      if (!dropCaches()) {
        return [
          {
            bench: 'volume-read cold',
            subject: '(skipped)',
            note: 'cannot write /proc/sys/vm/drop_caches (needs root): cold cache not measured',
          },
        ];
      }
      const r = await runWrk({ ...c.load(server.port), connections: ctx.connections, durationSec: 2 });
      rows.push({
        bench: 'volume-read cold',
        subject: c.subject,
        reqPerSec: r.reqPerSec,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        note: `first 2 s after drop_caches${r.errors ? `, ${r.errors} errors` : ''}`,
      });
    } finally {
      await server.stop();
    }
  }
  const base = rows[0]?.reqPerSec;
  for (const r of rows.slice(1)) if (base && r.reqPerSec) r.ratio = r.reqPerSec / base;
  return rows;
}

function chosenScales(): Scale[] {
  const raw = process.env.KELP_BENCH_READ_SCALES;
  if (raw === undefined) return SCALES;
  const names = raw.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => n !== 'none' && !SCALES.some((s) => s.name === n));
  if (unknown.length) throw new Error(`KELP_BENCH_READ_SCALES: unknown ${unknown.join(', ')}`);
  return SCALES.filter((s) => names.includes(s.name));
}

/** Writes the scale's volumes (ids 1..volumes, blobs split evenly) and its paths file. */
async function prepareScale(dir: string, scale: Scale): Promise<Setup> {
  const kelpDir = join(dir, 'kelp');
  mkdirSync(kelpDir, { recursive: true });
  const started = performance.now();
  const variants = Array.from({ length: VARIANTS }, () => randomBytes(scale.blobBytes));
  const lastModified = Math.floor(Date.now() / 1000);
  const perVolume = Math.ceil(scale.blobs / scale.volumes);
  const paths: string[] = [];
  let datBytes = 0;
  for (let v = 1; v <= scale.volumes; v++) {
    const count = Math.min(perVolume, scale.blobs - (v - 1) * perVolume);
    await writeVolume(kelpDir, v, count, { variants, cookie: BENCH_COOKIE, lastModified });
    datBytes += statSync(join(kelpDir, `${v}.dat`)).size;
    for (let k = 1; k <= count; k++)
      paths.push(`/${formatFid({ volumeId: v, key: BigInt(k), cookie: BENCH_COOKIE })}`);
  }
  const secs = (performance.now() - started) / 1000;
  console.error(
    `  ${scale.label}: wrote ${scale.volumes} volume(s), ${Math.round(datBytes / MIB)} MiB, in ${secs.toFixed(1)} s`,
  );
  const pathsFile = join(dir, 'paths.txt');
  writeFileSync(pathsFile, `${paths.join('\n')}\n`);
  return { kelpDir, pathsFile, readBytes: Math.ceil(datBytes / MIB) * MIB };
}

/** One scale: bare server(s) over the same bytes and files, then Kelp, alternating in the same rounds. */
async function scaleRows(scale: Scale, ctx: BenchContext): Promise<Row[]> {
  const scratch = scratchDir(`read-${scale.name}`);
  try {
    const setup = await prepareScale(scratch.dir, scale);
    const bench = `volume-read ${scale.name}`;
    const load = (port: number) => ({
      url: `http://127.0.0.1:${port}/`,
      script: randomPath,
      env: { KELP_PATHS: setup.pathsFile },
    });
    const bareMode = (mode: string, subject: string): Contender => ({
      subject,
      start: () =>
        startServer([bare, mode, scratch.dir], {
          env: {
            KELP_BENCH_READ_BYTES: String(setup.readBytes),
            KELP_BENCH_READ_BLOB: String(scale.blobBytes),
            KELP_BENCH_READ_FILES: String(scale.volumes),
          },
          timeoutMs: 120_000,
        }),
      load,
    });
    const large = scale.blobBytes >= MIB;
    const list: Contender[] = large
      ? [
          bareMode('stream', 'bare read stream of the range'),
          bareMode('pread-sync', 'bare readSync of the whole MiB'),
        ]
      : [
          bareMode(
            'pread-sync',
            `bare readSync, ${scale.volumes === 1 ? 'one file' : `${scale.volumes} files`}`,
          ),
        ];
    const kelpAt = list.length;
    list.push({
      subject: `kelp volume, ${scale.label}, CRC checked`,
      start: () => startKelpVolume(setup.kelpDir, 'never', ['--max', String(MAX_VOLUMES)]),
      load,
    });
    const other = comparedCli();
    if (other) {
      list.push({
        subject: `kelp volume at ${other.label}, same data`,
        start: () => startKelpVolume(setup.kelpDir, 'never', ['--max', String(MAX_VOLUMES)], other.cli),
        load,
      });
    }
    const rows = await compare(list, { bench, ...ctx });
    const base = rows[0]!.reqPerSec ?? 0;
    for (const r of rows.slice(kelpAt)) r.ratio = (r.reqPerSec ?? 0) / base;
    const kelp = rows[kelpAt]!;
    kelp.goal = large ? '≥ 80 % of the bare stream, in MB/s' : '≥ 85 % of bare readSync';
    if (large) {
      rows[1]!.ratio = (rows[1]!.reqPerSec ?? 0) / base;
      rows[1]!.goal = 'vs the bare stream';
      for (const r of rows) {
        const mbs = ((r.reqPerSec ?? 0) * scale.blobBytes) / 1e6;
        r.note = [`${Math.round(mbs).toLocaleString('en-US')} MB/s`, r.note].filter(Boolean).join('; ');
      }
    }
    return rows;
  } finally {
    scratch.remove();
  }
}

const bench: Bench = {
  name: 'volume-read',
  description: `1 KiB random reads of ${BLOBS} blobs, then at scale (10^5, 10^6, 100 volumes, 1 MiB): kelp volume server vs bare servers`,
  async run(ctx) {
    // KELP_BENCH_BLOBS=0: only the scales.
    const rows = BLOBS > 0 ? await runDefault(ctx) : [];
    for (const scale of chosenScales()) rows.push(...(await scaleRows(scale, ctx)));
    return rows;
  },
};

/** 50,000 (KELP_BENCH_BLOBS) uploaded blobs: both bare pread servers, Kelp with and without metrics, cold. */
async function runDefault(ctx: BenchContext): Promise<Row[]> {
  const scratch = scratchDir('read');
  try {
    const setup = await prepare(scratch.dir);
    const list = contenders(setup, scratch.dir);
    const rows = await compare(list, { bench: 'volume-read', ...ctx });
    // The goal is against the fastest bare pread server, whichever it was in this run.
    const fastest = Math.max(...rows.slice(0, 2).map((r) => r.reqPerSec ?? 0));
    const [kelp, quiet] = [rows[2]!, rows[3]!];
    for (const r of rows.slice(2)) r.ratio = (r.reqPerSec ?? 0) / fastest;
    kelp.goal = '≥ 85 % of the fastest bare pread';
    quiet.goal = 'vs the fastest bare pread';
    rows[1]!.goal = 'vs pread-sync';
    rows[4]!.goal = "bare readSync with a Kelp read's 8 headers";
    // Requests per second move with whatever else runs on the machine; server CPU per request much less.
    const cost = 1 - (kelp.reqPerSec ?? 0) / (quiet.reqPerSec ?? 1);
    const cpuCost =
      kelp.cpuUsPerRequest && quiet.cpuUsPerRequest
        ? kelp.cpuUsPerRequest / quiet.cpuUsPerRequest - 1
        : undefined;
    rows.push({
      bench: 'volume-read',
      subject: 'metrics on / metrics off',
      ratio: (kelp.reqPerSec ?? 0) / (quiet.reqPerSec ?? 1),
      goal: 'metrics cost < 3 %',
      note:
        `req/s ${(cost * 100).toFixed(1)} % lower` +
        (cpuCost === undefined ? '' : `; server CPU per request ${(cpuCost * 100).toFixed(1)} % higher`),
    });
    if (process.env.KELP_BENCH_COLD !== '0') rows.push(...(await coldRows(list.slice(0, 3), ctx)));
    return rows;
  } finally {
    scratch.remove();
  }
}
export default bench;
