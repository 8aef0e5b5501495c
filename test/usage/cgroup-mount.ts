/**
 * A writable cgroup v2 on this machine, found from /proc/self/mountinfo (hybrid layouts mount
 * it at /sys/fs/cgroup/unified), or why there is none: the real-cgroup tests say so and skip.
 */
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

export type CgroupMount = { ok: true; root: string } | { ok: false; why: string };

export function writableCgroup2(): CgroupMount {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return { ok: false, why: 'no /proc/self/mountinfo (not Linux?)' };
  }
  // Fields: id parent maj:min root mountpoint options [optional…] - fstype source superoptions
  const mounts = info
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[f.indexOf('-') + 1] === 'cgroup2')
    .map((f) => f[4]!);
  if (mounts.length === 0) return { ok: false, why: 'no cgroup v2 is mounted' };
  const errors: string[] = [];
  for (const root of mounts) {
    const probe = join(root, `eve-usage-probe-${process.pid}`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
      return { ok: true, root };
    } catch (e) {
      errors.push(`${root}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return { ok: false, why: `no cgroup v2 mount lets this user make a child cgroup (${errors.join('; ')})` };
}
