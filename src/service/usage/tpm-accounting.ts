/**
 * What the service accounts to each tenant since it started: answered requests and refusals
 * by operation (fed by http/lifecycle.ts), TPM time and queue waits (from the TPM queue's
 * events). Kept by tenant id, in memory: counters restart with the service, which `since` says.
 */
import { performance } from 'node:perf_hooks';
import type { JobEvent, TpmQueue } from '../tpm/queue.js';

export interface TenantAccount {
  requests: Map<string, { count: number; refused: number }>;
  tpmTimeMs: number;
  waits: { count: number; totalMs: number; maxMs: number };
}

const newAccount = (): TenantAccount => ({ requests: new Map(), tpmTimeMs: 0, waits: { count: 0, totalMs: 0, maxMs: 0 } });

export class TpmAccounting {
  readonly since = new Date();

  /** `now`: milliseconds on a monotonic clock (tests give their own). */
  constructor(private readonly now: () => number = () => performance.now()) {}

  private readonly accounts = new Map<string, TenantAccount>();
  /** Jobs by seq: when they were queued, then when they started. */
  private readonly queuedAt = new Map<number, number>();
  private readonly startedAt = new Map<number, number>();

  /** Listens to the queue's job events (for the life of the queue). */
  watch(queue: TpmQueue): void {
    queue.events.on('enqueue', (e: JobEvent) => this.queuedAt.set(e.seq, this.now()));
    queue.events.on('withdrawn', (e: JobEvent) => this.queuedAt.delete(e.seq));
    queue.events.on('start', (e: JobEvent) => {
      const now = this.now();
      const q = this.queuedAt.get(e.seq);
      this.queuedAt.delete(e.seq);
      this.startedAt.set(e.seq, now);
      if (q === undefined) return;
      const w = this.of(e.tenant).waits;
      const ms = now - q;
      w.count++;
      w.totalMs += ms;
      w.maxMs = Math.max(w.maxMs, ms);
    });
    queue.events.on('done', (e: JobEvent) => {
      const s = this.startedAt.get(e.seq);
      this.startedAt.delete(e.seq);
      if (s !== undefined) this.of(e.tenant).tpmTimeMs += this.now() - s;
    });
  }

  /** A tenant's request was answered with `status` (refused: 4xx or 5xx). */
  answered(tenant: string, op: string, status: number): void {
    const reqs = this.of(tenant).requests;
    let r = reqs.get(op);
    if (!r) reqs.set(op, (r = { count: 0, refused: 0 }));
    r.count++;
    if (status >= 400) r.refused++;
  }

  /** The tenant's account (all zero when it has done nothing yet). */
  account(tenant: string): TenantAccount {
    return this.accounts.get(tenant) ?? newAccount();
  }

  /** Tenants with an account, in the order they first did something. */
  tenants(): string[] {
    return [...this.accounts.keys()];
  }

  private of(tenant: string): TenantAccount {
    let a = this.accounts.get(tenant);
    if (!a) this.accounts.set(tenant, (a = newAccount()));
    return a;
  }
}
