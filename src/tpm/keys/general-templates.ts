/**
 * Templates of application keys beyond the AK (issue 12):
 * - the service's own storage primary (owner hierarchy, ECC P-256, AES-128-CFB) whose `unique`
 *   carries a label, so it is a key of its own: never EVE's SRK (0x81000002, the default RSA
 *   template with an empty unique) nor any other primary made from a default template;
 * - an app's storage parent: restricted decrypt, AES-128-CFB, an ordinary child (its seed is
 *   random, kept only in its wrapped blob), so losing the blob loses every key under it;
 * - general keys: non-restricted sign or decrypt keys, RSA-2048/3072 or ECC P-256/P-384, always
 *   fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth (empty auth; never exportable).
 */
import { TPM_ALG, TPM_ECC, objectAttrs } from '../constants.js';
import { hashAlgOf, type EccPublic, type RsaPublic, type TPMT_SYM_DEF_OBJECT, type TpmiAlgHash } from '../structures.js';

/** The label in the service primary's unique.x: 32 bytes, the P-256 coordinate size. */
export const SERVICE_PRIMARY_UNIQUE = new TextEncoder().encode('eve-tpm-tools app-parent primary');

/** A storage key: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt (0x00030472). */
export const STORAGE_KEY_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'noDA', 'restricted', 'decrypt');

/** A general signing key: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|sign (0x00040072). */
export const GENERAL_SIGN_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'sign');

/** A general decryption key: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|decrypt (0x00020072). */
export const GENERAL_DECRYPT_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'decrypt');

const AES128_CFB: TPMT_SYM_DEF_OBJECT = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
const NO_SYM: TPMT_SYM_DEF_OBJECT = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null };
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as const;

function storageEcc(unique: Uint8Array): EccPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: STORAGE_KEY_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: NULL_SCHEME, curveID: TPM_ECC.NIST_P256, kdf: NULL_SCHEME },
    unique: { x: unique, y: new Uint8Array(0) },
  };
}

/** The service's storage primary (CreatePrimary under TPM_RH_OWNER): derived, the same key every time. */
export function servicePrimaryTemplate(): EccPublic {
  return storageEcc(SERVICE_PRIMARY_UNIQUE.slice());
}

/** An app's storage parent (TPM2_Create under the service primary): random, lives only in its blob. */
export function appParentTemplate(): EccPublic {
  return storageEcc(new Uint8Array(0));
}

export type GeneralKeyUsage = 'sign' | 'decrypt';
export type RsaBits = 2048 | 3072;
export type EccCurve = 'P-256' | 'P-384';
export type SignScheme = 'rsassa' | 'rsapss' | 'ecdsa';
export type DecryptScheme = 'oaep' | 'ecdh';

/**
 * What a general key is, as a discriminated union: the usage fixes which schemes exist, so a
 * decrypt key with a signing scheme (or the reverse) does not type-check.
 */
export type GeneralKeySpec =
  | { type: 'rsa'; usage: 'sign'; scheme: 'rsassa' | 'rsapss'; bits?: RsaBits; hashAlg?: number }
  | { type: 'rsa'; usage: 'decrypt'; scheme: 'oaep'; bits?: RsaBits; hashAlg?: number }
  | { type: 'ecc'; usage: 'sign'; scheme: 'ecdsa'; curve?: EccCurve; hashAlg?: number }
  | { type: 'ecc'; usage: 'decrypt'; scheme: 'ecdh'; curve?: EccCurve; hashAlg?: number };

export class KeySpecError extends Error {
  override readonly name = 'KeySpecError';
}

const SCHEME_ALG = { rsassa: TPM_ALG.RSASSA, rsapss: TPM_ALG.RSAPSS, ecdsa: TPM_ALG.ECDSA, oaep: TPM_ALG.OAEP, ecdh: TPM_ALG.ECDH } as const;
const VALID: Record<string, Record<string, readonly string[]>> = {
  rsa: { sign: ['rsassa', 'rsapss'], decrypt: ['oaep'] },
  ecc: { sign: ['ecdsa'], decrypt: ['ecdh'] },
};
const CURVE_ID = { 'P-256': TPM_ECC.NIST_P256, 'P-384': TPM_ECC.NIST_P384 } as const;

/** Checks a spec from a plain-JS caller (or a request) as the types do: each refusal says why. */
export function assertGeneralKeySpec(spec: unknown): asserts spec is GeneralKeySpec {
  const s: Record<string, unknown> = typeof spec === 'object' && spec !== null ? { ...spec } : {};
  const byType = VALID[String(s.type)];
  if (!byType || (s.type !== 'rsa' && s.type !== 'ecc')) throw new KeySpecError(`unknown key type ${JSON.stringify(s.type)}: expected 'rsa' or 'ecc'`);
  const schemes = byType[String(s.usage)];
  if (!schemes || (s.usage !== 'sign' && s.usage !== 'decrypt')) throw new KeySpecError(`unknown key usage ${JSON.stringify(s.usage)}: expected 'sign' or 'decrypt'`);
  if (!schemes.includes(String(s.scheme))) {
    throw new KeySpecError(`scheme ${JSON.stringify(s.scheme)} does not fit a ${s.type} ${s.usage} key: expected ${schemes.map((x) => `'${x}'`).join(' or ')}`);
  }
  if (s.type === 'rsa' && s.bits !== undefined && s.bits !== 2048 && s.bits !== 3072) throw new KeySpecError(`RSA key size ${JSON.stringify(s.bits)}: expected 2048 or 3072`);
  if (s.type === 'ecc' && s.curve !== undefined && s.curve !== 'P-256' && s.curve !== 'P-384') throw new KeySpecError(`curve ${JSON.stringify(s.curve)}: expected 'P-256' or 'P-384'`);
  if (s.type === 'rsa' && 'curve' in s && s.curve !== undefined) throw new KeySpecError('an RSA key has no curve');
  if (s.type === 'ecc' && 'bits' in s && s.bits !== undefined) throw new KeySpecError('an ECC key has no bits (its size is the curve)');
}

/** The TPMT_PUBLIC of a general key; a bad spec is a KeySpecError, a bad hash a TpmEncodeError. */
export function generalKeyTemplate(spec: GeneralKeySpec): RsaPublic | EccPublic {
  assertGeneralKeySpec(spec);
  const hashAlg: TpmiAlgHash = hashAlgOf(spec.hashAlg ?? TPM_ALG.SHA256, 'TPMT_PUBLIC.parameters.scheme.details.hashAlg');
  const objectAttributes = spec.usage === 'sign' ? GENERAL_SIGN_ATTRIBUTES : GENERAL_DECRYPT_ATTRIBUTES;
  const base = { nameAlg: TPM_ALG.SHA256, objectAttributes, authPolicy: new Uint8Array(0) };
  if (spec.type === 'rsa') {
    const scheme = { scheme: SCHEME_ALG[spec.scheme], details: { hashAlg } };
    return { ...base, type: TPM_ALG.RSA, parameters: { symmetric: NO_SYM, scheme, keyBits: spec.bits ?? 2048, exponent: 0 }, unique: new Uint8Array(0) };
  }
  const scheme = { scheme: SCHEME_ALG[spec.scheme], details: { hashAlg } };
  return {
    ...base,
    type: TPM_ALG.ECC,
    parameters: { symmetric: NO_SYM, scheme, curveID: CURVE_ID[spec.curve ?? 'P-256'], kdf: NULL_SCHEME },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}
