/**
 * Object command descriptors the firewall forwards on the app's own objects and the library
 * does not speak yet (Part 3 rev 1.59: §12, §13, §15, §17, §18).
 */
import { command } from '../tpm/command.js';
import {
  TPM2B_ATTEST,
  TPM2B_AUTH,
  TPM2B_DATA,
  TPM2B_DIGEST,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_MAX_BUFFER,
  TPM2B_NAME,
  TPM2B_PRIVATE,
  TPM2B_PUBLIC,
  TPM2B_SENSITIVE_CREATE,
  TPM_ALG_ID,
  TPMI_ALG_HASH_NULL,
  TPMT_SIGNATURE,
  TPMT_SIG_SCHEME,
  TPMT_SYM_DEF_OBJECT,
  TPMT_TK_CREATION,
} from '../tpm/structures.js';
import { tpm2b, yesNo } from '../tpm/wire/codec.js';

const TPM2B_IV = tpm2b('TPM2B_IV', 16);
/**
 * TPM2B_TEMPLATE (Part 2 §12.2.6): a TPMT_PUBLIC or a derivation template, carried opaque as
 * Create's template effectively is: the chip checks it against the app's own parent.
 */
const TPM2B_TEMPLATE = tpm2b('TPM2B_TEMPLATE', 1024);

/** TPM2_CreateLoaded — Part 3 §12.9. parentHandle: an object here (a hierarchy is CreatePrimary's). */
export const CreateLoaded = command({
  name: 'CreateLoaded',
  code: 0x191,
  spec: 'Part 3 §12.9',
  handles: { parentHandle: 'auth' },
  params: { inSensitive: TPM2B_SENSITIVE_CREATE, inPublic: TPM2B_TEMPLATE },
  responseHandles: ['objectHandle'],
  creates: ['objectHandle'],
  response: { outPrivate: TPM2B_PRIVATE, outPublic: TPM2B_PUBLIC, name: TPM2B_NAME },
});

/** TPM2_ObjectChangeAuth — Part 3 §12.8. objectHandle: ADMIN role; parentHandle: its parent. */
export const ObjectChangeAuth = command({
  name: 'ObjectChangeAuth',
  code: 0x150,
  spec: 'Part 3 §12.8',
  handles: { objectHandle: 'auth', parentHandle: 'noauth' },
  params: { newAuth: TPM2B_AUTH },
  response: { outPrivate: TPM2B_PRIVATE },
});

/** TPM2_Duplicate — Part 3 §13.1. objectHandle: DUP role (a policy session); newParentHandle may be TPM_RH_NULL. */
export const Duplicate = command({
  name: 'Duplicate',
  code: 0x14b,
  spec: 'Part 3 §13.1',
  handles: { objectHandle: 'auth', newParentHandle: 'noauth' },
  params: { encryptionKeyIn: TPM2B_DATA, symmetricAlg: TPMT_SYM_DEF_OBJECT },
  response: { encryptionKeyOut: TPM2B_DATA, duplicate: TPM2B_PRIVATE, outSymSeed: TPM2B_ENCRYPTED_SECRET },
});

/** TPM2_Import — Part 3 §13.3. */
export const Import = command({
  name: 'Import',
  code: 0x156,
  spec: 'Part 3 §13.3',
  handles: { parentHandle: 'auth' },
  params: { encryptionKey: TPM2B_DATA, objectPublic: TPM2B_PUBLIC, duplicate: TPM2B_PRIVATE, inSymSeed: TPM2B_ENCRYPTED_SECRET, symmetricAlg: TPMT_SYM_DEF_OBJECT },
  response: { outPrivate: TPM2B_PRIVATE },
});

/** TPM2_EncryptDecrypt — Part 3 §15.2 (EncryptDecrypt2's older order: inData last). */
export const EncryptDecrypt = command({
  name: 'EncryptDecrypt',
  code: 0x164,
  spec: 'Part 3 §15.2',
  handles: { keyHandle: 'auth' },
  params: { decrypt: yesNo, mode: TPM_ALG_ID, ivIn: TPM2B_IV, inData: TPM2B_MAX_BUFFER },
  response: { outData: TPM2B_MAX_BUFFER, ivOut: TPM2B_IV },
});

/** TPM2_HMAC — Part 3 §15.5. */
export const HMAC = command({
  name: 'HMAC',
  code: 0x155,
  spec: 'Part 3 §15.5',
  handles: { handle: 'auth' },
  params: { buffer: TPM2B_MAX_BUFFER, hashAlg: TPMI_ALG_HASH_NULL },
  response: { outHMAC: TPM2B_DIGEST },
});

/** TPM2_HMAC_Start — Part 3 §17.2. sequenceHandle: a new sequence object (transient). */
export const HMAC_Start = command({
  name: 'HMAC_Start',
  code: 0x15b,
  spec: 'Part 3 §17.2',
  handles: { handle: 'auth' },
  params: { auth: TPM2B_AUTH, hashAlg: TPMI_ALG_HASH_NULL },
  responseHandles: ['sequenceHandle'],
  creates: ['sequenceHandle'],
  response: {},
});

/** TPM2_CertifyCreation — Part 3 §18.3. signHandle signs; objectHandle needs no authorization. */
export const CertifyCreation = command({
  name: 'CertifyCreation',
  code: 0x14a,
  spec: 'Part 3 §18.3',
  handles: { signHandle: 'auth', objectHandle: 'noauth' },
  params: { qualifyingData: TPM2B_DATA, creationHash: TPM2B_DIGEST, inScheme: TPMT_SIG_SCHEME, creationTicket: TPMT_TK_CREATION },
  response: { certifyInfo: TPM2B_ATTEST, signature: TPMT_SIGNATURE },
});
