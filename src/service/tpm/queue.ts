/**
 * The TPM queue: the one place that runs work on the TPM. Jobs (a whole operation, or one
 * command of a long hash) run one at a time; waiting jobs are served round-robin across
 * tenants, so a tenant with fifty queued requests delays another tenant's single request by
 * at most one job. Cleanup jobs (flushes) jump the queue: they free TPM memory and never wait
 * behind tenants. Bounded: a full queue refuses at once (503), as does a tenant over its
 * share (429).
 *
 * Each job runs on its own JobTpm: stopped between commands once its signal fires, and what
 * it loaded and did not flush (nor keep, Transients.keep) is flushed before the job settles.
 */
import { EventEmitter } from 'node:events';
import { FlushContext, TpmError, type TpmRunner } from '../../tpm/index.js';
import { serviceBusy, tenantBusy } from '../protocol/errors.js';
import { JobTpm } from './queued-tpm.js';
import { Transients } from './transients.js';

export interface QueueOptions {
  /** Jobs that may wait in total (running one not counted). */
  capacity: number;
  /** Jobs one tenant may have waiting. */
  perTenant: number;
}

export interface SubmitOptions {
  /**
   * Withdraws the job while it waits (its promise rejects with the signal's reason); once it
   * runs, stops it before its next command (a flush-only command still runs).
   */
  signal?: AbortSignal;
  /** `cleanup`: runs before any waiting tenant job, never refused, never withdrawn. */
  lane?: 'normal' | 'cleanup';
}

export interface JobEvent {
  seq: number;
  tenant: string;
  label: string;
}

/** A job left transient handles loaded: they were flushed (`failed`: those the flush missed). */
export interface SweptEvent extends JobEvent {
  handles: number[];
  failed: number[];
}

interface Job {
  seq: number;
  tenant: string;
  label: string;
  run: (tpm: TpmRunner) => Promise<unknown>;
  signal: AbortSignal | undefined;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  unlisten?: () => void;
}

