/**
 * The cgroup hierarchies this process sees, from /proc/self/mountinfo (proc(5)): the unified
 * one (cgroup2) and each v1 hierarchy with the controllers bound to it. EVE mounts v1 today,
 * hybrid hosts mount both; the provider (cgroup-place.ts) finds the app's cgroup in either.
 */
import { readFile } from 'node:fs/promises';

export const MOUNTINFO = '/proc/self/mountinfo';

export interface CgroupMount {
  version: 1 | 2;
  /** Where it is mounted here. */
  point: string;
  /** The hierarchy path shown at `point` ("/" unless a namespace or bind mount shows a subtree). */
  root: string;
  /** v1: the controllers bound to the hierarchy (super options, e.g. ["cpu", "cpuacct"]). */
  controllers: string[];
}

/** Mount fields escape space, tab, newline and backslash as octal (\040 …). */
const unescape = (f: string): string => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Lines: id parent maj:min root point options [optional fields…] - fstype source superoptions. */
export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    if (dash < 0 || f.length < dash + 4) continue;
    const fstype = f[dash + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const version = fstype === 'cgroup2' ? 2 : 1;
    const controllers = version === 1 ? f[dash + 3]!.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.includes('=')) : [];
    out.push({ version, point: unescape(f[4]!), root: unescape(f[3]!), controllers });
  }
  return out;
}

/** The cgroup mounts, or why they cannot be known (never an exception). */
export async function readCgroupMounts(path = MOUNTINFO): Promise<CgroupMount[] | { reason: string }> {
  try {
    return parseMountinfo(await readFile(path, 'utf8'));
  } catch (e) {
    return { reason: `${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
}
