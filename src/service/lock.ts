/**
 * One service per state directory: a lock file holding the owner's pid, created exclusively.
 * A lock whose pid is gone (kill -9, power loss) is stale and taken over. Admin commands that
 * change the registry take the same lock, or ask the running service (see admin.ts).
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'service.lock';

export class StateLockedError extends Error {
  override readonly name = 'StateLockedError';
  constructor(
    readonly pid: number,
    dir: string,
  ) {
    super(`the state directory ${dir} is in use by process ${pid}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** The pid holding the lock of `dir`, if a live process does. */
export function lockHolder(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, LOCK_FILE), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock (synchronously: start-up). Returns the release function. */
export function lockStateDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
      const holder = lockHolder(dir);
      if (holder !== undefined && holder !== process.pid) throw new StateLockedError(holder, dir);
      try {
        unlinkSync(path); // stale
      } catch {
        // raced with another taker; try again
      }
    }
  }
  throw new Error(`cannot take the lock ${path}`);
}
