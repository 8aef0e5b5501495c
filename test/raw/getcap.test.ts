/**
 * Stock `tpm2_getcap properties-variable` / `properties-fixed` and `tpm2_readclock` through the
 * cmd TCTI and the raw channel, against swtpm: the variable counts are the app's own (its NV
 * indices and counters, its quotas), the fixed ones the chip's; the boot counts differ between
 * apps and from the chip's, the same app sees the same ones on every run and after a restart.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as C from '../../src/tpm/commands.js';
import { DEFAULT_LIMITS } from '../../src/firewall/app.js';
import { setClockKey } from '../../src/firewall/read-clock.js';
import { RawApps } from '../../src/service/raw/apps.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti, rawSettled, stockToolsThere, tctiEnv } from './helpers.js';

const toolsThere = stockToolsThere();

/** tpm2_getcap's `TPM2_PT_NAME: 0x…` (variable) and `TPM2_PT_NAME:` + `raw: 0x…` (fixed) entries as numbers. */
const props = (r: RunResult): Map<string, number> =>
  new Map([...r.stdout.matchAll(/^(TPM2_PT_[A-Z0-9_]+):[ \t]*(?:\n[ \t]+raw:[ \t]*)?(0x[0-9a-fA-F]+)[ \t]*$/gm)].map((m) => [m[1]!, Number(m[2])]));
/** tpm2_readclock's YAML: reset_count and restart_count. */
const counts = (r: RunResult): { reset: number; restart: number } => ({
  reset: Number(/reset_count:\s*(\d+)/.exec(r.stdout)?.[1]),
  restart: Number(/restart_count:\s*(\d+)/.exec(r.stdout)?.[1]),
});

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !toolsThere, 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('tpm2_getcap properties and tpm2_readclock through the raw channel', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const tool = (tenant: string) => (name: string, ...args: string[]): Promise<RunResult> =>
    runOk(name, args, { cwd: work.dir, env: tctiEnv(tcti, env.unix, env.secrets[tenant]), timeoutMs: 60_000 });
  const alice = tool('alice');
  const bob = tool('bob');

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-getcap-');
    tcti = bundleTcti(work.dir);
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('properties-variable: the app’s NV indices, counters and quotas; properties-fixed: the chip’s', async () => {
    const first = new RawApps().of('legacy:alice').nvRange.first;
    await alice('tpm2_nvdefine', `0x${first.toString(16)}`, '-C', 'o', '-s', '16', '-a', 'ownerread|ownerwrite');
    await alice('tpm2_nvdefine', `0x${(first + 1).toString(16)}`, '-C', 'o', '-a', 'ownerread|ownerwrite|nt=counter');
    const a = props(await alice('tpm2_getcap', 'properties-variable'));
    const L = DEFAULT_LIMITS;
    expect(a.get('TPM2_PT_HR_NV_INDEX')).toBe(2);
    expect(a.get('TPM2_PT_NV_COUNTERS')).toBe(1);
    expect(a.get('TPM2_PT_NV_COUNTERS_AVAIL')).toBe(L.nvIndices - 2);
    expect(a.get('TPM2_PT_HR_PERSISTENT')).toBe(0);
    expect(a.get('TPM2_PT_HR_PERSISTENT_AVAIL')).toBe(L.persistents);
    expect(a.get('TPM2_PT_HR_TRANSIENT_AVAIL')).toBe(L.transients);
    expect(a.get('TPM2_PT_HR_LOADED')).toBe(0);
    expect(a.get('TPM2_PT_HR_LOADED_AVAIL')).toBe(L.sessions);
    expect(a.get('TPM2_PT_HR_ACTIVE_AVAIL')).toBe(L.sessions);
    expect(a.get('TPM2_PT_LOCKOUT_COUNTER')).toBe(0);
    // The app's limit, never above all apps' total: swtpm's 3 tries less 2 kept for EVE (docs/FIREWALL.md "DA safety").
    expect(a.get('TPM2_PT_MAX_AUTH_FAIL')).toBe(Math.min(L.daFailures, 1));

    const b = props(await bob('tpm2_getcap', 'properties-variable'));
    expect(b.get('TPM2_PT_HR_NV_INDEX')).toBe(0);
    expect(b.get('TPM2_PT_NV_COUNTERS')).toBe(0);

    // The fixed group is the chip's, as the library reads it outside the firewall.
    const fixed = props(await alice('tpm2_getcap', 'properties-fixed'));
    const chip = await env.onTpm(async (tpm) => (await tpm.run(C.GetCapability, { capability: 6 as never, property: 0x100, propertyCount: 127 })).capabilityData);
    const chipFixed = new Map((chip as { data: Array<{ property: number; value: number }> }).data.map((p) => [p.property, p.value]));
    expect(fixed.get('TPM2_PT_INPUT_BUFFER')).toBe(chipFixed.get(0x10d));
    expect(fixed.get('TPM2_PT_HR_TRANSIENT_MIN')).toBe(chipFixed.get(0x10e));
    expect(fixed.get('TPM2_PT_NV_INDEX_MAX')).toBe(chipFixed.get(0x117));
    expect(fixed.size).toBeGreaterThan(10);

    await alice('tpm2_nvundefine', `0x${first.toString(16)}`, '-C', 'o');
    await alice('tpm2_nvundefine', `0x${(first + 1).toString(16)}`, '-C', 'o');
    await rawSettled(env);
  });

  it('tpm2_readclock: boot counts per app, the same on every run, not the chip’s', async () => {
    const a1 = counts(await alice('tpm2_readclock'));
    const a2 = counts(await alice('tpm2_readclock'));
    const b1 = counts(await bob('tpm2_readclock'));
    const chip = await env.onTpm(async (tpm) => (await tpm.run(C.ReadClock, {})).currentTime.clockInfo);
    expect(Number.isInteger(a1.reset) && Number.isInteger(a1.restart)).toBe(true);
    expect(a2).toEqual(a1);
    expect(b1.reset).not.toBe(a1.reset);
    expect(b1.restart).not.toBe(a1.restart);
    expect(a1.reset).not.toBe(chip.resetCount);
    expect(a1.restart).not.toBe(chip.restartCount);
    await rawSettled(env);

    // A restart (a new process's random key, then the kept one read from the state dir): the same counts.
    setClockKey(randomBytes(32));
    await env.restartService();
    expect(counts(await alice('tpm2_readclock'))).toEqual(a1);
    await rawSettled(env);
  });
});
