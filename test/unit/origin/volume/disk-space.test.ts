/**
 * Which failures are a full disk (issue 10, finding 9). The integration test
 * (test/integration/volume/disk-full.test.ts) fills a real tmpfs, which only
 * produces ENOSPC; EDQUOT (a user's quota) and an error wrapped as a cause are
 * checked here on error values shaped as node:fs throws them.
 */
import { describe, expect, it } from 'vitest';
import { asStorageError, isNoSpaceError } from '../../../../origin/fs/no-space.ts';
import { resumeFreeBytes } from '../../../../origin/volume/disk-space.ts';
import { httpStatusOf, InsufficientStorageError, InternalError } from '../../../../shared/errors.ts';

function fsError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, write`), { code, errno: -28, syscall: 'write' });
}

describe('disk-space: a full disk is a 507', () => {
  it('ENOSPC and EDQUOT become InsufficientStorageError (507, insufficient_storage) with the cause kept', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const err = fsError(code);
      const mapped = asStorageError(err, 'volume 3: append');
      expect(mapped).toBeInstanceOf(InsufficientStorageError);
      expect(httpStatusOf(mapped)).toBe(507);
      expect((mapped as InsufficientStorageError).code).toBe('insufficient_storage');
      expect((mapped as Error).message).toContain(code);
      expect((mapped as Error).cause).toBe(err);
    }
  });

  it('finds the code in a cause chain, and leaves every other error untouched', () => {
    expect(isNoSpaceError(new InternalError('append failed', { cause: fsError('ENOSPC') }))).toBe(true);
    for (const err of [fsError('EIO'), fsError('EACCES'), new Error('ENOSPC in a message only'), undefined]) {
      expect(isNoSpaceError(err)).toBe(false);
      expect(asStorageError(err, 'x')).toBe(err);
    }
    const already = new InsufficientStorageError('full');
    expect(asStorageError(already, 'x')).toBe(already);
  });

  it('writes resume at 1 % free on a small disk, at 64 MiB on a large one', () => {
    expect(resumeFreeBytes(4 * 1024 * 1024)).toBe(Math.ceil(4 * 1024 * 1024 * 0.01));
    expect(resumeFreeBytes(2 ** 40)).toBe(64 * 1024 * 1024);
  });
});
