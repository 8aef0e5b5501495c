/**
 * Primaries per app (docs/FIREWALL.md "What is virtualized"): the app's template goes to the
 * chip with the app's record mixed into `unique`. The TPM derives a primary from the hierarchy's
 * seed and the whole template (Part 1 §26.3), so the same template gives the same key for that
 * app across runs, and never EVE's SRK nor another app's primary (that would take a SHA-256
 * preimage). The TPM replaces `unique` with the public key in its answer, so the app sees a
 * normal primary.
 */
import { createHash } from 'node:crypto';
import { TPM_ALG } from '../tpm/constants.js';
import type { TPMT_PUBLIC } from '../tpm/structures.js';
import { encode } from '../tpm/wire/codec.js';
import { TPMT_PUBLIC as TPMT_PUBLIC_CODEC } from '../tpm/structures.js';

const LABEL = 'EVE-APP-PRIMARY';

/** SHA-256("EVE-APP-PRIMARY" ‖ 0 ‖ record ‖ 0 ‖ the app's own unique, marshalled). */
function mixed(record: string, inPublic: TPMT_PUBLIC): Uint8Array {
  const own = encode(TPMT_PUBLIC_CODEC, inPublic);
  return new Uint8Array(createHash('sha256').update(LABEL).update(Uint8Array.of(0)).update(record).update(Uint8Array.of(0)).update(own).digest());
}

/** The template the chip gets for an app's primary: `unique` is the app's own, sized for the key type. */
export function appTemplate(record: string, inPublic: TPMT_PUBLIC): TPMT_PUBLIC {
  const d = mixed(record, inPublic);
  switch (inPublic.type) {
    case TPM_ALG.ECC:
      return { ...inPublic, unique: { x: d, y: new Uint8Array(0) } } as TPMT_PUBLIC;
    default:
      // RSA (entropy for the prime search), KEYEDHASH and SYMCIPHER (a digest): 32 bytes fit all.
      return { ...inPublic, unique: d } as TPMT_PUBLIC;
  }
}
