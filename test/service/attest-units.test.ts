/**
 * The attestation service's pieces without a TPM: request members parsed strictly, the device
 * key option validated, the EK certificate's padding dropped only when it is padding, and the
 * library's refusals mapped to 4xx.
 */
import { describe, expect, it } from 'vitest';
import { AttestError, CredentialError, NvError, PcrFormatError } from '../../src/tpm/index.js';
import { ConfigError, DEFAULT_CONFIG, resolveConfig } from '../../src/service/config.js';
import { ServiceError } from '../../src/service/protocol/errors.js';
import { parseBind, parseEkType, parseNonce } from '../../src/service/attest/requests.js';
import { derOnly } from '../../src/service/attest/ek.js';
import { explainAttestError } from '../../src/service/attest/errors.js';
import { parseSelection } from '../../src/service/attest/attestation.js';

const status = (f: () => unknown): number | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof ServiceError ? e.status : -1;
  }
  return undefined;
};

describe('attestation request members', () => {
  it('takes a nonce of 1–64 bytes in even-length hex, any case', () => {
    expect(Buffer.from(parseNonce('00aAfF')).toString('hex')).toBe('00aaff');
    expect(parseNonce('ab'.repeat(64)).length).toBe(64);
    for (const bad of [undefined, '', '0', 'zz', ' 00', '00 ', '0x00', 'ab'.repeat(65), 12, null, ['00'], { nonce: '00' }]) {
      expect(status(() => parseNonce(bad)), JSON.stringify(bad)).toBe(400);
    }
  });

  it('takes bind as a JSON boolean only, and the EK type as rsa or ecc', () => {
    expect(parseBind(undefined)).toBe(false);
    expect(parseBind(true)).toBe(true);
    for (const bad of ['true', 1, 0, null, {}]) expect(status(() => parseBind(bad)), JSON.stringify(bad)).toBe(400);
    expect(parseEkType(undefined)).toBe('rsa');
    expect(parseEkType('ecc')).toBe('ecc');
    for (const bad of ['RSA', 'ec', '1', '', 1]) expect(status(() => parseEkType(bad)), JSON.stringify(bad)).toBe(400);
  });

  it('parses a selection as tpm2_pcrread, a bad one being a 400', () => {
    expect(parseSelection('sha256:2,0+sha1:all')).toEqual([
      { hash: 0x0b, pcrs: [0, 2] },
      { hash: 0x04, pcrs: Array.from({ length: 24 }, (_, i) => i) },
    ]);
    for (const bad of ['', 'sha256', 'sha256:', 'md5:0', 'sha256:32', 'sha256:0+sha256:1', 'sha256:1,1']) expect(status(() => parseSelection(bad)), bad).toBe(400);
  });
});

describe('the deviceAk option', () => {
  const base = { singleTenant: true };
  it('defaults to 0x81000003 and takes any persistent handle, decimal or hex', () => {
    expect(DEFAULT_CONFIG.deviceAk).toBe(0x81000003);
    expect(resolveConfig({}, base).deviceAk).toBe(0x81000003);
    expect(resolveConfig({ deviceAk: '0x81000004' }, base).deviceAk).toBe(0x81000004);
    expect(resolveConfig({}, { ...base, deviceAk: String(0x81010010) }).deviceAk).toBe(0x81010010);
  });
  it('refuses a handle outside the persistent range, and what is not a number', () => {
    for (const bad of ['0x01C00002', '0x80000000', 0x82000000, '0x181000003', '-1', 'aik', 1.5]) {
      expect(() => resolveConfig({ deviceAk: bad }, base), String(bad)).toThrow(ConfigError);
    }
  });
});

describe('the EK certificate as stored', () => {
  const der = (len: number): Uint8Array => {
    const body = new Uint8Array(len).fill(7);
    const head = len < 0x80 ? [0x30, len] : len < 0x100 ? [0x30, 0x81, len] : [0x30, 0x82, len >>> 8, len & 0xff];
    return Uint8Array.from([...head, ...body]);
  };
  it('drops zeros after a complete DER SEQUENCE (short and long length forms)', () => {
    for (const len of [10, 200, 700]) {
      const cert = der(len);
      const padded = Uint8Array.from([...cert, 0, 0, 0, 0]);
      expect(Buffer.from(derOnly(padded)).equals(Buffer.from(cert)), String(len)).toBe(true);
      expect(derOnly(cert)).toBe(cert);
    }
  });
  it('keeps anything else as stored: non-zero trailing bytes, a truncated or non-DER content', () => {
    const cert = der(20);
    const trailing = Uint8Array.from([...cert, 0, 1]);
    expect(derOnly(trailing)).toBe(trailing);
    const truncated = cert.subarray(0, 10);
    expect(derOnly(truncated)).toBe(truncated);
    const notDer = Uint8Array.from([0x04, 2, 1, 1, 0, 0]);
    expect(derOnly(notDer)).toBe(notDer);
  });
});

describe('the library\'s refusals in attestation', () => {
  it('are 400 for what the caller sent, 422 for what the TPM cannot do; others pass unchanged', () => {
    const code = (e: unknown): number | undefined => (explainAttestError(e) as ServiceError).status;
    expect(code(new PcrFormatError('x'))).toBe(400);
    expect(code(new CredentialError('x'))).toBe(400);
    expect(code(new AttestError('x'))).toBe(422);
    expect(code(new NvError('x'))).toBe(422);
    const other = new Error('bug');
    expect(explainAttestError(other)).toBe(other);
    const se = new ServiceError(409, 'CONFLICT', 'x');
    expect(explainAttestError(se)).toBe(se);
  });
});
