/**
 * Keeps an eye on the TPM: whether it answers (for /v1/health — which itself never touches
 * the TPM, so unauthenticated callers cannot load it), and the maintenance that must follow a
 * start or an outage: flush transient objects/sessions left loaded (a TPM without a resource
 * manager keeps them when a connection drops mid-operation) and reconcile the registry with
 * the TPM. While the TPM is unreachable it is probed every few seconds.
 */
import type { Logger } from 'pino';
import { getTpmProperty, TPM_PT, type TpmRunner } from '../../tpm/index.js';
import { isTpmUnreachable } from './error-mapping.js';
import type { MaintenanceRequests } from './maintenance.js';
import type { JobEvent, SweptEvent, TpmQueue } from './queue.js';
import { flushLeftovers } from '../keys/recovery.js';

/** Queue tenant of the service's own jobs ('#' never starts a tenant id). */
export const SYSTEM_TENANT = '#system';

export class TpmSupervisor {
  /** undefined until the first answer or failure. */
  reachable: boolean | undefined;
  private maintenancePending = true;
  private running = false;
  /** Requests before start() wait for it (start runs maintenance at once). */
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Maintenance failures in a row: the first is logged as a warning, repeats only now and then. */
  private failures = 0;

  constructor(
    private readonly queue: TpmQueue,
    requests: MaintenanceRequests,
    /** Brings registry and TPM into agreement; runs inside the maintenance job. */
    private readonly reconcile: (tpm: TpmRunner) => Promise<void>,
    private readonly log: Logger,
    private readonly retryMs = 2000,
  ) {
    requests.serve(() => this.requestMaintenance());
    // A job's leftovers the queue could not flush (the TPM went away meanwhile).
    queue.events.on('swept', (ev: SweptEvent) => {
      if (ev.failed.length > 0) this.requestMaintenance();
    });
    queue.events.on('done', (ev: JobEvent & { error?: unknown }) => {
      if (ev.error === undefined || !isTpmUnreachable(ev.error)) {
        if (this.reachable !== true) this.log.info({ event: 'tpm', reachable: true }, 'the TPM answers');
        this.reachable = true;
        return;
      }
      if (this.reachable !== false) this.log.error({ event: 'tpm', reachable: false, err: (ev.error as Error).message }, 'the TPM is not reachable');
      this.reachable = false;
      this.requestMaintenance();
    });
  }

  /** Whether everything is in order (TPM answers, recovery done). */
  get healthy(): boolean {
    return this.reachable === true && !this.maintenancePending;
  }

  start(): void {
    this.started = true;
    this.requestMaintenance(0);
  }

  /** Asks for a leftover sweep and reconciliation as soon as the TPM answers. */
  requestMaintenance(delayMs = this.retryMs): void {
    this.maintenancePending = true;
    if (!this.started || this.stopped || this.running || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.maintain();
    }, delayMs);
    this.timer.unref();
  }

  private async maintain(): Promise<void> {
    if (this.stopped) return;
    this.running = true;
    this.maintenancePending = false;
    try {
      await this.queue.submit(SYSTEM_TENANT, 'maintenance', async (tpm) => {
        await getTpmProperty(tpm, TPM_PT.MANUFACTURER); // reachable at all?
        await flushLeftovers(tpm, this.queue.transients.kept, this.log);
        await this.reconcile(tpm);
      });
      this.failures = 0;
    } catch (e) {
      this.maintenancePending = true;
      const level = this.failures++ % 30 === 0 ? 'warn' : 'debug';
      this.log[level]({ event: 'tpm-maintenance', err: (e as Error).message, failures: this.failures }, 'TPM maintenance failed; retrying');
    } finally {
      this.running = false;
    }
    if (this.maintenancePending) this.requestMaintenance();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
