/**
 * The vsock adapter (src/service/vsock) against a real kernel: this machine has no vsock
 * loopback, so a qemu guest runs test/guest/vsock-guest.ts (server and clients on CID 1,
 * node:http over the adapter). One boot for all checks; each check is asserted here.
 */
import { defineGuestSuite } from './suite.js';
import { installAddon } from './harness.js';

const CHECKS = [
  'listen',
  'peer-cid',
  'http',
  'concurrent-peers',
  'upload-16MiB',
  'download-16MiB',
  'echo-both-ways-4MiB',
  'raw-eof',
  'stalled-peer',
  'refused',
  'no-fd-leak',
  'listener-close',
  'inherited-fd',
  'port-in-use',
] as const;

defineGuestSuite({
  title: 'vsock adapter in a qemu guest (AF_VSOCK loopback, CID 1)',
  script: 'vsock-guest',
  checks: CHECKS,
  prepare: (dir) => installAddon(dir),
});
