/**
 * The attestation tools end to end: each a real child process → the service (child process,
 * real tenants) → swtpm, and stock tpm2-tools on the other side. Before the service connects,
 * stock tools extend a PCR, read the PCRs (the text ours must equal) and make the device's
 * attestation key at 0x81000003, as EVE's AIK is (swtpm serves one connection at a time).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.js';
import { readPcrsOut } from '../../src/tpm/attest/formats.js';
import { appQualifyingData } from '../../src/tpm/attest/app-binding.js';
import { verifyCertify } from '../../src/tpm/attest/verify.js';
import { TPM2B_PUBLIC, TPMT_SIGNATURE } from '../../src/tpm/structures.js';
import { decode } from '../../src/tpm/wire/codec.js';
import { isCI } from '../helpers/ci.js';
import { run as runProgram, tpm2Tools, tpm2ToolsAvailable } from '../helpers/tpm-tools.js';
import { missingPrerequisites, startStack, type Stack } from './stack.js';

const missing = [...missingPrerequisites(), ...(tpm2ToolsAvailable() ? [] : ['tpm2-tools'])];
if (missing.length && isCI()) throw new Error(`attestation end-to-end tests need ${missing.join(', ')}`);
const d = missing.length ? describe.skip : describe;

/** Read by both: sha256 and sha1, PCR 16 extended by the stock tool, 17 (all ones on swtpm). */
const SELECTION = 'sha256:0,1,16,17+sha1:0,16';
const DEVICE_AK = '0x81000003';
const ECC_EK_CERT = '0x01C0000A';

let stack: Stack;
let work: string;
/** What stock tpm2_pcrread printed before the service started: for SELECTION, and with no selection. */
let stockSelected = '';
let stockAll = '';
/** The app's keys, made once (RSA key generation is the slow part): an RSA AK and an ECC one. */
let ak: { handle: string; name: string };
let ecc: { handle: string; name: string };

