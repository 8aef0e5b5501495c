/**
 * The app-key tools (issue 12) in-process against the fake client: every flag error (exit 2,
 * no request), file error (exit 6, naming the file), refusal (exit 3/5) and output, and that
 * nothing is written when anything fails. Signatures, decryption, ECDH and X.509 against the
 * real service and openssl are in appkeys-e2e.test.ts.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.js';
import { cert } from '../../src/cli/tools/cert.js';
import { csr } from '../../src/cli/tools/csr.js';
import { ecdh } from '../../src/cli/tools/ecdh.js';
import { genaik } from '../../src/cli/tools/genaik.js';
import { genkey } from '../../src/cli/tools/genkey.js';
import { listkeys } from '../../src/cli/tools/listkeys.js';
import { rsadecrypt } from '../../src/cli/tools/rsadecrypt.js';
import { sign } from '../../src/cli/tools/sign.js';
import { provideX509 } from '../../src/cli/tools/x509-loader.js';
import { newState, run, type FakeState } from './fake.js';

const dir = mkdtempSync(join(tmpdir(), 'appkeys-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = (name: string): string => join(dir, name);

/** A state holding keys made by genkey/genaik with these arguments, in order (0x81010000 up). */
async function keys(...made: string[][]): Promise<FakeState> {
  const state = newState();
  for (const a of made) {
    const r = await run(a[0] === 'ak' ? genaik : genkey, a.slice(1), { state });
    expect(r.code, r.stderr).toBe(0);
  }
  state.calls.length = 0;
  return state;
}

const noTemps = (): void => expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);

