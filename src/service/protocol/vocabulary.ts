/**
 * The value vocabulary of the service API (docs/API.md): key types, hashes and output formats,
 * with their TPM_ALG_IDs (TCG Algorithm Registry). One definition for the server (params.ts),
 * the client and the tools (cli/args.ts); no dependencies, so the tools can bundle it.
 */
export type KeyType = 'rsa' | 'ecc';
export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export type SignFormat = 'plain' | 'der' | 'tss';
export type PublicFormat = 'pem' | 'der' | 'tss';
/** ak: a restricted signing key under the EK (genaik); general: a non-restricted key under the app's own parent (issue 12). */
export type KeyKind = 'ak' | 'general';
export type KeyUsage = 'sign' | 'decrypt';
/** A key's scheme, fixed when it is made: rsassa/rsapss/ecdsa sign, oaep decrypts (RSA), ecdh agrees (ECC). */
export type KeyScheme = 'rsassa' | 'rsapss' | 'ecdsa' | 'oaep' | 'ecdh';
export type RsaBits = 2048 | 3072;
export type EccCurve = 'P-256' | 'P-384';

export const KEY_ALG: Readonly<Record<KeyType, number>> = { rsa: 0x0001, ecc: 0x0023 };
export const HASH_ALG: Readonly<Record<HashName, number>> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
export const SIGN_FORMATS: readonly SignFormat[] = ['plain', 'der', 'tss'];
export const PUBLIC_FORMATS: readonly PublicFormat[] = ['pem', 'der', 'tss'];
export const KEY_KINDS: readonly KeyKind[] = ['ak', 'general'];
export const KEY_USAGES: readonly KeyUsage[] = ['sign', 'decrypt'];
export const KEY_SCHEMES: readonly KeyScheme[] = ['rsassa', 'rsapss', 'ecdsa', 'oaep', 'ecdh'];
export const RSA_BITS: readonly RsaBits[] = [2048, 3072];
export const ECC_CURVES: readonly EccCurve[] = ['P-256', 'P-384'];
/** The schemes a general key of each type and usage may have; the first is the default. */
export const GENERAL_SCHEMES: Readonly<Record<KeyType, Readonly<Record<KeyUsage, readonly KeyScheme[]>>>> = {
  rsa: { sign: ['rsassa', 'rsapss'], decrypt: ['oaep'] },
  ecc: { sign: ['ecdsa'], decrypt: ['ecdh'] },
};
