/**
 * Decoding untrusted bytes: arbitrary bytes and mutations of the real tpm2-tss/swtpm frames
 * (bit flips, truncation, extension, forged size/count fields, header size kept consistent so
 * the damage reaches the inner decoders) fed to every structure decoder, to unmarshalCommand /
 * unmarshalResponse for every descriptor, and to the decoder tool's library. The only outcomes
 * allowed: a value (which then re-encodes to exactly the bytes given: the decoders accept only
 * canonical encodings), TpmDecodeError, or TpmError for a well-formed error response.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../helpers/vectors.js';
import { STRUCTURES, TPML_PCR_SELECTION, TPMS_CAPABILITY_DATA, TPM2B_PUBLIC, TPM2B_PRIVATE } from '../../src/tpm/structures.js';
import { COMMANDS, GetCapability, ReadPublic, Sign } from '../../src/tpm/commands.js';
import { marshalResponse, remarshalCommand, unmarshalCommand, unmarshalResponse, type CommandDescriptor } from '../../src/tpm/command.js';
import { decode, encode, type Codec } from '../../src/tpm/wire/codec.js';
import { TpmDecodeError } from '../../src/tpm/wire/errors.js';
import { TpmError } from '../../src/tpm/rc.js';
import { decodeCommandFrame, decodeResponseFrame, decodeStructure, parseHex, roundtrip } from '../../src/tpm/decode/index.js';
import { arbitraryOf, runs } from './arbitraries.js';

interface Vector {
  name: string;
  commandCode: string;
  command: string;
  response: string;
}
const { vectors } = loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm.json');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const commands = [...COMMANDS.values()] as CommandDescriptor<any, any, any, any>[];
const seeds = vectors.flatMap((v) => [
  { kind: 'command' as const, code: Number(v.commandCode), bytes: unhex(v.command) },
  { kind: 'response' as const, code: Number(v.commandCode), bytes: unhex(v.response) },
]);

// ---------------------------------------------------------------- mutations

type Op =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'truncate'; len: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'forge'; pos: number; width: 1 | 2 | 4; value: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'delete'; pos: number; n: number };

const pos = fc.nat({ max: 4096 });
const forgedValue = fc.oneof(
  fc.constantFrom(0, 1, 0xff, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos, bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), len: pos }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('forge' as const), pos, width: fc.constantFrom(1 as const, 2 as const, 4 as const), value: forgedValue }),
  fc.record({ op: fc.constant('insert' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), pos, n: fc.integer({ min: 1, max: 8 }) }),
);

function mutate(input: Uint8Array, ops: Op[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const o of ops) {
    const at = b.length === 0 ? 0 : ('pos' in o ? o.pos : 0) % b.length;
    switch (o.op) {
      case 'flip':
        if (b.length) b[at] = b[at]! ^ (1 << o.bit);
        break;
      case 'truncate':
        b = b.slice(0, o.len % (b.length + 1));
        break;
      case 'extend':
        b = Uint8Array.from([...b, ...o.bytes]);
        break;
      case 'forge':
        for (let i = 0; i < o.width && at + i < b.length; i++) b[at + i] = Math.floor(o.value / 256 ** (o.width - 1 - i)) % 256;
        break;
      case 'insert':
        b = Uint8Array.from([...b.subarray(0, at), ...o.bytes, ...b.subarray(at)]);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + o.n)]);
        break;
    }
  }
  return b;
}

/** Rewrites the header's size field (and optionally its code) so the damage is found further in. */
function patchHeader(b: Uint8Array, code?: number): Uint8Array {
  const out = Uint8Array.from(b);
  const dv = new DataView(out.buffer);
  if (out.length >= 6) dv.setUint32(2, out.length);
  if (code !== undefined && out.length >= 10) dv.setUint32(6, code);
  return out;
}

const mutatedSeed = fc.record({
  seed: fc.nat({ max: seeds.length - 1 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 4 }),
  fixSize: fc.boolean(),
});

// ---------------------------------------------------------------- allowed outcomes

/** Runs `fn`; a value is fine, TpmDecodeError is fine, anything else fails the property. */
function decodesOrTypedError<T>(fn: () => T, alsoOk?: (e: unknown) => boolean): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TpmDecodeError) {
      expect(typeof e.offset).toBe('number');
      return undefined;
    }
    if (alsoOk?.(e)) return undefined;
    throw e;
  }
}

/** TpmError is allowed only for a well-formed error response: a 10-byte header and nothing else. */
const wellFormedError = (bytes: Uint8Array) => (e: unknown) =>
  e instanceof TpmError && bytes.length === 10 && new DataView(bytes.buffer, bytes.byteOffset).getUint32(2) === 10 && e.rc !== 0;

function feedCommand(bytes: Uint8Array) {
  for (const cmd of commands) {
    const input = patchHeader(bytes, cmd.code);
    const d = decodesOrTypedError(() => unmarshalCommand(cmd, input));
    if (d) expect(remarshalCommand(cmd, d)).toStrictEqual(input);
  }
  const view = decodesOrTypedError(() => decodeCommandFrame(bytes));
  if (view) expect(roundtrip('command', view, bytes).identical).toBe(true);
}

