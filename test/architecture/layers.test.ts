/**
 * The direction of dependency, checked on the sources: src/tpm imports nothing above it; the
 * service never imports the tools; the contract (service/protocol) stands on nothing but itself;
 * the client imports no server room; the tools reach the service only through the client and
 * the contract (no server room ends up in a tool bundle); and no import cycle anywhere in src/.
 * Imports are read as text (static `import`/`export … from`, bare `import '…'` and `import('…')`), resolved by path.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';

const SRC = join(REPO_ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;

/** Relative imports of `file`, as repo paths of .ts files (specifiers end in .js, as ESM wants). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
    if (target.endsWith('.ts')) out.push(relative(REPO_ROOT, target));
  }
  return out;
}

const files = sources(SRC).map((f) => relative(REPO_ROOT, f));
const graph = new Map(files.map((f) => [f, importsOf(join(REPO_ROOT, f))]));

function closure(roots: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...roots];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...(graph.get(f) ?? []));
  }
  return seen;
}

const under = (room: string) => (f: string): boolean => f.startsWith(`src/${room}/`);

/** What the tools may use of src/service: the client, the protocol's vocabulary and the vsock adapter. */
const CLIENT_SIDE = [/^src\/service\/client\//, /^src\/service\/protocol\//, /^src\/service\/vsock\//];

describe('layers', () => {
  it('reads a real import graph (every relative import resolves to a source file)', () => {
    expect(files.length).toBeGreaterThan(50);
    const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${f} → ${d}`));
    expect(missing).toEqual([]);
  });

  it('src/tpm imports nothing outside src/tpm', () => {
    const bad = files.filter(under('tpm')).flatMap((f) => graph.get(f)!.filter((d) => !under('tpm')(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
  });

  it('src/service imports neither the tools nor the executables', () => {
    const bad = files.filter(under('service')).flatMap((f) => graph.get(f)!.filter((d) => under('cli')(d) || under('bin')(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
  });

  it('src/service/protocol (the contract) imports nothing outside itself: no server room, no TPM library', () => {
    const bad = files.filter(under('service/protocol')).flatMap((f) => graph.get(f)!.filter((d) => !under('service/protocol')(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
  });

  it('the client imports only itself, the contract and the vsock adapter', () => {
    const ok = (d: string): boolean => ['service/client', 'service/protocol', 'service/vsock'].some((room) => under(room)(d));
    const bad = files.filter(under('service/client')).flatMap((f) => graph.get(f)!.filter((d) => !ok(d)).map((d) => `${f} → ${d}`));
    expect(bad).toEqual([]);
    expect(files.filter(under('service/client')).length).toBeGreaterThan(0);
  });

  it('the tools and their executables import the service only through the client and the contract', () => {
    const tools = files.filter((f) => under('cli')(f) || /^src\/bin\/eve[-_]tools/.test(f));
    expect(tools.length).toBeGreaterThan(5);
    const bad = tools.flatMap((f) =>
      graph.get(f)!.filter((d) => under('service')(d) && !under('service/client')(d) && !under('service/protocol')(d)).map((d) => `${f} → ${d}`),
    );
    expect(bad).toEqual([]);
  });

  it('the tools reach the service only through its client side', () => {
    const reached = closure(files.filter((f) => under('cli')(f) || /^src\/bin\/eve[-_]tools/.test(f)));
    const server = [...reached].filter((f) => under('service')(f) && !CLIENT_SIDE.some((r) => r.test(f)));
    expect(server).toEqual([]);
    expect([...reached].some((f) => f === 'src/service/client/client.ts')).toBe(true);
  });

  it('has no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' → '));
        return;
      }
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });
});
