/**
 * A bounded number of places (open hash sequences), shared fairly between tenants: at most
 * `total` held at once and `perTenant` by one tenant. A caller that cannot have one now waits;
 * when a place frees it goes to the waiting tenant holding the fewest, ties broken round-robin
 * (the tenant served last goes to the back). So a tenant with many streams never keeps
 * another from its first. Waiting is bounded too — `perTenant` waiters per tenant (429
 * beyond), `total` in all (503 beyond) — and a waiter leaves when its AbortSignal fires.
 */
import { EventEmitter } from 'node:events';
import { serviceBusy, tenantBusy } from '../protocol/errors.js';

export interface PlacesOptions {
  total: number;
  perTenant: number;
  /** What the places are, for error messages ("hash sequence"). */
  what: string;
}

interface Waiter {
  tenant: string;
  grant: (release: () => void) => void;
}

export class FairPlaces {
  /** 'granted' ({ tenant }) each time a place is given. */
  readonly events = new EventEmitter();
  private readonly held = new Map<string, number>();
  private heldTotal = 0;
  private readonly waiting = new Map<string, Waiter[]>();
  private waitingTotal = 0;
  /** Tenants with waiters, in the order ties are broken. */
  private ring: string[] = [];

  constructor(private readonly opts: PlacesOptions) {}

  get inUse(): number {
    return this.heldTotal;
  }

  get waiters(): number {
    return this.waitingTotal;
  }

  /** Resolves with a release function (idempotent) once a place is the caller's. */
  acquire(tenant: string, signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.free(tenant)) return Promise.resolve(this.take(tenant));
    const mine = this.waiting.get(tenant)?.length ?? 0;
    const { what, perTenant, total } = this.opts;
    if (mine >= perTenant) {
      return Promise.reject(tenantBusy(`you have ${this.held.get(tenant) ?? 0} ${what}(s) open and ${mine} waiting, your limit; retry when one is done`));
    }
    if (this.waitingTotal >= total) {
      return Promise.reject(serviceBusy(`all ${total} ${what}s are in use and ${this.waitingTotal} requests wait for one; retry shortly`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        tenant,
        grant: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = (): void => {
        this.remove(waiter);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let list = this.waiting.get(tenant);
      if (!list) this.waiting.set(tenant, (list = []));
      list.push(waiter);
      this.waitingTotal++;
      if (list.length === 1) this.ring.push(tenant);
    });
  }

  private free(tenant: string): boolean {
    return this.heldTotal < this.opts.total && (this.held.get(tenant) ?? 0) < this.opts.perTenant;
  }

  private take(tenant: string): () => void {
    this.held.set(tenant, (this.held.get(tenant) ?? 0) + 1);
    this.heldTotal++;
    this.events.emit('granted', { tenant });
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = this.held.get(tenant)! - 1;
      if (n === 0) this.held.delete(tenant);
      else this.held.set(tenant, n);
      this.heldTotal--;
      this.pump();
    };
  }

  private remove(w: Waiter): void {
    const list = this.waiting.get(w.tenant);
    const i = list?.indexOf(w) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    this.waitingTotal--;
    if (list.length === 0) {
      this.waiting.delete(w.tenant);
      this.ring = this.ring.filter((t) => t !== w.tenant);
    }
  }

  /** Gives free places to waiters: fewest held first, then ring order. */
  private pump(): void {
    while (this.heldTotal < this.opts.total) {
      let best: string | undefined;
      for (const t of this.ring) {
        const h = this.held.get(t) ?? 0;
        if (h >= this.opts.perTenant) continue;
        if (best === undefined || h < (this.held.get(best) ?? 0)) best = t;
      }
      if (best === undefined) return;
      const w = this.waiting.get(best)![0]!;
      this.remove(w);
      if (this.waiting.has(best)) this.ring = [...this.ring.filter((t) => t !== best), best];
      w.grant(this.take(best));
    }
  }
}
