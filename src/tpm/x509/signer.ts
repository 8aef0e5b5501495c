/**
 * A WebCrypto-shaped signer whose private key is in the TPM, for @peculiar/x509's generators
 * (which take a `CryptoKeyPair` and, as their last argument, a `Crypto` provider):
 * - `keys.publicKey` is a real WebCrypto CryptoKey (node:crypto's webcrypto, imported from the
 *   key's SubjectPublicKeyInfo), `keys.privateKey` a CryptoKey-shaped handle of the TPM key;
 * - `crypto.subtle.sign(alg, privateKey, tbs)` calls a callback with the bytes to be signed:
 *   the TPM itself (signerForKey, signerForAk) or anything else (a service call: createSigner).
 * Nothing here sets a global; node:crypto's webcrypto is used, not globalThis.crypto.
 */
import { webcrypto } from 'node:crypto';
import { DIGEST_SIZE, TPM_ALG, type KnownAlg } from '../constants.js';
import { hashAlgOf, type TPMT_PUBLIC, type TPMT_SIGNATURE } from '../structures.js';
import { CURVES, publicToSpkiDer } from '../keys/public.js';
import { formatSignature } from '../keys/signature.js';
import { readEcdsaSigValue } from '../keys/der.js';

type WebCryptoKey = webcrypto.CryptoKey;

export class SignerError extends Error {
  override readonly name = 'SignerError';
}

/** WebCrypto's names of the TPM hashes X.509 signatures use. */
const WEB_HASH: Readonly<Partial<Record<number, string>>> = {
  [TPM_ALG.SHA1]: 'SHA-1',
  [TPM_ALG.SHA256]: 'SHA-256',
  [TPM_ALG.SHA384]: 'SHA-384',
  [TPM_ALG.SHA512]: 'SHA-512',
};

/** The scheme a signer signs with: the key's own, or (for a key with scheme NULL) the caller's. */
export type X509SignScheme = 'rsassa' | 'rsapss' | 'ecdsa';
const SCHEME_ALG: Record<X509SignScheme, KnownAlg> = { rsassa: TPM_ALG.RSASSA, rsapss: TPM_ALG.RSAPSS, ecdsa: TPM_ALG.ECDSA };

/** The algorithm the signer announces (WebCrypto's dictionary, as @peculiar/x509 reads it). */
export interface SignerAlgorithm {
  name: 'RSASSA-PKCS1-v1_5' | 'RSA-PSS' | 'ECDSA';
  hash: { name: string };
  /** RSA-PSS: the TPM's salt length, the digest's (see general-sign.ts). */
  saltLength?: number;
  /** ECDSA: 'P-256' or 'P-384'. */
  namedCurve?: string;
}

/** What a signature callback gets: the bytes to sign (not a digest), and the scheme and hash to use. */
export interface SignRequest {
  data: Uint8Array;
  /** TPM_ALG_RSASSA, _RSAPSS or _ECDSA. */
  scheme: number;
  hashAlg: number;
}

/**
 * Signs `data`: either a TPMT_SIGNATURE, or the signature's plain bytes (RSA: the signature;
 * ECDSA: a DER ECDSA-Sig-Value, what `openssl dgst` makes).
 */
export type SignCallback = (req: SignRequest) => Promise<TPMT_SIGNATURE | Uint8Array>;

export interface TpmSigner {
  /** `keys` for Pkcs10CertificateRequestGenerator / X509CertificateGenerator. */
  readonly keys: { publicKey: WebCryptoKey; privateKey: WebCryptoKey };
  /** `signingAlgorithm` for the same. */
  readonly signingAlgorithm: SignerAlgorithm;
  /** The `crypto` argument for the same: its `subtle.sign` goes to the callback. */
  readonly crypto: webcrypto.Crypto;
  readonly publicArea: TPMT_PUBLIC;
}

export interface SignerOptions {
  /** For a key whose scheme is NULL: the scheme to sign with. Ignored otherwise (the key's own is used). */
  scheme?: X509SignScheme;
  /** For a key whose scheme is NULL: the hash (default SHA-256). */
  hashAlg?: number;
}

