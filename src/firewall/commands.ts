/**
 * Descriptors the firewall needs that the library does not speak yet (Part 3, rev 1.59). Kept
 * here, not in src/tpm/commands.ts, so the library's command list (and its decoder tool and
 * round-trip tests) is unchanged until the library itself uses them.
 */
import { command } from '../tpm/command.js';
import {
  TPM2B_AUTH,
  TPM2B_DIGEST,
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_MAX_NV_BUFFER,
  TPM2B_NAME,
  TPM2B_NV_PUBLIC,
  TPM2B_PUBLIC,
  TPM2B_SENSITIVE_DATA,
  TPM_HANDLE,
} from '../tpm/structures.js';
import { tpm2b, u16, yesNo } from '../tpm/wire/codec.js';

/**
 * TPM2B_SENSITIVE (Part 2 §12.3.3) carried opaque: the firewall never looks inside a key the
 * app loads into the NULL hierarchy; the TPM checks it. Bounded by MAX_COMMAND_SIZE.
 */
const TPM2B_SENSITIVE_OPAQUE = tpm2b('TPM2B_SENSITIVE', 4096);

/** TPM2_SelfTest — Part 3 §10.2. The firewall answers it (decide.ts): the chip's self test is the host's. */
export const SelfTest = command({
  name: 'SelfTest',
  code: 0x143,
  spec: 'Part 3 §10.2',
  params: { fullTest: yesNo },
  response: {},
});

/** TPM2_LoadExternal — Part 3 §12.3. objectHandle: the loaded object (transient). */
export const LoadExternal = command({
  name: 'LoadExternal',
  code: 0x167,
  spec: 'Part 3 §12.3',
  params: { inPrivate: TPM2B_SENSITIVE_OPAQUE, inPublic: TPM2B_PUBLIC, hierarchy: TPM_HANDLE },
  responseHandles: ['objectHandle'],
  creates: ['objectHandle'],
  response: { name: TPM2B_NAME },
});

/** TPM2_MakeCredential — Part 3 §12.6. A public-key operation; handle needs no authorization. */
export const MakeCredential = command({
  name: 'MakeCredential',
  code: 0x168,
  spec: 'Part 3 §12.6',
  handles: { handle: 'noauth' },
  params: { credential: TPM2B_DIGEST, objectName: TPM2B_NAME },
  response: { credentialBlob: TPM2B_ID_OBJECT, secret: TPM2B_ENCRYPTED_SECRET },
});

/** TPM2_Unseal — Part 3 §12.7. itemHandle needs USER authorization. */
export const Unseal = command({
  name: 'Unseal',
  code: 0x15e,
  spec: 'Part 3 §12.7',
  handles: { itemHandle: 'auth' },
  params: {},
  response: { outData: TPM2B_SENSITIVE_DATA },
});

/** TPM2_NV_DefineSpace — Part 3 §31.3. authHandle: TPM_RH_OWNER or TPM_RH_PLATFORM. */
export const NV_DefineSpace = command({
  name: 'NV_DefineSpace',
  code: 0x12a,
  spec: 'Part 3 §31.3',
  handles: { authHandle: 'auth' },
  params: { auth: TPM2B_AUTH, publicInfo: TPM2B_NV_PUBLIC },
  response: {},
});

/** TPM2_NV_UndefineSpace — Part 3 §31.4. authHandle: TPM_RH_OWNER or TPM_RH_PLATFORM. */
export const NV_UndefineSpace = command({
  name: 'NV_UndefineSpace',
  code: 0x122,
  spec: 'Part 3 §31.4',
  handles: { authHandle: 'auth', nvIndex: 'noauth' },
  params: {},
  response: {},
});

/** TPM2_NV_Write — Part 3 §31.7. authHandle: the index itself, or the owner/platform. */
export const NV_Write = command({
  name: 'NV_Write',
  code: 0x137,
  spec: 'Part 3 §31.7',
  handles: { authHandle: 'auth', nvIndex: 'noauth' },
  params: { data: TPM2B_MAX_NV_BUFFER, offset: u16 },
  response: {},
});
