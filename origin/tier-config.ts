/**
 * The tiering parts of kelp.toml (docs/configuration.md, "Tier backends" and
 * "Tier policies"), beside the per-command options of config.ts:
 *
 *   [backend.<type>.<id>]   a backend volume servers can tier to, named
 *                           `type.id` (s3.archive); type local, s3 or gcs.
 *                           `local.default` exists with no configuration (a
 *                           folder beside the data, origin/volume/tier.ts).
 *   [[tier.policy]]         the rules of `kelp tier serve` / `plan` (tiering/service/policy.ts).
 *
 * Any backend field can also come from the environment as
 * KELP_BACKEND_<TYPE>_<ID>_<FIELD> (KELP_BACKEND_S3_ARCHIVE_SECRET_ACCESS_KEY),
 * which wins over the file and can define a backend on its own; a secret can
 * also be read from a file (`secretAccessKeyFile`). With no keys at all an S3
 * backend uses the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, instance roles) and a GCS one
 * Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS). Secrets are
 * never printed: logs show backends through `redactConfig` only.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KelpError } from '../shared/errors.ts';
import type { BackendConfig, BackendType } from '../tiering/backends/backend.ts';
import { parseRules, RULE_FIELDS, type TierRule } from '../tiering/service/policy.ts';
import { ConfigError } from './config-error.ts';

type Kind = 'string' | 'integer' | 'boolean';

export interface BackendField {
  kind: Kind;
  description: string;
  /** How the default reads in docs. */
  default?: string;
  required?: boolean;
}

const RETRY_FIELDS: Record<string, BackendField> = {
  'retry.attempts': { kind: 'integer', description: 'attempts of a read, stat or delete', default: '4' },
  'retry.baseDelayMs': { kind: 'integer', description: 'first backoff delay (doubles)', default: '100' },
  'retry.maxDelayMs': { kind: 'integer', description: 'largest backoff delay', default: '1000' },
};

/** Every key of a `[backend.<type>.<id>]` section (the fields of tiering/backends/backend.ts's configs). */
export const BACKEND_FIELDS: Record<BackendType, Record<string, BackendField>> = {
  local: {
    path: {
      kind: 'string',
      description: 'directory of the objects (relative paths: from the working directory)',
      required: true,
      default: '`<first data dir>/tier` for local.default',
    },
    ...RETRY_FIELDS,
  },
  s3: {
    bucket: { kind: 'string', description: 'bucket', required: true },
    region: { kind: 'string', description: 'region', default: 'us-east-1' },
    endpoint: {
      kind: 'string',
      description: 'any S3-compatible endpoint, e.g. http://127.0.0.1:7480',
      default: 'AWS',
    },
    accessKeyId: {
      kind: 'string',
      description: 'access key id (better in the env)',
      default: "the AWS SDK's chain",
    },
    secretAccessKey: {
      kind: 'string',
      description: 'secret key (better in the env or a file)',
      default: 'SDK chain',
    },
    secretAccessKeyFile: { kind: 'string', description: 'file holding the secret key' },
    sessionToken: { kind: 'string', description: 'session token of temporary credentials' },
    forcePathStyle: { kind: 'boolean', description: 'endpoint/bucket/key URLs', default: 'true' },
    storageClass: { kind: 'string', description: 'e.g. STANDARD_IA', default: "the store's" },
    partSize: { kind: 'integer', description: 'smallest multipart part, bytes', default: '16 MiB' },
    uploadConcurrency: { kind: 'integer', description: 'parts in flight', default: '4' },
    uploadAttempts: { kind: 'integer', description: 'attempts per upload request', default: '4' },
    etagIsMd5: {
      kind: 'boolean',
      description: 'verify uploads against ETags (false with SSE-KMS)',
      default: 'true',
    },
    connectTimeoutMs: { kind: 'integer', description: 'connect timeout, ms', default: '3000' },
    requestTimeoutMs: { kind: 'integer', description: 'request timeout, ms', default: '30000' },
    ...RETRY_FIELDS,
  },
  r2: {
    bucket: { kind: 'string', description: 'bucket', required: true },
    accountId: {
      kind: 'string',
      description: 'Cloudflare account id (the endpoint is made from it)',
      default: '(required without endpoint)',
    },
    jurisdiction: { kind: 'string', description: 'eu or fedramp, for a bucket in a jurisdiction' },
    endpoint: {
      kind: 'string',
      description: "R2's S3 endpoint, or any S3 server standing in for it",
      default: 'https://<accountId>.r2.cloudflarestorage.com',
    },
    region: { kind: 'string', description: 'region', default: 'auto' },
    accessKeyId: { kind: 'string', description: 'R2 API token access key id (better in the env)' },
    secretAccessKey: { kind: 'string', description: 'R2 API token secret (better in the env or a file)' },
    secretAccessKeyFile: { kind: 'string', description: 'file holding the secret key' },
    forcePathStyle: { kind: 'boolean', description: 'endpoint/bucket/key URLs', default: 'true' },
    storageClass: { kind: 'string', description: 'STANDARD or STANDARD_IA', default: 'STANDARD' },
    partSize: { kind: 'integer', description: 'multipart part, bytes (all parts equal)', default: '16 MiB' },
    uploadConcurrency: { kind: 'integer', description: 'parts in flight', default: '4' },
    uploadAttempts: { kind: 'integer', description: 'attempts per upload request', default: '4' },
    connectTimeoutMs: { kind: 'integer', description: 'connect timeout, ms', default: '3000' },
    requestTimeoutMs: { kind: 'integer', description: 'request timeout, ms', default: '30000' },
    ...RETRY_FIELDS,
  },
  gcs: {
    bucket: { kind: 'string', description: 'bucket', required: true },
    projectId: { kind: 'string', description: 'project' },
    apiEndpoint: {
      kind: 'string',
      description: 'e.g. an emulator, http://127.0.0.1:9199',
      default: "Google's",
    },
    keyFile: {
      kind: 'string',
      description: 'service account key file',
      default: 'Application Default Credentials',
    },
    resumable: { kind: 'boolean', description: 'resumable uploads', default: 'true' },
    chunkSize: {
      kind: 'integer',
      description: 'resumable chunk, a multiple of 256 KiB',
      default: 'one request',
    },
    uploadAttempts: { kind: 'integer', description: 'attempts per upload', default: '4' },
    requestTimeoutMs: { kind: 'integer', description: 'request timeout, ms', default: '30000' },
    ...RETRY_FIELDS,
  },
};

