/**
 * The ETag an S3 store computes for an upload, predicted from the MD5s a hash
 * thread computes of the file (file-hash.ts) while it is sent, so a
 * HeadObject afterwards confirms that the store received exactly what is on
 * disk. Single-request uploads get the
 * MD5 of the object; multipart uploads get MD5(MD5(part 1) ‖ … ‖ MD5(part n))
 * followed by `-n` (AWS and Ceph RGW). Some fakes (s3rver) give the whole
 * object's MD5 for multipart uploads too: also a checksum of every byte, so it
 * is accepted. ETags are MD5s only without SSE-KMS / SSE-C (`etagIsMd5`).
 */
import { createHash } from 'node:crypto';

export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;
export const S3_MAX_PARTS = 10_000;
/** Default first guess for the part size; grows for big files (see `s3PartSize`). */
export const DEFAULT_S3_PART_SIZE = 16 * 1024 * 1024;

/**
 * The part size for a file of `size` bytes: `minPartSize` (at least S3's 5 MiB),
 * doubled until the file fits in 10,000 parts.
 */
export function s3PartSize(size: number, minPartSize = DEFAULT_S3_PART_SIZE): number {
  let part = Math.max(minPartSize, S3_MIN_PART_SIZE);
  while (Math.ceil(size / part) > S3_MAX_PARTS) part *= 2;
  return part;
}

/**
 * The ETag S3 gives a multipart upload of parts with these MD5s (binary, in
 * part order): MD5 of their concatenation, `-`, the number of parts.
 */
export function multipartEtag(partMd5s: Uint8Array[]): string {
  const combined = createHash('md5');
  for (const digest of partMd5s) combined.update(digest);
  return `${combined.digest('hex')}-${partMd5s.length}`;
}

/** An ETag header value as a bare lower-case string (quotes and a weak `W/` dropped). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
}
