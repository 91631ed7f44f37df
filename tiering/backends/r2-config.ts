/**
 * The config of an `r2` backend (r2.ts), Cloudflare R2 through its S3 API, as
 * `[backend.r2.<id>]`: S3's fields (s3-config.ts) but the session token and
 * `etagIsMd5` (R2's ETags are MD5s), with the endpoint made from the account
 * id and the region `auto` unless given.
 */
import { z } from 'zod';
import { ID_FIELD, RETRY_FIELD, text } from './config-schema.ts';
import { S3_API_FIELDS as S3 } from './s3-config.ts';

/** R2 only knows the region `auto`; every SDK request is signed for it. */
export const R2_REGION = 'auto';

export const R2_CONFIG = z
  .object({
    type: z.literal('r2'),
    id: ID_FIELD,
    bucket: S3.bucket,
    /** The Cloudflare account id (32 hex digits); the endpoint is made from it. */
    accountId: text({
      description: 'Cloudflare account id (the endpoint is made from it)',
      defaultText: '(required without endpoint)',
    }).optional(),
    /** `eu` or `fedramp` for a bucket in a jurisdiction. */
    jurisdiction: text({ description: 'eu or fedramp, for a bucket in a jurisdiction' }).optional(),
    endpoint: text({
      description: "R2's S3 endpoint, or any S3 server standing in for it",
      defaultText: 'https://<accountId>.r2.cloudflarestorage.com',
    }).optional(),
    region: text({ description: 'region' }).default(R2_REGION),
    accessKeyId: text({ description: 'R2 API token access key id (better in the env)' }).optional(),
    secretAccessKey: text({
      description: 'R2 API token secret (better in the env or a file)',
      secret: true,
    }).optional(),
    secretAccessKeyFile: S3.secretAccessKeyFile,
    forcePathStyle: S3.forcePathStyle,
    storageClass: text({ description: 'STANDARD or STANDARD_IA', defaultText: 'STANDARD' }).optional(),
    partSize: S3.partSize.meta({
      description: 'multipart part, bytes (all parts equal)',
      defaultText: '16 MiB',
    }),
    uploadConcurrency: S3.uploadConcurrency,
    uploadAttempts: S3.uploadAttempts,
    connectTimeoutMs: S3.connectTimeoutMs,
    requestTimeoutMs: S3.requestTimeoutMs,
    retry: RETRY_FIELD,
  })
  .refine((c) => c.endpoint !== undefined || c.accountId !== undefined, {
    message: 'is required without an endpoint',
    path: ['accountId'],
  });

export type R2BackendConfig = z.input<typeof R2_CONFIG>;
