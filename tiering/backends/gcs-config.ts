/** The config of a `gcs` backend (gcs.ts), Google Cloud Storage, as `[backend.gcs.<id>]`. */
import { z } from 'zod';
import { count, flag, ID_FIELD, RETRY_FIELD, text } from './config-schema.ts';

export const GCS_CONFIG = z.object({
  type: z.literal('gcs'),
  id: ID_FIELD,
  bucket: text({ description: 'bucket' }),
  projectId: text({ description: 'project' }).optional(),
  /** e.g. an emulator at `http://127.0.0.1:9199`; Google's when absent. */
  apiEndpoint: text({
    description: 'e.g. an emulator, http://127.0.0.1:9199',
    defaultText: "Google's",
  }).optional(),
  /** Service account key file; Application Default Credentials when absent. */
  keyFile: text({
    description: 'service account key file',
    defaultText: 'Application Default Credentials',
    path: true,
  }).optional(),
  resumable: flag({ description: 'resumable uploads' }).default(true),
  /**
   * Send resumable uploads in chunks of this many bytes (a multiple of 256 KiB)
   * instead of one request. The Firebase emulator rejects multi-chunk uploads,
   * so the default is one request.
   */
  chunkSize: count({
    description: 'resumable chunk, a multiple of 256 KiB',
    defaultText: 'one request',
  }).optional(),
  /** Attempts per upload (the client library's own retry); reads use `retry`. */
  uploadAttempts: count({ description: 'attempts per upload' }).default(4),
  /** Per request; a read that takes longer is abandoned and retried. */
  requestTimeoutMs: count({ description: 'request timeout, ms' }).default(30_000),
  retry: RETRY_FIELD,
});

export type GcsBackendConfig = z.input<typeof GCS_CONFIG>;
