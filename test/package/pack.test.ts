/**
 * What `npm pack` ships, from a tree like a fresh clone (the files git would commit, no dist/):
 * `prepack` must build, the tarball must hold the bins, LICENSE and docs/, and a project that
 * installs it must be able to run the bins (bundled: no commander or pino installed) and import
 * the library from ESM and CJS: every entry of "exports" (`.`, ./wire, ./transport, ./decode) with
 * exactly the names pinned in public-api.ts, one copy of each class across entries, nothing else
 * reachable (no deep imports), and types that TypeScript resolves under node16 and node10.
 * One test, about 1-2 min (a tsup build, an npm install, two tsc runs).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';
import { INTERNALS, PUBLIC_API } from './public-api.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };
const work = mkdtempSync(join(tmpdir(), 'pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[], cwd: string): string => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  return r.stdout;
};

/** Paths git would commit; without git (a tarball checkout), everything but build output. */
function committable(): string[] {
  try {
    return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\0')
      .filter(Boolean);
  } catch {
    const skip = new Set(['node_modules', 'dist', '.git', 'coverage', '.bench', 'tmp']);
    const walk = (rel: string): string[] =>
      readdirSync(join(REPO_ROOT, rel), { withFileTypes: true }).flatMap((e) => {
        const p = rel ? `${rel}/${e.name}` : e.name;
        if (!rel && skip.has(e.name)) return [];
        return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
      });
    return walk('');
  }
}

/** The working tree as git would commit it (tracked and new files, nothing ignored): no dist/. */
function freshTree(): string {
  const tree = join(work, 'tree');
  const files = committable().filter((f) => existsSync(join(REPO_ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(tree, f)), { recursive: true });
    copyFileSync(join(REPO_ROOT, f), join(tree, f));
  }
  // The build tools, as `npm ci` would have installed them.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(tree, 'node_modules'));
  return tree;
}

