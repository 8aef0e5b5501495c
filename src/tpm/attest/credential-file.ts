/**
 * A credential as it travels (TPM 2.0 Part 1 §24; Part 3 §12.5 ActivateCredential): its two
 * parts, TPMS_ID_OBJECT split strictly, and the file `tpm2_makecredential -o` writes. Apart
 * from make-credential.ts (the verifier's cryptography), so that the container tools can read
 * a credential file without bundling MakeCredential and its ASN.1 code.
 */
import { TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT } from '../structures.js';
import { decode, encode } from '../wire/codec.js';

/** A bad input to MakeCredential or a malformed credential file. */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
}

export interface Credential {
  /** TPM2B_ID_OBJECT's buffer (what ActivateCredential's credentialBlob carries). */
  credentialBlob: Uint8Array;
  /** TPM2B_ENCRYPTED_SECRET's buffer: the seed encrypted to the EK. */
  secret: Uint8Array;
}

/** TPMS_ID_OBJECT split in its two parts. */
export interface IdObject {
  integrityHMAC: Uint8Array;
  /** The encrypted TPM2B_DIGEST (size octets included, encrypted too). */
  encIdentity: Uint8Array;
}

/** Splits a TPMS_ID_OBJECT (TPM2B_ID_OBJECT's buffer) strictly. */
export function parseIdObject(blob: Uint8Array): IdObject {
  if (!(blob instanceof Uint8Array) || blob.length < 2) throw new CredentialError('credentialBlob: too short for TPMS_ID_OBJECT');
  const n = (blob[0]! << 8) | blob[1]!;
  if (n === 0 || 2 + n > blob.length) throw new CredentialError(`credentialBlob: integrityHMAC of ${n} octets does not fit in ${blob.length - 2}`);
  const encIdentity = blob.subarray(2 + n);
  if (encIdentity.length < 2) throw new CredentialError('credentialBlob: no encIdentity after integrityHMAC');
  return { integrityHMAC: new Uint8Array(blob.subarray(2, 2 + n)), encIdentity: new Uint8Array(encIdentity) };
}

// ---------------------------------------------------------------- tpm2_makecredential's file

/** The header tpm2-tools writes before the credential: magic 0xBADCC0DE, version 1 (both UINT32 BE). */
export const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;
export const CREDENTIAL_FILE_VERSION = 1;

/** The file `tpm2_makecredential -o` writes: header ‖ TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET. */
export function writeCredentialFile(cred: Credential): Uint8Array {
  const blob = encode(TPM2B_ID_OBJECT, cred.credentialBlob);
  const secret = encode(TPM2B_ENCRYPTED_SECRET, cred.secret);
  const out = new Uint8Array(8 + blob.length + secret.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, CREDENTIAL_FILE_MAGIC);
  dv.setUint32(4, CREDENTIAL_FILE_VERSION);
  out.set(blob, 8);
  out.set(secret, 8 + blob.length);
  return out;
}

/** Reads that file strictly: wrong magic, version, sizes or trailing octets are CredentialErrors. */
export function readCredentialFile(bytes: Uint8Array): Credential {
  if (!(bytes instanceof Uint8Array)) throw new CredentialError('credential file: expected bytes');
  if (bytes.length < 8) throw new CredentialError(`credential file: ${bytes.length} octets, too short for its header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== CREDENTIAL_FILE_MAGIC) throw new CredentialError(`credential file: magic 0x${magic.toString(16).padStart(8, '0')}, expected 0xbadcc0de (tpm2_makecredential's)`);
  const version = dv.getUint32(4);
  if (version !== CREDENTIAL_FILE_VERSION) throw new CredentialError(`credential file: version ${version}, only version 1 is known`);
  let off = 8;
  const sized = (what: string): Uint8Array => {
    if (off + 2 > bytes.length) throw new CredentialError(`credential file: truncated before ${what}`);
    const n = dv.getUint16(off);
    if (off + 2 + n > bytes.length) throw new CredentialError(`credential file: ${what} of ${n} octets is truncated`);
    const b = bytes.subarray(off, off + 2 + n);
    off += 2 + n;
    return b;
  };
  let credentialBlob: Uint8Array;
  let secret: Uint8Array;
  try {
    credentialBlob = decode(TPM2B_ID_OBJECT, sized('TPM2B_ID_OBJECT'));
    secret = decode(TPM2B_ENCRYPTED_SECRET, sized('TPM2B_ENCRYPTED_SECRET'));
  } catch (e) {
    if (e instanceof CredentialError) throw e;
    throw new CredentialError(`credential file: ${(e as Error).message}`, { cause: e });
  }
  if (off !== bytes.length) throw new CredentialError(`credential file: ${bytes.length - off} trailing octets`);
  parseIdObject(credentialBlob);
  if (secret.length === 0) throw new CredentialError('credential file: empty encrypted secret');
  return { credentialBlob: new Uint8Array(credentialBlob), secret: new Uint8Array(secret) };
}