export class TpmQueue {
  /** 'enqueue', 'start' and 'withdrawn' (left the queue unrun; JobEvent), 'swept' (SweptEvent), 'done' (JobEvent & { error?: unknown }). */
  readonly events = new EventEmitter();
  private readonly waiting = new Map<string, Job[]>();
  /** Tenants with waiting jobs, in the order they will be served. */
  private ring: string[] = [];
  private readonly cleanups: Job[] = [];
  private queued = 0;
  private running: Job | undefined;
  private seq = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly tpm: TpmRunner,
    private readonly opts: QueueOptions,
    /** Handles kept loaded across jobs; the per-job sweep leaves them. */
    readonly transients: Transients = new Transients(),
  ) {}

  /** Waiting plus running jobs. */
  get depth(): number {
    return this.queued + this.cleanups.length + (this.running ? 1 : 0);
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  submit<T>(tenant: string, label: string, run: (tpm: TpmRunner) => Promise<T>, opts: SubmitOptions = {}): Promise<T> {
    const cleanup = opts.lane === 'cleanup';
    if (!cleanup) {
      if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
      if (this.queued >= this.opts.capacity) return Promise.reject(serviceBusy(`the TPM queue is full (${this.opts.capacity} waiting)`));
      if ((this.waiting.get(tenant)?.length ?? 0) >= this.opts.perTenant) {
        return Promise.reject(tenantBusy(`too many of your requests are waiting for the TPM (${this.opts.perTenant})`));
      }
    }
    return new Promise<T>((resolve, reject) => {
      const job: Job = { seq: ++this.seq, tenant, label, run, signal: cleanup ? undefined : opts.signal, resolve: resolve as (v: unknown) => void, reject };
      if (cleanup) this.cleanups.push(job);
      else {
        let list = this.waiting.get(tenant);
        if (!list) this.waiting.set(tenant, (list = []));
        list.push(job);
        if (list.length === 1) this.ring.push(tenant);
        this.queued++;
      }
      this.events.emit('enqueue', { seq: job.seq, tenant, label } satisfies JobEvent);
      this.pump();
      // Only a job left waiting can be withdrawn: one that started at once needs no listener
      // (adding and removing one on an AbortSignal costs more than the rest of submit).
      const signal = job.signal;
      if (signal && this.running !== job) {
        const onAbort = (): void => this.withdraw(job, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        job.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Fails every waiting tenant job with `error` (shutdown); the running job finishes. */
  rejectWaiting(error: unknown): void {
    for (const list of this.waiting.values()) for (const job of [...list]) this.withdraw(job, error);
  }

  private withdraw(job: Job, reason: unknown): void {
    const list = this.waiting.get(job.tenant);
    const i = list?.indexOf(job) ?? -1;
    if (!list || i < 0) return; // already running or done
    list.splice(i, 1);
    this.queued--;
    if (list.length === 0) {
      this.waiting.delete(job.tenant);
      this.ring = this.ring.filter((t) => t !== job.tenant);
    }
    job.unlisten?.();
    this.events.emit('withdrawn', { seq: job.seq, tenant: job.tenant, label: job.label } satisfies JobEvent);
    job.reject(reason);
    this.notifyIdle();
  }

  private next(): Job | undefined {
    const c = this.cleanups.shift();
    if (c) return c;
    const tenant = this.ring.shift();
    if (tenant === undefined) return undefined;
    const list = this.waiting.get(tenant)!;
    const job = list.shift()!;
    this.queued--;
    if (list.length > 0) this.ring.push(tenant);
    else this.waiting.delete(tenant);
    job.unlisten?.();
    return job;
  }

  private pump(): void {
    if (this.running) return;
    const job = this.next();
    if (!job) {
      this.notifyIdle();
      return;
    }
    this.running = job;
    const ev: JobEvent = { seq: job.seq, tenant: job.tenant, label: job.label };
    this.events.emit('start', ev);
    const tpm = new JobTpm(this.tpm, this.transients, job.signal);
    let p: Promise<unknown>;
    try {
      p = job.run(tpm);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (v) => this.settle(tpm, job, ev, true, v),
      (e: unknown) => this.settle(tpm, job, ev, false, e),
    ).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  /**
   * Settles a job that ended, after flushing what it left loaded. Without leftovers this takes
   * the same ticks as before there was any bookkeeping: the order in which waiters resume and
   * the next job starts does not depend on it.
   */
  private settle(tpm: JobTpm, job: Job, ev: JobEvent, ok: boolean, v: unknown): void | Promise<void> {
    const left = tpm.leftovers();
    if (left.length === 0) return this.report(job, ev, ok, v);
    return this.sweep(left, ev, tpm.transportFailed).then(() => this.report(job, ev, ok, v));
  }

  /**
   * Flushes what a job left loaded, before the job settles and the next one starts. After a
   * transport failure nothing is sent: all are reported failed, for the maintenance sweep.
   */
  private async sweep(handles: readonly number[], ev: JobEvent, transportFailed: boolean): Promise<void> {
    const failed: number[] = transportFailed ? [...handles] : [];
    for (const h of transportFailed ? [] : handles) {
      try {
        await this.tpm.run(FlushContext, { flushHandle: h });
      } catch (e) {
        if (!(e instanceof TpmError)) failed.push(h); // a TPM refusal: the handle is gone already
      }
    }
    this.events.emit('swept', { ...ev, handles: [...handles], failed } satisfies SweptEvent);
  }

  private report(job: Job, ev: JobEvent, ok: boolean, v: unknown): void {
    if (ok) {
      this.events.emit('done', ev);
      job.resolve(v);
    } else {
      this.events.emit('done', { ...ev, error: v });
      job.reject(v);
    }
  }

  private notifyIdle(): void {
    if (this.depth !== 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
