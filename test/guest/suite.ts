/**
 * One qemu boot per suite: `prepare` fills the guest folder (bundles, addon), the guest runs
 * `node SCRIPT.cjs`, which prints `RESULT name PASS|FAIL detail` lines and a `SUMMARY`; each
 * expected check becomes one vitest test. Skipped (with a warning) only where qemu, swtpm or
 * cpio are missing, and never under CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GUEST_HOOK_TIMEOUT_MS,
  bundle,
  describeRun,
  guestDir,
  guestUnavailableReason,
  parseResults,
  removeDir,
  runInGuest,
  type GuestResult,
  type GuestRun,
} from './harness.js';
import { isCI } from '../helpers/ci.js';

export interface GuestSuite {
  title: string;
  /** Guest script (test/guest/NAME.ts), bundled to NAME.cjs in the guest folder. */
  script: string;
  checks: readonly string[];
  /** Extra preparation of the guest folder (executables, the vsock addon). */
  prepare?: (dir: string) => unknown;
}

export function defineGuestSuite(s: GuestSuite): void {
  const unavailable = guestUnavailableReason();
  if (unavailable && !isCI()) console.warn(`${s.script} skipped: ${unavailable}`);

  describe.skipIf(unavailable !== undefined && !isCI())(s.title, () => {
    let dir: string | undefined;
    let run: GuestRun | undefined;
    let results = new Map<string, GuestResult>();

    beforeAll(async () => {
      if (unavailable) throw new Error(`guest tests cannot run under CI: ${unavailable}`);
      dir = guestDir(s.script);
      const t0 = Date.now();
      await s.prepare?.(dir);
      await bundle(`test/guest/${s.script}.ts`, dir, s.script);
      const built = Date.now() - t0;
      run = await runInGuest(dir, `node ${s.script}.cjs`);
      results = parseResults(run.stdout);
      // the measurements are the evidence: keep them in the test log
      const lines = run.stdout.split('\n').filter((l) => /^(RESULT|SUMMARY)/.test(l));
      console.log(`${s.script}: prepared in ${built} ms, guest exit ${String(run.code)} after ${run.ms} ms\n${lines.join('\n')}`);
    }, GUEST_HOOK_TIMEOUT_MS);

    afterAll(() => removeDir(dir));

    it('the guest ran the script to the end', () => {
      expect(run?.stdout ?? '', describeRun(run)).toMatch(/^SUMMARY \d+ passed, \d+ failed/m);
      expect(run?.code, describeRun(run)).toBe(0);
    });

    for (const name of s.checks) {
      it(name, () => {
        const r = results.get(name);
        expect(r, `no RESULT line for ${name}\n${describeRun(run)}`).toBeDefined();
        expect(r!.ok, `${name}: ${r!.detail}`).toBe(true);
      });
    }
  });
}
