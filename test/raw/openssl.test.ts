/**
 * openssl with the tpm2 provider (Debian tpm2-openssl) inside the app, through
 * `eve_tools_tpm2_tcti` and the service's raw channel, against swtpm: a key made in the TPM,
 * signatures verified by plain openssl from the public key, and a TLS handshake whose server
 * key is that TPM key.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCI } from '../helpers/ci.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { run, runOk, workDir } from '../helpers/tpm-tools.js';
import { startEnv, type TestEnv } from '../service/env.js';
import { bundleTcti, openRaw, rcOf } from './helpers.js';

/** The provider's module in openssl's modules folder (loading it would need a TPM). */
const modulesDir = /MODULESDIR: "([^"]+)"/.exec(spawnSync('openssl', ['version', '-m'], { encoding: 'utf8', timeout: 30_000 }).stdout ?? '')?.[1];
const providerThere = modulesDir !== undefined && existsSync(join(modulesDir, 'tpm2.so'));
const P = ['-provider', 'tpm2', '-provider', 'default'];
/** Operations on a TPM key: the provider's implementation, not default's (which has no private key). */
const SIGN = [...P, '-propquery', '?provider=tpm2'];

/** A loopback port free now (s_server binds it right after). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** s_client with stdin at EOF: it completes the handshake, then closes. */
function sClient(cwd: string, port: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', 'cert.pem', '-verify_return_error', '-brief'], { cwd, env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
    const kill = setTimeout(() => c.kill('SIGKILL'), 90_000);
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.once('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stderr });
    });
  });
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !providerThere, 'swtpm or tpm2-openssl'))('openssl with the tpm2 provider through the cmd TCTI', () => {
  let env: TestEnv;
  let work: { dir: string; remove(): Promise<void> };
  let appEnv: NodeJS.ProcessEnv;
  const app = (...args: string[]) => runOk('openssl', args, { cwd: work.dir, env: appEnv, timeoutMs: 90_000 });
  /** openssl with no provider and no TPM: only the public key. */
  const plain = (...args: string[]) => run('openssl', args, { cwd: work.dir, env: { PATH: process.env.PATH }, timeoutMs: 30_000 });

  beforeAll(async () => {
    env = await startEnv();
    work = await workDir('raw-openssl-');
    const tcti = bundleTcti(work.dir);
    appEnv = { PATH: process.env.PATH, TPM2OPENSSL_TCTI: `cmd:${process.execPath} ${tcti}`, EVE_TOOLS_CONFIG: 'none', EVE_TOOLS_SERVICE: env.unix, EVE_TOOLS_SECRET: env.secrets.alice };
    await writeFile(join(work.dir, 'msg.txt'), 'hello openssl\n');
  }, 180_000);
  afterAll(async () => {
    await env?.stop();
    await work?.remove();
  });

  it('genpkey in the TPM, dgst -sign with it, verified without the provider', async () => {
    await app('genpkey', ...P, '-algorithm', 'EC', '-pkeyopt', 'group:P-256', '-out', 'key.pem');
    await app('pkey', ...P, '-in', 'key.pem', '-pubout', '-out', 'pub.pem');
    await app('dgst', ...SIGN, '-sha256', '-sign', 'key.pem', '-out', 'sig.bin', 'msg.txt');
    const ok = await plain('dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.bin', 'msg.txt');
    expect(ok.stdout.trim()).toBe('Verified OK');
    await runOk('openssl', ['dgst', '-sha256', '-binary', '-out', 'digest.bin', 'msg.txt'], { cwd: work.dir, timeoutMs: 30_000 });
    await app('pkeyutl', ...SIGN, '-sign', '-inkey', 'key.pem', '-in', 'digest.bin', '-out', 'sig1.bin');
    const ok1 = await plain('pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-in', 'digest.bin', '-sigfile', 'sig1.bin');
    expect(ok1.stdout.trim()).toBe('Signature Verified Successfully');
    await writeFile(join(work.dir, 'other.txt'), 'hello openssl?\n');
    const bad = await plain('dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.bin', 'other.txt');
    expect(bad.code).not.toBe(0);
    // The key file is a TPM key blob (TSS2 PRIVATE KEY): plain openssl cannot sign with it.
    const noTpm = await plain('dgst', '-sha256', '-sign', 'key.pem', '-out', 'sig2.bin', 'msg.txt');
    expect(noTpm.code).not.toBe(0);
    expect(env.logs.filter((l) => l.event === 'raw-refused' && l.tenant === 'alice')).toEqual([]);
  }, 300_000);

  it('the two rows the provider needed: ECC_Parameters answers; EncryptDecrypt2 on a handle not the app’s is refused, never forwarded', async () => {
    const c = await openRaw(env.unix, env.secrets.bob);
    try {
      // ECC_Parameters(TPM_ECC_NIST_P256), no sessions.
      const ecc = await c.send(Uint8Array.from([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x78, 0x00, 0x03]));
      expect(rcOf(ecc)).toBe(0);
      const sent = env.commands.length;
      // EncryptDecrypt2(0x80000001) with a password session: inData empty, decrypt NO, mode NULL, ivIn empty.
      const frame = Uint8Array.from([0x80, 0x02, 0, 0, 0, 36, 0, 0, 0x01, 0x93, 0x80, 0, 0, 0x01, 0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 0]);
      expect(frame.length).toBe(36);
      const r = await c.send(frame);
      expect(rcOf(r)).not.toBe(0);
      expect(env.commands.length).toBe(sent);
      expect(env.logs.filter((l) => l.event === 'raw-refused' && l.tenant === 'bob')).toHaveLength(1);
    } finally {
      c.close();
    }
  });

  it('a TLS handshake: s_server with the TPM key and a self-signed certificate, s_client verifies it', async () => {
    await app('req', ...P, '-new', '-x509', '-key', 'key.pem', '-subj', '/CN=localhost', '-days', '1', '-out', 'cert.pem');
    const port = await freePort();
    const server = spawn('openssl', ['s_server', ...P, '-key', 'key.pem', '-cert', 'cert.pem', '-accept', `127.0.0.1:${port}`, '-naccept', '1', '-www'], { cwd: work.dir, env: appEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = setTimeout(() => server.kill('SIGKILL'), 120_000);
    let out = '';
    let err = '';
    server.stdout.on('data', (c: Buffer) => (out += c.toString()));
    server.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => server.once('close', (code) => r(code)));
    try {
      // It prints ACCEPT once it listens.
      await new Promise<void>((resolve, reject) => {
        const check = (): void => (out.includes('ACCEPT') ? resolve() : undefined);
        server.stdout.on('data', check);
        server.once('close', () => reject(new Error(`s_server exited before listening: ${err}`)));
        check();
      });
      const client = await sClient(work.dir, port);
      expect(client.stderr).toMatch(/CONNECTION ESTABLISHED/);
      expect(client.stderr).toMatch(/Signature type: ECDSA/);
      expect(client.stderr).toMatch(/Verification: OK/);
      expect(await exited).toBe(0);
      expect(err).not.toMatch(/error/i);
    } finally {
      clearTimeout(kill);
      server.kill('SIGKILL');
    }
    expect(env.logs.filter((l) => l.event === 'raw-refused' && l.tenant === 'alice')).toEqual([]);
  }, 300_000);
});
