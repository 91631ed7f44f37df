/**
 * Sending a file to S3 as the SDK's commands, part by part straight from
 * disk (docs/decisions/0009). Each part's body is a read stream of its range
 * of the file, so memory is a stream buffer per part in flight whatever the
 * part size, and a failed part is sent again from its range rather than from
 * a copy held in memory (lib-storage buffers every part, and over http the
 * SDK then hashes each buffered part again to sign it). A file that fits in
 * one part is one PutObject.
 *
 * Parts go `concurrency` at a time, each attempt counted and bounded by the
 * retry policy (a stream body cannot be replayed by the SDK's own retries).
 * With `partSha256`, each part (or the single PutObject) is signed with the
 * SHA-256 of its bytes as `x-amz-content-sha256`, which the store checks
 * against what it received and refuses on a mismatch
 * (`XAmzContentSHA256Mismatch`, docs/decisions/0024). `verifyParts` sees every
 * part's ETag before the upload is completed (the MD5 check, for a store that
 * does not check payload hashes), so a part the store received wrong is never
 * assembled into the object.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  type StorageClass,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { ConflictError, UpstreamError } from '../../shared/errors.ts';
import { type RetryPolicy, withRetry } from './retry.ts';
import { normalizeEtag } from './s3-etag.ts';
import { isAbortError } from './transfer.ts';

/** One read of a part's range: large enough for few syscalls, small enough that parts in flight stay cheap. */
export const PART_READ_CHUNK_BYTES = 1024 * 1024;

export interface FileUpload {
  bucket: string;
  key: string;
  path: string;
  /** The file's size when the upload started: each part must read exactly its share of it. */
  total: number;
  partSize: number;
  /** Parts in flight at once. */
  concurrency: number;
  /** Attempts and backoff per part (and for a single PutObject). */
  retry: RetryPolicy;
  storageClass?: string;
  signal?: AbortSignal;
  /** Bytes read from the file for the store, as they go (a retried part counts again). */
  onBytes?(n: number): void;
  /** Maps a failure of one request (SDK error, socket) to a typed one; UnavailableError is retried. */
  mapError(err: unknown): unknown;
  /**
   * The hex SHA-256 of part `index` (0-based; the whole file for a single
   * PutObject), which the part is signed with: the store then checks it.
   * Without it, bodies go as UNSIGNED-PAYLOAD.
   */
  partSha256?(index: number): Promise<string>;
  /** Sees the part ETags (unquoted, lower-case; one for a single PutObject) before the object is completed. */
  verifyParts?(etags: (string | undefined)[]): Promise<void>;
}

/** What signPayload uses of a command's middleware stack. */
interface BuildSteps {
  add(
    step: (
      next: (args: { request: unknown }) => Promise<unknown>,
    ) => (args: { request: unknown }) => Promise<unknown>,
    options: { step: 'build'; name: string },
  ): void;
}

/**
 * Sets `x-amz-content-sha256` on the command's request, before it is signed:
 * SigV4 then signs that value instead of UNSIGNED-PAYLOAD, and the store
 * refuses a body whose SHA-256 differs from it.
 */
export function signPayload<C extends PutObjectCommand | UploadPartCommand>(
  command: C,
  sha256Hex: string | undefined,
): C {
  if (sha256Hex === undefined) return command;
  // One build step, the same for both commands (their stacks' `add` overloads do not unify).
  (command.middlewareStack as unknown as BuildSteps).add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = sha256Hex;
      return next(args);
    },
    { step: 'build', name: 'kelpPayloadSha256' },
  );
  return command;
}

export interface FileUploadResult {
  /** Whether it went as a multipart upload (its ETag then has the `-N` form). */
  multipart: boolean;
  parts: number;
}

/**
 * Sends `upload.path` to `upload.key`. `client` sends the bodies (one attempt
 * per call: the retries are ours); `control` sends the small requests that
 * open, complete and abort a multipart upload, with the SDK's own retries.
 * On failure a multipart upload is aborted (nothing stays under the key); a
 * single PutObject that failed stored nothing.
 */
