/**
 * The provider against real cgroup v1 hierarchies made here (this machine mounts the
 * controllers as v1, EVE does too): a child placed in the app's cgroup of each controller burns
 * CPU and holds 64 MiB, and the figures move, read from the one hierarchy path as a tenant names
 * it. Where no writable v1 cpuacct and memory hierarchies exist the test says why and does not run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAppCgroup } from '../../src/service/usage/cgroup-place.js';
import { readCgroupMounts } from '../../src/service/usage/mountinfo.js';
import { burner, cgroupDirsRemovedAfterAll, writableCgroup1 } from './cgroup-mount.js';

const required = writableCgroup1(['cpuacct', 'memory']);
if (!required.ok) console.warn(`real cgroup v1 test not run: ${required.why}`);
/** Controllers made too where this machine lets us (their figures are checked only then). */
const optional = Object.fromEntries(
  ['cpu', 'pids', 'blkio'].flatMap((c) => {
    const w = writableCgroup1([c]);
    return w.ok ? [[c, w.points[c]!]] : [];
  }),
) as Record<string, string>;
const APP = `/eve-usage-v1-test-${process.pid}`;
const dirs = cgroupDirsRemovedAfterAll();

describe.skipIf(!required.ok)('a real cgroup v1', () => {
  it('CPU and memory (and pids where mounted) move when a process in the app cgroup works', async () => {
    const points = { ...optional, ...(required as { points: Record<string, string> }).points };
    for (const root of new Set(Object.values(points))) {
      mkdirSync(join(root, APP));
      dirs.push(join(root, APP));
    }
    const mounts = await readCgroupMounts();
    const before = await readAppCgroup(APP, mounts);
    if (!before.available || !before.cpu.available || !before.memory.available) throw new Error(`a new v1 cgroup: ${JSON.stringify(before)}`);
    expect(before.cgroupVersion).toBe(1);
    expect(before.cpu.usageUsec).toBe(0);
    expect(before.memory.currentBytes).toBe(0);

    const b = burner();
    for (const root of new Set(Object.values(points))) writeFileSync(join(root, APP, 'cgroup.procs'), `${b.pid}\n`);
    const placed = await readAppCgroup(APP, mounts);
    if (optional.pids) expect(placed.available && placed.pids.available && placed.pids.current).toBeGreaterThanOrEqual(1);
    b.go();
    expect(await b.done).toBe(0);

    const after = await readAppCgroup(APP, mounts);
    if (!after.available || !after.cpu.available || !after.memory.available) throw new Error(`after: ${JSON.stringify(after)}`);
    expect(after.cpu.usageUsec).toBeGreaterThan(0);
    expect(after.cpu.userUsec + after.cpu.systemUsec).toBeGreaterThan(0);
    // usage_in_bytes falls when the child exits; max_usage_in_bytes remembers the 64 MiB.
    expect(after.memory.peakBytes).toBeGreaterThan(64 * 1024 * 1024);
    if (optional.cpu) expect(after.cpu.nrPeriods).toBe(0); // no quota set: no CFS periods
    if (optional.pids) expect(after.pids.available && after.pids.current).toBe(0);
    if (optional.blkio) expect(after.io.available).toBe(true);
  });
});
