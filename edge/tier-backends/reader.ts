/**
 * The edge's view of a tier bucket: exact ranged reads and conditional whole
 * reads of small objects, and nothing else (read-only credentials suffice).
 * One implementation per way in: the R2 binding (r2.ts), SigV4-signed fetch
 * for S3 and S3-compatible stores (s3.ts), GCS's XML API with HMAC keys
 * (gcs.ts). Counters say what each read cost, for the response's
 * `X-Kelp-Tier-Requests` and the tests.
 */
export interface TierCost {
  /** Requests sent to the bucket. */
  requests: number;
  /** Bytes received from it. */
  bytes: number;
}

export type Conditional =
  | { kind: 'changed'; etag: string; bytes: Uint8Array }
  | { kind: 'unchanged' }
  | { kind: 'missing' };

export interface TierReader {
  /** Which kind of store this is (`r2`, `s3`, `gcs`), for logs and errors. */
  readonly kind: string;
  /** The bucket it reads; a lookup naming another one is refused. */
  readonly bucket: string;
  /**
   * Exactly `length` bytes at `offset` of `key`, in one request. A missing
   * object: NotFoundError; the store down or failing: UnavailableError; fewer
   * or other bytes than asked: CorruptDataError (never passed on).
   */
  read(key: string, offset: number, length: number, cost: TierCost): Promise<Uint8Array>;
  /** The whole (small) object unless its ETag is still `etag`. */
  readIfChanged(key: string, etag: string | undefined, cost: TierCost): Promise<Conditional>;
}

/** Object keys Kelp writes: no slashes, nothing a URL would need to escape. */
export const OBJECT_KEY = /^[A-Za-z0-9_.-]{1,256}$/;