export async function uploadFile(
  client: S3Client,
  control: S3Client,
  upload: FileUpload,
): Promise<FileUploadResult> {
  const { bucket, key, signal } = upload;
  const sendOpts = signal ? { abortSignal: signal } : {};
  const storage = upload.storageClass ? { StorageClass: upload.storageClass as StorageClass } : {};
  if (upload.total <= upload.partSize) {
    const sha256 = await upload.partSha256?.(0);
    const etag = await sendRange(upload, 0, upload.total, async (body) => {
      const res = await client.send(
        signPayload(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentLength: upload.total,
            ContentType: 'application/octet-stream',
            ...storage,
          }),
          sha256,
        ),
        sendOpts,
      );
      return res.ETag;
    });
    await upload.verifyParts?.([normalizeEtag(etag)]);
    return { multipart: false, parts: 1 };
  }
  const created = await control.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: 'application/octet-stream',
      ...storage,
    }),
    sendOpts,
  );
  const uploadId = created.UploadId;
  if (!uploadId) throw new UpstreamError(`${bucket}/${key}: CreateMultipartUpload returned no UploadId`);
  const count = Math.ceil(upload.total / upload.partSize);
  const etags: (string | undefined)[] = new Array(count);
  try {
    // The first failure stops the other lanes: no new parts, and the ones in flight are aborted.
    const stop = new AbortController();
    const laneUpload = { ...upload, signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal };
    let failure: { err: unknown } | undefined;
    let next = 0;
    const lane = async () => {
      // Each lane takes the next part until none is left: at most `count` iterations in all.
      while (next < count && !failure) {
        const index = next++;
        const start = index * upload.partSize;
        const length = Math.min(upload.partSize, upload.total - start);
        try {
          // The part's digest is known before it is sent (the hash thread runs ahead of the lanes).
          const sha256 = await upload.partSha256?.(index);
          etags[index] = await sendRange(laneUpload, start, length, async (body) => {
            const res = await client.send(
              signPayload(
                new UploadPartCommand({
                  Bucket: bucket,
                  Key: key,
                  UploadId: uploadId,
                  PartNumber: index + 1,
                  Body: body,
                  ContentLength: length,
                }),
                sha256,
              ),
              { abortSignal: laneUpload.signal },
            );
            return res.ETag;
          });
        } catch (err) {
          failure ??= { err };
          stop.abort(err);
        }
      }
    };
    // Every lane settles before anything else happens: no part is in flight at the abort below.
    await Promise.all(Array.from({ length: Math.max(1, Math.min(upload.concurrency, count)) }, lane));
    if (failure) throw signal?.aborted ? signal.reason : failure.err;
    signal?.throwIfAborted();
    await upload.verifyParts?.(etags.map((e) => normalizeEtag(e)));
    signal?.throwIfAborted();
    await control.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
      sendOpts,
    );
    return { multipart: true, parts: count };
  } catch (err) {
    // Not under the transfer's signal: an aborted transfer still removes its parts.
    await control
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
      .catch(() => {});
    throw err;
  }
}

/**
 * Sends bytes [start, start + length) of the file through `send`, in a fresh
 * read stream per attempt; a stream that ends short means the file shrank
 * under the upload (ConflictError, not retried).
 */
function sendRange(
  upload: FileUpload,
  start: number,
  length: number,
  send: (body: Readable) => Promise<string | undefined>,
): Promise<string | undefined> {
  const what = `${upload.bucket}/${upload.key} bytes ${start}+${length}`;
  return withRetry(
    what,
    upload.retry,
    async () => {
      upload.signal?.throwIfAborted();
      const body = Readable.from(rangeOf(upload, start, length), { objectMode: false });
      try {
        return await send(body);
      } catch (err) {
        if (isAbortError(err) && upload.signal?.aborted) throw upload.signal.reason;
        throw upload.mapError(err);
      } finally {
        body.destroy();
      }
    },
    upload.signal ? { signal: upload.signal } : {},
  );
}

async function* rangeOf(upload: FileUpload, start: number, length: number): AsyncGenerator<Buffer> {
  if (length === 0) return;
  let got = 0;
  for await (const chunk of createReadStream(upload.path, {
    start,
    end: start + length - 1,
    highWaterMark: PART_READ_CHUNK_BYTES,
  }) as AsyncIterable<Buffer>) {
    got += chunk.byteLength;
    upload.onBytes?.(chunk.byteLength);
    yield chunk;
  }
  if (got !== length) {
    throw new ConflictError(
      `${upload.path} changed size while uploading (${got} of ${length} bytes at ${start})`,
    );
  }
}
