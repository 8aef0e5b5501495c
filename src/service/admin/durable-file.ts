/**
 * Crash-safe file updates: a file is replaced only by rename of a fully written and fsynced
 * temp file, and the directory is fsynced after the rename or unlink, so after a crash a
 * reader sees the old content or the new, never a mix, and a completed update stays done.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { crashPoint } from '../tpm/crash-points.js';

const TMP_MARK = '.tmp-';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `path` with `data` (owner-only permissions), durably. */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    crashPoint('write:after-temp');
    await fsp.rename(tmp, path);
    crashPoint('write:after-rename');
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(path));
}

/** Removes `path` (absent is fine) and makes the removal durable. */
export async function removeFileDurable(path: string): Promise<void> {
  await fsp.rm(path, { force: true });
  await fsyncDir(dirname(path));
}

/** Temp files a crash left behind in `dir` (never complete data: the rename did not happen). */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fsp.readdir(dir)) {
    if (!name.includes(TMP_MARK)) continue;
    await fsp.rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** The names in `dir` that `pick` maps to a value (absent dir: none). Admin and start-up only: synchronous. */
export function namesInSync<T>(dir: string, pick: (name: string) => T | undefined): T[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return [];
    throw e;
  }
  return names.flatMap((n) => {
    const v = pick(n);
    return v === undefined ? [] : [v];
  });
}
