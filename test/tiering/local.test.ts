import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidParamError } from '../../shared/errors.ts';
import { createBackend } from '../../tiering/backends/create-backend.ts';
import { objectPath } from '../../tiering/backends/local.ts';
import { describeBackend } from './conformance.ts';

// A directory has no server to take down, so the outage test is not registered here.
describeBackend(
  'local directory',
  { type: 'local', verifiedBy: 'fsync+size', checksum: 'crc32c' },
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'kelp-local-tier-'));
    const backend = await createBackend({ type: 'local', id: 'default', path: join(root, 'tier') });
    return { backend, stop: () => rm(root, { recursive: true, force: true }) };
  },
);

describe('local backend keys', () => {
  it('maps keys to paths under the root and refuses keys that would escape it', () => {
    expect(objectPath('/tier', 'a/b.dat')).toBe('/tier/a/b.dat');
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../x', 'a//b', './a', 'a\\b', 'a\0b']) {
      expect(() => objectPath('/tier', bad), bad).toThrow(InvalidParamError);
    }
  });
});
