/**
 * Constants from TPM 2.0 Library Part 2 ("Structures") and the TCG Algorithm Registry.
 * Only what the library uses or decodes; values are the spec's.
 */

/** TPM_ALG_ID (Part 2 §6.3; Algorithm Registry). */
export const TPM_ALG = {
  ERROR: 0x0000,
  RSA: 0x0001,
  TDES: 0x0003,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  MGF1: 0x0007,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  SM4: 0x0013,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CAMELLIA: 0x0026,
  SHA3_256: 0x0027,
  SHA3_384: 0x0028,
  SHA3_512: 0x0029,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** The algorithm ids this library names (TPM_ALG above). */
export type KnownAlg = (typeof TPM_ALG)[keyof typeof TPM_ALG];
/**
 * TPM_ALG_ID (Part 2 §6.3): a UINT16. Any value is one (a TPM may report ids this library
 * does not name); where only some are valid, the TPMI_ALG_* types of structures.ts are
 * literal unions of them (`TpmiAlgHash`, ...).
 */
export type TpmAlgId = number;
/** TPM_HANDLE (Part 2 §7.1): a UINT32 whose most significant octet is its TPM_HT. */
export type TpmHandle = number;

/** TPM_CC (Part 2 §6.5.2). */
export const TPM_CC = {
  EvictControl: 0x00000120,
  PolicySecret: 0x00000151,
  Create: 0x00000153,
  Load: 0x00000157,
  SequenceUpdate: 0x0000015c,
  Sign: 0x0000015d,
  ContextLoad: 0x00000161,
  ContextSave: 0x00000162,
  FlushContext: 0x00000165,
  StartAuthSession: 0x00000176,
  VerifySignature: 0x00000177,
  CreatePrimary: 0x00000131,
  SequenceComplete: 0x0000013e,
  Startup: 0x00000144,
  Shutdown: 0x00000145,
  ReadPublic: 0x00000173,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
  Hash: 0x0000017d,
  HashSequenceStart: 0x00000186,
  PolicyGetDigest: 0x00000189,
  ActivateCredential: 0x00000147,
  Certify: 0x00000148,
  NV_Read: 0x0000014e,
  Quote: 0x00000158,
  NV_ReadPublic: 0x00000169,
  PCR_Read: 0x0000017e,
  ReadClock: 0x00000181,
  ECDH_ZGen: 0x00000154,
  RSA_Decrypt: 0x00000159,
} as const;

/** TPM_ST (Part 2 §6.9). */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  HASHCHECK: 0x8024,
} as const;

/** TPM_SU (Part 2 §6.10). */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_SE (Part 2 §6.11). */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP (Part 2 §6.12). */
export const TPM_CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  COMMANDS: 0x00000002,
  PP_COMMANDS: 0x00000003,
  AUDIT_COMMANDS: 0x00000004,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
  PCR_PROPERTIES: 0x00000007,
  ECC_CURVES: 0x00000008,
} as const;

/** TPM_PT (Part 2 §6.13): the few properties the library asks for. */
export const TPM_PT = {
  FIXED: 0x100,
  FAMILY_INDICATOR: 0x100,
  MANUFACTURER: 0x105,
  INPUT_BUFFER: 0x10d,
  HR_TRANSIENT_MIN: 0x10e,
  HR_PERSISTENT_MIN: 0x10f,
  MAX_DIGEST: 0x120,
  VAR: 0x200,
  HR_NV_INDEX: 0x202,
  HR_LOADED: 0x203,
  HR_LOADED_AVAIL: 0x204,
  HR_ACTIVE: 0x205,
  HR_ACTIVE_AVAIL: 0x206,
  HR_TRANSIENT_AVAIL: 0x207,
  HR_PERSISTENT: 0x208,
  HR_PERSISTENT_AVAIL: 0x209,
} as const;

