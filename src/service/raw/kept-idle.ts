/**
 * The idle limit of kept sessions (firewall/kept-sessions.ts): a session an app saved and the
 * service kept past its connection is flushed once unused for the app's `keptSessionIdleMs`
 * (attack 8: it holds one of the chip's session slots). One timer for the next expiry, armed
 * whenever a connection closes; the expiry is decided inside a cleanup queue job, so a command
 * job that loads the session first makes it the connection's again and it is not flushed.
 */
import type { Logger } from 'pino';
import { FlushContext, type TpmRunner } from '../../tpm/index.js';
import { expireSessions, nextExpiry } from '../../firewall/kept-sessions.js';
import type { TpmQueue } from '../tpm/queue.js';

export interface KeptIdleDeps {
  queue: TpmQueue;
  log: Logger;
  draining(): boolean;
}

export class KeptIdle {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly d: KeptIdleDeps) {}

  /** Sets the timer for the next expiry (none kept: no timer). */
  arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ms = nextExpiry();
    if (ms === undefined || this.d.draining()) return;
    this.timer = setTimeout(() => void this.sweep().then(() => this.arm()), ms + 1000);
    this.timer.unref();
  }

  /** Flushes the kept sessions idle too long, in one cleanup job; returns how many. */
  async sweep(): Promise<number> {
    if (this.d.draining()) return 0;
    const flushed = await this.d.queue
      .submit('#raw', 'raw-kept-expire', async (tpm: TpmRunner) => {
        const handles = expireSessions();
        // A session the TPM no longer has (a reset since) is no loss.
        for (const flushHandle of handles) await tpm.run(FlushContext, { flushHandle }).catch(() => undefined);
        return handles.length;
      }, { lane: 'cleanup' })
      .catch((e: unknown) => {
        this.d.log.warn({ event: 'raw-kept-expire-failed', err: (e as Error).message }, 'flushing idle kept sessions failed');
        return 0;
      });
    if (flushed > 0) this.d.log.info({ event: 'raw-kept-expired', sessions: flushed }, `flushed ${flushed} kept session(s) unused for their idle limit`);
    return flushed;
  }
}