/** The key's scheme and hash, and how WebCrypto (and so @peculiar/x509) names them. */
function algorithmOf(pub: TPMT_PUBLIC, opts: SignerOptions): { scheme: number; hashAlg: number; alg: SignerAlgorithm; importAlg: Record<string, unknown> } {
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) throw new SignerError('only RSA and ECC keys sign X.509 objects');
  const own = pub.parameters.scheme;
  const scheme = own.scheme !== TPM_ALG.NULL ? own.scheme : SCHEME_ALG[opts.scheme ?? (pub.type === TPM_ALG.RSA ? 'rsassa' : 'ecdsa')];
  const hashAlg = own.scheme !== TPM_ALG.NULL && own.details && 'hashAlg' in own.details ? own.details.hashAlg : (opts.hashAlg ?? TPM_ALG.SHA256);
  const hashName = WEB_HASH[hashAlg];
  if (!hashName) throw new SignerError(`hash 0x${hashAlg.toString(16)} has no X.509 signature algorithm here (SHA-1/256/384/512)`);
  const hash = { name: hashName };
  if (pub.type === TPM_ALG.RSA) {
    if (scheme === TPM_ALG.RSASSA) return { scheme, hashAlg, alg: { name: 'RSASSA-PKCS1-v1_5', hash }, importAlg: { name: 'RSASSA-PKCS1-v1_5', hash } };
    if (scheme === TPM_ALG.RSAPSS) return { scheme, hashAlg, alg: { name: 'RSA-PSS', hash, saltLength: DIGEST_SIZE[hashAlg]! }, importAlg: { name: 'RSA-PSS', hash } };
    throw new SignerError(`an RSA key with scheme 0x${scheme.toString(16)} does not sign X.509 objects (RSASSA or RSAPSS)`);
  }
  const curve = CURVES[pub.parameters.curveID];
  if (scheme !== TPM_ALG.ECDSA) throw new SignerError(`an ECC key with scheme 0x${scheme.toString(16)} does not sign X.509 objects (ECDSA)`);
  if (!curve || curve.name === 'P-521') throw new SignerError('the key is on a curve this signer does not handle (P-256, P-384)');
  return { scheme, hashAlg, alg: { name: 'ECDSA', hash, namedCurve: curve.name }, importAlg: { name: 'ECDSA', namedCurve: curve.name } };
}

function unsigned(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/** A signature as WebCrypto returns it: RSA bytes, or ECDSA r ‖ s each padded to the curve size. */
function webSignature(sig: TPMT_SIGNATURE | Uint8Array, pub: TPMT_PUBLIC, scheme: number, hashAlg: number): Uint8Array {
  if (sig instanceof Uint8Array) {
    if (scheme !== TPM_ALG.ECDSA) return sig;
    let v: { r: Uint8Array; s: Uint8Array };
    try {
      v = readEcdsaSigValue(sig);
    } catch (e) {
      throw new SignerError(`the ECDSA signature is no DER ECDSA-Sig-Value: ${(e as Error).message}`);
    }
    const sig2: TPMT_SIGNATURE = { sigAlg: TPM_ALG.ECDSA, signature: { hash: hashAlgOf(hashAlg), signatureR: v.r, signatureS: v.s } };
    return webSignature(sig2, pub, scheme, hashAlg);
  }
  if (sig.sigAlg !== scheme) throw new SignerError(`the signature is of scheme 0x${sig.sigAlg.toString(16)}, not the announced 0x${scheme.toString(16)}`);
  if (sig.sigAlg !== TPM_ALG.NULL && sig.signature.hash !== hashAlg) throw new SignerError(`the signature's hash 0x${sig.signature.hash.toString(16)} is not the announced 0x${hashAlg.toString(16)}`);
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    // DER integers may carry a leading zero octet: strip it before padding to the curve size.
    const { signatureR: r, signatureS: s } = sig.signature;
    return formatSignature({ ...sig, signature: { ...sig.signature, signatureR: unsigned(r), signatureS: unsigned(s) } }, 'raw', pub);
  }
  return formatSignature(sig, 'plain');
}

/**
 * A signer for the key `publicArea` whose signatures come from `sign`. The private "key" is an
 * opaque CryptoKey-shaped object: only this signer's `crypto.subtle.sign` accepts it.
 */
export async function createSigner(publicArea: TPMT_PUBLIC, sign: SignCallback, opts: SignerOptions = {}): Promise<TpmSigner> {
  const { scheme, hashAlg, alg, importAlg } = algorithmOf(publicArea, opts);
  const subtle = webcrypto.subtle;
  const publicKey = await subtle.importKey('spki', publicToSpkiDer(publicArea), importAlg as unknown as webcrypto.RsaHashedImportParams, true, ['verify']);
  const privateKey = Object.freeze({ type: 'private', extractable: false, algorithm: { ...publicKey.algorithm, ...alg }, usages: ['sign'] }) as unknown as WebCryptoKey;
  const tpmSubtle = {
    exportKey: (format: 'spki', key: WebCryptoKey) => subtle.exportKey(format, key),
    sign: async (_alg: unknown, key: WebCryptoKey, data: ArrayBuffer | ArrayBufferView): Promise<ArrayBuffer> => {
      if (key !== privateKey) throw new SignerError("this signer signs only with its own TPM key");
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const sig = webSignature(await sign({ data: bytes.slice(), scheme, hashAlg }), publicArea, scheme, hashAlg);
      return sig.slice().buffer;
    },
  };
  const crypto = { subtle: tpmSubtle, getRandomValues: <T extends ArrayBufferView | null>(a: T): T => webcrypto.getRandomValues(a as never) } as unknown as webcrypto.Crypto;
  return { keys: { publicKey, privateKey }, signingAlgorithm: alg, crypto, publicArea };
}
