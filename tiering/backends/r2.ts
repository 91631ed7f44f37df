/**
 * Cloudflare R2 as a tier, through its S3-compatible API: the S3 backend
 * (s3.ts) with R2's endpoint and region, so that the edge Worker can read the
 * same bucket through its R2 binding with no credentials at all
 * (docs/decisions/0010-origin-free-reads.md).
 *
 * What differs from S3, and why this is a type of its own rather than an S3
 * config: the endpoint is per account (`https://<accountId>.r2.cloudflarestorage.com`,
 * `.eu.` or `.fedramp.` for a jurisdiction); the region is `auto`; the storage
 * classes are `STANDARD` and `STANDARD_IA` only; multipart parts must all be
 * the same size but the last (lib-storage uploads them so); multipart ETags
 * have followed S3's MD5-of-MD5s form since June 2023, so uploads are verified
 * as on S3. And the lookup tells the edge the bucket is R2 (`kind: "r2"`), so it
 * reads it through the binding instead of signing S3 requests.
 */
import { InvalidParamError } from '../../shared/errors.ts';
import type {
  BackendFile,
  BackendStats,
  DownloadOptions,
  DownloadResult,
  ObjectStat,
  R2BackendConfig,
  TierBackend,
  TransferOptions,
  UploadResult,
} from './backend.ts';
import { backendName, DescribedBackend } from './backend.ts';
import { R2_REGION } from './r2-config.ts';
import { S3Backend } from './s3.ts';

/** R2's S3 endpoint for an account (and jurisdiction, e.g. `eu`). */
export function r2Endpoint(accountId: string, jurisdiction?: string): string {
  if (!/^[0-9a-f]{32}$/i.test(accountId)) {
    throw new InvalidParamError(
      `backend config: accountId ${JSON.stringify(accountId)} is not an R2 account id`,
    );
  }
  const j = jurisdiction ? `.${jurisdiction}` : '';
  return `https://${accountId}${j}.r2.cloudflarestorage.com`;
}

export class R2Backend extends DescribedBackend implements TierBackend {
  readonly type = 'r2';
  readonly id: string;
  readonly name: string;
  readonly bucket: string;
  readonly #s3: S3Backend;

  constructor(config: R2BackendConfig) {
    super(config);
    this.id = config.id;
    this.name = backendName(config);
    this.bucket = config.bucket;
    const endpoint = config.endpoint ?? r2Endpoint(config.accountId ?? '', config.jurisdiction);
    const { accountId: _a, jurisdiction: _j, ...rest } = config;
    this.#s3 = new S3Backend({ ...rest, type: 's3', endpoint, region: config.region ?? R2_REGION });
  }

  get stats(): BackendStats {
    return this.#s3.stats;
  }

  /** The S3 client underneath (tests inspect the bucket with it). */
  get client(): S3Backend['client'] {
    return this.#s3.client;
  }

  upload(localPath: string, key: string, opts?: TransferOptions): Promise<UploadResult> {
    return this.#s3.upload(localPath, key, opts);
  }

  download(key: string, localPath: string, opts?: DownloadOptions): Promise<DownloadResult> {
    return this.#s3.download(key, localPath, opts);
  }

  openFile(key: string, size: number): BackendFile {
    return this.#s3.openFile(key, size);
  }

  stat(key: string, signal?: AbortSignal): Promise<ObjectStat | undefined> {
    return this.#s3.stat(key, signal);
  }

  delete(key: string): Promise<void> {
    return this.#s3.delete(key);
  }

  close(): Promise<void> {
    return this.#s3.close();
  }
}
