/**
 * The app-key tools end to end (issue 12): each a real child process (the bundled executables)
 * → the service (child process, real tenants) → swtpm, and stock openssl on the other side:
 * it verifies every signature scheme, encrypts what the TPM decrypts, derives the Z the TPM
 * computes, and checks the CSRs and certificates. Another app's handle is refused by every new
 * tool with no output file.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.js';
import { isCI } from '../helpers/ci.js';
import { run as runProgram } from '../helpers/tpm-tools.js';
import { missingPrerequisites, startStack, type Stack } from './stack.js';

const missing = missingPrerequisites();
if (missing.length && isCI()) throw new Error(`app-key end-to-end tests need ${missing.join(', ')}`);
const d = missing.length ? describe.skip : describe;

let stack: Stack;
let work: string;

interface Made {
  handle: string;
  kind: string;
  type: string;
  usage: string;
  scheme: string;
  bits?: number;
  curve?: string;
  hashAlg: string;
}

/** The keys, made once (RSA key generation is the slow part), each with its public key in NAME.pem. */
const keys: Record<string, Made> = {};
const GENKEY: Record<string, string[]> = {
  rsassa: ['-G', 'rsa'],
  rsapss: ['-G', 'rsa', '--scheme', 'rsapss'],
  oaep: ['-G', 'rsa', '--usage', 'decrypt'],
  ecdsa: ['-G', 'ecc'],
  ecdsa384: ['-G', 'ecc', '--curve', 'P-384', '-g', 'sha384'],
  ecdh: ['-G', 'ecc', '--scheme', 'ecdh'],
};
const w = (n: string): string => join(work, n);
const tool = (name: Parameters<Stack['run']>[0], args: string[], tenant = 'app') => stack.run(name, args, tenant);
const openssl = (args: string[]) => runProgram('openssl', args, { cwd: work });

/** Exactly one line on stderr, starting with the tool's name; returns the rest. */
function oneLine(stderr: string, name: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`${name}: `), stderr).toBe(true);
  return lines[0]!.slice(name.length + 2);
}

