#!/usr/bin/env node
// `npm run bench [-- --smoke] [-- --only 1,3,5] [-- --out FILE]`
//
// Prepares what the benchmark needs, then runs it:
//  1. TSS.JS (the marshalling baseline) in bench/tss/node_modules, installed from
//     bench/tss/package-lock.json with --ignore-scripts (its dependency ffi-napi does not build
//     on Node 20, and TSS.JS needs it only for Windows TBS). Kept out of the project's own
//     package.json so that `npm ci` of the project never meets that native build.
//  2. dist/ (the service and the container tools, `npx tsup`) when missing or older than src/.
//  3. bench/src/*.ts bundled with tsup (esbuild) into .bench/build/, then run in this process.
// Everything the benchmark starts (swtpm, the service) is stopped on exit, failure or Ctrl-C.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = join(ROOT, 'bench');
const OUT = join(ROOT, '.bench', 'build');
const DIST_NEEDED = ['eve-tpm-service', 'eve_tools_tpm2_sign'].map((b) => join(ROOT, 'dist', 'bin', `${b}.cjs`));

const log = (s) => process.stderr.write(`[bench] ${s}\n`);

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, e)));
  return newest;
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    throw new Error(`${what} failed (${cmd} ${args.join(' ')}: exit ${r.status ?? r.signal})`);
  }
}

function ensureTssJs() {
  if (existsSync(join(BENCH, 'tss', 'node_modules', 'tss.js', 'package.json'))) return;
  log('installing TSS.JS for the marshalling comparison (npm ci --ignore-scripts in bench/tss)');
  run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', join(BENCH, 'tss')], 'installing TSS.JS');
}

/** Returns undefined when dist is fresh, else why it is rebuilt. */
function distStale() {
  if (!DIST_NEEDED.every((p) => existsSync(p))) return 'dist/ is missing';
  const built = Math.min(...DIST_NEEDED.map((p) => statSync(p).mtimeMs));
  const inputs = [join(ROOT, 'src'), join(ROOT, 'package.json'), join(ROOT, 'tsup.config.ts')];
  return inputs.some((p) => existsSync(p) && newestMtime(p) > built) ? 'src/ changed since the last build' : undefined;
}

async function bundleBench() {
  const { build } = await import('tsup');
  await build({
    config: false,
    entry: { main: join(BENCH, 'src', 'main.ts') },
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    outDir: OUT,
    clean: true,
    silent: true,
    sourcemap: true,
    // Dependencies (pino, @peculiar/*) load from node_modules; the project's sources
    // (src/tpm, src/service/client, test/helpers/swtpm) are bundled in.
    skipNodeModulesBundle: true,
  });
}

const args = process.argv.slice(2);
try {
  ensureTssJs();
  const stale = distStale();
  let buildError;
  if (stale) {
    log(`building dist with npx tsup (${stale})`);
    try {
      run('npx', ['tsup'], 'npx tsup');
    } catch (e) {
      // Groups that need only the library still run; the others report the failure.
      buildError = e.message;
      log(`${buildError}: groups that need the service or the tools will fail`);
    }
  }
  await bundleBench();
  const { main } = await import(pathToFileURL(join(OUT, 'main.js')).href);
  process.exitCode = await main(args, { root: ROOT, buildError });
} catch (e) {
  log(`failed: ${e?.stack ?? e}`);
  process.exitCode = 1;
}
