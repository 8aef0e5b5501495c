/**
 * TPM 2.0 structures (Library Part 2, "Structures"), each defined once as a codec; the
 * TypeScript type of each is `Infer<typeof X>`, exported under the same name.
 * Section numbers refer to Part 2, revision 1.59.
 */
import { TPM_ALG, TPM_CAP, TPM_ST } from './constants.js';
import { TpmEncodeError } from './wire/errors.js';
import { fixed, leaf, list, none, oneOf, sized, struct, tpm2b, u16, u32, u64, u8, union, variant, yesNo, type AnyCodec, type Infer } from './wire/codec.js';

const A = TPM_ALG;

// ---------------------------------------------------------------- typed leaves (§6, §7, §8)
// Integer leaves that carry a meaning: the same bytes as u8/u16/u32, but `meta.name` says
// what they are, so the decoder tool names them without guessing from field names.

/** TPM_ALG_ID (§6.3): any UINT16; see the TPMI_ALG_* types for restricted sets. */
export const TPM_ALG_ID = leaf('TPM_ALG_ID', u16);
/** TPM_HANDLE (§7.1). TPMI_SH_AUTH_SESSION etc. are plain handles here; callers check ranges. */
export const TPM_HANDLE = leaf('TPM_HANDLE', u32);
/** TPM_ECC_CURVE (§6.4). */
export const TPM_ECC_CURVE = leaf('TPM_ECC_CURVE', u16);
/** TPM_ST (§6.9), a structure tag. */
export const TPM_ST_CODEC = leaf('TPM_ST', u16);
/** TPM_SU (§6.10), the TPM2_Startup/Shutdown type. */
export const TPM_SU_CODEC = leaf('TPM_SU', u16);
/** TPM_SE (§6.11), the session type. */
export const TPM_SE_CODEC = leaf('TPM_SE', u8);
/** TPM_CAP (§6.12). */
export const TPM_CAP_CODEC = leaf('TPM_CAP', u32);
/** TPMA_OBJECT (§8.3): bit flags in a UINT32 (`objectAttrs` in constants.ts reads them). */
export const TPMA_OBJECT_CODEC = leaf('TPMA_OBJECT', u32);
/** TPMA_SESSION (§8.4): bit flags in a UINT8 (`sessionAttrs`). */
export const TPMA_SESSION_CODEC = leaf('TPMA_SESSION', u8);
/** TPMA_CC (§8.9): the command index in bits 0..15, attributes above. */
export const TPMA_CC = leaf('TPMA_CC', u32);
/** TPM_CC (§6.5.2). */
export const TPM_CC_CODEC = leaf('TPM_CC', u32);
/** TPM_PT (§6.13) and TPM_PT_PCR (§6.14): property tags; TPMA_ALGORITHM (§8.2), TPMA_LOCALITY (§8.5). */
const TPM_PT_CODEC = leaf('TPM_PT', u32);
const TPM_PT_PCR = leaf('TPM_PT_PCR', u32);
const TPMA_ALGORITHM = leaf('TPMA_ALGORITHM', u32);
const TPMA_LOCALITY = leaf('TPMA_LOCALITY', u8);

// ---------------------------------------------------------------- interface types (§9)

/** TPMI_ALG_HASH (§9.27): the hash algorithms, without NULL. */
const HASHES = [A.SHA1, A.SHA256, A.SHA384, A.SHA512, A.SM3_256, A.SHA3_256, A.SHA3_384, A.SHA3_512] as const;
export const TPMI_ALG_HASH = oneOf('TPMI_ALG_HASH', TPM_ALG_ID, HASHES);
export type TpmiAlgHash = Infer<typeof TPMI_ALG_HASH>;
/** TPMI_ALG_HASH+ : a hash algorithm or TPM_ALG_NULL. */
export const TPMI_ALG_HASH_NULL = oneOf('TPMI_ALG_HASH+', TPM_ALG_ID, [...HASHES, A.NULL]);
export type TpmiAlgHashNull = Infer<typeof TPMI_ALG_HASH_NULL>;
/** TPMI_ALG_SYM_MODE+ (§9.31). */
export const TPMI_ALG_SYM_MODE = oneOf('TPMI_ALG_SYM_MODE', TPM_ALG_ID, [A.CTR, A.OFB, A.CBC, A.CFB, A.ECB, A.NULL]);
export type TpmiAlgSymMode = Infer<typeof TPMI_ALG_SYM_MODE>;
/** TPMI_ALG_PUBLIC (§12.2.2). */
export const TPMI_ALG_PUBLIC = oneOf('TPMI_ALG_PUBLIC', TPM_ALG_ID, [A.RSA, A.KEYEDHASH, A.ECC, A.SYMCIPHER]);
export type TpmiAlgPublic = Infer<typeof TPMI_ALG_PUBLIC>;

