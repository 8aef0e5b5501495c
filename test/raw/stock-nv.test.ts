/**
 * NV beyond read/write with stock tpm2-tools through the cmd TCTI (nv-rules.ts), on the app's
 * own indices: counters, extend and bit-field indices, write and read locks, NV_ChangeAuth with
 * a policy session, NV_Certify with the app's key, PolicyNV; another app's index refused.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { RawApps } from '../../src/service/raw/apps.js';
import { bundleTcti, stockToolsThere, tctiEnv } from './helpers.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !stockToolsThere(), 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('NV commands with stock tpm2-tools', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const first = new RawApps().of('legacy:alice').nvRange.first;
  const index = (n: number): string => `0x${(first + n).toString(16)}`;
  const opts = (tenant: string) => ({ cwd: work.dir, env: tctiEnv(tcti, env.unix, env.secrets[tenant]), timeoutMs: 60_000 });
  const alice = (name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, opts('alice'));
  const aliceMay = (name: string, ...args: string[]): Promise<RunResult> => run(name, args, opts('alice'));
  const bytes = async (name: string): Promise<Buffer> => readFile(join(work.dir, name));

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-nv-');
    tcti = bundleTcti(work.dir);
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('tpm2_nvincrement on a counter; bob cannot increment or read it', async () => {
    await alice('tpm2_nvdefine', index(0), '-C', 'o', '-s', '8', '-a', 'nt=counter|ownerread|ownerwrite|authread|authwrite');
    await alice('tpm2_nvincrement', index(0), '-C', 'o');
    await alice('tpm2_nvread', index(0), '-C', 'o', '-s', '8', '-o', 'c1.bin');
    await alice('tpm2_nvincrement', index(0), '-C', 'o');
    await alice('tpm2_nvread', index(0), '-C', 'o', '-s', '8', '-o', 'c2.bin');
    expect((await bytes('c2.bin')).readBigUInt64BE()).toBe((await bytes('c1.bin')).readBigUInt64BE() + 1n);
    const bob = await run('tpm2_nvincrement', [index(0), '-C', 'o'], opts('bob'));
    expect(bob.code).not.toBe(0);
    expect(bob.stderr).toMatch(/0x18b|handle/i);
    await alice('tpm2_nvread', index(0), '-C', 'o', '-s', '8', '-o', 'c3.bin');
    expect(await bytes('c3.bin')).toEqual(await bytes('c2.bin'));
    await alice('tpm2_nvundefine', index(0), '-C', 'o');
  });

  it('tpm2_nvextend and tpm2_nvsetbits', async () => {
    await alice('tpm2_nvdefine', index(1), '-C', 'o', '-s', '32', '-g', 'sha256', '-a', 'nt=extend|ownerread|ownerwrite|authread|authwrite');
    await writeFile(join(work.dir, 'event.bin'), 'measured\n');
    await alice('tpm2_nvextend', index(1), '-C', 'o', '-i', 'event.bin');
    await alice('tpm2_nvread', index(1), '-C', 'o', '-s', '32', '-o', 'ext.bin');
    const want = createHash('sha256').update(Buffer.concat([Buffer.alloc(32), Buffer.from('measured\n')])).digest();
    expect(await bytes('ext.bin')).toEqual(want);
    await alice('tpm2_nvundefine', index(1), '-C', 'o');

    await alice('tpm2_nvdefine', index(2), '-C', 'o', '-a', 'nt=bits|ownerread|ownerwrite|authread|authwrite');
    await alice('tpm2_nvsetbits', index(2), '-C', 'o', '-i', '0x5');
    await alice('tpm2_nvsetbits', index(2), '-C', 'o', '-i', '0x30');
    await alice('tpm2_nvread', index(2), '-C', 'o', '-s', '8', '-o', 'bits.bin');
    expect((await bytes('bits.bin')).readBigUInt64BE()).toBe(0x35n);
    await alice('tpm2_nvundefine', index(2), '-C', 'o');
  });

  it('tpm2_nvwritelock and tpm2_nvreadlock', async () => {
    await alice('tpm2_nvdefine', index(3), '-C', 'o', '-s', '8', '-a', 'ownerread|ownerwrite|authread|authwrite|write_stclear|read_stclear');
    await writeFile(join(work.dir, 'eight.bin'), 'eight!!\n');
    await alice('tpm2_nvwrite', index(3), '-C', 'o', '-i', 'eight.bin');
    await alice('tpm2_nvwritelock', index(3), '-C', 'o');
    const locked = await aliceMay('tpm2_nvwrite', index(3), '-C', 'o', '-i', 'eight.bin');
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/0x148|locked/i);
    expect((await alice('tpm2_nvread', index(3), '-C', 'o', '-s', '8')).stdout).toBe('eight!!\n');
    await alice('tpm2_nvreadlock', index(3), '-C', 'o');
    const unread = await aliceMay('tpm2_nvread', index(3), '-C', 'o', '-s', '8');
    expect(unread.code).not.toBe(0);
    expect(unread.stderr).toMatch(/0x148|locked/i);
    await alice('tpm2_nvundefine', index(3), '-C', 'o');
  });

  it('NV_ChangeAuth with a PolicyCommandCode session (tpm2_changeauth on an index)', async () => {
    await alice('tpm2_startauthsession', '-S', 'trial.ctx');
    await alice('tpm2_policycommandcode', '-S', 'trial.ctx', '-L', 'nvca.policy', 'TPM2_CC_NV_ChangeAuth');
    await alice('tpm2_flushcontext', 'trial.ctx');
    await alice('tpm2_nvdefine', index(4), '-C', 'o', '-s', '8', '-p', 'old', '-L', 'nvca.policy', '-a', 'authread|authwrite');
    await alice('tpm2_startauthsession', '--policy-session', '-S', 's.ctx');
    await alice('tpm2_policycommandcode', '-S', 's.ctx', 'TPM2_CC_NV_ChangeAuth');
    await alice('tpm2_changeauth', '-c', index(4), '-p', 'session:s.ctx', 'new');
    await writeFile(join(work.dir, 'eight.bin'), 'eight!!\n');
    await alice('tpm2_nvwrite', index(4), '-P', 'new', '-i', 'eight.bin');
    expect((await alice('tpm2_nvread', index(4), '-P', 'new', '-s', '8')).stdout).toBe('eight!!\n');
    await alice('tpm2_nvundefine', index(4), '-C', 'o');
  });

  it('tpm2_nvcertify with the app’s own key (made by CreateLoaded), and PolicyNV', async () => {
    await alice('tpm2_nvdefine', index(5), '-C', 'o', '-s', '1', '-a', 'ownerread|ownerwrite|authread|authwrite');
    await writeFile(join(work.dir, 'aa.bin'), Uint8Array.of(0xaa));
    await writeFile(join(work.dir, 'bb.bin'), Uint8Array.of(0xbb));
    await alice('tpm2_nvwrite', index(5), '-C', 'o', '-i', 'aa.bin');
    await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'sign.pub', '-r', 'sign.priv', '-c', 'sign.ctx');
    await alice('tpm2_nvcertify', '-C', 'sign.ctx', '-g', 'sha256', '-f', 'plain', '-s', 'ecdsa', '-o', 'nvcert.sig', '--attestation', 'nvcert.att', '--size', '1', index(5));
    const att = await bytes('nvcert.att');
    expect(att.readUInt32BE(0)).toBe(0xff544347); // TPM_GENERATED_VALUE
    expect(att.readUInt16BE(4)).toBe(0x8014); // TPM_ST_ATTEST_NV
    await alice('tpm2_startauthsession', '--policy-session', '-S', 'pnv.ctx');
    await alice('tpm2_policynv', '-S', 'pnv.ctx', '-i', 'aa.bin', index(5), 'eq');
    const wrong = await aliceMay('tpm2_policynv', '-S', 'pnv.ctx', '-i', 'bb.bin', index(5), 'eq');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/0x99d|policy/i);
    await aliceMay('tpm2_flushcontext', 'pnv.ctx');
    // bob's PolicyNV on alice's index: refused by the firewall.
    await run('tpm2_startauthsession', ['--policy-session', '-S', 'bob.ctx'], opts('bob'));
    const bob = await run('tpm2_policynv', ['-S', 'bob.ctx', '-i', 'aa.bin', index(5), 'eq'], opts('bob'));
    expect(bob.code).not.toBe(0);
    expect(bob.stderr).toMatch(/0x18b|0x28b|handle/i);
    await alice('tpm2_nvundefine', index(5), '-C', 'o');
  }, 120_000);
});
