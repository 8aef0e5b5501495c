/**
 * eve-tpm-tools — a strict, pure-TypeScript TPM 2.0 library. This is the package's main entry
 * (`eve-tpm-tools`): what an application needs to run TPM commands and use keys.
 *
 * - `Tpm`: the generic executor over a `Transport` (device, swtpm socket, chardev);
 * - commands, structures and constants: one descriptor per command, one codec per structure;
 * - keys: templates, Names, SubjectPublicKeyInfo/PEM, signature formats, verification;
 * - ops: EK, AK creation/loading, persistence, streamed signing — nothing left loaded;
 * - errors: TpmError (response codes), TpmTransportError, TpmDecodeError/TpmEncodeError.
 *
 * The rest is in subpaths: `eve-tpm-tools/wire` (codec combinators, Reader/Writer, command and
 * response frames), `eve-tpm-tools/transport` (building blocks for other transports) and
 * `eve-tpm-tools/decode` (the frame decoder behind tpm2-decode). Helpers used only inside the
 * package are not exported; test/package/exports.test.ts pins every list below.
 */

// The executor and how commands are described.
export { Tpm, type RunOptions, type TpmOptions, type TpmRunner } from './tpm.js';
export {
  TPMS_AUTH_COMMAND,
  TPMS_AUTH_RESPONSE,
  command,
  passwordAuth,
  policyAuth,
  type AuthArg,
  type AnyCommand,
  type AuthHandleName,
  type Authorization,
  type AuthResponse,
  type CallOptions,
  type CommandDescriptor,
  type CommandInput,
  type CommandOutput,
  type HandleArg,
  type HandleAuth,
  type NamedHandle,
  type SessionHmac,
} from './command.js';

// Session objects: salted/bound HMAC and policy sessions, parameter encryption, response HMACs checked.
export {
  AuthSession,
  TpmSessionError,
  flushSession,
  startAuthSession,
  withSession,
  type EncryptDirection,
  type SessionUse,
  type StartSessionOptions,
} from './session/index.js';

// Errors and response codes.
export { TPM_RC, TpmError, decodeRc, isRetryable, rcText, type RcInfo, type RcKind, type TpmRcName } from './rc.js';
export { TpmDecodeError, TpmEncodeError } from './wire/errors.js';

// Encoding and decoding a structure with its codec (the combinators are in `./wire`).
export { decode, encode, type Codec, type Infer } from './wire/codec.js';

// Transports an application opens (building blocks for new ones are in `./transport`).
export {
  ChardevTransport,
  DEFAULT_DEVICE_PATH,
  DeviceTransport,
  SwtpmSocketTransport,
  TpmTransportError,
  openTransport,
  type DeviceTransportOptions,
  type SendOptions,
  type SwtpmSocketOptions,
  type TpmTransportErrorCode,
  type Transport,
  type TransportOptions,
} from './transport/index.js';

// Constants (TPM 2.0 Part 2).
export {
  DIGEST_SIZE,
  NODE_HASH,
  TPMA_OBJECT,
  TPMA_SESSION,
  TPM_ALG,
  TPM_CAP,
  TPM_CC,
  TPM_ECC,
  TPM_HT,
  TPM_PT,
  TPM_RH,
  TPM_SE,
  TPM_ST,
  TPM_SU,
  objectAttrs,
  sessionAttrs,
  type BitField,
  type KnownAlg,
  type TpmAlgId,
  type TpmHandle,
  type TpmaObjectFlag,
  type TpmaSessionFlag,
} from './constants.js';

