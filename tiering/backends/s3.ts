/**
 * S3 and S3-compatible stores (AWS, Ceph RGW, …) through @aws-sdk/client-s3,
 * except on the hot read path (docs/decisions/0009-tier-read-path.md).
 *
 * A read is one SigV4-signed GET with `Range: bytes=off-(off+len-1)`, like
 * SeaweedFS's S3 backend, sent by s3-get.ts over a keep-alive agent with the
 * SDK client's own signer and endpoint rules but not its per-request
 * middleware (a quarter of the CPU). Uploads (s3-upload.ts) are the SDK's
 * PutObject or multipart commands with parts streamed from their file ranges,
 * each signed with its SHA-256 where the store checks it (decision 0024),
 * else checked against the ETag predicted from MD5s (s3-etag.ts); digests come
 * from hash threads reading the file alongside (file-hash.ts). HeadObject
 * then checks the size.
 * Downloads (s3-download.ts) are parallel ranged GetObjects written at their
 * offsets, the SHA-256 following them.
 *
 * Two clients: `client` runs with `maxAttempts: 1`, so retry.ts is the only
 * retry loop for reads and for upload parts (bounded, every attempt counted;
 * a stream body cannot be replayed by the SDK anyway), while the small
 * requests that open, complete and abort a multipart upload keep the SDK's
 * own retries. The SDK's flexible checksums are off (`WHEN_REQUIRED`): Ceph 16
 * (Debian bookworm's) accepts a CRC32C but never stores or returns it, other
 * S3-compatible servers reject the SDK's newer encodings, and SigV4's signed
 * payload hash (or the MD5 ETag check) gives a check of every byte on all of
 * them.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
  ChecksumMismatchError,
  KelpError,
  NotFoundError,
  TruncatedDataError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import {
  type BackendFile,
  type BackendStats,
  backendName,
  DescribedBackend,
  type DownloadOptions,
  type DownloadResult,
  type ObjectStat,
  type S3BackendConfig,
  type TierBackend,
  type TransferOptions,
  type UploadResult,
} from './backend.ts';
import { configDefaults } from './config-schema.ts';
import { FileHasher } from './file-hash.ts';
import { type RetryPolicy, retryPolicy, withRetry } from './retry.ts';
import { S3_CONFIG } from './s3-config.ts';
import { downloadRanges } from './s3-download.ts';
import { multipartEtag, normalizeEtag, s3PartSize } from './s3-etag.ts';
import { S3RangeGetter } from './s3-get.ts';
import { signPayload, uploadFile } from './s3-upload.ts';
import { checkRead, checkSha256, isAbortError, isNetworkError, replaceAtomically } from './transfer.ts';

/** What a config leaves out (s3-config.ts declares them). */
const DEFAULTS = configDefaults(S3_CONFIG);

/** Errors a store answers a body that is not the signed SHA-256 with (AWS, Ceph RGW, MinIO; BadDigest: others). */
const PAYLOAD_MISMATCH_NAMES = new Set(['XAmzContentSHA256Mismatch', 'BadDigest']);
/** The payload-check probe: its key is the upload's plus this (unique as the upload's is, and in its prefix). */
const PAYLOAD_PROBE_SUFFIX = '.payload-check';
const PAYLOAD_PROBE_BODY = 'kelp: does this store check x-amz-content-sha256?';
/** Signed as the probe's payload hash: the SHA-256 of other bytes, so a store that checks refuses the probe. */
const PAYLOAD_PROBE_WRONG_SHA256 = createHash('sha256').update(`not ${PAYLOAD_PROBE_BODY}`).digest('hex');
const UNAVAILABLE_NAMES = new Set(['SlowDown', 'ServiceUnavailable', 'RequestTimeout', 'InternalError']);

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/** An SDK failure as a KelpError; bugs (no status, not a network failure) pass through untouched. */
export function mapS3Error(err: unknown, what: string): unknown {
  if (err instanceof KelpError || isAbortError(err)) return err;
  const { name = '', $metadata } = (err ?? {}) as SdkError;
  const status = $metadata?.httpStatusCode;
  const options = { cause: err };
  if (name === 'NoSuchBucket') return new UpstreamError(`${what}: no such bucket`, options);
  if (PAYLOAD_MISMATCH_NAMES.has(name)) {
    return new ChecksumMismatchError(
      `${what}: the store received other bytes than were signed (${name})`,
      options,
    );
  }
  if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') {
    return new NotFoundError(`${what}: no such object`, options);
  }
  if (status === 416 || name === 'InvalidRange') {
    return new TruncatedDataError(`${what}: range past the object's end`, options);
  }
  if (
    (status !== undefined && (status >= 500 || status === 429 || status === 408)) ||
    UNAVAILABLE_NAMES.has(name)
  ) {
    return new UnavailableError(`${what}: ${name || `HTTP ${status}`}`, undefined, options);
  }
  if (isNetworkError(err)) {
    const code = (err as { code?: string }).code ?? name;
    return new UnavailableError(`${what}: ${code}`, undefined, options);
  }
  if (status !== undefined) return new UpstreamError(`${what}: ${name || `HTTP ${status}`}`, options);
  return err;
}

