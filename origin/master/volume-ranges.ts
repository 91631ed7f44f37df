/**
 * A set of volume ids as sorted, disjoint, non-adjacent inclusive ranges
 * (`[[1, 4], [9, 9]]` is 1-4 and 9): how the master stores the ids of the
 * volumes it deleted (deleted-volumes.ts). Volume ids are handed out in order,
 * so a collection's volumes are mostly runs of neighbours and a cluster's
 * deletions stay a short list; the list is still bounded (MAX_DELETED_RANGES),
 * its lowest ranges, the oldest deletions, dropped first.
 */

/** One inclusive range of volume ids, `[first, last]`. */
export type VolumeRange = readonly [first: number, last: number];
/** Sorted by `first`, disjoint and not adjacent (merged): one canonical form per set. */
export type VolumeRanges = readonly VolumeRange[];

/**
 * Most ranges kept: about 20 bytes each in JSON, so at most ~200 kB in the
 * state file or the etcd key (etcd's default value limit is 1.5 MiB). Past it
 * the lowest ranges go: those volumes answer "not found" again instead of
 * "deleted", as they did before deletions were remembered.
 */
export const MAX_DELETED_RANGES = 10_000;

/** Whether `id` is in the set: a binary search, O(log ranges). */
export function hasVolumeId(ranges: VolumeRanges, id: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const [first, last] = ranges[mid]!;
    if (id < first) hi = mid - 1;
    else if (id > last) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The set plus `ids`, in canonical form, bounded to `max` ranges (the lowest dropped first). */
export function addVolumeIds(
  ranges: VolumeRanges,
  ids: Iterable<number>,
  max = MAX_DELETED_RANGES,
): VolumeRanges {
  const added: VolumeRange[] = [...ids].map((id) => [id, id]);
  if (added.length === 0) return ranges;
  return normalize([...ranges, ...added], max);
}

/** Both sets in one, in canonical form, bounded to `max` ranges (the lowest dropped first). */
export function unionVolumeRanges(a: VolumeRanges, b: VolumeRanges, max = MAX_DELETED_RANGES): VolumeRanges {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  return normalize([...a, ...b], max);
}

/** Sorted and merged (overlapping or adjacent ranges become one), then bounded to `max`. */
function normalize(ranges: VolumeRange[], max: number): VolumeRanges {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [first, last] of sorted) {
    const prev = out[out.length - 1];
    if (prev && first <= prev[1] + 1) prev[1] = Math.max(prev[1], last);
    else out.push([first, last]);
  }
  return out.length > max ? out.slice(out.length - max) : out;
}

/**
 * The set as stored (`[[first, last], ...]`), checked: throws (not a
 * KelpError: the caller says where it came from) on anything but ranges of
 * volume ids. Put in canonical form and bounded, so a list written by hand, or
 * by a build with a larger bound, still loads.
 */
export function parseVolumeRanges(raw: unknown, max = MAX_DELETED_RANGES): VolumeRanges {
  if (!Array.isArray(raw)) throw new Error('volume ranges must be an array');
  const ranges: VolumeRange[] = raw.map((r: unknown) => {
    if (!Array.isArray(r) || r.length !== 2) throw new Error('a volume range is [first, last]');
    const [first, last] = r as unknown[];
    if (!isVolumeId(first) || !isVolumeId(last) || first > last)
      throw new Error(`bad volume range ${JSON.stringify(r)}`);
    return [first, last];
  });
  return normalize(ranges, max);
}

function isVolumeId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
}
