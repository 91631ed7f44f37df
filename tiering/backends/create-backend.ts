/**
 * The factory from a config to its backend, by the registry (registry.ts): the
 * config is checked against its kind's schema, then that kind's module (and
 * its SDK) is loaded and builds it. Apart from backend.ts (the interface and
 * config types, which every backend imports) so that no backend module
 * imports the module that loads it: no import cycle.
 */
import type { z } from 'zod';
import { InvalidParamError } from '../../shared/errors.ts';
import { type BackendConfig, defaultLocalConfig, type TierBackend } from './backend.ts';
import type { BackendKind } from './registry.ts';

/** A zod issue as the one line a config error says: `"bucket" is required`, `"partSize" must be a number`. */
function problem(issue: z.core.$ZodIssue): string {
  const field = `"${issue.path.map(String).join('.')}"`;
  const missing =
    (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) ||
    (issue.code === 'too_small' && issue.origin === 'string');
  if (missing) return `${field} is required`;
  if (issue.code === 'invalid_type') return `${field} must be a ${issue.expected}`;
  return `${field} ${issue.message}`;
}

/**
 * Builds the backend a config names. Each backend's module (and its SDK) is
 * loaded only when one is configured, so a volume server without a cloud tier
 * never loads the AWS or Google clients; the registry itself (the config
 * schemas, zod) is loaded on the first call, not at startup.
 */
export async function createBackend(config: BackendConfig): Promise<TierBackend> {
  const { BACKEND_KINDS, isBackendType } = await import('./registry.ts');
  const type: unknown = (config as { type?: unknown }).type;
  if (!isBackendType(type)) {
    throw new InvalidParamError(`backend config: unknown type ${JSON.stringify(type)}`);
  }
  const kind = BACKEND_KINDS[type] as BackendKind<BackendConfig>;
  const checked = kind.schema.safeParse(config);
  if (!checked.success) {
    throw new InvalidParamError(`backend config: ${checked.error.issues.map(problem).join('; ')}`);
  }
  const pair = kind.bothOrNeither;
  if (pair) {
    const given = config as Record<string, unknown>;
    if ((given[pair[0]] === undefined) !== (given[pair[1]] === undefined)) {
      throw new InvalidParamError(`backend config: give both ${pair[0]} and ${pair[1]}, or neither`);
    }
  }
  // The config as given, not as parsed: the backend applies its defaults where it uses them.
  return kind.create(config);
}

/**
 * `local.default` beside the data when no config names it (`defaultLocalConfig`).
 * The server made the config, so there is nothing to check against the
 * schema: built by the `local` module directly, so that a volume server with
 * no tier configured loads neither the registry nor zod (issue 15: RSS,
 * test/integration/cli/startup-modules.test.ts). Its defaults (the retry
 * policy) are applied by LocalBackend itself, as for a configured one.
 */
export async function createDefaultLocalBackend(firstDataDir: string): Promise<TierBackend> {
  return new (await import('./local.ts')).LocalBackend(defaultLocalConfig(firstDataDir));
}
