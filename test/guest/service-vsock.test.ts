/**
 * The service end to end over vsock, in a qemu guest whose kernel has the vsock loopback
 * transport (this machine has none): the real eve-tpm-service executable on /dev/tpmrm0 with
 * a vsock listener, tenants made with `eve-tpm-service tenant add`, the tenant recognised by
 * its peer CID (1, the loopback), ServiceClient and the bundled eve_tools_tpm2_* tools as
 * clients, a peer that stops reading, and SIGTERM. test/guest/service-vsock-guest.ts runs in the
 * guest; one boot for all checks, each asserted here.
 *
 * Every peer on the loopback is CID 1, which no tenant may be bound to (0-2 are reserved), so
 * the CID-bound checks have the service's `ss` (via $EVE_TOOLS_SS) report the peer CID as 5 or
 * 77 through a small wrapper; the genuine CID 1 is checked too. See the guest script's header.
 * KEEP_GUEST_DIR=1 keeps the folder, with the service's JSON log in service-log.jsonl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GUEST_HOOK_TIMEOUT_MS,
  bundle,
  bundleExecutables,
  describeRun,
  guestDir,
  guestUnavailableReason,
  installAddon,
  isCI,
  parseResults,
  removeDir,
  runInGuest,
  type GuestResult,
  type GuestRun,
} from './harness.js';

const EXECUTABLES = ['eve-tpm-service', 'eve_tools_tpm2_genaik', 'eve_tools_tpm2_pubgetaik', 'eve_tools_tpm2_sign'] as const;

const CHECKS = [
  'tenant-add',
  'service-start',
  'health',
  'identity-loopback-cid-1',
  'identity-by-cid',
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

const unavailable = guestUnavailableReason();
if (unavailable && !isCI()) console.warn(`service vsock guest tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== undefined && !isCI())('eve-tpm-service over vsock in a qemu guest (AF_VSOCK loopback, CID 1, /dev/tpmrm0)', () => {
  let dir: string | undefined;
  let run: GuestRun | undefined;
  let results = new Map<string, GuestResult>();

  beforeAll(async () => {
    if (unavailable) throw new Error(`guest tests cannot run under CI: ${unavailable}`);
    dir = guestDir('service-vsock-guest');
    const t0 = Date.now();
    await bundleExecutables(dir, EXECUTABLES);
    await bundle('test/guest/service-vsock-guest.ts', dir, 'service-vsock-guest');
    installAddon(dir);
    const built = Date.now() - t0;
    run = await runInGuest(dir, 'node service-vsock-guest.cjs');
    results = parseResults(run.stdout);
    // the measurements are the evidence: keep them in the test log
    console.log(
      `service vsock guest run: bundles ${built} ms, guest exit ${String(run.code)} after ${run.ms} ms\n` +
        run.stdout
          .split('\n')
          .filter((l) => /^(RESULT|SUMMARY)/.test(l))
          .join('\n'),
    );
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
