/**
 * Signing a digest the caller computed, with a general (non-restricted) signing key: TPM2_Sign
 * with a NULL ticket (Part 3 §20.2: only a restricted key needs a HASHCHECK ticket) and the
 * key's own scheme. RSASSA-PSS in the reference TPM (and libtpms) uses a salt as long as the
 * digest (FIPS 186-4's limit), which is what a verifier must expect.
 */
import { DIGEST_SIZE, NODE_HASH, TPM_ALG, TPM_RH, TPM_ST } from '../constants.js';
import type { TPMT_SIGNATURE, TPMT_TK_HASHCHECK } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { signDigest, keySchemeHash } from './sign.js';
import { assertKeyUsage, KeyUsageError, type LoadedKey } from './general-keys.js';

/** The ticket of a digest the TPM did not compute: enough for a non-restricted key. */
export const NULL_HASHCHECK: Readonly<TPMT_TK_HASHCHECK> = Object.freeze({ tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) });

export interface DigestSignOptions extends RunOptions {
  /** The digest's hash; must be the key's own (its scheme fixes it). Default: the key's. */
  hashAlg?: number;
}

const hashName = (alg: number): string => NODE_HASH[alg] ?? `0x${alg.toString(16)}`;

/** Signs `digest` with a loaded general signing key (TPM2_Sign, NULL ticket, the key's scheme). */
export async function signDigestWithKey(tpm: TpmRunner, key: LoadedKey<'sign'>, digest: Uint8Array, opts: DigestSignOptions = {}): Promise<TPMT_SIGNATURE> {
  assertKeyUsage(key, 'sign');
  const keyHash = keySchemeHash(key.publicArea);
  if (keyHash === undefined || keyHash === TPM_ALG.NULL) throw new KeyUsageError('the key has no signing scheme of its own');
  if (opts.hashAlg !== undefined && opts.hashAlg !== keyHash) {
    throw new KeyUsageError(`the key signs ${hashName(keyHash)} digests; a ${hashName(opts.hashAlg)} digest is refused`);
  }
  const size = DIGEST_SIZE[keyHash];
  if (digest.length !== size) throw new KeyUsageError(`a ${hashName(keyHash)} digest is ${size} bytes, not ${digest.length}`);
  return signDigest(tpm, key, digest, { ...NULL_HASHCHECK }, opts);
}
