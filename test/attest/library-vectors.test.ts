/**
 * Attestation commands and structures against the tpm2-tss/swtpm recording
 * (shared/vectors/tpm2-tss-swtpm-attest.json): PCR_Read, Quote, Certify, NV_ReadPublic, NV_Read
 * and ReadClock frames decode and re-encode byte for byte; commands rebuilt from their meaning
 * equal the recorded ones; the TPMS_ATTEST inside quotes and certifications decodes to what
 * tpm2-tss saw and re-encodes to the signed bytes.
 */
import { describe, expect, it } from 'vitest';
import { loadVectors } from '../helpers/vectors.js';
import { COMMANDS, Certify, NV_Read, NV_ReadPublic, PCR_Read, Quote, ReadClock } from '../../src/tpm/commands.js';
import {
  marshalCommand,
  marshalResponse,
  remarshalCommand,
  unmarshalCommand,
  unmarshalResponse,
  type CommandDescriptor,
} from '../../src/tpm/command.js';
import { TPM_ALG, hex32 } from '../../src/tpm/constants.js';
import { TPM2B_ATTEST_STRUCT, TPM2B_NV_PUBLIC, TPMS_ATTEST, TPM_ST_ATTEST } from '../../src/tpm/structures.js';
import { decode, encode } from '../../src/tpm/wire/codec.js';
import { parsePcrSelection } from '../../src/tpm/attest/formats.js';

interface Vector {
  name: string;
  commandCode: string | number;
  command: string;
  response: string;
  decoded: Record<string, any>;
}
const { vectors } = loadVectors<{ vectors: Vector[] }>('tpm2-tss-swtpm-attest.json');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const OURS = [PCR_Read, Quote, Certify, NV_ReadPublic, NV_Read, ReadClock] as readonly CommandDescriptor[];
const ours = vectors.filter((v) => OURS.some((c) => c.code === Number(v.commandCode)));
const desc = (v: Vector) => COMMANDS.get(Number(v.commandCode)) as CommandDescriptor<any, any, any, any>;
const frames = (v: Vector) => {
  const cmd = desc(v);
  const d = unmarshalCommand(cmd, unhex(v.command));
  const r = unmarshalResponse(cmd, unhex(v.response), d.auths.length);
  return { d, out: r.output as Record<string, any> };
};
const one = (prefix: string) => {
  const v = vectors.find((x) => x.name.startsWith(prefix));
  if (!v) throw new Error(`no vector ${prefix}`);
  return v;
};

describe('attestation vectors: frames round-trip byte for byte', () => {
  it('covers every command it should', () => {
    expect(ours.length).toBe(9);
  });
  it.each(ours.map((v) => [v.name, v] as const))('%s', (_n, v) => {
    const cmd = desc(v);
    const d = unmarshalCommand(cmd, unhex(v.command));
    expect(hex(remarshalCommand(cmd, d))).toBe(v.command);
    const { output, auths } = unmarshalResponse(cmd, unhex(v.response), d.auths.length);
    expect(hex(marshalResponse(cmd, output, auths))).toBe(v.response);
  });
});

