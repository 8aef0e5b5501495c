/**
 * Limits over time for one app (docs/FIREWALL.md "DA safety", "NV"): a token bucket for its
 * NV writes, and its count of authorization failures, which forgets one failure per recovery
 * interval as the TPM's own failedTries does (Part 1 §19.8.6, recoveryTime).
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

/** An app's authorization failures, one forgotten per `recoveryMs` since the last change. */
export class DaCount {
  private count = 0;
  private since = 0;

  constructor(
    private readonly now: Clock,
    readonly recoveryMs: number,
  ) {}

  /** Failures still counted now. */
  failures(): number {
    const t = this.now();
    if (this.count === 0) return 0;
    const forgiven = Math.min(this.count, Math.floor((t - this.since) / this.recoveryMs));
    this.count -= forgiven;
    this.since += forgiven * this.recoveryMs;
    return this.count;
  }

  /** One more failure: the recovery interval starts again only if nothing was counted. */
  fail(): void {
    if (this.failures() === 0) this.since = this.now();
    this.count++;
  }
}
