/**
 * cgroup v1 fixture trees in the kernel's exact file formats (Documentation/admin-guide/
 * cgroup-v1/{cpuacct,memory,blkio-controller,pids}.rst, sched-bwc for cpu.stat), one directory per
 * controller as a v1 host mounts them, and the mountinfo lines that list those mounts.
 */
import { join } from 'node:path';
import { FULL_CGROUP_READING, writeTree } from './fixtures.js';

/** The app's files per controller (cpuacct.usage and blkio counters passing 2^53 where ns or big). */
export const V1_APP: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  cpuacct: {
    'cpuacct.usage': '123456789123\n',
    'cpuacct.usage_user': '100000000000\n',
    'cpuacct.usage_sys': '23456789123\n',
    'cpuacct.stat': 'user 10000\nsystem 2345\n',
    'cpuacct.usage_percpu': '61728394561 61728394562 \n',
  },
  cpu: { 'cpu.stat': 'nr_periods 4200\nnr_throttled 17\nthrottled_time 987654321\nnr_bursts 0\nburst_time 0\n' },
  memory: {
    'memory.usage_in_bytes': '104857600\n',
    'memory.max_usage_in_bytes': '157286400\n',
    'memory.stat':
      'cache 20971520\nrss 62914560\nrss_huge 0\nshmem 0\nmapped_file 8388608\ndirty 0\nwriteback 0\nswap 0\npgpgin 51234\npgpgout 20000\n' +
      'pgfault 60000\npgmajfault 12\ninactive_anon 0\nactive_anon 62914560\ninactive_file 10485760\nactive_file 10485760\nunevictable 0\n' +
      'hierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\ntotal_cache 26214400\ntotal_rss 73400320\n' +
      'total_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 8388608\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 51234\n' +
      'total_pgpgout 20000\ntotal_pgfault 60000\ntotal_pgmajfault 12\ntotal_inactive_anon 0\ntotal_active_anon 73400320\n' +
      'total_inactive_file 13107200\ntotal_active_file 13107200\ntotal_unevictable 0\n',
  },
  blkio: {
    'blkio.throttle.io_service_bytes_recursive':
      '8:0 Read 90112\n8:0 Write 4096000\n8:0 Sync 4096000\n8:0 Async 90112\n8:0 Discard 0\n8:0 Total 4186112\n' +
      '253:1 Read 10000\n253:1 Write 0\n253:1 Sync 0\n253:1 Async 10000\n253:1 Discard 512\n253:1 Total 10512\nTotal 4196624\n',
    'blkio.throttle.io_serviced_recursive':
      '8:0 Read 22\n8:0 Write 1000\n8:0 Sync 1000\n8:0 Async 22\n8:0 Discard 0\n8:0 Total 1022\n' +
      '253:1 Read 3\n253:1 Write 0\n253:1 Sync 0\n253:1 Async 3\n253:1 Discard 1\n253:1 Total 4\nTotal 1026\n',
    'blkio.throttle.io_service_bytes': 'Total 0\n',
    'blkio.throttle.io_serviced': 'Total 0\n',
  },
  pids: { 'pids.current': '7\n' },
};

/** The v2 reading of the same app: what v1 must give field for field. */
export const SAME_AS_V2 = FULL_CGROUP_READING;

/** Controllers each in its own hierarchy, as this machine and EVE mount them. */
export const V1_MOUNTS: ReadonlyArray<readonly string[]> = [['cpu'], ['cpuacct'], ['memory'], ['blkio'], ['pids']];

/**
 * Writes each controller's tree under root/<controllers joined by ','>/ with the app at `app`
 * (a hierarchy path), and returns the mountinfo text that lists them (and a v2 mount at root/unified).
 */
export function writeV1Host(root: string, app: string, files = V1_APP, mounts = V1_MOUNTS): string {
  let id = 30;
  const lines = [`${id++} 22 0:27 / ${root} rw,relatime - tmpfs tmpfs rw,mode=755`];
  for (const controllers of mounts) {
    const point = join(root, controllers.join(','));
    writeTree(point, { 'cgroup.procs': '1\n', tasks: '1\n' });
    const own = Object.assign({}, ...controllers.map((c) => files[c] ?? {})) as Record<string, string>;
    writeTree(join(point, app), { 'cgroup.procs': '', tasks: '', ...own });
    lines.push(`${id} 30 0:${id++} / ${point} rw,nosuid,nodev,noexec,relatime shared:${id} - cgroup cgroup rw,${controllers.join(',')}`);
  }
  writeTree(join(root, 'unified'), { 'cgroup.procs': '1\n' });
  lines.push(`${id} 30 0:${id} / ${join(root, 'unified')} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate`);
  return `${lines.join('\n')}\n`;
}
