/**
 * Where the app's cgroup is, whichever cgroup version the host mounts: the tenant's `cgroup`
 * names it once — its hierarchy path as /proc/PID/cgroup shows it (`/eve-user-apps/APP`), the
 * same under /sys/fs/cgroup, or a directory inside one mounted hierarchy — and this finds its
 * directory in each v1 controller's hierarchy, or in the unified one (docs/SERVICE.md,
 * "Resource usage").
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { CgroupUsage, UsageMissing } from '../protocol/messages.js';
import { readCgroup } from './cgroup.js';
import { readCgroupV1, V1_CONTROLLERS, type V1Dirs } from './cgroup-v1.js';
import { missing } from './counters.js';
import type { CgroupMount } from './mountinfo.js';

/** Where distributions and EVE mount the hierarchies (a tmpfs of v1 ones, or the unified one). */
export const CGROUP_FS = '/sys/fs/cgroup';

export type Placement = { version: 2; dir: string } | { version: 1; dirs: V1Dirs } | { version: undefined; reason: string };

const NOT_THERE = "the app's cgroup does not exist (is the app running?)";

/** `path` itself or below `dir`: the rest ('' for the same), else undefined. */
function below(path: string, dir: string): string | undefined {
  if (path === dir) return '';
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return path.startsWith(d) ? path.slice(d.length) : undefined;
}

/** The mount's directory of hierarchy path `h`, if the mount shows that part of the hierarchy. */
function inMount(m: CgroupMount, h: string): string | undefined {
  const rest = below(h, m.root);
  return rest === undefined ? undefined : posix.join(m.point, rest);
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** The hierarchy path `path` names (see the file comment), and the mount it was given in if any. */
function hierarchyPath(path: string, mounts: readonly CgroupMount[]): { h: string; given?: CgroupMount } {
  let given: CgroupMount | undefined;
  for (const m of mounts) if (below(path, m.point) !== undefined && (!given || m.point.length > given.point.length)) given = m;
  if (given) return { h: posix.join(given.root, below(path, given.point)!), given };
  const under = below(path, CGROUP_FS);
  return { h: under === undefined ? path : `/${under}` };
}

export async function placeCgroup(path: string, mounts: readonly CgroupMount[]): Promise<Placement> {
  const { h, given } = hierarchyPath(path, mounts);
  // A directory in the unified hierarchy named as such is read there.
  if (given?.version === 2) return { version: 2, dir: path };
  // v1 wherever a v1 hierarchy holds the app's cgroup (hybrid hosts bind the controllers to v1).
  const dirs: V1Dirs = {};
  for (const c of V1_CONTROLLERS) {
    for (const m of mounts) {
      if (m.version !== 1 || !m.controllers.includes(c)) continue;
      const d = inMount(m, h);
      if (d !== undefined) {
        dirs[c] = d;
        break;
      }
    }
  }
  const v1 = Object.values(dirs);
  for (const d of v1) if (await isDir(d)) return { version: 1, dirs };
  if (given?.version === 1) return { version: undefined, reason: NOT_THERE };
  // A container that sees only its own subtree (runc's default cgroup mount) cannot reach the app's.
  const hidden = mounts.find((m) => m.version === 1 && m.controllers.some((c) => (V1_CONTROLLERS as readonly string[]).includes(c)) && inMount(m, h) === undefined);
  if (v1.length === 0 && hidden && below(path, CGROUP_FS) !== undefined) {
    return { version: undefined, reason: `the service sees only ${hidden.root} of the cgroup hierarchies, not the app's cgroup (bind the host's /sys/fs/cgroup into its container)` };
  }
  for (const m of mounts) {
    if (m.version !== 2) continue;
    const d = inMount(m, h);
    if (d !== undefined && (await isDir(d))) return { version: 2, dir: d };
  }
  // A path outside every hierarchy is read as a v2 cgroup directory (what --cgroup was first; fixture trees).
  if (below(path, CGROUP_FS) === undefined) return { version: 2, dir: path };
  return { version: undefined, reason: NOT_THERE };
}

/** The app's cgroup figures, v1 or v2, or why there are none. */
export async function readAppCgroup(path: string, mounts: readonly CgroupMount[] | { reason: string }): Promise<CgroupUsage | UsageMissing> {
  const p = await placeCgroup(path, 'reason' in mounts ? [] : mounts);
  if (p.version === 2) return readCgroup(p.dir);
  if (p.version === 1) return readCgroupV1(p.dirs);
  return missing('reason' in mounts ? `${p.reason}; the cgroup mounts are unknown: ${mounts.reason}` : p.reason);
}
