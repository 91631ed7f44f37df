/**
 * The factory from a config to its backend. Apart from backend.ts (the
 * interface and config types, which every backend imports) so that no
 * backend module imports the module that loads it: no import cycle.
 */
import { InvalidParamError } from '../../shared/errors.ts';
import type { BackendConfig, TierBackend } from './backend.ts';

function requireString(config: object, field: string): void {
  const v = (config as Record<string, unknown>)[field];
  if (typeof v !== 'string' || v === '') {
    throw new InvalidParamError(`backend config: "${field}" is required`);
  }
}

/**
 * Builds the backend a config names. Each backend's module (and its SDK) is
 * loaded only when one is configured, so a volume server without a cloud tier
 * never loads the AWS or Google clients.
 */
export async function createBackend(config: BackendConfig): Promise<TierBackend> {
  requireString(config, 'id');
  switch (config.type) {
    case 'local': {
      requireString(config, 'path');
      const { LocalBackend } = await import('./local.ts');
      return new LocalBackend(config);
    }
    case 's3': {
      requireString(config, 'region');
      requireString(config, 'bucket');
      if ((config.accessKeyId === undefined) !== (config.secretAccessKey === undefined)) {
        throw new InvalidParamError('backend config: give both accessKeyId and secretAccessKey, or neither');
      }
      const { S3Backend } = await import('./s3.ts');
      return new S3Backend(config);
    }
    case 'r2': {
      requireString(config, 'bucket');
      if (!config.endpoint) requireString(config, 'accountId');
      if ((config.accessKeyId === undefined) !== (config.secretAccessKey === undefined)) {
        throw new InvalidParamError('backend config: give both accessKeyId and secretAccessKey, or neither');
      }
      const { R2Backend } = await import('./r2.ts');
      return new R2Backend(config);
    }
    case 'gcs': {
      requireString(config, 'bucket');
      const { GcsBackend } = await import('./gcs.ts');
      return new GcsBackend(config);
    }
    default:
      throw new InvalidParamError(
        `backend config: unknown type ${JSON.stringify((config as { type: unknown }).type)}`,
      );
  }
}