beforeAll(async () => {
  if (missing.length) return;
  stack = await startStack([{ id: 'app' }, { id: 'other' }], {
    async beforeService(swtpm) {
      const tools = tpm2Tools(swtpm.sockPath, swtpm.dir);
      await tools('tpm2_pcrextend', `16:sha256=${'11'.repeat(32)},sha1=${'22'.repeat(20)}`);
      stockSelected = (await tools('tpm2_pcrread', SELECTION)).stdout;
      stockAll = (await tools('tpm2_pcrread')).stdout;
      // The device's attestation key: a restricted signing key under the EK, persistent.
      await tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa');
      await tools('tpm2_createak', '-C', 'ek.ctx', '-c', 'dak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'dak.pub');
      await tools('tpm2_evictcontrol', '-C', 'o', '-c', 'dak.ctx', DEVICE_AK);
      // An ECC EK certificate (any X.509 does for reading it back); the RSA index stays empty.
      const cert = await runProgram('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-outform', 'der', '-out', 'ek-ecc.crt', '-subj', '/CN=EK test', '-days', '2'], { cwd: swtpm.dir });
      expect(cert.code, cert.stderr).toBe(0);
      const size = readFileSync(join(swtpm.dir, 'ek-ecc.crt')).length;
      await tools('tpm2_nvdefine', ECC_EK_CERT, '-C', 'o', '-s', String(size), '-a', 'ownerread|ownerwrite|authread|no_da');
      await tools('tpm2_nvwrite', ECC_EK_CERT, '-C', 'o', '-i', 'ek-ecc.crt');
    },
  });
  work = join(stack.dir, 'work');
  for (const f of ['dak.pub', 'ek-ecc.crt']) writeFileSync(join(work, f), readFileSync(join(stack.swtpm.dir, f)));
  ak = await newKey('rsa');
  ecc = await newKey('ecc');
  for (const [k, pem] of [
    [ak, 'ak.pem'],
    [ecc, 'ecc.pem'],
  ] as const) {
    const p = await tool('eve_tools_tpm2_pubgetaik', ['-k', k.handle, '-f', pem]);
    expect(p.code, p.stderr).toBe(0);
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

const w = (n: string): string => join(work, n);
const tool = (name: Parameters<Stack['run']>[0], args: string[], tenant = 'app') => stack.run(name, args, tenant);
const stock = (file: string, args: string[]) => runProgram(file, args, { cwd: work });

/** Exactly one line on stderr, starting with the tool's name; returns the rest. */
function oneLine(stderr: string, name: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`${name}: `), stderr).toBe(true);
  return lines[0]!.slice(name.length + 2);
}

const publicOf = (file: string) => decode(TPM2B_PUBLIC, new Uint8Array(readFileSync(w(file))));

async function newKey(type: 'rsa' | 'ecc' = 'rsa', tenant = 'app'): Promise<{ handle: string; name: string }> {
  const g = await tool('eve_tools_tpm2_genaik', ['-g', type, '--json'], tenant);
  expect(g.code, g.stderr).toBe(0);
  const k = JSON.parse(g.stdout) as { handle: string; name: string };
  return { handle: k.handle, name: k.name };
}

d('eve_tools_tpm2_pcrread', () => {
  it("prints exactly what stock tpm2_pcrread printed, for a selection and for every bank", async () => {
    const a = await tool('eve_tools_tpm2_pcrread', [SELECTION]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toBe('');
    expect(a.stdout).toBe(stockSelected);
    expect(a.stdout).toMatch(/^ {4}16: 0x[0-9A-F]{64}$/m);
    const all = await tool('eve_tools_tpm2_pcrread', []);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toBe(stockAll);
  });

  it('-o writes pcrs.out (its values are the text\'s), -F values the bare values; --json the reading', async () => {
    const r = await tool('eve_tools_tpm2_pcrread', [SELECTION, '-o', 'read.pcrs', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { selection: string; updateCounter: number; pcrs: Array<{ bank: string; pcr: number; value: string }>; file: string };
    expect(j.selection).toBe('sha256:0,1,16,17+sha1:0,16');
    expect(j.pcrs.map((p) => `${p.bank}:${p.pcr}`)).toEqual(['sha256:0', 'sha256:1', 'sha256:16', 'sha256:17', 'sha1:0', 'sha1:16']);
    const file = readPcrsOut(new Uint8Array(readFileSync(w('read.pcrs'))));
    expect(file.values.map((v) => Buffer.from(v).toString('hex'))).toEqual(j.pcrs.map((p) => p.value));
    for (const p of j.pcrs) expect(stockSelected).toContain(p.value.toUpperCase());
    const v = await tool('eve_tools_tpm2_pcrread', ['sha256:16', '-o', 'read.values', '-F', 'values']);
    expect(v.code, v.stderr).toBe(0);
    expect(readFileSync(w('read.values')).toString('hex')).toBe(j.pcrs[2]!.value);
  });

  it('a bad selection: exit 2, one line', async () => {
    const r = await tool('eve_tools_tpm2_pcrread', ['sha256:0,40']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(oneLine(r.stderr, 'eve_tools_tpm2_pcrread')).toBe('SELECTION: PCR selection "sha256:0,40": PCR 40 is beyond 31');
  });
});

d('eve_tools_tpm2_quote → stock tpm2_checkquote', () => {
  const checkquote = (nonce: string, prefix = 'quote', pem = 'ak.pem') =>
    stock('tpm2_checkquote', ['-u', pem, '-m', `${prefix}.msg`, '-s', `${prefix}.sig`, '-f', `${prefix}.pcrs`, '-g', 'sha256', '-q', nonce]);

  it('the files verify with the nonce; another nonce is refused', async () => {
    const nonce = randomBytes(16).toString('hex');
    const q = await tool('eve_tools_tpm2_quote', ['-k', ak.handle, '-l', 'sha256:0,1,16', '-q', nonce, '-m', 'quote.msg', '-s', 'quote.sig', '-o', 'quote.pcrs', '-g', 'sha256']);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toBe('');
    expect(q.stdout).toMatch(/^quoted: ff544347[0-9a-f]+\nsignature: 0014000b[0-9a-f]+\npcrs:\n {2}sha256:\n {4}0 : 0x0{64}\n/);
    expect(q.stdout).toContain(`qualifyingData: ${nonce}\n`);
    const ok = await checkquote(nonce);
    expect(ok.code, ok.stderr).toBe(0);
    const replay = await checkquote(randomBytes(16).toString('hex'));
    expect(replay.code).not.toBe(0);
    // A changed PCR value is refused too.
    const pcrs = Buffer.from(readFileSync(w('quote.pcrs')));
    const tampered = Buffer.from(pcrs);
    tampered[132 + 4 + 4 + 2]! ^= 1; // first value's first byte (after the selection, the list count, its count and size)
    writeFileSync(w('tampered.pcrs'), tampered);
    const t = await stock('tpm2_checkquote', ['-u', 'ak.pem', '-m', 'quote.msg', '-s', 'quote.sig', '-f', 'tampered.pcrs', '-g', 'sha256', '-q', nonce]);
    expect(t.code).not.toBe(0);
  });

  it('--bind: the reported qualifying data is SHA-256("EVE-APP" ‖ 0 ‖ app ‖ 0 ‖ nonce); checkquote takes it, not the bare nonce', async () => {
    const nonce = randomBytes(20);
    const q = await tool('eve_tools_tpm2_quote', ['-k', ak.handle, '-l', 'sha256:16', '-q', nonce.toString('hex'), '-m', 'bound.msg', '-s', 'bound.sig', '-o', 'bound.pcrs', '--bind', '--json']);
    expect(q.code, q.stderr).toBe(0);
    const j = JSON.parse(q.stdout) as { attest: string; signature: string; nonce: string; qualifyingData: string; binding: { identity: string; label: string }; selection: string };
    expect(j.binding).toEqual({ identity: 'app', label: 'EVE-APP' });
    expect(j.nonce).toBe(nonce.toString('hex'));
    expect(j.qualifyingData).toBe(Buffer.from(appQualifyingData('EVE-APP', 'app', nonce)).toString('hex'));
    expect(j.qualifyingData).toBe(createHash('sha256').update(Buffer.concat([Buffer.from('EVE-APP\0app\0'), nonce])).digest('hex'));
    expect(Buffer.from(j.attest, 'base64').equals(readFileSync(w('bound.msg')))).toBe(true);
    expect(Buffer.from(j.signature, 'base64').equals(readFileSync(w('bound.sig')))).toBe(true);
    expect((await checkquote(j.qualifyingData, 'bound')).code).toBe(0);
    expect((await checkquote(nonce.toString('hex'), 'bound')).code).not.toBe(0);
  });

  it('an ECC AK quotes too, 25 PCRs (pcrs.out with four digest lists)', async () => {
    const nonce = randomBytes(32).toString('hex');
    const q = await tool('eve_tools_tpm2_quote', ['-k', ecc.handle, '-l', 'sha256:all+sha1:16', '-q', nonce, '-m', 'ecc.msg', '-s', 'ecc.sig', '-o', 'ecc.pcrs']);
    expect(q.code, q.stderr).toBe(0);
    expect(decode(TPMT_SIGNATURE, new Uint8Array(readFileSync(w('ecc.sig')))).sigAlg).toBe(0x0018);
    const c = await checkquote(nonce, 'ecc', 'ecc.pem');
    expect(c.code, c.stderr).toBe(0);
  });

  it('-g other than the key\'s hash: exit 5, one line, no file', async () => {
    const q = await tool('eve_tools_tpm2_quote', ['-k', ak.handle, '-l', 'sha256:0', '-q', '0a0b', '-m', 'g.msg', '-s', 'g.sig', '-o', 'g.pcrs', '-g', 'sha1']);
    expect(q.code).toBe(EXIT.UNSUPPORTED);
    expect(oneLine(q.stderr, 'eve_tools_tpm2_quote')).toBe(`-g: key ${ak.handle} signs with sha256 only (an AK's hash is fixed when it is created), not sha1 (0x4)`);
    for (const f of ['g.msg', 'g.sig', 'g.pcrs']) expect(existsSync(w(f)), f).toBe(false);
  });

  it("another app's key, and the device's key: exit 3, no file", async () => {
    for (const [h, tenant] of [
      [ak.handle, 'other'],
      [DEVICE_AK, 'app'],
    ] as const) {
      const q = await tool('eve_tools_tpm2_quote', ['-k', h, '-l', 'sha256:0', '-q', '0a0b', '-m', 'x.msg', '-s', 'x.sig', '-o', 'x.pcrs'], tenant);
      expect(q.code, q.stderr).toBe(EXIT.AUTH);
      expect(oneLine(q.stderr, 'eve_tools_tpm2_quote')).toBe(`key ${h} is not yours: only keys this application created can be used`);
      for (const f of ['x.msg', 'x.sig', 'x.pcrs']) expect(existsSync(w(f)), f).toBe(false);
    }
  });

  it('usage: no nonce, bad hex: exit 2, one line, no file', async () => {
    const a = await tool('eve_tools_tpm2_quote', ['-k', ak.handle, '-l', 'sha256:0', '-m', 'u.msg', '-s', 'u.sig']);
    expect(a.code).toBe(EXIT.USAGE);
    expect(oneLine(a.stderr, 'eve_tools_tpm2_quote')).toBe("-q: a nonce is required (no nonce, no quote): give the verifier's nonce in hex");
    const b = await tool('eve_tools_tpm2_quote', ['-k', ak.handle, '-l', 'sha256:0', '-q', 'nothex', '-m', 'u.msg', '-s', 'u.sig']);
    expect(b.code).toBe(EXIT.USAGE);
    expect(oneLine(b.stderr, 'eve_tools_tpm2_quote')).toMatch(/^-q: 'nothex' is not hex/);
    expect(existsSync(w('u.msg'))).toBe(false);
  });
});

d('EK, credential activation', () => {
  it('ekpub → stock tpm2_makecredential -T none for the AK\'s Name → activatecredential recovers the secret', async () => {
    const e = await tool('eve_tools_tpm2_ekpub', ['-G', 'rsa', '-f', 'ek.pem']);
    expect(e.code, e.stderr).toBe(0);
    expect(readFileSync(w('ek.pem'), 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const secret = randomBytes(32);
    writeFileSync(w('secret.bin'), secret);
    const m = await stock('tpm2_makecredential', ['-T', 'none', '-u', 'ek.pem', '-G', 'rsa', '-s', 'secret.bin', '-n', ak.name, '-o', 'cred.blob']);
    expect(m.code, m.stderr).toBe(0);
    const a = await tool('eve_tools_tpm2_activatecredential', ['-k', ak.handle, '-i', 'cred.blob', '-o', 'recovered.bin', '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toEqual({ handle: ak.handle, file: 'recovered.bin', secretLength: 32 });
    expect(readFileSync(w('recovered.bin')).equals(secret)).toBe(true);

    // Made for another Name (here: the device's AIK): refused, nothing written.
    const dakName = '000b' + createHash('sha256').update(readFileSync(w('dak.pub')).subarray(2)).digest('hex');
    const o = await stock('tpm2_makecredential', ['-T', 'none', '-u', 'ek.pem', '-G', 'rsa', '-s', 'secret.bin', '-n', dakName, '-o', 'other.blob']);
    expect(o.code, o.stderr).toBe(0);
    const r = await tool('eve_tools_tpm2_activatecredential', ['-k', ak.handle, '-i', 'other.blob', '-o', 'other.bin']);
    expect(r.code, r.stderr).toBe(5); // unsupported: this key cannot activate it
    expect(r.stderr).toMatch(/made for another key Name/);
    oneLine(r.stderr, 'eve_tools_tpm2_activatecredential');
    expect(existsSync(w('other.bin'))).toBe(false);
  });

  it('ekpub der and tss are the same key; --json names it', async () => {
    const j = await tool('eve_tools_tpm2_ekpub', ['-G', 'ecc', '--json']);
    expect(j.code, j.stderr).toBe(0);
    const e = JSON.parse(j.stdout) as { type: string; name: string; format: string; pem: string };
    expect(e).toMatchObject({ type: 'ecc', format: 'pem' });
    expect(e.name).toMatch(/^000b[0-9a-f]{64}$/);
    expect((await tool('eve_tools_tpm2_ekpub', ['-G', 'ecc', '-f', 'ek-ecc.der', '--format', 'der'])).code).toBe(0);
    expect(readFileSync(w('ek-ecc.der')).toString('base64')).toBe(e.pem.replace(/-----[^-]+-----|\s/g, ''));
    expect((await tool('eve_tools_tpm2_ekpub', ['-G', 'ecc', '-f', 'ek-ecc.tss', '--format', 'tss'])).code).toBe(0);
    const pub = publicOf('ek-ecc.tss');
    expect(pub.type).toBe(0x0023);
  });

  it('ekcert without a certificate in NV (swtpm has none): exit non-zero, one line, no file', async () => {
    const r = await tool('eve_tools_tpm2_ekcert', ['-G', 'rsa', '-o', 'ek.der']);
    expect(r.code).toBe(EXIT.UNSUPPORTED);
    // The service's sentence, e.g. "this TPM has no RSA EK certificate (NV index 0x01C00002)".
    expect(oneLine(r.stderr, 'eve_tools_tpm2_ekcert')).toMatch(/RSA EK certificate.*0x01C00002/i);
    const j = await tool('eve_tools_tpm2_ekcert', ['-G', 'rsa', '-o', 'ek.der', '--json']);
    expect(j.code).toBe(EXIT.UNSUPPORTED);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', exitCode: EXIT.UNSUPPORTED, kind: 'unsupported' } });
    expect(existsSync(w('ek.der'))).toBe(false);
  });

  it('ekcert reads the certificate stored at 0x01C0000A: DER as stored, PEM that openssl reads', async () => {
    const r = await tool('eve_tools_tpm2_ekcert', ['-G', 'ecc', '-o', 'read.der', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ type: 'ecc', index: expect.stringMatching(/^0x01c0000a$/i), format: 'der', file: 'read.der' });
    expect(readFileSync(w('read.der')).equals(readFileSync(w('ek-ecc.crt')))).toBe(true);
    const p = await tool('eve_tools_tpm2_ekcert', ['-G', 'ecc', '--format', 'pem']);
    expect(p.code, p.stderr).toBe(0);
    writeFileSync(w('read.pem'), p.stdout);
    const x = await stock('openssl', ['x509', '-in', 'read.pem', '-noout', '-subject']);
    expect(x.stdout.trim()).toBe('subject=CN = EK test');
    expect(existsSync(w('ek.der'))).toBe(false);
  });
});

d('eve_tools_tpm2_certify', () => {
  it("the app's AK certifies its other key; the library's verifyCertify accepts, with --bind the bound nonce", async () => {
    const [signer, object] = [ak, ecc];
    expect((await tool('eve_tools_tpm2_pubgetaik', ['-k', signer.handle, '-f', 'signer.tss', '--format', 'tss'])).code).toBe(0);
    const nonce = randomBytes(16);
    const c = await tool('eve_tools_tpm2_certify', ['-k', signer.handle, '-c', object.handle, '-q', nonce.toString('hex'), '-m', 'attest.msg', '-s', 'attest.sig']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toBe(`signer: ${signer.handle}\nobject: ${object.handle}\nobjectName: ${object.name}\nqualifyingData: ${nonce.toString('hex')}\n`);
    const input = {
      signerPublic: publicOf('signer.tss'),
      attestBytes: new Uint8Array(readFileSync(w('attest.msg'))),
      signature: new Uint8Array(readFileSync(w('attest.sig'))),
      objectName: new Uint8Array(Buffer.from(object.name, 'hex')),
      nonce: new Uint8Array(nonce),
    };
    const v = verifyCertify(input);
    expect(v.ok, JSON.stringify(v.checks)).toBe(true);
    expect(verifyCertify({ ...input, nonce: new Uint8Array(randomBytes(16)) }).ok).toBe(false);

    const b = await tool('eve_tools_tpm2_certify', ['-k', signer.handle, '-c', object.handle, '-q', nonce.toString('hex'), '-m', 'battest.msg', '-s', 'battest.sig', '--bind', '--json']);
    expect(b.code, b.stderr).toBe(0);
    const j = JSON.parse(b.stdout) as { binding: unknown; qualifyingData: string; objectName: string };
    expect(j.binding).toEqual({ identity: 'app', label: 'EVE-APP' });
    expect(j.objectName).toBe(object.name);
    const bound = appQualifyingData('EVE-APP', 'app', new Uint8Array(nonce));
    expect(j.qualifyingData).toBe(Buffer.from(bound).toString('hex'));
    const bv = verifyCertify({ ...input, attestBytes: new Uint8Array(readFileSync(w('battest.msg'))), signature: new Uint8Array(readFileSync(w('battest.sig'))), nonce: bound });
    expect(bv.ok, JSON.stringify(bv.checks)).toBe(true);
  });

  it("--by-device: the device's AIK certifies the app's AK, bound with EVE-APP-KEY; --signer-pem is its key", async () => {
    const nonce = randomBytes(24);
    const c = await tool('eve_tools_tpm2_certify', ['--by-device', '-c', ak.handle, '-q', nonce.toString('hex'), '-m', 'dev.msg', '-s', 'dev.sig', '--signer-pem', 'device.pem', '--json']);
    expect(c.code, c.stderr).toBe(0);
    const j = JSON.parse(c.stdout) as { signer: string; object: string; binding: unknown; qualifyingData: string; signerName: string; signerPem: string };
    expect(j).toMatchObject({ signer: DEVICE_AK, object: ak.handle, binding: { identity: 'app', label: 'EVE-APP-KEY' } });
    expect(readFileSync(w('device.pem'), 'utf8')).toBe(j.signerPem.endsWith('\n') ? j.signerPem : `${j.signerPem}\n`);
    const dak = publicOf('dak.pub');
    const v = verifyCertify({
      signerPublic: dak,
      attestBytes: new Uint8Array(readFileSync(w('dev.msg'))),
      signature: new Uint8Array(readFileSync(w('dev.sig'))),
      objectName: new Uint8Array(Buffer.from(ak.name, 'hex')),
      nonce: appQualifyingData('EVE-APP-KEY', 'app', new Uint8Array(nonce)),
    });
    expect(v.ok, JSON.stringify(v.checks)).toBe(true);
    // Text output names the binding.
    const t = await tool('eve_tools_tpm2_certify', ['--by-device', '-c', ak.handle, '-q', nonce.toString('hex'), '-m', 'dev2.msg', '-s', 'dev2.sig']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain(`signer: ${DEVICE_AK} (the device's attestation key, Name ${j.signerName})\n`);
    expect(t.stdout).toContain('binding: EVE-APP-KEY\napp: app\n');
  });

  it("certifying another app's key: exit 3, no file", async () => {
    const theirs = await newKey('ecc', 'other');
    const c = await tool('eve_tools_tpm2_certify', ['-k', ak.handle, '-c', theirs.handle, '-q', '0a0b', '-m', 'o.msg', '-s', 'o.sig']);
    expect(c.code, c.stderr).toBe(EXIT.AUTH);
    expect(oneLine(c.stderr, 'eve_tools_tpm2_certify')).toBe(`key ${theirs.handle} is not yours: only keys this application created can be used`);
    expect(existsSync(w('o.msg'))).toBe(false);
  });
});
