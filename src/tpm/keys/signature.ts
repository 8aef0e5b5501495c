/**
 * A TPMT_SIGNATURE in the forms users need:
 * - `plain`: what `openssl dgst -verify` takes — raw RSASSA/RSAPSS bytes; DER ECDSA-Sig-Value for ECDSA;
 * - `der`: same as plain (DER for ECC, the raw integer string for RSA, which has no DER wrapper);
 * - `raw`: RSA bytes, or r ‖ s each padded to the curve size (IEEE P1363, WebCrypto);
 * - `tss`: the marshalled TPMT_SIGNATURE, as tpm2_sign writes by default.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { TPM_ALG } from '../constants.js';
import { TPMT_SIGNATURE } from '../structures.js';
import { encode } from '../wire/codec.js';
import { KeyFormatError } from './public.js';

export type SignatureFormat = 'plain' | 'der' | 'raw' | 'tss';
export const SIGNATURE_FORMATS: readonly SignatureFormat[] = ['plain', 'der', 'raw', 'tss'];

const RSA_SIGS = new Set<number>([TPM_ALG.RSASSA, TPM_ALG.RSAPSS]);
const ECC_SIGS = new Set<number>([TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR]);

function positiveInteger(b: Uint8Array): ArrayBuffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const t = b.subarray(i);
  const pad = (t[0] ?? 0) >= 0x80 ? 1 : 0;
  const out = new Uint8Array(t.length + pad);
  out.set(t, pad);
  return out.buffer;
}

/** The signature's hash algorithm (TPM_ALG_ID), or undefined for NULL. */
export function signatureHash(sig: TPMT_SIGNATURE): number | undefined {
  const s = sig.signature as { hash?: number; hashAlg?: number } | null;
  return s?.hash ?? s?.hashAlg;
}

export function formatSignature(sig: TPMT_SIGNATURE, format: SignatureFormat, curveSize?: number): Uint8Array {
  if (format === 'tss') return encode(TPMT_SIGNATURE, sig);
  if (RSA_SIGS.has(sig.sigAlg)) return (sig.signature as { sig: Uint8Array }).sig.slice();
  if (ECC_SIGS.has(sig.sigAlg)) {
    const { signatureR: r, signatureS: s } = sig.signature as { signatureR: Uint8Array; signatureS: Uint8Array };
    if (format === 'raw') {
      const size = curveSize ?? Math.max(r.length, s.length);
      const out = new Uint8Array(2 * size);
      if (r.length > size || s.length > size) throw new KeyFormatError('ECDSA r or s is longer than the curve size');
      out.set(r, size - r.length);
      out.set(s, 2 * size - s.length);
      return out;
    }
    const der = new ECDSASigValue({ r: positiveInteger(r), s: positiveInteger(s) });
    return new Uint8Array(AsnConvert.serialize(der));
  }
  throw new KeyFormatError(`a signature of algorithm 0x${sig.sigAlg.toString(16)} has no ${format} form`);
}
