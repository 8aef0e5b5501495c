/**
 * The cgroup provider against a real cgroup v2 made here: a child process placed in it through
 * cgroup.procs burns a fixed amount of CPU (and memory, where the memory controller is on), and
 * the figures move. Where no writable cgroup v2 exists the test says why and does not run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCgroup } from '../../src/service/usage/cgroup.js';
import { burner, cgroupDirsRemovedAfterAll, writableCgroup2 } from './cgroup-mount.js';

const mount = writableCgroup2();
if (!mount.ok) console.warn(`real cgroup test not run: ${mount.why}`);
const dirs = cgroupDirsRemovedAfterAll();

describe.skipIf(!mount.ok)('a real cgroup v2', () => {
  it('CPU (and memory where its controller is on) move when a process in the cgroup works', async () => {
    const cg = join((mount as { root: string }).root, `eve-usage-test-${process.pid}`);
    mkdirSync(cg);
    dirs.push(cg);
    const before = await readCgroup(cg);
    if (!before.available || !before.cpu.available) throw new Error(`cpu.stat of a new cgroup: ${JSON.stringify(before)}`);
    expect(before.cpu.usageUsec).toBe(0);

    const b = burner();
    writeFileSync(join(cg, 'cgroup.procs'), `${b.pid}\n`);
    b.go();
    expect(await b.done).toBe(0);

    const after = await readCgroup(cg);
    if (!after.available || !after.cpu.available) throw new Error(`cpu.stat after: ${JSON.stringify(after)}`);
    expect(after.cpu.usageUsec).toBeGreaterThan(0);
    expect(after.cpu.usageUsec).toBeGreaterThanOrEqual(after.cpu.userUsec);
    expect(after.cpu.userUsec + after.cpu.systemUsec).toBeGreaterThan(0);
    // memory.current falls when the child exits; memory.peak (kernels >= 5.19) remembers.
    if (after.memory.available) {
      if (after.memory.peakBytes !== undefined) expect(after.memory.peakBytes).toBeGreaterThan(64 * 1024 * 1024);
    } else expect(after.memory.reason).toBe('memory.current does not exist'); // controller not enabled here
  });
});
