/**
 * NV command descriptors beyond NV_Read/NV_Write that the firewall forwards on the app's own
 * indices and the library does not speak yet (Part 3 §31, rev 1.59).
 */
import { command } from '../tpm/command.js';
import { TPM2B_ATTEST, TPM2B_AUTH, TPM2B_DATA, TPM2B_MAX_NV_BUFFER, TPMT_SIGNATURE, TPMT_SIG_SCHEME } from '../tpm/structures.js';
import { u16, u64 } from '../tpm/wire/codec.js';

/** authHandle: the index itself, or the owner (Part 3 §31.8–31.14). */
const nvHandles = { authHandle: 'auth', nvIndex: 'noauth' } as const;

/** TPM2_NV_Increment — Part 3 §31.8. */
export const NV_Increment = command({ name: 'NV_Increment', code: 0x134, spec: 'Part 3 §31.8', handles: nvHandles, params: {}, response: {} });

/** TPM2_NV_Extend — Part 3 §31.9. */
export const NV_Extend = command({ name: 'NV_Extend', code: 0x136, spec: 'Part 3 §31.9', handles: nvHandles, params: { data: TPM2B_MAX_NV_BUFFER }, response: {} });

/** TPM2_NV_SetBits — Part 3 §31.10. */
export const NV_SetBits = command({ name: 'NV_SetBits', code: 0x135, spec: 'Part 3 §31.10', handles: nvHandles, params: { bits: u64 }, response: {} });

/** TPM2_NV_WriteLock — Part 3 §31.11. */
export const NV_WriteLock = command({ name: 'NV_WriteLock', code: 0x138, spec: 'Part 3 §31.11', handles: nvHandles, params: {}, response: {} });

/** TPM2_NV_ReadLock — Part 3 §31.14. */
export const NV_ReadLock = command({ name: 'NV_ReadLock', code: 0x14f, spec: 'Part 3 §31.14', handles: nvHandles, params: {}, response: {} });

/** TPM2_NV_ChangeAuth — Part 3 §31.15. nvIndex: ADMIN role, so a policy session (the chip checks). */
export const NV_ChangeAuth = command({
  name: 'NV_ChangeAuth',
  code: 0x13b,
  spec: 'Part 3 §31.15',
  handles: { nvIndex: 'auth' },
  params: { newAuth: TPM2B_AUTH },
  response: {},
});

/** TPM2_NV_Certify — Part 3 §31.16. */
export const NV_Certify = command({
  name: 'NV_Certify',
  code: 0x184,
  spec: 'Part 3 §31.16',
  handles: { signHandle: 'auth', authHandle: 'auth', nvIndex: 'noauth' },
  params: { qualifyingData: TPM2B_DATA, inScheme: TPMT_SIG_SCHEME, size: u16, offset: u16 },
  response: { certifyInfo: TPM2B_ATTEST, signature: TPMT_SIGNATURE },
});
