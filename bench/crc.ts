/**
 * CRC-32C per call, pure JS (`crc-32`, the shared/ default) against native
 * (`@node-rs/crc32`, installed by the origin), and the origin's size switch,
 * at sizes either side of `NATIVE_CRC_MIN_BYTES`. The three are interleaved in
 * every round so machine load hits them alike; time is the process's CPU time
 * (user + system), which other load on a shared machine moves far less than
 * wall time. Figures go in docs/decisions/0002-crc32c.md.
 *
 *   node bench/crc.ts [rounds]
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { NATIVE_CRC_MIN_BYTES, nativeCrc32cUpdate, originCrc32cUpdate } from '../origin/native-crc.ts';
import { type Crc32cUpdate, jsCrc32cUpdate } from '../shared/crc.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const SIZES = [64, 256, NATIVE_CRC_MIN_BYTES, 1024, 4096, 64 * 1024, 1024 * 1024];
/** CPU budget per (size, implementation, round): long enough to swamp timer resolution. */
const BUDGET_CPU_MS = 150;
const WARMUP_CALLS = 2_000;
const BATCH = 16;

const STEPS: [string, Crc32cUpdate][] = [
  ['js', jsCrc32cUpdate],
  ['native', nativeCrc32cUpdate],
  ['origin', originCrc32cUpdate],
];

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU µs per call of `step` over `bytes`, run for about BUDGET_CPU_MS of CPU. */
function perCall(step: Crc32cUpdate, bytes: Uint8Array): number {
  let sink = 0;
  const start = cpuMicros();
  let calls = 0;
  // Bounded by CPU budget, with a hard cap on calls as the loop's second bound.
  while (cpuMicros() - start < BUDGET_CPU_MS * 1000 && calls < 50_000_000) {
    for (let i = 0; i < BATCH; i++) sink ^= step(bytes, 0);
    calls += BATCH;
  }
  if (sink === 0.5) console.log(sink); // keeps the calls from being optimised away
  return (cpuMicros() - start) / calls;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmtUs = (us: number) => (us < 10 ? us.toFixed(2) : us.toFixed(0));

console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}, ${ROUNDS} rounds, CPU µs per call`,
);
const results = new Map<string, number[]>();
for (const size of SIZES) {
  const bytes = randomBytes(size);
  for (const [, step] of STEPS) for (let i = 0; i < WARMUP_CALLS; i++) step(bytes, 0);
}
for (let r = 0; r < ROUNDS; r++) {
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    for (const [name, step] of STEPS) {
      const key = `${size}/${name}`;
      results.set(key, [...(results.get(key) ?? []), perCall(step, bytes)]);
    }
  }
}
console.log('| size | js µs (min–max) | native µs (min–max) | origin µs | js/native | native GB/s |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
for (const size of SIZES) {
  const [js, native, origin] = STEPS.map(([name]) => results.get(`${size}/${name}`) as number[]) as [
    number[],
    number[],
    number[],
  ];
  const span = (xs: number[]) => `${fmtUs(median(xs))} (${fmtUs(Math.min(...xs))}–${fmtUs(Math.max(...xs))})`;
  console.log(
    `| ${size} B | ${span(js)} | ${span(native)} | ${fmtUs(median(origin))} | ${(median(js) / median(native)).toFixed(2)}x | ${(size / median(native) / 1000).toFixed(2)} |`,
  );
}
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
