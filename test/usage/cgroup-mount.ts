/**
 * A writable cgroup v2 on this machine, found from /proc/self/mountinfo (hybrid layouts mount
 * it at /sys/fs/cgroup/unified), or writable v1 hierarchies of some controllers, or why there
 * are none: the real-cgroup tests say so and skip.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';

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

/** The v1 hierarchies holding `controllers` (from mountinfo) where this user may make a child cgroup, or why not. */
export function writableCgroup1(controllers: readonly string[]): { ok: true; points: Record<string, string> } | { ok: false; why: string } {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return { ok: false, why: 'no /proc/self/mountinfo (not Linux?)' };
  }
  const points: Record<string, string> = {};
  for (const f of info.split('\n').map((l) => l.split(' '))) {
    const dash = f.indexOf('-', 6);
    if (dash < 0 || f[dash + 1] !== 'cgroup' || f[3] !== '/') continue;
    for (const c of f[dash + 3]!.split(',')) if (controllers.includes(c) && !points[c]) points[c] = f[4]!;
  }
  const lacking = controllers.filter((c) => !points[c]);
  if (lacking.length) return { ok: false, why: `no cgroup v1 hierarchy (at its root) has ${lacking.join(', ')}` };
  for (const [c, root] of Object.entries(points)) {
    const probe = join(root, `eve-usage-probe-${process.pid}`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
    } catch (e) {
      return { ok: false, why: `cannot make a child cgroup in the ${c} hierarchy ${root} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
  }
  return { ok: true, points };
}

/** Cgroup directories a test made, removed (innermost first) after the file's tests. */
export function cgroupDirsRemovedAfterAll(): string[] {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // a process still inside: the kernel frees it when that process ends
      }
    }
  });
  return dirs;
}

/** A node child that waits for a line, then burns CPU and holds 64 MiB, then exits. */
export function burner(): { pid: number; go(): void; done: Promise<number | null> } {
  const script = `
    process.stdin.once('data', () => {
      const hold = Buffer.alloc(64 * 1024 * 1024, 1);
      let x = 0;
      for (let i = 0; i < 5e7; i++) x = (x + i * 7) % 1000003;
      process.stdout.write(String(x + hold[12345]));
      process.exit(0);
    });`;
  const c = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  c.stdout.resume();
  return { pid: c.pid!, go: () => c.stdin.write('go\n'), done: new Promise((r) => c.on('exit', (code) => r(code))) };
}
