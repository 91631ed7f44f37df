/**
 * Needle map at volume scale: memory per entry, random lookups/s and .idx
 * replay rate for 10 M entries, against the goals of the issue. A plain
 * `Map<bigint, {offset, size}>` is measured alongside as the baseline, at 1 M
 * entries to keep the run short (its cost per entry is flat, and it cannot go
 * past 2^24 entries at all).
 *
 *   node bench/needle-map.ts [entries]      (re-runs itself with --expose-gc)
 */
import { spawnSync } from 'node:child_process';
import { CompactNeedleMap, loadNeedleMapFromIdx } from '../origin/volume/needle-map.ts';
import { IDX_ENTRY_SIZE } from '../shared/idx.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}
const collect = gc as () => void;

const N = Number(process.argv[2] ?? 10_000_000);
const LOOKUPS = 2_000_000;
const BASELINE_N = 1_000_000;

// xorshift32: deterministic, allocation-free randomness.
let seed = 0x9e3779b9;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

function memNow(): number {
  collect();
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function progress(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}

const fmt = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d });
const millions = (n: number) => `${fmt(n / 1e6, 2)} M`;

/**
 * Keys as a global sequencer hands them to one volume among several
 * (increasing, gaps of 1-4), with 1% arriving late (swapped with the key
 * before), as concurrent uploads do.
 */
function makeKeys(n: number): BigUint64Array {
  const keys = new BigUint64Array(n);
  let k = 1n;
  for (let i = 0; i < n; i++) {
    k += BigInt(1 + (rand() & 3));
    keys[i] = k;
  }
  for (let i = 1; i < n; i++) {
    if (rand() % 100 === 0) {
      const t = keys[i]!;
      keys[i] = keys[i - 1]!;
      keys[i - 1] = t;
    }
  }
  return keys;
}

function lookupsPerSec(get: (k: bigint) => unknown, keys: BigUint64Array): number {
  const probes = new BigUint64Array(LOOKUPS);
  for (let i = 0; i < LOOKUPS; i++) probes[i] = keys[rand() % keys.length]!;
  let found = 0;
  const t0 = performance.now();
  for (let i = 0; i < LOOKUPS; i++) if (get(probes[i]!) !== undefined) found++;
  const ms = performance.now() - t0;
  if (found !== LOOKUPS) throw new Error(`lookup found ${found} of ${LOOKUPS}`);
  return LOOKUPS / (ms / 1000);
}

/** The baseline first, while the heap is small. */
function baseline(): { perEntry: number; lookups: number } {
  progress(`baseline: Map of ${fmt(BASELINE_N, 0)}`);
  const keys = makeKeys(BASELINE_N);
  const before = memNow();
  const m = new Map<bigint, { offset: number; size: number }>();
  for (let i = 0; i < BASELINE_N; i++) m.set(keys[i]!, { offset: i + 1, size: 1000 });
  const perEntry = (memNow() - before) / m.size;
  return { perEntry, lookups: lookupsPerSec((k) => m.get(k), keys) };
}

function compact(keys: BigUint64Array): {
  perEntry: number;
  declared: number;
  inserts: number;
  lookups: number;
} {
  const before = memNow();
  const map = new CompactNeedleMap();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    map.set(keys[i]!, i + 1, 1000 + (i & 1023));
    if ((i + 1) % 2_000_000 === 0) progress(`inserted ${fmt(i + 1, 0)}`);
  }
  const inserts = N / ((performance.now() - t0) / 1000);
  const perEntry = (memNow() - before) / map.liveCount;
  progress('random lookups');
  const lookups = lookupsPerSec((k) => map.get(k), keys);
  return { perEntry, declared: map.memoryBytes() / map.entryCount, inserts, lookups };
}

/** N entries as the volume appends them, 2% of them tombstones of earlier keys. */
function idxLoad(keys: BigUint64Array): number {
  progress('building .idx buffer');
  const idx = new Uint8Array(N * IDX_ENTRY_SIZE);
  const dv = new DataView(idx.buffer);
  for (let i = 0, p = 0; i < N; i++, p += IDX_ENTRY_SIZE) {
    const tomb = i > 0 && rand() % 50 === 0;
    dv.setBigUint64(p, tomb ? keys[rand() % i]! : keys[i]!);
    dv.setUint32(p + 8, i + 1);
    dv.setUint32(p + 12, tomb ? 0xffffffff : 1000 + (i & 1023));
  }
  progress('replaying .idx');
  const t0 = performance.now();
  const replay = loadNeedleMapFromIdx(idx);
  return replay.entries / ((performance.now() - t0) / 1000);
}

const base = baseline();
progress(`generating ${fmt(N, 0)} keys`);
const keys = makeKeys(N);
const c = compact(keys);
const load = idxLoad(keys);

const rows: string[][] = [
  [
    'bytes per live entry (heap + arrayBuffers delta)',
    fmt(c.perEntry),
    '≤ 20',
    c.perEntry <= 20 ? 'yes' : 'no',
  ],
  ['bytes per entry (memoryBytes())', fmt(c.declared), '≤ 20', c.declared <= 20 ? 'yes' : 'no'],
  ['random lookups/s (hits)', millions(c.lookups), '≥ 1 M', c.lookups >= 1e6 ? 'yes' : 'no'],
  ['.idx load entries/s', millions(load), '≥ 5 M', load >= 5e6 ? 'yes' : 'no'],
  ['inserts/s (1% out of order)', millions(c.inserts), '', ''],
  [`baseline Map<bigint,{offset,size}> bytes/entry (${fmt(BASELINE_N, 0)})`, fmt(base.perEntry), '', ''],
  [`baseline Map random lookups/s (${fmt(BASELINE_N, 0)})`, millions(base.lookups), '', ''],
];
console.log(`\nNeedle map, ${fmt(N, 0)} entries (Node ${process.version})\n`);
console.log('| metric | value | goal | met |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