// Structures (TPM 2.0 Part 2): each a codec and, for the ones users handle, a type. The codecs of
// single integers (TPM_ALG_ID, TPM_HANDLE, TPMA_OBJECT, …) are building blocks: in `./wire`.
export {
  TPM2B_AUTH,
  TPM2B_CONTEXT_DATA,
  TPM2B_CREATION_DATA,
  TPM2B_DATA,
  TPM2B_DIGEST,
  TPM2B_ECC_PARAMETER,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_MAX_BUFFER,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPM2B_PUBLIC_KEY_RSA,
  TPM2B_SENSITIVE_CREATE,
  TPM2B_SENSITIVE_DATA,
  TPM2B_TIMEOUT,
  TPMI_ALG_HASH,
  TPMI_ALG_HASH_NULL,
  TPMI_ALG_PUBLIC,
  TPMI_ALG_SYM_MODE,
  TPML_PCR_SELECTION,
  TPMS_ALG_PROPERTY,
  TPMS_CAPABILITY_DATA,
  TPMS_CONTEXT,
  TPMS_CREATION_DATA,
  TPMS_ECC_PARMS,
  TPMS_ECC_POINT,
  TPMS_KEYEDHASH_PARMS,
  TPMS_PCR_SELECTION,
  TPMS_RSA_PARMS,
  TPMS_SCHEME_ECDAA,
  TPMS_SCHEME_HASH,
  TPMS_SCHEME_XOR,
  TPMS_SENSITIVE_CREATE,
  TPMS_SIGNATURE_ECC,
  TPMS_SIGNATURE_RSA,
  TPMS_SYMCIPHER_PARMS,
  TPMS_TAGGED_PCR_SELECT,
  TPMS_TAGGED_PROPERTY,
  TPMT_ECC_SCHEME,
  TPMT_HA,
  TPMT_KDF_SCHEME,
  TPMT_KEYEDHASH_SCHEME,
  TPMT_PUBLIC,
  TPMT_RSA_SCHEME,
  TPMT_SIGNATURE,
  TPMT_SIG_SCHEME,
  TPMT_SYM_DEF,
  TPMT_SYM_DEF_OBJECT,
  TPMT_TK_AUTH,
  TPMT_TK_CREATION,
  TPMT_TK_HASHCHECK,
  TPMT_TK_VERIFIED,
  TPMU_CAPABILITIES,
  TPMU_HA,
  hashAlgOf,
  isHashAlg,
  type EccPublic,
  type PublicOf,
  type RsaPublic,
  type SignatureOf,
  type TpmiAlgHash,
  type TpmiAlgHashNull,
  type TpmiAlgPublic,
  type TpmiAlgSymMode,
} from './structures.js';

// Commands (TPM 2.0 Part 3): one descriptor each, for `tpm.run(descriptor, input)`.
export {
  ContextLoad,
  ContextSave,
  Create,
  CreatePrimary,
  EvictControl,
  FlushContext,
  GetCapability,
  GetRandom,
  Hash,
  HashSequenceStart,
  Load,
  PolicyGetDigest,
  PolicySecret,
  ReadPublic,
  SequenceComplete,
  SequenceUpdate,
  Sign,
  StartAuthSession,
  Startup,
  VerifySignature,
} from './commands.js';

// Keys: templates, Names and public-key formats, signature formats, software verification.
export {
  AK_ATTRIBUTES,
  EK_ATTRIBUTES,
  EK_POLICY_A_SHA256,
  SRK_ATTRIBUTES,
  akEccTemplate,
  akRsaTemplate,
  ekEccTemplate,
  ekRsaTemplate,
  matchesTemplate,
  srkRsaTemplate,
} from './keys/templates.js';
export { KeyFormatError, objectName, publicToPem, publicToSpkiDer } from './keys/public.js';
export { SIGNATURE_FORMATS, formatSignature, signatureHash, type SignatureFormat } from './keys/signature.js';
export { verifyMessageSignature, type MessageChunks } from './keys/verify.js';

// Operations: each leaves nothing transient loaded, success or failure.
export { getTpmProperty, listHandles, listPersistentHandles, maxInputBuffer } from './ops/capability.js';
export { evictPersistent, flush, makePersistent, readPublic, type PublicInfo } from './ops/objects.js';
export {
  policySecret,
  sessionAuth,
  startPolicySession,
  withEndorsementPolicy,
  withHierarchyAuth,
  type PolicySession,
  type SaltKey,
} from './ops/session.js';
export {
  EK_PERSISTENT_HANDLES,
  KEY_TYPES,
  createTransientEk,
  ekTemplate,
  findPersistedEk,
  withEk,
  type EkHandle,
  type EkOptions,
  type EndorsementAuthOptions,
  type KeyType,
} from './ops/ek.js';
export {
  akTemplate,
  createAk,
  loadKey,
  parseBlobs,
  persistKey,
  withLoadedKey,
  type CreateAkOptions,
  type CreatedKey,
  type KeyBlobs,
} from './ops/ak.js';
export {
  RestrictedSignError,
  keySchemeHash,
  signDigest,
  signMessage,
  tpmHash,
  type HashOptions,
  type HashResult,
  type MessageSource,
  type SignOptions,
} from './ops/sign.js';

// Credential protection (Part 1 §24): MakeCredential in software, ActivateCredential on the TPM.
export { ActivateCredential } from './commands.js';
export { TPM2B_ID_OBJECT } from './structures.js';
export {
  CREDENTIAL_FILE_MAGIC,
  CREDENTIAL_FILE_VERSION,
  CredentialError,
  credentialBlobFromSeed,
  makeCredential,
  parseIdObject,
  readCredentialFile,
  writeCredentialFile,
  type Credential,
  type IdObject,
} from './attest/make-credential.js';
export { activateCredential, type ActivateCredentialInput } from './ops/credential.js';

