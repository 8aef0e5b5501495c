/**
 * Salting a session (Part 1 §19.6.10, Annex B.10 / C.6): a random secret that only the TPM can
 * recover is sent in StartAuthSession's encryptedSalt, so the session key depends on something
 * a bus observer never sees.
 *
 * - RSA key: the salt (one digest of the key's nameAlg) is OAEP-encrypted with the key's
 *   nameAlg and the label "SECRET" (NUL included), Part 1 §B.10.3.
 * - ECC key: one-pass ECDH with an ephemeral key; salt = KDFe(nameAlg, Z, "SECRET", Qe.x, Qs.x,
 *   digest bits) and encryptedSalt is the ephemeral public point (TPMS_ECC_POINT), §C.6.1.
 */
import { constants, createPublicKey, diffieHellman, generateKeyPairSync, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { DIGEST_SIZE, TPM_ALG } from '../constants.js';
import { publicToSpkiDer } from '../keys/public.js';
import type { TPMT_PUBLIC } from '../structures.js';
import { hashName } from '../command/auth.js';
import { kdfe } from './kdf.js';

export interface Salt {
  /** The secret, mixed into the session key. */
  salt: Uint8Array;
  /** What StartAuthSession carries (TPM2B_ENCRYPTED_SECRET's buffer). */
  encryptedSalt: Uint8Array;
}

/** A coordinate of a JWK, left-padded to the curve's size. */
function coordinate(jwkValue: string | undefined, size: number): Uint8Array {
  const b = Buffer.from(jwkValue ?? '', 'base64url');
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

const CURVE_SIZE: Readonly<Record<string, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/** A salt encrypted to the public area of a TPM key (an RSA or ECC decryption key such as the EK or an SRK). */
export function makeSalt(tpmKey: TPMT_PUBLIC): Salt {
  return makeSeed(tpmKey, 'SECRET');
}

/**
 * A seed (one digest of the key's nameAlg) that only the TPM key can recover, as for a salt but
 * with another label (Part 1 §24 credential protection uses "IDENTITY"): RSA-OAEP with `label`,
 * or one-pass ECDH + KDFe(nameAlg, Z, label, Qe.x, Qs.x). `salt` is the seed.
 */
export function makeSeed(tpmKey: TPMT_PUBLIC, label: string): Salt {
  const nameAlg = tpmKey.nameAlg;
  const size = DIGEST_SIZE[nameAlg];
  if (size === undefined) throw new Error(`cannot salt a session to a key with nameAlg 0x${nameAlg.toString(16)}`);
  const key: KeyObject = createPublicKey({ key: Buffer.from(publicToSpkiDer(tpmKey)), format: 'der', type: 'spki' });
  if (tpmKey.type === TPM_ALG.RSA) {
    const salt = new Uint8Array(randomBytes(size));
    const encryptedSalt = publicEncrypt(
      { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hashName(nameAlg), oaepLabel: Buffer.from(`${label}\0`, 'latin1') },
      salt,
    );
    return { salt, encryptedSalt: new Uint8Array(encryptedSalt) };
  }
  if (tpmKey.type === TPM_ALG.ECC) {
    const jwk = key.export({ format: 'jwk' });
    const crv = jwk.crv ?? '';
    const n = CURVE_SIZE[crv];
    if (n === undefined) throw new Error(`cannot salt a session to an ECC key on curve ${crv || '(unknown)'}`);
    const eph = generateKeyPairSync('ec', { namedCurve: crv });
    const z = new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: key }));
    const ephJwk = eph.publicKey.export({ format: 'jwk' });
    const ex = coordinate(ephJwk.x, n);
    const ey = coordinate(ephJwk.y, n);
    const salt = kdfe(nameAlg, z, label, ex, coordinate(jwk.x, n), size * 8);
    // TPMS_ECC_POINT: two TPM2B_ECC_PARAMETERs.
    const pt = new Uint8Array(4 + 2 * n);
    const dv = new DataView(pt.buffer);
    dv.setUint16(0, n);
    pt.set(ex, 2);
    dv.setUint16(2 + n, n);
    pt.set(ey, 4 + n);
    return { salt, encryptedSalt: pt };
  }
  throw new Error(`cannot salt a session to a key of type 0x${tpmKey.type.toString(16)} (RSA or ECC only)`);
}
