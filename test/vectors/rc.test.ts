import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadVectors } from '../helpers/vectors.js';
import { TPM_RC, TpmError, decodeRc, isRetryable, rcText } from '../../src/tpm/rc.js';

interface RcVectors {
  generator: string;
  codes: { rc: string; text: string }[];
}

const vectors = loadVectors<RcVectors>('rc-tpm2-tss.json');

describe('rcText matches tpm2-tss Tss2_RC_Decode', () => {
  it('has all 740 recorded codes', () => {
    expect(vectors.codes).toHaveLength(740);
  });

  it('renders every recorded code exactly', () => {
    // Collect all mismatches so a failure shows every wrong line at once.
    const wrong = vectors.codes
      .map(({ rc, text }) => ({ rc, want: text, got: rcText(Number(rc)) }))
      .filter((r) => r.got !== r.want);
    expect(wrong).toEqual([]);
  });
});

describe('decodeRc fields', () => {
  const rows = [
    // rc, kind, index, base, baseName
    [0x18b, 'handle', 1, TPM_RC.HANDLE, 'TPM_RC_HANDLE'],
    [0x3e0, 'parameter', 3, TPM_RC.TICKET, 'TPM_RC_TICKET'],
    [0x902, 'warning', undefined, TPM_RC.OBJECT_MEMORY, 'TPM_RC_OBJECT_MEMORY'],
    [0x101, 'error', undefined, TPM_RC.FAILURE, 'TPM_RC_FAILURE'],
    [0x084, 'format1', undefined, TPM_RC.VALUE, 'TPM_RC_VALUE'],
    [0xf81, 'session', 7, TPM_RC.ASYMMETRIC, 'TPM_RC_ASYMMETRIC'],
    [0x9a2, 'session', 1, TPM_RC.BAD_AUTH, 'TPM_RC_BAD_AUTH'],
    [0x000, 'success', undefined, TPM_RC.SUCCESS, 'TPM_RC_SUCCESS'],
    [0x01e, 'error', undefined, TPM_RC.BAD_TAG, 'TPM_RC_BAD_TAG'],
    [0x922, 'warning', undefined, TPM_RC.RETRY, 'TPM_RC_RETRY'],
  ] as const;
  it.each(rows.map(([rc, kind, index, base, baseName]) => ({ hex: `0x${rc.toString(16)}`, rc, kind, index, base, baseName })))(
    '$hex is $kind',
    ({ rc, kind, index, base, baseName }) => {
      const info = decodeRc(rc);
      expect(info).toMatchObject({ rc, kind, base, baseName, layer: 0 });
      expect(info.index).toBe(index);
    },
  );

  it('gives the description without the kind/index prefix', () => {
    expect(decodeRc(0x3e0).description).toBe('invalid ticket');
    expect(decodeRc(0x3e0).text).toBe('tpm:parameter(3):invalid ticket');
    expect(decodeRc(0x902).description).toBe('out of memory for object contexts');
    expect(decodeRc(0x917).description).toBeUndefined(); // tpm2-tss prints tpm:0x917
    expect(decodeRc(0x186).description).toBeUndefined(); // tpm2-tss prints (null)
  });

  it('keeps the 4-bit parameter number although tpm2-tss prints only 3 bits', () => {
    const info = decodeRc(0x9c1);
    expect(info.kind).toBe('parameter');
    expect(info.index).toBe(9);
    expect(info.text).toBe('tpm:parameter(1):asymmetric algorithm not supported or not correct');
  });

  it('marks vendor and TPM 1.2 format-zero codes', () => {
    expect(decodeRc(0x501)).toMatchObject({ kind: 'vendor', text: 'tpm:error(2.0): Vendor specific error: 0x1' });
    expect(decodeRc(0xd05)).toMatchObject({ kind: 'vendor', text: 'tpm:warn(2.0): Vendor specific error: 0x5' });
    expect(decodeRc(0x01e).text).toBe('tpm:error(1.2): unknown version 1.2 error code');
  });

  it('decodes layered codes as tpm2-tss does', () => {
    expect(rcText(0x00080001)).toBe('sys:Catch all for all errors not otherwise specified');
    expect(rcText(0x000a000a)).toBe('tcti:IO failure');
    expect(rcText(0x00070000)).toBe('esapi:success');
    expect(rcText(0x00090036)).toBe('mu:0x36'); // beyond tpm2-tss's table
    expect(rcText(0x000b0922)).toBe('rmt:warn(2.0): the TPM was not able to start the command');
    expect(rcText(0x000c0005)).toBe('rm:0xC0005');
    expect(rcText(0x00010000)).toBe('1:0x10000');
    expect(rcText(0xffffffff)).toBe('255:0xFFFFFFFF');
    expect(decodeRc(0x00080001)).toMatchObject({ kind: 'layer', layer: 8, base: 1 });
    expect(decodeRc(0x000b018b)).toMatchObject({ kind: 'layer', layer: 11, base: TPM_RC.HANDLE, index: 1 });
  });

  it('ignores bits 24..31 in the text, as tpm2-tss does', () => {
    expect(rcText(0x8000018b)).toBe('tpm:handle(1):the handle is not correct for the use');
    expect(decodeRc(0x8000018b).rc).toBe(0x8000018b);
  });

  it('never throws for any UINT32 and always gives a layer-prefixed text', () => {
    const check = (rc: number): void => {
      const info = decodeRc(rc);
      expect(info.rc).toBe(rc);
      expect(Number.isInteger(info.layer) && info.layer >= 0 && info.layer <= 255).toBe(true);
      expect(info.text).toMatch(/^[a-z0-9]+:.+$/);
      if (info.layer === 0) expect(info.text.startsWith('tpm:')).toBe(true);
      if (info.index !== undefined) expect(info.index).toBeGreaterThanOrEqual(1);
      expect(info.text).not.toContain('undefined');
    };
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), check), { numRuns: 5000 });
    fc.assert(fc.property(fc.integer({ min: 0x80000000, max: 0xffffffff }), check), { numRuns: 2000 });
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), check), { numRuns: 2000 });
    for (const rc of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x00080001, 0x00ff0000]) check(rc);
  });

  it('reads the layer a code was built with; the recorded texts are the oracle', () => {
    // Every recorded code is a TPM-layer code, as its tpm2-tss text says.
    for (const { rc, text } of vectors.codes) {
      expect(text.startsWith('tpm:'), rc).toBe(true);
      expect(decodeRc(Number(rc)).layer, rc).toBe(0);
    }
    // The same codes under another layer (TSS2_RC: the layer is bits 16..23, put there here
    // by building the code, never read back by a formula): that layer is reported, and under
    // the resource-manager-as-TPM layer (11, "rmt") tpm2-tss prints the recorded TPM text.
    fc.assert(
      fc.property(fc.constantFrom(...vectors.codes), fc.integer({ min: 1, max: 255 }), ({ rc, text }, layer) => {
        const info = decodeRc(layer * 0x10000 + Number(rc));
        expect(info.layer).toBe(layer);
        expect(info.text.startsWith('tpm:')).toBe(false);
        if (layer === 11) expect(info.text).toBe(`rmt:${text.slice('tpm:'.length)}`);
      }),
      { numRuns: 2000 },
    );
    for (const { rc, text } of vectors.codes) expect(rcText(0x000b0000 + Number(rc)), rc).toBe(`rmt:${text.slice('tpm:'.length)}`);
  });

  it('coerces non-UINT32 numbers instead of throwing', () => {
    expect(decodeRc(-1).rc).toBe(0xffffffff);
    expect(decodeRc(2 ** 32 + 0x18b).text).toBe(rcText(0x18b));
    expect(decodeRc(Number.NaN).text).toBe('tpm:success');
    expect(decodeRc(Infinity).text).toBe('tpm:success');
  });
});

