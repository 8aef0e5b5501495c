/**
 * The members of attestation requests, parsed strictly: a nonce is even-length hex of 1–64
 * bytes, bind a JSON boolean, an EK type rsa or ecc. Anything else is a 400 naming the member.
 */
import { BOUND_NONCE_MAX, BOUND_NONCE_MIN } from '../../tpm/index.js';
import { describeValue } from '../protocol/describe-value.js';
import { badRequest } from '../protocol/errors.js';
import type { KeyType } from '../protocol/vocabulary.js';

export function parseNonce(v: unknown): Uint8Array {
  if (v === undefined) throw badRequest('field "nonce" is required (hex, 1–64 bytes): no nonce, no attestation');
  if (typeof v !== 'string') throw badRequest(`nonce must be a hex string, not ${describeValue(v)}`);
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(v)) throw badRequest('nonce must be hex digits, an even number of them');
  const n = v.length / 2;
  if (n < BOUND_NONCE_MIN || n > BOUND_NONCE_MAX) throw badRequest(`nonce has ${n} bytes; it must have ${BOUND_NONCE_MIN}–${BOUND_NONCE_MAX}`);
  return new Uint8Array(Buffer.from(v, 'hex'));
}

export function parseBind(v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw badRequest(`bind must be true or false, not ${describeValue(v)}`);
  return v;
}

/** The EK's type: `rsa` (default) or `ecc`, as tpm2_createek -G spells them. */
export function parseEkType(v: unknown): KeyType {
  if (v === undefined) return 'rsa';
  if (v === 'rsa' || v === 'ecc') return v;
  throw badRequest(`type must be rsa or ecc, not ${describeValue(v)}`);
}

/** The text of a required string member. */
export function requiredString(v: unknown, what: string, hint: string): string {
  if (v === undefined) throw badRequest(`field "${what}" is required (${hint})`);
  if (typeof v !== 'string') throw badRequest(`${what} must be a string (${hint}), not ${describeValue(v)}`);
  return v;
}
