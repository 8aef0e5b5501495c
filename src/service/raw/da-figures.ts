/**
 * The chip's dictionary-attack figures for the firewall's total of all apps' failures
 * (firewall/limits.ts DaTotal, docs/FIREWALL.md "DA safety"): TPM_PT_LOCKOUT_COUNTER,
 * TPM_PT_MAX_AUTH_FAIL and TPM_PT_LOCKOUT_INTERVAL, read in a cleanup queue job when the raw
 * channel starts (before any app command) and again after the TPM stopped answering (it may
 * come back restarted, or reconfigured).
 */
import type { Logger } from 'pino';
import { GetCapability, TPM_CAP, type TpmRunner } from '../../tpm/index.js';
import { daReserve, type ChipDa, type DaTotal } from '../../firewall/limits.js';
import type { TpmQueue } from '../tpm/queue.js';

// TPM_PT_VAR properties (Part 2 §6.13), consecutive.
const PT_LOCKOUT_COUNTER = 0x20e;
const PT_MAX_AUTH_FAIL = 0x20f;
const PT_LOCKOUT_INTERVAL = 0x210;

/** Reads the three properties; a chip that does not give all three is an error. */
export async function readChipDa(tpm: TpmRunner): Promise<ChipDa> {
  const r = await tpm.run(GetCapability, { capability: TPM_CAP.TPM_PROPERTIES as never, property: PT_LOCKOUT_COUNTER, propertyCount: 3 });
  const props = (r.capabilityData as { data: Array<{ property: number; value: number }> }).data;
  const value = (p: number): number => {
    const v = props.find((x) => x.property === p)?.value;
    if (v === undefined) throw new Error(`the TPM did not report property 0x${p.toString(16)}`);
    return v;
  };
  return { counter: value(PT_LOCKOUT_COUNTER), maxAuthFail: value(PT_MAX_AUTH_FAIL), lockoutIntervalMs: value(PT_LOCKOUT_INTERVAL) * 1000 };
}

/**
 * Reads the figures into `total` in a cleanup job. Returns whether it did; a failure is logged
 * and the figures stay as they were (unknown at first: limits.ts UNKNOWN_CHIP_LIMIT).
 */
export async function syncDaTotal(queue: TpmQueue, total: DaTotal, log: Logger): Promise<boolean> {
  try {
    // Set inside the job: no app command runs between the read and the count taking it.
    const f = await queue.submit('#raw', 'raw-da-figures', async (tpm: TpmRunner) => {
      const figures = await readChipDa(tpm);
      total.setChip(figures);
      return figures;
    }, { lane: 'cleanup' });
    log.info(
      { event: 'raw-da-figures', maxAuthFail: f.maxAuthFail, lockoutIntervalS: f.lockoutIntervalMs / 1000, counter: f.counter, reserve: daReserve(f.maxAuthFail), appsLimit: total.limit },
      `the TPM's lockout after ${f.maxAuthFail} failures (${f.counter} counted now): apps together are stopped at ${total.limit}`,
    );
    return true;
  } catch (e) {
    log.warn({ event: 'raw-da-figures-failed', err: (e as Error).message }, `reading the TPM's dictionary-attack figures failed: ${(e as Error).message}`);
    return false;
  }
}
