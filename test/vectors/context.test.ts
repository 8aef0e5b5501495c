/**
 * TPM2_ContextSave / TPM2_ContextLoad against frames tpm2-tss exchanged with swtpm (the attest
 * vector file): our descriptors rebuild each command byte for byte and decode each response to
 * the TPMS_CONTEXT tpm2-tss saw (sequence, savedHandle, hierarchy, blob size) — for an object
 * and for a hash sequence, whose saved context is then loaded back.
 */
import { describe, expect, it } from 'vitest';
import { ContextLoad, ContextSave } from '../../src/tpm/commands.js';
import { marshalCommand, marshalResponse, unmarshalCommand, unmarshalResponse } from '../../src/tpm/command.js';
import { hex32 } from '../../src/tpm/constants.js';
import { TPMS_CONTEXT } from '../../src/tpm/structures.js';
import { encode } from '../../src/tpm/wire/codec.js';
import { loadVectors } from '../helpers/vectors.js';

interface Vector {
  name: string;
  command: string;
  response: string;
  decoded: Record<string, any>;
}
const { vectors } = loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm-attest.json');
const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const named = (n: string): Vector => {
  const v = vectors.find((x) => x.name === n);
  if (!v) throw new Error(`no vector ${n}`);
  return v;
};

/** tpm2-tss's view of a TPMS_CONTEXT, from ours. */
const view = (c: TPMS_CONTEXT) => ({
  sequence: Number(c.sequence),
  savedHandle: hex32(c.savedHandle),
  hierarchy: hex32(c.hierarchy),
  contextBlobSize: c.contextBlob.length,
});

describe.each(['AK under SRK', 'hash sequence'])('context save and load of an %s', (what) => {
  const save = named(`ContextSave(${what})`);
  const load = named(`ContextLoad(${what})`);

  it('ContextSave: command rebuilt, response decoded to the TPMS_CONTEXT tpm2-tss saw', () => {
    const saveHandle = Number(save.decoded.inputs.saveHandle);
    expect(hex(marshalCommand(ContextSave, { saveHandle }))).toBe(save.command);
    const { output } = unmarshalResponse(ContextSave, unhex(save.response), 0);
    expect(view(output.context)).toEqual(save.decoded.tpmsContext);
    expect(typeof output.context.sequence).toBe('bigint');
    expect(hex(marshalResponse(ContextSave, output))).toBe(save.response);
  });

  it('ContextLoad: the saved context, as returned, is the command; the new handle is decoded', () => {
    const saved = unmarshalResponse(ContextSave, unhex(save.response), 0).output.context;
    expect(hex(marshalCommand(ContextLoad, { context: saved }))).toBe(load.command);
    const d = unmarshalCommand(ContextLoad, unhex(load.command));
    expect(view(d.params.context as TPMS_CONTEXT)).toEqual(load.decoded.inputs.context);
    expect(hex(encode(TPMS_CONTEXT, d.params.context as TPMS_CONTEXT))).toBe(hex(encode(TPMS_CONTEXT, saved)));
    const { output } = unmarshalResponse(ContextLoad, unhex(load.response), 0);
    expect(hex32(output.loadedHandle)).toBe(load.decoded.loadedHandle);
  });
});
