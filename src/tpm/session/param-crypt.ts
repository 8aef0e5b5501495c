/**
 * Parameter encryption (Part 1 §21): the data of the first TPM2B parameter of a command
 * (decrypt attribute) or response (encrypt attribute) is encrypted with a key derived from the
 * session by KDFa. The size field stays in the clear.
 *
 * - AES in CFB mode (§21.3): KDFa(authHash, sessionValue, "CFB", nonceNewer, nonceOlder,
 *   keyBits + 128) gives the key then the IV.
 * - XOR obfuscation (§21.2): the data XORed with KDFa(hash, sessionValue, "XOR", nonceNewer,
 *   nonceOlder, 8·size).
 *
 * In a command nonceNewer is nonceCaller and nonceOlder nonceTPM; in a response the reverse.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { TPM_ALG } from '../constants.js';
import type { TPMT_SYM_DEF, TpmiAlgHash } from '../structures.js';
import { kdfa } from './kdf.js';

/** The symmetric algorithm of a session (TPMT_SYM_DEF, restricted to what we implement). */
export type SessionCipher = { readonly alg: 'aes'; readonly keyBits: 128 | 192 | 256 } | { readonly alg: 'xor'; readonly hashAlg: TpmiAlgHash };

/** The TPMT_SYM_DEF value StartAuthSession takes for a cipher (or none). */
export function symDefOf(c: SessionCipher | undefined): TPMT_SYM_DEF {
  if (!c) return { algorithm: TPM_ALG.NULL, keyBits: null, mode: null };
  if (c.alg === 'xor') return { algorithm: TPM_ALG.XOR, keyBits: c.hashAlg, mode: null };
  return { algorithm: TPM_ALG.AES, keyBits: c.keyBits, mode: TPM_ALG.CFB };
}

/** Encrypts (`encrypt` true) or decrypts `data`; returns a new array of the same size. */
export function paramCrypt(
  c: SessionCipher,
  authHash: number,
  sessionValue: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
  data: Uint8Array,
  encrypt: boolean,
): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  if (c.alg === 'xor') {
    const mask = kdfa(c.hashAlg, sessionValue, 'XOR', nonceNewer, nonceOlder, data.length * 8);
    const out = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ mask[i]!;
    return out;
  }
  const keyBytes = c.keyBits / 8;
  const keyIv = kdfa(authHash, sessionValue, 'CFB', nonceNewer, nonceOlder, c.keyBits + 128);
  return aesCfb(c.keyBits, keyIv.subarray(0, keyBytes), keyIv.subarray(keyBytes), data, encrypt);
}

/** AES in CFB mode (full-block feedback, as the TPM's CFB): `key` of keyBits/8 octets, 16-octet `iv`. */
export function aesCfb(keyBits: 128 | 192 | 256, key: Uint8Array, iv: Uint8Array, data: Uint8Array, encrypt: boolean): Uint8Array {
  if (key.length * 8 !== keyBits) throw new RangeError(`AES-${keyBits}: key of ${key.length} octets`);
  if (iv.length !== 16) throw new RangeError(`AES-CFB: IV of ${iv.length} octets, expected 16`);
  const algo = `aes-${keyBits}-cfb`;
  const cipher = encrypt ? createCipheriv(algo, key, iv) : createDecipheriv(algo, key, iv);
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]));
}
