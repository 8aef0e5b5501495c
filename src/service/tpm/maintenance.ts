/**
 * Requests for TPM maintenance (leftover sweep and reconciliation with the registry): the one
 * link from the parts that notice the TPM and the registry may disagree (key steps that
 * failed half-way, a key found missing, a sequence that may have stayed loaded) to the
 * supervisor that does the work. Created first and handed to every part, so none needs
 * another to exist first, and the dependency has a name.
 */
export class MaintenanceRequests {
  private handler: (() => void) | undefined;
  private pending = false;

  /** Asks for maintenance as soon as the TPM answers. */
  request(): void {
    if (this.handler) this.handler();
    else this.pending = true;
  }

  /** The supervisor's side: `handler` runs for every request, now for one made before. */
  serve(handler: () => void): void {
    this.handler = handler;
    if (this.pending) {
      this.pending = false;
      handler();
    }
  }
}