function countRequests(client: S3Client, stats: BackendStats): void {
  // Inside the retry middleware, so every attempt that reaches the wire counts.
  client.middlewareStack.add(
    (next) => async (args) => {
      const method = (args.request as { method?: string } | undefined)?.method;
      stats.requests++;
      if (method === 'GET') stats.reads++;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'kelpRequestCounter' },
  );
}

export class S3Backend extends DescribedBackend implements TierBackend {
  readonly type = 's3';
  readonly id: string;
  readonly name: string;
  readonly bucket: string;
  readonly stats: BackendStats = { requests: 0, reads: 0, bytesRead: 0 };
  readonly #config: S3BackendConfig;
  readonly #retry: RetryPolicy;
  /** Per part of an upload or range of a download: the read backoff, `uploadAttempts` attempts. */
  readonly #transferRetry: RetryPolicy;
  /** `maxAttempts: 1`: retry.ts owns read retries. */
  readonly client: S3Client;
  /** Ranged reads (S3File): signed by `client`'s signer, sent without its middleware (s3-get.ts). */
  readonly getter: S3RangeGetter;
  readonly #uploadClient: S3Client;
  /** Whether the store checks `x-amz-content-sha256`, once asked (#storeChecksPayloads). */
  #payloadCheck: Promise<boolean> | undefined;

