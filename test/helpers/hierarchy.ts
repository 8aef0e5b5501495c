/**
 * TPM2_HierarchyChangeAuth (Part 3 §24.8): not in the library (the service never changes a
 * hierarchy's authorization), declared here only so tests can give the endorsement hierarchy
 * a password, as an owner that set one would have.
 */
import { command } from '../../src/tpm/command.js';
import { TPM2B_AUTH } from '../../src/tpm/structures.js';

export const HierarchyChangeAuth = command({
  name: 'HierarchyChangeAuth',
  code: 0x129,
  spec: 'Part 3 §24.8',
  handles: { authHandle: 'auth' },
  params: { newAuth: TPM2B_AUTH },
  response: {},
});
