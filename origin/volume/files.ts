import { join } from 'node:path';
import { parseCollection } from '../../shared/collection.ts';

/** `<collection>_<vid>` or `<vid>` (docs/format.md §2): the stem of a volume's .dat/.idx/.vif files. */
export function volumeStem(collection: string, volumeId: number): string {
  // Checked here too, where the name becomes a path: nothing path-like ever reaches the disk.
  return parseCollection(collection) ? `${collection}_${volumeId}` : String(volumeId);
}

export function volumePath(dir: string, collection: string, volumeId: number, ext: string): string {
  return join(dir, `${volumeStem(collection, volumeId)}.${ext}`);
}

/**
 * Parses a `.dat` (or, for a volume tiered to the cloud, `.vif`) file name back
 * into (collection, volume id); null for anything else.
 */
export function parseVolumeFileName(
  name: string,
): { collection: string; volumeId: number; ext: 'dat' | 'vif' } | null {
  const m = /^(?:(.+)_)?(\d{1,10})\.(dat|vif)$/.exec(name);
  if (!m) return null;
  const volumeId = Number(m[2]);
  if (volumeId > 0xffffffff) return null;
  return { collection: m[1] ?? '', volumeId, ext: m[3] as 'dat' | 'vif' };
}