/** TPM_HT: the most significant octet of a handle (Part 2 §7.2). */
export const TPM_HT = {
  PCR: 0x00,
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  LOADED_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  SAVED_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** TPM_RH / TPM_RS permanent handles (Part 2 §7.4). */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  RS_PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPM_ECC_CURVE (Part 2 §6.4). */
export const TPM_ECC = {
  NONE: 0x0000,
  NIST_P192: 0x0001,
  NIST_P224: 0x0002,
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
  BN_P256: 0x0010,
  BN_P638: 0x0011,
  SM2_P256: 0x0020,
} as const;

/** TPMA_OBJECT bits (Part 2 §8.3); `objectAttrs` below combines and reads them by name. */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  stClear: 0x00000004,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  noDA: 0x00000400,
  encryptedDuplication: 0x00000800,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
  x509sign: 0x00080000,
} as const;

/** TPMA_SESSION bits (Part 2 §8.4). */
export const TPMA_SESSION = {
  continueSession: 0x01,
  auditExclusive: 0x02,
  auditReset: 0x04,
  decrypt: 0x20,
  encrypt: 0x40,
  audit: 0x80,
} as const;

/**
 * A TPMA_ bit field (attributes carried as one UINT32/UINT8 on the wire, Part 2 §8) with typed
 * flag names: `objectAttrs.of('fixedTPM', 'sign')`, `objectAttrs.has(v, 'restricted')`.
 * The value stays a plain number, so structures keep their wire shape.
 */
export interface BitField<F extends string> {
  /** The value with exactly these flags set. */
  of(...flags: readonly F[]): number;
  has(value: number, flag: F): boolean;
  /** The named flags set in `value`, in bit order. */
  flags(value: number): F[];
  /** Bits set in `value` that have no name here (reserved or not modelled). */
  unknownBits(value: number): number;
}

function bitField<T extends Readonly<Record<string, number>>>(table: T): BitField<Extract<keyof T, string>> {
  type F = Extract<keyof T, string>;
  // Bit values up to 2^31 are exact with >>> 0; `|`/`&` alone would go negative at bit 31.
  const bit = (f: F): number => table[f] ?? 0;
  const names: F[] = [];
  for (const k in table) names.push(k);
  const known = names.reduce((m, f) => (m | bit(f)) >>> 0, 0);
  return {
    of: (...flags) => flags.reduce((v, f) => (v | bit(f)) >>> 0, 0),
    has: (value, flag) => ((value & bit(flag)) >>> 0) !== 0,
    flags: (value) => names.filter((f) => ((value & bit(f)) >>> 0) !== 0),
    unknownBits: (value) => (value & ~known) >>> 0,
  };
}

/** TPMA_OBJECT as typed flags (Part 2 §8.3). */
export type TpmaObjectFlag = keyof typeof TPMA_OBJECT;
export const objectAttrs: BitField<TpmaObjectFlag> = bitField(TPMA_OBJECT);
/** TPMA_SESSION as typed flags (Part 2 §8.4). */
export type TpmaSessionFlag = keyof typeof TPMA_SESSION;
export const sessionAttrs: BitField<TpmaSessionFlag> = bitField(TPMA_SESSION);

/** Digest sizes of the hash algorithms a TPM may implement. */
export const DIGEST_SIZE: Readonly<Record<number, number>> = {
  [TPM_ALG.SHA1]: 20,
  [TPM_ALG.SHA256]: 32,
  [TPM_ALG.SHA384]: 48,
  [TPM_ALG.SHA512]: 64,
  [TPM_ALG.SM3_256]: 32,
  [TPM_ALG.SHA3_256]: 32,
  [TPM_ALG.SHA3_384]: 48,
  [TPM_ALG.SHA3_512]: 64,
};

/** node:crypto names of the hash algorithms. */
export const NODE_HASH: Readonly<Record<number, string>> = {
  [TPM_ALG.SHA1]: 'sha1',
  [TPM_ALG.SHA256]: 'sha256',
  [TPM_ALG.SHA384]: 'sha384',
  [TPM_ALG.SHA512]: 'sha512',
  [TPM_ALG.SHA3_256]: 'sha3-256',
  [TPM_ALG.SHA3_384]: 'sha3-384',
  [TPM_ALG.SHA3_512]: 'sha3-512',
};

/** Reverse lookup of a constant table: value → name (for messages and the decoder tool). */
export function nameOf(table: Readonly<Record<string, number>>, value: number): string | undefined {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return undefined;
}

/** Formats a handle or code as 0x%08x. */
export function hex32(v: number): string {
  return '0x' + v.toString(16).padStart(8, '0');
}
