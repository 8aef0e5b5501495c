#!/usr/bin/env node
// `node scripts/measure-tool-snapshot.mjs [--runs N] [--node18]` (issue 13, P4; needs dist/ from
// `npx tsup`, swtpm, tpm2-tools, openssl; --node18 needs root and `apt-get update`, as the tests).
// Builds, into a temp folder: the snapshot entry (the tools bundle's code, run by
// v8.startupSnapshot.setDeserializeMainFunction, so nothing runs at build time) and the
// measuring driver (scripts/measure-tool-snapshot.ts, on group 4's bed); then runs the driver.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 40;
const out = mkdtempSync(join(tmpdir(), 'p4-snapshot-'));

// The snapshot entry: what src/bin/eve-tools.ts does, deferred to the deserialized main.
// `node --snapshot-blob B TOOL ARGS` gives process.argv = [node, TOOL, ...ARGS]. Run as a plain
// script (`node snapshot-entry.cjs TOOL ARGS`) it runs at once: the lazy builtins without a snapshot.
const ENTRY = `
import { startupSnapshot } from 'node:v8';
import { createServiceClient } from './client.js';
import { main } from './run.js';
import { TOOL_DEFS } from './tools/index.js';
import { TOOL_NAMES } from '../service/protocol/tools.js';
const TOOLS = new Map(TOOL_NAMES.flatMap((n) => [[TOOL_DEFS[n].name, TOOL_DEFS[n]], [n, TOOL_DEFS[n]]]));
function run(at) {
  const tool = TOOLS.get(process.argv[at] ?? '');
  if (!tool) { process.stderr.write('eve-tools: unknown tool\\n'); process.exit(2); }
  process.argv.splice(1, at, tool.name);
  main(tool, createServiceClient);
}
if (startupSnapshot.isBuildingSnapshot()) {
  startupSnapshot.setDeserializeMainFunction(() => {
    // Node 18's snapshot require warns on first use of a builtin it does not list (node:http).
    const emitWarning = process.emitWarning;
    process.emitWarning = (w, ...rest) => (String(w).includes('user snapshot') ? undefined : emitWarning.call(process, w, ...rest));
    run(1);
  });
} else run(2);
`;

// node:http, node:net and node:child_process cannot be loaded by a snapshot builder (Node 20.20:
// "methods.toSorted is not a function"; a warning for child_process at every run): load them
// on first use instead.
const LAZY = {
  // ESM: the bundle copies a CommonJS module's own names at import time (which would load it).
  'node:http': `let m; const get = () => (m ??= require('node:http'));
export function Agent(...a) { return new (get().Agent)(...a); }
export const request = (...a) => get().request(...a);`,
  // Node 18 refuses node:net in a snapshot ("not yet supported in user snapshots").
  'node:net': `let m; const get = () => (m ??= require('node:net'));
export function Socket(...a) { return new (get().Socket)(...a); }
export const connect = (...a) => get().connect(...a);`,
  // commander's CommonJS `require('child_process').spawn(...)`, at run time only.
  'node:child_process': `let m; const get = () => (m ??= require('node:child_process'));
module.exports = { spawn: (...a) => get().spawn(...a) };`,
};
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(http|net|child_process)$/ }, (a) =>
      // The lazy module's own require is the real builtin.
      a.namespace === 'lazy' ? { path: a.path, external: true } : { path: a.path.startsWith('node:') ? a.path : `node:${a.path}`, namespace: 'lazy' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (a) => ({ contents: LAZY[a.path], loader: 'js' }));
  },
};

try {
  const entry = join(out, 'snapshot-entry.cjs');
  await build({
    stdin: { contents: ENTRY, resolveDir: join(ROOT, 'src/cli'), sourcefile: 'snapshot-entry.ts', loader: 'ts' },
    bundle: true, platform: 'node', target: 'node18', format: 'cjs', minifyWhitespace: true, outfile: entry, plugins: [lazyBuiltins], logLevel: 'error',
  });
  await build({
    entryPoints: [join(ROOT, 'scripts/measure-tool-snapshot.ts')],
    bundle: true, platform: 'node', target: 'node20', format: 'esm', outfile: join(out, 'driver.mjs'), packages: 'external', logLevel: 'error',
  });
  // A snapshot with nothing of ours in it: the cost of starting from any user snapshot.
  const empty = join(out, 'empty-entry.cjs');
  writeFileSync(empty, "require('node:v8').startupSnapshot.setDeserializeMainFunction(() => {});\n");
  const { run } = await import(pathToFileURL(join(out, 'driver.mjs')).href);
  await run({ root: ROOT, entry, empty, n: runs, node18: args.includes('--node18') });
} finally {
  rmSync(out, { recursive: true, force: true });
}
