/**
 * Google Cloud Storage at the edge, through its XML API, which takes AWS
 * SigV4 signatures made with HMAC keys ("interoperability": an HMAC key's
 * access id and secret in place of AWS's). So the reader is the S3 one
 * (s3.ts, aws4fetch) with what GCS asks for:
 *
 *   endpoint      https://storage.googleapis.com, path-style
 *                 (`/bucket/key`: a bucket name with dots has no valid TLS
 *                 name as `bucket.storage.googleapis.com`)
 *   region        `auto` in the credential scope (GCS ignores the location
 *                 there; it exists for S3 compatibility), service `s3`,
 *                 `aws4_request`
 *   payload hash  the SHA-256 of the empty body, sent as X-Amz-Content-Sha256
 *                 (GCS takes x-amz-* headers that have an x-goog-* twin;
 *                 a GET has no body, so its real hash, not UNSIGNED-PAYLOAD)
 *
 * Ranged GETs answer 206 with Content-Range, and GETs take If-None-Match
 * against the object's ETag, as on S3. The keys are an HMAC key of a service
 * account that can only read the one bucket (docs/security.md). Tested against
 * Ceph RGW standing in for the XML endpoint (test/edge/tier.test.ts): no real
 * GCS is reachable from the test machines.
 */
import { S3Reader } from './s3.ts';

export const GCS_XML_ENDPOINT = 'https://storage.googleapis.com';
/** The location GCS's XML API expects in a SigV4 credential scope made with an HMAC key. */
export const GCS_SIGV4_REGION = 'auto';
/** SHA-256 of zero bytes, hex: the payload hash of a GET. */
export const EMPTY_PAYLOAD_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface GcsReaderConfig {
  bucket: string;
  /** The HMAC key's access id (GOOG1…) and secret: Worker secrets. */
  accessKeyId: string;
  secretAccessKey: string;
  /** Another XML endpoint (a private one, or a stand-in in tests); Google's when absent. */
  endpoint?: string;
  /** `auto` unless given. */
  region?: string;
  /** `bucket.endpoint/key` when false; default true. */
  pathStyle?: boolean;
  timeoutMs: number;
}

export function gcsReader(c: GcsReaderConfig): S3Reader {
  return new S3Reader({
    kind: 'gcs',
    endpoint: c.endpoint ?? GCS_XML_ENDPOINT,
    region: c.region ?? GCS_SIGV4_REGION,
    bucket: c.bucket,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    pathStyle: c.pathStyle !== false,
    payloadSha256: EMPTY_PAYLOAD_SHA256,
    timeoutMs: c.timeoutMs,
  });
}
