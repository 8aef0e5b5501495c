/**
 * Transient handles the service keeps loaded across queue jobs on purpose (loaded hash
 * sequences, cached keys). Anything else a job loads is flushed by the end of that job
 * (JobTpm's account, swept by the queue), and the maintenance sweep flushes every transient
 * object and session but these.
 */
import type { TpmRunner } from '../../tpm/index.js';

/**
 * Whoever keeps objects loaded only while nobody else needs their slots (the object cache):
 * JobTpm asks it for a slot before a command that loads an object when all are taken.
 */
export interface SlotLender {
  /** Transient object slots the service may fill (undefined until known: then nothing is lent). */
  readonly slots: number | undefined;
  /** Frees one slot it holds (saved out or flushed); false when it holds none it can free now. */
  reclaim(tpm: TpmRunner): Promise<boolean>;
  /** The TPM handed out `handle` again: whatever was kept under it is gone (TPM restarted). */
  reissued(handle: number): void;
}

export class Transients {
  /** Kept loaded across jobs: the sweeps leave them. */
  readonly kept = new Set<number>();
  /** Set by the object cache, if any. */
  lender: SlotLender | undefined;

  /** `handle` stays loaded after the job that loaded it. */
  keep(handle: number): void {
    this.kept.add(handle);
  }

  /** `handle` is flushed, or no longer vouched for (the next sweep may flush it). */
  release(handle: number): void {
    this.kept.delete(handle);
  }
}