const HASH_SET: ReadonlySet<number> = new Set(HASHES);
/** Whether `alg` is a TPMI_ALG_HASH: narrows a number read from a user or a file. */
export function isHashAlg(alg: number): alg is TpmiAlgHash {
  return HASH_SET.has(alg);
}
/** `alg` as a TPMI_ALG_HASH, or the TpmEncodeError the encoder would give for it. */
export function hashAlgOf(alg: number, path = 'hashAlg'): TpmiAlgHash {
  if (isHashAlg(alg)) return alg;
  const shown = typeof alg === 'number' ? '0x' + alg.toString(16).padStart(4, '0') : String(alg);
  throw new TpmEncodeError(`TPMI_ALG_HASH: ${shown} is not an allowed value`, path);
}

// ---------------------------------------------------------------- sized buffers (§10.4)

/** TPM2B_DIGEST (§10.4.2): up to sizeof(TPMU_HA) = 64 bytes. Also TPM2B_NONCE, TPM2B_AUTH. */
export const TPM2B_DIGEST = tpm2b('TPM2B_DIGEST', 64);
export const TPM2B_NONCE = tpm2b('TPM2B_NONCE', 64);
export const TPM2B_AUTH = tpm2b('TPM2B_AUTH', 64);
/** TPM2B_DATA (§10.4.3): up to sizeof(TPMT_HA) = 66 bytes. */
export const TPM2B_DATA = tpm2b('TPM2B_DATA', 66);
/** TPM2B_MAX_BUFFER (§10.4.8): MAX_DIGEST_BUFFER = 1024. */
export const TPM2B_MAX_BUFFER = tpm2b('TPM2B_MAX_BUFFER', 1024);
/** TPM2B_NAME (§10.5.3): a digest with its algorithm, or a handle. */
export const TPM2B_NAME = tpm2b('TPM2B_NAME', 66);
/** TPM2B_SENSITIVE_DATA (§11.1.14). */
export const TPM2B_SENSITIVE_DATA = tpm2b('TPM2B_SENSITIVE_DATA', 256);
/** TPM2B_PUBLIC_KEY_RSA (§11.2.4.5): MAX_RSA_KEY_BYTES = 512 (RSA 4096). */
export const TPM2B_PUBLIC_KEY_RSA = tpm2b('TPM2B_PUBLIC_KEY_RSA', 512);
/** TPM2B_ECC_PARAMETER (§11.2.5.1): MAX_ECC_KEY_BYTES = 128 (generous; P-521 needs 66). */
export const TPM2B_ECC_PARAMETER = tpm2b('TPM2B_ECC_PARAMETER', 128);
/** TPM2B_PRIVATE (§12.3.7): an opaque wrapped blob; bounded by the TPM's buffer size. */
export const TPM2B_PRIVATE = tpm2b('TPM2B_PRIVATE', 4096);
/** TPM2B_ENCRYPTED_SECRET (§11.4.33): sizeof(TPMU_ENCRYPTED_SECRET) = 512. */
export const TPM2B_ENCRYPTED_SECRET = tpm2b('TPM2B_ENCRYPTED_SECRET', 512);

// ---------------------------------------------------------------- hashes (§10.3)

/** The arms of TPMU_HA (§10.3.1): a digest whose length follows from the hash algorithm. */
const HA_ARMS = {
  [A.SHA1]: fixed(20),
  [A.SHA256]: fixed(32),
  [A.SHA384]: fixed(48),
  [A.SHA512]: fixed(64),
  [A.SM3_256]: fixed(32),
  [A.SHA3_256]: fixed(32),
  [A.SHA3_384]: fixed(48),
  [A.SHA3_512]: fixed(64),
} as const;
/** TPMU_HA (§10.3.1), selected by TPMT_HA.hashAlg. */
export const TPMU_HA = union('TPMU_HA', 'hashAlg', HA_ARMS);
/** TPMT_HA (§10.3.2). */
export const TPMT_HA = variant('TPMT_HA', 'hashAlg', { hashAlg: TPMI_ALG_HASH, digest: TPMU_HA });
export type TPMT_HA = Infer<typeof TPMT_HA>;

// ---------------------------------------------------------------- PCR selection (§10.6)

/** TPMS_PCR_SELECTION (§10.6.2): sizeofSelect is a UINT8 size, PCR_SELECT_MAX = 4 octets. */
export const TPMS_PCR_SELECTION = struct('TPMS_PCR_SELECTION', {
  hash: TPMI_ALG_HASH,
  pcrSelect: tpm2b('pcrSelect', 4, 1),
});
export type TPMS_PCR_SELECTION = Infer<typeof TPMS_PCR_SELECTION>;
/** TPML_PCR_SELECTION (§10.9.7): at most HASH_COUNT banks. */
export const TPML_PCR_SELECTION = list('TPML_PCR_SELECTION', TPMS_PCR_SELECTION, 16);

// ---------------------------------------------------------------- tickets (§10.7)

