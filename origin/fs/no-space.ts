/**
 * Out-of-space failures of the filesystem, recognised once for every writer
 * (volumes, upload spools, the master's state file): ENOSPC and EDQUOT become
 * InsufficientStorageError (507) so a full disk is never reported as a 500.
 */
import { InsufficientStorageError } from '../../shared/errors.ts';

/** The errno codes that mean "no room": the filesystem is full, or the user's quota is. */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `err` (or an error it wraps) is a filesystem out of space or over quota. */
export function isNoSpaceError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    if (e instanceof InsufficientStorageError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NO_SPACE_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** `err` as an InsufficientStorageError when it is one of the no-room failures; otherwise unchanged. */
export function asStorageError(err: unknown, what: string): unknown {
  if (err instanceof InsufficientStorageError || !isNoSpaceError(err)) return err;
  const code = (err as { code?: string }).code ?? 'ENOSPC';
  return new InsufficientStorageError(`${what}: no space left on the disk (${code})`, { cause: err });
}