// Attestation (issue 11): PCRs, quotes, certification, the clock, NV reads, tpm2-tools' file formats.
export { Certify, NV_Read, NV_ReadPublic, PCR_Read, Quote, ReadClock } from './commands.js';
export {
  TPM2B_ATTEST,
  TPM2B_ATTEST_STRUCT,
  TPM2B_MAX_NV_BUFFER,
  TPM2B_NV_PUBLIC,
  TPML_DIGEST,
  TPMS_ATTEST,
  TPMS_CERTIFY_INFO,
  TPMS_CLOCK_INFO,
  TPMS_COMMAND_AUDIT_INFO,
  TPMS_CREATION_INFO,
  TPMS_NV_CERTIFY_INFO,
  TPMS_NV_PUBLIC,
  TPMS_QUOTE_INFO,
  TPMS_SESSION_AUDIT_INFO,
  TPMS_TIME_ATTEST_INFO,
  TPMS_TIME_INFO,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST,
  type AttestOf,
} from './structures.js';
export {
  AttestError,
  certify,
  pcrRead,
  pcrSelectionOf,
  quote,
  readClock,
  type AttestResult,
  type CertifyOptions,
  type PcrReadResult,
  type PcrSelectionArg,
  type QuoteOptions,
} from './ops/attest.js';
export { NvError, TPM_PT_NV_BUFFER_MAX, nvBufferMax, nvRead, nvReadPublic, type NvPublicInfo, type NvReadOptions } from './ops/nv.js';
export {
  MAX_PCR_INDEX,
  PcrFormatError,
  bankName,
  formatPcrSelection,
  fromPcrSelection,
  parsePcrBanks,
  parsePcrSelection,
  quoteFiles,
  readPcrsOut,
  toPcrSelection,
  writePcrsOut,
  type PcrBank,
} from './attest/formats.js';
export {
  verifyCertify,
  verifyQuote,
  type AttestCheck,
  type AttestReport,
  type PcrValues,
  type VerifyCertifyInput,
  type VerifyQuoteInput,
} from './attest/verify.js';
export { ekPublicFromSpki, signingPublicFromSpki, type SigningSchemeOptions, type SpkiInput } from './attest/spki.js';
export {
  SIGNATURE_FILE_FORMATS,
  parseSignature,
  verifySignature,
  type SignatureFileFormat,
  type SignatureReport,
  type VerifySignatureInput,
} from './attest/verify-signature.js';
export {
  APP_BINDING_LABELS,
  AppBindingError,
  BOUND_NONCE_MAX,
  BOUND_NONCE_MIN,
  appIdentity,
  appQualifyingData,
  type AppBindingLabel,
} from './attest/app-binding.js';

// App keys beyond the AK (issue 12): the per-app storage parent, general sign/decrypt keys,
// RSA decryption and ECDH, and X.509 requests and certificates signed in the TPM.
export { ECDH_ZGen, RSA_Decrypt } from './commands.js';
export { TPM2B_ECC_POINT, TPMT_RSA_DECRYPT } from './structures.js';
export {
  GENERAL_DECRYPT_ATTRIBUTES,
  GENERAL_SIGN_ATTRIBUTES,
  KeySpecError,
  SERVICE_PRIMARY_UNIQUE,
  STORAGE_KEY_ATTRIBUTES,
  appParentTemplate,
  assertGeneralKeySpec,
  generalKeyTemplate,
  servicePrimaryTemplate,
  type DecryptScheme,
  type EccCurve,
  type GeneralKeySpec,
  type GeneralKeyUsage,
  type RsaBits,
  type SignScheme,
} from './keys/general-templates.js';
export {
  AppParentError,
  createAppParent,
  createServicePrimary,
  loadAppParent,
  withAppParent,
  withServicePrimary,
  type ServicePrimary,
  type ServicePrimaryOptions,
} from './ops/app-parent.js';
export {
  KeyUsageError,
  assertKeyUsage,
  createGeneralKey,
  generalKeyFromBlobs,
  isDecryptionKey,
  isSigningKey,
  loadGeneralKey,
  withGeneralKey,
  type DecryptionKey,
  type GeneralKey,
  type LoadedKey,
  type SigningKey,
} from './ops/general-keys.js';
export { NULL_HASHCHECK, signDigestWithKey, type DigestSignOptions } from './ops/general-sign.js';
export { DecryptInputError, OAEP_LABEL_MAX, ecdhZGen, oaepLabel, rsaDecrypt, type PeerKey, type RsaDecryptOptions } from './ops/decrypt.js';
export {
  SignerError,
  createSigner,
  type SignCallback,
  type SignRequest,
  type SignerAlgorithm,
  type SignerOptions,
  type TpmSigner,
  type X509SignScheme,
} from './x509/signer.js';
export { signerForAk, signerForKey, type LoadedAk } from './x509/tpm-signers.js';
export {
  X509InputError,
  createCsr,
  createSelfSignedCertificate,
  parseSubjectAltNames,
  type CsrOptions,
  type SelfSignedOptions,
  type SubjectAltName,
  type X509Output,
} from './x509/csr.js';