describe('npm package', () => {
  it('packs from a fresh tree with prepack, and the installed package works', () => {
    const tree = freshTree();
    expect(existsSync(join(tree, 'dist'))).toBe(false);
    const out = join(work, 'out');
    mkdirSync(out);
    // prepack's build output comes first on stdout; the JSON report is the last thing.
    const report = run('npm', ['pack', '--json', '--pack-destination', out], tree);
    const packed = JSON.parse(report.slice(report.search(/^\[\s*\{/m))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    const entryFiles = ['index', 'wire', 'transport', 'decode'].flatMap((n) => ['js', 'cjs', 'd.ts', 'd.cts'].map((x) => `dist/tpm/${n}.${x}`));
    for (const f of ['LICENSE', 'README.md', 'docs/SERVICE.md', 'docs/TOOLS.md', ...entryFiles, ...Object.values(pkg.bin).map((b) => b.replace(/^\.\//, ''))]) {
      expect(files, f).toContain(f);
    }
    expect(readFileSync(join(tree, 'LICENSE'), 'utf8')).toContain('Apache License');

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(out, packed[0]!.filename)], app);
    // Library users get only what the library imports.
    const installed = readdirSync(join(app, 'node_modules'));
    expect(installed).not.toContain('commander');
    expect(installed).not.toContain('pino');

    const bin = (name: string): string => join(app, 'node_modules/.bin', name);
    expect(run(bin('eve-tpm-service'), ['--version'], app)).toBe(`eve-tpm-service ${pkg.version}\n`);
    expect(run(bin('eve_tools_tpm2_genaik'), ['--version'], app)).toBe(`eve_tools_tpm2_genaik ${pkg.version}\n`);
    expect(run('npx', ['--no-install', 'eve_tools_tpm2_sign', '--version'], app)).toBe(`eve_tools_tpm2_sign ${pkg.version}\n`);

    const probe = "String(typeof m.Tpm === 'function' && typeof m.openTransport === 'function')";
    writeFileSync(join(app, 'esm.mjs'), `import * as m from '${pkg.name}';\nconsole.log(${probe});\n`);
    writeFileSync(join(app, 'cjs.cjs'), `const m = require('${pkg.name}');\nconsole.log(${probe});\n`);
    expect(run(process.execPath, ['esm.mjs'], app)).toBe('true\n');
    expect(run(process.execPath, ['cjs.cjs'], app)).toBe('true\n');

    // Every entry from both module systems: its names, shared classes, errors across entries.
    const entries = Object.keys(PUBLIC_API);
    const spec = (e: string): string => (e === '.' ? pkg.name : `${pkg.name}/${e.slice(2)}`);
    const entryReport = `
      const keys = Object.fromEntries(Object.entries(m).map(([e, mod]) => [e, Object.keys(mod).sort()]));
      // A name given by two entries must be one object (one class for instanceof), not a copy per bundle.
      const copies = Object.entries(m).flatMap(([e, mod]) => Object.keys(mod).filter((n) => n in m['.'] && mod[n] !== m['.'][n]).map((n) => e + ' ' + n));
      let crossEntryError = 'not thrown';
      try { m['./decode'].decodeCommandHex('zz'); } catch (err) { crossEntryError = err instanceof m['.'].TpmDecodeError && err instanceof m['./wire'].TpmDecodeError; }
      console.log(JSON.stringify({ keys, copies, crossEntryError }));`;
    writeFileSync(join(app, 'entries.mjs'), `const m = {};\n${entries.map((e) => `m['${e}'] = await import('${spec(e)}');`).join('\n')}\n${entryReport}\n`);
    writeFileSync(join(app, 'entries.cjs'), `const m = {};\n${entries.map((e) => `m['${e}'] = require('${spec(e)}');`).join('\n')}\n${entryReport}\n`);
    const expected = { keys: Object.fromEntries(entries.map((e) => [e, PUBLIC_API[e as keyof typeof PUBLIC_API].values])), copies: [], crossEntryError: true };
    for (const script of ['entries.mjs', 'entries.cjs']) {
      const got = JSON.parse(run(process.execPath, [script], app)) as typeof expected;
      expect(got, script).toEqual(expected);
      expect(Object.values(got.keys).flat().filter((n) => INTERNALS.includes(n)), script).toEqual([]);
    }

    // Only the entries are reachable: a deep import of a built file is refused by "exports".
    writeFileSync(join(app, 'deep.mjs'), `import('${pkg.name}/dist/tpm/index.js').then(() => console.log('imported'), (e) => console.log(e.code));\n`);
    writeFileSync(join(app, 'deep.cjs'), `try { require('${pkg.name}/dist/tpm/index.cjs'); console.log('imported'); } catch (e) { console.log(e.code); }\n`);
    expect(run(process.execPath, ['deep.mjs'], app)).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED\n');
    expect(run(process.execPath, ['deep.cjs'], app)).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED\n');

    // The shipped declarations (checked, not skipped) for an ESM and a CJS consumer under node16
    // resolution, and under node10 resolution, which finds the subpaths through typesVersions.
    const consumer = [
      `import { Tpm, openTransport, TpmDecodeError, type TPMT_PUBLIC, type Transport } from '${pkg.name}';`,
      `import { Reader, u16, type Codec } from '${pkg.name}/wire';`,
      `import { QueuedTransport, type Connector } from '${pkg.name}/transport';`,
      `import { decodeCommandHex, type CommandFrameView } from '${pkg.name}/decode';`,
      `const transport: Transport = openTransport('/dev/tpmrm0');`,
      `export const tpm: Tpm = new Tpm(transport);`,
      `export const codec: Codec<number> = u16;`,
      `export const view: CommandFrameView = decodeCommandHex('80010000000c0000017b0008');`,
      `export { Reader, QueuedTransport, TpmDecodeError };`,
      `export type Used = [TPMT_PUBLIC, Connector];`,
      '',
    ].join('\n');
    writeFileSync(join(app, 'consumer.mts'), consumer);
    writeFileSync(join(app, 'consumer.cts'), consumer);
    writeFileSync(join(app, 'consumer10.ts'), consumer);
    const tsc = (moduleKind: string, resolution: string, ...files: string[]): string =>
      run(process.execPath, [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--target', 'es2022', '--module', moduleKind, '--moduleResolution', resolution, '--types', 'node', '--typeRoots', join(REPO_ROOT, 'node_modules/@types'), ...files], app);
    expect(tsc('node16', 'node16', 'consumer.mts', 'consumer.cts')).toBe('');
    expect(tsc('commonjs', 'node10', 'consumer10.ts')).toBe('');
  }, 420_000);
});
