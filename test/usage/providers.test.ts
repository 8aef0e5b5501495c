/**
 * The usage providers on fixture trees with the kernel's file formats: every figure parsed
 * exactly, and every missing or bad file a reason for that figure alone, never an exception.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCgroup } from '../../src/service/usage/cgroup.js';
import { counter, flatKeyed, nestedKeyed } from '../../src/service/usage/counters.js';
import { readInterface, readNetwork } from '../../src/service/usage/netif.js';
import { BARE_CGROUP, FULL_CGROUP, FULL_CGROUP_READING, writeNetif, writeTree } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'usage-prov-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('counters', () => {
  it('are UINT64 read exactly, and refused beyond 2^53 − 1 rather than rounded', () => {
    expect(counter('0\n')).toBe(0);
    expect(counter('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(counter('9007199254740992')).toBeUndefined();
    expect(counter('18446744073709551615')).toBeUndefined();
    for (const bad of ['', '-1', '1.5', 'max', '0x10', '1 2']) expect(counter(bad), bad).toBeUndefined();
  });
  it('flat-keyed and nested-keyed files skip what they do not understand', () => {
    expect([...flatKeyed('a 1\nb x\n\nc 3 4\nd 5\n')]).toEqual([
      ['a', 1],
      ['d', 5],
    ]);
    expect(nestedKeyed('8:0 rbytes=1 wbytes=x\n\n').map((l) => [l.key, [...l.values]])).toEqual([['8:0', [['rbytes', 1]]]]);
  });
});

describe('the cgroup v2 provider', () => {
  it('reads every figure of a full cgroup', async () => {
    const cg = writeTree(join(dir, 'full'), FULL_CGROUP);
    expect(await readCgroup(cg)).toEqual({ available: true, cgroupVersion: 2, ...FULL_CGROUP_READING });
  });

  it('without controllers: CPU only, every other figure missing with its file named', async () => {
    const cg = writeTree(join(dir, 'bare'), BARE_CGROUP);
    expect(await readCgroup(cg)).toEqual({
      available: true,
      cgroupVersion: 2,
      cpu: { available: true, usageUsec: 4408, userUsec: 4408, systemUsec: 0 },
      memory: { available: false, configured: true, reason: 'memory.current does not exist' },
      io: { available: false, configured: true, reason: 'io.stat does not exist' },
      pids: { available: false, configured: true, reason: 'pids.current does not exist' },
    });
  });

  it('an older kernel without memory.peak: the rest of memory is there', async () => {
    const { 'memory.peak': _p, ...files } = FULL_CGROUP;
    const r = await readCgroup(writeTree(join(dir, 'nopeak'), files));
    expect(r.available && r.memory).toEqual({ available: true, currentBytes: 104857600, anonBytes: 73400320, fileBytes: 26214400 });
  });

  it('a cgroup that is gone, or not a directory, is one clear reason', async () => {
    expect(await readCgroup(join(dir, 'no-such-app'))).toEqual({ available: false, configured: true, reason: "the app's cgroup does not exist (is the app running?)" });
    writeFileSync(join(dir, 'plain-file'), 'x');
    expect(await readCgroup(join(dir, 'plain-file'))).toEqual({ available: false, configured: true, reason: "the app's cgroup is not a directory" });
  });

  it('bad contents: the figure is missing with the reason, the others are read', async () => {
    const cg = writeTree(join(dir, 'bad'), {
      ...FULL_CGROUP,
      'cpu.stat': 'usage_usec lots\n',
      'memory.current': 'max\n',
      'pids.current': '18446744073709551615\n',
      'io.stat': 'garbage line\n8:0 rbytes=5 wbytes=6 rios=1 wios=1\n',
    });
    const r = await readCgroup(cg);
    if (!r.available) throw new Error('expected the cgroup');
    expect(r.cpu).toEqual({ available: false, configured: true, reason: 'cpu.stat lacks usage_usec, user_usec or system_usec' });
    expect(r.memory).toEqual({ available: false, configured: true, reason: 'memory.current does not hold a counter ("max")' });
    expect(r.pids).toEqual({ available: false, configured: true, reason: 'pids.current does not hold a counter ("18446744073709551615")' });
    expect(r.io).toEqual({ available: true, readBytes: 5, writeBytes: 6, devices: [{ device: '8:0', readBytes: 5, writeBytes: 6, readIos: 1, writeIos: 1 }] });
  });

  it('a file the service may not read, or that is a directory, is a reason', async () => {
    const cg = writeTree(join(dir, 'odd'), FULL_CGROUP);
    rmSync(join(cg, 'pids.current'));
    writeTree(join(cg, 'pids.current'), { x: '1' });
    const r = await readCgroup(cg);
    expect(r.available && r.pids).toEqual({ available: false, configured: true, reason: 'pids.current is a directory' });
    if (process.getuid?.() !== 0) {
      chmodSync(join(cg, 'io.stat'), 0);
      const s = await readCgroup(cg);
      expect(s.available && s.io).toEqual({ available: false, configured: true, reason: 'io.stat is not readable by the service' });
    }
  });
});

describe('the network provider', () => {
  const root = join(dir, 'class-net');

  it("turns the host end's counters to the app's direction", async () => {
    writeNetif(root, 'vif3.1', { rx_bytes: 1000, tx_bytes: 5000, rx_packets: 11, tx_packets: 55 });
    expect(await readInterface(root, 'vif3.1')).toEqual({
      name: 'vif3.1',
      available: true,
      rxBytes: 5000,
      txBytes: 1000,
      rxPackets: 55,
      txPackets: 11,
      rxErrors: 2,
      txErrors: 1,
      rxDropped: 4,
      txDropped: 3,
    });
  });

  it('sums the interfaces it could read; names the one that is gone', async () => {
    writeNetif(root, 'nbu1x3', { rx_bytes: 7, tx_bytes: 9 });
    const n = await readNetwork(root, ['vif3.1', 'nbu1x3', 'gone0']);
    expect(n.rxBytes).toBe(5009);
    expect(n.txBytes).toBe(1007);
    expect(n.interfaces[2]).toEqual({ name: 'gone0', available: false, configured: true, reason: 'interface gone0 does not exist on the host (is the app running?)' });
  });

  it('a name that could leave the directory is refused without a read', async () => {
    for (const bad of ['..', '.', 'a/b', '../../etc', 'x'.repeat(16), '']) {
      const r = await readInterface(root, bad);
      expect(r.available, bad).toBe(false);
      expect((r as { reason: string }).reason).toMatch(/is not an interface name/);
    }
  });

  it('one bad counter file makes that interface missing with the reason', async () => {
    writeNetif(root, 'bad0', { rx_bytes: 1, tx_bytes: 2 });
    writeFileSync(join(root, 'bad0/statistics/tx_bytes'), 'oops\n');
    expect(await readInterface(root, 'bad0')).toEqual({ name: 'bad0', available: false, configured: true, reason: 'bad0/statistics/tx_bytes does not hold a counter ("oops")' });
  });
});
