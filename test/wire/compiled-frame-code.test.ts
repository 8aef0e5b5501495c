/**
 * The compiled whole-frame code (src/tpm/wire/generate-frame.ts, src/tpm/command/compiled.ts)
 * beyond agreement with the interpreted frames (compiled-frames.test.ts checks that on every
 * vector and random frames of every command): that it is what runs, that decoded values own
 * their bytes unless the caller owns the frame (then views), that slab slices are handed out
 * once, that the writer it reuses cannot leak between calls, and its fallbacks.
 */
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../helpers/vectors.js';
import { COMMANDS, GetRandom, Sign } from '../../src/tpm/commands.js';
import {
  TPMS_AUTH_COMMAND,
  command,
  marshalCommand,
  marshalResponse,
  passwordAuth,
  unmarshalCommand,
  unmarshalResponse,
  type CommandDescriptor,
} from '../../src/tpm/command.js';
import { framesOf, stateOf } from '../../src/tpm/command/compiled.js';
import { TPM2B_AUTH, TPM2B_NONCE } from '../../src/tpm/structures.js';
import { tpm2b, u16, u8, u32 } from '../../src/tpm/wire/codec.js';
import { TIER_UP, generatedFrameSource } from '../../src/tpm/wire/compile.js';
import { TpmEncodeError } from '../../src/tpm/wire/errors.js';
import { interpretedCommand, outcome } from './compiled-helpers.js';
import { Tpm } from '../../src/tpm/tpm.js';
import type { Transport } from '../../src/tpm/transport/types.js';

type AnyCmd = CommandDescriptor<any, any, any, any>;
const AUTH = { nonce: TPM2B_NONCE, auth: TPM2B_AUTH, u8, u32 };
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const signVector = loadVectors<{ vectors: { name: string; command: string; response: string }[] }>('tpm2-tss-swtpm.json').vectors.find((v) =>
  v.name.startsWith('Sign(AK, ticket)'),
)!;

/** Every Uint8Array in a decoded value. */
function byteFields(v: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (v instanceof Uint8Array) out.push(v);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) byteFields(x, out);
  return out;
}

