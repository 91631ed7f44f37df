/**
 * Google Cloud Storage through @google-cloud/storage. A read is one GET of the
 * object's media with a Range header (`createReadStream({start, end})`).
 * Uploads are resumable by default and sent in one request unless
 * `chunkSize` is set (the Firebase emulator rejects multi-chunk uploads);
 * the stored object is verified against the CRC-32C and MD5 computed here
 * while the bytes streamed, compared with the `crc32c` and `md5Hash` GCS
 * computed on its side.
 *
 * Two Storage clients: reads run with the library's retries off so retry.ts
 * is the only (bounded, counted) retry loop; uploads keep the library's own.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Bucket, type FileMetadata, Storage, type StorageOptions } from '@google-cloud/storage';
import { Crc32cHasher } from '../../shared/crc.ts';
import {
  ChecksumMismatchError,
  ConflictError,
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
  type GcsBackendConfig,
  type ObjectStat,
  type TierBackend,
  type TransferOptions,
  type UploadResult,
} from './backend.ts';
import { configDefaults } from './config-schema.ts';
import { GCS_CONFIG } from './gcs-config.ts';
import { type RetryPolicy, retryPolicy, withRetry } from './retry.ts';
import { checkRead, isAbortError, isNetworkError, StreamMeter, writeFileAtomic } from './transfer.ts';

/** What a config leaves out (gcs-config.ts declares them). */
const DEFAULTS = configDefaults(GCS_CONFIG);

/** A library failure as a KelpError; bugs (no status, not a network failure) pass through untouched. */
export function mapGcsError(err: unknown, what: string): unknown {
  if (err instanceof KelpError || isAbortError(err)) return err;
  const { code, status: s } = (err ?? {}) as { code?: unknown; status?: unknown };
  const options = { cause: err };
  // The library's own integrity checks (it deletes an upload that fails one).
  if (code === 'FILE_NO_UPLOAD' || code === 'CONTENT_DOWNLOAD_MISMATCH') {
    return new ChecksumMismatchError(`${what}: ${code}`, options);
  }
  const status = typeof code === 'number' ? code : typeof s === 'number' ? s : undefined;
  if (status === 404) return new NotFoundError(`${what}: no such object`, options);
  if (status === 416) return new TruncatedDataError(`${what}: range past the object's end`, options);
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) {
    return new UnavailableError(`${what}: HTTP ${status}`, undefined, options);
  }
  if (isNetworkError(err)) return new UnavailableError(`${what}: ${String(code)}`, undefined, options);
  if (status !== undefined) return new UpstreamError(`${what}: HTTP ${status}`, options);
  return err;
}

/** GCS reports CRC-32C as the base64 of its 4 bytes, big-endian. */
export function crc32cBase64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}

export class GcsBackend extends DescribedBackend implements TierBackend {
  readonly type = 'gcs';
  readonly id: string;
  readonly name: string;
  readonly stats: BackendStats = { requests: 0, reads: 0, bytesRead: 0 };
  readonly #config: GcsBackendConfig;
  readonly #retry: RetryPolicy;
  readonly #reads: Bucket;
  readonly #uploads: Bucket;
  readonly timeoutMs: number;

