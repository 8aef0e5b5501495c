/**
 * The commands the library speaks, one descriptor each (TPM 2.0 Library Part 3, rev 1.59).
 * Adding a command = adding a descriptor here.
 */
import { TPM_CC } from './constants.js';
import { command, type AnyCommand } from './command.js';
import {
  TPM2B_AUTH,
  TPM2B_CREATION_DATA,
  TPM2B_DATA,
  TPM2B_DIGEST,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_MAX_BUFFER,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPM2B_SENSITIVE_CREATE,
  TPM2B_TIMEOUT,
  TPML_PCR_SELECTION,
  TPMS_CAPABILITY_DATA,
  TPMS_CONTEXT,
  TPMT_SIG_SCHEME,
  TPMT_SIGNATURE,
  TPMT_SYM_DEF,
  TPMT_TK_AUTH,
  TPMT_TK_CREATION,
  TPMT_TK_HASHCHECK,
  TPMT_TK_VERIFIED,
  TPM_ALG_ID,
  TPM_CAP_CODEC,
  TPM_HANDLE,
  TPM_SE_CODEC,
  TPM_SU_CODEC,
  TPM2B_ATTEST,
  TPM2B_MAX_NV_BUFFER,
  TPM2B_NV_PUBLIC,
  TPML_DIGEST,
  TPMS_TIME_INFO,
  TPM2B_ECC_POINT,
  TPM2B_PUBLIC_KEY_RSA,
  TPMT_RSA_DECRYPT,
} from './structures.js';
import { i32, u16, u32, yesNo } from './wire/codec.js';

/** TPM2_Startup — Part 3 §9.3. */
export const Startup = command({
  name: 'Startup',
  code: TPM_CC.Startup,
  spec: 'Part 3 §9.3',
  params: { startupType: TPM_SU_CODEC },
  response: {},
});

/** TPM2_GetCapability — Part 3 §30.2. */
export const GetCapability = command({
  name: 'GetCapability',
  code: TPM_CC.GetCapability,
  spec: 'Part 3 §30.2',
  params: { capability: TPM_CAP_CODEC, property: u32, propertyCount: u32 },
  response: { moreData: yesNo, capabilityData: TPMS_CAPABILITY_DATA },
});

/** TPM2_GetRandom — Part 3 §16.1. */
export const GetRandom = command({
  name: 'GetRandom',
  code: TPM_CC.GetRandom,
  spec: 'Part 3 §16.1',
  params: { bytesRequested: u16 },
  response: { randomBytes: TPM2B_DIGEST },
});

const creationParams = {
  inSensitive: TPM2B_SENSITIVE_CREATE,
  inPublic: TPM2B_PUBLIC,
  outsideInfo: TPM2B_DATA,
  creationPCR: TPML_PCR_SELECTION,
};

/** TPM2_CreatePrimary — Part 3 §24.1. objectHandle: the new primary, loaded (transient). */
export const CreatePrimary = command({
  name: 'CreatePrimary',
  code: TPM_CC.CreatePrimary,
  spec: 'Part 3 §24.1',
  handles: { primaryHandle: 'auth' },
  params: creationParams,
  responseHandles: ['objectHandle'],
  creates: ['objectHandle'],
  response: {
    outPublic: TPM2B_PUBLIC,
    creationData: TPM2B_CREATION_DATA,
    creationHash: TPM2B_DIGEST,
    creationTicket: TPMT_TK_CREATION,
    name: TPM2B_NAME,
  },
});

/** TPM2_Create — Part 3 §12.1. */
export const Create = command({
  name: 'Create',
  code: TPM_CC.Create,
  spec: 'Part 3 §12.1',
  handles: { parentHandle: 'auth' },
  params: creationParams,
  response: {
    outPrivate: TPM2B_PRIVATE,
    outPublic: TPM2B_PUBLIC,
    creationData: TPM2B_CREATION_DATA,
    creationHash: TPM2B_DIGEST,
    creationTicket: TPMT_TK_CREATION,
  },
});

/** TPM2_Load — Part 3 §12.2. objectHandle: the loaded object (transient) until flushed. */
export const Load = command({
  name: 'Load',
  code: TPM_CC.Load,
  spec: 'Part 3 §12.2',
  handles: { parentHandle: 'auth' },
  params: { inPrivate: TPM2B_PRIVATE, inPublic: TPM2B_PUBLIC },
  responseHandles: ['objectHandle'],
  creates: ['objectHandle'],
  response: { name: TPM2B_NAME },
});

