/**
 * A load loop in the bench process itself, for flows wrk cannot make: one
 * "request" that is several HTTP calls to different ports (assign at the
 * master, then the upload to the volume server it named). Baseline and subject
 * of a comparison are driven by the same loop, so the client's own cost is in
 * both.
 */
import type { LoadResult } from './wrk.ts';

/** Most steps one worker makes in one run: a bound besides the duration. */
const MAX_STEPS_PER_WORKER = 10_000_000;

/** `connections` workers repeat `step` for `durationSec`; a step that throws or returns false is an error. */
export async function drive(
  step: () => Promise<boolean>,
  connections: number,
  durationSec: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationSec * 1000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      for (let i = 0; i < MAX_STEPS_PER_WORKER && performance.now() < deadline; i++) {
        const t0 = performance.now();
        const ok = await step().catch(() => false);
        if (ok) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  const elapsedSec = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return {
    reqPerSec: latencies.length / elapsedSec,
    p50Ms: pct(50),
    p99Ms: pct(99),
    requests: latencies.length,
    errors,
  };
}
