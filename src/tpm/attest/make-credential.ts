/**
 * MakeCredential in software — the verifier's half of credential activation (TPM 2.0 Part 1 §24
 * "Credential Protection"; Part 3 §12.6 MakeCredential, §12.5 ActivateCredential).
 *
 * The verifier knows the EK's public area and the Name of a key it wants proven to be on that
 * TPM. It picks a seed only the EK can recover (RSA: OAEP with label "IDENTITY"; ECC: one-pass
 * ECDH + KDFe with "IDENTITY") and protects the secret with keys derived from it:
 *
 *   symKey      = KDFa(nameAlg, seed, "STORAGE", name, ∅, EK symmetric keyBits)
 *   encIdentity = AES-CFB(symKey, IV = 0) of TPM2B_DIGEST(secret)
 *   hmacKey     = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digest bits)
 *   outerHMAC   = HMAC_nameAlg(hmacKey, encIdentity ‖ name)
 *   credentialBlob = TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) ‖ encIdentity)
 *
 * (nameAlg is the EK's.) ActivateCredential on the TPM gives the secret back only when the
 * object's Name is `name` and the EK decrypts the seed.
 */
import { createHmac } from 'node:crypto';
import { DIGEST_SIZE, TPM_ALG } from '../constants.js';
import { hashName } from '../command/auth.js';
import { kdfa } from '../session/kdf.js';
import { aesCfb } from '../session/param-crypt.js';
import { makeSeed } from '../session/salt.js';
import type { TPMT_PUBLIC } from '../structures.js';
import { CredentialError, parseIdObject, type Credential } from './credential-file.js';

export {
  CREDENTIAL_FILE_MAGIC,
  CREDENTIAL_FILE_VERSION,
  CredentialError,
  parseIdObject,
  readCredentialFile,
  writeCredentialFile,
  type Credential,
  type IdObject,
} from './credential-file.js';

const LABEL = 'IDENTITY';

/** The EK's nameAlg, digest size and AES key size, or a CredentialError saying what is wrong. */
function ekParams(ekPublic: TPMT_PUBLIC): { nameAlg: number; digestSize: number; keyBits: 128 | 192 | 256 } {
  if (ekPublic === null || typeof ekPublic !== 'object') throw new CredentialError('EK public area: expected a TPMT_PUBLIC');
  if (ekPublic.type !== TPM_ALG.RSA && ekPublic.type !== TPM_ALG.ECC) {
    throw new CredentialError(`EK public area: type 0x${Number(ekPublic.type).toString(16)} cannot protect a credential (RSA or ECC only)`);
  }
  const nameAlg = ekPublic.nameAlg;
  const digestSize = DIGEST_SIZE[nameAlg];
  if (digestSize === undefined) throw new CredentialError(`EK public area: nameAlg 0x${Number(nameAlg).toString(16)} is not a hash we know`);
  const sym = ekPublic.parameters.symmetric;
  if (sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB) {
    throw new CredentialError('EK public area: its symmetric algorithm is not AES-CFB (not a storage key such as the TCG EK)');
  }
  const keyBits = sym.keyBits;
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) throw new CredentialError(`EK public area: AES key size ${String(keyBits)} bits`);
  return { nameAlg, digestSize, keyBits };
}

/** Checks a Name: a hash algorithm and a digest of its size (an object's Name, Part 1 §16). */
function checkName(name: Uint8Array): void {
  if (!(name instanceof Uint8Array)) throw new CredentialError('name: expected bytes');
  if (name.length < 2) throw new CredentialError(`name: ${name.length} octets is not an object Name (algorithm ‖ digest)`);
  const alg = (name[0]! << 8) | name[1]!;
  const size = DIGEST_SIZE[alg];
  if (size === undefined) throw new CredentialError(`name: algorithm 0x${alg.toString(16).padStart(4, '0')} is not a hash we know`);
  if (name.length !== 2 + size) throw new CredentialError(`name: ${name.length - 2} digest octets for algorithm 0x${alg.toString(16).padStart(4, '0')}, expected ${size}`);
}

function checkSecret(secret: Uint8Array, digestSize: number): void {
  if (!(secret instanceof Uint8Array)) throw new CredentialError('secret: expected bytes');
  if (secret.length === 0) throw new CredentialError('secret: empty');
  if (secret.length > digestSize) throw new CredentialError(`secret: ${secret.length} octets, at most ${digestSize} (the EK nameAlg's digest size)`);
}

/**
 * The deterministic part: the credentialBlob (TPM2B_ID_OBJECT's buffer) for a given seed.
 * `makeCredential` picks the seed; this is exposed for known-answer tests.
 */
export function credentialBlobFromSeed(ekPublic: TPMT_PUBLIC, name: Uint8Array, secret: Uint8Array, seed: Uint8Array): Uint8Array {
  const { nameAlg, digestSize, keyBits } = ekParams(ekPublic);
  checkName(name);
  checkSecret(secret, digestSize);
  if (!(seed instanceof Uint8Array) || seed.length !== digestSize) throw new CredentialError(`seed: expected ${digestSize} octets`);
  const plain = new Uint8Array(2 + secret.length);
  new DataView(plain.buffer).setUint16(0, secret.length);
  plain.set(secret, 2);
  const symKey = kdfa(nameAlg, seed, 'STORAGE', name, new Uint8Array(0), keyBits);
  const encIdentity = aesCfb(keyBits, symKey, new Uint8Array(16), plain, true);
  const hmacKey = kdfa(nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), digestSize * 8);
  const outerHmac = createHmac(hashName(nameAlg), hmacKey).update(encIdentity).update(name).digest();
  const blob = new Uint8Array(2 + outerHmac.length + encIdentity.length);
  new DataView(blob.buffer).setUint16(0, outerHmac.length);
  blob.set(outerHmac, 2);
  blob.set(encIdentity, 2 + outerHmac.length);
  return blob;
}

/**
 * MakeCredential for the EK whose public area is `ekPublic`: `secret` (1 to digest-size octets)
 * can be recovered only by ActivateCredential on that EK's TPM with the object named `name`.
 */
export function makeCredential(ekPublic: TPMT_PUBLIC, name: Uint8Array, secret: Uint8Array): Credential {
  const { digestSize } = ekParams(ekPublic);
  checkName(name);
  checkSecret(secret, digestSize);
  let seed: Uint8Array;
  let encryptedSalt: Uint8Array;
  try {
    ({ salt: seed, encryptedSalt } = makeSeed(ekPublic, LABEL));
  } catch (e) {
    throw new CredentialError(`EK public area: cannot encrypt a seed to it (${(e as Error).message})`, { cause: e });
  }
  return { credentialBlob: credentialBlobFromSeed(ekPublic, name, secret, seed), secret: encryptedSalt };
}
