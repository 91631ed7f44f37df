/**
 * The house rules of the import graph (issue 14 item 4): no import cycle
 * among the production modules, and the master does not reach into the volume
 * server's folder (what both use lives in origin/http/ or origin/fs/).
 * Relative imports only: packages cannot import us back.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const PRODUCTION_DIRS = ['origin', 'shared', 'tiering', 'edge'];
/** Static `import … from './x'` / `export … from './x'` (type-only too: a type cycle is a design cycle) and `import('./x')`. */
const STATIC_IMPORT = /(?:import|export)\s[^'";]*?from\s+'(\.[^']+)'/g;
const DYNAMIC_IMPORT = /import\(\s*'(\.[^']+)'\s*\)/g;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of PRODUCTION_DIRS.flatMap((d) => tsFiles(join(root, d)))) {
    const text = readFileSync(file, 'utf8');
    const specs = [...text.matchAll(STATIC_IMPORT), ...text.matchAll(DYNAMIC_IMPORT)].map((m) => m[1]!);
    graph.set(
      file,
      specs.map((s) => resolve(dirname(file), s)),
    );
  }
  return graph;
}

/** Strongly connected components of more than one module (Tarjan), as repo-relative paths. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w.slice(root.length));
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('import graph', () => {
  const graph = importGraph();

  it('sees the modules and their imports', () => {
    // Guards the parser: a regex that matched nothing would make the checks below pass vacuously.
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get(join(root, 'origin/volume/server.ts'))).toContain(
      join(root, 'origin/volume/read-handler.ts'),
    );
    expect(graph.get(join(root, 'tiering/backends/registry.ts'))).toContain(
      join(root, 'tiering/backends/s3.ts'),
    );
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    const a = join(root, 'a.ts');
    const b = join(root, 'b.ts');
    expect(
      cycles(
        new Map([
          [a, [b]],
          [b, [a]],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts']]);
  });

  it('origin/master/ imports nothing from origin/volume/', () => {
    const volumeDir = join(root, 'origin/volume/');
    const offenders = [...graph]
      .filter(([file]) => file.startsWith(join(root, 'origin/master/')))
      .flatMap(([file, deps]) => deps.filter((d) => d.startsWith(volumeDir)).map((d) => `${file} -> ${d}`));
    expect(offenders).toEqual([]);
  });

  it('tiering/backends/ (the library) and tiering/service/ (the control plane) do not import each other', () => {
    const rooms = ['tiering/backends/', 'tiering/service/'].map((d) => join(root, d));
    const offenders = [...graph].flatMap(([file, deps]) =>
      rooms.flatMap((room, i) => {
        const other = rooms[1 - i]!;
        return file.startsWith(room)
          ? deps.filter((d) => d.startsWith(other)).map((d) => `${file} -> ${d}`)
          : [];
      }),
    );
    expect(offenders).toEqual([]);
  });
});