function ticket<const T extends number>(name: string, tag: T) {
  return struct(name, {
    tag: oneOf(`${name}.tag`, TPM_ST_CODEC, [tag]),
    hierarchy: TPM_HANDLE,
    digest: TPM2B_DIGEST,
  });
}
/** TPMT_TK_CREATION (§10.7.3). */
export const TPMT_TK_CREATION = ticket('TPMT_TK_CREATION', TPM_ST.CREATION);
export type TPMT_TK_CREATION = Infer<typeof TPMT_TK_CREATION>;
/** TPMT_TK_VERIFIED (§10.7.4). */
export const TPMT_TK_VERIFIED = ticket('TPMT_TK_VERIFIED', TPM_ST.VERIFIED);
export type TPMT_TK_VERIFIED = Infer<typeof TPMT_TK_VERIFIED>;
/** TPMT_TK_HASHCHECK (§10.7.6). */
export const TPMT_TK_HASHCHECK = ticket('TPMT_TK_HASHCHECK', TPM_ST.HASHCHECK);
export type TPMT_TK_HASHCHECK = Infer<typeof TPMT_TK_HASHCHECK>;

// ---------------------------------------------------------------- capabilities (§10.8–10.10)

/** TPMS_ALG_PROPERTY (§10.8.1). */
export const TPMS_ALG_PROPERTY = struct('TPMS_ALG_PROPERTY', { alg: TPM_ALG_ID, algProperties: TPMA_ALGORITHM });
/** TPMS_TAGGED_PROPERTY (§10.8.2). */
export const TPMS_TAGGED_PROPERTY = struct('TPMS_TAGGED_PROPERTY', { property: TPM_PT_CODEC, value: u32 });
/** TPMS_TAGGED_PCR_SELECT (§10.8.3). */
export const TPMS_TAGGED_PCR_SELECT = struct('TPMS_TAGGED_PCR_SELECT', { tag: TPM_PT_PCR, pcrSelect: tpm2b('pcrSelect', 4, 1) });

// Counts derived from MAX_CAP_BUFFER = 1024 (Part 2 §10.9 and Part 4's defaults).
const MAX_CAP_DATA = 1024 - 4 - 4;

/** TPMU_CAPABILITIES (§10.10.1), selected by TPMS_CAPABILITY_DATA.capability. */
export const TPMU_CAPABILITIES = union('TPMU_CAPABILITIES', 'capability', {
  [TPM_CAP.ALGS]: list('TPML_ALG_PROPERTY', TPMS_ALG_PROPERTY, Math.floor(MAX_CAP_DATA / 6)),
  [TPM_CAP.HANDLES]: list('TPML_HANDLE', TPM_HANDLE, Math.floor(MAX_CAP_DATA / 4)),
  [TPM_CAP.COMMANDS]: list('TPML_CCA', TPMA_CC, Math.floor(MAX_CAP_DATA / 4)),
  [TPM_CAP.PP_COMMANDS]: list('TPML_CC', TPM_CC_CODEC, Math.floor(MAX_CAP_DATA / 4)),
  [TPM_CAP.AUDIT_COMMANDS]: list('TPML_CC', TPM_CC_CODEC, Math.floor(MAX_CAP_DATA / 4)),
  [TPM_CAP.PCRS]: TPML_PCR_SELECTION,
  [TPM_CAP.TPM_PROPERTIES]: list('TPML_TAGGED_TPM_PROPERTY', TPMS_TAGGED_PROPERTY, Math.floor(MAX_CAP_DATA / 8)),
  [TPM_CAP.PCR_PROPERTIES]: list('TPML_TAGGED_PCR_PROPERTY', TPMS_TAGGED_PCR_SELECT, Math.floor(MAX_CAP_DATA / 5)),
  [TPM_CAP.ECC_CURVES]: list('TPML_ECC_CURVE', TPM_ECC_CURVE, Math.floor(MAX_CAP_DATA / 2)),
});
/** TPMS_CAPABILITY_DATA (§10.10.2). */
export const TPMS_CAPABILITY_DATA = variant('TPMS_CAPABILITY_DATA', 'capability', { capability: TPM_CAP_CODEC, data: TPMU_CAPABILITIES });
export type TPMS_CAPABILITY_DATA = Infer<typeof TPMS_CAPABILITY_DATA>;

// ---------------------------------------------------------------- symmetric (§11.1)

const symKeyBits = { [A.AES]: u16, [A.SM4]: u16, [A.CAMELLIA]: u16, [A.NULL]: none } as const;
const symMode = { [A.AES]: TPMI_ALG_SYM_MODE, [A.SM4]: TPMI_ALG_SYM_MODE, [A.CAMELLIA]: TPMI_ALG_SYM_MODE, [A.NULL]: none } as const;

/** TPMT_SYM_DEF (§11.1.6): for sessions; XOR takes a hash algorithm as its "key bits". */
export const TPMT_SYM_DEF = variant('TPMT_SYM_DEF', 'algorithm', {
  algorithm: TPM_ALG_ID,
  keyBits: union('TPMU_SYM_KEY_BITS', 'algorithm', { ...symKeyBits, [A.XOR]: TPMI_ALG_HASH }),
  mode: union('TPMU_SYM_MODE', 'algorithm', { ...symMode, [A.XOR]: none }),
});
export type TPMT_SYM_DEF = Infer<typeof TPMT_SYM_DEF>;

