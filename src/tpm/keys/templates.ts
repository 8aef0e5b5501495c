/**
 * Key templates (TPMT_PUBLIC values to create keys from).
 *
 * EK: TCG EK Credential Profile for TPM Family 2.0, templates L-1 (RSA 2048) and L-2 (ECC
 * NIST P-256): adminWithPolicy with "policy A" = PolicySecret(TPM_RH_ENDORSEMENT), zeroed
 * unique fields, so every TPM derives the same EK from its endorsement seed.
 * AK: restricted signing keys as `tpm2_createak` makes them (RSASSA-SHA256 / ECDSA-SHA256).
 */
import { TPM_ALG, TPM_ECC, objectAttrs } from '../constants.js';
import { hashAlgOf, type EccPublic, type RsaPublic, type TPMT_PUBLIC, type TPMT_SYM_DEF_OBJECT } from '../structures.js';

/** TPM2_PolicySecret(TPM_RH_ENDORSEMENT) digest, SHA-256 ("policy A" of the EK profile). */
export const EK_POLICY_A_SHA256 = Uint8Array.from(
  Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex'),
);

/** fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt = 0x000300b2. */
export const EK_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'adminWithPolicy', 'restricted', 'decrypt');

/** fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign = 0x00050072. */
export const AK_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'restricted', 'sign');

/** A storage root key as tpm2-tools' default primary: 0x00030472 (…|userWithAuth|noDA|restricted|decrypt). */
export const SRK_ATTRIBUTES = objectAttrs.of('fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'userWithAuth', 'noDA', 'restricted', 'decrypt');

const AES128_CFB: TPMT_SYM_DEF_OBJECT = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };
const NO_SYM: TPMT_SYM_DEF_OBJECT = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null };
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null } as const;

/** TCG EK template L-1: RSA 2048, AES-128-CFB, policy A, 256 zero bytes of unique. */
export function ekRsaTemplate(): RsaPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: EK_POLICY_A_SHA256.slice(),
    parameters: { symmetric: AES128_CFB, scheme: NULL_SCHEME, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(256),
  };
}

/** TCG EK template L-2: ECC NIST P-256, AES-128-CFB, policy A, 32 zero bytes each for x and y. */
export function ekEccTemplate(): EccPublic {
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: EK_POLICY_A_SHA256.slice(),
    parameters: { symmetric: AES128_CFB, scheme: NULL_SCHEME, curveID: TPM_ECC.NIST_P256, kdf: NULL_SCHEME },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

/**
 * AK: RSA 2048, RSASSA with the given hash (default SHA-256), restricted signing. A number that
 * is not a TPMI_ALG_HASH is refused here, with the encoder's TpmEncodeError.
 */
export function akRsaTemplate(hashAlg: number = TPM_ALG.SHA256): RsaPublic {
  const hash = hashAlgOf(hashAlg, 'TPMT_PUBLIC.parameters.scheme.details.hashAlg');
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: AK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: NO_SYM, scheme: { scheme: TPM_ALG.RSASSA, details: { hashAlg: hash } }, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(0),
  };
}

/** AK: ECC NIST P-256, ECDSA with the given hash (default SHA-256), restricted signing. */
export function akEccTemplate(hashAlg: number = TPM_ALG.SHA256): EccPublic {
  const hash = hashAlgOf(hashAlg, 'TPMT_PUBLIC.parameters.scheme.details.hashAlg');
  return {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: AK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: {
      symmetric: NO_SYM,
      scheme: { scheme: TPM_ALG.ECDSA, details: { hashAlg: hash } },
      curveID: TPM_ECC.NIST_P256,
      kdf: NULL_SCHEME,
    },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

/** Storage primary as `tpm2_createprimary` makes by default (RSA 2048, AES-128-CFB). */
export function srkRsaTemplate(): RsaPublic {
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: SRK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: { symmetric: AES128_CFB, scheme: NULL_SCHEME, keyBits: 2048, exponent: 0 },
    unique: new Uint8Array(0),
  };
}

/**
 * Whether a key's public area was made from `template`: same type, nameAlg, attributes,
 * policy and parameters (the unique field, the key itself, is ignored).
 */
export function matchesTemplate(pub: TPMT_PUBLIC, template: TPMT_PUBLIC): boolean {
  return (
    pub.type === template.type &&
    pub.nameAlg === template.nameAlg &&
    pub.objectAttributes === template.objectAttributes &&
    Buffer.from(pub.authPolicy).equals(Buffer.from(template.authPolicy)) &&
    JSON.stringify(pub.parameters) === JSON.stringify(template.parameters)
  );
}
