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
    entry: { 'bin/tpm2-decode': 'src/bin/tpm2-decode.ts' },
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    outDir: 'dist',
    noExternal: [/.*/],
    external: ['node-vsock-linux-x64-gnu'],
    banner: { js: '#!/usr/bin/env node' },
    outExtension: () => ({ js: '.cjs' }),
  },
]);