/** TPMT_SYM_DEF_OBJECT (§11.1.7): as TPMT_SYM_DEF without XOR. */
export const TPMT_SYM_DEF_OBJECT = variant('TPMT_SYM_DEF_OBJECT', 'algorithm', {
  algorithm: TPM_ALG_ID,
  keyBits: union('TPMU_SYM_KEY_BITS', 'algorithm', symKeyBits),
  mode: union('TPMU_SYM_MODE', 'algorithm', symMode),
});
export type TPMT_SYM_DEF_OBJECT = Infer<typeof TPMT_SYM_DEF_OBJECT>;

/** TPMS_SENSITIVE_CREATE (§11.1.15) and its TPM2B (§11.1.16). */
export const TPMS_SENSITIVE_CREATE = struct('TPMS_SENSITIVE_CREATE', { userAuth: TPM2B_AUTH, data: TPM2B_SENSITIVE_DATA });
export type TPMS_SENSITIVE_CREATE = Infer<typeof TPMS_SENSITIVE_CREATE>;
export const TPM2B_SENSITIVE_CREATE = sized('TPM2B_SENSITIVE_CREATE', TPMS_SENSITIVE_CREATE);

// ---------------------------------------------------------------- schemes (§11.1.17–11.2)

/** TPMS_SCHEME_HASH (§11.1.17): also TPMS_SIG_SCHEME_*, TPMS_ENC_SCHEME_OAEP, TPMS_KEY_SCHEME_*, TPMS_SCHEME_HMAC. */
export const TPMS_SCHEME_HASH = struct('TPMS_SCHEME_HASH', { hashAlg: TPMI_ALG_HASH });
/** TPMS_SCHEME_ECDAA (§11.1.18). */
export const TPMS_SCHEME_ECDAA = struct('TPMS_SCHEME_ECDAA', { hashAlg: TPMI_ALG_HASH, count: u16 });
/** TPMS_SCHEME_XOR (§11.1.20). */
export const TPMS_SCHEME_XOR = struct('TPMS_SCHEME_XOR', { hashAlg: TPMI_ALG_HASH, kdf: TPM_ALG_ID });

/** TPMT_KEYEDHASH_SCHEME (§11.1.23). */
export const TPMT_KEYEDHASH_SCHEME = variant('TPMT_KEYEDHASH_SCHEME', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_SCHEME_KEYEDHASH', 'scheme', { [A.HMAC]: TPMS_SCHEME_HASH, [A.XOR]: TPMS_SCHEME_XOR, [A.NULL]: none }),
});
export type TPMT_KEYEDHASH_SCHEME = Infer<typeof TPMT_KEYEDHASH_SCHEME>;

/** TPMT_SIG_SCHEME (§11.2.1.5) with TPMU_SIG_SCHEME (§11.2.1.4). */
export const TPMT_SIG_SCHEME = variant('TPMT_SIG_SCHEME', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_SIG_SCHEME', 'scheme', {
    [A.RSASSA]: TPMS_SCHEME_HASH,
    [A.RSAPSS]: TPMS_SCHEME_HASH,
    [A.ECDSA]: TPMS_SCHEME_HASH,
    [A.ECDAA]: TPMS_SCHEME_ECDAA,
    [A.SM2]: TPMS_SCHEME_HASH,
    [A.ECSCHNORR]: TPMS_SCHEME_HASH,
    [A.HMAC]: TPMS_SCHEME_HASH,
    [A.NULL]: none,
  }),
});
export type TPMT_SIG_SCHEME = Infer<typeof TPMT_SIG_SCHEME>;

/** TPMT_KDF_SCHEME (§11.2.3.3). */
export const TPMT_KDF_SCHEME = variant('TPMT_KDF_SCHEME', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_KDF_SCHEME', 'scheme', {
    [A.MGF1]: TPMS_SCHEME_HASH,
    [A.KDF1_SP800_56A]: TPMS_SCHEME_HASH,
    [A.KDF2]: TPMS_SCHEME_HASH,
    [A.KDF1_SP800_108]: TPMS_SCHEME_HASH,
    [A.NULL]: none,
  }),
});
export type TPMT_KDF_SCHEME = Infer<typeof TPMT_KDF_SCHEME>;

/** TPMT_RSA_SCHEME (§11.2.4.2) with the RSA arms of TPMU_ASYM_SCHEME (§11.2.3.5). */
export const TPMT_RSA_SCHEME = variant('TPMT_RSA_SCHEME', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_ASYM_SCHEME', 'scheme', {
    [A.RSASSA]: TPMS_SCHEME_HASH,
    [A.RSAPSS]: TPMS_SCHEME_HASH,
    [A.RSAES]: none,
    [A.OAEP]: TPMS_SCHEME_HASH,
    [A.NULL]: none,
  }),
});
export type TPMT_RSA_SCHEME = Infer<typeof TPMT_RSA_SCHEME>;

