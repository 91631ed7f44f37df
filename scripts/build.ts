/**
 * Builds the JavaScript tree the servers run in production (`dist/`, decision
 * 0017): origin/, shared/ and tiering/ with their types stripped by Node's own
 * stripper (`module.stripTypeScriptTypes`, the one Node runs on `.ts` files),
 * so a deployed process never loads that stripper: it costs a server about
 * 30 MiB of RSS (issue 15: RAM per needle). No dependency is needed, so the
 * build runs at `npm ci --omit=dev` too (the `prepare` script).
 *
 * Stripping replaces types with spaces, so every line and column stays where
 * it was: stack traces point into the sources without a source map. The one
 * rewrite: a relative string literal that names a `.ts` module (`from
 * './x.ts'`, `import('./x.ts')`, `createRequire(...)('./x.ts')`, `new
 * URL('./x.ts', import.meta.url)`) names the `.js` file; the built tree has no
 * `.ts` file for such a literal to mean anything else.
 *
 * Written beside the output and renamed into place, so a failed build leaves
 * the previous tree whole.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The folders a server process imports from (edge/ is bundled by wrangler; scripts/ and bench/ run from source). */
export const BUILT_DIRS = ['origin', 'shared', 'tiering'];
export const DIST = join(ROOT, 'dist');
/** A quoted relative module path ending in `.ts`. */
const RELATIVE_TS_LITERAL = /(['"])(\.{1,2}\/[^'"\n]*)\.ts\1/g;

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

/** The JavaScript for one TypeScript source, positions kept. */
export function buildModule(source: string): string {
  return stripTypeScriptTypes(source, { mode: 'strip' }).replace(
    RELATIVE_TS_LITERAL,
    (_, quote: string, path: string) => `${quote}${path}.js${quote}`,
  );
}

export function build(): { files: number; ms: number } {
  const started = performance.now();
  const staging = `${DIST}.building`;
  rmSync(staging, { recursive: true, force: true });
  let files = 0;
  for (const dir of BUILT_DIRS) {
    for (const path of sources(join(ROOT, dir))) {
      const out = join(staging, relative(ROOT, path)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, buildModule(readFileSync(path, 'utf8')));
      files++;
    }
  }
  rmSync(DIST, { recursive: true, force: true });
  renameSync(staging, DIST);
  return { files, ms: performance.now() - started };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // The stripper's "experimental" warning says nothing a build log needs.
  process.removeAllListeners('warning');
  const { files, ms } = build();
  console.log(
    `kelp build: ${files} modules into ${relative(process.cwd(), DIST) || '.'}/ in ${ms.toFixed(0)} ms`,
  );
}
