/**
 * Credential activation, the TPM's half (Part 3 §12.5 ActivateCredential): the EK recovers the
 * seed a verifier encrypted to it (`makeCredential`), the TPM checks the integrity HMAC over the
 * encrypted identity and the Name of the activated key, and returns the secret. Proves to the
 * verifier that the key named in the credential lives in the TPM holding that EK.
 *
 * The key (an AK as `createAk` makes it, or any loaded/persistent key) is authorized with its
 * empty password (ADMIN role); the EK through PolicySecret(TPM_RH_ENDORSEMENT), as everywhere
 * the library uses the EK.
 */
import { ActivateCredential } from '../commands.js';
import type { HandleArg } from '../command.js';
import type { TpmRunner } from '../tpm.js';
import { TpmError, TPM_RC } from '../rc.js';
import { CredentialError, parseIdObject } from '../attest/make-credential.js';
import { withLoadedKey, type KeyBlobs } from './ak.js';
import { assertKeyType, withEk, type EkOptions, type KeyType } from './ek.js';
import { withEndorsementPolicy } from './session.js';

export interface ActivateCredentialInput {
  /** The key the credential names: its blobs (loaded under the EK, as `createAk` keys) or a loaded or persistent handle. */
  key: KeyBlobs | HandleArg;
  /** The EK the credential was made for (default: `opts.ekType`, else 'rsa'). */
  ek?: KeyType;
  /** TPM2B_ID_OBJECT's buffer. */
  credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET's buffer (the encrypted seed). */
  secret: Uint8Array;
}

function isBlobs(k: unknown): k is KeyBlobs {
  return typeof k === 'object' && k !== null && (k as KeyBlobs).public instanceof Uint8Array && (k as KeyBlobs).private instanceof Uint8Array;
}

/** Explains the TPM's refusals of a credential; other errors pass as they are. */
function explain(e: unknown): unknown {
  if (!(e instanceof TpmError)) return e;
  if (e.is(TPM_RC.INTEGRITY)) {
    return new CredentialError(
      'credential activation refused by the TPM (integrity check failed): the credential was made for another key Name or another EK',
      { cause: e },
    );
  }
  if (e.kind === 'parameter' && e.index === 2) {
    return new CredentialError(`credential activation refused by the TPM: the encrypted seed does not decrypt with this EK (${e.message})`, { cause: e });
  }
  return e;
}

/**
 * TPM2_ActivateCredential: the secret the verifier put in the credential. A credential made for
 * another Name (or another EK) is a CredentialError; nothing stays loaded afterwards.
 * `opts` selects the EK the key's blobs are loaded under (`ekType`, default 'rsa') and carries the
 * endorsement password, if any.
 */
export async function activateCredential(tpm: TpmRunner, input: ActivateCredentialInput, opts: EkOptions = {}): Promise<Uint8Array> {
  if (input === null || typeof input !== 'object') throw new TypeError('activateCredential: expected { key, credentialBlob, secret }');
  const { key, credentialBlob, secret } = input;
  if (!(credentialBlob instanceof Uint8Array)) throw new CredentialError('credentialBlob: expected bytes');
  if (!(secret instanceof Uint8Array) || secret.length === 0) throw new CredentialError('secret: expected the encrypted seed (non-empty bytes)');
  parseIdObject(credentialBlob);
  const ekType = input.ek ?? opts.ekType ?? 'rsa';
  assertKeyType(ekType);
  const activate = (activateHandle: HandleArg): Promise<Uint8Array> =>
    withEk(
      tpm,
      (ek) =>
        withEndorsementPolicy(
          tpm,
          async (auth) => {
            try {
              const r = await tpm.run(ActivateCredential, { activateHandle, keyHandle: ek, credentialBlob, secret }, { ...opts, auth: { keyHandle: auth } });
              return r.certInfo;
            } catch (e) {
              throw explain(e);
            }
          },
          opts,
        ),
      { ...opts, ekType },
    );
  if (isBlobs(key)) return withLoadedKey(tpm, key, (_h, loaded) => activate(loaded), opts);
  if (typeof key === 'number' || (typeof key === 'object' && key !== null && typeof (key as { handle?: unknown }).handle === 'number')) return activate(key);
  throw new TypeError('activateCredential: key must be key blobs ({ public, private }) or a handle');
}