/** TPMT_ECC_SCHEME (§11.2.5.6) with the ECC arms of TPMU_ASYM_SCHEME. */
export const TPMT_ECC_SCHEME = variant('TPMT_ECC_SCHEME', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_ASYM_SCHEME', 'scheme', {
    [A.ECDSA]: TPMS_SCHEME_HASH,
    [A.ECDH]: TPMS_SCHEME_HASH,
    [A.ECDAA]: TPMS_SCHEME_ECDAA,
    [A.SM2]: TPMS_SCHEME_HASH,
    [A.ECSCHNORR]: TPMS_SCHEME_HASH,
    [A.ECMQV]: TPMS_SCHEME_HASH,
    [A.NULL]: none,
  }),
});
export type TPMT_ECC_SCHEME = Infer<typeof TPMT_ECC_SCHEME>;

// ---------------------------------------------------------------- signatures (§11.3)

/** TPMS_SIGNATURE_RSA (§11.3.1). */
export const TPMS_SIGNATURE_RSA = struct('TPMS_SIGNATURE_RSA', { hash: TPMI_ALG_HASH, sig: TPM2B_PUBLIC_KEY_RSA });
/** TPMS_SIGNATURE_ECC (§11.3.2). */
export const TPMS_SIGNATURE_ECC = struct('TPMS_SIGNATURE_ECC', {
  hash: TPMI_ALG_HASH,
  signatureR: TPM2B_ECC_PARAMETER,
  signatureS: TPM2B_ECC_PARAMETER,
});

/**
 * The HMAC arm of TPMU_SIGNATURE (§11.3.3) is a TPMT_HA; here its hash field is named `hash`,
 * as in the other arms (same bytes), so `sig.signature.hash` reads every signature's hash.
 */
const TPMT_HA_SIGNATURE = variant('TPMT_HA', 'hash', { hash: TPMI_ALG_HASH, digest: union('TPMU_HA', 'hash', HA_ARMS) });

/** TPMT_SIGNATURE (§11.3.4) with TPMU_SIGNATURE (§11.3.3). */
export const TPMT_SIGNATURE = variant('TPMT_SIGNATURE', 'sigAlg', {
  sigAlg: TPM_ALG_ID,
  signature: union('TPMU_SIGNATURE', 'sigAlg', {
    [A.RSASSA]: TPMS_SIGNATURE_RSA,
    [A.RSAPSS]: TPMS_SIGNATURE_RSA,
    [A.ECDSA]: TPMS_SIGNATURE_ECC,
    [A.ECDAA]: TPMS_SIGNATURE_ECC,
    [A.SM2]: TPMS_SIGNATURE_ECC,
    [A.ECSCHNORR]: TPMS_SIGNATURE_ECC,
    [A.HMAC]: TPMT_HA_SIGNATURE,
    [A.NULL]: none,
  }),
});
export type TPMT_SIGNATURE = Infer<typeof TPMT_SIGNATURE>;
/** The TPMT_SIGNATURE of one signature algorithm (`SignatureOf<typeof TPM_ALG.ECDSA>`). */
export type SignatureOf<S extends TPMT_SIGNATURE['sigAlg']> = Extract<TPMT_SIGNATURE, { sigAlg: S }>;

// ---------------------------------------------------------------- public area (§12.2)

/** TPMS_ECC_POINT (§11.2.5.2). */
export const TPMS_ECC_POINT = struct('TPMS_ECC_POINT', { x: TPM2B_ECC_PARAMETER, y: TPM2B_ECC_PARAMETER });
export type TPMS_ECC_POINT = Infer<typeof TPMS_ECC_POINT>;

/** TPM2B_ECC_POINT (§11.2.5.3): a sized TPMS_ECC_POINT (ECDH_ZGen's peer point and Z). */
export const TPM2B_ECC_POINT = sized('TPM2B_ECC_POINT', TPMS_ECC_POINT);

/** TPMT_RSA_DECRYPT (§11.2.4.4): TPMI_ALG_RSA_DECRYPT (§11.2.4.3) selects RSAES, OAEP or NULL (the key's own). */
export const TPMT_RSA_DECRYPT = variant('TPMT_RSA_DECRYPT', 'scheme', {
  scheme: TPM_ALG_ID,
  details: union('TPMU_ASYM_SCHEME', 'scheme', { [A.RSAES]: none, [A.OAEP]: TPMS_SCHEME_HASH, [A.NULL]: none }),
});
export type TPMT_RSA_DECRYPT = Infer<typeof TPMT_RSA_DECRYPT>;

/** TPMS_KEYEDHASH_PARMS (§12.2.3.3). */
export const TPMS_KEYEDHASH_PARMS = struct('TPMS_KEYEDHASH_PARMS', { scheme: TPMT_KEYEDHASH_SCHEME });
/** TPMS_SYMCIPHER_PARMS (§11.1.9). */
export const TPMS_SYMCIPHER_PARMS = struct('TPMS_SYMCIPHER_PARMS', { sym: TPMT_SYM_DEF_OBJECT });
/** TPMS_RSA_PARMS (§12.2.3.5): exponent 0 means the default 65537. */
export const TPMS_RSA_PARMS = struct('TPMS_RSA_PARMS', {
  symmetric: TPMT_SYM_DEF_OBJECT,
  scheme: TPMT_RSA_SCHEME,
  keyBits: u16,
  exponent: u32,
});
export type TPMS_RSA_PARMS = Infer<typeof TPMS_RSA_PARMS>;
/** TPMS_ECC_PARMS (§12.2.3.6). */
export const TPMS_ECC_PARMS = struct('TPMS_ECC_PARMS', {
  symmetric: TPMT_SYM_DEF_OBJECT,
  scheme: TPMT_ECC_SCHEME,
  curveID: TPM_ECC_CURVE,
  kdf: TPMT_KDF_SCHEME,
});
export type TPMS_ECC_PARMS = Infer<typeof TPMS_ECC_PARMS>;

