/**
 * Every kind of backend, each by its one config declaration (`<kind>-config.ts`:
 * the fields, their checks, descriptions and defaults) and its factory. The
 * config loader (origin/tier-config.ts), `createBackend` and the docs generator
 * (scripts/config-docs.ts) read this list; a new kind of backend is one config
 * module, one backend module and one entry here.
 *
 * The factory is an `import()` so that each backend's module (and its SDK) is
 * loaded only when one is configured: a volume server without a cloud tier
 * never loads the AWS or Google clients, and reading a config loads neither.
 * It sits here rather than in `<kind>-config.ts` because the backend module
 * imports its config module (the type and the defaults): a factory there would
 * be an import cycle (docs/decisions/0015-backend-registry.md).
 */
import type { z } from 'zod';
import type { BackendConfig, BackendType, TierBackend } from './backend.ts';
import { configFields, type FieldInfo } from './config-schema.ts';
import { GCS_CONFIG, type GcsBackendConfig } from './gcs-config.ts';
import { LOCAL_CONFIG, type LocalBackendConfig } from './local-config.ts';
import { R2_CONFIG, type R2BackendConfig } from './r2-config.ts';
import { S3_CONFIG, type S3BackendConfig } from './s3-config.ts';

export interface BackendKind<C> {
  /** The checks and types of a config of this kind (`type` and `id` included). */
  schema: z.ZodType<unknown, C>;
  /** Its fields as TOML keys (`retry.attempts`), in order: what a `[backend.<type>.<id>]` section may hold. */
  fields: FieldInfo[];
  /** Two fields given both or neither (a key pair), else the SDK's default chain is used. */
  bothOrNeither?: readonly [string, string];
  create(config: C): Promise<TierBackend>;
}

const KEY_PAIR = ['accessKeyId', 'secretAccessKey'] as const;

function kind<C>(
  schema: z.ZodObject,
  create: (config: C) => Promise<TierBackend>,
  extra = {},
): BackendKind<C> {
  return {
    schema: schema as unknown as z.ZodType<unknown, C>,
    fields: configFields(schema),
    create,
    ...extra,
  };
}

/** The kinds of backend by type: in the order the docs list them. */
export const BACKEND_KINDS: { [T in BackendType]: BackendKind<Extract<BackendConfig, { type: T }>> } = {
  local: kind<LocalBackendConfig>(
    LOCAL_CONFIG,
    async (c) => new (await import('./local.ts')).LocalBackend(c),
  ),
  s3: kind<S3BackendConfig>(S3_CONFIG, async (c) => new (await import('./s3.ts')).S3Backend(c), {
    bothOrNeither: KEY_PAIR,
  }),
  r2: kind<R2BackendConfig>(R2_CONFIG, async (c) => new (await import('./r2.ts')).R2Backend(c), {
    bothOrNeither: KEY_PAIR,
  }),
  gcs: kind<GcsBackendConfig>(GCS_CONFIG, async (c) => new (await import('./gcs.ts')).GcsBackend(c)),
};

export const BACKEND_TYPES = Object.keys(BACKEND_KINDS) as BackendType[];

export function isBackendType(type: unknown): type is BackendType {
  return typeof type === 'string' && Object.hasOwn(BACKEND_KINDS, type);
}
