/**
 * Kept sessions across service restarts (docs/FIREWALL.md "The EK", kept sessions): the
 * sessions the service keeps for apps (firewall/kept-sessions.ts) are in memory, while the chip
 * holds them saved until a TPM reset. Their handles are recorded in `<state>/raw/kept-sessions.json`
 * (written durably at each change), and a starting service flushes the ones its previous run
 * left, in a cleanup job before any app command. They are not given back to the apps: an app's
 * ContextLoad takes only contexts it saved in this run (AppState.saved is in memory), so a
 * reloaded session could never be used; the app gets the chip's answer for a session it no
 * longer has, as after an idle expiry.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FlushContext, type TpmRunner } from '../../tpm/index.js';
import { onKeptChange, takeAllKept } from '../../firewall/kept-sessions.js';
import { writeFileDurable } from '../admin/durable-file.js';
import type { TpmQueue } from '../tpm/queue.js';

/** The file's name in the raw state dir (RawApps.load skips it: it is no app's). */
export const KEPT_FILE = 'kept-sessions.json';

/** An HMAC or policy session handle (Part 2 §7.4: 0x02xxxxxx, 0x03xxxxxx): nothing else is ever flushed from the file. */
const isSession = (h: unknown): h is number => typeof h === 'number' && Number.isInteger(h) && h >= 0x02000000 && h <= 0x03ffffff;

interface KeptFileBody {
  version: 1;
  sessions: number[];
}

export class KeptFile {
  private readonly path: string;
  private writing: Promise<void> = Promise.resolve();
  /** A previous run's handles not flushed (the TPM failed at start): recorded with every change until a later start flushes them. */
  private leftover: number[] = [];

  constructor(
    dir: string,
    private readonly log: Logger,
  ) {
    this.path = join(dir, KEPT_FILE);
  }

  /** The handles a previous run left recorded (a file that does not read: logged, none; never throws). */
  async previous(): Promise<number[]> {
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ event: 'raw-state-bad', file: this.path, err: (e as Error).message }, `the kept sessions file was not read: ${(e as Error).message}`);
      return [];
    }
    try {
      const j = JSON.parse(text) as Partial<KeptFileBody>;
      if (!Array.isArray(j.sessions)) throw new Error('no sessions list');
      return j.sessions.filter(isSession);
    } catch (e) {
      this.log.error({ event: 'raw-state-bad', file: this.path, err: (e as Error).message }, `the kept sessions file was not read: ${(e as Error).message}`);
      return [];
    }
  }

  /** Records `handles` (one write at a time, the latest last); a failed write is logged, the next change writes again. */
  record(handles: readonly number[]): Promise<void> {
    const body = JSON.stringify({ version: 1, sessions: [...new Set([...this.leftover, ...handles])] } satisfies KeptFileBody);
    this.writing = this.writing
      .then(() => writeFileDurable(this.path, body))
      .catch((e: unknown) => this.log.warn({ event: 'raw-kept-record-failed', err: (e as Error).message }, 'recording the kept sessions failed'));
    return this.writing;
  }

  /** Resolves when the latest write is done. */
  written(): Promise<void> {
    return this.writing;
  }

  /**
   * At start: flushes `previous` (this file's handles) and what this process kept before (a
   * test's in-process restart) in a cleanup job, submitted before this returns so that it runs
   * before any app command, then records every later change. Resolves with how many were flushed.
   */
  flushPrevious(queue: TpmQueue, previous: readonly number[]): Promise<number> {
    onKeptChange(undefined); // a previous service in this process no longer records
    const handles = [...new Set([...previous, ...takeAllKept()])];
    onKeptChange((h) => void this.record(h));
    if (handles.length === 0) return Promise.resolve(0);
    return queue.submit('#raw', 'raw-kept-restart', (tpm: TpmRunner) => flushAll(tpm, handles), { lane: 'cleanup' }).then(
      async () => {
        await this.record([]);
        this.log.info({ event: 'raw-kept-restart', sessions: handles.length }, `flushed ${handles.length} session(s) a previous run kept for apps`);
        return handles.length;
      },
      async (e: unknown) => {
        // Kept in the file: the next start tries again.
        this.log.warn({ event: 'raw-kept-restart-failed', err: (e as Error).message }, 'flushing the sessions a previous run kept failed');
        this.leftover = handles;
        await this.record([]);
        return 0;
      },
    );
  }
}

/** Flushes each handle; one the TPM no longer has (a reset since) is no loss. */
async function flushAll(tpm: TpmRunner, handles: readonly number[]): Promise<void> {
  for (const flushHandle of handles) await tpm.run(FlushContext, { flushHandle }).catch(() => undefined);
}
