/**
 * S3 and S3-compatible stores (AWS, Ceph RGW, R2's S3 API; GCS's XML API through gcs.ts)
 * through SigV4-signed `fetch` (aws4fetch): a ranged GET per read, a GET with
 * If-None-Match for the deletion set. Keys are read-only and scoped to the
 * bucket (docs/security.md); the endpoint comes from the Worker's own config,
 * never from a lookup answer, so a lookup cannot point the edge at another host.
 */
import { AwsClient } from 'aws4fetch';
import {
  CorruptDataError,
  NotFoundError,
  TruncatedDataError,
  UnavailableError,
  UpstreamError,
} from '../../shared/errors.ts';
import { parseContentRange } from '../../shared/range.ts';
import type { Conditional, TierCost, TierReader } from './reader.ts';

export interface S3ReaderConfig {
  kind: 's3' | 'gcs';
  /** e.g. `https://s3.us-east-1.amazonaws.com`, `https://storage.googleapis.com`. */
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `endpoint/bucket/key` (default) or `bucket.endpoint/key`. */
  pathStyle: boolean;
  /** Sent as X-Amz-Content-Sha256 when set (GCS, gcs.ts); aws4fetch's UNSIGNED-PAYLOAD otherwise. */
  payloadSha256?: string;
  timeoutMs: number;
}

export class S3Reader implements TierReader {
  readonly kind: string;
  readonly bucket: string;
  readonly #client: AwsClient;
  readonly #config: S3ReaderConfig;

  constructor(config: S3ReaderConfig) {
    this.#config = config;
    this.kind = config.kind;
    this.bucket = config.bucket;
    // retries: 0 — a read is one request; the caller falls back to the origin instead of waiting.
    this.#client = new AwsClient({
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      service: 's3',
      region: config.region,
      retries: 0,
    });
  }

  #url(key: string): string {
    const base = this.#config.endpoint.replace(/\/+$/, '');
    if (this.#config.pathStyle) return `${base}/${this.bucket}/${key}`;
    const u = new URL(base);
    return `${u.protocol}//${this.bucket}.${u.host}/${key}`;
  }

  async #get(key: string, headers: Record<string, string>, cost: TierCost): Promise<Response> {
    const what = `${this.kind} ${this.bucket}/${key}`;
    cost.requests++;
    let res: Response;
    try {
      const signed = this.#config.payloadSha256
        ? { ...headers, 'x-amz-content-sha256': this.#config.payloadSha256 }
        : headers;
      const req = await this.#client.sign(this.#url(key), { method: 'GET', headers: signed });
      res = await fetch(req, { signal: AbortSignal.timeout(this.#config.timeoutMs), redirect: 'manual' });
    } catch (err) {
      throw new UnavailableError(`${what}: ${(err as Error).message}`, 1, { cause: err });
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new NotFoundError(`${what}: no such object`);
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body?.cancel();
      throw new UnavailableError(`${what}: HTTP ${res.status}`, 1);
    }
    return res;
  }

  async read(key: string, offset: number, length: number, cost: TierCost): Promise<Uint8Array> {
    const what = `${this.kind} ${this.bucket}/${key}`;
    const res = await this.#get(key, { range: `bytes=${offset}-${offset + length - 1}` }, cost);
    if (res.status !== 206 && !(res.status === 200 && offset === 0)) {
      await res.body?.cancel();
      throw new UpstreamError(`${what}: HTTP ${res.status} to a ranged GET`);
    }
    if (res.status === 206 && parseContentRange(res.headers.get('content-range'))?.start !== offset) {
      await res.body?.cancel();
      throw new CorruptDataError(`${what}: answered range ${res.headers.get('content-range')}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    cost.bytes += bytes.length;
    // A 200 is the whole object: only its first `length` bytes were asked for.
    const out = res.status === 200 ? bytes.subarray(0, length) : bytes;
    if (out.length !== length) {
      throw new TruncatedDataError(`${what}: ${bytes.length} bytes for a ${length}-byte range`);
    }
    return out;
  }

  async readIfChanged(key: string, etag: string | undefined, cost: TierCost): Promise<Conditional> {
    let res: Response;
    try {
      res = await this.#get(key, etag ? { 'if-none-match': etag } : {}, cost);
    } catch (err) {
      if (err instanceof NotFoundError) return { kind: 'missing' };
      throw err;
    }
    if (res.status === 304) {
      await res.body?.cancel();
      return { kind: 'unchanged' };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new UpstreamError(`${this.kind} ${this.bucket}/${key}: HTTP ${res.status}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    cost.bytes += bytes.length;
    return { kind: 'changed', etag: res.headers.get('etag') ?? '', bytes };
  }
}