function feedResponse(bytes: Uint8Array) {
  for (const cmd of commands) {
    for (const sessions of [undefined, 0, 1]) {
      const r = decodesOrTypedError(() => unmarshalResponse(cmd, bytes, sessions), wellFormedError(bytes));
      if (r) expect(marshalResponse(cmd, r.output, r.auths)).toStrictEqual(bytes);
      const view = decodesOrTypedError(() => decodeResponseFrame(bytes, cmd.code, sessions));
      if (view) expect(roundtrip('response', view, bytes).identical).toBe(true);
    }
  }
}

function feedStructure(name: string, codec: Codec<any>, bytes: Uint8Array) {
  const v = decodesOrTypedError(() => decode(codec, bytes));
  if (v !== undefined) expect(encode(codec, v)).toStrictEqual(bytes);
  const view = decodesOrTypedError(() => decodeStructure(name, bytes));
  if (view) expect(roundtrip('structure', view, bytes).identical).toBe(true);
}

// ---------------------------------------------------------------- properties

describe('mutated tpm2-tss frames', () => {
  it('unmarshalCommand (every descriptor) and decodeCommandFrame: a value or TpmDecodeError', () => {
    fc.assert(
      fc.property(mutatedSeed, ({ seed, ops, fixSize }) => {
        const m = mutate(seeds[seed]!.bytes, ops);
        feedCommand(fixSize ? patchHeader(m) : m);
      }),
      { numRuns: runs(400) },
    );
  });

  it('unmarshalResponse (every descriptor, 0/1/unknown sessions) and decodeResponseFrame', () => {
    fc.assert(
      fc.property(mutatedSeed, ({ seed, ops, fixSize }) => {
        const m = mutate(seeds[seed]!.bytes, ops);
        feedResponse(fixSize ? patchHeader(m) : m);
      }),
      { numRuns: runs(250) },
    );
  });

  it('the unmutated frames fed to every other descriptor', () => {
    for (const s of seeds) {
      if (s.kind === 'command') feedCommand(s.bytes);
      else feedResponse(s.bytes);
    }
  });
});

describe('frames inside bigger buffers (a non-zero byteOffset, as Node Buffers from the pool have)', () => {
  it('decode the same as a fresh copy, and errors give offsets from the frame start', () => {
    fc.assert(
      fc.property(fc.nat({ max: seeds.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 9 }), fc.uint8Array({ maxLength: 9 }), (i, before, after) => {
        const { kind, code, bytes } = seeds[i]!;
        const big = Uint8Array.from([...before, ...bytes, ...after]);
        const view = big.subarray(before.length, before.length + bytes.length);
        if (kind === 'command') {
          expect(decodeCommandFrame(view)).toStrictEqual(decodeCommandFrame(bytes));
          const cmd = COMMANDS.get(code)!;
          expect(unmarshalCommand(cmd, view)).toStrictEqual(unmarshalCommand(cmd, bytes));
        } else {
          expect(decodeResponseFrame(view, code)).toStrictEqual(decodeResponseFrame(bytes, code));
        }
        // Damage at the same place reports the same offset either way.
        const cut = big.subarray(before.length, before.length + bytes.length - 1);
        const err = (b: Uint8Array) => {
          try {
            if (kind === 'command') decodeCommandFrame(b);
            else decodeResponseFrame(b, code);
          } catch (e) {
            return e instanceof TpmDecodeError ? [e.path, e.offset] : e;
          }
          return 'decoded';
        };
        expect(err(cut)).toStrictEqual(err(bytes.slice(0, -1)));
      }),
      { numRuns: runs(100) },
    );
  });
});

describe('arbitrary bytes', () => {
  const frameish = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    // A plausible header in front of random bytes gets past the first checks.
    fc
      .tuple(fc.constantFrom(0x8001, 0x8002, 0x00c4, 0), fc.constantFrom(...commands.map((c) => c.code), 0, 0xffffffff), fc.uint8Array({ maxLength: 96 }))
      .map(([tag, code, body]) => {
        const b = new Uint8Array(10 + body.length);
        const dv = new DataView(b.buffer);
        dv.setUint16(0, tag);
        dv.setUint32(2, b.length);
        dv.setUint32(6, code);
        b.set(body, 10);
        return b;
      }),
  );

  it('as command frames', () => {
    fc.assert(fc.property(frameish, (b) => feedCommand(b)), { numRuns: runs(300) });
  });

  it('as response frames', () => {
    fc.assert(fc.property(frameish, (b) => feedResponse(b)), { numRuns: runs(200) });
  });

  it.each(Object.entries(STRUCTURES))('as %s (random and mutated encodings)', (name, codec) => {
    const mutatedEncoding = fc
      .tuple(arbitraryOf(codec), fc.array(opArb, { minLength: 1, maxLength: 3 }))
      .map(([v, ops]) => mutate(encode(codec, v), ops));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 48 }), mutatedEncoding), (b) => feedStructure(name, codec, b)),
      { numRuns: runs(150) },
    );
  });

  it('as hex text for the decoder tool: parseHex only throws TpmDecodeError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const b = decodesOrTypedError(() => parseHex(s));
        if (b) decodesOrTypedError(() => decodeCommandFrame(b));
      }),
      { numRuns: runs(300) },
    );
  });
});

