/**
 * The cgroup v1 provider on fixture trees in the kernel's formats, and the placement that
 * finds the app's cgroup from one path whichever version the host mounts: the same figures as
 * v2 (with cgroupVersion), each missing file a reason for its figures alone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { placeCgroup, readAppCgroup } from '../../src/service/usage/cgroup-place.js';
import { readCgroupV1, USER_HZ } from '../../src/service/usage/cgroup-v1.js';
import { parseMountinfo, readCgroupMounts } from '../../src/service/usage/mountinfo.js';
import { UsageReader } from '../../src/service/usage/usage.js';
import { TpmAccounting } from '../../src/service/usage/tpm-accounting.js';
import { FULL_CGROUP, writeTree } from './fixtures.js';
import { SAME_AS_V2, V1_APP, writeV1Host } from './fixtures-v1.js';

const dir = mkdtempSync(join(tmpdir(), 'usage-v1-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const APP = '/eve-user-apps/0b6a3b6e-1c1f-4a4e-9d6e-4a0f1d2c3b4a';

/** A v1 host in a fixture tree: its mounts parsed, the app's directory per controller. */
function host(name: string, files = V1_APP, mounts?: ReadonlyArray<readonly string[]>) {
  const root = join(dir, name);
  const text = writeV1Host(root, APP, files, mounts);
  writeFileSync(join(dir, `${name}.mountinfo`), text);
  return { root, mounts: parseMountinfo(text), mountinfo: join(dir, `${name}.mountinfo`) };
}

describe('mountinfo', () => {
  it('lists the cgroup hierarchies with their controllers, roots and unescaped mount points', () => {
    const m = parseMountinfo(
      [
        '25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
        '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct',
        '32 30 0:29 /eve/services/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
        '39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
        '40 30 0:37 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw,nsdelegate',
        'garbage',
        '',
      ].join('\n'),
    );
    expect(m).toEqual([
      { version: 1, point: '/sys/fs/cgroup/cpu,cpuacct', root: '/', controllers: ['cpu', 'cpuacct'] },
      { version: 1, point: '/sys/fs/cgroup/memory', root: '/eve/services/x', controllers: ['memory'] },
      { version: 1, point: '/sys/fs/cgroup/systemd', root: '/', controllers: ['xattr'] },
      { version: 2, point: '/mnt/my cgroups', root: '/', controllers: [] },
    ]);
  });

  it('an unreadable mountinfo is a reason, not an exception', async () => {
    expect(await readCgroupMounts(join(dir, 'no-mountinfo'))).toEqual({ reason: `${join(dir, 'no-mountinfo')} cannot be read (ENOENT)` });
  });
});