  constructor(config: GcsBackendConfig) {
    super(config);
    this.#config = { ...config };
    this.id = config.id;
    this.name = backendName(config);
    this.#retry = retryPolicy(config.retry);
    this.timeoutMs = config.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    const base: StorageOptions = { timeout: this.timeoutMs };
    if (config.projectId) base.projectId = config.projectId;
    if (config.keyFile) base.keyFilename = config.keyFile;
    if (config.apiEndpoint) {
      base.apiEndpoint = config.apiEndpoint;
      // An emulator needs no credentials; a private endpoint with a key file does.
      base.useAuthWithCustomEndpoint = config.keyFile !== undefined;
    }
    this.#reads = new Storage({ ...base, retryOptions: { autoRetry: false } }).bucket(config.bucket);
    this.#uploads = new Storage({
      ...base,
      retryOptions: {
        autoRetry: true,
        maxRetries: (config.uploadAttempts ?? DEFAULTS.uploadAttempts) - 1,
      },
    }).bucket(config.bucket);
  }

  async upload(localPath: string, key: string, opts: TransferOptions = {}): Promise<UploadResult> {
    const what = `${this.name} upload ${key}`;
    const total = (await stat(localPath)).size;
    const meter = new StreamMeter(total, opts.onProgress);
    const crc = new Crc32cHasher();
    const md5 = createHash('md5');
    const file = this.#uploads.file(key);
    const resumable = this.#config.resumable ?? DEFAULTS.resumable;
    const sink = file.createWriteStream({
      resumable,
      ...(resumable && this.#config.chunkSize ? { chunkSize: this.#config.chunkSize } : {}),
      validation: 'crc32c',
      contentType: 'application/octet-stream',
      gzip: false,
      timeout: this.timeoutMs,
    });
    this.stats.requests++;
    // Set once the store holds an object made by this call: from then on any failure deletes it.
    let created = false;
    try {
      await pipeline(
        createReadStream(localPath),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            crc.update(chunk);
            md5.update(chunk);
            meter.update(chunk);
            yield chunk;
          }
        },
        sink,
        opts.signal ? { signal: opts.signal } : {},
      );
      created = true;
      opts.signal?.throwIfAborted();
      if (meter.bytes !== total)
        throw new ConflictError(`${what}: ${localPath} changed size while uploading`);
      const md: FileMetadata = file.metadata;
      if (Number(md.size) !== total) {
        throw new ChecksumMismatchError(`${what}: stored ${md.size} bytes, sent ${total}`);
      }
      const checks: string[] = [];
      const wantCrc = crc32cBase64(crc.digest());
      if (md.crc32c !== undefined) {
        if (md.crc32c !== wantCrc) {
          throw new ChecksumMismatchError(`${what}: crc32c ${md.crc32c} does not match ${wantCrc}`);
        }
        checks.push('crc32c');
      }
      // Composite objects have no md5Hash; every simple or resumable upload does.
      if (md.md5Hash !== undefined) {
        const wantMd5 = md5.digest('base64');
        if (md.md5Hash !== wantMd5) {
          throw new ChecksumMismatchError(`${what}: md5 ${md.md5Hash} does not match ${wantMd5}`);
        }
        checks.push('md5');
      }
      opts.onProgress?.(total, total);
      return {
        key,
        size: total,
        sha256: meter.sha256(),
        verifiedBy: checks.length ? checks.join('+') : 'size',
        ...(md.etag ? { etag: md.etag } : {}),
        mtime: new Date(md.updated ?? Date.now()),
      };
    } catch (err) {
      // An upload cut off before its last byte is never finalized, and the library deletes one that fails
      // its own CRC check; an abort may race the final request, so it deletes too.
      if (created || isAbortError(err)) await this.delete(key).catch(() => {});
      throw mapGcsError(err, what);
    }
  }

  async download(key: string, localPath: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
    const what = `${this.name} download ${key}`;
    const file = this.#reads.file(key);
    return withRetry(
      what,
      this.#retry,
      async () => {
        try {
          this.stats.requests++;
          const [md] = await file.getMetadata();
          this.stats.requests++;
          this.stats.reads++;
          // Whole-object reads are checked by the library against the stored CRC-32C.
          const source = file.createReadStream({ validation: 'crc32c', decompress: false });
          return await writeFileAtomic(localPath, source, {
            ...opts,
            total: Number(md.size),
            exactSize: true,
          });
        } catch (err) {
          throw mapGcsError(err, what);
        }
      },
      opts.signal ? { signal: opts.signal } : {},
    );
  }

  openFile(key: string, size: number): BackendFile {
    return new GcsFile(this, this.#reads, key, size, this.#retry);
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectStat | undefined> {
    const what = `${this.name} stat ${key}`;
    return withRetry(
      what,
      this.#retry,
      async () => {
        signal?.throwIfAborted();
        this.stats.requests++;
        try {
          const [md] = await this.#reads.file(key).getMetadata();
          return { size: Number(md.size), mtime: new Date(md.updated ?? 0) };
        } catch (err) {
          const mapped = mapGcsError(err, what);
          if (mapped instanceof NotFoundError) return undefined;
          throw mapped;
        }
      },
      signal ? { signal } : {},
    );
  }

  async delete(key: string): Promise<void> {
    const what = `${this.name} delete ${key}`;
    await withRetry(what, this.#retry, async () => {
      this.stats.requests++;
      try {
        await this.#reads.file(key).delete({ ignoreNotFound: true });
      } catch (err) {
        throw mapGcsError(err, what);
      }
    });
  }

  async close(): Promise<void> {}
}

