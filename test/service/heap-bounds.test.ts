/**
 * The service bounds V8's heap itself (src/service/heap-bounds.ts): in the bundled executable
 * the new space stays at its initial size under allocation churn that grows it in a plain node
 * process, unless the operator sized it; and the flags are chosen as documented. Observed with
 * v8.getHeapSpaceStatistics in the service's own process (a --require probe that churns at
 * exit), never with timing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heapFlags, HEAP_FLAGS } from '../../src/service/heap-bounds.js';
import { buildServiceBin } from './child.js';

// Churn with survivors, as a streamed body does; then report the new space's largest size.
const PROBE = `
process.on('exit', () => {
  const v8 = require('node:v8');
  const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
  let keep = [];
  let max = size();
  for (let i = 0; i < 200000; i++) {
    keep.push({ i, a: new Array(20).fill(i) });
    if (keep.length > 20000) keep = [];
    if (i % 500 === 0) max = Math.max(max, size());
  }
  require('node:fs').writeSync(2, 'NEW_SPACE ' + max + '\\n');
});
`;

const MiB = 1024 * 1024;

describe('heap bounds', () => {
  let bin: { bin: string; cleanup: () => void };
  let dir: string;
  let probe: string;

  /** Largest new space seen by the probe in `node ...nodeArgs file args`. */
  const newSpace = (nodeArgs: string[], file: string[], env: Record<string, string> = {}): number => {
    const r = spawnSync(process.execPath, [...nodeArgs, ...file], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, ...env, NODE_OPTIONS: `--require ${probe}${env.NODE_OPTIONS ? ` ${env.NODE_OPTIONS}` : ''}` },
    });
    const m = /NEW_SPACE (\d+)/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    return Number(m![1]);
  };

  beforeAll(() => {
    bin = buildServiceBin();
    dir = mkdtempSync(join(tmpdir(), 'heap-bounds-'));
    probe = join(dir, 'probe.cjs');
    writeFileSync(probe, PROBE);
  }, 60_000);
  afterAll(() => {
    bin?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the new space at its initial size in the service executable', () => {
    const plain = newSpace([], ['-e', '0']);
    const service = newSpace([], [bin.bin, '--version']);
    expect(plain).toBeGreaterThan(4 * MiB); // the churn does grow it when nothing bounds it
    expect(service).toBeLessThanOrEqual(2 * MiB);
  });

  it("leaves an operator's own young-generation size alone", () => {
    expect(newSpace(['--max-semi-space-size=8'], [bin.bin, '--version'])).toBeGreaterThan(4 * MiB);
    expect(newSpace([], [bin.bin, '--version'], { NODE_OPTIONS: '--max-semi-space-size=8' })).toBeGreaterThan(4 * MiB);
  });

  it('chooses each flag unless the operator gave it (command line or NODE_OPTIONS, - or _)', () => {
    const all = HEAP_FLAGS.map((f) => f.flag);
    expect(all).toEqual(['--semi-space-growth-factor=1', '--heap-growing-percent=10']);
    expect(heapFlags([], undefined)).toEqual(all);
    expect(heapFlags(['--max-old-space-size=64', '--enable-source-maps'], '--no-warnings')).toEqual(all);
    expect(heapFlags(['--max-semi-space-size=4'], undefined)).toEqual(['--heap-growing-percent=10']);
    expect(heapFlags([], '--no-warnings --min_semi_space_size=2')).toEqual(['--heap-growing-percent=10']);
    expect(heapFlags(['--semi-space-growth-factor', '4'], undefined)).toEqual(['--heap-growing-percent=10']);
    expect(heapFlags(['--heap-growing-percent=50'], '--max-semi-space-size=1')).toEqual([]);
    // Not a prefix match: a longer flag name is someone else's.
    expect(heapFlags(['--max-semi-space-sizes=4'], undefined)).toEqual(all);
  });
});