describe('the cgroup v1 provider', () => {
  it('gives the same figures as v2 for the same app, with cgroupVersion 1', async () => {
    const h = host('full');
    const r = await readAppCgroup(APP, h.mounts);
    expect(r).toEqual({ available: true, cgroupVersion: 1, ...SAME_AS_V2 });
    const v2 = await readAppCgroup(writeTree(join(dir, 'v2-app'), FULL_CGROUP), h.mounts);
    expect(v2).toEqual({ available: true, cgroupVersion: 2, ...SAME_AS_V2 });
  });

  it('finds the app from its hierarchy path, the same under /sys/fs/cgroup, or its directory in any controller', async () => {
    const h = host('paths');
    const dirs = {
      cpuacct: join(h.root, 'cpuacct', APP),
      cpu: join(h.root, 'cpu', APP),
      memory: join(h.root, 'memory', APP),
      blkio: join(h.root, 'blkio', APP),
      pids: join(h.root, 'pids', APP),
    };
    for (const p of [APP, `/sys/fs/cgroup${APP}`, join(h.root, 'memory', APP), join(h.root, 'pids', APP)]) {
      expect(await placeCgroup(p, h.mounts), p).toEqual({ version: 1, dirs });
    }
    // Named in the unified hierarchy: read there as v2 (a hybrid host's cgroup2 has the core files only).
    writeTree(join(h.root, 'unified', APP), { 'cpu.stat': 'usage_usec 5\nuser_usec 5\nsystem_usec 0\n' });
    expect(await placeCgroup(join(h.root, 'unified', APP), h.mounts)).toEqual({ version: 2, dir: join(h.root, 'unified', APP) });
  });

  it('a cgroup the host shows nowhere is the usual reason; so is one named in a v1 hierarchy without it', async () => {
    const h = host('gone');
    const reason = "the app's cgroup does not exist (is the app running?)";
    expect(await readAppCgroup('/eve-user-apps/other', h.mounts)).toEqual({ available: false, configured: true, reason });
    expect(await readAppCgroup('/sys/fs/cgroup/eve-user-apps/other', h.mounts)).toEqual({ available: false, configured: true, reason });
    expect(await readAppCgroup(join(h.root, 'memory/eve-user-apps/other'), h.mounts)).toEqual({ available: false, configured: true, reason });
    expect(await readAppCgroup('/sys/fs/cgroup/eve-user-apps/other', { reason: 'x cannot be read (EACCES)' })).toEqual({
      available: false,
      configured: true,
      reason: `${reason}; the cgroup mounts are unknown: x cannot be read (EACCES)`,
    });
  });

  it('a mount that shows only a subtree (a container\'s cgroup namespace) reaches only that subtree', async () => {
    const h = host('subtree');
    const shifted = h.mounts.map((m) => (m.version === 1 ? { ...m, root: '/eve-user-apps', point: join(m.point, 'eve-user-apps') } : m));
    expect(await placeCgroup(APP, shifted)).toMatchObject({ version: 1, dirs: { memory: join(h.root, 'memory', APP) } });
    expect(await readAppCgroup('/eve/services/x', shifted)).toMatchObject({ available: false });
    expect(await readAppCgroup('/sys/fs/cgroup/eve/services/x', shifted)).toEqual({
      available: false,
      configured: true,
      reason: "the service sees only /eve-user-apps of the cgroup hierarchies, not the app's cgroup (bind the host's /sys/fs/cgroup into its container)",
    });
  });

  it('before Linux 4.7 (no cpuacct.usage_user): user and system from cpuacct.stat ticks of USER_HZ', async () => {
    const { 'cpuacct.usage_user': _u, 'cpuacct.usage_sys': _s, ...cpuacct } = V1_APP.cpuacct!;
    const h = host('old-kernel', { ...V1_APP, cpuacct });
    const r = await readAppCgroup(APP, h.mounts);
    expect(USER_HZ).toBe(100);
    expect(r.available && r.cpu).toEqual({ ...SAME_AS_V2.cpu, userUsec: 100_000_000, systemUsec: 23_450_000 });
  });

  it('cpu and cpuacct bound to one hierarchy (cpu,cpuacct) are read from the one directory', async () => {
    const h = host('comounted', V1_APP, [['cpu', 'cpuacct'], ['memory'], ['blkio'], ['pids']]);
    expect(await readAppCgroup(APP, h.mounts)).toEqual({ available: true, cgroupVersion: 1, ...SAME_AS_V2 });
  });

  it('a controller no hierarchy has, or without the app, leaves only its figures out with the reason', async () => {
    const h = host('partial', V1_APP, [['cpuacct'], ['memory'], ['blkio']]);
    rmSync(join(h.root, 'blkio', APP), { recursive: true });
    const r = await readAppCgroup(APP, h.mounts);
    if (!r.available) throw new Error('expected the cgroup');
    expect(r.cpu).toEqual({ ...SAME_AS_V2.cpu, nrPeriods: undefined, nrThrottled: undefined, throttledUsec: undefined });
    expect(r.cpu).not.toHaveProperty('nrPeriods');
    expect(r.memory).toEqual(SAME_AS_V2.memory);
    expect(r.io).toEqual({ available: false, configured: true, reason: "the app's cgroup does not exist in the blkio hierarchy" });
    expect(r.pids).toEqual({ available: false, configured: true, reason: 'no cgroup v1 hierarchy has the pids controller' });
  });

  it('older blkio files are used when the throttle ones are missing; none at all is the first one named', async () => {
    const { 'blkio.throttle.io_service_bytes_recursive': b, 'blkio.throttle.io_serviced_recursive': s } = V1_APP.blkio!;
    const old = host('cfq', { ...V1_APP, blkio: { 'blkio.io_service_bytes_recursive': b!, 'blkio.io_serviced_recursive': s! } });
    const r = await readAppCgroup(APP, old.mounts);
    expect(r.available && r.io).toEqual(SAME_AS_V2.io);
    const none = host('no-blkio-files', { ...V1_APP, blkio: {} });
    const n = await readAppCgroup(APP, none.mounts);
    expect(n.available && n.io).toEqual({ available: false, configured: true, reason: 'blkio.throttle.io_service_bytes_recursive does not exist' });
  });

  it('bad contents: that figure is missing with the reason; big ns counters are scaled exactly', async () => {
    const h = host('bad', {
      ...V1_APP,
      cpuacct: { ...V1_APP.cpuacct, 'cpuacct.usage': '18446744073709551615\n' },
      memory: { ...V1_APP.memory, 'memory.usage_in_bytes': 'lots\n' },
      pids: { 'pids.current': '-1\n' },
    });
    const r = await readAppCgroup(APP, h.mounts);
    if (!r.available) throw new Error('expected the cgroup');
    expect(r.cpu).toEqual({ available: false, configured: true, reason: 'cpuacct.usage does not hold a counter ("18446744073709551615")' });
    expect(r.memory).toEqual({ available: false, configured: true, reason: 'memory.usage_in_bytes does not hold a counter ("lots")' });
    expect(r.pids).toEqual({ available: false, configured: true, reason: 'pids.current does not hold a counter ("-1")' });
    // 2^60 ns is beyond 2^53, but as µs it is a safe number.
    const big = host('big', { ...V1_APP, cpuacct: { ...V1_APP.cpuacct, 'cpuacct.usage': `${2n ** 60n}\n` } });
    const b = await readAppCgroup(APP, big.mounts);
    expect(b.available && b.cpu.available && b.cpu.usageUsec).toBe(Number(2n ** 60n / 1000n));
  });

  it('readCgroupV1 of no directory at all is the usual reason', async () => {
    expect(await readCgroupV1({})).toEqual({ available: false, configured: true, reason: "the app's cgroup does not exist (is the app running?)" });
  });

  it('the usage reader finds the mounts itself (here from a fixture mountinfo)', async () => {
    const h = host('reader');
    const reader = new UsageReader({ accounting: new TpmAccounting(), keysHeld: () => 0, mountinfo: h.mountinfo });
    const u = await reader.read({ id: 'app', maxKeys: 4, cgroup: APP } as Parameters<UsageReader['read']>[0]);
    expect(u.cgroup).toEqual({ available: true, cgroupVersion: 1, ...SAME_AS_V2 });
  });
});
