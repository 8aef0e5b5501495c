/**
 * The guest's real TPM device: in a qemu guest, eve-tpm-vtpmd makes /dev/tpmN + /dev/tpmrmN with
 * the kernel's vTPM proxy and passes the commands through to the guest's raw chip /dev/tpm0; the
 * library's device transport and stock tpm2-tools (device TCTI) use the new device
 * (test/guest/vtpm-guest.ts). Then the same daemon with the commands through eve-tpm-service's raw
 * channel (the firewall) over vsock loopback. The guest kernel's tpm_vtpm_proxy.ko comes from the same Debian
 * package the harness booted (test/guest/vtpm-module.ts). One boot for all checks.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleExecutables, installAddon } from './harness.js';
import { defineGuestSuite } from './suite.js';
import { installTpm2Tools, vtpmProxyModule } from './vtpm-module.js';

const CHECKS = [
  'no-vtpmx',
  'insmod',
  'no-channel',
  'device-up',
  'library-getrandom',
  'library-createprimary-sign',
  'tpm2-tools',
  'sigterm',
  // the same device through the service's raw channel (the firewall), over vsock loopback
  'firewall-path',
] as const;

defineGuestSuite({
  title: 'eve-tpm-vtpmd: a vTPM-proxy device in a qemu guest (pass-through to /dev/tpm0, and through the firewall)',
  script: 'vtpm-guest',
  checks: CHECKS,
  prepare: async (dir) => {
    copyFileSync(vtpmProxyModule(), join(dir, 'tpm_vtpm_proxy.ko'));
    installAddon(dir);
    await bundleExecutables(dir, ['eve-tpm-vtpmd', 'eve-tpm-service']);
    // Without tpm2-tools on the host the check fails with that reason (CI installs them).
    installTpm2Tools(dir);
  },
});
