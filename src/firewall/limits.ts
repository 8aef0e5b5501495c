/**
 * Limits over time (docs/FIREWALL.md "DA safety", "NV"): a token bucket for an app's NV
 * writes, its count of authorization failures, and the count of all apps' failures together,
 * each forgetting one failure per recovery interval as the TPM's own failedTries does (Part 1
 * §19.8.6, recoveryTime).
 */
import type { Clock } from './clock.js';

/**
 * A bucket of `capacity` tokens, one back every `intervalMs`. `take` may leave it below zero
 * (a cost known only afterwards, such as a command's TPM time): it is then in debt until refilled.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly now: Clock,
    readonly capacity: number,
    readonly intervalMs: number,
  ) {
    this.tokens = capacity;
    this.at = now();
  }

  /** Tokens now (fractions count towards the next one). */
  level(): number {
    const t = this.now();
    if (t > this.at) this.tokens = Math.min(this.capacity, this.tokens + (t - this.at) / this.intervalMs);
    this.at = Math.max(this.at, t);
    return this.tokens;
  }

  take(n: number): void {
    this.tokens = this.level() - n;
  }

  /** Milliseconds until the level reaches `n` (0 if it has). */
  waitFor(n: number): number {
    const missing = n - this.level();
    return missing <= 0 ? 0 : Math.ceil(missing * this.intervalMs);
  }
}

/** Authorization failures, one forgotten per recovery interval since the last change. */
export class DaCount {
  private count = 0;
  private since = 0;
  private readonly recovery: () => number;

  /** `recoveryMs`: fixed, or read at each use (the chip's figure may come later, da-figures.ts). */
  constructor(
    private readonly now: Clock,
    recoveryMs: number | (() => number),
  ) {
    this.recovery = typeof recoveryMs === 'number' ? () => recoveryMs : recoveryMs;
  }

  get recoveryMs(): number {
    return this.recovery();
  }

  /** Failures still counted now. */
  failures(): number {
    const t = this.now();
    if (this.count === 0) return 0;
    // Infinity: never forgotten (a chip whose lockout interval is 0, DaTotal).
    const ms = this.recoveryMs;
    const forgiven = Math.min(this.count, Math.floor((t - this.since) / ms));
    if (forgiven > 0) {
      this.count -= forgiven;
      this.since += forgiven * ms;
    }
    return this.count;
  }

  /** One more failure: the recovery interval starts again only if nothing was counted. */
  fail(): void {
    if (this.failures() === 0) this.since = this.now();
    this.count++;
  }

  /** The count is `n` now, its interval starting now (never sooner than the chip's own). */
  reset(n: number): void {
    this.count = n;
    this.since = this.now();
  }
}

/**
 * The chip's dictionary-attack figures (Part 2 §6.13): TPM_PT_MAX_AUTH_FAIL,
 * TPM_PT_LOCKOUT_INTERVAL (seconds, here ms) and TPM_PT_LOCKOUT_COUNTER (failures it has not forgotten).
 */
export interface ChipDa {
  readonly maxAuthFail: number;
  readonly lockoutIntervalMs: number;
  readonly counter: number;
}

/** Tries kept back for EVE and the admin: a quarter of the chip's, at least 2 (docs/FIREWALL.md "DA safety"). */
export const daReserve = (maxAuthFail: number): number => Math.max(2, Math.ceil(maxAuthFail / 4));

/** Until the chip's figures are read: all apps together get one app's default tries, forgotten per 2 hours. */
export const UNKNOWN_CHIP_LIMIT = 4;
export const UNKNOWN_CHIP_RECOVERY_MS = 120 * 60_000;

/**
 * The failures of all apps together that the chip has not forgotten yet (attack 5; TBS's total
 * threshold): one forgotten per the chip's lockout interval, as the chip forgets them. While it
 * is at `limit`, every app's DA-counted authorization is stopped, so the chip's counter stays
 * at least `daReserve` below its lockout.
 */
export class DaTotal {
  private chip: ChipDa | undefined;
  private readonly count: DaCount;

  constructor(now: Clock) {
    this.count = new DaCount(now, () => this.recoveryMs);
  }

  /** The chip's figures, read in a queue job (no app command meanwhile): its counter is the total now. */
  setChip(figures: ChipDa): void {
    this.chip = figures;
    this.count.reset(figures.counter);
  }

  get figures(): ChipDa | undefined {
    return this.chip;
  }

  /** Failures at which every app is stopped. */
  get limit(): number {
    const c = this.chip;
    return c ? Math.max(0, c.maxAuthFail - daReserve(c.maxAuthFail)) : UNKNOWN_CHIP_LIMIT;
  }

  /** One failure forgotten per this many ms: the chip's interval; a chip with none (0) is not trusted to forget. */
  get recoveryMs(): number {
    const c = this.chip;
    if (!c) return UNKNOWN_CHIP_RECOVERY_MS;
    return c.lockoutIntervalMs > 0 ? c.lockoutIntervalMs : Infinity;
  }

  failures(): number {
    return this.count.failures();
  }

  fail(): void {
    this.count.fail();
  }

  stopped(): boolean {
    return this.failures() >= this.limit;
  }
}
