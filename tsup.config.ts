import { readdirSync } from 'node:fs';
import { defineConfig } from 'tsup';

// Two outputs:
// - the library (src/tpm): ESM + CJS + .d.ts, dependencies left external;
// - executables (src/bin/*): each bundled into one self-contained CommonJS file that needs
//   only `node` (no node_modules), so it can be copied into a container or the qemu guest.
//   eve-tools.cjs holds every eve_tools_tpm2_* tool and dispatches on its invoked name, for
//   embedding in cloud-init user-data (src/service/tenants/cloud-init.ts).
//   The vsock addon is a .node file found at run time (prebuilds/, see src/service/vsock/addon.ts).
export default defineConfig([
  {
    // The package's entries ("exports" in package.json): `.` and the subpaths ./wire, ./transport, ./decode.
    entry: {
      'tpm/index': 'src/tpm/index.ts',
      'tpm/wire': 'src/tpm/entries/wire.ts',
      'tpm/transport': 'src/tpm/entries/transport.ts',
      'tpm/decode': 'src/tpm/entries/decode.ts',
    },
    format: ['esm', 'cjs'],
    // Shared chunks in CJS as in ESM: one copy of each class, so `instanceof TpmDecodeError`
    // holds for an error thrown by ./decode and checked against `.`.
    splitting: true,
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
    // Node 18: what Debian 12 and Ubuntu 24.04 ship, so the tools run in stock guests
    // (test/cli/node18.test.ts runs them on Debian's own nodejs 18).
    target: 'node18',
    outDir: 'dist',
    noExternal: [/.*/],
    shims: true,
    banner: { js: '#!/usr/bin/env node' },
    outExtension: () => ({ js: '.cjs' }),
    // No comments or indentation: smaller and parsed faster at every tool start, and ASCII-only
    // (one "§" in a kept comment made V8 hold the whole source as a two-byte string: +0.8 MiB
    // in the service's heap). Names are kept, so stack traces still read.
    minifyWhitespace: true,
  },
]);