/** TPM2_ReadPublic — Part 3 §12.4. */
export const ReadPublic = command({
  name: 'ReadPublic',
  code: TPM_CC.ReadPublic,
  spec: 'Part 3 §12.4',
  handles: { objectHandle: 'noauth' },
  params: {},
  response: { outPublic: TPM2B_PUBLIC, name: TPM2B_NAME, qualifiedName: TPM2B_NAME },
});

/** TPM2_EvictControl — Part 3 §28.5. `auth` is TPM_RH_OWNER or TPM_RH_PLATFORM. */
export const EvictControl = command({
  name: 'EvictControl',
  code: TPM_CC.EvictControl,
  spec: 'Part 3 §28.5',
  handles: { auth: 'auth', objectHandle: 'noauth' },
  params: { persistentHandle: TPM_HANDLE },
  response: {},
});

/**
 * TPM2_ContextSave — Part 3 §28.2. The handle needs no authorization. For an object the TPM
 * keeps it loaded (flush it to free the slot); for a session it frees the slot itself.
 */
export const ContextSave = command({
  name: 'ContextSave',
  code: TPM_CC.ContextSave,
  spec: 'Part 3 §28.2',
  handles: { saveHandle: 'noauth' },
  params: {},
  response: { context: TPMS_CONTEXT },
});

/**
 * TPM2_ContextLoad — Part 3 §28.3. The context travels in the parameter area; the object
 * usually comes back at a different handle. A context saved before a TPM Reset is refused.
 * loadedHandle: the object or sequence loaded again (a session keeps its handle, §28.3.1).
 */
export const ContextLoad = command({
  name: 'ContextLoad',
  code: TPM_CC.ContextLoad,
  spec: 'Part 3 §28.3',
  params: { context: TPMS_CONTEXT },
  responseHandles: ['loadedHandle'],
  creates: ['loadedHandle'],
  response: {},
});

/** TPM2_FlushContext — Part 3 §28.4. The handle travels in the parameter area. */
export const FlushContext = command({
  name: 'FlushContext',
  code: TPM_CC.FlushContext,
  spec: 'Part 3 §28.4',
  params: { flushHandle: TPM_HANDLE },
  flushes: [{ parameter: 'flushHandle' }],
  response: {},
});

/** TPM2_Sign — Part 3 §20.2. A restricted key needs a TPMT_TK_HASHCHECK from the TPM. */
export const Sign = command({
  name: 'Sign',
  code: TPM_CC.Sign,
  spec: 'Part 3 §20.2',
  handles: { keyHandle: 'auth' },
  params: { digest: TPM2B_DIGEST, inScheme: TPMT_SIG_SCHEME, validation: TPMT_TK_HASHCHECK },
  response: { signature: TPMT_SIGNATURE },
});

/** TPM2_VerifySignature — Part 3 §20.1. */
export const VerifySignature = command({
  name: 'VerifySignature',
  code: TPM_CC.VerifySignature,
  spec: 'Part 3 §20.1',
  handles: { keyHandle: 'noauth' },
  params: { digest: TPM2B_DIGEST, signature: TPMT_SIGNATURE },
  response: { validation: TPMT_TK_VERIFIED },
});

/** TPM2_Hash — Part 3 §15.4. */
export const Hash = command({
  name: 'Hash',
  code: TPM_CC.Hash,
  spec: 'Part 3 §15.4',
  params: { data: TPM2B_MAX_BUFFER, hashAlg: TPM_ALG_ID, hierarchy: TPM_HANDLE },
  response: { outHash: TPM2B_DIGEST, validation: TPMT_TK_HASHCHECK },
});

/** TPM2_HashSequenceStart — Part 3 §17.3. sequenceHandle: a new sequence object (transient). */
export const HashSequenceStart = command({
  name: 'HashSequenceStart',
  code: TPM_CC.HashSequenceStart,
  spec: 'Part 3 §17.3',
  params: { auth: TPM2B_AUTH, hashAlg: TPM_ALG_ID },
  responseHandles: ['sequenceHandle'],
  creates: ['sequenceHandle'],
  response: {},
});