/** TPMT_PUBLIC (§12.2.4): `type` selects both `parameters` and `unique`. */
export const TPMT_PUBLIC = variant('TPMT_PUBLIC', 'type', {
  type: TPMI_ALG_PUBLIC,
  nameAlg: TPMI_ALG_HASH_NULL,
  objectAttributes: TPMA_OBJECT_CODEC,
  authPolicy: TPM2B_DIGEST,
  parameters: union('TPMU_PUBLIC_PARMS', 'type', {
    [A.KEYEDHASH]: TPMS_KEYEDHASH_PARMS,
    [A.SYMCIPHER]: TPMS_SYMCIPHER_PARMS,
    [A.RSA]: TPMS_RSA_PARMS,
    [A.ECC]: TPMS_ECC_PARMS,
  }),
  unique: union('TPMU_PUBLIC_ID', 'type', {
    [A.KEYEDHASH]: TPM2B_DIGEST,
    [A.SYMCIPHER]: TPM2B_DIGEST,
    [A.RSA]: TPM2B_PUBLIC_KEY_RSA,
    [A.ECC]: TPMS_ECC_POINT,
  }),
});
export type TPMT_PUBLIC = Infer<typeof TPMT_PUBLIC>;
/** The TPMT_PUBLIC of one key type: `PublicOf<typeof TPM_ALG.RSA>` has RSA parameters and a modulus. */
export type PublicOf<T extends TpmiAlgPublic> = Extract<TPMT_PUBLIC, { type: T }>;
export type RsaPublic = PublicOf<typeof TPM_ALG.RSA>;
export type EccPublic = PublicOf<typeof TPM_ALG.ECC>;
/** TPM2B_PUBLIC (§12.2.5). */
export const TPM2B_PUBLIC = sized('TPM2B_PUBLIC', TPMT_PUBLIC);

// ---------------------------------------------------------------- creation data (§15)

/** TPMS_CREATION_DATA (§15.1). */
export const TPMS_CREATION_DATA = struct('TPMS_CREATION_DATA', {
  pcrSelect: TPML_PCR_SELECTION,
  pcrDigest: TPM2B_DIGEST,
  locality: TPMA_LOCALITY,
  parentNameAlg: TPM_ALG_ID,
  parentName: TPM2B_NAME,
  parentQualifiedName: TPM2B_NAME,
  outsideInfo: TPM2B_DATA,
});
export type TPMS_CREATION_DATA = Infer<typeof TPMS_CREATION_DATA>;
/** TPM2B_CREATION_DATA (§15.2). */
export const TPM2B_CREATION_DATA = sized('TPM2B_CREATION_DATA', TPMS_CREATION_DATA);

// ---------------------------------------------------------------- context data (§14)

/**
 * TPM2B_CONTEXT_DATA (§14.4): the TPM's encrypted, integrity-protected blob (a TPMS_CONTEXT_DATA
 * only it can read). Its size is the TPM's own (MAX_CONTEXT_SIZE); bounded here by the TPM's
 * response buffer, as TPM2B_PRIVATE.
 */
export const TPM2B_CONTEXT_DATA = tpm2b('TPM2B_CONTEXT_DATA', 4096);
/**
 * TPMS_CONTEXT (§14.5): what TPM2_ContextSave returns and TPM2_ContextLoad takes. `sequence`
 * is a UINT64 (bigint); `savedHandle` and `hierarchy` are handles (TPMI_DH_SAVED,
 * TPMI_RH_HIERARCHY+), checked by the TPM itself on load.
 */
export const TPMS_CONTEXT = struct('TPMS_CONTEXT', {
  sequence: u64,
  savedHandle: TPM_HANDLE,
  hierarchy: TPM_HANDLE,
  contextBlob: TPM2B_CONTEXT_DATA,
});
export type TPMS_CONTEXT = Infer<typeof TPMS_CONTEXT>;

// ---------------------------------------------------------------- policy (§10.7.5, §10.4.11)

/** TPM2B_TIMEOUT (§10.4.11): sizeof(UINT64). */
export const TPM2B_TIMEOUT = tpm2b('TPM2B_TIMEOUT', 8);
/** TPMT_TK_AUTH (§10.7.5): tag TPM_ST_AUTH_SECRET or TPM_ST_AUTH_SIGNED. */
export const TPMT_TK_AUTH = struct('TPMT_TK_AUTH', {
  tag: oneOf('TPMT_TK_AUTH.tag', TPM_ST_CODEC, [0x8023, 0x8025]),
  hierarchy: TPM_HANDLE,
  digest: TPM2B_DIGEST,
});
export type TPMT_TK_AUTH = Infer<typeof TPMT_TK_AUTH>;

