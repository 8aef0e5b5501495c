/**
 * TPM2_ActivateCredential with the caller's key as the activated object and the RSA EK (the
 * parent `createAk` made the key under) as the decrypting key. The Name inside a credential is
 * encrypted to the EK: only the TPM can check it, by its integrity HMAC. Since the activated
 * object is always the path's key (already authorized as the caller's own), a credential made
 * for any other Name — EVE's AIK, another app's key — fails that check: a 400 saying so.
 */
import { activateCredential, type TpmRunner } from '../../tpm/index.js';
import { withEntryKey } from '../keys/key-in-tpm.js';
import type { JobKey } from './key-jobs.js';

export function activate(tpm: TpmRunner, key: JobKey, credentialBlob: Uint8Array, secret: Uint8Array): Promise<Uint8Array> {
  return withEntryKey(tpm, key.entry, key, (handle) => activateCredential(tpm, { key: handle, ek: 'rsa', credentialBlob, secret }));
}
