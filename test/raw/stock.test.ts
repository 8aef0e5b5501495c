/**
 * Stock tpm2-tools through `eve_tools_tpm2_tcti` (tpm2-tss's cmd TCTI) and the service's raw
 * channel, against swtpm: each tool run is its own process and its own connection, context
 * files carry objects between them, and the app sees only its own handles.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPM_CAP } from '../../src/tpm/constants.js';
import * as C from '../../src/tpm/commands.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir, type RunResult } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { RawApps } from '../../src/service/raw/apps.js';
import { bundleTcti, stockToolsThere, tctiEnv } from './helpers.js';

const toolsThere = stockToolsThere();

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !toolsThere, 'swtpm, tpm2-tools or libtss2-tcti-cmd0'))('stock tpm2-tools through the cmd TCTI', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let tcti: string;
  const envFor = (tenant: string): NodeJS.ProcessEnv => tctiEnv(tcti, env.unix, env.secrets[tenant]);
  const tool = (tenant: string) => (name: string, ...args: string[]): Promise<RunResult> => runOk(name, args, { cwd: work.dir, env: envFor(tenant), timeoutMs: 60_000 });
  const alice = (name: string, ...args: string[]) => tool('alice')(name, ...args);
  const bob = (name: string, ...args: string[]) => tool('bob')(name, ...args);

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-stock-');
    tcti = bundleTcti(work.dir);
    await writeFile(join(work.dir, 'msg.txt'), 'hello raw channel\n');
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('tpm2_getrandom, tpm2_hash, tpm2_pcrread', async () => {
    const r = await alice('tpm2_getrandom', '--hex', '16');
    expect(r.stdout).toMatch(/^[0-9a-f]{32}$/);
    const h = await alice('tpm2_hash', '-C', 'n', '-g', 'sha256', '--hex', 'msg.txt');
    expect(h.stdout.trim()).toBe(createHash('sha256').update('hello raw channel\n').digest('hex'));
    const p = await alice('tpm2_pcrread', 'sha256:0,1');
    expect(p.stdout).toMatch(/sha256:\s+0 : 0x[0-9A-F]{64}/);
  });

  it('createprimary → create → load → sign → verifysignature, readpublic; handles are the app’s own', async () => {
    await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary.ctx');
    await alice('tpm2_create', '-C', 'primary.ctx', '-G', 'ecc', '-u', 'key.pub', '-r', 'key.priv');
    await alice('tpm2_load', '-C', 'primary.ctx', '-u', 'key.pub', '-r', 'key.priv', '-c', 'key.ctx');
    await alice('tpm2_sign', '-c', 'key.ctx', '-g', 'sha256', '-o', 'sig.bin', 'msg.txt');
    await alice('tpm2_verifysignature', '-c', 'key.ctx', '-g', 'sha256', '-m', 'msg.txt', '-s', 'sig.bin');
    const pub = await alice('tpm2_readpublic', '-c', 'key.ctx');
    expect(pub.stdout).toMatch(/type:\s+value: ecc/);
    // The same template gives alice the same primary again; bob gets another one.
    const again = await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'primary2.ctx');
    const first = await alice('tpm2_readpublic', '-c', 'primary.ctx');
    const name = (r: RunResult) => /^x: ([0-9a-f]+)$/m.exec(r.stdout)?.[1];
    expect(name(again)).toMatch(/^[0-9a-f]{64}$/);
    expect(name(again)).toBe(name(first));
    const bobs = await bob('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'bob.ctx');
    expect(name(bobs)).not.toBe(name(first));
    // bob cannot load alice's saved context.
    const stolen = await run('tpm2_readpublic', ['-c', 'key.ctx'], { cwd: work.dir, env: envFor('bob'), timeoutMs: 60_000 });
    expect(stolen.code).not.toBe(0);
    expect(stolen.stderr).toMatch(/0x[0-9a-f]*14[0-9a-f]|integrity|INTEGRITY/i);
  });

  it('tpm2_getcap handles-transient / handles-persistent show only the app’s', async () => {
    const t = await alice('tpm2_getcap', 'handles-transient');
    expect(t.stdout.trim()).toBe('');
    const p = await alice('tpm2_getcap', 'handles-persistent');
    expect(p.stdout.trim()).toBe('');
    // The chip holds nothing of either app between runs.
    const chip = await env.onTpm(async (tpm) => (await tpm.run(C.GetCapability, { capability: TPM_CAP.HANDLES as never, property: 0x80000000, propertyCount: 64 })).capabilityData);
    expect(chip).toEqual({ capability: TPM_CAP.HANDLES, data: [] });
  });

  it('tpm2_quote + tpm2_checkquote with the app’s own AK', async () => {
    await alice('tpm2_createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', 'q-primary.ctx');
    await alice('tpm2_create', '-C', 'q-primary.ctx', '-G', 'ecc:ecdsa-sha256:null', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign', '-u', 'ak.pub', '-r', 'ak.priv');
    await alice('tpm2_load', '-C', 'q-primary.ctx', '-u', 'ak.pub', '-r', 'ak.priv', '-c', 'ak.ctx');
    await alice('tpm2_readpublic', '-c', 'ak.ctx', '-f', 'pem', '-o', 'ak.pem');
    await alice('tpm2_quote', '-c', 'ak.ctx', '-l', 'sha256:0,1,2', '-q', 'abcdef01', '-m', 'quote.msg', '-s', 'quote.sig', '-o', 'quote.pcrs', '-g', 'sha256');
    await runOk('tpm2_checkquote', ['-u', 'ak.pem', '-m', 'quote.msg', '-s', 'quote.sig', '-f', 'quote.pcrs', '-g', 'sha256', '-q', 'abcdef01'], { cwd: work.dir, env: { PATH: process.env.PATH }, timeoutMs: 60_000 });
  });

  it('tpm2_nvdefine / nvwrite / nvread in the app’s NV range; outside it refused', async () => {
    const index = `0x${new RawApps().of('legacy:alice').nvRange.first.toString(16)}`;
    await alice('tpm2_nvdefine', index, '-C', 'o', '-s', '16', '-a', 'ownerread|ownerwrite|authread|authwrite');
    await writeFile(join(work.dir, 'nv.in'), 'sixteen bytes!!\n');
    await alice('tpm2_nvwrite', index, '-C', 'o', '-i', 'nv.in');
    const r = await alice('tpm2_nvread', index, '-C', 'o', '-s', '16');
    expect(r.stdout).toBe('sixteen bytes!!\n');
    const eve = await run('tpm2_nvdefine', ['0x01800010', '-C', 'o', '-s', '16'], { cwd: work.dir, env: envFor('alice'), timeoutMs: 60_000 });
    expect(eve.code).not.toBe(0);
    await alice('tpm2_nvundefine', index, '-C', 'o');
  });

  it('options in the TCTI string: --service and --secret-file', async () => {
    await writeFile(join(work.dir, 'secret'), env.secrets.bob!, { mode: 0o600 });
    const { EVE_TOOLS_SERVICE: _s, EVE_TOOLS_SECRET: _k, ...rest } = envFor('bob');
    const tctiConf = `cmd:${process.execPath} ${tcti} --service ${env.tcp} --secret-file ${join(work.dir, 'secret')}`;
    const r = await runOk('tpm2_getrandom', ['--hex', '4'], { cwd: work.dir, env: { ...rest, TPM2TOOLS_TCTI: tctiConf }, timeoutMs: 60_000 });
    expect(r.stdout).toMatch(/^[0-9a-f]{8}$/);
  });

  it('an unreachable service: the helper exits 4 and tpm2-tools report a TCTI failure', async () => {
    const r = await run('tpm2_getrandom', ['8'], { cwd: work.dir, env: { ...envFor('alice'), EVE_TOOLS_SERVICE: `unix:${join(work.dir, 'nobody.sock')}` }, timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/eve_tools_tpm2_tcti: cannot reach the TPM service/);
    const bad = await run('tpm2_getrandom', ['8'], { cwd: work.dir, env: { ...envFor('alice'), EVE_TOOLS_SECRET: 'wrong' }, timeoutMs: 60_000 });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/eve_tools_tpm2_tcti: the service refused the raw channel \(HTTP 401\)/);
  });
});