/** TPM2_SequenceUpdate — Part 3 §17.4. */
export const SequenceUpdate = command({
  name: 'SequenceUpdate',
  code: TPM_CC.SequenceUpdate,
  spec: 'Part 3 §17.4',
  handles: { sequenceHandle: 'auth' },
  params: { buffer: TPM2B_MAX_BUFFER },
  response: {},
});

/** TPM2_SequenceComplete — Part 3 §17.5. On success the TPM flushes the sequence object. */
export const SequenceComplete = command({
  name: 'SequenceComplete',
  code: TPM_CC.SequenceComplete,
  spec: 'Part 3 §17.5',
  handles: { sequenceHandle: 'auth' },
  flushes: [{ handle: 'sequenceHandle' }],
  params: { buffer: TPM2B_MAX_BUFFER, hierarchy: TPM_HANDLE },
  response: { result: TPM2B_DIGEST, validation: TPMT_TK_HASHCHECK },
});

/** TPM2_StartAuthSession — Part 3 §11.1. sessionHandle: the new session, loaded until flushed. */
export const StartAuthSession = command({
  name: 'StartAuthSession',
  code: TPM_CC.StartAuthSession,
  spec: 'Part 3 §11.1',
  handles: { tpmKey: 'noauth', bind: 'noauth' },
  params: {
    nonceCaller: TPM2B_NONCE,
    encryptedSalt: TPM2B_ENCRYPTED_SECRET,
    sessionType: TPM_SE_CODEC,
    symmetric: TPMT_SYM_DEF,
    authHash: TPM_ALG_ID,
  },
  responseHandles: ['sessionHandle'],
  creates: ['sessionHandle'],
  response: { nonceTPM: TPM2B_NONCE },
});

/** TPM2_PolicySecret — Part 3 §23.4. */
export const PolicySecret = command({
  name: 'PolicySecret',
  code: TPM_CC.PolicySecret,
  spec: 'Part 3 §23.4',
  handles: { authHandle: 'auth', policySession: 'noauth' },
  params: { nonceTPM: TPM2B_NONCE, cpHashA: TPM2B_DIGEST, policyRef: TPM2B_NONCE, expiration: i32 },
  response: { timeout: TPM2B_TIMEOUT, policyTicket: TPMT_TK_AUTH },
});

/** TPM2_PolicyGetDigest — Part 3 §23.19. */
export const PolicyGetDigest = command({
  name: 'PolicyGetDigest',
  code: TPM_CC.PolicyGetDigest,
  spec: 'Part 3 §23.19',
  handles: { policySession: 'noauth' },
  params: {},
  response: { policyDigest: TPM2B_DIGEST },
});

// ---------------------------------------------------------------- attestation, PCRs, NV, clock

/**
 * TPM2_PCR_Read — Part 3 §22.4. The TPM may return fewer PCRs than selected (at most 8
 * digests per response): pcrSelectionOut says which ones came back.
 */
export const PCR_Read = command({
  name: 'PCR_Read',
  code: TPM_CC.PCR_Read,
  spec: 'Part 3 §22.4',
  params: { pcrSelectionIn: TPML_PCR_SELECTION },
  response: { pcrUpdateCounter: u32, pcrSelectionOut: TPML_PCR_SELECTION, pcrValues: TPML_DIGEST },
});

/**
 * TPM2_Quote — Part 3 §18.4. signHandle needs USER authorization. `quoted` is the
 * TPM2B_ATTEST's bytes (a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE), which the signature covers.
 */
export const Quote = command({
  name: 'Quote',
  code: TPM_CC.Quote,
  spec: 'Part 3 §18.4',
  handles: { signHandle: 'auth' },
  params: { qualifyingData: TPM2B_DATA, inScheme: TPMT_SIG_SCHEME, PCRselect: TPML_PCR_SELECTION },
  response: { quoted: TPM2B_ATTEST, signature: TPMT_SIGNATURE },
});

/**
 * TPM2_Certify — Part 3 §18.2. objectHandle needs ADMIN role authorization, signHandle USER
 * (both carry an authorization session). certifyInfo: TPM2B_ATTEST bytes (TPM_ST_ATTEST_CERTIFY).
 */
