/**
 * TPM commands the library does not carry (the service never sends them), declared here only
 * for tests that play the device owner or the platform: a hierarchy password, dictionary-attack
 * settings, a TPM shutdown before a restart.
 */
import { command } from '../../src/tpm/command.js';
import { TPM_CC } from '../../src/tpm/constants.js';
import { TPM2B_AUTH } from '../../src/tpm/structures.js';
import { u16, u32 } from '../../src/tpm/wire/codec.js';

/** TPM2_HierarchyChangeAuth (Part 3 §24.8): gives a hierarchy a password, as an owner that set one would have. */
export const HierarchyChangeAuth = command({
  name: 'HierarchyChangeAuth',
  code: 0x129,
  spec: 'Part 3 §24.8',
  handles: { authHandle: 'auth' },
  params: { newAuth: TPM2B_AUTH },
  response: {},
});

/** TPM2_DictionaryAttackLockReset (Part 3 §25.2): clears the chip's failure count (lockout authorization). */
export const DictionaryAttackLockReset = command({ name: 'DictionaryAttackLockReset', code: 0x139, spec: 'Part 3 §25.2', handles: { lockHandle: 'auth' }, params: {}, response: {} });

/** TPM2_DictionaryAttackParameters (Part 3 §25.3): the chip's tries and recovery times. */
export const DictionaryAttackParameters = command({
  name: 'DictionaryAttackParameters',
  code: 0x13a,
  spec: 'Part 3 §25.3',
  handles: { lockHandle: 'auth' },
  params: { newMaxTries: u32, newRecoveryTime: u32, lockoutRecovery: u32 },
  response: {},
});

/** TPM2_Shutdown (Part 3 §9.4): an orderly shutdown, STATE for a later resume. */
export const Shutdown = command({ name: 'Shutdown', code: TPM_CC.Shutdown, spec: 'Part 3 §9.4', params: { shutdownType: u16 }, response: {} });
