/**
 * Compiled codecs in command and response frames, against the interpreted ones: every vector
 * recorded from tpm2-tss and swtpm, random inputs and outputs of every command (same bytes),
 * damaged frames (same value or same error, path and offset); a hand-written codec inside a
 * compiled structure; and the fallback when code generation is refused.
 *
 * EVE_FUZZ_RUNS sets every property's count (HOT_RUNS for the bench's commands, RUNS else).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../helpers/vectors.js';
import { COMMANDS, CreatePrimary, ReadPublic, Sign } from '../../src/tpm/commands.js';
import {
  TPMS_AUTH_COMMAND,
  TPMS_AUTH_RESPONSE,
  marshalCommand,
  marshalResponse,
  remarshalCommand,
  unmarshalCommand,
  unmarshalResponse,
  type CommandDescriptor,
} from '../../src/tpm/command.js';
import { TPM2B_PUBLIC } from '../../src/tpm/structures.js';
import { decode, encode, list, sized, struct, tpm2b, u8, variant, union, u16, none } from '../../src/tpm/wire/codec.js';
import { TIER_UP, generatedSource, interpreted } from '../../src/tpm/wire/compile.js';
import { arbitraryOf, commandInputArb, responseOutputArb } from '../fuzz/arbitraries.js';
import { damaged, expectSame, fuzzRuns, fuzzTimeout, interpretedCommand, outcome } from './compiled-helpers.js';

type AnyCmd = CommandDescriptor<any, any, any, any>;
interface Vector {
  name: string;
  commandCode: string;
  command: string;
  response: string;
  /** Only on parameter-encryption vectors: their first parameters are ciphertext. */
  sessions?: unknown;
}
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const commands = [...COMMANDS.values()] as AnyCmd[];
const HOT = new Set<AnyCmd>([CreatePrimary, Sign, ReadPublic]);
const HOT_RUNS = fuzzRuns(2000);
/** unmarshalResponse's option for a frame the caller owns: byte fields as views into it. */
const OWNED = { owned: true };
const RUNS = fuzzRuns(150);

describe('every recorded vector through both paths', () => {
  const files = ['tpm2-tss-swtpm.json', 'tpm2-tss-swtpm-attest.json'];
  const all = files.flatMap((f) => loadVectors<{ vectors: Vector[] }>(f).vectors.map((v) => [`${f}: ${v.name}`, v] as const));
  // Commands the library has no descriptor for (yet) are left out; most are in.
  const known = all.filter(([, v]) => COMMANDS.has(Number(v.commandCode)));

  it('covers most vectors', () => {
    expect(known.length).toBeGreaterThan(all.length * 0.7);
  });

  it.each(known)('%s', (_, v) => {
    const cmd = COMMANDS.get(Number(v.commandCode)) as AnyCmd;
    const ic = interpretedCommand(cmd);
    const frame = unhex(v.command);
    const mine = outcome(() => unmarshalCommand(cmd, frame));
    expectSame(mine, outcome(() => unmarshalCommand(ic, frame)));
    // An encrypted parameter may not decode as its plaintext type: then both refuse it alike.
    if (v.sessions === undefined) expect(mine.ok).toBe(true);
    if (!mine.ok) return;
    const decoded = mine.value as ReturnType<typeof unmarshalCommand>;
    expect(remarshalCommand(cmd, decoded)).toStrictEqual(frame);
    expect(remarshalCommand(ic, decoded)).toStrictEqual(frame);

    const response = unhex(v.response);
    const n = decoded.auths.length;
    const out = outcome(() => unmarshalResponse(cmd, response, n));
    expectSame(out, outcome(() => unmarshalResponse(ic, response, n)));
    expectSame(outcome(() => unmarshalResponse(cmd, response, n, OWNED)), out);
    if (out.ok) {
      const r = out.value as ReturnType<typeof unmarshalResponse>;
      const auths = n > 0 ? r.auths : undefined;
      expect(marshalResponse(cmd, r.output, auths)).toStrictEqual(response);
      expect(marshalResponse(ic, r.output, auths)).toStrictEqual(response);
    }
  });
});

describe.each(commands.map((c) => [c.name, c] as const))('compiled %s frames', (_, cmd) => {
  const ic = interpretedCommand(cmd);
  const runs = HOT.has(cmd) ? HOT_RUNS : RUNS;

  it('marshals commands and responses to the same bytes, and decodes damaged ones alike', { timeout: fuzzTimeout }, () => {
    const seen = { ok: 0, failed: 0 };
    fc.assert(
      fc.property(commandInputArb(cmd), responseOutputArb(cmd), fc.integer(), (input, output, seed) => {
        const values = { ...input.handles, ...input.params };
        const frame = outcome(() => marshalCommand(cmd, values, input.auths));
        expectSame(frame, outcome(() => marshalCommand(ic, values, input.auths)));
        const outValues = { ...output.handles, ...output.params };
        const resp = outcome(() => marshalResponse(cmd, outValues, output.auths));
        expectSame(resp, outcome(() => marshalResponse(ic, outValues, output.auths)));
        if (!frame.ok || !resp.ok) return;
        // The damage is drawn from the seed, so one property covers valid and damaged frames.
        const [bad] = fc.sample(damaged(fc.constant(frame.value as Uint8Array)), { seed, numRuns: 1 });
        expectSame(outcome(() => unmarshalCommand(cmd, bad!)), outcome(() => unmarshalCommand(ic, bad!)), seen);
        const n = output.auths.length;
        const [badResp] = fc.sample(damaged(fc.constant(resp.value as Uint8Array)), { seed, numRuns: 1 });
        const badOut = outcome(() => unmarshalResponse(ic, badResp!, n));
        expectSame(outcome(() => unmarshalResponse(cmd, badResp!, n)), badOut, seen);
        expectSame(outcome(() => unmarshalResponse(cmd, badResp!, n, OWNED)), badOut);
        const goodOut = outcome(() => unmarshalResponse(ic, resp.value as Uint8Array, n));
        expectSame(outcome(() => unmarshalResponse(cmd, resp.value as Uint8Array, n)), goodOut, seen);
        expectSame(outcome(() => unmarshalResponse(cmd, resp.value as Uint8Array, n, OWNED)), goodOut);
      }),
      { numRuns: runs },
    );
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.failed).toBeGreaterThan(0);
  });
});

