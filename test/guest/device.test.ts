/**
 * The library's device transport against the genuine kernel resource manager: a qemu guest
 * with a TPM (swtpm on the host behind tpm-tis) runs test/guest/device-guest.ts against
 * /dev/tpmrm0. One boot for all checks; each check is asserted here.
 */
import { defineGuestSuite } from './suite.js';

const CHECKS = [
  'open',
  'createAk-rsa',
  'createAk-ecc',
  'virtual-handle',
  'persist-readpublic-pem',
  'sign-loaded',
  'sign-persistent',
  'fd-isolation',
  'flush-on-close',
  'loop-responsive',
  'evict',
  'flush-hygiene',
] as const;

defineGuestSuite({
  title: 'DeviceTransport against the kernel resource manager /dev/tpmrm0 in a qemu guest',
  script: 'device-guest',
  checks: CHECKS,
});
