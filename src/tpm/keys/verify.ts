/**
 * Software verification of a TPM signature with node:crypto — what a verifier does with the
 * PEM and the plain signature; used by tests, the demo and the service's self-checks.
 */
import { createPublicKey, verify, constants } from 'node:crypto';
import { NODE_HASH, TPM_ALG } from '../constants.js';
import type { TPMT_PUBLIC, TPMT_SIGNATURE } from '../structures.js';
import { publicToSpkiDer } from './public.js';
import { formatSignature, signatureHash } from './signature.js';

/** Verifies `sig` over `message` (hashed here with the signature's hash) with the key `pub`. */
export function verifyMessageSignature(pub: TPMT_PUBLIC, message: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  const hash = signatureHash(sig);
  const name = hash === undefined ? undefined : NODE_HASH[hash];
  if (!name) return false;
  const key = createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' });
  const bytes = formatSignature(sig, 'der');
  if (sig.sigAlg === TPM_ALG.RSAPSS) {
    return verify(name, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, bytes);
  }
  return verify(name, message, key, bytes);
}
