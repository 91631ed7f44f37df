import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

// shared/ and edge/ run in workerd too: only Web-standard APIs.
const NODE_ONLY = [
  /from\s+['"]node:/,
  /import\(\s*['"]node:/,
  /require\(\s*['"]node:/,
  /from\s+['"](fs|path|os|http|https|crypto|stream|buffer|zlib|child_process)['"]/,
  /\bBuffer\./,
  /\bprocess\.(env|argv|exit|cwd)/,
];

describe('runtime-agnostic code', () => {
  for (const dir of ['shared', 'edge']) {
    it(`${dir}/ imports nothing from node: and uses no Node globals`, () => {
      const offenders = tsFiles(join(root, dir)).flatMap((file) => {
        const text = readFileSync(file, 'utf8');
        return NODE_ONLY.filter((re) => re.test(text)).map((re) => `${file.slice(root.length)}: ${re}`);
      });
      expect(offenders).toEqual([]);
    });
  }
});
