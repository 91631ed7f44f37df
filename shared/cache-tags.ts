/**
 * Cache tags of the edge's stored copies, written by the Worker (Cache-Tag on
 * each put) and purged by volume servers through Cloudflare's purge-by-tag API,
 * so both sides must spell them alike. Cache-Tag is a comma-separated list, so
 * the fid's comma becomes a dash.
 */
import { formatFid, parseFid } from './fid.ts';

/** Every copy of one file: the original and all its variants. */
export function fileTag(fid: string): string {
  return `kelp-f-${formatFid(parseFid(fid)).replace(',', '-')}`;
}

/** Every copy of every file of a volume. */
export function volumeTag(volumeId: number): string {
  return `kelp-v-${volumeId}`;
}
