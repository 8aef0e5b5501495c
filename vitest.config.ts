import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites each start their own swtpm; CI machines have 2 cores.
    maxWorkers: 2,
    globalSetup: ['./test/helpers/shared-check.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'host', include: ['test/**/*.test.ts'], exclude: ['test/guest/**'], sequence: { groupOrder: 0 } },
      },
      {
        // The qemu guests run under software emulation: one at a time, after everything else,
        // so they neither starve nor are starved by the host suites.
        extends: true,
        test: { name: 'guest', include: ['test/guest/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
