/**
 * Software verification of a TPM signature with node:crypto — what a verifier does with the
 * PEM and the plain signature; used by tests, the demo and the service's self-checks.
 */
import { createPublicKey, createVerify, verify, constants, type KeyObject } from 'node:crypto';
import { NODE_HASH, TPM_ALG } from '../constants.js';
import type { TPMT_PUBLIC, TPMT_SIGNATURE } from '../structures.js';
import { publicToSpkiDer } from './public.js';
import { formatSignature, signatureHash } from './signature.js';

/** A message too large to hold: chunks from a stream, a generator, … */
export type MessageChunks = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

/**
 * Verifies `sig` over `message` (hashed here with the signature's hash) with the key `pub`.
 * A byte array gives the answer at once; a stream or iterable is hashed chunk by chunk (never
 * held whole) and gives a promise.
 */
export function verifyMessageSignature(pub: TPMT_PUBLIC, message: Uint8Array, sig: TPMT_SIGNATURE): boolean;
export function verifyMessageSignature(pub: TPMT_PUBLIC, message: MessageChunks, sig: TPMT_SIGNATURE): Promise<boolean>;
export function verifyMessageSignature(pub: TPMT_PUBLIC, message: Uint8Array | MessageChunks, sig: TPMT_SIGNATURE): boolean | Promise<boolean> {
  const hash = signatureHash(sig);
  const name = hash === undefined ? undefined : NODE_HASH[hash];
  if (message instanceof Uint8Array) {
    if (!name) return false;
    const key = createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' });
    const bytes = formatSignature(sig, 'der');
    return verify(name, message, verifyKey(key, sig), bytes);
  }
  return verifyChunks(pub, message, sig, name);
}

function verifyKey(key: KeyObject, sig: TPMT_SIGNATURE): KeyObject | { key: KeyObject; padding: number; saltLength: number } {
  return sig.sigAlg === TPM_ALG.RSAPSS ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO } : key;
}

async function verifyChunks(pub: TPMT_PUBLIC, message: MessageChunks, sig: TPMT_SIGNATURE, name: string | undefined): Promise<boolean> {
  if (!name) return false;
  const key = createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' });
  const v = createVerify(name);
  for await (const piece of message) v.update(typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece);
  return v.verify(verifyKey(key, sig), formatSignature(sig, 'der'));
}
