/**
 * The attestation formats and the PCR_Read loop without a TPM: PCR selection strings as
 * tpm2-tools takes them, pcrs.out round trips and refusals, and pcrRead against a fake TPM
 * that returns fewer PCRs than asked, changes its PCRs midway, or leaves a bank out.
 */
import { describe, expect, it } from 'vitest';
import {
  PCR_Read,
  TPM_ALG,
  Tpm,
  formatPcrSelection,
  parsePcrBanks,
  parsePcrSelection,
  pcrRead,
  readPcrsOut,
  writePcrsOut,
  type TPMS_PCR_SELECTION,
  type Transport,
} from '../../src/tpm/index.js';
import { marshalResponse, unmarshalCommand } from '../../src/tpm/command.js';
import { fromPcrSelection, toPcrSelection } from '../../src/tpm/attest/formats.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('PCR selection strings', () => {
  it('parses and formats as tpm2-tools writes them', () => {
    const sel = parsePcrSelection('sha256:0,1,2+sha1:0');
    expect(sel.map((s) => [s.hash, hex(s.pcrSelect)])).toEqual([
      [TPM_ALG.SHA256, '070000'],
      [TPM_ALG.SHA1, '010000'],
    ]);
    expect(formatPcrSelection(sel)).toBe('sha256:0,1,2+sha1:0');
    expect(parsePcrBanks('SHA256:16,0x3,2')).toEqual([{ hash: TPM_ALG.SHA256, pcrs: [2, 3, 16] }]);
    expect(parsePcrBanks('sha384:all')[0]!.pcrs).toHaveLength(24);
    expect(parsePcrBanks('0xb:1')).toEqual([{ hash: TPM_ALG.SHA256, pcrs: [1] }]);
    expect(hex(parsePcrSelection('sha256:31')[0]!.pcrSelect)).toBe('00000080');
    expect(fromPcrSelection(toPcrSelection([{ hash: TPM_ALG.SHA1, pcrs: [5, 23] }]))).toEqual([{ hash: TPM_ALG.SHA1, pcrs: [5, 23] }]);
  });

  it.each([
    ['', /empty/],
    ['sha256', /has no ":"/],
    ['sha256:', /has no PCRs/],
    ['md5:0', /unknown hash bank "md5"/],
    ['sha256:0+sha256:1', /bank sha256 is given twice/],
    ['sha256:1,1', /given twice/],
    ['sha256:32', /PCR 32 is beyond 31/],
    ['sha256:a', /"a" is not a PCR number/],
    ['sha256:-1', /not a PCR number/],
  ])('refuses %j', (text, why) => {
    expect(() => parsePcrSelection(text)).toThrow(why);
  });
});

describe('pcrs.out', () => {
  const sel = parsePcrSelection('sha256:0,1,2,3,4,5,6,7,8+sha1:16');
  const values = [...Array.from({ length: 9 }, (_, i) => new Uint8Array(32).fill(i)), new Uint8Array(20).fill(0xaa)];

  it('round-trips, 8 digests per list, little-endian C layout', () => {
    const bytes = writePcrsOut(sel, values);
    expect(bytes.length).toBe(132 + 4 + 2 * 532);
    expect(hex(bytes.subarray(0, 12))).toBe('02000000' + '0b00' + '03' + 'ff010000' + '00');
    expect(hex(bytes.subarray(132, 140))).toBe('02000000' + '08000000');
    const back = readPcrsOut(bytes);
    expect(formatPcrSelection(back.selection)).toBe('sha256:0,1,2,3,4,5,6,7,8+sha1:16');
    expect(back.values.map(hex)).toEqual(values.map(hex));
  });

  it('refuses values that do not fit the selection, and malformed files', () => {
    expect(() => writePcrsOut(sel, values.slice(1))).toThrow(/names 10 PCRs but 9 values/);
    expect(() => writePcrsOut(sel, [...values.slice(0, 9), new Uint8Array(32)])).toThrow(/bank sha1 has 20/);
    const bytes = writePcrsOut(sel, values);
    expect(() => readPcrsOut(bytes.subarray(0, 100))).toThrow(/too short/);
    expect(() => readPcrsOut(bytes.subarray(0, bytes.length - 1))).toThrow(/digest lists need/);
    const badHash = Uint8Array.from(bytes);
    badHash[4] = 0x99;
    expect(() => readPcrsOut(badHash)).toThrow(/unknown hash 0x99/);
  });
});

describe('pcrRead against a fake TPM', () => {
  /** A TPM whose PCR n of every bank holds bytes n, returning at most `perCall` PCRs per PCR_Read. */
  function fakeTpm(perCall: number, opts: { counters?: number[]; drop?: number } = {}): { tpm: Tpm; calls: TPMS_PCR_SELECTION[][] } {
    const calls: TPMS_PCR_SELECTION[][] = [];
    const t: Transport = {
      description: 'fake',
      close: async () => {},
      send: async (frame: Uint8Array) => {
        const sel = unmarshalCommand(PCR_Read, frame).params.pcrSelectionIn as TPMS_PCR_SELECTION[];
        calls.push(sel);
        let budget = perCall;
        const banks = fromPcrSelection(sel)
          .filter((b) => b.hash !== opts.drop)
          .map((b) => {
            const pcrs = b.pcrs.slice(0, budget);
            budget -= pcrs.length;
            return { hash: b.hash, pcrs };
          });
        const values = banks.flatMap((b) => b.pcrs.map((p) => new Uint8Array(b.hash === TPM_ALG.SHA1 ? 20 : 32).fill(p)));
        const counter = opts.counters?.[calls.length - 1] ?? 7;
        return marshalResponse(PCR_Read, { pcrUpdateCounter: counter, pcrSelectionOut: toPcrSelection(banks), pcrValues: values });
      },
    };
    return { tpm: new Tpm(t), calls };
  }

  it('asks again for the PCRs not returned, and gives values in selection order and by bank', async () => {
    const { tpm, calls } = fakeTpm(8);
    const r = await pcrRead(tpm, 'sha256:0,1,2,3,4,5,6,7,8,9+sha1:1,2');
    expect(calls.map((c) => formatPcrSelection(c))).toEqual(['sha256:0,1,2,3,4,5,6,7,8,9+sha1:1,2', 'sha256:8,9+sha1:1,2']);
    expect(r.values.map((v) => v[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2]);
    expect(r.banks.get(TPM_ALG.SHA1)!.get(2)!.length).toBe(20);
    expect(r.updateCounter).toBe(7);
  });

  it('starts over when the PCRs change midway', async () => {
    const { tpm, calls } = fakeTpm(1, { counters: [1, 2, 2, 2] });
    const r = await pcrRead(tpm, 'sha256:0,1');
    expect(calls.length).toBe(4);
    expect(r.updateCounter).toBe(2);
  });

  it('names the PCRs of a bank the TPM does not have', async () => {
    const { tpm } = fakeTpm(8, { drop: TPM_ALG.SHA384 });
    await expect(pcrRead(tpm, 'sha256:0+sha384:1,2')).rejects.toThrow(/no value for PCRs sha384:1,2 \(is the bank allocated\?\)/);
  });
});