// ---------------------------------------------------------------- attestation (§10.11–10.12), NV (§13)

/** TPM_GENERATED_VALUE (§6.2): the magic that starts every TPMS_ATTEST the TPM signs. */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPMI_ST_ATTEST (§10.12.10): the TPM_ST values (§6.9) that tag a TPMS_ATTEST. */
export const TPM_ST_ATTEST = {
  NV: 0x8014,
  COMMAND_AUDIT: 0x8015,
  SESSION_AUDIT: 0x8016,
  CERTIFY: 0x8017,
  QUOTE: 0x8018,
  TIME: 0x8019,
  CREATION: 0x801a,
} as const;
const ST_ATTEST = TPM_ST_ATTEST;

/** TPMS_CLOCK_INFO (§10.11.1). */
export const TPMS_CLOCK_INFO = struct('TPMS_CLOCK_INFO', { clock: u64, resetCount: u32, restartCount: u32, safe: yesNo });
export type TPMS_CLOCK_INFO = Infer<typeof TPMS_CLOCK_INFO>;
/** TPMS_TIME_INFO (§10.11.6). */
export const TPMS_TIME_INFO = struct('TPMS_TIME_INFO', { time: u64, clockInfo: TPMS_CLOCK_INFO });
export type TPMS_TIME_INFO = Infer<typeof TPMS_TIME_INFO>;
/** TPMS_TIME_ATTEST_INFO (§10.12.2). */
export const TPMS_TIME_ATTEST_INFO = struct('TPMS_TIME_ATTEST_INFO', { time: TPMS_TIME_INFO, firmwareVersion: u64 });
/** TPMS_CERTIFY_INFO (§10.12.3). */
export const TPMS_CERTIFY_INFO = struct('TPMS_CERTIFY_INFO', { name: TPM2B_NAME, qualifiedName: TPM2B_NAME });
export type TPMS_CERTIFY_INFO = Infer<typeof TPMS_CERTIFY_INFO>;
/** TPMS_QUOTE_INFO (§10.12.4). */
export const TPMS_QUOTE_INFO = struct('TPMS_QUOTE_INFO', { pcrSelect: TPML_PCR_SELECTION, pcrDigest: TPM2B_DIGEST });
export type TPMS_QUOTE_INFO = Infer<typeof TPMS_QUOTE_INFO>;
/** TPMS_COMMAND_AUDIT_INFO (§10.12.5). */
export const TPMS_COMMAND_AUDIT_INFO = struct('TPMS_COMMAND_AUDIT_INFO', {
  auditCounter: u64,
  digestAlg: TPM_ALG_ID,
  auditDigest: TPM2B_DIGEST,
  commandDigest: TPM2B_DIGEST,
});
/** TPMS_SESSION_AUDIT_INFO (§10.12.6). */
export const TPMS_SESSION_AUDIT_INFO = struct('TPMS_SESSION_AUDIT_INFO', { exclusiveSession: yesNo, sessionDigest: TPM2B_DIGEST });
/** TPMS_CREATION_INFO (§10.12.7). */
export const TPMS_CREATION_INFO = struct('TPMS_CREATION_INFO', { objectName: TPM2B_NAME, creationHash: TPM2B_DIGEST });
/** TPM2B_MAX_NV_BUFFER (§10.4.9): MAX_NV_BUFFER_SIZE is the TPM's own; 2048 bounds it here. */
export const TPM2B_MAX_NV_BUFFER = tpm2b('TPM2B_MAX_NV_BUFFER', 2048);
/** TPMS_NV_CERTIFY_INFO (§10.12.8). */
export const TPMS_NV_CERTIFY_INFO = struct('TPMS_NV_CERTIFY_INFO', { indexName: TPM2B_NAME, offset: u16, nvContents: TPM2B_MAX_NV_BUFFER });

/**
 * TPMS_ATTEST (§10.12.12) with TPMU_ATTEST (§10.12.11): `type` narrows `attested`. The magic
 * must be TPM_GENERATED_VALUE; an attestation type without an arm here is refused.
 */
