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
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { GcsBackendConfig } from './gcs-config.ts';
import type { LocalBackendConfig } from './local-config.ts';
import type { R2BackendConfig } from './r2-config.ts';
import type { S3BackendConfig } from './s3-config.ts';

export interface TransferOptions {
  /** Bytes moved so far and the total; called often during long transfers, last with `bytes === total`. */
  onProgress?(bytes: number, total: number): void;
  signal?: AbortSignal;
}

/**
 * The checksum of a whole object that the `.vif` records beside its size and
 * `download` checks on the way back; exactly one field is set. Object stores:
 * SHA-256 (hex), computed while the file streamed out. `local` since decision
 * 0018: CRC-32C (8 hex digits), the threat there being bit rot, truncation and
 * partial copies on a disk the operator owns, which CRC-32C and the size catch
 * at a quarter of SHA-256's CPU. A `.vif` written before keeps its SHA-256,
 * and a local download checks whichever it is given.
 */
export interface ObjectChecksum {
  sha256?: string;
  crc32c?: string;
}

/** The checksum fields of `r` that are set, and only those: what a `.vif` records. */
export function checksumOf(r: ObjectChecksum): ObjectChecksum {
  return {
    ...(r.sha256 !== undefined ? { sha256: r.sha256 } : {}),
    ...(r.crc32c !== undefined ? { crc32c: r.crc32c } : {}),
  };
}

export interface UploadResult extends ObjectChecksum {
  key: string;
  size: number;
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
  /**
   * The `.vif`'s CRC-32C (`local` objects only): the same. A backend that
   * checks only SHA-256 refuses it (`InternalError`) rather than skip it.
   */
  expectedCrc32c?: string;
  /**
   * The caller deletes the object once this download is committed, and no one
   * else reads it: a backend that can hand the object over instead of copying
   * it (`local` on the same filesystem: a rename) may do so. Others ignore it.
   */
  move?: boolean;
}

/** What was written and its checksum (the kind the `.vif` asked to check). */
export interface DownloadResult extends ObjectChecksum {
  size: number;
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

// Each kind declares its config once, in its own module (registry.ts lists them).
export type { GcsBackendConfig, LocalBackendConfig, R2BackendConfig, S3BackendConfig };

export type BackendConfig = LocalBackendConfig | S3BackendConfig | R2BackendConfig | GcsBackendConfig;

export type BackendType = BackendConfig['type'];

/** The directory `local.default` uses when nothing is configured: beside the volumes. */
export const DEFAULT_LOCAL_TIER_DIR = 'tier';

/**
 * Marks the one config the server makes itself (`defaultLocalConfig`): a
 * symbol key, so it survives a backend's copy of its config (`{ ...config }`)
 * and never shows in `Object.entries` or JSON.
 */
const BUILT_IN = Symbol('kelp.builtInBackendConfig');

/**
 * `local.default` when no config names it: a folder beside the data. Its
 * fields are the server's own (a path it chose), so describing it needs no
 * secret list: a volume server with no tier configured never loads the config
 * declarations, nor zod (issue 15: RSS; test/integration/cli/startup-modules.test.ts).
 */
export function defaultLocalConfig(firstDataDir: string): LocalBackendConfig {
  const config = {
    type: 'local' as const,
    id: 'default',
    path: join(firstDataDir, DEFAULT_LOCAL_TIER_DIR),
    [BUILT_IN]: true,
  };
  return config;
}

/**
 * The fields each kind's config module marks `secret`, read on the first
 * config that needs them: the modules are zod schemas (~18 MiB of RSS), which
 * a volume server with no tier configured never loads. Required, not imported:
 * `redactConfig` is synchronous, and require() of an ES module runs it in place.
 */
let secretFields: Set<string> | undefined;
function loadSecretFields(): Set<string> {
  if (secretFields) return secretFields;
  const load = createRequire(import.meta.url);
  const { configFields } = load('./config-schema.ts') as typeof import('./config-schema.ts');
  const schemas = [
    (load('./local-config.ts') as typeof import('./local-config.ts')).LOCAL_CONFIG,
    (load('./s3-config.ts') as typeof import('./s3-config.ts')).S3_CONFIG,
    (load('./r2-config.ts') as typeof import('./r2-config.ts')).R2_CONFIG,
    (load('./gcs-config.ts') as typeof import('./gcs-config.ts')).GCS_CONFIG,
  ];
  secretFields = new Set(
    schemas.flatMap((schema) =>
      configFields(schema)
        .filter((f) => f.meta.secret)
        .map((f) => f.key),
    ),
  );
  return secretFields;
}

/** A config as it may be logged: secrets replaced, the access key id shortened. */
export function redactConfig(config: BackendConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const secret = BUILT_IN in config ? new Set<string>() : loadSecretFields();
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    if (secret.has(k)) out[k] = '[redacted]';
    else if (k === 'accessKeyId' && typeof v === 'string') out[k] = `${v.slice(0, 4)}…`;
    else out[k] = v;
  }
  return out;
}

/**
 * What a backend shows of itself wherever it may be printed (logs, JSON,
 * util.inspect): its config, secrets redacted. One base, so that no backend
 * can leave one of the three out and print a secret by accident.
 */
export abstract class DescribedBackend {
  readonly #described: BackendConfig;

  protected constructor(config: BackendConfig) {
    this.#described = { ...config };
  }

  describe(): Record<string, unknown> {
    return redactConfig(this.#described);
  }

  toJSON(): Record<string, unknown> {
    return this.describe();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): Record<string, unknown> {
    return this.describe();
  }
}

/** `type.id`, e.g. `s3.default`. */
export function backendName(config: Pick<BackendConfig, 'type' | 'id'>): string {
  return `${config.type}.${config.id}`;
}
