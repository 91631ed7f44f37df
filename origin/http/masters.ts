/**
 * A list of masters, as every client of a cluster with several masters takes
 * it (`--master a:9333,b:9333,c:9333`): any master answers lookups and status,
 * and a master that does not lead forwards assigns to the one that does, so a
 * client tries the masters in order and moves on when one is down
 * (shared/client/master-client.ts holds those rules).
 */

/** The master endpoint a volume server shutting down cleanly POSTs to (origin/master/leave.ts). */
export const LEAVE_PATH = '/cluster/leave';

/** `"a:1, b:2"` → `["a:1", "b:2"]`; `""` or undefined → `[]`. */
export function masterList(spec: string | readonly string[] | undefined): string[] {
  if (spec === undefined) return [];
  const items = typeof spec === 'string' ? spec.split(',') : spec;
  return items.map((s) => s.trim()).filter(Boolean);
}
