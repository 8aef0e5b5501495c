/**
 * Writing result files so that a failure never leaves a half-written or clobbered output:
 * the bytes go to a temp file in the same directory (same file system, so rename is atomic),
 * are fsynced, then renamed over the target, and the directory is fsynced so the rename itself
 * survives a crash. The target is never opened before the data exists.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, statSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileError } from './errors.js';

/** Temp files being written right now; removed by removePendingTemps() on a signal. */
const pendingTemps = new Set<string>();

/** `-` means standard output for every output option. */
export const STDOUT = '-';

/**
 * Fails early (before any TPM work) when `path` can obviously not be written: its directory is
 * missing or not writable, or the path is a directory. Creates nothing.
 */
export function checkOutputPath(path: string, what: string): void {
  if (path === STDOUT) return;
  const full = resolve(path);
  try {
    if (statSync(full).isDirectory()) {
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fileError(`cannot write ${what}`, path, e);
  }
  const dir = dirname(full);
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw fileError(`cannot write ${what}`, path, e);
  }
}

/** fsync of a directory; some file systems refuse it, which costs nothing but durability there. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // EINVAL/EISDIR on some file systems: nothing we can do better.
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Atomically replaces `path` with `data`. On failure the temp file is removed and an existing
 * `path` is left exactly as it was. The new file gets mode 0666 less the umask, like any other
 * file the user creates (existing permissions of `path` are not copied).
 */
export async function writeFileAtomic(path: string, data: Uint8Array, what: string, mode = 0o666): Promise<void> {
  const full = resolve(path);
  const dir = dirname(full);
  const tmp = join(dir, `.${basename(full)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  pendingTemps.add(tmp);
  let fh;
  try {
    fh = await open(tmp, 'wx', mode);
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off);
      off += bytesWritten;
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, full);
    pendingTemps.delete(tmp);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    pendingTemps.delete(tmp);
    throw fileError(`cannot write ${what}`, path, e);
  }
  await syncDir(dir);
}

/** Writes to stdout, waiting until the bytes are handed over (a pipe may apply back-pressure). */
export function writeStdout(data: Uint8Array | string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  return new Promise((res, rej) => {
    out.write(data, (err) => (err ? rej(fileError('cannot write', 'standard output', err)) : res()));
  });
}

/** Writes `data` to `path`, or to stdout for `-`. */
export async function writeOutput(
  path: string,
  data: Uint8Array | string,
  what: string,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  if (path === STDOUT) return writeStdout(data, out);
  await writeFileAtomic(path, typeof data === 'string' ? new TextEncoder().encode(data) : data, what);
}

/** Called from a signal handler: synchronous, best effort. */
export function removePendingTemps(): void {
  for (const t of pendingTemps) {
    try {
      unlinkSync(t);
    } catch {
      // already gone
    }
  }
  pendingTemps.clear();
}