describe('compiled frame code', () => {
  it('exists for all four directions of every command', () => {
    for (const cmd of COMMANDS.values()) {
      for (const which of ['command', 'response', 'decodeCommand', 'decodeResponse'] as const) {
        expect(generatedFrameSource(cmd, AUTH, which), `${cmd.name} ${which}`).toBeTypeOf('string');
      }
    }
  });

  it('runs from the TIER_UP-th use of a descriptor on', () => {
    const Fresh = command({ name: 'Fresh', code: 0x17b, spec: 'test', handles: { key: 'auth' }, params: { n: u16 }, response: { b: tpm2b('TPM2B_X', 8) } });
    const input = { key: 0x81000001, n: 7 };
    expect(TIER_UP).toBe(2);
    const frame = marshalCommand(Fresh, input);
    expect(stateOf(Fresh).frames).toBeUndefined(); // a one-shot use pays no code generation
    expect(marshalCommand(Fresh, input)).toStrictEqual(frame);
    expect(stateOf(Fresh).frames?.command).toBeDefined();
    expect(unmarshalCommand(Fresh, frame).params).toStrictEqual({ n: 7 });
  });

  it('decodes into bytes of their own: changing the frame afterwards changes no value', () => {
    const frame = unhex(signVector.response);
    for (let i = 0; i < TIER_UP; i++) unmarshalResponse(Sign, frame, 1);
    expect(framesOf(Sign).decodeResponse).toBeDefined();
    const before = unmarshalResponse(Sign, frame, 1);
    const copy = structuredClone(before);
    const fields = byteFields(before);
    expect(fields.some((f) => f.length > 64)).toBe(true); // the signature: the slab path for large fields
    for (const f of fields) {
      expect(f.constructor).toBe(Uint8Array);
      expect(f.buffer).not.toBe(frame.buffer);
      // Up to 64 bytes an array of its own; above, a slice of slab memory (src/tpm/wire/slab.ts).
      if (f.length <= 64) expect([f.byteOffset, f.buffer.byteLength]).toStrictEqual([0, f.length]);
    }
    frame.fill(0xee);
    expect(before).toStrictEqual(copy);
    // A Buffer frame: still plain Uint8Arrays (a Buffer's slice would be a view of the frame).
    const buf = Buffer.from(unhex(signVector.response));
    const fromBuffer = unmarshalResponse(Sign, buf, 1);
    buf.fill(0xee);
    expect(fromBuffer).toStrictEqual(copy);
    for (const f of byteFields(fromBuffer)) expect(f.constructor).toBe(Uint8Array);
    // A frame in the middle of a larger buffer: offsets are the frame's own.
    const raw = unhex(signVector.response);
    const big = new Uint8Array(raw.length + 7).fill(0xaa);
    big.set(raw, 3);
    expect(unmarshalResponse(Sign, big.subarray(3, 3 + raw.length), 1)).toStrictEqual(copy);
  });

  it('decodes an owned response’s byte fields as views into it, the same values as copies', () => {
    const frame = unhex(signVector.response);
    for (let i = 0; i < TIER_UP; i++) unmarshalResponse(Sign, frame, 1);
    const copied = unmarshalResponse(Sign, frame, 1);
    const owned = unmarshalResponse(Sign, frame, 1, { owned: true });
    expect(owned).toStrictEqual(copied);
    const fields = byteFields(owned).filter((f) => f.length > 0);
    expect(fields.length).toBeGreaterThan(0);
    for (const f of fields) {
      expect(f.constructor).toBe(Uint8Array);
      expect(f.buffer).toBe(frame.buffer);
    }
    // Which is why only a caller that owns the frame may ask: a write shows through.
    frame.fill(0xee);
    expect(owned).not.toStrictEqual(copied);
  });

  it('is how the executor decodes responses of a Transport promising fresh ones, and only those', async () => {
    const randomBytes = Uint8Array.from({ length: 48 }, (_, i) => i);
    const make = (fresh: boolean) => {
      const sent: Uint8Array[] = [];
      const transport: Transport = {
        description: 'test',
        ...(fresh ? { freshResponses: true } : {}),
        send: async () => {
          const r = Uint8Array.from(marshalResponse(GetRandom, { randomBytes }));
          sent.push(r);
          return r;
        },
        close: async () => {},
      };
      return { tpm: new Tpm(transport), sent };
    };
    for (const fresh of [true, false]) {
      const { tpm, sent } = make(fresh);
      for (let i = 0; i < TIER_UP + 1; i++) expect(await tpm.run(GetRandom, { bytesRequested: 48 })).toStrictEqual({ randomBytes });
      const out = await tpm.run(GetRandom, { bytesRequested: 48 });
      const response = sent[sent.length - 1]!;
      expect(out.randomBytes.buffer === response.buffer, `fresh ${fresh}`).toBe(fresh);
    }
  });

  it('decodes empty byte fields as distinct empty arrays, also after one’s buffer was transferred away', () => {
    const frame = marshalResponse(GetRandom, { randomBytes: new Uint8Array(0) });
    for (let i = 0; i < TIER_UP; i++) unmarshalResponse(GetRandom, frame);
    const a = unmarshalResponse(GetRandom, frame).output.randomBytes;
    const b = unmarshalResponse(GetRandom, frame).output.randomBytes;
    expect(a).not.toBe(b);
    expect([a.length, a.buffer.byteLength, Object.isFrozen(a)]).toStrictEqual([0, 0, false]);
    structuredClone(a, { transfer: [a.buffer as ArrayBuffer] });
    expect(unmarshalResponse(GetRandom, frame).output.randomBytes).toStrictEqual(new Uint8Array(0));
    expect(b.length).toBe(0);
  });

  it('hands out slab slices once: frames and fields never share bytes, and a transfer detaches none', () => {
    const sign = unhex(signVector.response);
    for (let i = 0; i < TIER_UP; i++) unmarshalResponse(Sign, sign, 1);
    const outputs = Array.from({ length: 200 }, () => unmarshalResponse(Sign, sign, 1));
    const frames = outputs.map((d) => marshalResponse(Sign, d.output, d.auths));
    const expected = structuredClone({ outputs, frames });
    const large = [...frames, ...outputs.flatMap((d) => byteFields(d).filter((f) => f.length > 64))];
    expect(large.length).toBe(400);
    // No two slices overlap (sorted by buffer, then offset).
    const ids = new Map<ArrayBufferLike, number>();
    const spans = large.map((f) => [ids.get(f.buffer) ?? ids.set(f.buffer, ids.size).get(f.buffer)!, f.byteOffset, f.byteOffset + f.length] as const);
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let i = 1; i < spans.length; i++) if (spans[i]![0] === spans[i - 1]![0]) expect(spans[i]![1]).toBeGreaterThanOrEqual(spans[i - 1]![2]);
    expect(ids.size).toBeGreaterThan(1); // more than one slab was used
    // Writing into one, or transferring its buffer away, leaves every other as it was (slabs are
    // marked untransferable where Node has process.getBuiltinModule: slab.ts).
    frames[0]!.fill(0);
    if (typeof (process as { getBuiltinModule?: unknown }).getBuiltinModule === 'function') {
      const moved = structuredClone(frames[1]!, { transfer: [frames[1]!.buffer as ArrayBuffer] });
      expect(moved).toStrictEqual(expected.frames[1]);
      expect(frames[1]!.length).toBe(expected.frames[1]!.length);
    }
    expect(frames.slice(1)).toStrictEqual(expected.frames.slice(1));
    expect(outputs).toStrictEqual(expected.outputs);
  });

  it('gives each frame bytes of its own, also when a getter marshals another frame meanwhile', () => {
    const inner = () => marshalCommand(GetRandom, { bytesRequested: 16 });
    const expected = marshalCommand(interpretedCommand(GetRandom as AnyCmd), { bytesRequested: 16 });
    for (let i = 0; i < TIER_UP; i++) inner();
    let nested: Uint8Array | undefined;
    const input = {
      get bytesRequested() {
        nested = inner();
        return 32;
      },
    };
    const outer = marshalCommand(GetRandom, input as never);
    expect(nested).toStrictEqual(expected);
    expect(outer).toStrictEqual(marshalCommand(interpretedCommand(GetRandom as AnyCmd), { bytesRequested: 32 }));
    // Small frames: an array of their own (larger ones are slab slices, tested above).
    expect(outer.buffer.byteLength).toBe(outer.length);
    expect(outer.buffer).not.toBe(nested!.buffer);
  });

  it('leaves nothing of a failed frame in the next', () => {
    const ok = marshalCommand(GetRandom, { bytesRequested: 8 });
    const bad = outcome(() => marshalCommand(GetRandom, { bytesRequested: 0x10000 }));
    expect(bad).toMatchObject({ ok: false, cls: 'TpmEncodeError', path: 'GetRandom.parameters.bytesRequested' });
    expect(marshalCommand(GetRandom, { bytesRequested: 8 })).toStrictEqual(ok);
    const resp = marshalResponse(GetRandom, { randomBytes: Uint8Array.of(1, 2, 3) });
    expect(() => marshalResponse(GetRandom, { randomBytes: new Uint8Array(70000) })).toThrow(TpmEncodeError);
    expect(marshalResponse(GetRandom, { randomBytes: Uint8Array.of(1, 2, 3) })).toStrictEqual(resp);
  });

  it('is not made for a command with a hand-written codec: the interpreted frames run', () => {
    const Own = command({ name: 'Own', code: 0x17c, spec: 'test', params: { entry: TPMS_AUTH_COMMAND }, response: {} });
    expect(generatedFrameSource(Own, AUTH, 'command')).toBeUndefined();
    expect(generatedFrameSource(Own, AUTH, 'decodeCommand')).toBeUndefined();
    expect(generatedFrameSource(Own, AUTH, 'response')).toBeTypeOf('string');
    const input = { entry: passwordAuth(Uint8Array.of(1)) };
    for (let i = 0; i < TIER_UP + 1; i++) {
      const frame = marshalCommand(Own, input);
      expect(unmarshalCommand(Own, frame).params).toStrictEqual(input);
    }
    expect(framesOf(Own).command).toBeUndefined();
  });

  it('keeps the interpreted frames when code generation is refused', () => {
    const Refused = command({ name: 'Refused', code: 0x17d, spec: 'test', params: { n: u16 }, response: { m: u8 } });
    const saved = globalThis.Function;
    globalThis.Function = function refuse() {
      throw new EvalError('Code generation from strings disallowed for this context');
    } as unknown as FunctionConstructor;
    try {
      for (let i = 0; i < TIER_UP + 1; i++) {
        expect(unmarshalCommand(Refused, marshalCommand(Refused, { n: 5 })).params).toStrictEqual({ n: 5 });
        expect(unmarshalResponse(Refused, marshalResponse(Refused, { m: 9 })).output).toStrictEqual({ m: 9 });
      }
    } finally {
      globalThis.Function = saved;
    }
    expect(framesOf(Refused)).toStrictEqual({ command: undefined, response: undefined, decodeCommand: undefined, decodeResponse: undefined });
  });
});
