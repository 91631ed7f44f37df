/**
 * The query parameters each master endpoint takes (docs/format.md §7,
 * docs/admin.md). Any other is a 400 (http/params.ts): `?replicaton=001`
 * must not be an assign with the default placement that looks like success.
 *
 * Kept from SeaweedFS so its clients work unchanged: `pretty` on every
 * endpoint (the JSON comes indented, http/respond.ts), and on assign and
 * grow the hints Kelp has no use for (`dataSize`, `preallocate`,
 * `writableVolumeCount`, `memoryMapMaxSizeMb`), taken and ignored, and
 * `disk`, taken only for the one disk type Kelp has (assign.ts).
 */
import { assertKnownParams } from '../http/params.ts';

/** Where an assign's volume may be (its layout and node filter): what a follower passes on to the leader too. */
export const PLACEMENT_PARAMS = [
  'collection',
  'replication',
  'ttl',
  'dataCenter',
  'rack',
  'dataNode',
] as const;
const SEAWEEDFS_HINTS = ['dataSize', 'preallocate', 'writableVolumeCount', 'memoryMapMaxSizeMb', 'disk'];
const ASSIGN = ['count', ...PLACEMENT_PARAMS, ...SEAWEEDFS_HINTS];

const PARAMS: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  Object.entries({
    '/dir/assign': ASSIGN,
    '/submit': ASSIGN,
    '/dir/lookup': ['volumeId', 'fileId', 'read', 'collection'],
    '/vol/grow': ASSIGN,
    '/vol/status': [],
    '/dir/status': [],
    '/cluster/status': [],
    '/col/delete': ['collection'],
    '/vol/list': [],
    '/vol/vacuum': ['garbageThreshold', 'collection', 'volumeId', 'volume', 'dryRun'],
    '/vol/balance': ['collection', 'dryRun'],
    '/vol/fix_replication': ['dryRun'],
    '/vol/move': ['volumeId', 'volume', 'source', 'target'],
    '/vol/mark': ['volumeId', 'volume', 'state'],
  }).map(([path, names]) => [path, new Set([...names, 'pretty'])]),
);

/**
 * Refuses a query parameter the endpoint does not take. Endpoints outside the
 * table (the status page, `GET /<fid>` redirects, which pass their query on
 * to the volume server, and the volume servers' own calls) are not checked here.
 */
export function assertMasterParams(pathname: string, query: URLSearchParams | null): void {
  if (query === null) return;
  const known = PARAMS.get(pathname);
  if (known !== undefined) assertKnownParams(query, known);
}