describe('forged sizes and counts do not allocate or loop', () => {
  /**
   * Decoding must refuse the forged number where it stands, before reading any element: a
   * decoder that believed the count would loop 4 billion times (or allocate for them). The
   * error's offset and reason show where it stopped; no clock is needed.
   */
  function refusedAt(fn: () => unknown, at: number, claimed: number) {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TpmDecodeError);
    const e = err as TpmDecodeError;
    expect(e.reason).toContain(String(claimed));
    expect(e.offset).toBe(at);
  }
  const be32 = (n: number) => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

  it('a 10-byte TPML claiming 2^32-1 items', () => {
    const b = Uint8Array.from([...be32(0xffffffff), 0, 0x0b, 3, 0xff, 0xff, 0xff]);
    expect(b.length).toBe(10);
    refusedAt(() => decode(TPML_PCR_SELECTION, b), 0, 0xffffffff);
    // The same count under a capability (cap PCRS → TPML_PCR_SELECTION; HANDLES → TPML_HANDLE).
    refusedAt(() => decode(TPMS_CAPABILITY_DATA, Uint8Array.from([0, 0, 0, 5, ...be32(0xffffffff), 1, 2])), 4, 0xffffffff);
    refusedAt(() => decode(TPMS_CAPABILITY_DATA, Uint8Array.from([0, 0, 0, 1, ...be32(0xffffffff), 1, 2])), 4, 0xffffffff);
  });

  it('a count within the cap but beyond the bytes present', () => {
    refusedAt(() => decode(TPMS_CAPABILITY_DATA, Uint8Array.from([0, 0, 0, 1, ...be32(200), 1, 2])), 4, 200);
  });

  it('TPM2B sizes of 0xffff and structure sizes beyond the buffer', () => {
    refusedAt(() => decode(TPM2B_PRIVATE, Uint8Array.from([0xff, 0xff, 1, 2, 3])), 0, 0xffff);
    // The size is read, then found larger than what is left: reported after the size field.
    refusedAt(() => decode(TPM2B_PUBLIC, Uint8Array.from([0xff, 0xff, 0, 1, 0, 0x0b])), 2, 0xffff);
  });

  it('frame size, authorizationSize and parameterSize of 2^32-1', () => {
    const getCap = Uint8Array.from([0x80, 0x01, ...be32(0xffffffff), ...be32(GetCapability.code), 0, 0, 0, 6]);
    refusedAt(() => unmarshalCommand(GetCapability, getCap), 2, 0xffffffff);
    refusedAt(() => decodeCommandFrame(getCap), 2, 0xffffffff);
    // header 10 + one handle 4: authorizationSize at 14.
    const sign = Uint8Array.from([0x80, 0x02, ...be32(22), ...be32(Sign.code), ...be32(0x81010000), ...be32(0xffffffff), 0, 0, 0, 0]);
    refusedAt(() => unmarshalCommand(Sign, sign), 14, 0xffffffff);
    // header 10: parameterSize at 10.
    const rsp = Uint8Array.from([0x80, 0x02, ...be32(20), 0, 0, 0, 0, ...be32(0xffffffff), 0, 0, 0, 0, 0, 0]);
    refusedAt(() => unmarshalResponse(Sign, rsp, 1), 10, 0xffffffff);
    refusedAt(() => decodeResponseFrame(rsp, Sign.code), 10, 0xffffffff);
    // A GetCapability response whose capability list claims 2^32-1 properties:
    // header 10, moreData 1, capability 4, then the count at 15.
    const cap = Uint8Array.from([0x80, 0x01, ...be32(25), 0, 0, 0, 0, 1, ...be32(6), ...be32(0xffffffff), 0, 0, 0, 0, 0, 0]);
    refusedAt(() => unmarshalResponse(GetCapability, cap), 15, 0xffffffff);
    refusedAt(() => decodeResponseFrame(cap, 'GetCapability'), 15, 0xffffffff);
  });

  it('ReadPublic response with a TPM2B_PUBLIC size beyond the frame', () => {
    // header 10, then the TPM2B_PUBLIC size 0xfff0; refused once read (byte 12).
    const rsp = Uint8Array.from([0x80, 0x01, ...be32(16), 0, 0, 0, 0, 0xff, 0xf0, 0, 1, 0, 0x0b]);
    refusedAt(() => unmarshalResponse(ReadPublic, rsp), 12, 0xfff0);
  });
});
