/**
 * The public API on the sources: each entry of package.json "exports" gives exactly the names
 * pinned in public-api.ts (values at run time, values and types as TypeScript sees them), no
 * entry gives a package-internal helper, and package.json, tsup.config.ts and the pin agree on
 * which source file each entry is built from. pack.test.ts checks the built tarball the same way.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import tsupConfig from '../../tsup.config.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { INTERNALS, PUBLIC_API } from './public-api.js';

type Entry = keyof typeof PUBLIC_API;
const ENTRIES = Object.keys(PUBLIC_API) as Entry[];
/** `.` → `index`, `./wire` → `wire`: the file name under dist/tpm/. */
const distName = (entry: Entry): string => (entry === '.' ? 'index' : entry.slice(2));

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  typesVersions?: Record<string, Record<string, string[]>>;
};

/** Every export of each entry as the compiler sees it: a name is a value if it exists at run time. */
function compilerView(): { entries: Map<Entry, { values: string[]; types: string[] }>; exportedAnywhere: Set<string> } {
  const program = ts.createProgram(
    ENTRIES.map((e) => join(REPO_ROOT, PUBLIC_API[e].source)),
    { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true },
  );
  const checker = program.getTypeChecker();
  const exportsOf = (file: string): ts.Symbol[] => {
    const sf = program.getSourceFile(file);
    const mod = sf && checker.getSymbolAtLocation(sf);
    if (!mod) throw new Error(`${file} is not a module the compiler can read`);
    return checker.getExportsOfModule(mod);
  };
  const entries = new Map<Entry, { values: string[]; types: string[] }>();
  for (const e of ENTRIES) {
    const values: string[] = [];
    const types: string[] = [];
    for (const s of exportsOf(join(REPO_ROOT, PUBLIC_API[e].source))) {
      const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
      (target.flags & ts.SymbolFlags.Value ? values : types).push(s.name);
    }
    entries.set(e, { values: values.sort(), types: types.sort() });
  }
  // What the library's own modules export (to prove each pinned internal still exists).
  const exportedAnywhere = new Set<string>();
  for (const sf of program.getSourceFiles()) {
    if (!sf.fileName.startsWith(join(REPO_ROOT, 'src/tpm/'))) continue;
    for (const s of exportsOf(sf.fileName)) exportedAnywhere.add(s.name);
  }
  return { entries, exportedAnywhere };
}

const view = compilerView();

describe('public API', () => {
  it('package.json, tsup.config.ts and the pin name the same entries and sources', () => {
    expect(Object.keys(pkg.exports).filter((k) => k !== './package.json')).toEqual(ENTRIES);
    // The library's build is the one with an ESM output (the executables are CJS only).
    const configs = (Array.isArray(tsupConfig) ? tsupConfig : [tsupConfig]) as Array<{ format?: unknown; entry?: unknown }>;
    const library = configs.find((c) => Array.isArray(c.format) && c.format.includes('esm'));
    const built = library?.entry as Record<string, string> | undefined;
    expect(built).toEqual(Object.fromEntries(ENTRIES.map((e) => [`tpm/${distName(e)}`, PUBLIC_API[e].source])));
    for (const e of ENTRIES) {
      const n = distName(e);
      expect(pkg.exports[e], e).toEqual({
        import: { types: `./dist/tpm/${n}.d.ts`, default: `./dist/tpm/${n}.js` },
        require: { types: `./dist/tpm/${n}.d.cts`, default: `./dist/tpm/${n}.cjs` },
      });
      // TypeScript with the old node10 resolution reads typesVersions for subpaths.
      if (e !== '.') expect(pkg.typesVersions?.['*']?.[n], e).toEqual([`./dist/tpm/${n}.d.ts`]);
    }
  });

  it('each pinned list is sorted and without duplicates, and values and types do not overlap', () => {
    for (const e of ENTRIES) {
      const { values, types } = PUBLIC_API[e];
      expect(values, e).toEqual([...new Set(values)].sort());
      expect(types, e).toEqual([...new Set(types)].sort());
      expect(values.filter((n) => types.includes(n)), e).toEqual([]);
    }
  });

  for (const e of ENTRIES) {
    it(`${e} gives exactly its pinned names at run time`, async () => {
      const mod = (await import(join(REPO_ROOT, PUBLIC_API[e].source))) as Record<string, unknown>;
      expect(Object.keys(mod).sort()).toEqual(PUBLIC_API[e].values);
      for (const n of PUBLIC_API[e].values) expect(mod[n], `${e} ${n}`).toBeDefined();
    });

    it(`${e} gives exactly its pinned values and types to TypeScript`, () => {
      expect(view.entries.get(e)).toEqual({ values: PUBLIC_API[e].values, types: PUBLIC_API[e].types });
    });
  }

  it('no entry gives a package-internal helper', () => {
    const leaked = ENTRIES.flatMap((e) => [...PUBLIC_API[e].values, ...PUBLIC_API[e].types, ...view.entries.get(e)!.values, ...view.entries.get(e)!.types]
      .filter((n) => INTERNALS.includes(n))
      .map((n) => `${e}: ${n}`));
    expect(leaked).toEqual([]);
    // Each internal still exists in the library's modules, so this list cannot go stale unnoticed.
    expect(INTERNALS.filter((n) => !view.exportedAnywhere.has(n))).toEqual([]);
  });
});
