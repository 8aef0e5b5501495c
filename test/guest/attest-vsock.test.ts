/**
 * Attestation end to end in a qemu guest (issue 11): the real eve-tpm-service on the kernel's
 * /dev/tpmrm0 behind a vsock listener, an application using the bundled container tools over
 * the vsock loopback (CID 1), and the cloud's side (the bundled eve-tpm-verify) checking what
 * they produced — PCR read, quote (plain and bound to the app), the EK and credential
 * activation. test/guest/attest-vsock-guest.ts runs in the guest; one boot for all checks.
 * KEEP_GUEST_DIR=1 keeps the folder, with the service's JSON log in service-log.jsonl.
 */
import { defineGuestSuite } from './suite.js';
import { bundleExecutables, installAddon } from './harness.js';

const EXECUTABLES = [
  'eve-tpm-service',
  'eve-tpm-verify',
  'eve_tools_tpm2_genaik',
  'eve_tools_tpm2_pubgetaik',
  'eve_tools_tpm2_listkeys',
  'eve_tools_tpm2_pcrread',
  'eve_tools_tpm2_quote',
  'eve_tools_tpm2_ekpub',
  'eve_tools_tpm2_activatecredential',
] as const;

const CHECKS = [
  'service-start',
  'genaik',
  'pcrread-matches-tpmrm0',
  'quote-verified',
  'quote-refused-wrong-nonce-and-pcrs',
  'quote-bound-to-app',
  'credential-activation',
  'sigterm-exit-0',
  'service-log-clean',
] as const;

defineGuestSuite({
  title: 'attestation over vsock in a qemu guest: tools → eve-tpm-service → /dev/tpmrm0 → eve-tpm-verify',
  script: 'attest-vsock-guest',
  checks: CHECKS,
  prepare: async (dir) => {
    await bundleExecutables(dir, EXECUTABLES);
    installAddon(dir);
  },
});
