/**
 * Statistics for noisy, shared machines: every figure is a ratio of two things measured side
 * by side, in alternating order, summarized by medians (and p99 where a tail matters).
 */

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank quantile of an ascending array (q in [0, 1]). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: quantileSorted(s, 0.5),
    p90: quantileSorted(s, 0.9),
    p99: quantileSorted(s, 0.99),
    max: s[s.length - 1] ?? Number.NaN,
    mean,
  };
}

export function median(values: readonly number[]): number {
  return quantileSorted([...values].sort((a, b) => a - b), 0.5);
}

/** a / b, NaN-safe. */
export function ratio(a: number, b: number): number {
  return b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? Number.NaN : a / b;
}

/**
 * Runs `reps` rounds; each round runs every variant once, in an order that rotates from
 * round to round (AB, BA, ... for two), so slow drifts of the machine hit all variants alike.
 * Returns each variant's samples (whatever `run` returned).
 */
export async function interleave<K extends string, T>(
  variants: readonly K[],
  reps: number,
  run: (variant: K, round: number) => Promise<T>,
): Promise<Record<K, T[]>> {
  const out = Object.fromEntries(variants.map((v) => [v, [] as T[]])) as Record<K, T[]>;
  for (let i = 0; i < reps; i++) {
    const order = rotate(variants, i);
    for (const v of order) out[v].push(await run(v, i));
  }
  return out;
}

function rotate<T>(xs: readonly T[], i: number): T[] {
  if (xs.length === 2) return i % 2 === 0 ? [...xs] : [xs[1]!, xs[0]!];
  const k = i % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

/** Milliseconds taken by `fn`. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export const round = (x: number, digits = 3): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** Rounds every number in a JSON-able value (for the results file). */
export function roundDeep(v: unknown, digits = 4): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? v : round(v, digits);
  if (Array.isArray(v)) return v.map((x) => roundDeep(x, digits));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, roundDeep(x, digits)]));
  return v;
}
