/**
 * The seam between a volume and where its `.dat` lives (SeaweedFS's
 * `BackendStorage` / `BackendStorageFile`, docs/format.md §10): a tiered volume is the
 * same volume with another file underneath. One interface, one file per
 * backend (local.ts, s3.ts, gcs.ts), one conformance suite
 * (test/tiering/conformance.ts) that every backend passes.
 *
 * Reads are what matter: `BackendFile.readAt` is exactly one ranged request
 * (one pread, one GET with `Range`), and the size comes from the `.vif`, so a
 * read needs no metadata round trip. Errors are typed so the volume server can
 * answer without string matching: a missing object is `NotFoundError`, a
 * backend that is down or failing is `UnavailableError` (retried with backoff
 * inside the backend, see retry.ts, and surfaced as a 503), and fewer bytes than
 * the index promises is `TruncatedDataError`: never a wrong byte.
 */
import type { RetryPolicy } from './retry.ts';

export type BackendType = 'local' | 's3' | 'r2' | 'gcs';

export interface TransferOptions {
  /** Bytes moved so far and the total; called often during long transfers, last with `bytes === total`. */
  onProgress?(bytes: number, total: number): void;
  signal?: AbortSignal;
}

export interface UploadResult {
  key: string;
  size: number;
  /**
   * SHA-256 (hex) of the whole file, computed while it streamed out. Record it
   * in the `.vif`; `download` checks it on the way back.
   */
  sha256: string;
  /** What the store itself confirmed besides the size, e.g. `md5-etag` (S3), `crc32c+md5` (GCS). */
  verifiedBy: string;
  /** The object's ETag, where the store has one. */
  etag?: string;
  /** The object's modification time as the store reports it (the `.vif` records it). */
  mtime: Date;
}

export interface DownloadOptions extends TransferOptions {
  /** The `.vif`'s SHA-256: a mismatch throws `ChecksumMismatchError` and leaves nothing at `localPath`. */
  expectedSha256?: string;
}

export interface DownloadResult {
  size: number;
  sha256: string;
}

export interface ObjectStat {
  size: number;
  mtime: Date;
}

/** Request counters, for tests ("exactly one GET per read") and for status pages. */
export interface BackendStats {
  /** Every request sent to the store (each retry counts), or each file operation for `local`. */
  requests: number;
  /** Ranged reads sent: GETs of the object for S3 and GCS, preads for `local`. */
  reads: number;
  /** Bytes returned by `readAt`. */
  bytesRead: number;
}

