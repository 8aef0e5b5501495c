/**
 * A TPMT_SIGNATURE in the forms users need:
 * - `plain`: what `openssl dgst -verify` takes — raw RSASSA/RSAPSS bytes; DER ECDSA-Sig-Value for ECDSA;
 * - `der`: same as plain (DER for ECC, the raw integer string for RSA, which has no DER wrapper);
 * - `raw`: RSA bytes, or r ‖ s each padded to the curve size (IEEE P1363, WebCrypto);
 * - `tss`: the marshalled TPMT_SIGNATURE, as tpm2_sign writes by default.
 */
import { TPM_ALG } from '../constants.js';
import { TPMT_SIGNATURE, type TPMT_PUBLIC, type TpmiAlgHash } from '../structures.js';
import { encode } from '../wire/codec.js';
import { CURVES, KeyFormatError } from './public.js';
import { ecdsaSigValue } from './der.js';

export type SignatureFormat = 'plain' | 'der' | 'raw' | 'tss';
export const SIGNATURE_FORMATS: readonly SignatureFormat[] = ['plain', 'der', 'raw', 'tss'];

/** The signature's hash algorithm (TPM_ALG_ID), or undefined for NULL. */
export function signatureHash(sig: TPMT_SIGNATURE): TpmiAlgHash | undefined {
  // Every arm but NULL's has `hash` (the HMAC arm too: see TPMT_SIGNATURE in structures.ts).
  return sig.sigAlg === TPM_ALG.NULL ? undefined : sig.signature.hash;
}

/** Coordinate sizes of the TPM's curves (P-192 … BN P-638), ascending. */
const CURVE_SIZES = [24, 28, 32, 48, 66, 80];

/**
 * The curve size for `raw` when the caller gave none: a TPM may drop leading zero bytes of r
 * or s, so the longer of the two is rounded up to the next TPM curve size (only both being
 * short by a whole smaller curve's width — odds of 2^-64 at most — could mislead it).
 */
function impliedCurveSize(r: Uint8Array, s: Uint8Array): number {
  const longer = Math.max(r.length, s.length);
  return CURVE_SIZES.find((n) => n >= longer) ?? longer;
}

/**
 * `curve` (for `raw` ECC signatures): the curve's coordinate size in bytes, or the signing
 * key's public area; without it the size is inferred from r and s.
 */
export function formatSignature(sig: TPMT_SIGNATURE, format: SignatureFormat, curve?: number | TPMT_PUBLIC): Uint8Array {
  if (format === 'tss') return encode(TPMT_SIGNATURE, sig);
  const a = TPM_ALG;
  if (sig.sigAlg === a.RSASSA || sig.sigAlg === a.RSAPSS) return sig.signature.sig.slice();
  if (sig.sigAlg === a.ECDSA || sig.sigAlg === a.ECDAA || sig.sigAlg === a.SM2 || sig.sigAlg === a.ECSCHNORR) {
    const { signatureR: r, signatureS: s } = sig.signature;
    if (format === 'raw') {
      const size = curveSizeOf(curve) ?? impliedCurveSize(r, s);
      const out = new Uint8Array(2 * size);
      if (r.length > size || s.length > size) throw new KeyFormatError('ECDSA r or s is longer than the curve size');
      out.set(r, size - r.length);
      out.set(s, 2 * size - s.length);
      return out;
    }
    return ecdsaSigValue(r, s);
  }
  throw new KeyFormatError(`a signature of algorithm 0x${sig.sigAlg.toString(16)} has no ${format} form`);
}

function curveSizeOf(curve: number | TPMT_PUBLIC | undefined): number | undefined {
  if (curve === undefined || typeof curve === 'number') return curve;
  if (curve.type !== TPM_ALG.ECC) throw new KeyFormatError('the key given for the curve size is not an ECC key');
  const id = curve.parameters.curveID;
  const size = CURVES[id]?.size;
  if (size === undefined) throw new KeyFormatError(`ECC curve 0x${id.toString(16)} has no known size here`);
  return size;
}
