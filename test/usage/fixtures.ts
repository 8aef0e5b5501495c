/**
 * Fixture trees in the kernel's exact file formats (Documentation/admin-guide/cgroup-v2.rst,
 * sysfs-class-net-statistics): a cgroup v2 directory and /sys/class/net/NAME/statistics.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A full cgroup: cpu, memory, io and pids controllers enabled. */
export const FULL_CGROUP: Readonly<Record<string, string>> = {
  'cpu.stat':
    'usage_usec 123456789\nuser_usec 100000000\nsystem_usec 23456789\nnice_usec 0\ncore_sched.force_idle_usec 0\n' +
    'nr_periods 4200\nnr_throttled 17\nthrottled_usec 987654\nnr_bursts 0\nburst_usec 0\n',
  'memory.current': '104857600\n',
  'memory.peak': '157286400\n',
  'memory.stat':
    'anon 73400320\nfile 26214400\nkernel 4194304\nkernel_stack 327680\npagetables 1048576\nsec_pagetables 0\npercpu 0\nsock 0\n' +
    'vmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 8388608\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\n' +
    'file_thp 0\nshmem_thp 0\ninactive_anon 0\nactive_anon 73400320\ninactive_file 13107200\nactive_file 13107200\nunevictable 0\n' +
    'slab_reclaimable 1048576\nslab_unreclaimable 524288\nslab 1572864\nworkingset_refault_anon 0\npgfault 51234\npgmajfault 12\n',
  'io.stat': '8:0 rbytes=90112 wbytes=4096000 rios=22 wios=1000 dbytes=0 dios=0\n253:1 rbytes=10000 wbytes=0 rios=3 wios=0 dbytes=512 dios=1\n',
  'pids.current': '7\n',
};

/** What a cgroup shows with only the always-there files (no controller enabled): this machine's. */
export const BARE_CGROUP: Readonly<Record<string, string>> = {
  'cpu.stat': 'usage_usec 4408\nuser_usec 4408\nsystem_usec 0\nnice_usec 0\n',
};

export function writeTree(dir: string, files: Readonly<Record<string, string>>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** /sys/class/net/NAME/statistics/* of a host-side interface. */
export function writeNetif(root: string, name: string, c: { rx_bytes: number; tx_bytes: number; rx_packets?: number; tx_packets?: number }): void {
  const all: Record<string, number> = {
    rx_bytes: c.rx_bytes,
    tx_bytes: c.tx_bytes,
    rx_packets: c.rx_packets ?? 10,
    tx_packets: c.tx_packets ?? 20,
    rx_errors: 1,
    tx_errors: 2,
    rx_dropped: 3,
    tx_dropped: 4,
    multicast: 0,
    collisions: 0,
  };
  writeTree(join(root, name, 'statistics'), Object.fromEntries(Object.entries(all).map(([k, v]) => [k, `${v}\n`])));
}

/** What the provider reads from FULL_CGROUP (its figures; `available` and `cgroupVersion` aside). */
export const FULL_CGROUP_READING = {
  cpu: { available: true, usageUsec: 123456789, userUsec: 100000000, systemUsec: 23456789, nrPeriods: 4200, nrThrottled: 17, throttledUsec: 987654 },
  memory: { available: true, currentBytes: 104857600, peakBytes: 157286400, anonBytes: 73400320, fileBytes: 26214400 },
  io: {
    available: true,
    readBytes: 100112,
    writeBytes: 4096000,
    devices: [
      { device: '8:0', readBytes: 90112, writeBytes: 4096000, readIos: 22, writeIos: 1000, discardBytes: 0, discardIos: 0 },
      { device: '253:1', readBytes: 10000, writeBytes: 0, readIos: 3, writeIos: 0, discardBytes: 512, discardIos: 1 },
    ],
  },
  pids: { available: true, current: 7 },
} as const;