export const Certify = command({
  name: 'Certify',
  code: TPM_CC.Certify,
  spec: 'Part 3 §18.2',
  handles: { objectHandle: 'auth', signHandle: 'auth' },
  params: { qualifyingData: TPM2B_DATA, inScheme: TPMT_SIG_SCHEME },
  response: { certifyInfo: TPM2B_ATTEST, signature: TPMT_SIGNATURE },
});

/** TPM2_NV_ReadPublic — Part 3 §31.6. No authorization. */
export const NV_ReadPublic = command({
  name: 'NV_ReadPublic',
  code: TPM_CC.NV_ReadPublic,
  spec: 'Part 3 §31.6',
  handles: { nvIndex: 'noauth' },
  params: {},
  response: { nvPublic: TPM2B_NV_PUBLIC, nvName: TPM2B_NAME },
});

/**
 * TPM2_NV_Read — Part 3 §31.13. authHandle (the index itself, TPM_RH_OWNER or
 * TPM_RH_PLATFORM) carries the authorization; `size` is at most TPM_PT_NV_BUFFER_MAX.
 */
export const NV_Read = command({
  name: 'NV_Read',
  code: TPM_CC.NV_Read,
  spec: 'Part 3 §31.13',
  handles: { authHandle: 'auth', nvIndex: 'noauth' },
  params: { size: u16, offset: u16 },
  response: { data: TPM2B_MAX_NV_BUFFER },
});

/** TPM2_ReadClock — Part 3 §29.1. No handles, no authorization. */
export const ReadClock = command({
  name: 'ReadClock',
  code: TPM_CC.ReadClock,
  spec: 'Part 3 §29.1',
  params: {},
  response: { currentTime: TPMS_TIME_INFO },
});

/**
 * TPM2_ActivateCredential — Part 3 §12.5. activateHandle: the object the credential names (ADMIN
 * role); keyHandle: the decrypting key the seed was encrypted to, normally the EK (USER role).
 * certInfo: the recovered secret.
 */
export const ActivateCredential = command({
  name: 'ActivateCredential',
  code: TPM_CC.ActivateCredential,
  spec: 'Part 3 §12.5',
  handles: { activateHandle: 'auth', keyHandle: 'auth' },
  params: { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET },
  response: { certInfo: TPM2B_DIGEST },
});

// ---------------------------------------------------------------- general (non-restricted) keys

/**
 * TPM2_RSA_Decrypt — Part 3 §14.3. keyHandle: a non-restricted RSA decrypt key (USER role).
 * inScheme NULL = the key's own scheme. A non-empty label must be NULL-terminated (§14.2.1):
 * the TPM refuses it otherwise (TPM_RC_VALUE).
 */
export const RSA_Decrypt = command({
  name: 'RSA_Decrypt',
  code: TPM_CC.RSA_Decrypt,
  spec: 'Part 3 §14.3',
  handles: { keyHandle: 'auth' },
  params: { cipherText: TPM2B_PUBLIC_KEY_RSA, inScheme: TPMT_RSA_DECRYPT, label: TPM2B_DATA },
  response: { message: TPM2B_PUBLIC_KEY_RSA },
});

/**
 * TPM2_ECDH_ZGen — Part 3 §14.5. keyHandle: a non-restricted ECC decrypt key (USER role);
 * outPoint is the shared point, whose x coordinate is Z (SP 800-56A).
 */
export const ECDH_ZGen = command({
  name: 'ECDH_ZGen',
  code: TPM_CC.ECDH_ZGen,
  spec: 'Part 3 §14.5',
  handles: { keyHandle: 'auth' },
  params: { inPoint: TPM2B_ECC_POINT },
  response: { outPoint: TPM2B_ECC_POINT },
});

/** Every descriptor, by command code (for the decoder tool). */
export const COMMANDS = new Map(
  [
    Startup,
    GetCapability,
    GetRandom,
    CreatePrimary,
    Create,
    Load,
    ReadPublic,
    EvictControl,
    ContextSave,
    ContextLoad,
    FlushContext,
    Sign,
    VerifySignature,
    Hash,
    HashSequenceStart,
    SequenceUpdate,
    SequenceComplete,
    StartAuthSession,
    PolicySecret,
    PolicyGetDigest,
    PCR_Read,
    Quote,
    Certify,
    NV_ReadPublic,
    NV_Read,
    ReadClock,
    ActivateCredential,
    RSA_Decrypt,
    ECDH_ZGen,
  ].map((c) => [c.code, c as AnyCommand]),
);
