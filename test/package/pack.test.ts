/**
 * What `npm pack` ships, from a tree like a fresh clone (the files git would commit, no dist/):
 * `prepack` must build, the tarball must hold the bins, LICENSE and docs/, and a project that
 * installs it must be able to run the bins (bundled: no commander or pino installed) and import
 * the library from ESM and CJS. One test, about 30-60 s (a tsup build and an npm install).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; bin: Record<string, string> };
const work = mkdtempSync(join(tmpdir(), 'pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = (cmd: string, args: string[], cwd: string): string => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
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
    for (const f of ['LICENSE', 'README.md', 'docs/SERVICE.md', 'docs/TOOLS.md', 'dist/tpm/index.js', 'dist/tpm/index.cjs', 'dist/tpm/index.d.ts', ...Object.values(pkg.bin).map((b) => b.replace(/^\.\//, ''))]) {
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

    const probe = "String(typeof m.Writer === 'function' && typeof m.Reader === 'function')";
    writeFileSync(join(app, 'esm.mjs'), `import * as m from '${pkg.name}';\nconsole.log(${probe});\n`);
    writeFileSync(join(app, 'cjs.cjs'), `const m = require('${pkg.name}');\nconsole.log(${probe});\n`);
    expect(run(process.execPath, ['esm.mjs'], app)).toBe('true\n');
    expect(run(process.execPath, ['cjs.cjs'], app)).toBe('true\n');
  }, 300_000);
});
