/**
 * Exclusive locks as files: one service per state directory (`service.lock`), and one writer
 * at a time of the tenants file and of the purge-request file (`<file>.lock`), whose every
 * read-modify-write happens under the lock.
 *
 * A lock file holds `<pid> <random token>`. It is created complete — written to a temp file,
 * then hard-linked to its name, which fails if the name exists — so nobody ever reads a
 * half-written one. A lock whose pid is gone (kill -9, power loss) is stale and is taken over;
 * the name is removed only while holding `<lock>.takeover` and only if it still holds the very
 * content seen stale, so that of two processes taking over at once one can never remove the
 * fresh lock the other has just made. A takeover guard is held for a few system calls; one left
 * by a process killed inside them is removed once its pid is gone and it is some seconds old.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOCK_FILE = 'service.lock';
/** A takeover guard whose pid is gone is removed once it is this old. */
const STALE_GUARD_MS = 5000;

export class StateLockedError extends Error {
  override readonly name = 'StateLockedError';
  constructor(
    readonly pid: number,
    dir: string,
  ) {
    super(`the state directory ${dir} is in use by process ${pid}`);
  }
}

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
  constructor(
    readonly path: string,
    readonly pid: number | undefined,
    waitedMs: number,
  ) {
    super(
      `${path} is held by process ${pid ?? '?'} (waited ${waitedMs} ms); if no eve-tpm-service command is running, ` +
        `that process is not ours: remove ${path}`,
    );
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

/** The pid in a lock file's text (the previous version wrote only the pid). */
function pidIn(text: string): number | undefined {
  const pid = Number(text.trim().split(/\s+/)[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid holding the lock of state directory `dir`, if a live process does. */
export function lockHolder(dir: string): number | undefined {
  try {
    const pid = pidIn(readFileSync(join(dir, LOCK_FILE), 'utf8'));
    return pid !== undefined && alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Creates `path` holding `text`, complete, unless it exists. */
async function createComplete(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await fsp.writeFile(tmp, text, { mode: 0o600, flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL });
  try {
    await fsp.link(tmp, path);
    return true;
  } catch (e) {
    // ENOENT: start-up recovery removed our temp file as a crash leftover; the caller retries.
    if ((e as { code?: string }).code === 'EEXIST' || (e as { code?: string }).code === 'ENOENT') return false;
    throw e;
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/** Removes `path` if it still holds `text` (only ever called for our own or a dead holder's file). */
async function removeIfHolds(path: string, text: string): Promise<void> {
  if ((await readText(path)) === text) await fsp.rm(path, { force: true });
}

/** Removes the stale lock `path` that was seen holding `seen`, unless someone beat us to it. */
async function takeOver(path: string, seen: string, token: string): Promise<void> {
  const guard = `${path}.takeover`;
  if (!(await createComplete(guard, token))) {
    const g = await readText(guard);
    const pid = g === undefined ? undefined : pidIn(g);
    if (g !== undefined && (pid === undefined || !alive(pid))) {
      const st = await fsp.stat(guard).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_GUARD_MS) await removeIfHolds(guard, g);
    }
    return;
  }
  try {
    await removeIfHolds(path, seen);
  } finally {
    await removeIfHolds(guard, token);
  }
}

export type Release = () => Promise<void>;

export interface LockOptions {
  /** How long to wait for a live holder; 0: fail at once. */
  waitMs: number;
  /** The error for a live holder once the wait is over (default LockBusyError). */
  busy?: (pid: number | undefined) => Error;
  /** A lock of this very process counts as stale (the state lock: a restart in the same process). */
  reclaimOwn?: boolean;
}

/** Takes the lock `path`, waiting (bounded, asynchronously) while a live process holds it. */
export async function acquireLock(path: string, opts: LockOptions): Promise<Release> {
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const started = Date.now();
  let pause = 5;
  for (;;) {
    if (await createComplete(path, token)) {
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await removeIfHolds(path, token);
      };
    }
    const seen = await readText(path);
    if (seen === undefined) continue; // released meanwhile
    const pid = pidIn(seen);
    if (pid === undefined || !alive(pid) || (opts.reclaimOwn && pid === process.pid)) {
      await takeOver(path, seen, token);
      await sleep(Math.random() * 5);
      continue;
    }
    if (Date.now() - started >= opts.waitMs) throw opts.busy?.(pid) ?? new LockBusyError(path, pid, Date.now() - started);
    await sleep(pause + Math.random() * pause);
    pause = Math.min(pause * 2, 100);
  }
}

/** Runs `fn` holding the lock `path` (waits up to `waitMs` for it). */
export async function withLock<T>(path: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const release = await acquireLock(path, { waitMs });
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Takes the lock of a state directory: one service (or offline admin command) at a time. */
export function lockStateDir(dir: string): Promise<Release> {
  return acquireLock(join(dir, LOCK_FILE), { waitMs: 0, reclaimOwn: true, busy: (pid) => new StateLockedError(pid ?? 0, dir) });
}
