/** The config of an `s3` backend (s3.ts), any S3-compatible store, as `[backend.s3.<id>]`. */
import { z } from 'zod';
import { count, flag, ID_FIELD, RETRY_FIELD, text } from './config-schema.ts';
import { DEFAULT_S3_PART_SIZE } from './s3-etag.ts';

/** S3's region when none is given: S3-compatible stores mostly ignore it, the SDK needs one. */
export const DEFAULT_S3_REGION = 'us-east-1';

/** The fields of S3's API, which R2 (r2-config.ts) shares: in the order the docs list them. */
export const S3_API_FIELDS = {
  bucket: text({ description: 'bucket' }),
  /** Required by the SDK; the config loader fills in DEFAULT_S3_REGION. */
  region: text({ description: 'region', loaderDefault: DEFAULT_S3_REGION }),
  /** Any S3-compatible endpoint (`http://127.0.0.1:7480`); AWS when absent. */
  endpoint: text({
    description: 'any S3-compatible endpoint, e.g. http://127.0.0.1:7480',
    defaultText: 'AWS',
  }).optional(),
  /** From the config file or env; the SDK's default chain when absent. */
  accessKeyId: text({
    description: 'access key id (better in the env)',
    defaultText: "the AWS SDK's chain",
  }).optional(),
  secretAccessKey: text({
    description: 'secret key (better in the env or a file)',
    defaultText: 'SDK chain',
    secret: true,
  }).optional(),
  secretAccessKeyFile: text({
    description: 'file holding the secret key',
    path: true,
    secretFileOf: 'secretAccessKey',
  }).optional(),
  sessionToken: text({ description: 'session token of temporary credentials', secret: true }).optional(),
  /** Path-style URLs (`endpoint/bucket/key`), as most S3-compatible servers need. */
  forcePathStyle: flag({ description: 'endpoint/bucket/key URLs' }).default(true),
  /** The store's default when absent (Ceph accepts only classes its placement defines). */
  storageClass: text({ description: 'e.g. STANDARD_IA', defaultText: "the store's" }).optional(),
  /**
   * Smallest multipart part, and the size of each ranged GET of a download;
   * grows for large files so a file needs at most 10,000 parts (s3-etag.ts).
   */
  partSize: count({ description: 'smallest multipart part, bytes', defaultText: '16 MiB' }).default(
    DEFAULT_S3_PART_SIZE,
  ),
  /**
   * Parts of an upload, or ranges of a download, in flight at once: each is
   * one request on its own connection, so a link whose bandwidth × round trip
   * exceeds what one connection carries wants more. Memory does not grow with
   * the part size: a part streams from (or to) its range of the file through a
   * 1 MiB buffer.
   */
  uploadConcurrency: count({ description: 'parts in flight' }).default(4),
  /**
   * Attempts per upload part and per download range (with `retry`'s backoff),
   * and the SDK's attempts for the requests that open and complete a
   * multipart upload; reads use `retry`.
   */
  uploadAttempts: count({ description: 'attempts per upload request' }).default(4),
  /**
   * ETags are MD5s (true except with SSE-KMS or SSE-C). Uploads are signed
   * part by part with their SHA-256, which the store checks; on a store found
   * not to check it (decision 0024), they are verified against these ETags.
   */
  etagIsMd5: flag({ description: 'ETags are MD5s (false with SSE-KMS)' }).default(true),
  connectTimeoutMs: count({ description: 'connect timeout, ms' }).default(3_000),
  /** Socket idle time before a request is given up (and retried). */
  requestTimeoutMs: count({ description: 'request timeout, ms' }).default(30_000),
};

export const S3_CONFIG = z.object({
  type: z.literal('s3'),
  id: ID_FIELD,
  ...S3_API_FIELDS,
  retry: RETRY_FIELD,
});

export type S3BackendConfig = z.input<typeof S3_CONFIG>;
