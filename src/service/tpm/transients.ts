/**
 * Transient handles the service keeps loaded across queue jobs on purpose (loaded hash
 * sequences). Anything else a job loads is flushed by the end of that job (JobTpm's account,
 * swept by the queue), and the maintenance sweep flushes every transient object and session
 * but these.
 */
export class Transients {
  /** Kept loaded across jobs: the sweeps leave them. */
  readonly kept = new Set<number>();

  /** `handle` stays loaded after the job that loaded it. */
  keep(handle: number): void {
    this.kept.add(handle);
  }

  /** `handle` is flushed, or no longer vouched for (the next sweep may flush it). */
  release(handle: number): void {
    this.kept.delete(handle);
  }
}
