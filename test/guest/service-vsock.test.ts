/**
 * The service end to end over vsock, in a qemu guest whose kernel has the vsock loopback
 * transport (this machine has none): the real eve-tpm-service executable on /dev/tpmrm0 with
 * a vsock listener, tenants made with `eve-tpm-service tenant add`, the tenant recognised by
 * its peer CID (1, the loopback), ServiceClient and the bundled eve_tools_tpm2_* tools as
 * clients, a peer that stops reading, and SIGTERM. test/guest/service-vsock-guest.ts runs in the
 * guest; one boot for all checks, each asserted here.
 *
 * Every peer on the loopback is CID 1 (as accept() reports it), which no tenant may be bound to
 * (0-2 are reserved): tenants bound to CIDs are checked to be refused from it, and a secret-only
 * tenant does the work. See the guest script's header.
 * KEEP_GUEST_DIR=1 keeps the folder, with the service's JSON log in service-log.jsonl.
 */
import { defineGuestSuite } from './suite.js';
import { bundleExecutables, installAddon } from './harness.js';

const EXECUTABLES = ['eve-tpm-service', 'eve_tools_tpm2_genaik', 'eve_tools_tpm2_pubgetaik', 'eve_tools_tpm2_sign'] as const;

const CHECKS = [
  'tenant-add',
  'service-start',
  'health',
  'identity-loopback-cid-1',
  'create-keys',
  'public-key',
  'sign-small',
  'sign-streamed-2MiB',
  'tools-genaik-sign-pubgetaik',
  'tool-refused',
  'stalled-peer',
  'sigterm-exit-0',
  'service-log-clean',
] as const;

defineGuestSuite({
  title: 'eve-tpm-service over vsock in a qemu guest (AF_VSOCK loopback, CID 1, /dev/tpmrm0)',
  script: 'service-vsock-guest',
  checks: CHECKS,
  prepare: async (dir) => {
    await bundleExecutables(dir, EXECUTABLES);
    installAddon(dir);
  },
});