describe('TpmError', () => {
  it('carries the decoded code, the command, and tpm2-tss text as message', () => {
    const err = new TpmError(0x3e0, { name: 'Sign', code: 0x15d });
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(TpmError);
    expect(err.name).toBe('TpmError');
    expect(err.message).toBe('tpm:parameter(3):invalid ticket');
    expect(err).toMatchObject({
      rc: 0x3e0,
      base: TPM_RC.TICKET,
      baseName: 'TPM_RC_TICKET',
      kind: 'parameter',
      index: 3,
      command: 'Sign',
      commandCode: 0x15d,
    });
    expect(String(err)).toBe('TpmError: tpm:parameter(3):invalid ticket');
  });

  it('works without a command', () => {
    const err = new TpmError(0x902);
    expect(err.message).toBe('tpm:warn(2.0): out of memory for object contexts');
    expect(err.command).toBeUndefined();
    expect(err.commandCode).toBeUndefined();
    expect(err.kind).toBe('warning');
    expect(err.index).toBeUndefined();
  });

  it('is() compares base codes, ignoring the index', () => {
    const err = new TpmError(0x28b);
    expect(err.is(TPM_RC.HANDLE)).toBe(true);
    expect(err.is(0x18b)).toBe(true);
    expect(err.is(TPM_RC.VALUE)).toBe(false);
    expect(new TpmError(0x922).is(TPM_RC.RETRY)).toBe(true);
    // A TSS layer's number 30 is not TPM_RC_BAD_TAG (0x01E).
    expect(new TpmError(0x0008001e).is(TPM_RC.BAD_TAG)).toBe(false);
  });
});

describe('isRetryable', () => {
  it('is true only for RETRY, YIELDED and TESTING', () => {
    expect(isRetryable(TPM_RC.RETRY)).toBe(true);
    expect(isRetryable(TPM_RC.YIELDED)).toBe(true);
    expect(isRetryable(TPM_RC.TESTING)).toBe(true);
    expect(isRetryable(0x000b0922)).toBe(true); // relayed by a resource manager
    expect(isRetryable(TPM_RC.OBJECT_MEMORY)).toBe(false);
    expect(isRetryable(TPM_RC.SUCCESS)).toBe(false);
    expect(isRetryable(0x00080922)).toBe(false); // a sys-layer number, not a TPM warning
    expect(isRetryable(0xffffffff)).toBe(false);
  });
});