class GcsFile implements BackendFile {
  readonly key: string;
  readonly size: number;
  readonly #backend: GcsBackend;
  readonly #bucket: Bucket;
  readonly #retry: RetryPolicy;

  constructor(backend: GcsBackend, bucket: Bucket, key: string, size: number, retry: RetryPolicy) {
    this.#backend = backend;
    this.#bucket = bucket;
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
        signal?.throwIfAborted();
        backend.stats.requests++;
        backend.stats.reads++;
        try {
          // The library warns MaxListenersExceededWarning on every such stream (googleapis/google-cloud-node
          // #9185: 11 listeners on teeny-request's own PassThrough, fresh per stream): noise, not a leak.
          const bytes = await readRange(
            this.#bucket.file(this.key).createReadStream({
              start: offset,
              end: offset + length - 1,
              validation: false,
              decompress: false,
            }),
            what,
            offset,
            length,
            backend.timeoutMs,
            signal,
          );
          backend.stats.bytesRead += length;
          return bytes;
        } catch (err) {
          throw mapGcsError(err, what);
        }
      },
      signal ? { signal } : {},
    );
  }

  async close(): Promise<void> {}
}

/**
 * Collects exactly `length` bytes of a ranged read. A 200 means the store
 * ignored the Range (the Firebase emulator does so when the range starts past
 * the end): the body is dropped unread, and it is a short read if the object
 * is too small for the range, else a misbehaving store.
 */
function readRange(
  stream: Readable,
  what: string,
  offset: number,
  length: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const out = new Uint8Array(length);
    let got = 0;
    let done = false;
    const finish = (err: unknown, value?: Uint8Array) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) {
        // Deferred: on a 'response' event the library has yet to pipe the body into `stream`.
        setImmediate(() => stream.destroy());
        reject(err);
      } else resolve(value as Uint8Array);
    };
    const onAbort = () => finish(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const err = new Error(`${what}: no answer in ${timeoutMs} ms`);
      err.name = 'TimeoutError';
      finish(err);
    }, timeoutMs);
    stream.on('response', (res: { statusCode?: number; headers?: IncomingHttpHeaders }) => {
      if (res.statusCode !== 200) return;
      const whole = Number(res.headers?.['content-length']);
      finish(
        Number.isFinite(whole) && whole < offset + length
          ? new TruncatedDataError(`${what}: the object has only ${whole} bytes`)
          : new UpstreamError(`${what}: the store ignored the Range`),
      );
    });
    stream.on('data', (chunk: Buffer) => {
      if (done) return;
      if (got + chunk.byteLength > length) {
        finish(new UpstreamError(`${what}: more bytes than the range`));
        return;
      }
      out.set(chunk, got);
      got += chunk.byteLength;
    });
    stream.on('end', () => {
      if (got < length) finish(new TruncatedDataError(`${what}: got ${got} bytes`));
      else finish(undefined, out);
    });
    stream.on('error', (err) => finish(err));
  });
}
