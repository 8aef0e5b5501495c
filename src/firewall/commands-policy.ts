/**
 * Policy-session command descriptors the firewall forwards and the library does not speak yet
 * (Part 3 §23, rev 1.59). Every one changes only the policy digest of the session it names;
 * the chip checks what they assert.
 */
import { command } from '../tpm/command.js';
import {
  TPM2B_DIGEST,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_TIMEOUT,
  TPM_CC_CODEC,
  TPML_DIGEST,
  TPML_PCR_SELECTION,
  TPMT_SIGNATURE,
  TPMT_TK_AUTH,
  TPMT_TK_VERIFIED,
} from '../tpm/structures.js';
import { i32, u16, yesNo } from '../tpm/wire/codec.js';

/** TPM2B_OPERAND (Part 2 §10.4.5): a TPM2B_DIGEST by another name. */
const TPM2B_OPERAND = TPM2B_DIGEST;

/** TPM2_PolicySigned — Part 3 §23.3. authObject: the key that signed the authorization. */
export const PolicySigned = command({
  name: 'PolicySigned',
  code: 0x160,
  spec: 'Part 3 §23.3',
  handles: { authObject: 'noauth', policySession: 'noauth' },
  params: { nonceTPM: TPM2B_NONCE, cpHashA: TPM2B_DIGEST, policyRef: TPM2B_NONCE, expiration: i32, auth: TPMT_SIGNATURE },
  response: { timeout: TPM2B_TIMEOUT, policyTicket: TPMT_TK_AUTH },
});

/** TPM2_PolicyOR — Part 3 §23.6. */
export const PolicyOR = command({
  name: 'PolicyOR',
  code: 0x171,
  spec: 'Part 3 §23.6',
  handles: { policySession: 'noauth' },
  params: { pHashList: TPML_DIGEST },
  response: {},
});

/** TPM2_PolicyPCR — Part 3 §23.7. The chip reads the PCRs itself. */
export const PolicyPCR = command({
  name: 'PolicyPCR',
  code: 0x17f,
  spec: 'Part 3 §23.7',
  handles: { policySession: 'noauth' },
  params: { pcrDigest: TPM2B_DIGEST, pcrs: TPML_PCR_SELECTION },
  response: {},
});

/** TPM2_PolicyNV — Part 3 §23.9. authHandle authorizes reading nvIndex. */
export const PolicyNV = command({
  name: 'PolicyNV',
  code: 0x149,
  spec: 'Part 3 §23.9',
  handles: { authHandle: 'auth', nvIndex: 'noauth', policySession: 'noauth' },
  params: { operandB: TPM2B_OPERAND, offset: u16, operation: u16 },
  response: {},
});

/** TPM2_PolicyCommandCode — Part 3 §23.11. */
export const PolicyCommandCode = command({
  name: 'PolicyCommandCode',
  code: 0x16c,
  spec: 'Part 3 §23.11',
  handles: { policySession: 'noauth' },
  params: { code: TPM_CC_CODEC },
  response: {},
});

/** TPM2_PolicyCpHash — Part 3 §23.13. */
export const PolicyCpHash = command({
  name: 'PolicyCpHash',
  code: 0x16e,
  spec: 'Part 3 §23.13',
  handles: { policySession: 'noauth' },
  params: { cpHashA: TPM2B_DIGEST },
  response: {},
});

/** TPM2_PolicyNameHash — Part 3 §23.14. */
export const PolicyNameHash = command({
  name: 'PolicyNameHash',
  code: 0x170,
  spec: 'Part 3 §23.14',
  handles: { policySession: 'noauth' },
  params: { nameHash: TPM2B_DIGEST },
  response: {},
});

/** TPM2_PolicyDuplicationSelect — Part 3 §23.15. */
export const PolicyDuplicationSelect = command({
  name: 'PolicyDuplicationSelect',
  code: 0x188,
  spec: 'Part 3 §23.15',
  handles: { policySession: 'noauth' },
  params: { objectName: TPM2B_NAME, newParentName: TPM2B_NAME, includeObject: yesNo },
  response: {},
});

/** TPM2_PolicyAuthorize — Part 3 §23.16. checkTicket: VerifySignature's, over approvedPolicy ‖ policyRef. */
export const PolicyAuthorize = command({
  name: 'PolicyAuthorize',
  code: 0x16a,
  spec: 'Part 3 §23.16',
  handles: { policySession: 'noauth' },
  params: { approvedPolicy: TPM2B_DIGEST, policyRef: TPM2B_NONCE, keySign: TPM2B_NAME, checkTicket: TPMT_TK_VERIFIED },
  response: {},
});

/** TPM2_PolicyAuthValue — Part 3 §23.17. */
export const PolicyAuthValue = command({
  name: 'PolicyAuthValue',
  code: 0x16b,
  spec: 'Part 3 §23.17',
  handles: { policySession: 'noauth' },
  params: {},
  response: {},
});

/** TPM2_PolicyPassword — Part 3 §23.18. */
export const PolicyPassword = command({
  name: 'PolicyPassword',
  code: 0x18c,
  spec: 'Part 3 §23.18',
  handles: { policySession: 'noauth' },
  params: {},
  response: {},
});

/** TPM2_PolicyRestart — Part 3 §11.2. */
export const PolicyRestart = command({
  name: 'PolicyRestart',
  code: 0x180,
  spec: 'Part 3 §11.2',
  handles: { sessionHandle: 'noauth' },
  params: {},
  response: {},
});