describe('attestation vectors: meaning', () => {
  it('PCR_Read: built from the selection string; values in selection order', () => {
    for (const v of vectors.filter((x) => x.name.startsWith('PCR_Read'))) {
      const sel = parsePcrSelection(v.decoded.inputs.pcrSelectionIn);
      expect(hex(marshalCommand(PCR_Read, { pcrSelectionIn: sel }))).toBe(v.command);
      const { out } = frames(v);
      expect(out.pcrUpdateCounter).toBe(v.decoded.pcrUpdateCounter);
      expect(out.pcrSelectionOut.map((s: any) => [s.hash, hex(s.pcrSelect)])).toEqual(
        v.decoded.pcrSelectionOut.map((s: any) => [s.hash, s.pcrSelect]),
      );
      expect(out.pcrValues.map(hex)).toEqual(v.decoded.pcrValues);
    }
  });

  it.each(['Quote(AK under SRK', 'Quote(AK under EK'])('%s: the TPMS_ATTEST decodes and re-encodes', (prefix) => {
    const v = one(prefix);
    const { d, out } = frames(v);
    expect(hex(d.params.qualifyingData as Uint8Array)).toBe(v.decoded.inputs.qualifyingData);
    const q = v.decoded.quoted;
    const tpm2b = new Uint8Array([out.quoted.length >> 8, out.quoted.length & 0xff, ...out.quoted]);
    expect(hex(tpm2b)).toBe(q.marshalled);
    const a = decode(TPMS_ATTEST, out.quoted);
    expect(hex32(a.magic)).toBe(q.magic);
    expect(a.type).toBe(TPM_ST_ATTEST.QUOTE);
    expect(hex(a.qualifiedSigner)).toBe(q.qualifiedSigner);
    expect(hex(a.extraData)).toBe(q.extraData);
    expect(a.clockInfo).toEqual({ ...q.clockInfo, clock: BigInt(q.clockInfo.clock), safe: q.clockInfo.safe === 1 });
    if (a.type !== TPM_ST_ATTEST.QUOTE) throw new Error('not a quote');
    // narrowed: attested is a TPMS_QUOTE_INFO
    expect(a.attested.pcrSelect.map((s) => s.hash)).toEqual([TPM_ALG.SHA256]);
    expect(hex(a.attested.pcrDigest)).toBe(q.attested.quote.pcrDigest);
    expect(hex(encode(TPMS_ATTEST, a))).toBe(hex(out.quoted));
    expect(hex(encode(TPM2B_ATTEST_STRUCT, a))).toBe(q.marshalled);
    expect(out.signature.sigAlg).toBe(v.decoded.signature.sigAlg);
  });

  it('Certify: names of the certified object', () => {
    const v = one('Certify(');
    const { d, out } = frames(v);
    expect(d.auths.length).toBe(2);
    const c = v.decoded.certifyInfo;
    const a = decode(TPM2B_ATTEST_STRUCT, unhex(c.marshalled));
    expect(a.type).toBe(TPM_ST_ATTEST.CERTIFY);
    if (a.type !== TPM_ST_ATTEST.CERTIFY) throw new Error('not a certify');
    expect(hex(a.attested.name)).toBe(c.attested.certify.name);
    expect(hex(a.attested.qualifiedName)).toBe(c.attested.certify.qualifiedName);
    expect(hex(out.certifyInfo)).toBe(c.marshalled.slice(4));
    expect('0x' + a.firmwareVersion.toString(16)).toBe(c.firmwareVersion);
  });

  it('NV_ReadPublic and NV_Read', () => {
    const v = one('NV_ReadPublic');
    expect(hex(marshalCommand(NV_ReadPublic, { nvIndex: 0x01c00002 }))).toBe(v.command);
    const { out } = frames(v);
    const p = v.decoded.nvPublic;
    expect(hex32(out.nvPublic.nvIndex)).toBe(p.nvIndex);
    expect(out.nvPublic.nameAlg).toBe(p.nameAlg);
    expect(hex32(out.nvPublic.attributes)).toBe(p.attributes);
    expect(out.nvPublic.dataSize).toBe(p.dataSize);
    expect(hex(encode(TPM2B_NV_PUBLIC, out.nvPublic))).toBe(p.marshalled);
    expect(hex(out.nvName)).toBe(v.decoded.nvName);
    const reads = vectors.filter((x) => x.name.startsWith('NV_Read('));
    expect(reads.length).toBe(2);
    const data = reads.map((r) => {
      const f = frames(r);
      expect(f.d.handles).toEqual({ authHandle: Number(r.decoded.inputs.authHandle), nvIndex: Number(r.decoded.inputs.nvIndex) });
      expect(f.d.params).toEqual({ size: r.decoded.inputs.size, offset: r.decoded.inputs.offset });
      return hex(f.out.data);
    });
    expect(data).toEqual(reads.map((r) => r.decoded.data));
    expect(data.join('')).toBe(reads[1]!.decoded.fullContents);
  });

  it('ReadClock', () => {
    const v = one('ReadClock');
    expect(hex(marshalCommand(ReadClock, {}))).toBe(v.command);
    const t = frames(v).out.currentTime;
    const w = v.decoded.currentTime;
    expect(t.time).toBe(BigInt(w.time));
    expect(t.clockInfo).toEqual({ ...w.clockInfo, clock: BigInt(w.clockInfo.clock), safe: w.clockInfo.safe === 1 });
  });

  it('refuses an unknown attestation type and a wrong magic', () => {
    const q = frames(one('Quote(AK under EK')).out.quoted as Uint8Array;
    const badType = Uint8Array.from(q);
    badType[5] = 0x1b; // 0x801b is not a TPMI_ST_ATTEST
    expect(() => decode(TPMS_ATTEST, badType)).toThrow(/TPMI_ST_ATTEST/);
    const badMagic = Uint8Array.from(q);
    badMagic[0] = 0;
    expect(() => decode(TPMS_ATTEST, badMagic)).toThrow(/magic/);
  });
});
