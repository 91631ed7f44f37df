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
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { KelpError } from '../shared/errors.ts';
import type { BackendConfig, BackendType } from '../tiering/backends/backend.ts';
import type { FieldInfo } from '../tiering/backends/config-schema.ts';
import type { BACKEND_KINDS } from '../tiering/backends/registry.ts';
import { parseRules, RULE_FIELDS, type TierRule } from '../tiering/service/policy.ts';
import { ConfigError } from './config-error.ts';

interface Registry {
  kinds: typeof BACKEND_KINDS;
  types: BackendType[];
  /** The keys of each kind's `[backend.<type>.<id>]` section, by key: each backend declares them (registry.ts). */
  fields: Record<BackendType, Map<string, FieldInfo>>;
}

/**
 * The registry (tiering/backends/registry.ts), read when a config first names
 * a backend: its declarations are zod schemas (~18 MiB of RSS), which a volume
 * server with no tier configured never loads (issue 15;
 * test/integration/cli/startup-modules.test.ts). Required, not imported: the
 * config loader is synchronous, and require() of an ES module runs it in place.
 */
let registry: Registry | undefined;
function backendRegistry(): Registry {
  if (registry) return registry;
  const loaded = createRequire(import.meta.url)('../tiering/backends/registry.ts') as {
    BACKEND_KINDS: typeof BACKEND_KINDS;
    BACKEND_TYPES: BackendType[];
  };
  const types = loaded.BACKEND_TYPES;
  const fields = Object.fromEntries(
    types.map((type) => [type, new Map(loaded.BACKEND_KINDS[type].fields.map((f) => [f.key, f]))]),
  ) as Record<BackendType, Map<string, FieldInfo>>;
  registry = { kinds: loaded.BACKEND_KINDS, types, fields };
  return registry;
}
const POLICY_KEY = 'tier.policy';

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
  const { types, fields } = backendRegistry();
  const [, type, id, ...rest] = key.split('.');
  const field = rest.join('.');
  if (!type || !types.includes(type as BackendType) || !id || !field) {
    throw new ConfigError(
      `${file}: unknown section for "${key}": backends are [backend.<type>.<id>] with type ${types.join(', ')}`,
    );
  }
  const known = fields[type as BackendType];
  if (!known.has(field)) {
    throw new ConfigError(
      `${file}: unknown key "${field}" in [backend.${type}.${id}] (known there: ${[...known.keys()].join(', ')})`,
    );
  }
}

/** `secretAccessKey` → `SECRET_ACCESS_KEY`, `retry.attempts` → `RETRY_ATTEMPTS`: how a field ends its env var. */
export function envSuffix(field: string): string {
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

function parseField(f: FieldInfo, raw: unknown, where: string): string | number | boolean {
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
    const { types, fields } = backendRegistry();
    const rest = name.slice(BACKEND_ENV_PREFIX.length);
    const type = types.find((t) => rest.startsWith(`${t.toUpperCase()}_`));
    if (!type)
      throw new ConfigError(
        `${name}: the type after ${BACKEND_ENV_PREFIX} must be one of ${types.join(', ')}`,
      );
    const tail = rest.slice(type.length + 1);
    // The longest field name that ends it; what stands before is the id.
    const field = [...fields[type].keys()]
      .filter((f) => tail.endsWith(`_${envSuffix(f)}`))
      .sort((a, b) => envSuffix(b).length - envSuffix(a).length)[0];
    if (!field) {
      throw new ConfigError(
        `${name}: no field of a ${type} backend ends it (fields: ${[...fields[type].keys()].join(', ')})`,
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
    const { kinds, fields: specs } = backendRegistry();
    const spec = specs[type];
    const values: Record<string, unknown> = {};
    for (const [field, [value, from]] of fields) values[field] = parseField(spec.get(field)!, value, from);
    const section = `[backend.${name}]`;
    // local.default without a path: the volume server's own default (beside the data).
    if (type === 'local' && id === 'default' && values.path === undefined) continue;
    for (const f of spec.values()) {
      if (!f.required || values[f.key] !== undefined) continue;
      if (f.meta.loaderDefault !== undefined) values[f.key] = f.meta.loaderDefault;
      else
        throw new ConfigError(`${section}: "${f.key}" is required (or ${backendEnvName(type, id, f.key)})`);
    }
    for (const f of spec.values()) {
      if (!f.meta.path || values[f.key] === undefined) continue;
      const path = resolve(cwd, values[f.key] as string);
      if (f.meta.secretFileOf === undefined) values[f.key] = path;
      else {
        // A file holding a secret: its content, unless the secret itself was given too.
        values[f.meta.secretFileOf] ??= readSecret(path, f.key, section);
        delete values[f.key];
      }
    }
    const pair = kinds[type].bothOrNeither;
    if (pair && (values[pair[0]] === undefined) !== (values[pair[1]] === undefined)) {
      throw new ConfigError(
        `${section}: give both ${pair[0]} and ${pair[1]} (${backendEnvName(type, id, pair[0])}, ${backendEnvName(type, id, pair[1])}), or neither for the AWS SDK's default chain`,
      );
    }
    // Dotted keys (`retry.attempts`) become the nested objects the backend config has.
    for (const k of Object.keys(values)) {
      const dot = k.indexOf('.');
      if (dot < 0) continue;
      const group = k.slice(0, dot);
      values[group] = { ...(values[group] as object | undefined), [k.slice(dot + 1)]: values[k] };
      delete values[k];
    }
    out.push({ type, id, ...values } as BackendConfig);
  }
  return out.sort((a, b) => `${a.type}.${a.id}`.localeCompare(`${b.type}.${b.id}`));
}

function readSecret(path: string, field: string, section: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${section}: cannot read ${field} ${path}: ${(err as Error).message}`);
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
