/**
 * The library's device transport against the genuine kernel resource manager: a qemu guest
 * with a TPM (swtpm on the host behind tpm-tis) runs test/guest/device-guest.ts against
 * /dev/tpmrm0. One boot for all checks; each check is asserted here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GUEST_HOOK_TIMEOUT_MS,
  bundle,
  describeRun,
  guestDir,
  guestUnavailableReason,
  isCI,
  parseResults,
  removeDir,
  runInGuest,
  type GuestResult,
  type GuestRun,
} from './harness.js';

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

const unavailable = guestUnavailableReason();
if (unavailable && !isCI()) console.warn(`device guest tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== undefined && !isCI())('DeviceTransport against the kernel resource manager /dev/tpmrm0 in a qemu guest', () => {
  let dir: string | undefined;
  let run: GuestRun | undefined;
  let results = new Map<string, GuestResult>();

  beforeAll(async () => {
    if (unavailable) throw new Error(`guest tests cannot run under CI: ${unavailable}`);
    dir = guestDir('device-guest');
    await bundle('test/guest/device-guest.ts', dir, 'device-guest');
    run = await runInGuest(dir, 'node device-guest.cjs');
    results = parseResults(run.stdout);
    // the measurements are the evidence: keep them in the test log
    console.log(`device guest run: exit ${String(run.code)}, ${run.ms} ms\n${run.stdout.split('\n').filter((l) => /^(RESULT|SUMMARY)/.test(l)).join('\n')}`);
  }, GUEST_HOOK_TIMEOUT_MS);

  afterAll(() => removeDir(dir));

  it('the guest ran the script to the end', () => {
    expect(run?.stdout ?? '', describeRun(run)).toMatch(/^SUMMARY \d+ passed, \d+ failed/m);
    expect(run?.code, describeRun(run)).toBe(0);
  });

  for (const name of CHECKS) {
    it(name, () => {
      const r = results.get(name);
      expect(r, `no RESULT line for ${name}\n${describeRun(run)}`).toBeDefined();
      expect(r!.ok, `${name}: ${r!.detail}`).toBe(true);
    });
  }
});
