#!/usr/bin/env node
// `node scripts/measure-tool-code-cache.mjs [--runs N] [--node18]` (issue 13, P4; needs dist/ from
// `npx tsup`, swtpm, tpm2-tools, openssl; --node18 needs root and `apt-get update`, as the tests).
// Does a V8 code cache (vm.Script cachedData) cut a tool's start? Writes a measuring loader (the
// bundle compiled through vm.Script, with or without a cache file) and the driver
// (scripts/measure-tool-code-cache.ts, on group 4's bed) into a temp folder, then runs the driver.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 40;
const out = mkdtempSync(join(tmpdir(), 'p4-code-cache-'));

// `node loader.cjs BUNDLE ARGS`: P4_CACHE the cache file; P4_MAKE=compile writes it right after
// compiling, P4_MAKE=run at exit (after the tool's work, with the lazily compiled functions);
// without P4_MAKE the cache is only read. No P4_CACHE: vm.Script alone, no cache.
const LOADER = `'use strict';
const fs = require('fs'), path = require('path'), vm = require('vm'), Module = require('module');
const bundle = path.resolve(process.argv[2]);
process.argv.splice(1, 2, bundle);
let src = fs.readFileSync(bundle, 'latin1');
if (src.startsWith('#!')) src = '//' + src.slice(2);
const file = process.env.P4_CACHE, make = process.env.P4_MAKE;
let cachedData;
if (file && !make) cachedData = fs.readFileSync(file);
const script = new vm.Script(Module.wrap(src), { filename: bundle, cachedData });
if (cachedData && script.cachedDataRejected) { process.stderr.write('cache rejected\\n'); process.exit(70); }
const save = () => fs.writeFileSync(file, script.createCachedData());
if (make === 'compile') save();
if (make === 'run') process.once('exit', save);
const m = new Module(bundle, null);
m.filename = bundle;
script.runInThisContext().call(m.exports, m.exports, Module.createRequire(bundle), m, bundle, path.dirname(bundle));
`;

try {
  const loader = join(out, 'loader.cjs');
  writeFileSync(loader, LOADER);
  await build({
    entryPoints: [join(ROOT, 'scripts/measure-tool-code-cache.ts')],
    bundle: true, platform: 'node', target: 'node20', format: 'esm', outfile: join(out, 'driver.mjs'), packages: 'external', logLevel: 'error',
  });
  const { run } = await import(pathToFileURL(join(out, 'driver.mjs')).href);
  await run({ root: ROOT, loader, n: runs, node18: args.includes('--node18') });
} finally {
  rmSync(out, { recursive: true, force: true });
}
