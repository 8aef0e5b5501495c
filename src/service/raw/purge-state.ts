/**
 * Purging a tenant record's raw-channel state: the NV indices in its range undefined on the
 * chip (purge-nv.ts), then its state file removed and its NV slot freed. The running service
 * does it with its live RawApps (RawChannel.purge); the admin command, with the service stopped
 * (it then holds the state lock and the TPM), with the state files read afresh — so a record
 * purged either way leaves nothing of its raw use behind.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FlushContext, type TpmRunner } from '../../tpm/index.js';
import { releaseSessions } from '../../firewall/kept-sessions.js';
import type { TpmQueue } from '../tpm/queue.js';
import { RawApps } from './apps.js';
import { undefineRange } from './purge-nv.js';

/** The folder of the apps' raw state files in a state dir. */
export const RAW_STATE_DIR = 'raw';

/** Flushes saved sessions; one the TPM no longer has (a reset since) is no loss. */
async function flushSessions(tpm: TpmRunner, handles: readonly number[]): Promise<void> {
  for (const flushHandle of handles) await tpm.run(FlushContext, { flushHandle }).catch(() => undefined);
}

/**
 * Returns how many NV indices were undefined (0 too when the record had no raw state). The
 * sessions the app had saved and this process kept for it (kept-sessions.ts) are flushed too.
 */
export async function purgeAppState(apps: RawApps, queue: TpmQueue, record: string, log: Logger): Promise<number> {
  const sessions = releaseSessions(record);
  const range = apps.rangeOf(record);
  if (!range && sessions.length === 0) return 0;
  const undefined_ = await queue.submit(
    '#raw',
    'raw-purge',
    async (tpm) => {
      await flushSessions(tpm, sessions);
      return range ? undefineRange(tpm, range) : 0;
    },
    { lane: 'cleanup' },
  );
  if (range) await apps.forget(record);
  log.info({ event: 'raw-purged', record, nvIndices: undefined_, sessions: sessions.length }, 'removed the raw channel state of a purged record');
  return undefined_;
}

/** The admin command's offline purge: the state files of `stateDir` read now. */
export async function purgeRawState(stateDir: string, queue: TpmQueue, record: string, log: Logger): Promise<number> {
  return purgeAppState(await RawApps.load(join(stateDir, RAW_STATE_DIR), log), queue, record, log);
}
