/**
 * What can be computed from a key's public area without a TPM: its Name (Part 1 §16:
 * nameAlg ‖ H_nameAlg(TPMT_PUBLIC)) and its SubjectPublicKeyInfo (RFC 5280 / RFC 3279 /
 * RFC 5480) in DER and PEM, as `tpm2_readpublic -f pem` writes it.
 */
import { createHash } from 'node:crypto';
import { NODE_HASH, TPM_ALG, TPM_ECC } from '../constants.js';
import { TPMT_PUBLIC } from '../structures.js';
import { encode } from '../wire/codec.js';
import { NULL, objectIdentifier, sequence, subjectPublicKeyInfo, unsignedInteger } from './der.js';


/** Named curves we can express in SPKI: TPM curve id → OID and coordinate size. */
export const CURVES: Readonly<Record<number, { oid: string; size: number; name: string }>> = {
  [TPM_ECC.NIST_P256]: { oid: '1.2.840.10045.3.1.7', size: 32, name: 'P-256' },
  [TPM_ECC.NIST_P384]: { oid: '1.3.132.0.34', size: 48, name: 'P-384' },
  [TPM_ECC.NIST_P521]: { oid: '1.3.132.0.35', size: 66, name: 'P-521' },
};

export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

/** The Name of an object: nameAlg (UINT16) ‖ digest of its marshalled TPMT_PUBLIC. */
export function objectName(pub: TPMT_PUBLIC): Uint8Array {
  const hash = NODE_HASH[pub.nameAlg];
  if (!hash) throw new KeyFormatError(`cannot compute a Name with nameAlg 0x${pub.nameAlg.toString(16)}`);
  const digest = createHash(hash).update(encode(TPMT_PUBLIC, pub)).digest();
  const out = new Uint8Array(2 + digest.length);
  new DataView(out.buffer).setUint16(0, pub.nameAlg);
  out.set(digest, 2);
  return out;
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.length > size) throw new KeyFormatError(`coordinate of ${b.length} bytes is longer than the curve's ${size}`);
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

/** Big-endian bytes of an unsigned integer, without leading zeros. */
function uintBytes(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v > 0) {
    out.unshift(v % 256);
    v = Math.floor(v / 256);
  }
  return Uint8Array.from(out);
}

/** rsaEncryption (RFC 8017 Appendix C) and id-ecPublicKey (RFC 5480 §2.1.1). */
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';
const EC_PUBLIC_KEY = '1.2.840.10045.2.1';

/** DER SubjectPublicKeyInfo of an RSA or ECC public area. */
export function publicToSpkiDer(pub: TPMT_PUBLIC): Uint8Array {
  if (pub.type === TPM_ALG.RSA) {
    const params = pub.parameters;
    const modulus = pub.unique;
    if (modulus.length === 0) throw new KeyFormatError('RSA public area has no modulus (a template, not a key)');
    // RSAPublicKey (RFC 8017 §A.1.1); Part 2 §12.2.3.5: an exponent of zero means the default, 2^16 + 1.
    const rsa = sequence(unsignedInteger(modulus), unsignedInteger(uintBytes(params.exponent === 0 ? 65537 : params.exponent)));
    return subjectPublicKeyInfo(RSA_ENCRYPTION, NULL, rsa);
  }
  if (pub.type === TPM_ALG.ECC) {
    const params = pub.parameters;
    const curve = CURVES[params.curveID];
    if (!curve) throw new KeyFormatError(`ECC curve 0x${params.curveID.toString(16)} has no SubjectPublicKeyInfo mapping here`);
    const point = pub.unique;
    if (point.x.length === 0 || point.y.length === 0) throw new KeyFormatError('ECC public area has no point (a template, not a key)');
    const encoded = new Uint8Array(1 + 2 * curve.size);
    encoded[0] = 0x04; // uncompressed point (SEC 1 §2.3.3)
    encoded.set(leftPad(point.x, curve.size), 1);
    encoded.set(leftPad(point.y, curve.size), 1 + curve.size);
    return subjectPublicKeyInfo(EC_PUBLIC_KEY, objectIdentifier(curve.oid), encoded); // ECParameters: namedCurve
  }
  throw new KeyFormatError(`a public area of type 0x${pub.type.toString(16)} has no SubjectPublicKeyInfo`);
}

/** PEM ("-----BEGIN PUBLIC KEY-----") of the SubjectPublicKeyInfo, 64-column base64. */
export function publicToPem(pub: TPMT_PUBLIC): string {
  return derToPem(publicToSpkiDer(pub), 'PUBLIC KEY');
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
