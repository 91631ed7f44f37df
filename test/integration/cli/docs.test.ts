/** docs/configuration.md lists exactly the options origin/config.ts resolves, and its example file loads. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, resolveOptions, SERVER_OPTIONS, VOLUME_OPTIONS } from '../../../origin/config.ts';
import { DOC_PATH, renderTables, withTables } from '../../../scripts/config-docs.ts';
import { removeTempDirs, tempDir } from './harness.ts';

afterAll(removeTempDirs);

describe('docs/configuration.md', () => {
  const doc = readFileSync(DOC_PATH, 'utf8');

  it('has the option tables of the current schemas (regenerate: node scripts/config-docs.ts)', () => {
    expect(withTables(doc, renderTables())).toBe(doc);
  });

  it('shows an example kelp.toml that loads without unknown keys', () => {
    const example = /```toml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const cwd = tempDir();
    writeFileSync(join(cwd, 'kelp.toml'), example!);
    expect(loadConfigFile(join(cwd, 'kelp.toml')).size).toBeGreaterThan(10);
    expect(resolveOptions(VOLUME_OPTIONS, { cwd }).values).toMatchObject({ max: [100, 100], rack: 'r1' });
    expect(resolveOptions(SERVER_OPTIONS, { cwd }).values).toMatchObject({ 'volume.port': 8080 });
  });
});
