/**
 * How a backend declares its config, once (docs/decisions/0015-backend-registry.md):
 * a zod object whose fields carry their description and default. The config
 * loader (origin/tier-config.ts: TOML keys, KELP_BACKEND_* env vars, checks),
 * `createBackend` (its checks), the backend itself (its defaults) and the
 * docs generator (scripts/config-docs.ts) all read that one object.
 *
 * A field's default is a zod `.default()` when the backend applies it, so the
 * code and the docs take the same value; `meta.defaultText` says how it reads
 * in the docs when the value alone would not ("16 MiB", "the AWS SDK's chain").
 * Zod is used for the checks and the types only: configs are handed on as
 * given (a default is applied where it is used), so what is logged is what the
 * operator wrote.
 */
import { z } from 'zod';
import { READ_RETRY } from './retry.ts';

export type FieldMeta = {
  /** The docs' "meaning" column. */
  description: string;
  /** How the default reads in the docs, when not the `.default()` value itself. */
  defaultText?: string;
  /** A required field the config loader fills with this when the section leaves it out (S3's region). */
  loaderDefault?: string;
  /** A path: the config loader resolves it against the working directory. */
  path?: boolean;
  /** A file holding the secret of this other field: the config loader reads it into that field. */
  secretFileOf?: string;
  /** Hidden from logs (`redactConfig`). */
  secret?: boolean;
};

/** The three kinds of value a config field has, as TOML and env vars give them. */
export type FieldKind = 'string' | 'integer' | 'boolean';

/** A non-empty string. */
export const text = (meta: FieldMeta) => z.string().min(1).meta(meta);
/** An integer >= 0. */
export const count = (meta: FieldMeta) => z.int().min(0).meta(meta);
export const flag = (meta: FieldMeta) => z.boolean().meta(meta);

/** Backoff of reads, stats and deletes (retry.ts), as `[backend.<type>.<id>.retry]`. */
export const RETRY_FIELDS = z
  .object({
    attempts: count({ description: 'attempts of a read, stat or delete' }).default(READ_RETRY.attempts),
    baseDelayMs: count({ description: 'first backoff delay (doubles)' }).default(READ_RETRY.baseDelayMs),
    maxDelayMs: count({ description: 'largest backoff delay' }).default(READ_RETRY.maxDelayMs),
  })
  .partial();

/** `default` unless several backends of one type are configured: every backend has one (the section names it). */
export const ID_FIELD = z.string().min(1);
/** Backoff for reads, stats and deletes, READ_RETRY (retry.ts) for what is left out: every backend has it. */
export const RETRY_FIELD = RETRY_FIELDS.optional();

/** One field of a config, flattened (`retry.attempts`), with what the loader and the docs need of it. */
export interface FieldInfo {
  key: string;
  kind: FieldKind;
  required: boolean;
  /** The `.default()` value, if the field has one. */
  default?: unknown;
  meta: FieldMeta;
}

type AnySchema = z.core.$ZodType;

function describeField(key: string, schema: AnySchema, inheritedOptional = false): FieldInfo[] {
  const meta = (z.globalRegistry.get(schema) ?? {}) as Partial<FieldMeta>;
  let inner = schema;
  let optional = inheritedOptional;
  let value: unknown;
  for (;;) {
    const def = inner._zod.def as { type: string; innerType?: AnySchema; defaultValue?: unknown };
    if (def.type === 'optional') optional = true;
    else if (def.type === 'default') {
      optional = true;
      value = def.defaultValue;
    } else break;
    inner = def.innerType!;
  }
  const innerMeta = (z.globalRegistry.get(inner) ?? {}) as Partial<FieldMeta>;
  const type = inner._zod.def.type;
  if (type === 'object') {
    const shape = (inner as z.ZodObject).shape;
    return Object.entries(shape).flatMap(([k, s]) => describeField(`${key}.${k}`, s, optional));
  }
  const kind: FieldKind = type === 'string' ? 'string' : type === 'boolean' ? 'boolean' : 'integer';
  if (type !== 'string' && type !== 'boolean' && type !== 'number') {
    throw new TypeError(`config field ${key}: unsupported schema type ${type}`);
  }
  const merged = { ...innerMeta, ...meta } as FieldMeta;
  return [
    { key, kind, required: !optional, ...(value === undefined ? {} : { default: value }), meta: merged },
  ];
}

/** The fields of a backend's schema as TOML keys (`retry.attempts`), `type` and `id` left out (the section names them). */
export function configFields(schema: z.ZodObject): FieldInfo[] {
  return Object.entries(schema.shape)
    .filter(([k]) => k !== 'type' && k !== 'id')
    .flatMap(([k, s]) => describeField(k, s));
}

/** The `.default()` values of a schema's top-level fields, typed: what a backend falls back on. */
export function configDefaults<S extends z.ZodRawShape>(
  schema: z.ZodObject<S>,
): { [K in keyof S as S[K] extends z.ZodDefault ? K : never]-?: z.output<S[K]> } {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(schema.shape)) {
    const def = (s as AnySchema)._zod.def as { type: string; defaultValue?: unknown };
    if (def.type === 'default') out[k] = def.defaultValue;
  }
  return out as never;
}
