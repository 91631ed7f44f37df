/**
 * The figures behind docs/decisions/0003-read-path.md: 1 KiB random reads of
 * a volume far larger than what one run can pull into the page cache, served
 * by a Kelp volume server whose small-needle preads are forced onto the event
 * loop (`readSync`), forced onto the thread pool (`fs.read`), or left to
 * ReadMode (origin/volume/read-mode.ts), each with the page cache warm and
 * right after dropping it (needs root). Heavy (a 2 GiB volume by default),
 * so not part of `npm run bench`. (wrk holds every path in one Lua table: its
 * own garbage collection puts about 100 ms into the p99 of every run, so only
 * p50 is shown.)
 *
 *   node bench/read-path.ts [blobs=2000000] [seconds=5]
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../origin/observability/log.ts';
import { startVolumeServer } from '../origin/volume/server.ts';
import type { Volume } from '../origin/volume/volume.ts';
import { formatFid } from '../shared/fid.ts';
import { parsePlacement } from '../shared/placement.ts';
import { parseTtl } from '../shared/ttl.ts';
import { BENCH_COOKIE } from './lib/kelp.ts';
import { median } from './lib/table.ts';
import { type LoadResult, parseWrk } from './lib/wrk.ts';

const BLOBS = Number(process.argv[2] ?? 2_000_000);
const SECONDS = Number(process.argv[3] ?? 5);
const ROUNDS = 3;
const randomPath = fileURLToPath(new URL('./lua/random-path.lua', import.meta.url));

type Mode = 'readSync' | 'fs.read' | 'adaptive';

/** Pins the volume's ReadMode (the bench reaches into the server it runs in-process). */
function force(volume: Volume, mode: Mode): void {
  const rm = volume.readMode;
  const proto = Object.getPrototypeOf(rm) as typeof rm;
  rm.pooled = mode === 'fs.read';
  rm.slowFraction = 0;
  rm.sync = mode === 'adaptive' ? proto.sync : () => mode === 'readSync';
  rm.record = mode === 'adaptive' ? proto.record : () => {};
}

function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

function wrk(url: string, paths: string): Promise<string> {
  const args = ['-t1', '-c16', `-d${SECONDS}s`, '--latency', '-s', randomPath, url];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { env: { ...process.env, KELP_PATHS: paths } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'kelp-read-path-'));
try {
  const server = await startVolumeServer({
    locations: [{ dir, maxVolumes: 1 }],
    port: 0,
    fsync: 'never',
    logger: silentLogger(),
  });
  const volume = server.store.createVolume(1, '', parsePlacement('000'), parseTtl(''));
  const data = new Uint8Array(1024);
  const started = performance.now();
  for (let i = 1; i <= BLOBS; i++) {
    data.fill(i & 0xff);
    await volume.write({ key: BigInt(i), cookie: BENCH_COOKIE, data, meta: { flags: 0 } });
  }
  await volume.syncer.flush();
  // Written in slices and not kept: millions of strings on this heap would slow the server's GC.
  const pathsFile = join(dir, 'paths.txt');
  writeFileSync(pathsFile, '');
  for (let from = 1; from <= BLOBS; from += 100_000) {
    const slice: string[] = [];
    for (let i = from; i < Math.min(from + 100_000, BLOBS + 1); i++) {
      slice.push(`/${formatFid({ volumeId: 1, key: BigInt(i), cookie: BENCH_COOKIE })}\n`);
    }
    appendFileSync(pathsFile, slice.join(''));
  }
  const gib = volume.datSize / 2 ** 30;
  console.error(
    `volume: ${BLOBS} x 1 KiB, ${gib.toFixed(2)} GiB, written in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  const url = `http://${server.address}/`;
  const rows: string[] = [];
  for (const cache of ['cold', 'warm'] as const) {
    // Warm: the whole .dat read once, so every pread is a page-cache hit.
    if (cache === 'warm')
      execFileSync('dd', [`if=${volume.path('dat')}`, 'of=/dev/null', 'bs=4M', 'status=none']);
    const runs = new Map<Mode, LoadResult[]>();
    const pooledAtEnd: boolean[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['readSync', 'fs.read', 'adaptive'] as const) {
        force(volume, mode);
        if (cache === 'cold') dropCaches();
        const r = parseWrk(await wrk(url, pathsFile));
        runs.set(mode, [...(runs.get(mode) ?? []), r]);
        if (mode === 'adaptive') pooledAtEnd.push(volume.readMode.pooled);
        console.error(`  ${cache} ${mode}: ${Math.round(r.reqPerSec)} req/s`);
      }
    }
    for (const [mode, rs] of runs) {
      const rps = median(rs.map((r) => r.reqPerSec));
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      const notes = [
        ...(mode === 'adaptive'
          ? [`on the thread pool at the end of ${pooledAtEnd.filter(Boolean).length}/${ROUNDS} runs`]
          : []),
        ...(errors ? [`${errors} errors`] : []),
      ];
      rows.push(
        `| ${cache} | ${mode} | ${Math.round(rps).toLocaleString('en-US')} | ${median(rs.map((r) => r.p50Ms)).toFixed(2)} | ${notes.join('; ')} |`,
      );
    }
  }
  console.log(
    `\n${BLOBS} x 1 KiB (${gib.toFixed(2)} GiB), c=16, ${SECONDS} s x ${ROUNDS} runs each, node ${process.version}`,
  );
  console.log('| page cache | small-needle pread | req/s (median) | p50 ms | note |\n|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  await server.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