const TYPES = Object.keys(BACKEND_FIELDS) as BackendType[];
const POLICY_KEY = 'tier.policy';
/** S3's region when none is given: S3-compatible stores mostly ignore it, the SDK needs one. */
export const DEFAULT_S3_REGION = 'us-east-1';

/** For loadConfigFile: is `key` (dotted) one of the tier sections' keys? */
export function isTierKey(key: string): boolean {
  return key.startsWith('backend.') || key === POLICY_KEY || key.startsWith(`${POLICY_KEY}.`);
}

/** Checks a tier key's name (values are checked by the command that uses them); a ConfigError names the problem. */
export function checkTierKey(key: string, value: unknown, file: string): void {
  if (key === POLICY_KEY) {
    if (!Array.isArray(value))
      throw new ConfigError(`${file}: [tier.policy] must be written [[tier.policy]]`);
    for (const [i, rule] of value.entries()) {
      if (rule === null || typeof rule !== 'object' || Array.isArray(rule))
        throw new ConfigError(`${file}: tier.policy[${i}] must be a table`);
      for (const k of Object.keys(rule))
        if (!Object.hasOwn(RULE_FIELDS, k))
          throw new ConfigError(
            `${file}: unknown key "${k}" in [[tier.policy]] #${i + 1} (known there: ${Object.keys(RULE_FIELDS).join(', ')})`,
          );
    }
    return;
  }
  if (key.startsWith(`${POLICY_KEY}.`)) {
    throw new ConfigError(`${file}: [tier.policy] must be written [[tier.policy]] (an array of tables)`);
  }
  const [, type, id, ...rest] = key.split('.');
  const field = rest.join('.');
  if (!type || !TYPES.includes(type as BackendType) || !id || !field) {
    throw new ConfigError(
      `${file}: unknown section for "${key}": backends are [backend.<type>.<id>] with type ${TYPES.join(', ')}`,
    );
  }
  if (!Object.hasOwn(BACKEND_FIELDS[type as BackendType], field)) {
    throw new ConfigError(
      `${file}: unknown key "${field}" in [backend.${type}.${id}] (known there: ${Object.keys(BACKEND_FIELDS[type as BackendType]).join(', ')})`,
    );
  }
}

/** `secretAccessKey` → `SECRET_ACCESS_KEY`, `retry.attempts` → `RETRY_ATTEMPTS`. */
function envSuffix(field: string): string {
  return field
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/\./g, '_')
    .toUpperCase();
}

