/**
 * The package's public API, pinned: every name each entry of package.json "exports" gives, split
 * into runtime values and type-only names, sorted. Adding or removing an export means editing
 * this list — a visible decision in review. Checked on the sources (exports.test.ts) and on the
 * packed tarball (pack.test.ts).
 */
export interface EntryApi {
  /** The source file tsup builds the entry from. */
  source: string;
  /** Names present at run time (functions, classes, constants, codecs; a codec's type shares its name). */
  values: string[];
  /** Names that exist only for TypeScript (interfaces, type aliases). */
  types: string[];
}

export const PUBLIC_API: Record<'.' | './wire' | './transport' | './decode', EntryApi> = {
  '.': {
    source: 'src/tpm/index.ts',
    values: [
      'AK_ATTRIBUTES', 'APP_BINDING_LABELS', 'ActivateCredential', 'AppBindingError', 'AppParentError', 'AttestError', 'AuthSession',
      'BOUND_NONCE_MAX', 'BOUND_NONCE_MIN', 'CREDENTIAL_FILE_MAGIC', 'CREDENTIAL_FILE_VERSION', 'Certify', 'ChardevTransport',
      'ContextLoad', 'ContextSave', 'Create', 'CreatePrimary', 'CredentialError', 'DEFAULT_DEVICE_PATH', 'DIGEST_SIZE', 'DecryptInputError',
      'DeviceTransport', 'ECDH_ZGen', 'EK_ATTRIBUTES', 'EK_PERSISTENT_HANDLES', 'EK_POLICY_A_SHA256', 'EvictControl', 'FlushContext',
      'GENERAL_DECRYPT_ATTRIBUTES', 'GENERAL_SIGN_ATTRIBUTES', 'GetCapability', 'GetRandom', 'Hash', 'HashSequenceStart', 'KEY_TYPES',
      'KeyFormatError', 'KeySpecError', 'KeyUsageError', 'Load', 'MAX_PCR_INDEX', 'NODE_HASH', 'NULL_HASHCHECK', 'NV_Read', 'NV_ReadPublic',
      'NvError', 'OAEP_LABEL_MAX', 'PCR_Read', 'PcrFormatError', 'PolicyGetDigest', 'PolicySecret', 'Quote', 'RSA_Decrypt', 'ReadClock',
      'ReadPublic', 'RestrictedSignError', 'SERVICE_PRIMARY_UNIQUE', 'SIGNATURE_FILE_FORMATS', 'SIGNATURE_FORMATS', 'SRK_ATTRIBUTES',
      'STORAGE_KEY_ATTRIBUTES', 'SequenceComplete', 'SequenceUpdate', 'Sign', 'SignerError', 'StartAuthSession', 'Startup',
      'SwtpmSocketTransport', 'TPM2B_ATTEST', 'TPM2B_ATTEST_STRUCT', 'TPM2B_AUTH', 'TPM2B_CONTEXT_DATA', 'TPM2B_CREATION_DATA',
      'TPM2B_DATA', 'TPM2B_DIGEST', 'TPM2B_ECC_PARAMETER', 'TPM2B_ECC_POINT', 'TPM2B_ENCRYPTED_SECRET', 'TPM2B_ID_OBJECT',
      'TPM2B_MAX_BUFFER', 'TPM2B_MAX_NV_BUFFER', 'TPM2B_NAME', 'TPM2B_NONCE', 'TPM2B_NV_PUBLIC', 'TPM2B_PRIVATE', 'TPM2B_PUBLIC',
      'TPM2B_PUBLIC_KEY_RSA', 'TPM2B_SENSITIVE_CREATE', 'TPM2B_SENSITIVE_DATA', 'TPM2B_TIMEOUT', 'TPMA_OBJECT', 'TPMA_SESSION',
      'TPMI_ALG_HASH', 'TPMI_ALG_HASH_NULL', 'TPMI_ALG_PUBLIC', 'TPMI_ALG_SYM_MODE', 'TPML_DIGEST', 'TPML_PCR_SELECTION',
      'TPMS_ALG_PROPERTY', 'TPMS_ATTEST', 'TPMS_AUTH_COMMAND', 'TPMS_AUTH_RESPONSE', 'TPMS_CAPABILITY_DATA', 'TPMS_CERTIFY_INFO',
      'TPMS_CLOCK_INFO', 'TPMS_COMMAND_AUDIT_INFO', 'TPMS_CONTEXT', 'TPMS_CREATION_DATA', 'TPMS_CREATION_INFO', 'TPMS_ECC_PARMS',
      'TPMS_ECC_POINT', 'TPMS_KEYEDHASH_PARMS', 'TPMS_NV_CERTIFY_INFO', 'TPMS_NV_PUBLIC', 'TPMS_PCR_SELECTION', 'TPMS_QUOTE_INFO',
      'TPMS_RSA_PARMS', 'TPMS_SCHEME_ECDAA', 'TPMS_SCHEME_HASH', 'TPMS_SCHEME_XOR', 'TPMS_SENSITIVE_CREATE', 'TPMS_SESSION_AUDIT_INFO',
      'TPMS_SIGNATURE_ECC', 'TPMS_SIGNATURE_RSA', 'TPMS_SYMCIPHER_PARMS', 'TPMS_TAGGED_PCR_SELECT', 'TPMS_TAGGED_PROPERTY',
      'TPMS_TIME_ATTEST_INFO', 'TPMS_TIME_INFO', 'TPMT_ECC_SCHEME', 'TPMT_HA', 'TPMT_KDF_SCHEME', 'TPMT_KEYEDHASH_SCHEME', 'TPMT_PUBLIC',
      'TPMT_RSA_DECRYPT', 'TPMT_RSA_SCHEME', 'TPMT_SIGNATURE', 'TPMT_SIG_SCHEME', 'TPMT_SYM_DEF', 'TPMT_SYM_DEF_OBJECT', 'TPMT_TK_AUTH',
      'TPMT_TK_CREATION', 'TPMT_TK_HASHCHECK', 'TPMT_TK_VERIFIED', 'TPMU_CAPABILITIES', 'TPMU_HA', 'TPM_ALG', 'TPM_CAP', 'TPM_CC',
      'TPM_ECC', 'TPM_GENERATED_VALUE', 'TPM_HT', 'TPM_PT', 'TPM_PT_NV_BUFFER_MAX', 'TPM_RC', 'TPM_RH', 'TPM_SE', 'TPM_ST', 'TPM_ST_ATTEST',
      'TPM_SU', 'Tpm', 'TpmDecodeError', 'TpmEncodeError', 'TpmError', 'TpmSessionError', 'TpmTransportError', 'VerifySignature',
      'X509InputError', 'activateCredential', 'akEccTemplate', 'akRsaTemplate', 'akTemplate', 'appIdentity', 'appParentTemplate',
      'appQualifyingData', 'assertGeneralKeySpec', 'assertKeyUsage', 'bankName', 'certify', 'command', 'createAk', 'createAppParent',
      'createCsr', 'createGeneralKey', 'createSelfSignedCertificate', 'createServicePrimary', 'createSigner', 'createTransientEk',
      'credentialBlobFromSeed', 'decode', 'decodeRc', 'ecdhZGen', 'ekEccTemplate', 'ekPublicFromSpki', 'ekRsaTemplate', 'ekTemplate',
      'encode', 'evictPersistent', 'findPersistedEk', 'flush', 'flushSession', 'formatPcrSelection', 'formatSignature', 'fromPcrSelection',
      'generalKeyFromBlobs', 'generalKeyTemplate', 'getTpmProperty', 'hashAlgOf', 'isDecryptionKey', 'isHashAlg', 'isRetryable',
      'isSigningKey', 'keySchemeHash', 'listHandles', 'listPersistentHandles', 'loadAppParent', 'loadGeneralKey', 'loadKey',
      'makeCredential', 'makePersistent', 'matchesTemplate', 'maxInputBuffer', 'nvBufferMax', 'nvRead', 'nvReadPublic', 'oaepLabel',
      'objectAttrs', 'objectName', 'openTransport', 'parseBlobs', 'parseIdObject', 'parsePcrBanks', 'parsePcrSelection', 'parseSignature',
      'parseSubjectAltNames', 'passwordAuth', 'pcrRead', 'pcrSelectionOf', 'persistKey', 'policyAuth', 'policySecret', 'publicToPem',
      'publicToSpkiDer', 'quote', 'quoteFiles', 'rcText', 'readClock', 'readCredentialFile', 'readPcrsOut', 'readPublic', 'rsaDecrypt',
      'servicePrimaryTemplate', 'sessionAttrs', 'sessionAuth', 'signDigest', 'signDigestWithKey', 'signMessage', 'signatureHash',
      'signerForAk', 'signerForKey', 'signingPublicFromSpki', 'srkRsaTemplate', 'startAuthSession', 'startPolicySession', 'toPcrSelection',
      'tpmHash', 'verifyCertify', 'verifyMessageSignature', 'verifyQuote', 'verifySignature', 'withAppParent', 'withEk',
      'withEndorsementPolicy', 'withGeneralKey', 'withHierarchyAuth', 'withLoadedKey', 'withServicePrimary', 'withSession',
      'writeCredentialFile', 'writePcrsOut',
    ],
    types: [
      'ActivateCredentialInput', 'AnyCommand', 'AppBindingLabel', 'AttestCheck', 'AttestOf', 'AttestReport', 'AttestResult', 'AuthArg',
      'AuthHandleName', 'AuthResponse', 'Authorization', 'BitField', 'CallOptions', 'CertifyOptions', 'Codec', 'CommandDescriptor',
      'CommandInput', 'CommandOutput', 'CreateAkOptions', 'CreatedKey', 'Credential', 'CsrOptions', 'DecryptScheme', 'DecryptionKey',
      'DeviceTransportOptions', 'DigestSignOptions', 'EccCurve', 'EccPublic', 'EkHandle', 'EkOptions', 'EncryptDirection',
      'EndorsementAuthOptions', 'GeneralKey', 'GeneralKeySpec', 'GeneralKeyUsage', 'HandleArg', 'HandleAuth', 'HashOptions', 'HashResult',
      'IdObject', 'Infer', 'KeyBlobs', 'KeyType', 'KnownAlg', 'LoadedAk', 'LoadedKey', 'MessageChunks', 'MessageSource', 'NamedHandle',
      'NvPublicInfo', 'NvReadOptions', 'PcrBank', 'PcrReadResult', 'PcrSelectionArg', 'PcrValues', 'PeerKey', 'PolicySession', 'PublicInfo',
      'PublicOf', 'QuoteOptions', 'RcInfo', 'RcKind', 'RsaBits', 'RsaDecryptOptions', 'RsaPublic', 'RunOptions', 'SaltKey',
      'SelfSignedOptions', 'SendOptions', 'ServicePrimary', 'ServicePrimaryOptions', 'SessionHmac', 'SessionUse', 'SignCallback',
      'SignOptions', 'SignRequest', 'SignScheme', 'SignatureFileFormat', 'SignatureFormat', 'SignatureOf', 'SignatureReport',
      'SignerAlgorithm', 'SignerOptions', 'SigningKey', 'SigningSchemeOptions', 'SpkiInput', 'StartSessionOptions', 'SubjectAltName',
      'SwtpmSocketOptions', 'TpmAlgId', 'TpmHandle', 'TpmOptions', 'TpmRcName', 'TpmRunner', 'TpmSigner', 'TpmTransportErrorCode',
      'TpmaObjectFlag', 'TpmaSessionFlag', 'TpmiAlgHash', 'TpmiAlgHashNull', 'TpmiAlgPublic', 'TpmiAlgSymMode', 'Transport',
      'TransportOptions', 'VerifyCertifyInput', 'VerifyQuoteInput', 'VerifySignatureInput', 'X509Output', 'X509SignScheme',
    ],
  },
  './wire': {
    source: 'src/tpm/entries/wire.ts',
    values: [
      'COMMANDS', 'Reader', 'STRUCTURES', 'TPMA_CC', 'TPMA_OBJECT_CODEC', 'TPMA_SESSION_CODEC', 'TPM_ALG_ID', 'TPM_CAP_CODEC',
      'TPM_CC_CODEC', 'TPM_ECC_CURVE', 'TPM_HANDLE', 'TPM_SE_CODEC', 'TPM_ST_CODEC', 'TPM_SU_CODEC', 'TpmDecodeError', 'TpmEncodeError',
      'Writer', 'cpHash', 'decode', 'encode', 'fixed', 'i32', 'leaf', 'list', 'marshalCommand', 'marshalErrorResponse', 'marshalResponse',
      'none', 'oneOf', 'remarshalCommand', 'responseCode', 'rpHash', 'sized', 'struct', 'tpm2b', 'u16', 'u32', 'u64', 'u8', 'union',
      'unmarshalCommand', 'unmarshalResponse', 'variant', 'yesNo',
    ],
    types: [
      'AnyCodec', 'AuthResponse', 'Codec', 'DecodedCommand', 'DecodedResponse', 'Infer', 'LeafName', 'Meta', 'UnionCodec', 'VariantValue',
    ],
  },
  './transport': {
    source: 'src/tpm/entries/transport.ts',
    values: [
      'ChardevTransport', 'DEFAULT_DEVICE_PATH', 'DEFAULT_TIMEOUT_MS', 'DeviceTransport', 'MAX_FRAME_SIZE', 'QueuedTransport',
      'StreamTransport', 'SwtpmSocketTransport', 'TPM_HEADER_SIZE', 'TpmTransportError', 'openTransport',
    ],
    types: [
      'Connector', 'DeviceTransportOptions', 'SendOptions', 'StreamTransportOptions', 'SwtpmSocketOptions', 'TpmTransportErrorCode',
      'Transport', 'TransportOptions',
    ],
  },
  './decode': {
    source: 'src/tpm/entries/decode.ts',
    values: [
      'TpmDecodeError', 'decodeCommandFrame', 'decodeCommandHex', 'decodeResponseFrame', 'decodeResponseHex', 'decodeStructure',
      'decodeStructureHex', 'encodeCommandFrame', 'encodeResponseFrame', 'encodeStructure', 'fromView', 'lookupCommand', 'lookupStructure',
      'roundtrip', 'toJson', 'toView',
    ],
    types: [
      'CommandFrameView', 'CommandSessionView', 'ResponseErrorView', 'ResponseFrameView', 'ResponseSessionView', 'RoundtripReport',
      'StructureView',
    ],
  },
};

/**
 * Helpers only the package itself uses: exported by their modules for src/ and the tests, never by
 * an entry. The first five are the ones issue 10 found in the old index.
 */
export const INTERNALS = [
  'ResponseFramer',
  'frameSize',
  'isLoopbackHost',
  'flushQuietly',
  'parseHex',
  'checkCommand',
  'hex32',
  'handleOf',
  'prepareCommand',
  'CURVES',
  'derToPem',
  'assertKeyType',
  'primaryQualifiedName',
  'describe',
  'untilAborted',
  'pause',
];
