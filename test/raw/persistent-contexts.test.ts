/**
 * An app's virtual persistent handles are made once and then loaded from their saved context
 * (src/service/raw/persistent-ops.ts), through stock tpm2-tools (cmd TCTI → raw channel →
 * swtpm), counting the TPM commands the chip sees: a sign by the handle costs no CreatePrimary
 * once it was made; after a TPM Reset the context no longer loads and the recipe makes the
 * same key again (the sign still works and verifies); a service restart starts over the same way.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti, rawSettled, stockToolsThere, tctiEnv, recordCommands, clearChipLockout } from './helpers.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !stockToolsThere(), 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('persistent handles from saved contexts (tpm2-tools)', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  /** Every command frame the service sends to swtpm, by name (recorded at the transport: the raw channel's too). */
  const sent: string[] = [];
  const as = (name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, { cwd: work.dir, env: tctiEnv(tcti, env.unix, env.secrets.alice), timeoutMs: 60_000 });
  /** The chip's commands while `fn` runs, counted by name. */
  const seen = async (fn: () => Promise<unknown>): Promise<Record<string, number>> => {
    const from = sent.length;
    await fn();
    const out: Record<string, number> = {};
    for (const c of sent.slice(from)) out[c] = (out[c] ?? 0) + 1;
    return out;
  };
  const sign = (out: string) => as('tpm2_sign', '-c', '0x81000101', '-g', 'sha256', '-o', out, 'msg.txt');
  const verify = (sig: string) => as('tpm2_verifysignature', '-c', '0x81000101', '-g', 'sha256', '-m', 'msg.txt', '-s', sig);
  const transientsOnChip = async (): Promise<unknown> =>
    (await env.onTpm(async (t) => (await t.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 64 })).capabilityData)).data;

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-persist-ctx-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'msg.txt'), 'signed by a persistent handle\n');
    recordCommands(env.tpm.transport, sent);
    // A primary at 0x81000100 and a signing key under it at 0x81000101 (service records, not chip NV).
    await as('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'p.ctx');
    await as('tpm2_evictcontrol', '-C', 'o', '-c', 'p.ctx', '0x81000100');
    await as('tpm2_create', '-C', '0x81000100', '-G', 'ecc', '-u', 'k.pub', '-r', 'k.priv');
    await as('tpm2_load', '-C', '0x81000100', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx');
    await as('tpm2_evictcontrol', '-C', 'o', '-c', 'k.ctx', '0x81000101');
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('the first sign by the handle makes the key once; later signs and verifies load its saved context', async () => {
    const first = await seen(() => sign('sig1.bin'));
    expect(first.CreatePrimary).toBe(1);
    expect(first.Load).toBe(1);
    expect(first.ContextSave).toBeGreaterThanOrEqual(1);
    expect(first.Sign).toBe(1);
    const second = await seen(() => sign('sig2.bin'));
    expect(second.CreatePrimary).toBeUndefined();
    expect(second.Load).toBeUndefined();
    expect(second.ContextLoad).toBeGreaterThanOrEqual(1);
    expect(second.Sign).toBe(1);
    const checked = await seen(() => verify('sig2.bin'));
    expect(checked.CreatePrimary).toBeUndefined();
    expect(checked.VerifySignature).toBe(1);
    await rawSettled(env);
    expect(await transientsOnChip()).toEqual([]);
  });

  it('after a TPM Reset the context no longer loads: the recipe makes the same key, once, and the sign verifies', async () => {
    await env.swtpm.restart(); // Startup(CLEAR): every saved object context is void
    // The restart had no TPM2_Shutdown: the chip counts it as one DA failure, which the service's
    // total across apps reads at its next start (the last test); cleared as EVE's lockout reset would.
    expect(await env.onTpm((t) => clearChipLockout(t))).toBe(1);
    const lostBefore = env.logs.filter((l) => l.event === 'raw-persistent-context-lost').length;
    const afterReset = await seen(() => sign('sig3.bin'));
    expect(afterReset.CreatePrimary).toBe(1);
    expect(afterReset.Sign).toBe(1);
    expect(env.logs.filter((l) => l.event === 'raw-persistent-context-lost').length).toBe(lostBefore + 1);
    await verify('sig3.bin');
    await verify('sig1.bin'); // the same key as before the reset
    const next = await seen(() => sign('sig4.bin'));
    expect(next.CreatePrimary).toBeUndefined();
    expect(next.Sign).toBe(1);
    expect(env.logs.filter((l) => l.event === 'raw-persistent-lost')).toEqual([]);
  });

  it('a service restart forgets the contexts (memory only): the first use makes the key again, the next loads it', async () => {
    await env.restartService();
    expect((await seen(() => sign('sig5.bin'))).CreatePrimary).toBe(1);
    expect((await seen(() => sign('sig6.bin'))).CreatePrimary).toBeUndefined();
    await verify('sig6.bin');
    await rawSettled(env);
    expect(await transientsOnChip()).toEqual([]);
  });
});