/** An id as it reads in an env var name: `cold-archive` → `COLD_ARCHIVE`. */
function envId(id: string): string {
  return id.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

export const BACKEND_ENV_PREFIX = 'KELP_BACKEND_';

/** The env var of a backend field: `KELP_BACKEND_S3_ARCHIVE_SECRET_ACCESS_KEY`. */
export function backendEnvName(type: BackendType, id: string, field: string): string {
  return `${BACKEND_ENV_PREFIX}${type.toUpperCase()}_${envId(id)}_${envSuffix(field)}`;
}

function parseField(f: BackendField, raw: unknown, where: string): string | number | boolean {
  switch (f.kind) {
    case 'string':
      if (typeof raw === 'string' && raw.trim() !== '') return raw.trim();
      throw new ConfigError(`${where}: must be a non-empty string`);
    case 'integer': {
      const n = typeof raw === 'string' && /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw;
      if (typeof n === 'number' && Number.isInteger(n) && n >= 0) return n;
      throw new ConfigError(`${where}: must be an integer >= 0`);
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new ConfigError(`${where}: must be true or false`);
  }
}

/**
 * The backends of `[backend.*]` sections and KELP_BACKEND_* env vars, checked
 * and ready for `startVolumeServer({backends})`. `file` is loadConfigFile's map.
 */
export function loadBackends(
  file: ReadonlyMap<string, unknown>,
  env: Record<string, string | undefined>,
  opts: { configFile?: string; cwd?: string } = {},
): BackendConfig[] {
  const cwd = opts.cwd ?? process.cwd();
  const where = opts.configFile ?? 'config';
  // type.id → field → [raw, where it came from]
  const raw = new Map<string, Map<string, [unknown, string]>>();
  const entry = (type: string, id: string) => {
    const k = `${type}.${id}`;
    if (!raw.has(k)) raw.set(k, new Map());
    return raw.get(k)!;
  };
  for (const [key, value] of file) {
    if (!key.startsWith('backend.')) continue;
    const [, type, id, ...rest] = key.split('.');
    const field = rest.join('.');
    entry(type!, id!).set(field, [value, `${where}: "${field}" in [backend.${type}.${id}]`]);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(BACKEND_ENV_PREFIX) || value === undefined || value === '') continue;
    const rest = name.slice(BACKEND_ENV_PREFIX.length);
    const type = TYPES.find((t) => rest.startsWith(`${t.toUpperCase()}_`));
    if (!type)
      throw new ConfigError(
        `${name}: the type after ${BACKEND_ENV_PREFIX} must be one of ${TYPES.join(', ')}`,
      );
    const tail = rest.slice(type.length + 1);
    // The longest field name that ends it; what stands before is the id.
    const field = Object.keys(BACKEND_FIELDS[type])
      .filter((f) => tail.endsWith(`_${envSuffix(f)}`))
      .sort((a, b) => envSuffix(b).length - envSuffix(a).length)[0];
    if (!field) {
      throw new ConfigError(
        `${name}: no field of a ${type} backend ends it (fields: ${Object.keys(BACKEND_FIELDS[type]).join(', ')})`,
      );
    }
    const idPart = tail.slice(0, tail.length - envSuffix(field).length - 1);
    const declared = [...raw.keys()].find(
      (k) => k.startsWith(`${type}.`) && envId(k.slice(type.length + 1)) === idPart,
    );
    const id = declared ? declared.slice(type.length + 1) : idPart.toLowerCase();
    entry(type, id).set(field, [value, name]);
  }

  const out: BackendConfig[] = [];
  for (const [name, fields] of raw) {
    const dot = name.indexOf('.');
    const type = name.slice(0, dot) as BackendType;
    const id = name.slice(dot + 1);
    const spec = BACKEND_FIELDS[type];
    const values: Record<string, unknown> = {};
    for (const [field, [value, from]] of fields) values[field] = parseField(spec[field]!, value, from);
    const section = `[backend.${name}]`;
    for (const [field, f] of Object.entries(spec)) {
      if (f.required && values[field] === undefined && !(type === 'local' && id === 'default')) {
        throw new ConfigError(`${section}: "${field}" is required (or ${backendEnvName(type, id, field)})`);
      }
    }
    const retry: Record<string, number> = {};
    for (const k of Object.keys(values)) {
      if (!k.startsWith('retry.')) continue;
      retry[k.slice('retry.'.length)] = values[k] as number;
      delete values[k];
    }
    if (Object.keys(retry).length) values.retry = retry;
    if (type === 'local') {
      // local.default without a path: the volume server's own default (beside the data).
      if (values.path === undefined) continue;
      values.path = resolve(cwd, values.path as string);
    }
    if (type === 's3' || type === 'r2') {
      if (values.secretAccessKeyFile !== undefined) {
        const path = resolve(cwd, values.secretAccessKeyFile as string);
        if (values.secretAccessKey === undefined) values.secretAccessKey = readSecret(path, section);
        delete values.secretAccessKeyFile;
      }
      if (type === 's3') values.region ??= DEFAULT_S3_REGION;
      if ((values.accessKeyId === undefined) !== (values.secretAccessKey === undefined)) {
        throw new ConfigError(
          `${section}: give both accessKeyId and secretAccessKey (${backendEnvName(type, id, 'accessKeyId')}, ${backendEnvName(type, id, 'secretAccessKey')}), or neither for the AWS SDK's default chain`,
        );
      }
    }
    if (type === 'gcs' && values.keyFile !== undefined)
      values.keyFile = resolve(cwd, values.keyFile as string);
    out.push({ type, id, ...values } as BackendConfig);
  }
  return out.sort((a, b) => `${a.type}.${a.id}`.localeCompare(`${b.type}.${b.id}`));
}

function readSecret(path: string, section: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${section}: cannot read secretAccessKeyFile ${path}: ${(err as Error).message}`);
  }
}

/** The `[[tier.policy]]` rules; an empty list when the file has none. */
export function loadTierRules(file: ReadonlyMap<string, unknown>, configFile?: string): TierRule[] {
  const raw = file.get(POLICY_KEY);
  if (raw === undefined) return [];
  try {
    return parseRules(raw, `${configFile ?? 'config'}: tier.policy`);
  } catch (err) {
    if (err instanceof KelpError) throw new ConfigError(err.message);
    throw err;
  }
}