describe('genkey', () => {
  it('asks for a general key and prints one line: the handle, then what the key is', async () => {
    const r = await run(genkey, ['-G', 'rsa']);
    expect(r).toMatchObject({ code: 0, stderr: '', stdout: 'Key generated at persistent handle 0x81010000 (general rsa 2048, sign, rsassa, sha256)\n' });
    expect(r.state.calls).toEqual(['createKey rsa general sign rsassa']);
  });
  it('passes usage, scheme, size and hash; --json gives the key', async () => {
    const r = await run(genkey, ['-G', '0x23', '--usage', 'decrypt', '--curve', 'secp384r1', '-g', '0xC', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.state.calls).toEqual(['createKey ecc sha384 general decrypt ecdh P-384']);
    expect(JSON.parse(r.stdout)).toEqual({
      handle: '0x81010000',
      kind: 'general',
      type: 'ecc',
      usage: 'decrypt',
      scheme: 'ecdh',
      curve: 'P-384',
      hashAlg: 'sha384',
      name: '000b01',
      createdAt: '2025-01-01T00:00:00.000Z',
    });
  });
  it('a scheme alone says the usage; --bits 3072', async () => {
    const r = await run(genkey, ['-G', 'rsa', '--scheme', 'OAEP', '--bits', '3072']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.state.calls).toEqual(['createKey rsa general decrypt oaep 3072']);
    expect(r.stdout).toBe('Key generated at persistent handle 0x81010000 (general rsa 3072, decrypt, oaep, sha256)\n');
  });
  it.each([
    [['-G', 'rsa', '--scheme', 'ecdsa'], '--scheme ecdsa does not fit an RSA sign key; use rsassa or rsapss'],
    [['-G', 'ecc', '--scheme', 'rsapss'], '--scheme rsapss does not fit an ECC sign key; use ecdsa'],
    [['-G', 'rsa', '--usage', 'decrypt', '--scheme', 'rsapss'], '--scheme rsapss does not fit an RSA decrypt key; use oaep'],
    [['-G', 'ecc', '--usage', 'sign', '--scheme', 'ecdh'], '--scheme ecdh does not fit an ECC sign key; use ecdsa'],
    [['-G', 'ecc', '--bits', '2048'], '--bits is for RSA keys; an ECC key takes --curve'],
    [['-G', 'rsa', '--curve', 'P-256'], '--curve is for ECC keys; an RSA key takes --bits'],
    [['-G', 'rsa', '--bits', '4096'], "--bits: '4096' is not a key size offered here; use 2048, 3072"],
    [['-G', 'ecc', '--curve', 'P-521'], "--curve: unknown curve 'P-521'; use P-256, P-384"],
    [['-G', 'rsa', '--usage', 'wrap'], "--usage: unknown usage 'wrap'; use sign or decrypt"],
    [['-G', 'rsa', '--scheme', 'pss'], "--scheme: unknown scheme 'pss'; use one of rsassa, rsapss, ecdsa, oaep, ecdh"],
    [['-G', 'dsa'], "-G: unknown key algorithm 'dsa'; use one of 0x0001 (rsa), 0x0023 (ecc)"],
    [['-G', 'rsa', '-g', 'md5'], "-g: unknown hash algorithm 'md5'; use one of 0x0004 (sha1), 0x000b (sha256), 0x000c (sha384), 0x000d (sha512)"],
    [[], "required option '-G, --key-algorithm <alg>' not specified (see --help)"],
  ])('%j: exit 2 before any request', async (args, message) => {
    const r = await run(genkey, args);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toBe(`eve_tools_tpm2_genkey: ${message}\n`);
    expect(r.state.calls).toEqual([]);
  });
});

describe('sign -d', () => {
  const digest = createHash('sha256').update('hello').digest();
  writeFileSync(f('d32.bin'), digest);
  writeFileSync(f('d48.bin'), createHash('sha384').update('hello').digest());
  writeFileSync(f('d33.bin'), Buffer.alloc(33, 1));

  it('sends the file as the digest, its hash told by its size, and writes the signature', async () => {
    const state = await keys(['genkey', '-G', 'rsa', '--scheme', 'rsapss']);
    const r = await run(sign, ['-k', '0x81010000', '-d', '-m', f('d32.bin'), '-s', f('d.sig'), '--json'], { state });
    expect(r.code, r.stderr).toBe(0);
    expect(state.calls).toEqual(['signDigest 0x81010000 sha256 plain']);
    expect(state.signed).toEqual([digest]);
    expect(readFileSync(f('d.sig'), 'utf8')).toBe('SIG');
    expect(JSON.parse(r.stdout)).toMatchObject({ handle: '0x81010000', sigAlg: 'rsapss', hashAlg: 'sha256', file: f('d.sig'), digest: digest.toString('hex') });
  });
  it('reads the digest from standard input', async () => {
    const state = await keys(['genkey', '-G', 'ecc']);
    const r = await run(sign, ['-k', '0x81010000', '--digest', '-m', '-', '-s', '-'], { state, stdin: digest });
    expect(r).toMatchObject({ code: 0, stdout: 'SIG' });
  });
  it('a digest of a hash the key does not have: exit 5 with the way to make such a key', async () => {
    const state = await keys(['genkey', '-G', 'rsa', '--scheme', 'rsapss']);
    const r = await run(sign, ['-k', '0x81010000', '-d', '-m', f('d48.bin'), '-s', f('never.sig')], { state });
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(r.stderr).toBe(
      'eve_tools_tpm2_sign: key 0x81010000 signs with sha256 only (its hash is fixed when it is created), not sha384; create a sha384 key with: eve_tools_tpm2_genkey -G rsa --scheme rsapss -g 0xC\n',
    );
    expect(existsSync(f('never.sig'))).toBe(false);
  });
  it("an AK: the service's refusal, exit 5, nothing written", async () => {
    const state = await keys(['ak', '-g', 'rsa']);
    const r = await run(sign, ['-k', '0x81010000', '-d', '-m', f('d32.bin'), '-s', f('never.sig')], { state });
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(r.stderr).toBe('eve_tools_tpm2_sign: not supported: key 0x81010000 is an AK: it signs only messages the TPM hashed, not a digest\n');
    expect(existsSync(f('never.sig'))).toBe(false);
  });
  it.each([
    [['-m', 'd33.bin'], /^digest file '.*d33\.bin' has 33 bytes; a digest has 20 \(sha1\), 32 \(sha256\), 48 \(sha384\) or 64 \(sha512\)/],
    [['-m', 'd32.bin', '-g', 'sha384'], /^digest file '.*d32\.bin' has 32 bytes; a sha384 digest \(-g\) has 48$/],
    [['-m', 'nope.bin'], /^cannot read digest file '.*nope\.bin': no such file or directory$/],
    [['-m', '.'], /^cannot read digest file '.*': is a directory$/],
  ])('%j: exit 6 naming the file, no request', async (args, message) => {
    const a = args.map((x, i) => (args[i - 1] === '-m' ? f(x) : x));
    const state = await keys(['genkey', '-G', 'rsa']);
    const r = await run(sign, ['-k', '0x81010000', '-d', ...a, '-s', f('never.sig')], { state });
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr.replace(/^eve_tools_tpm2_sign: /, '').trimEnd()).toMatch(message);
    expect(state.calls).toEqual([]);
    expect(existsSync(f('never.sig'))).toBe(false);
  });
  it('a digest file larger than any digest is refused without reading it all', async () => {
    writeFileSync(f('big.bin'), Buffer.alloc(1 << 20));
    const r = await run(sign, ['-k', '0x81010000', '-d', '-m', f('big.bin'), '-s', f('never.sig')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr).toMatch(/digest file '.*big\.bin' is larger than 64 bytes: is it the right file\?\n$/);
  });
  it("another app's key: exit 3, no file", async () => {
    const r = await run(sign, ['-k', '0x81010009', '-d', '-m', f('d32.bin'), '-s', f('never.sig')]);
    expect(r.code).toBe(EXIT.AUTH);
    expect(r.stderr).toBe('eve_tools_tpm2_sign: key 0x81010009 is not yours: only keys this application created can be used\n');
    expect(existsSync(f('never.sig'))).toBe(false);
  });
  it('--help says there is no scheme to choose (PSS is the key\'s)', async () => {
    const r = await run(sign, ['--help']);
    expect(r.stdout).toMatch(/-d, --digest/);
    expect(r.stdout).toMatch(/nothing to choose here/);
    expect(r.stdout).toMatch(/--scheme rsapss signs with PSS/);
  });
});

describe('rsadecrypt', () => {
  writeFileSync(f('c256.bin'), Buffer.alloc(256, 7));
  writeFileSync(f('c100.bin'), Buffer.alloc(100, 7));

  it('decrypts with the label and writes the plaintext atomically', async () => {
    const state = await keys(['genkey', '-G', 'rsa', '--usage', 'decrypt']);
    const r = await run(rsadecrypt, ['-k', '0x81010000', '-i', f('c256.bin'), '-o', f('plain.txt'), '-l', 'my label'], { state });
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(state.calls).toEqual(['decrypt 0x81010000 256 label=my label']);
    expect(readFileSync(f('plain.txt'), 'utf8')).toBe('PLAIN');
    noTemps();
  });
  it('--json with -o -: the plaintext in the object', async () => {
    const state = await keys(['genkey', '-G', 'rsa', '--scheme', 'oaep']);
    const r = await run(rsadecrypt, ['-k', '0x81010000', '-i', '-', '-o', '-', '--json'], { state, stdin: Buffer.alloc(256, 1) });
    expect(JSON.parse(r.stdout)).toEqual({ handle: '0x81010000', plaintext: Buffer.from('PLAIN').toString('base64'), length: 5 });
  });
  it('a signing key: exit 5, an existing output left as it was', async () => {
    const state = await keys(['genkey', '-G', 'rsa']);
    writeFileSync(f('keep.txt'), 'OLD');
    const r = await run(rsadecrypt, ['-k', '0x81010000', '-i', f('c256.bin'), '-o', f('keep.txt')], { state });
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    expect(r.stderr).toBe('eve_tools_tpm2_rsadecrypt: not supported: key 0x81010000 does not decrypt (its scheme is rsassa)\n');
    expect(readFileSync(f('keep.txt'), 'utf8')).toBe('OLD');
    noTemps();
  });
  it.each([
    [['-i', 'nope.bin'], /^cannot read ciphertext file '.*nope\.bin': no such file or directory$/],
    [['-i', 'c100.bin'], /^ciphertext file '.*c100\.bin' has 100 bytes; an RSA-2048 ciphertext has 256, an RSA-3072 one 384$/],
  ])('%j: exit 6 naming the file, no request, no output', async (args, message) => {
    const r = await run(rsadecrypt, ['-k', '0x81010000', args[0]!, f(args[1]!), '-o', f('never.txt')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr.replace(/^eve_tools_tpm2_rsadecrypt: /, '').trimEnd()).toMatch(message);
    expect(r.state.calls).toEqual([]);
    expect(existsSync(f('never.txt'))).toBe(false);
  });
  it('an output directory that does not exist: exit 6 before reading or asking', async () => {
    const r = await run(rsadecrypt, ['-k', '0x81010000', '-i', f('c256.bin'), '-o', f('no/dir/p.txt')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr).toMatch(/^eve_tools_tpm2_rsadecrypt: cannot write output file '.*no\/dir\/p\.txt': no such file or directory\n$/);
    expect(r.state.calls).toEqual([]);
  });
  it("another app's key: exit 3, no file; binary to a terminal: exit 2", async () => {
    const a = await run(rsadecrypt, ['-k', '0x81010009', '-i', f('c256.bin'), '-o', f('never.txt')]);
    expect(a.code).toBe(EXIT.AUTH);
    expect(existsSync(f('never.txt'))).toBe(false);
    const b = await run(rsadecrypt, ['-k', '0x81010000', '-i', f('c256.bin'), '-o', '-'], { stdoutTTY: true });
    expect(b.code).toBe(EXIT.USAGE);
    expect(b.state.calls).toEqual([]);
  });
});

describe('ecdh', () => {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  writeFileSync(f('peer.pem'), p256.export({ type: 'spki', format: 'pem' }));
  writeFileSync(f('peer.der'), p256.export({ type: 'spki', format: 'der' }));
  writeFileSync(f('rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(f('p521.pem'), generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(f('junk.pem'), 'not a key\n');

  it('sends the peer as PEM (DER accepted) and writes Z', async () => {
    const state = await keys(['genkey', '-G', 'ecc', '--usage', 'decrypt']);
    for (const peer of ['peer.pem', 'peer.der']) {
      const r = await run(ecdh, ['-k', '0x81010000', '--peer', f(peer), '-o', f('z.bin')], { state });
      expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(readFileSync(f('z.bin'))).toEqual(Buffer.alloc(32, 0x5a));
    }
    expect(state.calls).toEqual(['ecdh 0x81010000 -----BEGIN PUBLIC KEY-----', 'ecdh 0x81010000 -----BEGIN PUBLIC KEY-----']);
    const j = await run(ecdh, ['-k', '0x81010000', '--peer', f('peer.pem'), '-o', '-', '--json'], { state });
    expect(JSON.parse(j.stdout)).toEqual({ handle: '0x81010000', z: Buffer.alloc(32, 0x5a).toString('base64'), length: 32 });
  });
  it.each([
    ['nope.pem', /^cannot read peer key file '.*nope\.pem': no such file or directory$/],
    ['junk.pem', /^peer key file '.*junk\.pem' is not a public key \(PEM "BEGIN PUBLIC KEY" or DER SubjectPublicKeyInfo\)$/],
    ['rsa.pem', /^peer key file '.*rsa\.pem' holds an RSA key; ECDH needs an EC public key$/],
    ['p521.pem', /^peer key file '.*p521\.pem' is on curve secp521r1; keys here are on P-256 or P-384$/],
  ])('%s: exit 6 naming the file, no request', async (peer, message) => {
    const r = await run(ecdh, ['-k', '0x81010000', '--peer', f(peer), '-o', f('never.bin')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.stderr.replace(/^eve_tools_tpm2_ecdh: /, '').trimEnd()).toMatch(message);
    expect(r.state.calls).toEqual([]);
    expect(existsSync(f('never.bin'))).toBe(false);
  });
  it("a signing key: exit 5; another app's key: exit 3; no file either time", async () => {
    const state = await keys(['genkey', '-G', 'ecc']);
    const a = await run(ecdh, ['-k', '0x81010000', '--peer', f('peer.pem'), '-o', f('never.bin')], { state });
    expect(a.code).toBe(EXIT.UNSUPPORTED);
    expect(a.stderr).toBe('eve_tools_tpm2_ecdh: not supported: key 0x81010000 does not agree keys (its scheme is ecdsa)\n');
    const b = await run(ecdh, ['-k', '0x81010009', '--peer', f('peer.pem'), '-o', f('never.bin')], { state });
    expect(b.code).toBe(EXIT.AUTH);
    expect(existsSync(f('never.bin'))).toBe(false);
  });
});

describe('csr and cert', () => {
  // As their executables do (src/bin/eve_tools_tpm2_{csr,cert}.ts).
  provideX509(() => import('../../src/cli/tools/x509-key.js'));

  it('without the X.509 code (eve-tools.cjs): exit 5 naming the executable that has it, no request', async () => {
    provideX509(undefined);
    try {
      const r = await run(csr, ['-k', '0x81010000', '--subject', 'CN=a', '-o', f('never.pem')]);
      expect(r.code).toBe(EXIT.UNSUPPORTED);
      expect(r.stderr).toBe(
        'eve_tools_tpm2_csr: this build of the tools (eve-tools.cjs, kept small for cloud-init user-data) leaves the X.509 code out: run eve_tools_tpm2_csr.cjs from the release (deploy/install.sh installs it)\n',
      );
      expect(r.state.calls).toEqual([]);
    } finally {
      provideX509(() => import('../../src/cli/tools/x509-key.js'));
    }
  });
  it.each([
    [csr, ['-k', '0x81010000', '--subject', 'CN=a', '--san', 'DNS:a.example,IP:10.0.0.300', '-o', 'r.pem'], '--san: subjectAltName ip:"10.0.0.300": not an IPv4 or IPv6 address'],
    [csr, ['-k', '0x81010000', '--subject', 'CN=a', '--san', 'host:a', '-o', 'r.pem'], '--san: subjectAltName "host:a": expected DNS:name, IP:address, email:address or URI:uri'],
    [csr, ['-k', '0x81010000', '--subject', ' ', '-o', 'r.pem'], '--subject: empty; give e.g. "CN=app1,O=Acme"'],
    [csr, ['-k', 'key', '--subject', 'CN=a', '-o', 'r.pem'], "-k: 'key' is not a handle; give a number such as 0x81010000"],
    [csr, ['-k', '0x81010000', '--subject', 'app1', '-o', 'r.pem'], '--subject: "app1" is not a distinguished name such as "CN=app1,O=Acme" (it names no attribute)'],
    [cert, ['-k', '0x81010000', '--self-signed', '--subject', 'XX=1', '-o', 'c.pem'], '--subject: "XX=1" is not a distinguished name such as "CN=app1,O=Acme" (Cannot get OID for name type \'\')'],
    [cert, ['-k', '0x81010000', '--subject', 'CN=a', '-o', 'c.pem'], '--self-signed is required: only self-signed certificates are made here (for a CA-signed one, make a request with eve_tools_tpm2_csr)'],
    [cert, ['-k', '0x81010000', '--self-signed', '--subject', 'CN=a', '--days', '0', '-o', 'c.pem'], "--days: '0' is not a whole number of days from 1 to 36500"],
    [cert, ['-k', '0x81010000', '--self-signed', '--subject', 'CN=a', '--days', '1.5', '-o', 'c.pem'], "--days: '1.5' is not a whole number of days from 1 to 36500"],
  ])('%#: exit 2 before any request', async (tool, args, message) => {
    const r = await run(tool, args.map((a) => (a.endsWith('.pem') ? f(a) : a)));
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toBe(`${tool.name}: ${message}\n`);
    expect(r.state.calls).toEqual([]);
  });
  it('an output directory that does not exist: exit 6 before any request', async () => {
    const r = await run(csr, ['-k', '0x81010000', '--subject', 'CN=a', '-o', f('no/dir/r.pem')]);
    expect(r.code).toBe(EXIT.FILE);
    expect(r.state.calls).toEqual([]);
  });
  it('a decryption key cannot sign: exit 5 saying why, nothing signed or written', async () => {
    const state = await keys(['genkey', '-G', 'rsa', '--usage', 'decrypt']);
    for (const [tool, extra] of [
      [csr, []],
      [cert, ['--self-signed']],
    ] as const) {
      const r = await run(tool, ['-k', '0x81010000', ...extra, '--subject', 'CN=a', '-o', f('never.pem')], { state });
      expect(r.code).toBe(EXIT.UNSUPPORTED);
      expect(r.stderr).toBe(`${tool.name}: key 0x81010000 is a decryption key (scheme oaep): it cannot sign; make a signing key with: eve_tools_tpm2_genkey -G rsa\n`);
    }
    expect(state.calls).toEqual(['getKey 0x81010000', 'getKey 0x81010000']);
    expect(existsSync(f('never.pem'))).toBe(false);
  });
  it("another app's key: exit 3, no file", async () => {
    const r = await run(cert, ['-k', '0x81010009', '--self-signed', '--subject', 'CN=a', '-o', f('never.pem')]);
    expect(r.code).toBe(EXIT.AUTH);
    expect(r.stderr).toBe('eve_tools_tpm2_cert: key 0x81010009 is not yours: only keys this application created can be used\n');
    expect(existsSync(f('never.pem'))).toBe(false);
  });
});

describe('listkeys', () => {
  it('AKs alone: the table of before; with a general key: kind, size, usage and scheme too', async () => {
    const state = await keys(['ak', '-g', 'rsa']);
    expect((await run(listkeys, [], { state })).stdout.split('\n')[0]).toBe('HANDLE      TYPE  HASH    CREATED');
    await run(genkey, ['-G', 'ecc', '--usage', 'decrypt'], { state });
    const l = (await run(listkeys, [], { state })).stdout.split('\n');
    expect(l.slice(0, 3)).toEqual([
      'HANDLE      KIND     TYPE  SIZE   USAGE    SCHEME  HASH    CREATED',
      '0x81010000  ak       rsa   2048   sign     rsassa  sha256  2025-01-01T00:00:00.000Z',
      '0x81010001  general  ecc   P-256  decrypt  ecdh    sha256  2025-01-01T00:00:00.000Z',
    ]);
    const j = JSON.parse((await run(listkeys, ['--json'], { state })).stdout);
    expect(j.keys[1]).toEqual({ handle: '0x81010001', kind: 'general', type: 'ecc', usage: 'decrypt', scheme: 'ecdh', curve: 'P-256', hashAlg: 'sha256', name: '000b01', createdAt: '2025-01-01T00:00:00.000Z' });
    expect(j.keys[0]).toMatchObject({ kind: 'ak', usage: 'sign', scheme: 'rsassa', bits: 2048 });
  });
});