/** One remote object opened for reading, as a volume's `.dat`. */
export interface BackendFile {
  readonly key: string;
  /** The size recorded when the object was uploaded (the `.vif`); reads past it fail without a request. */
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset`, in exactly one ranged request when the
   * backend is healthy. Past `size`, or a store that returns fewer bytes:
   * `TruncatedDataError`. A missing object: `NotFoundError`. Down: retried
   * with backoff, then `UnavailableError`.
   */
  readAt(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * Only where a read can be a plain pread (`local`): `readAt(offset,
   * into.length)` done on the calling thread, into `into`, in one attempt
   * (no retry) with the same typed errors. The volume calls it while such
   * reads are fast (the page cache; origin/volume/read-mode.ts) and `readAt`
   * otherwise, so a slow disk or mount never holds the event loop.
   */
  readAtSync?(offset: number, into: Uint8Array): void;
  /** Releases a held file handle (local); a no-op for object stores. */
  close(): Promise<void>;
}

export interface TierBackend {
  readonly type: BackendType;
  readonly id: string;
  /** `type.id`, as configs and `.vif` files name a backend (`s3.default`). */
  readonly name: string;
  readonly stats: BackendStats;
  /**
   * Copies `localPath` to `key` and verifies the stored object (size, plus a
   * checksum the store computed where it has one) before resolving. A failed or
   * aborted upload leaves no object under `key` (best effort for a crash).
   */
  upload(localPath: string, key: string, opts?: TransferOptions): Promise<UploadResult>;
  /** Copies `key` to `localPath` atomically (temp file, fsync, rename). */
  download(key: string, localPath: string, opts?: DownloadOptions): Promise<DownloadResult>;
  /** No request is made: `size` comes from the `.vif`. */
  openFile(key: string, size: number): BackendFile;
  /** `undefined` when there is no object under `key`. */
  stat(key: string, signal?: AbortSignal): Promise<ObjectStat | undefined>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** The configuration with secrets redacted: the only form of it that may be logged. */
  describe(): Record<string, unknown>;
  /**
   * Removes what transfers killed midway left in the store and can be proven
   * orphaned (a local directory's temp files), returning what it removed. Run
   * when a server opens its backends. Optional: cloud stores clean up
   * themselves (GCS expires resumable uploads; S3's incomplete multipart
   * uploads want a bucket lifecycle rule).
   */
  sweepInterrupted?(): string[];
  /** Releases clients and sockets. */
  close(): Promise<void>;
}

// ---- configuration ----

interface CommonConfig {
  /** `default` unless several backends of one type are configured. */
  id: string;
  /** Backoff for reads, stats and deletes; defaults to `READ_RETRY` (retry.ts). */
  retry?: Partial<RetryPolicy>;
}

export interface LocalBackendConfig extends CommonConfig {
  type: 'local';
  /** Directory holding the objects, created on first use. */
  path: string;
}

export interface S3BackendConfig extends CommonConfig {
  type: 's3';
  /** Any S3-compatible endpoint (`http://127.0.0.1:7480`); AWS when absent. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** From the config file or env; the SDK's default chain when absent. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Path-style URLs (`endpoint/bucket/key`), as most S3-compatible servers need. Default true. */
  forcePathStyle?: boolean;
  /** e.g. `STANDARD_IA`; the store's default when absent (Ceph accepts only classes its placement defines). */
  storageClass?: string;
  /**
   * Smallest multipart part (16 MiB by default), and the size of each ranged GET
   * of a download; grows for large files so a file needs at most 10,000 parts.
   */
  partSize?: number;
  /**
   * Parts of an upload, or ranges of a download, in flight at once (4 by
   * default): each is one request on its own connection, so a link whose
   * bandwidth × round trip exceeds what one connection carries wants more.
   * Memory does not grow with the part size: a part streams from (or to) its
   * range of the file through a 1 MiB buffer.
   */
  uploadConcurrency?: number;
  /**
   * Attempts per upload part and per download range (with `retry`'s backoff),
   * and the SDK's attempts for the requests that open and complete a
   * multipart upload; reads use `retry`.
   */
  uploadAttempts?: number;
  /** ETags are MD5s (true except with SSE-KMS or SSE-C): uploads are verified against them. Default true. */
  etagIsMd5?: boolean;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface GcsBackendConfig extends CommonConfig {
  type: 'gcs';
  bucket: string;
  projectId?: string;
  /** e.g. an emulator at `http://127.0.0.1:9199`; Google's when absent. */
  apiEndpoint?: string;
  /** Service account key file; Application Default Credentials when absent. */
  keyFile?: string;
  /** Resumable uploads (default true). */
  resumable?: boolean;
  /**
   * Send resumable uploads in chunks of this many bytes (a multiple of 256 KiB)
   * instead of one request. The Firebase emulator rejects multi-chunk uploads,
   * so the default is one request.
   */
  chunkSize?: number;
  /** Attempts per upload (the client library's own retry); reads use `retry`. */
  uploadAttempts?: number;
  requestTimeoutMs?: number;
}

/**
 * Cloudflare R2 through its S3 API (r2.ts): the S3 fields, with the endpoint
 * made from the account id and the region `auto` unless given.
 */
export interface R2BackendConfig extends Omit<S3BackendConfig, 'type' | 'region'> {
  type: 'r2';
  /** The Cloudflare account id (32 hex digits); the endpoint is made from it. */
  accountId?: string;
  /** `eu` or `fedramp` for a bucket in a jurisdiction. */
  jurisdiction?: string;
  /** `auto` (R2's only region) unless given. */
  region?: string;
}

export type BackendConfig = LocalBackendConfig | S3BackendConfig | R2BackendConfig | GcsBackendConfig;

/** The directory `local.default` uses when nothing is configured: beside the volumes. */
export const DEFAULT_LOCAL_TIER_DIR = 'tier';

const SECRET_FIELDS = new Set(['secretAccessKey', 'sessionToken']);

/** A config as it may be logged: secrets replaced, the access key id shortened. */
export function redactConfig(config: BackendConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    if (SECRET_FIELDS.has(k)) out[k] = '[redacted]';
    else if (k === 'accessKeyId' && typeof v === 'string') out[k] = `${v.slice(0, 4)}…`;
    else out[k] = v;
  }
  return out;
}

/** `type.id`, e.g. `s3.default`. */
export function backendName(config: Pick<BackendConfig, 'type' | 'id'>): string {
  return `${config.type}.${config.id}`;
}
