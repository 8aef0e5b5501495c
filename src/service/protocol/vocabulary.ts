/**
 * The value vocabulary of the service API (docs/API.md): key types, hashes and output formats,
 * with their TPM_ALG_IDs (TCG Algorithm Registry). One definition for the server (params.ts),
 * the client and the tools (cli/args.ts); no dependencies, so the tools can bundle it.
 */
export type KeyType = 'rsa' | 'ecc';
export type HashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export type SignFormat = 'plain' | 'der' | 'tss';
export type PublicFormat = 'pem' | 'der' | 'tss';

export const KEY_ALG: Readonly<Record<KeyType, number>> = { rsa: 0x0001, ecc: 0x0023 };
export const HASH_ALG: Readonly<Record<HashName, number>> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
export const SIGN_FORMATS: readonly SignFormat[] = ['plain', 'der', 'tss'];
export const PUBLIC_FORMATS: readonly PublicFormat[] = ['pem', 'der', 'tss'];
