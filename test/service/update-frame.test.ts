/**
 * The refilled SequenceUpdate frame (src/service/tpm/update-frame.ts) against the generic
 * marshaller and decoder: the same bytes for the same update, and an answer accepted only when
 * it is SequenceUpdate's success — anything else gets the full decoder's verdict.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SequenceUpdate, TPM_RC, TpmDecodeError, TpmError, passwordAuth } from '../../src/tpm/index.js';
import { marshalCommand } from '../../src/tpm/command/marshal.js';
import { UpdateFrame } from '../../src/service/tpm/update-frame.js';

const success = (attrs = 0x01): Uint8Array => Uint8Array.of(0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, attrs, 0, 0);

describe('UpdateFrame', () => {
  it('refilled with any data, is byte for byte what the generic marshaller makes', () => {
    for (const size of [1024, 512, 1]) {
      const auth = randomBytes(16);
      const handle = 0x80000000 + size;
      const f = new UpdateFrame(handle, auth, size);
      for (let i = 0; i < 3; i++) {
        const data = randomBytes(size);
        f.frame.set(data, f.dataAt);
        const expected = marshalCommand(SequenceUpdate, { sequenceHandle: handle, buffer: data }, { sequenceHandle: passwordAuth(auth) });
        expect(Buffer.from(f.frame).equals(Buffer.from(expected)), `size ${size}, round ${i}`).toBe(true);
      }
    }
  });

  it("accepts SequenceUpdate's success, and another valid encoding of it through the decoder", () => {
    expect(() => UpdateFrame.check(success())).not.toThrow();
    expect(() => UpdateFrame.check(success(0x00))).not.toThrow(); // auth attributes the decoder accepts
  });

  it("throws the TPM's error for an error answer", () => {
    const rc = TPM_RC.HANDLE + 0x100; // format one, handle 1: the handle names nothing (any more)
    const frame = Uint8Array.of(0x80, 0x01, 0, 0, 0, 10, (rc >>> 24) & 0xff, (rc >>> 16) & 0xff, (rc >>> 8) & 0xff, rc & 0xff);
    let caught: unknown;
    try {
      UpdateFrame.check(frame);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TpmError);
    expect((caught as TpmError).is(TPM_RC.HANDLE)).toBe(true);
    expect((caught as TpmError).command).toBe('SequenceUpdate');
  });

  it('refuses malformed answers with a decode error, never accepts them', () => {
    const ok = success();
    const cases: Array<[string, Uint8Array]> = [
      ['truncated', ok.subarray(0, 18)],
      ['trailing byte', Uint8Array.of(...ok.subarray(0, 5), 20, ...ok.subarray(6), 0)],
      ['size field wrong', Uint8Array.of(...ok.subarray(0, 5), 20, ...ok.subarray(6))],
      ['no sessions tag', Uint8Array.of(0x80, 0x01, ...ok.subarray(2))],
      ['a parameter where none is', Uint8Array.of(...ok.subarray(0, 13), 1, ...ok.subarray(14))],
    ];
    for (const [what, frame] of cases) expect(() => UpdateFrame.check(frame), what).toThrow(TpmDecodeError);
  });
});
