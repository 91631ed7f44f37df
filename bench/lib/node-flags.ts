/**
 * Extra Node flags for the servers a bench starts (e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof`), from KELP_BENCH_NODE_FLAGS, space-separated.
 */
export function benchNodeFlags(): string[] {
  return (process.env.KELP_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}
