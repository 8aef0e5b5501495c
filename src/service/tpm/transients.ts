/**
 * Transient handles the service keeps loaded across queue jobs on purpose (loaded hash
 * sequences, cached keys). Anything else a job loads is flushed by the end of that job
 * (JobTpm's account, swept by the queue), and the maintenance sweep flushes every transient
 * object and session but these.
 */
import type { TpmRunner } from '../../tpm/index.js';

/**
 * Whoever keeps objects loaded only while nobody else needs their slots (the object cache, the
 * raw channel's connections): JobTpm asks for a slot before a command that loads an object
 * when all are taken. Several lend at once: the least recently used idle object goes first,
 * whoever holds it (Transients.lender).
 */
export interface SlotLender {
  /** Transient object slots the service may fill (undefined until known: then nothing is lent). */
  readonly slots: number | undefined;
  /** Frees one slot it holds (saved out or flushed); false when it holds none it can free now. */
  reclaim(tpm: TpmRunner): Promise<boolean>;
  /** The TPM handed out `handle` again: whatever was kept under it is gone (TPM restarted). */
  reissued(handle: number): void;
  /** When its least recently used idle loaded object was last used (Transients.tick), or undefined: none to lend. */
  idleSince(): number | undefined;
}

export class Transients {
  /** Kept loaded across jobs: the sweeps leave them. */
  readonly kept = new Set<number>();
  private readonly lenders = new Set<SlotLender>();
  private clock = 0;
  private readonly all: SlotLender = new AllLenders(this.lenders);

  /** All lenders as one (undefined while there is none). */
  get lender(): SlotLender | undefined {
    return this.lenders.size === 0 ? undefined : this.all;
  }

  addLender(l: SlotLender): void {
    this.lenders.add(l);
  }

  removeLender(l: SlotLender): void {
    this.lenders.delete(l);
  }

  /** A use stamp, one order for every lender. */
  tick(): number {
    return ++this.clock;
  }

  /** `handle` stays loaded after the job that loaded it. */
  keep(handle: number): void {
    this.kept.add(handle);
  }

  /** `handle` is flushed, or no longer vouched for (the next sweep may flush it). */
  release(handle: number): void {
    this.kept.delete(handle);
  }
}

/** Every lender as one: the least recently used idle object goes first, whoever holds it. */
class AllLenders implements SlotLender {
  constructor(private readonly lenders: ReadonlySet<SlotLender>) {}

  get slots(): number | undefined {
    for (const l of this.lenders) if (l.slots !== undefined) return l.slots;
    return undefined;
  }

  /** Oldest first; the next lender when that one cannot free a slot now. */
  async reclaim(tpm: TpmRunner): Promise<boolean> {
    const order = [...this.lenders].flatMap((l) => {
      const t = l.idleSince();
      return t === undefined ? [] : [{ l, t }];
    });
    order.sort((a, b) => a.t - b.t);
    for (const { l } of order) if (await l.reclaim(tpm)) return true;
    return false;
  }

  reissued(handle: number): void {
    for (const l of [...this.lenders]) l.reissued(handle);
  }

  idleSince(): number | undefined {
    return undefined;
  }
}
