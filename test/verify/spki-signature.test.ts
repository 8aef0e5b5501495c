/**
 * The verifier's library additions, in software with real keys (node:crypto): a PEM/DER
 * SubjectPublicKeyInfo as a signing key's or the TCG EK's public area, signature files in
 * eve_tools_tpm2_sign's formats back to TPMT_SIGNATURE, and verifySignature's report (fail closed).
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EK_ATTRIBUTES,
  KeyFormatError,
  TPM_ALG,
  TPM_ECC,
  TPMT_SIGNATURE,
  ekEccTemplate,
  ekPublicFromSpki,
  encode,
  formatSignature,
  matchesTemplate,
  parseSignature,
  publicToPem,
  publicToSpkiDer,
  signingPublicFromSpki,
  verifySignature,
  type TPMT_PUBLIC,
} from '../../src/tpm/index.js';

const pemOf = (k: KeyObject): string => k.export({ type: 'spki', format: 'pem' }).toString();
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const message = new TextEncoder().encode('signed by an app key');

describe('signingPublicFromSpki / ekPublicFromSpki', () => {
  it('PEM and DER give the same key back (SPKI round trip), with the scheme and hash asked', () => {
    for (const { publicKey } of [rsa2048, p256]) {
      const pem = pemOf(publicKey);
      const pub = signingPublicFromSpki(pem, { hashAlg: TPM_ALG.SHA384 });
      expect(publicToPem(pub)).toBe(pem);
      const der = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      expect(Buffer.from(publicToSpkiDer(signingPublicFromSpki(der))).equals(Buffer.from(der))).toBe(true);
      expect(signingPublicFromSpki(new TextEncoder().encode(pem))).toEqual(signingPublicFromSpki(der)); // PEM as bytes
      expect((pub.type === TPM_ALG.RSA || pub.type === TPM_ALG.ECC) && pub.parameters.scheme).toEqual({ scheme: pub.type === TPM_ALG.RSA ? TPM_ALG.RSASSA : TPM_ALG.ECDSA, details: { hashAlg: TPM_ALG.SHA384 } });
    }
    const rsa = signingPublicFromSpki(pemOf(rsa2048.publicKey));
    expect(rsa.type === TPM_ALG.RSA && [rsa.parameters.exponent, rsa.parameters.keyBits, rsa.unique.length]).toEqual([0, 2048, 256]);
    const pss = signingPublicFromSpki(pemOf(rsa2048.publicKey), { scheme: TPM_ALG.RSAPSS });
    expect(pss.type === TPM_ALG.RSA && pss.parameters.scheme.scheme).toBe(TPM_ALG.RSAPSS);
  });

  it('refuses what is not a public key of a TPM type, clearly', () => {
    const privatePem = rsa2048.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => signingPublicFromSpki(privatePem)).toThrow(/this is a private key/);
    expect(() => signingPublicFromSpki('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')).toThrow(KeyFormatError);
    expect(() => signingPublicFromSpki(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]))).toThrow(/not a PEM or DER SubjectPublicKeyInfo/);
    expect(() => signingPublicFromSpki(pemOf(generateKeyPairSync('ed25519').publicKey))).toThrow(/key type ed25519; a TPM key here is RSA or ECC/);
    expect(() => signingPublicFromSpki(pemOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey))).toThrow(/curve .* is not one/);
    expect(() => signingPublicFromSpki(pemOf(p256.publicKey), { scheme: TPM_ALG.RSASSA })).toThrow(/signs with ECDSA/);
    expect(() => signingPublicFromSpki(pemOf(rsa2048.publicKey), { hashAlg: 0x1234 })).toThrow();
  });

  it('an EK PEM becomes the TCG low-range template with that key; other sizes, exponents and curves are refused', () => {
    const ecc = ekPublicFromSpki(pemOf(p256.publicKey));
    expect(matchesTemplate(ecc, ekEccTemplate())).toBe(true);
    expect(ecc.objectAttributes).toBe(EK_ATTRIBUTES);
    expect(ecc.type === TPM_ALG.ECC && ecc.parameters.curveID).toBe(TPM_ECC.NIST_P256);
    expect(publicToPem(ecc)).toBe(pemOf(p256.publicKey));
    const rsa = ekPublicFromSpki(pemOf(rsa2048.publicKey));
    expect(rsa.type === TPM_ALG.RSA && [rsa.nameAlg, rsa.parameters.symmetric]).toEqual([TPM_ALG.SHA256, { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB }]);
    expect(() => ekPublicFromSpki(pemOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey))).toThrow(/RSA 1024 bits; the TCG EK template L-1 is RSA 2048/);
    expect(() => ekPublicFromSpki(pemOf(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey))).toThrow(/exponent 3/);
    expect(() => ekPublicFromSpki(pemOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey))).toThrow(/curve P-384; the TCG EK template L-2 is NIST P-256/);
  });
});

describe('parseSignature and verifySignature', () => {
  const keys: [string, KeyObject, TPMT_PUBLIC][] = [
    ['rsa', rsa2048.privateKey, signingPublicFromSpki(pemOf(rsa2048.publicKey))],
    ['ecc', p256.privateKey, signingPublicFromSpki(pemOf(p256.publicKey))],
  ];

  it.each(keys)('%s: plain/der (as openssl makes them) and tss parse and verify; a flipped bit fails', async (_t, priv, pub) => {
    const plain = new Uint8Array(sign('sha256', message, priv)); // RSASSA-PKCS1-v1_5 / DER ECDSA-Sig-Value
    const sig = parseSignature(plain, 'plain', pub);
    expect(formatSignature(sig, 'plain')).toEqual(plain);
    expect(parseSignature(plain, 'der', pub)).toEqual(sig);
    const tss = encode(TPMT_SIGNATURE, sig);
    expect(parseSignature(tss, 'tss', pub)).toEqual(sig);
    expect(await verifySignature({ publicKey: pub, message, signature: sig })).toEqual({ ok: true, checks: [{ name: 'signature', ok: true, detail: 'verifies over the message with the key' }] });
    expect((await verifySignature({ publicKey: pub, message: [message.subarray(0, 5), message.subarray(5)], signature: tss })).ok).toBe(true); // chunks, and bytes
    const flipped = Uint8Array.from(message);
    flipped[3]! ^= 1;
    const bad = await verifySignature({ publicKey: pub, message: flipped, signature: sig });
    expect([bad.ok, bad.checks[0]!.detail]).toEqual([false, 'does not verify over the message with the key']);
  });

  it('the scheme or hash not being the key\'s is refused; malformed files are format errors', async () => {
    const [, priv, pub] = keys[0]!;
    const sig = parseSignature(new Uint8Array(sign('sha256', message, priv)), 'plain', pub);
    const sha384Key = signingPublicFromSpki(pemOf(rsa2048.publicKey), { hashAlg: TPM_ALG.SHA384 });
    const r = await verifySignature({ publicKey: sha384Key, message, signature: sig });
    expect([r.ok, r.checks[0]!.detail]).toEqual([false, "scheme 0x14/hash 0xb is not the key's (0x14/0xc)"]);
    expect(() => parseSignature(new Uint8Array(255), 'plain', pub)).toThrow(/255 octets; an RSA signature of this key has 256/);
    expect(() => parseSignature(new Uint8Array(0), 'tss', pub)).toThrow(/empty/);
    expect(() => parseSignature(new Uint8Array([0, 0x14]), 'tss', pub)).toThrow(/not a TPMT_SIGNATURE/);
    const eccPub = keys[1]![2];
    const der = new Uint8Array(sign('sha256', message, keys[1]![1]));
    expect(() => parseSignature(Uint8Array.from([...der, 0]), 'der', eccPub)).toThrow(/extra or non-canonical/);
    expect(() => parseSignature(Uint8Array.from([0x04, 0x01, 0x00]), 'der', eccPub)).toThrow(/not a DER ECDSA-Sig-Value/);
  });

  it('fails closed on missing input', async () => {
    const pub = keys[1]![2];
    for (const input of [undefined, {}, { publicKey: pub, message }, { publicKey: pub, signature: new Uint8Array(4) }, { message, signature: new Uint8Array(4) }]) {
      const r = await verifySignature(input as never);
      expect([r.ok, r.checks[0]!.name]).toEqual([false, 'input']);
    }
    const garbage = await verifySignature({ publicKey: pub, message, signature: new Uint8Array([1, 2, 3]) });
    expect([garbage.ok, garbage.checks[0]!.name]).toEqual([false, 'structure']);
  });
});
