/**
 * Time budgets for long commands (attack 10; docs/FIREWALL.md "Time budgets"): RSA key
 * generation (Create, CreatePrimary, CreateLoaded with an RSA template) takes seconds on a real
 * TPM, and the TPM does nothing else meanwhile. Per app: at most one such command in the TPM
 * queue at a time, and a budget of TPM time for them that refills over a window (each run's
 * TPM time measured and charged afterwards, so a run may leave the app in debt). Over budget,
 * the app's next key generation waits outside the queue (others' work goes on) until the
 * budget is back; if that would take longer than `maxWaitMs`, it is answered TPM_RC_RETRY at
 * once (the TPM's "not able to start the command"; a ServiceError, which the channel answers so).
 * The service's own re-makes of an app's RSA primaries (a virtual persistent handle's recipe,
 * persistents.ts) are charged to the app too: waited for like the app's own when foreseen (no
 * saved context), charged afterwards when not (a context that no longer loads).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CreatePrimary, Create, TPM_ALG, TPM_ST } from '../../tpm/index.js';
import { monotonic, type Clock } from '../../firewall/clock.js';
import { TokenBucket } from '../../firewall/limits.js';
import { tenantBusy } from '../protocol/errors.js';

/** TPM2_CreateLoaded (Part 3 §12.9): its template is a TPM2B_TEMPLATE, whose first field is the type too. */
const CREATE_LOADED = 0x191;

export interface KeygenLimits {
  /** TPM time (ms) an app's RSA key generations may take in a burst. */
  readonly budgetMs: number;
  /** The time in which a spent budget comes back in full. */
  readonly windowMs: number;
  /** The longest an app's key generation waits for its budget; past it, TPM_RC_RETRY at once. */
  readonly maxWaitMs: number;
}

const MINUTE = 60_000;
/** 60 s of RSA key generation per 10 minutes (a tenth of the TPM), waits up to 60 s (docs/FIREWALL.md "Time budgets"). */
export const DEFAULT_KEYGEN: KeygenLimits = { budgetMs: MINUTE, windowMs: 10 * MINUTE, maxWaitMs: MINUTE };

/** The budgets' time: `now` measures runs and refills, `wait` waits for a refill (tests inject both). */
export interface BudgetTime {
  now: Clock;
  wait(ms: number, signal: AbortSignal): Promise<void>;
}
const realTime: BudgetTime = { now: monotonic, wait: (ms, signal) => sleep(ms, undefined, { signal }) };

/** Measures the TPM time of the work it wraps (called inside the queue job). */
export type Timed = <R>(work: () => Promise<R>) => Promise<R>;
const untimed: Timed = (work) => work();

/** Whether `frame` asks the TPM to generate an RSA key: read from its bytes (a malformed one is the firewall's to refuse). */
export function isRsaKeygen(frame: Uint8Array): boolean {
  if (frame.length < 14) return false;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const code = v.getUint32(6);
  if (code !== Create.code && code !== CreatePrimary.code && code !== CREATE_LOADED) return false;
  let at = 14; // header and the one handle (parent or hierarchy)
  if (v.getUint16(0) === TPM_ST.SESSIONS) at = frame.length < 18 ? frame.length : at + 4 + v.getUint32(14);
  if (at + 2 > frame.length) return false;
  at += 2 + v.getUint16(at); // inSensitive (its size is clear even when encrypted)
  if (at + 4 > frame.length) return false;
  return v.getUint16(at + 2) === TPM_ALG.RSA; // inPublic: size, then type
}

interface AppBudget {
  readonly bucket: TokenBucket;
  /** The app's key generation in progress (waiting or queued or running): the next one starts after it. */
  turn: Promise<void>;
  /** Runs work and charges its TPM time to this budget: one per app, not one per command. */
  readonly charge: Timed;
}

export class KeygenBudgets {
  private readonly apps = new Map<string, AppBudget>();

  constructor(
    readonly limits: KeygenLimits = DEFAULT_KEYGEN,
    private readonly time: BudgetTime = realTime,
  ) {}

  /**
   * Runs `submit` (which queues the app's command, wrapping the job's work in `timed` and the
   * service's re-makes of the app's RSA primaries in `remakes`). An RSA key generation, or a
   * command for which such a re-make is foreseen (`remakesRsa`), first waits for the app's
   * previous one and for its budget.
   */
  async run<T>(app: string, frame: Uint8Array, signal: AbortSignal, submit: (timed: Timed, remakes: Timed) => Promise<T>, remakesRsa = false): Promise<T> {
    const keygen = isRsaKeygen(frame);
    // A keygen's whole run is measured, re-makes inside it with it (never charged twice).
    const b = this.of(app);
    if (!keygen && !remakesRsa) return submit(untimed, b.charge);
    const previous = b.turn;
    let done!: () => void;
    b.turn = new Promise((r) => (done = r));
    try {
      await previous;
      signal.throwIfAborted();
      const wait = b.bucket.waitFor(1);
      if (wait > this.limits.maxWaitMs) {
        throw tenantBusy(`RSA key generation: this app's TPM time budget (${this.limits.budgetMs / 1000} s per ${this.limits.windowMs / MINUTE} min) is spent; back in ${Math.ceil(wait / 1000)} s`);
      }
      if (wait > 0) await this.time.wait(wait, signal);
      return await (keygen ? submit(b.charge, untimed) : submit(untimed, b.charge));
    } finally {
      done();
    }
  }

  /** Runs work on the TPM and charges its time to the app's budget afterwards. */
  charge(app: string): Timed {
    return this.of(app).charge;
  }

  /** TPM time (ms) left in the app's budget now (negative: in debt). */
  left(app: string): number {
    return this.of(app).bucket.level();
  }

  private of(app: string): AppBudget {
    let b = this.apps.get(app);
    if (!b) {
      const { budgetMs, windowMs } = this.limits;
      const bucket = new TokenBucket(this.time.now, budgetMs, windowMs / budgetMs);
      const time = this.time;
      const charge: Timed = async (work) => {
        const start = time.now();
        try {
          return await work();
        } finally {
          bucket.take(time.now() - start);
        }
      };
      b = { bucket, turn: Promise.resolve(), charge };
      this.apps.set(app, b);
    }
    return b;
  }
}
