import { readdirSync } from 'node:fs';
import { defineConfig } from 'tsup';

// Two outputs:
// - the library (src/tpm): ESM + CJS + .d.ts, dependencies left external;
// - executables (src/bin/*): each bundled into one self-contained CommonJS file that needs
//   only `node` (no node_modules), so it can be copied into a container or the qemu guest.
//   The vsock addon stays external: it is a native module loaded at run time when present.
export default defineConfig([
  {
    entry: { 'tpm/index': 'src/tpm/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    outDir: 'dist',
  },
  {
    // Every file in src/bin/ is one executable (tpm2-decode, eve-tpm-service, eve_tools_tpm2_*).
    entry: Object.fromEntries(
      readdirSync('src/bin')
        .filter((f) => f.endsWith('.ts'))
        .map((f) => [`bin/${f.slice(0, -3)}`, `src/bin/${f}`]),
    ),
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    outDir: 'dist',
    noExternal: [/.*/],
    shims: true,
    external: ['node-vsock-linux-x64-gnu'],
    banner: { js: '#!/usr/bin/env node' },
    outExtension: () => ({ js: '.cjs' }),
  },
]);
