/**
 * verifyQuote / verifyCertify without a TPM: TPMS_ATTEST structures built with the codec and
 * signed by a software key standing for the AK (same public-area template as our AKs). Every
 * check is exercised on its own; every failure and missing input fails the report (fail closed),
 * never throws.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  TPMS_ATTEST,
  TPMT_SIGNATURE,
  TPM_ALG,
  TPM_ST_ATTEST,
  akEccTemplate,
  akRsaTemplate,
  encode,
  verifyCertify,
  verifyQuote,
  type AttestReport,
  type KeyType,
  type TPMT_PUBLIC,
} from '../../src/tpm/index.js';

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());

function softwareAk(type: KeyType): { pub: TPMT_PUBLIC; priv: KeyObject } {
  if (type === 'rsa') {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url'));
    return { pub: { ...akRsaTemplate(), unique: n }, priv: privateKey };
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const unique = { x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')) };
  return { pub: { ...akEccTemplate(), unique }, priv: privateKey };
}

function signBytes(type: KeyType, priv: KeyObject, bytes: Uint8Array, hashAlg: number = TPM_ALG.SHA256): TPMT_SIGNATURE {
  const h = hashAlg === TPM_ALG.SHA256 ? 'sha256' : 'sha384';
  if (type === 'rsa') return { sigAlg: TPM_ALG.RSASSA, signature: { hash: hashAlg, sig: new Uint8Array(sign(h, bytes, priv)) } } as TPMT_SIGNATURE;
  const rs = sign(h, bytes, { key: priv, dsaEncoding: 'ieee-p1363' });
  return { sigAlg: TPM_ALG.ECDSA, signature: { hash: hashAlg, signatureR: new Uint8Array(rs.subarray(0, 32)), signatureS: new Uint8Array(rs.subarray(32)) } } as TPMT_SIGNATURE;
}

const NONCE = new Uint8Array(Buffer.from('a fresh nonce from the verifier'));
const PCR = { 0: new Uint8Array(32).fill(0), 1: sha256(new Uint8Array([1])), 7: sha256(new Uint8Array([7])) };
const PCR_DIGEST = sha256(new Uint8Array(Buffer.concat([PCR[0], PCR[1], PCR[7]])));
const OBJECT_NAME = new Uint8Array(Buffer.from('000b' + '5e'.repeat(32), 'hex'));

const base = {
  qualifiedSigner: new Uint8Array(Buffer.from('000b' + '01'.repeat(32), 'hex')),
  clockInfo: { clock: 1000n, resetCount: 1, restartCount: 0, safe: true },
  firmwareVersion: 0x2023n,
};

function quoteBytes(opts: { nonce?: Uint8Array; digest?: Uint8Array; select?: number[] } = {}): Uint8Array {
  const bitmap = new Uint8Array(3);
  for (const i of opts.select ?? [0, 1, 7]) bitmap[i >> 3]! |= 1 << (i & 7);
  return encode(TPMS_ATTEST, {
    magic: 0xff544347,
    type: TPM_ST_ATTEST.QUOTE,
    ...base,
    extraData: opts.nonce ?? NONCE,
    attested: { pcrSelect: [{ hash: TPM_ALG.SHA256, pcrSelect: bitmap }], pcrDigest: opts.digest ?? PCR_DIGEST },
  });
}

function certifyBytes(name: Uint8Array = OBJECT_NAME, nonce: Uint8Array = NONCE): Uint8Array {
  return encode(TPMS_ATTEST, {
    magic: 0xff544347,
    type: TPM_ST_ATTEST.CERTIFY,
    ...base,
    extraData: nonce,
    attested: { name, qualifiedName: name },
  });
}

function failed(r: AttestReport): string[] {
  return r.checks.filter((c) => !c.ok).map((c) => c.name);
}

describe.each(['rsa', 'ecc'] as KeyType[])('verifyQuote (%s AK, software)', (type) => {
  const ak = softwareAk(type);
  const other = softwareAk(type);
  const bytes = quoteBytes();
  const signature = signBytes(type, ak.priv, bytes);
  const values = { [TPM_ALG.SHA256]: PCR };

  it('accepts a good quote, checked against values and against the digest', () => {
    const r = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: values });
    expect(failed(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks.map((c) => c.name)).toEqual(['signature', 'magic', 'type', 'nonce', 'pcrSelection', 'pcrDigest']);
    expect(r.attest?.type).toBe(TPM_ST_ATTEST.QUOTE);
    const d = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature: encode(TPMT_SIGNATURE, signature), nonce: NONCE, pcrDigest: PCR_DIGEST });
    expect(d.ok).toBe(true);
  });

  it('refuses a wrong nonce (a replayed quote)', () => {
    const r = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: new Uint8Array([1, 2, 3]), pcrValues: values });
    expect(r.ok).toBe(false);
    expect(failed(r)).toEqual(['nonce']);
  });

  it('refuses wrong PCR values, values for PCRs not quoted, missing values', () => {
    const wrong = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: { [TPM_ALG.SHA256]: { ...PCR, 7: new Uint8Array(32) } } });
    expect(failed(wrong)).toEqual(['pcrDigest']);
    const extra = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: { [TPM_ALG.SHA256]: { ...PCR, 8: new Uint8Array(32) } } });
    expect(failed(extra)).toEqual(['pcrSelection']);
    expect(extra.checks.find((c) => c.name === 'pcrSelection')?.detail).toMatch(/PCR 8 .* does not cover/);
    const missing = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: { [TPM_ALG.SHA256]: { 0: PCR[0], 1: PCR[1] } } });
    expect(failed(missing)).toEqual(['pcrSelection']);
    const short = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: { [TPM_ALG.SHA256]: { ...PCR, 1: new Uint8Array(20) } } });
    expect(failed(short)).toEqual(['pcrSelection']);
    const digest = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE, pcrDigest: new Uint8Array(32) });
    expect(failed(digest)).toEqual(['pcrDigest']);
  });

  it('refuses another AK, a tampered message and another scheme', () => {
    expect(failed(verifyQuote({ akPublic: other.pub, attestBytes: bytes, signature, nonce: NONCE, pcrValues: values }))).toEqual(['signature']);
    const tampered = new Uint8Array(bytes);
    tampered[tampered.length - 1]! ^= 1;
    expect(failed(verifyQuote({ akPublic: ak.pub, attestBytes: tampered, signature, nonce: NONCE, pcrValues: values }))).toContain('signature');
    const sha384 = signBytes(type, ak.priv, bytes, TPM_ALG.SHA384);
    const r = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature: sha384, nonce: NONCE, pcrDigest: PCR_DIGEST });
    expect(failed(r)).toEqual(['signature']);
    expect(r.checks[0]!.detail).toMatch(/is not the key's/);
  });

  it('refuses data without TPM_GENERATED_VALUE even when signed by the key', () => {
    const forged = new Uint8Array(bytes);
    forged[0] = 0x00;
    const r = verifyQuote({ akPublic: ak.pub, attestBytes: forged, signature: signBytes(type, ak.priv, forged), nonce: NONCE, pcrValues: values });
    expect(r.ok).toBe(false);
    expect(failed(r)).toEqual(['magic']);
    expect(r.attest).toBeUndefined();
  });

  it('refuses a certification offered as a quote', () => {
    const cert = certifyBytes();
    const r = verifyQuote({ akPublic: ak.pub, attestBytes: cert, signature: signBytes(type, ak.priv, cert), nonce: NONCE, pcrValues: values });
    expect(failed(r)).toEqual(['type']);
  });

  it('fails closed on missing inputs, never throws', () => {
    expect(failed(verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: NONCE }))).toEqual(['input']);
    const noNonce = verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: undefined as unknown as Uint8Array, pcrValues: values });
    expect(noNonce.ok).toBe(false);
    expect(noNonce.checks[0]!.detail).toMatch(/missing the nonce/);
    expect(verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature, nonce: new Uint8Array(0), pcrDigest: PCR_DIGEST }).ok).toBe(false);
    expect(verifyQuote({ akPublic: ak.pub, attestBytes: new Uint8Array(0), signature, nonce: NONCE, pcrDigest: PCR_DIGEST }).ok).toBe(false);
    expect(verifyQuote({ akPublic: ak.pub, attestBytes: bytes, signature: new Uint8Array([1, 2]), nonce: NONCE, pcrDigest: PCR_DIGEST }).ok).toBe(false);
    expect(verifyQuote(null as never).ok).toBe(false);
    const truncated = bytes.subarray(0, 20);
    const t = verifyQuote({ akPublic: ak.pub, attestBytes: truncated, signature: signBytes(type, ak.priv, truncated), nonce: NONCE, pcrDigest: PCR_DIGEST });
    expect(failed(t)).toEqual(['structure']);
  });
});

describe.each(['rsa', 'ecc'] as KeyType[])('verifyCertify (%s signer, software)', (type) => {
  const ak = softwareAk(type);
  const bytes = certifyBytes();
  const signature = signBytes(type, ak.priv, bytes);

  it('accepts a good certification', () => {
    const r = verifyCertify({ signerPublic: ak.pub, attestBytes: bytes, signature, objectName: OBJECT_NAME, nonce: NONCE });
    expect(failed(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks.map((c) => c.name)).toEqual(['signature', 'magic', 'type', 'nonce', 'name']);
  });

  it('refuses another object, another nonce, another signer, a quote', () => {
    const otherName = new Uint8Array(OBJECT_NAME);
    otherName[5]! ^= 1;
    expect(failed(verifyCertify({ signerPublic: ak.pub, attestBytes: bytes, signature, objectName: otherName, nonce: NONCE }))).toEqual(['name']);
    expect(failed(verifyCertify({ signerPublic: ak.pub, attestBytes: bytes, signature, objectName: OBJECT_NAME, nonce: new Uint8Array([0]) }))).toEqual(['nonce']);
    expect(failed(verifyCertify({ signerPublic: softwareAk(type).pub, attestBytes: bytes, signature, objectName: OBJECT_NAME, nonce: NONCE }))).toEqual(['signature']);
    const q = quoteBytes();
    expect(failed(verifyCertify({ signerPublic: ak.pub, attestBytes: q, signature: signBytes(type, ak.priv, q), objectName: OBJECT_NAME, nonce: NONCE }))).toEqual(['type']);
  });

  it('fails closed without the object Name', () => {
    const r = verifyCertify({ signerPublic: ak.pub, attestBytes: bytes, signature, objectName: undefined as unknown as Uint8Array, nonce: NONCE });
    expect(r.ok).toBe(false);
    expect(failed(r)).toEqual(['input']);
  });
});
