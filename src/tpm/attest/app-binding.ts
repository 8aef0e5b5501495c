/**
 * Binding an attestation to the app that asked for it (docs/ATTESTATION.md). The TPM signs
 * whatever qualifying data it is given; the service gives it, instead of the caller's nonce,
 *
 *     SHA-256(label ‖ 0x00 ‖ identity ‖ 0x00 ‖ nonce)
 *
 * where identity is what the service knows of the caller (its tenant id, and `/cid=N` when the
 * tenant is bound to a vsock CID) and label says what was attested: `EVE-APP` (the app's own
 * key quoted or certified) or `EVE-APP-KEY` (the device's key certified the app's key). A
 * verifier that knows which app it talks to recomputes the value from its own nonce.
 *
 * The two zero octets make the encoding unambiguous: an identity never contains one, so no
 * (identity, nonce) pair can be read as another — without them app "a1" asking with nonce
 * "1" ‖ N would produce app "a11"'s value for nonce N. The labels differ in the octet after
 * "EVE-APP" ('-' versus 0x00), so the two uses never collide either.
 */
import { createHash } from 'node:crypto';

export type AppBindingLabel = 'EVE-APP' | 'EVE-APP-KEY';

export const APP_BINDING_LABELS: readonly AppBindingLabel[] = ['EVE-APP', 'EVE-APP-KEY'];

/** The nonce sizes a bound attestation accepts (the result is always 32 bytes). */
export const BOUND_NONCE_MIN = 1;
export const BOUND_NONCE_MAX = 64;

export class AppBindingError extends Error {
  override readonly name = 'AppBindingError';
}

/** The app identity of a tenant: `id`, or `id/cid=N` when it is bound to a vsock CID. */
export function appIdentity(tenantId: string, cid?: number): string {
  if (typeof tenantId !== 'string' || tenantId.length === 0) throw new AppBindingError('app identity: the tenant id is empty');
  if (cid !== undefined && (!Number.isInteger(cid) || cid < 0 || cid > 0xffffffff)) throw new AppBindingError(`app identity: CID ${String(cid)} is not a UINT32`);
  const id = cid === undefined ? tenantId : `${tenantId}/cid=${cid}`;
  checkIdentity(id);
  return id;
}

function checkIdentity(identity: unknown): asserts identity is string {
  if (typeof identity !== 'string' || identity.length === 0) throw new AppBindingError('app identity is required (a non-empty string)');
  if (identity.includes('\0')) throw new AppBindingError('app identity must not contain a zero character');
  if (Buffer.byteLength(identity, 'utf8') > 256) throw new AppBindingError('app identity is longer than 256 bytes');
}

/** SHA-256(label ‖ 0x00 ‖ identity ‖ 0x00 ‖ nonce): the qualifying data of an app-bound attestation. */
export function appQualifyingData(label: AppBindingLabel, identity: string, nonce: Uint8Array): Uint8Array {
  if (!APP_BINDING_LABELS.includes(label)) throw new AppBindingError(`unknown binding label ${JSON.stringify(label)}: expected EVE-APP or EVE-APP-KEY`);
  checkIdentity(identity);
  if (!(nonce instanceof Uint8Array) || nonce.length < BOUND_NONCE_MIN || nonce.length > BOUND_NONCE_MAX) {
    throw new AppBindingError(`the nonce must be ${BOUND_NONCE_MIN}–${BOUND_NONCE_MAX} bytes`);
  }
  const zero = Buffer.alloc(1);
  const h = createHash('sha256').update(label, 'latin1').update(zero).update(identity, 'utf8').update(zero).update(nonce).digest();
  return new Uint8Array(h.buffer, h.byteOffset, h.length);
}
