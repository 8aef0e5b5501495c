/**
 * Verifying a signature over a message in software, reported like verifyQuote: checks, each
 * with a detail, `ok` only when every check holds, bad input a failed check (fail closed).
 *
 * The signature comes as a TPMT_SIGNATURE or as a file in one of the forms `eve_tools_tpm2_sign`
 * writes (`parseSignature`): `tss` (a marshalled TPMT_SIGNATURE, tpm2_sign's default), `plain`
 * (RSA: the signature bytes; ECDSA: a DER ECDSA-Sig-Value, what openssl takes) and `der` (the
 * same bytes as plain). A plain or der file does not say its scheme or hash: they are the key's.
 */
import { TPM_ALG } from '../constants.js';
import { KeyFormatError } from '../keys/public.js';
import { verifyMessageSignature, type MessageChunks } from '../keys/verify.js';
import { TPMT_SIGNATURE, type TPMT_PUBLIC, type TPMT_SIGNATURE as Signature, type TpmiAlgHash } from '../structures.js';
import { decode } from '../wire/codec.js';
import { keyScheme, schemeMismatch, type AttestCheck } from './verify.js';
import { DerError, readEcdsaSigValue } from '../keys/der.js';

export type SignatureFileFormat = 'tss' | 'plain' | 'der';
export const SIGNATURE_FILE_FORMATS: readonly SignatureFileFormat[] = ['tss', 'plain', 'der'];

export interface SignatureReport {
  /** True only when every check holds. */
  ok: boolean;
  checks: AttestCheck[];
}

export interface VerifySignatureInput {
  /** The signing key's public area; its scheme (if any) is the one the signature must use. */
  publicKey: TPMT_PUBLIC;
  /** The signed message: bytes, or chunks (a stream) for a message too large to hold. */
  message: Uint8Array | MessageChunks;
  /** Decoded, or TPMT_SIGNATURE bytes. */
  signature: Signature | Uint8Array;
}

/**
 * A signature file → TPMT_SIGNATURE. For `plain`/`der` the scheme and hash are the key's (its
 * public area must fix them: a restricted key's always does). Throws KeyFormatError.
 */
export function parseSignature(bytes: Uint8Array, format: SignatureFileFormat, publicKey: TPMT_PUBLIC): Signature {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new KeyFormatError('signature: empty');
  if (format === 'tss') {
    try {
      return decode(TPMT_SIGNATURE, bytes);
    } catch (e) {
      throw new KeyFormatError(`signature: not a TPMT_SIGNATURE (${(e as Error).message})`, { cause: e });
    }
  }
  if (format !== 'plain' && format !== 'der') throw new KeyFormatError(`signature format ${String(format)}: expected tss, plain or der`);
  const ks = publicKey && typeof publicKey === 'object' ? keyScheme(publicKey) : undefined;
  if (!ks) throw new KeyFormatError('signature: a plain or der signature needs a key whose public area fixes its scheme and hash');
  if (ks.scheme === TPM_ALG.RSASSA || ks.scheme === TPM_ALG.RSAPSS) {
    const size = publicKey.type === TPM_ALG.RSA ? publicKey.unique.length : 0;
    if (bytes.length !== size) throw new KeyFormatError(`signature: ${bytes.length} octets; an RSA signature of this key has ${size}`);
    return { sigAlg: ks.scheme, signature: { hash: ks.hashAlg, sig: Uint8Array.from(bytes) } } as Signature;
  }
  if (ks.scheme === TPM_ALG.ECDSA) {
    // Only the exact DER encoding: trailing or re-encodable bytes would make two files one signature.
    let v: { r: Uint8Array; s: Uint8Array };
    try {
      v = readEcdsaSigValue(bytes);
    } catch (e) {
      if (!(e instanceof DerError)) throw e;
      const why = /extra|non-minimal/.test(e.message) ? 'extra or non-canonical octets' : e.message;
      throw new KeyFormatError(`signature: not a DER ECDSA-Sig-Value (${why})`, { cause: e });
    }
    return { sigAlg: TPM_ALG.ECDSA, signature: { hash: ks.hashAlg, signatureR: v.r, signatureS: v.s } } as Signature;
  }
  throw new KeyFormatError(`signature: the key's scheme 0x${ks.scheme.toString(16)} has no plain form here`);
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

/** Verifies a signature over a message; never throws on bad input (a failed check instead). */
export async function verifySignature(input: VerifySignatureInput): Promise<SignatureReport> {
  const checks: AttestCheck[] = [];
  const done = (): SignatureReport => ({ ok: checks.length > 0 && checks.every((c) => c.ok), checks });
  if (input === null || typeof input !== 'object') {
    checks.push({ name: 'input', ok: false, detail: 'signature: no input' });
    return done();
  }
  const { publicKey, message, signature } = input;
  const missing: string[] = [];
  if (publicKey === null || typeof publicKey !== 'object') missing.push('the public key');
  if (message === null || message === undefined || (typeof message !== 'object' && typeof message !== 'function')) missing.push('the message');
  if (!isBytes(signature) && (signature === null || typeof signature !== 'object')) missing.push('the signature');
  if (missing.length > 0) {
    checks.push({ name: 'input', ok: false, detail: `signature: missing ${missing.join(', ')}` });
    return done();
  }
  let sig: Signature;
  try {
    sig = isBytes(signature) ? decode(TPMT_SIGNATURE, signature) : signature;
  } catch (e) {
    checks.push({ name: 'structure', ok: false, detail: `the signature is not a TPMT_SIGNATURE: ${(e as Error).message}` });
    return done();
  }
  const mismatch = schemeMismatch(publicKey, sig);
  if (mismatch !== undefined) {
    checks.push({ name: 'signature', ok: false, detail: mismatch });
    return done();
  }
  let ok = false;
  let detail = 'does not verify over the message with the key';
  try {
    ok = isBytes(message) ? verifyMessageSignature(publicKey, message, sig) : await verifyMessageSignature(publicKey, message, sig);
  } catch (e) {
    detail = `cannot be verified: ${(e as Error).message}`;
  }
  checks.push({ name: 'signature', ok, detail: ok ? 'verifies over the message with the key' : detail });
  return done();
}
