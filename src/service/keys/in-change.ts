/**
 * Handles whose key this process is creating or deleting right now. The key manager fills it;
 * recovery (run again after a TPM outage, while requests go on) leaves those handles alone.
 * Created first and handed to both, instead of recovery calling back into the key manager.
 */
export class KeysInChange {
  /** A tenant's create or delete under way. */
  readonly creatingOrDeleting = new Set<number>();
  /** A purge's deletes (kept apart: a tenant's own DELETE may hold the same handle above). */
  readonly purging = new Set<number>();

  has(handle: number): boolean {
    return this.creatingOrDeleting.has(handle) || this.purging.has(handle);
  }
}
