/**
 * What general keys do beyond signing a message (issue 12): sign a digest the caller computed
 * (as tpm2_sign -d), RSA-OAEP decryption and ECDH ZGen. Each is one TPM queue job on the
 * caller's own key (the handler authorized it), with the key's usage checked before the TPM
 * sees a command; refusals say why.
 */
import type { KeyEntry } from './registry.js';
import type { KeyManager } from './keys.js';
import type { KeyRegistry } from './registry.js';
import type { TpmQueue } from '../tpm/queue.js';
import type { Tenant } from '../tenants/tenants.js';
import type { HashName, SignFormat } from '../protocol/params.js';
import type { SignResult } from './keys.js';
import { unsupported } from '../protocol/errors.js';

export interface GeneralOpsDeps {
  queue: TpmQueue;
  registry: KeyRegistry;
  keys: KeyManager;
}

export class GeneralKeyOps {
  constructor(private readonly d: GeneralOpsDeps) {}

  /** TPM2_Sign of `digest` with a general signing key (NULL ticket, the key's scheme). */
  signDigest(_tenant: Tenant, _entry: KeyEntry, _digest: Uint8Array, _hashAlg: HashName, _format: SignFormat, _signal: AbortSignal): Promise<SignResult> {
    void this.d;
    return Promise.reject(unsupported('signing a digest: not implemented yet'));
  }

  /** TPM2_RSA_Decrypt (the key's OAEP) of `ciphertext`. */
  decrypt(_tenant: Tenant, _entry: KeyEntry, _ciphertext: Uint8Array, _label: string | undefined, _signal: AbortSignal): Promise<Uint8Array> {
    return Promise.reject(unsupported('decrypt: not implemented yet'));
  }

  /** TPM2_ECDH_ZGen with the peer's public key (PEM). */
  ecdh(_tenant: Tenant, _entry: KeyEntry, _peerPem: string, _signal: AbortSignal): Promise<Uint8Array> {
    return Promise.reject(unsupported('ecdh: not implemented yet'));
  }
}