export const TPMS_ATTEST = variant('TPMS_ATTEST', 'type', {
  magic: oneOf('TPMS_ATTEST.magic', leaf('TPM_GENERATED', u32), [TPM_GENERATED_VALUE]),
  type: oneOf('TPMI_ST_ATTEST', TPM_ST_CODEC, [
    ST_ATTEST.CERTIFY,
    ST_ATTEST.QUOTE,
    ST_ATTEST.SESSION_AUDIT,
    ST_ATTEST.COMMAND_AUDIT,
    ST_ATTEST.TIME,
    ST_ATTEST.CREATION,
    ST_ATTEST.NV,
  ]),
  qualifiedSigner: TPM2B_NAME,
  extraData: TPM2B_DATA,
  clockInfo: TPMS_CLOCK_INFO,
  firmwareVersion: u64,
  attested: union('TPMU_ATTEST', 'type', {
    [ST_ATTEST.CERTIFY]: TPMS_CERTIFY_INFO,
    [ST_ATTEST.QUOTE]: TPMS_QUOTE_INFO,
    [ST_ATTEST.SESSION_AUDIT]: TPMS_SESSION_AUDIT_INFO,
    [ST_ATTEST.COMMAND_AUDIT]: TPMS_COMMAND_AUDIT_INFO,
    [ST_ATTEST.TIME]: TPMS_TIME_ATTEST_INFO,
    [ST_ATTEST.CREATION]: TPMS_CREATION_INFO,
    [ST_ATTEST.NV]: TPMS_NV_CERTIFY_INFO,
  }),
});
export type TPMS_ATTEST = Infer<typeof TPMS_ATTEST>;
/** The TPMS_ATTEST of one attestation type (`AttestOf<typeof TPM_ST_ATTEST.QUOTE>`). */
export type AttestOf<T extends TPMS_ATTEST['type']> = Extract<TPMS_ATTEST, { type: T }>;
/**
 * TPM2B_ATTEST (§10.12.13), kept as its bytes: signatures are over exactly these bytes, so
 * commands return them raw; `decode(TPMS_ATTEST, bytes)` reads them. TPM2B_ATTEST_STRUCT is
 * the same wire form decoded in place (for the decoder tool).
 */
export const TPM2B_ATTEST = tpm2b('TPM2B_ATTEST', 2304);
export const TPM2B_ATTEST_STRUCT = sized('TPM2B_ATTEST', TPMS_ATTEST);

/** TPML_DIGEST (§10.9.3): at most 8 digests. */
export const TPML_DIGEST = list('TPML_DIGEST', TPM2B_DIGEST, 8);

/** TPMA_NV (§13.4): bit flags in a UINT32. */
export const TPMA_NV_CODEC = leaf('TPMA_NV', u32);
/** TPMS_NV_PUBLIC (§13.5). */
export const TPMS_NV_PUBLIC = struct('TPMS_NV_PUBLIC', {
  nvIndex: TPM_HANDLE,
  nameAlg: TPMI_ALG_HASH,
  attributes: TPMA_NV_CODEC,
  authPolicy: TPM2B_DIGEST,
  dataSize: u16,
});
export type TPMS_NV_PUBLIC = Infer<typeof TPMS_NV_PUBLIC>;
/** TPM2B_NV_PUBLIC (§13.6). */
export const TPM2B_NV_PUBLIC = sized('TPM2B_NV_PUBLIC', TPMS_NV_PUBLIC);

/** Every named structure codec, for the decoder tool and the fuzz tests. */
export const STRUCTURES: Readonly<Record<string, AnyCodec>> = Object.freeze({
  TPMT_HA,
  TPMS_PCR_SELECTION,
  TPML_PCR_SELECTION,
  TPMT_TK_CREATION,
  TPMT_TK_VERIFIED,
  TPMT_TK_HASHCHECK,
  TPMS_CAPABILITY_DATA,
  TPMT_SYM_DEF,
  TPMT_SYM_DEF_OBJECT,
  TPMS_SENSITIVE_CREATE,
  TPM2B_SENSITIVE_CREATE,
  TPMT_SIG_SCHEME,
  TPMT_KDF_SCHEME,
  TPMT_RSA_SCHEME,
  TPMT_ECC_SCHEME,
  TPMT_KEYEDHASH_SCHEME,
  TPMT_SIGNATURE,
  TPMS_ECC_POINT,
  TPM2B_ECC_POINT,
  TPMT_RSA_DECRYPT,
  TPMS_RSA_PARMS,
  TPMS_ECC_PARMS,
  TPMT_PUBLIC,
  TPM2B_PUBLIC,
  TPMS_CREATION_DATA,
  TPM2B_CREATION_DATA,
  TPM2B_DIGEST,
  TPM2B_PRIVATE,
  TPM2B_NAME,
  TPMS_CONTEXT,
  TPMT_TK_AUTH,
  TPMS_CLOCK_INFO,
  TPMS_TIME_INFO,
  TPMS_ATTEST,
  TPM2B_ATTEST: TPM2B_ATTEST_STRUCT,
  TPML_DIGEST,
  TPMS_NV_PUBLIC,
  TPM2B_NV_PUBLIC,
});

// ---------------------------------------------------------------- credential protection (A2)

/**
 * TPM2B_ID_OBJECT (Part 2 §12.4.3): a sized TPMS_ID_OBJECT — integrityHMAC (TPM2B_DIGEST) then
 * encIdentity, an encrypted TPM2B_DIGEST whose size is the rest of the buffer. Carried opaque
 * here (bounded by sizeof(TPMS_ID_OBJECT) = 2+64 + 2+64); `parseIdObject` splits it.
 */
export const TPM2B_ID_OBJECT = tpm2b('TPM2B_ID_OBJECT', 132);
