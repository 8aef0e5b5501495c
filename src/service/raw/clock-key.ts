/**
 * The key of ReadClock's per-app offsets (firewall/read-clock.ts), kept in the raw state dir so
 * that an app's boot counts stay the same across service restarts (docs/FIREWALL.md "Clock
 * privacy"). Made on the first start. A key that cannot be read or kept is logged and the
 * process's own random key stays: the offsets then change at the next restart, nothing else.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { setClockKey } from '../../firewall/read-clock.js';
import { writeFileDurable } from '../admin/durable-file.js';

export const CLOCK_KEY_FILE = 'clock.key';
const KEY_BYTES = 32;

/** Reads (or makes and keeps) the offsets' key in `dir`, the raw state dir. */
export async function loadClockKey(dir: string, log: Logger): Promise<void> {
  const path = join(dir, CLOCK_KEY_FILE);
  try {
    const kept = await fsp.readFile(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (kept?.length === KEY_BYTES) return setClockKey(kept);
    const key = randomBytes(KEY_BYTES);
    await writeFileDurable(path, key);
    setClockKey(key);
  } catch (e) {
    log.warn({ event: 'raw-clock-key', file: path, err: (e as Error).message }, `ReadClock offsets keyed for this run only: ${(e as Error).message}`);
  }
}