describe('a hand-written codec inside a compiled structure', () => {
  // TPMS_AUTH_COMMAND/RESPONSE are written by hand (the hot path of every session): the
  // generated code calls them with the path and reader (a sub-reader inside a sized) they expect.
  const Inner = struct('INNER', { count: u8, auth: TPMS_AUTH_RESPONSE });
  const Outer = struct('OUTER', { first: TPMS_AUTH_COMMAND, boxed: sized('BOX', Inner), items: list('ITEMS', TPMS_AUTH_RESPONSE, 4) });
  const ref = interpreted(Outer);

  it('is called, not inlined', () => {
    expect(generatedSource(Outer, 'decode')).toContain('.decode(');
    expect(generatedSource(Outer, 'encode')).toContain('.encode(');
  });

  it('agrees with the interpreted structure on values, corrupted values and damaged bytes', { timeout: fuzzTimeout }, () => {
    const seen = { ok: 0, failed: 0 };
    fc.assert(
      fc.property(arbitraryOf(Outer), fc.integer(), (v, seed) => {
        const bytes = encode(ref, v);
        expect(encode(Outer, v)).toStrictEqual(bytes);
        expectSame(outcome(() => decode(Outer, bytes)), outcome(() => decode(ref, bytes)), seen);
        const [bad] = fc.sample(damaged(fc.constant(bytes)), { seed, numRuns: 1 });
        expectSame(outcome(() => decode(Outer, bad!)), outcome(() => decode(ref, bad!)), seen);
        const broken = { ...v, items: [...v.items, { nonceTPM: new Uint8Array(65), sessionAttributes: 0, hmac: new Uint8Array(0) }] };
        expectSame(outcome(() => encode(Outer, broken)), outcome(() => encode(ref, broken)), seen);
      }),
      { numRuns: fuzzRuns(300) },
    );
    expect(seen.failed).toBeGreaterThan(0);
  });
});

describe('compiled by default', () => {
  it('replaces a codec’s methods with generated ones from its second use, keeping its shape', () => {
    const c = struct('FRESH', { a: u16, b: tpm2b('B', 4) });
    const keys = Object.keys(c);
    const stubs = [c.encode, c.decode];
    // The first call of each runs interpreted (a one-shot use never pays for code generation).
    expect(encode(c, { a: 1, b: new Uint8Array([9]) })).toStrictEqual(Uint8Array.of(0, 1, 0, 1, 9));
    expect(decode(c, Uint8Array.of(0, 1, 0, 1, 9))).toStrictEqual({ a: 1, b: Uint8Array.of(9) });
    expect([c.encode, c.decode]).toEqual(stubs);
    expect(encode(c, { a: 1, b: new Uint8Array([9]) })).toStrictEqual(Uint8Array.of(0, 1, 0, 1, 9));
    expect(decode(c, Uint8Array.of(0, 1, 0, 1, 9))).toStrictEqual({ a: 1, b: Uint8Array.of(9) });
    expect(Object.keys(c)).toEqual(keys);
    expect(c.encode).not.toBe(interpreted(c).encode);
    expect(String(c.encode)).toContain('wv.setUint16');
    expect(String(c.decode)).toContain('(b[o] << 8) | b[o + 1]');
    // The structures in the schema too, once used.
    const pub = encode(interpreted(TPM2B_PUBLIC), fc.sample(arbitraryOf(TPM2B_PUBLIC), { seed: 1, numRuns: 1 })[0]!);
    for (let i = 0; i < TIER_UP; i++) encode(TPM2B_PUBLIC, decode(TPM2B_PUBLIC, pub));
    expect(String(TPM2B_PUBLIC.decode)).toContain('(b[o] << 8) | b[o + 1]');
    expect(String(TPM2B_PUBLIC.encode)).toContain('wv.setUint16');
  });

  it('falls back to the interpreted codec when code generation is refused', () => {
    const U = union('TPMU_X', 'sel', { 1: u16, 2: none });
    const c = variant('FALLBACK', 'sel', { sel: u16, x: U });
    const saved = globalThis.Function;
    // As under --disallow-code-generation-from-strings: `new Function(source)` throws EvalError.
    globalThis.Function = function refuse() {
      throw new EvalError('Code generation from strings disallowed for this context');
    } as unknown as FunctionConstructor;
    try {
      for (let i = 0; i < TIER_UP; i++) {
        expect(encode(c, { sel: 1, x: 7 })).toStrictEqual(Uint8Array.of(0, 1, 0, 7));
        expect(decode(c, Uint8Array.of(0, 2))).toStrictEqual({ sel: 2, x: null });
      }
      expectSame(outcome(() => decode(c, Uint8Array.of(0, 3))), outcome(() => decode(interpreted(c), Uint8Array.of(0, 3))));
    } finally {
      globalThis.Function = saved;
    }
    expect(c.encode).toBe(interpreted(c).encode);
    expect(c.decode).toBe(interpreted(c).decode);
  });
});
