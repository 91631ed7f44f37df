/**
 * Fetching an S3 object into a file as ranged GetObjects, `concurrency` in
 * flight, each written at its offset as it streams in (docs/decisions/0009):
 * on a long link one stream is held back by its window, several are not;
 * memory is a socket buffer per range in flight. Every range is asked with
 * `If-Match` on the ETag the caller read, so all come from one object, and
 * must answer exactly its bytes. A failed range is fetched again (bounded by
 * the retry policy) and overwrites what it had written.
 *
 * `onPrefix` is told how much of the file, from its start, is written: the
 * SHA-256 thread (file-hash.ts) reads and hashes it while later ranges are
 * still on the wire.
 */
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { TruncatedDataError, UpstreamError } from '../../shared/errors.ts';
import { parseContentRange } from '../../shared/range.ts';
import { type RetryPolicy, withRetry } from './retry.ts';
import { isAbortError } from './transfer.ts';

/** Bytes a range's file writer buffers before it holds the socket back. */
const WRITE_BUFFER_BYTES = 1024 * 1024;

export interface RangedDownload {
  bucket: string;
  key: string;
  /** The object's size and ETag, from a HeadObject just before. */
  total: number;
  etag: string | undefined;
  /** Bytes per ranged GET. */
  partSize: number;
  /** Ranges in flight at once. */
  concurrency: number;
  retry: RetryPolicy;
  signal?: AbortSignal;
  /** Bytes written, as they go (a range fetched again counts again). */
  onBytes?(n: number): void;
  /** Bytes [0, n) of the file are written. */
  onPrefix?(n: number): void;
  /** Maps a failure of one request (SDK error, socket) to a typed one; UnavailableError is retried. */
  mapError(err: unknown): unknown;
}

/**
 * Writes the object into the file open as `fd` (for writing, empty; kept open: the caller closes it);
 * resolves once every range is written.
 */
export async function downloadRanges(client: S3Client, fd: number, d: RangedDownload): Promise<void> {
  const count = Math.ceil(d.total / d.partSize);
  const stop = new AbortController();
  const signal = d.signal ? AbortSignal.any([d.signal, stop.signal]) : stop.signal;
  const done: boolean[] = new Array(count).fill(false);
  let prefix = 0;
  let failure: { err: unknown } | undefined;
  let next = 0;
  const lane = async () => {
    // Each lane takes the next range until none is left: at most `count` iterations in all.
    while (next < count && !failure) {
      const index = next++;
      const start = index * d.partSize;
      const length = Math.min(d.partSize, d.total - start);
      try {
        await withRetry(
          `${d.bucket}/${d.key} bytes ${start}+${length}`,
          d.retry,
          () => fetchRange(client, fd, d, start, length, signal),
          { signal },
        );
      } catch (err) {
        failure ??= { err };
        stop.abort(err);
        return;
      }
      done[index] = true;
      while (prefix < count && done[prefix]) prefix++;
      d.onPrefix?.(Math.min(prefix * d.partSize, d.total));
    }
  };
  // Every lane settles before the caller closes the file: no write lands after.
  await Promise.all(Array.from({ length: Math.max(1, Math.min(d.concurrency, count)) }, lane));
  if (failure) throw d.signal?.aborted ? d.signal.reason : failure.err;
}

async function fetchRange(
  client: S3Client,
  fd: number,
  d: RangedDownload,
  start: number,
  length: number,
  signal: AbortSignal,
): Promise<void> {
  signal.throwIfAborted();
  let body: Readable | undefined;
  try {
    const res = await client.send(
      new GetObjectCommand({
        Bucket: d.bucket,
        Key: d.key,
        Range: `bytes=${start}-${start + length - 1}`,
        ...(d.etag ? { IfMatch: d.etag } : {}),
      }),
      { abortSignal: signal },
    );
    body = res.Body as Readable | undefined;
    if (!body) throw new UpstreamError(`${d.key} bytes ${start}+${length}: a response without a body`);
    const range = parseContentRange(res.ContentRange);
    // A store that ignored the Range answers 200 with the whole object: only right for a single range.
    const whole = range === undefined && start === 0 && res.ContentLength === d.total && length === d.total;
    if (!whole && (range?.start !== start || range.end !== start + length - 1)) {
      throw new UpstreamError(`${d.key} bytes ${start}+${length}: the store answered ${res.ContentRange}`);
    }
    let at = start;
    // A write stream at the range's offset: writes coalesce (writev) and overlap the socket's reads.
    await pipeline(
      body,
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          if (at + chunk.byteLength > start + length) {
            throw new UpstreamError(`${d.key} bytes ${start}+${length}: more bytes than the range`);
          }
          at += chunk.byteLength;
          d.onBytes?.(chunk.byteLength);
          yield chunk;
        }
      },
      createWriteStream('', { fd, start, autoClose: false, highWaterMark: WRITE_BUFFER_BYTES }),
    );
    if (at !== start + length) {
      throw new TruncatedDataError(`${d.key} bytes ${start}+${length}: got ${at - start} bytes`);
    }
  } catch (err) {
    body?.destroy();
    if (isAbortError(err) && d.signal?.aborted) throw d.signal.reason;
    throw d.mapError(err);
  }
}
