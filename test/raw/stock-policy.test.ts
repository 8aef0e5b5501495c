/**
 * Policy sessions with stock tpm2-tools through the cmd TCTI (policy-rules.ts): a secret sealed
 * to PCRs the app cannot change (PCR_Extend stays refused) unseals with a policy session, as
 * clevis does, and not under a policy for other PCR values; PolicyPassword/AuthValue,
 * PolicyCommandCode, PolicyOR and PolicyRestart on the app's own sealed object.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti, stockToolsThere, tctiEnv } from './helpers.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !stockToolsThere(), 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('policy sessions with stock tpm2-tools', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const envFor = (tenant: string): NodeJS.ProcessEnv => tctiEnv(tcti, env.unix, env.secrets[tenant]);
  const opts = (tenant: string) => ({ cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  const alice = (name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, opts('alice'));
  const aliceMay = (name: string, ...args: string[]): Promise<RunResult> => run(name, args, opts('alice'));

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-policy-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'secret.txt'), 'the disk key\n');
    await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary.ctx');
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('sealed to PCRs: createpolicy → create -L → load → unseal with a PolicyPCR session, and with pcr: (clevis)', async () => {
    await alice('tpm2_createpolicy', '--policy-pcr', '-l', 'sha256:0,1,2,3', '-L', 'pcr.policy');
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'pcr.policy', '-i', 'secret.txt', '-u', 'seal.pub', '-r', 'seal.priv');
    await alice('tpm2_load', '-C', 'primary.ctx', '-u', 'seal.pub', '-r', 'seal.priv', '-c', 'seal.ctx');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'session.ctx');
    await alice('tpm2_policypcr', '-S', 'session.ctx', '-l', 'sha256:0,1,2,3');
    expect((await alice('tpm2_unseal', '-c', 'seal.ctx', '-p', 'session:session.ctx')).stdout).toBe('the disk key\n');
    await alice('tpm2_flushcontext', 'session.ctx');
    expect((await alice('tpm2_unseal', '-c', 'seal.ctx', '-p', 'pcr:sha256:0,1,2,3')).stdout).toBe('the disk key\n');
    // The app cannot move a PCR: PCR_Extend is EVE's measured boot.
    const extend = await aliceMay('tpm2_pcrextend', '0:sha256=0000000000000000000000000000000000000000000000000000000000000000');
    expect(extend.code).not.toBe(0);
    expect(extend.stderr).toMatch(/0x143|command code/i);
    // Without the policy session: refused by the chip.
    expect((await aliceMay('tpm2_unseal', '-c', 'seal.ctx')).code).not.toBe(0);
  }, 120_000);

  it('a policy for PCR values other than the chip’s does not unseal', async () => {
    // Expected PCR values given as a file: four PCRs of 0x01 bytes, which no PCR holds.
    await writeFile(join(work.dir, 'pcrs.bin'), Buffer.alloc(4 * 32, 1));
    await alice('tpm2_createpolicy', '--policy-pcr', '-l', 'sha256:0,1,2,3', '-f', 'pcrs.bin', '-L', 'other.policy');
    const good = await readFile(join(work.dir, 'pcr.policy'));
    expect(Buffer.compare(await readFile(join(work.dir, 'other.policy')), good)).not.toBe(0);
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'other.policy', '-i', 'secret.txt', '-u', 'other.pub', '-r', 'other.priv', '-c', 'other.ctx');
    const r = await aliceMay('tpm2_unseal', '-c', 'other.ctx', '-p', 'pcr:sha256:0,1,2,3');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/0x99d|policy/i);
  });

  it('PolicyOR of (PolicyPCR ∧ PolicyCommandCode(Unseal)) and (PolicyPassword): either branch unseals; PolicyRestart resets a session', async () => {
    // Branch A: the PCRs and only Unseal; branch B: the object's password (PolicyPassword).
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policypcr', '-S', 'trial.ctx', '-l', 'sha256:0,1');
    await alice('tpm2_policycommandcode', '-S', 'trial.ctx', '-L', 'a.policy', 'TPM2_CC_Unseal');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policypassword', '-S', 'trial.ctx', '-L', 'b.policy');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policyor', '-S', 'trial.ctx', '-L', 'or.policy', 'sha256:a.policy,b.policy');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'or.policy', '-p', 'pw123', '-i', 'secret.txt', '-u', 'or.pub', '-r', 'or.priv', '-c', 'or.ctx');

    // Branch A.
    await alice('tpm2_startauthsession', '--policy-session', '-S', 's.ctx');
    await alice('tpm2_policypcr', '-S', 's.ctx', '-l', 'sha256:0,1');
    await alice('tpm2_policycommandcode', '-S', 's.ctx', 'TPM2_CC_Unseal');
    await alice('tpm2_policyor', '-S', 's.ctx', 'sha256:a.policy,b.policy');
    expect((await alice('tpm2_unseal', '-c', 'or.ctx', '-p', 'session:s.ctx')).stdout).toBe('the disk key\n');

    // PolicyRestart: the session's digest is empty again, so branch B can be taken in it.
    await alice('tpm2_policyrestart', '-S', 's.ctx');
    await alice('tpm2_policypassword', '-S', 's.ctx');
    await alice('tpm2_policyor', '-S', 's.ctx', 'sha256:a.policy,b.policy');
    expect((await alice('tpm2_unseal', '-c', 'or.ctx', '-p', 'session:s.ctx+pw123')).stdout).toBe('the disk key\n');
    await aliceMay('tpm2_flushcontext', 's.ctx');
  }, 120_000);

  it('PolicyAuthValue: the object’s password through a policy session', async () => {
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policyauthvalue', '-S', 'trial.ctx', '-L', 'av.policy');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'av.policy', '-p', 'pw456', '-i', 'secret.txt', '-u', 'av.pub', '-r', 'av.priv', '-c', 'av.ctx');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'av.ctx.s');
    await alice('tpm2_policyauthvalue', '-S', 'av.ctx.s');
    expect((await alice('tpm2_unseal', '-c', 'av.ctx', '-p', 'session:av.ctx.s+pw456')).stdout).toBe('the disk key\n');
  });

  it('PolicyAuthorize: a PCR policy signed by the app’s own key, its ticket from tpm2_verifysignature (owner hierarchy)', async () => {
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'pa.pub', '-r', 'pa.priv', '-c', 'pa.ctx');
    await alice('tpm2_readpublic', '-c', 'pa.ctx', '-n', 'pa.name');
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policyauthorize', '-S', 'trial.ctx', '-L', 'authorized.policy', '-n', 'pa.name');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policypcr', '-S', 'trial.ctx', '-l', 'sha256:0', '-L', 'desired.policy');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_sign', '-c', 'pa.ctx', '-g', 'sha256', '-o', 'desired.sig', 'desired.policy');
    await alice('tpm2_verifysignature', '-c', 'pa.ctx', '-g', 'sha256', '-m', 'desired.policy', '-s', 'desired.sig', '-t', 'verified.tkt');
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'authorized.policy', '-i', 'secret.txt', '-u', 'pas.pub', '-r', 'pas.priv', '-c', 'pas.ctx');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'pas.s');
    await alice('tpm2_policypcr', '-S', 'pas.s', '-l', 'sha256:0');
    await alice('tpm2_policyauthorize', '-S', 'pas.s', '-i', 'desired.policy', '-n', 'pa.name', '-t', 'verified.tkt');
    expect((await alice('tpm2_unseal', '-c', 'pas.ctx', '-p', 'session:pas.s')).stdout).toBe('the disk key\n');
    // A key loaded from outside goes to the NULL hierarchy only (its tickets would prove nothing here).
    await alice('tpm2_readpublic', '-c', 'pa.ctx', '-f', 'pem', '-o', 'pa.pem');
    const owner = await aliceMay('tpm2_loadexternal', '-C', 'o', '-G', 'ecc', '-u', 'pa.pem', '-c', 'ext.ctx');
    expect(owner.code).not.toBe(0);
    expect(owner.stderr).toMatch(/0x3c5|hierarchy/i);
  }, 120_000);

  it('PolicySigned by the app’s own key (no ticket: a negative expiration is refused)', async () => {
    // No nonce, cpHash or policyRef: the key signs the expiration alone, four zero bytes.
    await writeFile(join(work.dir, 'expiration.bin'), Buffer.alloc(4));
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'ps.pub', '-r', 'ps.priv', '-c', 'ps.ctx');
    await alice('tpm2_sign', '-c', 'ps.ctx', '-g', 'sha256', '-o', 'expiration.sig', 'expiration.bin');
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policysigned', '-S', 'trial.ctx', '-g', 'sha256', '-s', 'expiration.sig', '-c', 'ps.ctx', '-L', 'signed.policy');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-L', 'signed.policy', '-i', 'secret.txt', '-u', 'pss.pub', '-r', 'pss.priv', '-c', 'pss.ctx');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'ps.s');
    await alice('tpm2_policysigned', '-S', 'ps.s', '-g', 'sha256', '-s', 'expiration.sig', '-c', 'ps.ctx');
    expect((await alice('tpm2_unseal', '-c', 'pss.ctx', '-p', 'session:ps.s')).stdout).toBe('the disk key\n');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'ticket.s');
    const ticket = await aliceMay('tpm2_policysigned', '-S', 'ticket.s', '-g', 'sha256', '-s', 'expiration.sig', '-c', 'ps.ctx', '-t', '-100', '--ticket', 'signed.tkt', '--timeout', 'signed.timeout');
    expect(ticket.code).not.toBe(0);
    expect(ticket.stderr).toMatch(/0x4c4|value/i);
    await alice('tpm2_flushcontext', 'ticket.s');
  }, 120_000);

  it('bob cannot use alice’s policy session or sealed object', async () => {
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'alice-s.ctx');
    const bob = { cwd: work.dir, env: envFor('bob'), timeoutMs: 60_000 };
    const r = await run('tpm2_policypcr', ['-S', 'alice-s.ctx', '-l', 'sha256:0'], bob);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/0x14[0-9a-f]|integrity/i);
    const u = await run('tpm2_unseal', ['-c', 'seal.ctx', '-p', 'pcr:sha256:0,1,2,3'], bob);
    expect(u.code).not.toBe(0);
    await alice('tpm2_flushcontext', 'alice-s.ctx');
  });
});
