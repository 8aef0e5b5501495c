/**
 * What the compiled-codec suites compare: the outcome of running the compiled and the
 * interpreted (reference) codec on the same input — a value, or an error's class, message,
 * path and offset — and value corruptions for the encoders.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { expect } from 'vitest';
import { TpmDecodeError, TpmEncodeError } from '../../src/tpm/wire/errors.js';
import { TpmError } from '../../src/tpm/rc.js';
import { interpreted } from '../../src/tpm/wire/compile.js';
import type { CommandDescriptor } from '../../src/tpm/command.js';

export type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; cls: string; message: string; path?: string; offset?: number; rc?: number };

export function outcome(fn: () => unknown): Outcome {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof TpmDecodeError) return { ok: false, cls: e.name, message: e.message, path: e.path, offset: e.offset };
    if (e instanceof TpmEncodeError) return { ok: false, cls: e.name, message: e.message, path: e.path };
    if (e instanceof TpmError) return { ok: false, cls: 'TpmError', message: e.message, rc: e.rc };
    return { ok: false, cls: `unexpected ${e instanceof Error ? e.constructor.name : typeof e}`, message: String(e) };
  }
}

/**
 * Both outcomes equal (a cheap deep comparison first: the suites run it 10⁵ times). Counts the
 * kinds seen so a suite can check it exercised both successes and failures.
 */
export function expectSame(compiled: Outcome, reference: Outcome, seen?: { ok: number; failed: number }): void {
  if (!isDeepStrictEqual(compiled, reference)) expect(compiled).toStrictEqual(reference);
  // Never a crash: only the typed errors.
  if (!compiled.ok && compiled.cls.startsWith('unexpected')) expect(compiled).toBe('a typed error');
  if (seen) seen[compiled.ok ? 'ok' : 'failed']++;
}

type AnyCmd = CommandDescriptor<any, any, any, any>;
/** The descriptor with its parameter and response codecs interpreted. */
export const interpretedCommand = <C extends AnyCmd>(cmd: C): C => ({ ...cmd, params: interpreted(cmd.params), response: interpreted(cmd.response) });

/**
 * Run count of a property: `n` by default; EVE_FUZZ_RUNS sets every property's count (e.g.
 * EVE_FUZZ_RUNS=100000 for the 10⁵ per structure, a longer run than CI's).
 */
export function fuzzRuns(n: number): number {
  const env = Number(process.env.EVE_FUZZ_RUNS);
  return Number.isInteger(env) && env > 0 ? env : n;
}

/** A long EVE_FUZZ_RUNS run is no CI run: no per-test time limit then. */
export const fuzzTimeout: number | undefined = process.env.EVE_FUZZ_RUNS ? 24 * 3600_000 : undefined;

/** Values no TPM field accepts, or that a field of another type would. */
const garbage = fc.constantFrom<unknown>(
  undefined,
  null,
  -1,
  1.5,
  Number.NaN,
  0x100,
  0x10000,
  0x100000000,
  -0x80000001,
  'text',
  true,
  10n,
  -1n,
  2n ** 64n,
  {},
  [],
  [1, 2],
  new Uint8Array(0),
  new Uint8Array(3),
  new Uint8Array(70000),
  0,
  1,
  0x0001,
  0x0004,
  0x000b,
  0x0010,
  0x0014,
  0x0018,
  0x0023,
);

/** A spot in a value: the object/array holding it and its key. */
type Spot = { parent: Record<string, unknown> | unknown[]; key: string | number };

function spots(v: unknown, out: Spot[] = []): Spot[] {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push({ parent: v, key: i });
      spots(x, out);
    });
  } else if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      out.push({ parent: o, key: k });
      spots(o[k], out);
    }
  }
  return out;
}

/**
 * A valid value with one spot broken: replaced by garbage, deleted, or (an array) given a hole
 * or an extra item; or the whole value replaced.
 */
export function corrupted<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.tuple(valid, fc.nat(), fc.nat({ max: 3 }), garbage).map(([v, pick, how, g]) => {
    const copy = structuredClone(v);
    const all = spots(copy);
    if (all.length === 0 || pick % (all.length + 1) === all.length) return g;
    const s = all[pick % all.length]!;
    if (how === 0 && !Array.isArray(s.parent)) delete s.parent[s.key as string];
    else if (how === 1 && Array.isArray(s.parent)) s.parent.push(g);
    else if (how === 2 && Array.isArray(s.parent)) delete s.parent[s.key as number];
    else (s.parent as Record<string | number, unknown>)[s.key] = g;
    return copy;
  });
}

/** Byte-level damage: bit flips, truncation, extension, forged size/count fields. */
export function damaged(bytes: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const op = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.nat({ max: 7 }) }),
    fc.record({ op: fc.constant('truncate' as const), pos: fc.nat() }),
    fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({
      op: fc.constant('forge' as const),
      pos: fc.nat(),
      width: fc.constantFrom(1, 2, 4),
      value: fc.oneof(fc.constantFrom(0, 1, 2, 0xff, 0x100, 0xffff, 0x7fffffff, 0xffffffff), fc.nat({ max: 0xffffffff })),
    }),
  );
  return fc.tuple(bytes, fc.array(op, { minLength: 1, maxLength: 3 })).map(([input, ops]) => {
    let b = Uint8Array.from(input);
    for (const o of ops) {
      const at = b.length === 0 ? 0 : ('pos' in o ? o.pos : 0) % b.length;
      if (o.op === 'flip' && b.length) b[at] = b[at]! ^ (1 << o.bit);
      else if (o.op === 'truncate') b = b.slice(0, at);
      else if (o.op === 'extend') b = Uint8Array.from([...b, ...o.bytes]);
      else if (o.op === 'forge') for (let i = 0; i < o.width && at + i < b.length; i++) b[at + i] = Math.floor(o.value / 256 ** (o.width - 1 - i)) % 256;
    }
    return b;
  });
}
