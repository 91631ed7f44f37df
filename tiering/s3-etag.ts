/**
 * The ETag an S3 store computes for an upload, predicted locally while the
 * bytes stream out, so a HeadObject afterwards confirms that the store
 * received exactly what was read from disk. Single-request uploads get the
 * MD5 of the object; multipart uploads get MD5(MD5(part 1) ‖ … ‖ MD5(part n))
 * followed by `-n` (AWS and Ceph RGW). Some fakes (s3rver) give the whole
 * object's MD5 for multipart uploads too: also a checksum of every byte, so it
 * is accepted. ETags are MD5s only without SSE-KMS / SSE-C (`etagIsMd5`).
 */
import { createHash, type Hash } from 'node:crypto';

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
 * Feeds on the upload stream. lib-storage cuts a stream into parts of exactly
 * `partSize` bytes, the last one shorter, and sends a single PutObject when
 * the whole file fits in one part; this follows the same boundaries.
 */
export class S3EtagHasher {
  readonly #partSize: number;
  readonly #whole = createHash('md5');
  readonly #partDigests: Buffer[] = [];
  #part: Hash = createHash('md5');
  #inPart = 0;

  constructor(partSize: number) {
    this.#partSize = partSize;
  }

  update(chunk: Uint8Array): void {
    this.#whole.update(chunk);
    let at = 0;
    while (at < chunk.byteLength) {
      if (this.#inPart === this.#partSize) {
        this.#partDigests.push(this.#part.digest());
        this.#part = createHash('md5');
        this.#inPart = 0;
      }
      const take = Math.min(chunk.byteLength - at, this.#partSize - this.#inPart);
      this.#part.update(chunk.subarray(at, at + take));
      this.#inPart += take;
      at += take;
    }
  }

  /** The ETags (unquoted, lower-case) a store may report: the S3 form first, then the whole-object MD5. */
  digest(): { s3: string; wholeMd5: string } {
    const parts = [...this.#partDigests, this.#part.digest()];
    const wholeMd5 = this.#whole.digest('hex');
    if (parts.length === 1) return { s3: wholeMd5, wholeMd5 };
    const combined = createHash('md5').update(Buffer.concat(parts)).digest('hex');
    return { s3: `${combined}-${parts.length}`, wholeMd5 };
  }
}

/** An ETag header value as a bare lower-case string (quotes and a weak `W/` dropped). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
}
