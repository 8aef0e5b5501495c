/**
 * Round trips for every codec, with values generated from the codecs themselves:
 * decode(encode(v)) equals v and encode(decode(bytes)) gives the same bytes — for every named
 * structure, every command's parameters and response, whole command/response frames, and the
 * decoder tool's JSON form of those frames.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STRUCTURES } from '../../src/tpm/structures.js';
import { COMMANDS } from '../../src/tpm/commands.js';
import { marshalCommand, marshalResponse, remarshalCommand, unmarshalCommand, unmarshalResponse } from '../../src/tpm/command.js';
import { TPM_ST } from '../../src/tpm/constants.js';
import { decode, encode, type Codec } from '../../src/tpm/wire/codec.js';
import { decodeCommandFrame, decodeResponseFrame, decodeStructure, roundtrip } from '../../src/tpm/decode/index.js';
import { arbitraryOf, commandInputArb, responseOutputArb, runs } from './arbitraries.js';

const commands = [...COMMANDS.values()];

function codecRoundTrip(codec: Codec<any>, n = 150) {
  fc.assert(
    fc.property(arbitraryOf(codec), (v) => {
      const bytes = encode(codec, v);
      const back = decode(codec, bytes);
      expect(back).toStrictEqual(v);
      expect(encode(codec, back)).toStrictEqual(bytes);
    }),
    { numRuns: runs(n) },
  );
}

describe('every structure round-trips', () => {
  it.each(Object.entries(STRUCTURES))('%s', (_name, codec) => codecRoundTrip(codec));

  it.each(Object.keys(STRUCTURES))('%s through the decoder JSON', (name) => {
    const codec = STRUCTURES[name]!;
    fc.assert(
      fc.property(arbitraryOf(codec), (v) => {
        const bytes = encode(codec, v);
        expect(roundtrip('structure', decodeStructure(name, bytes), bytes)).toEqual({ identical: true, size: bytes.length });
      }),
      { numRuns: runs(50) },
    );
  });
});

describe('every command descriptor round-trips', () => {
  it.each(commands.map((c) => [c.name, c] as const))('%s parameters and response codecs', (_n, cmd) => {
    codecRoundTrip(cmd.params, 100);
    codecRoundTrip(cmd.response, 100);
  });

  it.each(commands.map((c) => [c.name, c] as const))('%s command frame (library and decoder JSON)', (_n, cmd) => {
    fc.assert(
      fc.property(commandInputArb(cmd), ({ handles, params, auths }) => {
        const frame = marshalCommand(cmd, { ...handles, ...params } as any, auths);
        const d = unmarshalCommand(cmd, frame);
        expect(d.handles).toStrictEqual(handles);
        expect(d.params).toStrictEqual(params);
        const authNames = cmd.handles.filter((h) => h.auth === 'auth').map((h) => h.name);
        expect(d.auths).toStrictEqual(authNames.map((n) => (auths as Record<string, unknown>)[n]));
        expect(d.tag).toBe(authNames.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
        expect(remarshalCommand(cmd, d)).toStrictEqual(frame);
        expect(roundtrip('command', decodeCommandFrame(frame), frame)).toEqual({ identical: true, size: frame.length });
      }),
      { numRuns: runs(60) },
    );
  });

  it.each(commands.map((c) => [c.name, c] as const))('%s response frame (library and decoder JSON)', (_n, cmd) => {
    fc.assert(
      fc.property(responseOutputArb(cmd), fc.boolean(), ({ handles, params, auths }, tellCount) => {
        const frame = marshalResponse(cmd, { ...handles, ...params } as any, auths);
        const { output, auths: back } = unmarshalResponse(cmd, frame, auths.length);
        expect(output).toStrictEqual({ ...handles, ...params });
        expect(back).toStrictEqual(auths);
        expect(marshalResponse(cmd, output, back)).toStrictEqual(frame);
        // The decoder finds the session count itself when not told.
        const view = decodeResponseFrame(frame, cmd.code, tellCount ? auths.length : undefined);
        expect(view.sessions).toHaveLength(auths.length);
        expect(roundtrip('response', view, frame)).toEqual({ identical: true, size: frame.length });
      }),
      { numRuns: runs(60) },
    );
  });
});

describe('the arbitraries themselves', () => {
  it('pick one selector value for every union it drives (TPMT_PUBLIC type → parameters and unique)', () => {
    const codec = STRUCTURES.TPMT_PUBLIC!;
    // Encoding fails for a mismatched arm (an RSA unique under ECC parameters would not even encode).
    fc.assert(fc.property(arbitraryOf(codec), (v) => void encode(codec, v)), { numRuns: runs(100) });
  });
});

describe('roundtrip() reports what differs', () => {
  it('a view changed after decoding is not identical, with the first differing offset', () => {
    const frame = marshalResponse(COMMANDS.get(0x17b)!, { randomBytes: Uint8Array.of(1, 2, 3) } as any);
    const view = decodeResponseFrame(frame, 'GetRandom');
    (view.parameters as Record<string, unknown>).randomBytes = Uint8Array.of(1, 2, 4);
    expect(roundtrip('response', view, frame)).toMatchObject({ identical: false, size: frame.length, firstDifference: frame.length - 1 });
  });

  it('a view that no longer encodes is not identical and says why', () => {
    const frame = marshalResponse(COMMANDS.get(0x17b)!, { randomBytes: Uint8Array.of(1) } as any);
    const view = decodeResponseFrame(frame, 'GetRandom');
    (view.parameters as Record<string, unknown>).randomBytes = new Uint8Array(65);
    const r = roundtrip('response', view, frame);
    expect(r.identical).toBe(false);
    expect(r.error).toMatch(/more than the maximum of 64/);
  });
});
