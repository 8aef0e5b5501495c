/**
 * Decryption with a general decrypt key: RSA-OAEP (TPM2_RSA_Decrypt) and ECDH (TPM2_ECDH_ZGen).
 *
 * OAEP label (Part 3 §14.2.1, referred to by §14.3): a label, if present, must be a
 * NULL-terminated string (TPM_RC_VALUE otherwise), and the zero is part of the label hashed. A string label is therefore
 * sent as its UTF-8 bytes plus a zero (as `tpm2_rsadecrypt -l` does): an encrypter must use
 * the same bytes (`openssl pkeyutl -pkeyopt rsa_oaep_label:<hex of label>00`).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ECDH_ZGen, RSA_Decrypt } from '../commands.js';
import { TPM_ALG } from '../constants.js';
import type { TPMS_ECC_POINT } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { CURVES } from '../keys/public.js';
import { assertKeyUsage, KeyUsageError, type LoadedKey } from './general-keys.js';

/** TPM2B_DATA holds 66 octets (sizeof(TPMT_HA)): the longest label, zero included. */
export const OAEP_LABEL_MAX = 66;

export class DecryptInputError extends Error {
  override readonly name = 'DecryptInputError';
}

/** The label's bytes as the TPM takes them: a string gets its zero terminator; bytes must end in one. */
export function oaepLabel(label: Uint8Array | string | undefined): Uint8Array {
  if (label === undefined) return new Uint8Array(0);
  let bytes: Uint8Array;
  if (typeof label === 'string') {
    if (label.includes('\0')) throw new DecryptInputError('a label string must not contain a zero character (the TPM ends it with one)');
    if (label.length === 0) return new Uint8Array(0);
    const utf8 = new TextEncoder().encode(label);
    bytes = new Uint8Array(utf8.length + 1);
    bytes.set(utf8);
  } else {
    bytes = label;
    if (bytes.length > 0 && bytes[bytes.length - 1] !== 0) throw new DecryptInputError('a label given as bytes must end in a zero octet (TPM 2.0 Part 3 §14.2.1: a NULL-terminated string)');
  }
  if (bytes.length > OAEP_LABEL_MAX) throw new DecryptInputError(`the label is ${bytes.length} bytes with its zero; the TPM takes at most ${OAEP_LABEL_MAX}`);
  return bytes;
}

export interface RsaDecryptOptions extends RunOptions {
  /** OAEP label (see oaepLabel). */
  label?: Uint8Array | string;
}

/** TPM2_RSA_Decrypt with the key's own scheme (OAEP with its hash); returns the plaintext. */
export async function rsaDecrypt(tpm: TpmRunner, key: LoadedKey<'decrypt'>, cipherText: Uint8Array, opts: RsaDecryptOptions = {}): Promise<Uint8Array> {
  assertKeyUsage(key, 'decrypt');
  const pub = key.publicArea;
  if (pub.type !== TPM_ALG.RSA) throw new KeyUsageError('RSA decryption needs an RSA key; this one is ECC (use ECDH)');
  // Never raw RSA (scheme NULL) nor PKCS#1 v1.5 (RSAES): only the key's OAEP.
  if (pub.parameters.scheme.scheme !== TPM_ALG.OAEP) throw new KeyUsageError('this key has no OAEP scheme; the library decrypts with OAEP only');
  const size = pub.parameters.keyBits / 8;
  if (cipherText.length !== size) throw new DecryptInputError(`the ciphertext is ${cipherText.length} bytes; an RSA-${pub.parameters.keyBits} ciphertext is ${size}`);
  const label = oaepLabel(opts.label);
  const r = await tpm.run(RSA_Decrypt, { keyHandle: key, cipherText, inScheme: { scheme: TPM_ALG.NULL, details: null }, label }, opts);
  return r.message;
}

/** A peer's public key as the point ECDH_ZGen takes: from a TPMS_ECC_POINT, PEM/DER SPKI or a KeyObject. */
export type PeerKey = TPMS_ECC_POINT | KeyObject | string | Uint8Array;

function peerPoint(peer: PeerKey, curveName: string, size: number): TPMS_ECC_POINT {
  if (!(peer instanceof Uint8Array) && typeof peer === 'object' && 'x' in peer && 'y' in peer && peer.x instanceof Uint8Array) return peer;
  let key: KeyObject;
  try {
    if (typeof peer === 'string') key = createPublicKey(peer);
    else if (peer instanceof Uint8Array) key = createPublicKey({ key: Buffer.from(peer), format: 'der', type: 'spki' });
    else key = (peer as KeyObject).type === 'public' ? (peer as KeyObject) : createPublicKey(peer as KeyObject);
  } catch (e) {
    throw new DecryptInputError(`the peer key is no public key: ${(e as Error).message}`);
  }
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || !jwk.x || !jwk.y) throw new DecryptInputError(`the peer key is no EC key (${key.asymmetricKeyType})`);
  if (jwk.crv !== curveName) throw new DecryptInputError(`the peer key is on ${jwk.crv}; this key is on ${curveName}`);
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  if (x.length !== size || y.length !== size) throw new DecryptInputError(`the peer point's coordinates are not ${size} bytes`);
  return { x: new Uint8Array(x), y: new Uint8Array(y) };
}

/**
 * TPM2_ECDH_ZGen: the shared secret Z (the x coordinate of d·Q, SP 800-56A) of this key and
 * the peer's public key, as `openssl pkeyutl -derive` gives it. A point off the curve is
 * refused by the TPM (TPM_RC_ECC_POINT).
 */
export async function ecdhZGen(tpm: TpmRunner, key: LoadedKey<'decrypt'>, peer: PeerKey, opts: RunOptions = {}): Promise<Uint8Array> {
  assertKeyUsage(key, 'decrypt');
  const pub = key.publicArea;
  if (pub.type !== TPM_ALG.ECC) throw new KeyUsageError('ECDH needs an ECC key; this one is RSA (use RSA decryption)');
  const curve = CURVES[pub.parameters.curveID];
  if (!curve) throw new KeyUsageError(`the key's curve 0x${pub.parameters.curveID.toString(16)} is not one this library names`);
  const inPoint = peerPoint(peer, curve.name, curve.size);
  const r = await tpm.run(ECDH_ZGen, { keyHandle: key, inPoint }, opts);
  if (r.outPoint.x.length > curve.size) throw new DecryptInputError(`the TPM answered a ${r.outPoint.x.length}-byte x for a ${curve.size}-byte curve`);
  const out = new Uint8Array(curve.size); // a TPM may drop leading zero octets
  out.set(r.outPoint.x, curve.size - r.outPoint.x.length);
  return out;
}