beforeAll(async () => {
  if (missing.length) return;
  stack = await startStack([{ id: 'app' }, { id: 'other' }]);
  work = join(stack.dir, 'work');
  for (const [name, args] of Object.entries(GENKEY)) {
    const g = await tool('eve_tools_tpm2_genkey', [...args, '--json']);
    expect(g.code, `${name}: ${g.stderr}`).toBe(0);
    keys[name] = JSON.parse(g.stdout) as Made;
    const p = await tool('eve_tools_tpm2_pubgetaik', ['-k', keys[name]!.handle, '-f', `${name}.pem`]);
    expect(p.code, p.stderr).toBe(0);
  }
  const a = await tool('eve_tools_tpm2_genaik', ['-g', 'rsa', '--json']);
  expect(a.code, a.stderr).toBe(0);
  keys.ak = JSON.parse(a.stdout) as Made;
  expect((await tool('eve_tools_tpm2_pubgetaik', ['-k', keys.ak.handle, '-f', 'ak.pem'])).code).toBe(0);
  writeFileSync(w('digest256.bin'), createHash('sha256').update(readFileSync(w('message.txt'))).digest());
  writeFileSync(w('digest384.bin'), createHash('sha384').update(readFileSync(w('message.txt'))).digest());
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

d('eve_tools_tpm2_genkey', () => {
  it('makes every kind: the scheme, usage and size asked for, listed by listkeys', async () => {
    expect(keys.rsassa).toMatchObject({ kind: 'general', type: 'rsa', usage: 'sign', scheme: 'rsassa', bits: 2048, hashAlg: 'sha256' });
    expect(keys.rsapss).toMatchObject({ kind: 'general', type: 'rsa', usage: 'sign', scheme: 'rsapss', bits: 2048 });
    expect(keys.oaep).toMatchObject({ kind: 'general', type: 'rsa', usage: 'decrypt', scheme: 'oaep', bits: 2048 });
    expect(keys.ecdsa).toMatchObject({ kind: 'general', type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' });
    expect(keys.ecdsa384).toMatchObject({ kind: 'general', type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-384', hashAlg: 'sha384' });
    expect(keys.ecdh).toMatchObject({ kind: 'general', type: 'ecc', usage: 'decrypt', scheme: 'ecdh', curve: 'P-256' });
    const bits = await openssl(['pkey', '-pubin', '-in', 'ecdsa384.pem', '-noout', '-text']);
    expect(bits.stdout).toMatch(/NIST CURVE: P-384|secp384r1/);
    const l = await tool('eve_tools_tpm2_listkeys', []);
    expect(l.code, l.stderr).toBe(0);
    const lines = l.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^HANDLE\s+KIND\s+TYPE\s+SIZE\s+USAGE\s+SCHEME\s+HASH\s+CREATED$/);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${keys.oaep!.handle}\\s+general\\s+rsa\\s+2048\\s+decrypt\\s+oaep\\s+sha256\\s`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${keys.ak!.handle}\\s+ak\\s+rsa\\s+2048\\s+sign\\s+rsassa\\s+sha256\\s`)));
    const j = JSON.parse((await tool('eve_tools_tpm2_listkeys', ['--json'])).stdout) as { keys: Made[] };
    expect(j.keys.find((k) => k.handle === keys.ecdh!.handle)).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-256' });
  });
});

d('eve_tools_tpm2_sign -d', () => {
  it.each([
    ['rsassa', 'digest256.bin', 'sha256', []],
    ['rsapss', 'digest256.bin', 'sha256', ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest']],
    ['ecdsa', 'digest256.bin', 'sha256', []],
    ['ecdsa384', 'digest384.bin', 'sha384', []],
  ])('%s: openssl verifies the signature of the digest against the message', async (name, digest, hash, sigopt) => {
    const sig = `${name}.dsig`;
    const r = await tool('eve_tools_tpm2_sign', ['-k', keys[name]!.handle, '-d', '-m', digest, '-s', sig]);
    expect(r.code, r.stderr).toBe(0);
    const v = await openssl(['dgst', `-${hash}`, '-verify', `${name}.pem`, ...sigopt, '-signature', sig, 'message.txt']);
    expect(v.stdout, v.stderr).toBe('Verified OK\n');
  });
  it("an AK: the service's refusal, exit 5, no file", async () => {
    const r = await tool('eve_tools_tpm2_sign', ['-k', keys.ak!.handle, '-d', '-m', 'digest256.bin', '-s', 'ak.dsig']);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_sign')).toMatch(/^not supported: /);
    expect(existsSync(w('ak.dsig'))).toBe(false);
  });
  it('the message path still signs with a general key (PSS)', async () => {
    const r = await tool('eve_tools_tpm2_sign', ['-k', keys.rsapss!.handle, '-m', 'message.txt', '-s', 'pss.sig']);
    expect(r.code, r.stderr).toBe(0);
    const v = await openssl(['dgst', '-sha256', '-verify', 'rsapss.pem', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest', '-signature', 'pss.sig', 'message.txt']);
    expect(v.stdout, v.stderr).toBe('Verified OK\n');
  });
});

d('eve_tools_tpm2_rsadecrypt', () => {
  it.each([
    ['without a label', undefined],
    ['with a label', 'my label'],
  ])('decrypts what openssl encrypted with OAEP, %s', async (_what, label) => {
    writeFileSync(w('secret.txt'), `the secret ${label ?? ''}\n`);
    // tpm2_rsadecrypt -l: the label is the text and a terminating zero.
    const opts = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256'];
    if (label !== undefined) opts.push('-pkeyopt', `rsa_oaep_label:${Buffer.from(`${label}\0`).toString('hex')}`);
    const e = await openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', 'oaep.pem', ...opts, '-in', 'secret.txt', '-out', 'secret.enc']);
    expect(e.code, e.stderr).toBe(0);
    const r = await tool('eve_tools_tpm2_rsadecrypt', ['-k', keys.oaep!.handle, '-i', 'secret.enc', '-o', 'secret.out', ...(label !== undefined ? ['-l', label] : [])]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(w('secret.out'), 'utf8')).toBe(readFileSync(w('secret.txt'), 'utf8'));
  });
  it('a wrong label: refused, no file; a signing key: exit 5', async () => {
    const r = await tool('eve_tools_tpm2_rsadecrypt', ['-k', keys.oaep!.handle, '-i', 'secret.enc', '-o', 'wrong.out', '-l', 'other label']);
    expect(r.code).not.toBe(0);
    oneLine(r.stderr, 'eve_tools_tpm2_rsadecrypt');
    expect(existsSync(w('wrong.out'))).toBe(false);
    const s = await tool('eve_tools_tpm2_rsadecrypt', ['-k', keys.rsassa!.handle, '-i', 'secret.enc', '-o', 'wrong.out']);
    expect(s.code).toBe(EXIT.UNSUPPORTED);
    oneLine(s.stderr, 'eve_tools_tpm2_rsadecrypt');
    expect(existsSync(w('wrong.out'))).toBe(false);
  });
});

d('eve_tools_tpm2_ecdh', () => {
  it('Z equals what openssl pkeyutl -derive computes on the peer side', async () => {
    expect((await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'peer.key'])).code).toBe(0);
    expect((await openssl(['pkey', '-in', 'peer.key', '-pubout', '-out', 'peer.pem'])).code).toBe(0);
    const r = await tool('eve_tools_tpm2_ecdh', ['-k', keys.ecdh!.handle, '--peer', 'peer.pem', '-o', 'z.bin']);
    expect(r.code, r.stderr).toBe(0);
    const o = await openssl(['pkeyutl', '-derive', '-inkey', 'peer.key', '-peerkey', 'ecdh.pem', '-out', 'z2.bin']);
    expect(o.code, o.stderr).toBe(0);
    expect(readFileSync(w('z.bin')).length).toBe(32);
    expect(readFileSync(w('z.bin')).equals(readFileSync(w('z2.bin')))).toBe(true);
  });
  it('a peer on another curve, or an ECDSA key: refused, no file', async () => {
    expect((await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'peer384.key'])).code).toBe(0);
    expect((await openssl(['pkey', '-in', 'peer384.key', '-pubout', '-out', 'peer384.pem'])).code).toBe(0);
    const a = await tool('eve_tools_tpm2_ecdh', ['-k', keys.ecdh!.handle, '--peer', 'peer384.pem', '-o', 'never.z']);
    expect(a.code).toBe(EXIT.USAGE);
    expect(oneLine(a.stderr, 'eve_tools_tpm2_ecdh')).toBe('the service rejected the request: peer is on P-384; this key is on P-256');
    const b = await tool('eve_tools_tpm2_ecdh', ['-k', keys.ecdsa!.handle, '--peer', 'peer.pem', '-o', 'never.z']);
    expect(b.code).toBe(EXIT.UNSUPPORTED);
    expect(existsSync(w('never.z'))).toBe(false);
  });
});

d('eve_tools_tpm2_csr and eve_tools_tpm2_cert', () => {
  it.each(['rsassa', 'rsapss', 'ecdsa', 'ak'])('%s: openssl req -verify accepts the CSR; its key is pubgetaik\'s; subject and SAN as asked', async (name) => {
    const out = `${name}.csr`;
    const r = await tool('eve_tools_tpm2_csr', ['-k', keys[name]!.handle, '--subject', 'CN=app1,O=Acme', '--san', 'DNS:a.example,IP:10.0.0.1', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    // One openssl run: the signature check (stderr), then the text and the public key.
    const v = await openssl(['req', '-in', out, '-verify', '-noout', '-text', '-pubkey']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/verify OK/);
    expect(v.stdout).toContain(readFileSync(w(`${name}.pem`), 'utf8'));
    expect(v.stdout).toMatch(/Subject: CN\s?=\s?app1, O\s?=\s?Acme/);
    expect(v.stdout).toMatch(/DNS:a\.example, IP Address:10\.0\.0\.1/);
  });
  it.each(['rsapss', 'ecdsa', 'ak'])('%s: a self-signed certificate openssl verifies, with the subject, SAN and days asked', async (name) => {
    const out = `${name}.crt`;
    const r = await tool('eve_tools_tpm2_cert', ['-k', keys[name]!.handle, '--self-signed', '--subject', 'CN=app1,O=Acme', '--san', 'DNS:a.example,IP:10.0.0.1', '--days', '30', '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ handle: keys[name]!.handle, days: 30, file: out });
    const v = await openssl(['verify', '-CAfile', out, out]);
    expect(v.stdout, v.stderr).toBe(`${out}: OK\n`);
    const c = new X509Certificate(readFileSync(w(out)));
    expect(c.subject).toBe('CN=app1\nO=Acme');
    expect(c.subjectAltName).toBe('DNS:a.example, IP Address:10.0.0.1');
    expect(Date.parse(c.validTo) - Date.parse(c.validFrom)).toBe(30 * 86_400_000);
    expect(c.publicKey.export({ type: 'spki', format: 'pem' })).toBe(readFileSync(w(`${name}.pem`), 'utf8'));
  });
  it('a decryption key: exit 5 saying why, no file', async () => {
    const r = await tool('eve_tools_tpm2_csr', ['-k', keys.oaep!.handle, '--subject', 'CN=x', '-o', 'never.csr']);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_csr')).toMatch(/is a decryption key \(scheme oaep\): it cannot sign/);
    expect(existsSync(w('never.csr'))).toBe(false);
  });
  it('@peculiar/x509 is loaded by a CSR run only, and is not in the sign executable', async () => {
    const probe = w('probe.cjs');
    writeFileSync(probe, "process.on('exit', () => process.stderr.write(`reflect:${typeof Reflect.getMetadata}\\n`));\n");
    const h = await stack.run('eve_tools_tpm2_csr', ['--help'], 'app', { nodeArgs: ['-r', probe] });
    expect(h.stderr).toBe('reflect:undefined\n');
    // (And the request on standard output, in the --json object.)
    const c = await stack.run('eve_tools_tpm2_csr', ['-k', keys.ecdsa!.handle, '--subject', 'CN=probe', '-o', '-', '--json'], 'app', { nodeArgs: ['-r', probe] });
    expect(c.stderr).toBe('reflect:function\n');
    expect(JSON.parse(c.stdout)).toEqual({ handle: keys.ecdsa!.handle, subject: 'CN=probe', pem: expect.stringMatching(/^-----BEGIN CERTIFICATE REQUEST-----\n[^]+\n-----END CERTIFICATE REQUEST-----\n$/) });
    expect(readFileSync(stack.tool('eve_tools_tpm2_sign'), 'utf8')).not.toMatch(/Pkcs10CertificateRequestGenerator/);
  });
});

d("another app's handle", () => {
  it.each([
    ['eve_tools_tpm2_sign', 'rsassa', ['-d', '-m', 'digest256.bin', '-s', 'x.out']],
    ['eve_tools_tpm2_rsadecrypt', 'oaep', ['-i', 'secret.enc', '-o', 'x.out']],
    ['eve_tools_tpm2_ecdh', 'ecdh', ['--peer', 'peer.pem', '-o', 'x.out']],
    ['eve_tools_tpm2_csr', 'ecdsa', ['--subject', 'CN=x', '-o', 'x.out']],
    ['eve_tools_tpm2_cert', 'ecdsa', ['--self-signed', '--subject', 'CN=x', '-o', 'x.out']],
  ] as const)('%s: exit 3, no output file', async (name, key, args) => {
    const r = await tool(name, ['-k', keys[key]!.handle, ...args], 'other');
    expect(r.code, r.stderr).toBe(EXIT.AUTH);
    expect(oneLine(r.stderr, name)).toBe(`key ${keys[key]!.handle} is not yours: only keys this application created can be used`);
    expect(existsSync(w('x.out'))).toBe(false);
  });
});