  constructor(config: S3BackendConfig) {
    super(config);
    this.#config = { ...config };
    this.id = config.id;
    this.name = backendName(config);
    this.bucket = config.bucket;
    this.#retry = retryPolicy(config.retry);
    this.#transferRetry = { ...this.#retry, attempts: config.uploadAttempts ?? DEFAULTS.uploadAttempts };
    const base: S3ClientConfig = {
      region: config.region,
      forcePathStyle: config.forcePathStyle ?? DEFAULTS.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        // An idle socket fails the request (a TimeoutError, retried as unavailable). The SDK's `requestTimeout`
        // bounds a whole request instead (too short for a large part on a slow link), and without
        // `throwOnRequestTimeout` only logs a warning: a store that stops answering held a transfer forever.
        socketTimeout: config.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      },
    };
    if (config.endpoint) base.endpoint = config.endpoint;
    if (config.accessKeyId && config.secretAccessKey) {
      base.credentials = {
        accessKeyId: config.accessKeyId,
        secretAccessKey: config.secretAccessKey,
        ...(config.sessionToken ? { sessionToken: config.sessionToken } : {}),
      };
    }
    this.client = new S3Client({ ...base, maxAttempts: 1 });
    this.#uploadClient = new S3Client({
      ...base,
      maxAttempts: config.uploadAttempts ?? DEFAULTS.uploadAttempts,
    });
    this.getter = new S3RangeGetter(this.client, config.endpoint, {
      bucket: config.bucket,
      connectTimeoutMs: config.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    });
    countRequests(this.client, this.stats);
    countRequests(this.#uploadClient, this.stats);
  }

  async upload(localPath: string, key: string, opts: TransferOptions = {}): Promise<UploadResult> {
    const what = `${this.name} upload ${key}`;
    const total = (await stat(localPath)).size;
    const partSize = s3PartSize(total, this.#config.partSize ?? DEFAULTS.partSize);
    const multipart = total > partSize;
    // Where the store checks each part's SHA-256 (decision 0024), one thread reads the file alongside the
    // upload and hashes it once for the `.vif` and once per part, and each part is signed with its digest.
    // Elsewhere the store's ETags are checked against MD5s a second thread computes: per part when
    // multipart, and then only per part (the object's ETag is the MD5 of the parts' MD5s; a whole-file
    // MD5 would double the slowest hash of the upload for nothing).
    const payloadChecked = await this.#storeChecksPayloads(key);
    const sha = new FileHasher(localPath, {
      algorithm: 'sha256',
      total,
      ...(payloadChecked ? { partSize, streamParts: true } : {}),
    });
    const md5 =
      !payloadChecked && (this.#config.etagIsMd5 ?? DEFAULTS.etagIsMd5)
        ? new FileHasher(localPath, {
            algorithm: 'md5',
            total,
            ...(multipart ? { partSize, partsOnly: true } : {}),
          })
        : undefined;
    let sent = 0;
    let reported = 0;
    const onAbort = () => {
      sha.cancel();
      md5?.cancel();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const hashed = async <T>(digest: Promise<T>): Promise<T> => {
      try {
        return await digest;
      } catch (err) {
        opts.signal?.throwIfAborted();
        throw err;
      }
    };
    try {
      opts.signal?.throwIfAborted();
      await uploadFile(this.client, this.#uploadClient, {
        bucket: this.bucket,
        key,
        path: localPath,
        total,
        partSize,
        concurrency: this.#config.uploadConcurrency ?? DEFAULTS.uploadConcurrency,
        retry: this.#transferRetry,
        ...(this.#config.storageClass ? { storageClass: this.#config.storageClass } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        mapError: (err) => mapS3Error(err, what),
        onBytes: (n) => {
          sent += n;
          const bytes = Math.min(sent, total);
          if (bytes <= reported) return;
          reported = bytes;
          opts.onProgress?.(bytes, total);
        },
        ...(payloadChecked
          ? { partSha256: async (index: number) => (await hashed(sha.part(index))).toString('hex') }
          : {}),
        verifyParts: async (etags) => {
          if (!md5) return;
          const { digest, parts } = await hashed(md5.result());
          const sentMd5 = multipart ? parts.map((p) => p.toString('hex')) : [digest];
          etags.forEach((etag, i) => {
            if (etag !== undefined && etag !== sentMd5[i]) {
              throw new ChecksumMismatchError(
                `${what}: part ${i + 1} stored with ETag ${etag}, sent MD5 ${sentMd5[i]}`,
              );
            }
          });
        },
      });
      opts.signal?.throwIfAborted();
      const head = await this.#head(key, what, opts.signal);
      if (!head) throw new UpstreamError(`${what}: the object is missing right after its upload`);
      if (head.ContentLength !== total) {
        throw new ChecksumMismatchError(`${what}: stored ${head.ContentLength} bytes, sent ${total}`);
      }
      const stored = normalizeEtag(head.ETag);
      let verifiedBy = payloadChecked ? 'sha256-payload' : 'size';
      if (md5) {
        const { digest, parts } = await hashed(md5.result());
        const expected = multipart ? multipartEtag(parts) : digest;
        // Some S3-compatible servers (s3rver) give a multipart object the whole file's MD5: also a checksum
        // of every byte, computed (one more read of the file) only when the store answers in that form.
        const wholeMd5 =
          stored !== expected && multipart && stored !== undefined && !stored.includes('-')
            ? (await hashed(new FileHasher(localPath, { algorithm: 'md5', total }).result())).digest
            : undefined;
        if (stored !== expected && stored !== wholeMd5) {
          throw new ChecksumMismatchError(`${what}: ETag ${stored} does not match ${expected}`);
        }
        verifiedBy = 'md5-etag';
      }
      const { digest: sha256 } = await hashed(sha.result());
      opts.onProgress?.(total, total);
      return {
        key,
        size: total,
        sha256,
        verifiedBy,
        ...(stored ? { etag: stored } : {}),
        mtime: head.LastModified ?? new Date(),
      };
    } catch (err) {
      // A failed multipart upload was aborted, but a single PutObject or a completed upload may have left
      // an object that was never verified: delete whatever is under the (fresh, unique) key.
      await this.delete(key).catch(() => {});
      throw mapS3Error(err, what);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      sha.cancel();
      md5?.cancel();
    }
  }

  /**
   * Whether the store refuses a body whose SHA-256 is not the signed
   * `x-amz-content-sha256` (AWS, Ceph RGW and MinIO do; s3rver, for one,
   * does not). Asked once per backend, the first time it uploads: a small
   * PutObject beside the upload's key, signed with the digest of other
   * bytes. Refused as a mismatch: the store checks. Stored: it does not (the
   * object is deleted, and uploads fall back to the MD5 ETags). Any other
   * answer settles nothing: this upload falls back, the next one asks again.
   */
  #storeChecksPayloads(key: string): Promise<boolean> {
    // Not under the upload's signal: uploads started meanwhile wait on the same answer.
    this.#payloadCheck ??= this.#probePayloadCheck(`${key}${PAYLOAD_PROBE_SUFFIX}`).catch(() => {
      this.#payloadCheck = undefined;
      // Not this upload's failure: it goes on with the MD5 check, and says so in `verifiedBy`.
      return false;
    });
    return this.#payloadCheck;
  }

  async #probePayloadCheck(key: string): Promise<boolean> {
    const body = Buffer.from(PAYLOAD_PROBE_BODY);
    try {
      await this.client.send(
        signPayload(
          new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length }),
          PAYLOAD_PROBE_WRONG_SHA256,
        ),
      );
    } catch (err) {
      if (PAYLOAD_MISMATCH_NAMES.has((err as SdkError | undefined)?.name ?? '')) return true;
      throw err;
    }
    await this.delete(key);
    return false;
  }

  async #head(key: string, what: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | undefined> {
    return withRetry(
      what,
      this.#retry,
      async () => {
        try {
          return await this.client.send(
            new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
            signal ? { abortSignal: signal } : {},
          );
        } catch (err) {
          const mapped = mapS3Error(err, what);
          if (mapped instanceof NotFoundError) return undefined;
          throw mapped;
        }
      },
      signal ? { signal } : {},
    );
  }

  async download(key: string, localPath: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
    const what = `${this.name} download ${key}`;
    const head = await this.#head(key, what, opts.signal);
    if (!head) throw new NotFoundError(`${what}: no such object`);
    const total = head.ContentLength ?? 0;
    let written = 0;
    let reported = 0;
    try {
      return await replaceAtomically(localPath, async (tmp) => {
        const fh = await open(tmp, 'wx');
        // The SHA-256 follows the ranges as they land (file-hash.ts): what is checked is what was written.
        const sha = new FileHasher(tmp, { algorithm: 'sha256', total, available: 0 });
        try {
          await downloadRanges(this.client, fh.fd, {
            bucket: this.bucket,
            key,
            total,
            etag: head.ETag,
            partSize: s3PartSize(total, this.#config.partSize ?? DEFAULTS.partSize),
            concurrency: this.#config.uploadConcurrency ?? DEFAULTS.uploadConcurrency,
            retry: this.#transferRetry,
            ...(opts.signal ? { signal: opts.signal } : {}),
            mapError: (err) => mapS3Error(err, what),
            onBytes: (n) => {
              written += n;
              const bytes = Math.min(written, total);
              if (bytes <= reported) return;
              reported = bytes;
              opts.onProgress?.(bytes, total);
            },
            onPrefix: (n) => sha.advance(n),
          });
          await fh.sync();
        } catch (err) {
          sha.cancel();
          throw err;
        } finally {
          await fh.close();
        }
        const { digest } = await sha.result();
        checkSha256(localPath, digest, opts);
        opts.onProgress?.(total, total);
        return { size: total, sha256: digest };
      });
    } catch (err) {
      throw mapS3Error(err, what);
    }
  }

  openFile(key: string, size: number): BackendFile {
    return new S3File(this, key, size, this.#retry);
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectStat | undefined> {
    const head = await this.#head(key, `${this.name} stat ${key}`, signal);
    if (!head) return undefined;
    return { size: head.ContentLength ?? 0, mtime: head.LastModified ?? new Date(0) };
  }

  async delete(key: string): Promise<void> {
    const what = `${this.name} delete ${key}`;
    await withRetry(what, this.#retry, async () => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      } catch (err) {
        const mapped = mapS3Error(err, what);
        if (!(mapped instanceof NotFoundError)) throw mapped;
      }
    });
  }

  async close(): Promise<void> {
    this.getter.close();
    this.client.destroy();
    this.#uploadClient.destroy();
  }
}

class S3File implements BackendFile {
  readonly key: string;
  readonly size: number;
  readonly #backend: S3Backend;
  readonly #retry: RetryPolicy;

  constructor(backend: S3Backend, key: string, size: number, retry: RetryPolicy) {
    this.#backend = backend;
    this.key = key;
    this.size = size;
    this.#retry = retry;
  }

  async readAt(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    if (!checkRead(this.key, this.size, offset, length)) return new Uint8Array(0);
    const backend = this.#backend;
    const what = `${backend.name} read ${this.key} @${offset}+${length}`;
    return withRetry(
      what,
      this.#retry,
      async () => {
        backend.stats.requests++;
        backend.stats.reads++;
        try {
          const bytes = await backend.getter.get(this.key, offset, length, signal);
          backend.stats.bytesRead += length;
          return bytes;
        } catch (err) {
          throw mapS3Error(err, what);
        }
      },
      signal ? { signal } : {},
    );
  }

  async close(): Promise<void> {}
}
