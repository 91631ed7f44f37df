/** The config of a `local` backend (local.ts): a directory, as `[backend.local.<id>]`. */
import { z } from 'zod';
import { ID_FIELD, RETRY_FIELD, text } from './config-schema.ts';

export const LOCAL_CONFIG = z.object({
  type: z.literal('local'),
  id: ID_FIELD,
  /** Directory holding the objects, created on first use. */
  path: text({
    description: 'directory of the objects (relative paths: from the working directory)',
    path: true,
  }),
  retry: RETRY_FIELD,
});

export type LocalBackendConfig = z.input<typeof LOCAL_CONFIG>;
