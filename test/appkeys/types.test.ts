/**
 * App keys without a TPM:
 * - the types: a decrypt key cannot sign, a sign key cannot decrypt, a spec's usage fixes its
 *   schemes (`@ts-expect-error` lines: `tsc --noEmit` fails if one of them compiles);
 * - templates (attributes, the service primary distinct from EVE's SRK), spec checks for
 *   plain-JS callers, OAEP labels, subjectAltName parsing;
 * - the X.509 signer with a callback that is not a TPM (the shape a service client uses):
 *   software keys sign, openssl verifies the CSR; a signature of the wrong scheme is refused;
 * - importing the library sets no global: @peculiar/x509's reflect-metadata arrives with the first CSR.
 */
import { execFile } from 'node:child_process';
import { constants, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  GENERAL_DECRYPT_ATTRIBUTES,
  GENERAL_SIGN_ATTRIBUTES,
  KeySpecError,
  SERVICE_PRIMARY_UNIQUE,
  SignerError,
  TPMA_OBJECT,
  TPM_ALG,
  TPM_RH,
  X509InputError,
  appParentTemplate,
  assertGeneralKeySpec,
  createCsr,
  createGeneralKey,
  createSigner,
  ecdhZGen,
  generalKeyTemplate,
  matchesTemplate,
  oaepLabel,
  parseSubjectAltNames,
  rsaDecrypt,
  servicePrimaryTemplate,
  signDigestWithKey,
  signerForAk,
  signerForKey,
  signingPublicFromSpki,
  srkRsaTemplate,
  type DecryptionKey,
  type GeneralKey,
  type LoadedKey,
  type SigningKey,
  type TpmRunner,
} from '../../src/tpm/index.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { opensslAvailable, run } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

/** Never called: each marked line must fail to compile. */
function compileTimeRefusals(tpm: TpmRunner, dec: LoadedKey<'decrypt'>, sig: LoadedKey<'sign'>): void {
  // @ts-expect-error a decrypt key cannot sign
  void signDigestWithKey(tpm, dec, new Uint8Array(32));
  // @ts-expect-error nor be an X.509 signer
  void signerForKey(tpm, dec);
  // @ts-expect-error nor pass for an AK (a general key has a usage, an AK none)
  void signerForAk(tpm, dec);
  // @ts-expect-error a sign key cannot decrypt
  void rsaDecrypt(tpm, sig, new Uint8Array(256));
  // @ts-expect-error nor agree on a secret
  void ecdhZGen(tpm, sig, '');
  // @ts-expect-error a decrypt key has no signing scheme
  void generalKeyTemplate({ type: 'rsa', usage: 'decrypt', scheme: 'rsassa' });
  // @ts-expect-error ECDH is an ECC scheme
  void generalKeyTemplate({ type: 'rsa', usage: 'decrypt', scheme: 'ecdh' });
  // @ts-expect-error a sign key has no decryption scheme
  void generalKeyTemplate({ type: 'ecc', usage: 'sign', scheme: 'ecdh' });
  // @ts-expect-error no such RSA size
  void generalKeyTemplate({ type: 'rsa', usage: 'sign', scheme: 'rsassa', bits: 1024 });
}

describe('app key types', () => {
  it('the usage travels from the spec to the key and the loaded handle', () => {
    expect(typeof compileTimeRefusals).toBe('function');
    type Made = Awaited<ReturnType<typeof createGeneralKey<{ type: 'rsa'; usage: 'decrypt'; scheme: 'oaep' }>>>;
    expectTypeOf<Made>().toEqualTypeOf<GeneralKey<'decrypt'>>();
    expectTypeOf<DecryptionKey>().not.toMatchTypeOf<SigningKey>();
    expectTypeOf<LoadedKey<'decrypt'>>().not.toMatchTypeOf<LoadedKey<'sign'>>();
  });
});

describe('app key templates and specs', () => {
  it('general keys: never restricted, always fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth, one usage', () => {
    expect(GENERAL_SIGN_ATTRIBUTES).toBe(0x00040072);
    expect(GENERAL_DECRYPT_ATTRIBUTES).toBe(0x00020072);
    const rsa = generalKeyTemplate({ type: 'rsa', usage: 'decrypt', scheme: 'oaep', bits: 3072, hashAlg: TPM_ALG.SHA384 });
    expect(rsa.type === TPM_ALG.RSA && rsa.parameters).toMatchObject({ keyBits: 3072, scheme: { scheme: TPM_ALG.OAEP, details: { hashAlg: TPM_ALG.SHA384 } } });
    const ecc = generalKeyTemplate({ type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-384' });
    expect(ecc.type === TPM_ALG.ECC && ecc.parameters).toMatchObject({ curveID: 0x0004, scheme: { scheme: TPM_ALG.ECDSA, details: { hashAlg: TPM_ALG.SHA256 } } });
    expect(ecc.objectAttributes & TPMA_OBJECT.restricted).toBe(0);
  });

  it('the service primary is an owner storage key of its own, not EVE\'s SRK; an app parent has no label', () => {
    const primary = servicePrimaryTemplate();
    expect(primary.type).toBe(TPM_ALG.ECC);
    expect(Buffer.from(primary.unique.x).toString()).toBe('eve-tpm-tools app-parent primary');
    expect(SERVICE_PRIMARY_UNIQUE.length).toBe(32);
    expect(matchesTemplate(primary, srkRsaTemplate())).toBe(false);
    expect(primary.parameters.symmetric).toEqual({ algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    expect(primary.objectAttributes & (TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt)).toBe(TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt);
    const parent = appParentTemplate();
    expect(parent.unique.x.length).toBe(0);
    expect(matchesTemplate(parent, primary)).toBe(true); // same kind of key; the parent's seed is random (TPM2_Create)
    expect(TPM_RH.OWNER).toBe(0x40000001);
  });

  it('a plain-JS spec is checked as the types do, each refusal saying why', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ type: 'RSA', usage: 'sign', scheme: 'rsassa' }, /unknown key type "RSA"/],
      [{ type: 'rsa', usage: 'both', scheme: 'rsassa' }, /unknown key usage "both"/],
      [{ type: 'rsa', usage: 'decrypt', scheme: 'rsassa' }, /scheme "rsassa" does not fit a rsa decrypt key: expected 'oaep'/],
      [{ type: 'ecc', usage: 'decrypt', scheme: 'oaep' }, /expected 'ecdh'/],
      [{ type: 'rsa', usage: 'sign', scheme: 'rsapss', bits: 4096 }, /RSA key size 4096/],
      [{ type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-521' }, /curve "P-521"/],
      [{ type: 'ecc', usage: 'sign', scheme: 'ecdsa', bits: 256 }, /an ECC key has no bits/],
      [undefined, /unknown key type/],
    ];
    for (const [spec, msg] of bad) expect(() => assertGeneralKeySpec(spec), JSON.stringify(spec)).toThrow(msg);
    expect(() => generalKeyTemplate({ type: 'rsa', usage: 'decrypt', scheme: 'rsassa' } as never)).toThrow(KeySpecError);
    expect(() => generalKeyTemplate({ type: 'ecc', usage: 'sign', scheme: 'ecdsa', hashAlg: 0x99 })).toThrow(/TPMI_ALG_HASH/);
  });

  it('OAEP labels: a string gets its zero octet; bytes must end in one; at most 66 octets', () => {
    expect(oaepLabel(undefined)).toEqual(new Uint8Array(0));
    expect(oaepLabel('')).toEqual(new Uint8Array(0));
    expect(Buffer.from(oaepLabel('abc')).toString('hex')).toBe('61626300');
    expect(oaepLabel(Uint8Array.of(1, 2, 0))).toEqual(Uint8Array.of(1, 2, 0));
    expect(() => oaepLabel(Uint8Array.of(1, 2))).toThrow(/must end in a zero octet/);
    expect(() => oaepLabel('a\0b')).toThrow(/must not contain a zero/);
    expect(oaepLabel('x'.repeat(65)).length).toBe(66);
    expect(() => oaepLabel('x'.repeat(66))).toThrow(/67 bytes with its zero; the TPM takes at most 66/);
  });

  it('subjectAltNames as openssl writes them', () => {
    expect(parseSubjectAltNames('DNS:a.example, IP:10.0.0.1,email:ops@acme.example,URI:spiffe://acme/app1,IP:::1')).toEqual([
      { type: 'dns', value: 'a.example' },
      { type: 'ip', value: '10.0.0.1' },
      { type: 'email', value: 'ops@acme.example' },
      { type: 'url', value: 'spiffe://acme/app1' },
      { type: 'ip', value: '::1' },
    ]);
    expect(() => parseSubjectAltNames('a.example')).toThrow(/expected DNS:name, IP:address/);
    expect(() => parseSubjectAltNames('IP:10.0.0')).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => parseSubjectAltNames('DNS:a b')).toThrow(X509InputError);
    expect(() => parseSubjectAltNames('RID:1.2.3')).toThrow(X509InputError);
  });
});

const execFileP = promisify(execFile);

describe.skipIf(skipUnlessCI(!opensslAvailable()))('the X.509 signer with a callback that is not a TPM', () => {
  const software = [
    { label: 'RSASSA', key: generateKeyPairSync('rsa', { modulusLength: 2048 }), scheme: TPM_ALG.RSASSA, pss: false },
    { label: 'RSA-PSS', key: generateKeyPairSync('rsa', { modulusLength: 2048 }), scheme: TPM_ALG.RSAPSS, pss: true },
    { label: 'ECDSA P-384', key: generateKeyPairSync('ec', { namedCurve: 'P-384' }), scheme: TPM_ALG.ECDSA, pss: false },
  ];
  for (const s of software) {
    it(`${s.label}: a CSR signed through the callback verifies with openssl`, async () => {
      const pem = s.key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const pub = signingPublicFromSpki(pem, { scheme: s.scheme, hashAlg: s.label === 'ECDSA P-384' ? TPM_ALG.SHA384 : TPM_ALG.SHA256 });
      const seen: number[] = [];
      const signer = await createSigner(pub, async ({ data, scheme, hashAlg }) => {
        seen.push(scheme);
        const hash = hashAlg === TPM_ALG.SHA384 ? 'sha384' : 'sha256';
        // The plain form, as the service's sign answers: RSA bytes, DER ECDSA-Sig-Value.
        return new Uint8Array(nodeSign(hash, data, s.pss ? { key: s.key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : s.key.privateKey));
      });
      const csr = await createCsr(signer, { subject: 'CN=svc, O=Acme', subjectAltNames: ['DNS:svc.example'] });
      expect(seen).toEqual([s.scheme]);
      const dir = await mkdtemp(join(tmpdir(), 'appkeys-sw-'));
      try {
        await writeFile(join(dir, 'req.pem'), csr.pem);
        const r = await run('openssl', ['req', '-in', 'req.pem', '-verify', '-noout', '-pubkey'], { cwd: dir });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(pem);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it('a callback answering with another scheme, or a bad subject, is refused with a clear error', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = signingPublicFromSpki(publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const liar = await createSigner(pub, async () => ({ sigAlg: TPM_ALG.RSASSA, signature: { hash: TPM_ALG.SHA256, sig: new Uint8Array(256) } }));
    await expect(createCsr(liar, { subject: 'CN=x' })).rejects.toThrow(SignerError);
    await expect(createCsr(liar, { subject: 'CN=x' })).rejects.toThrow(/scheme 0x14, not the announced 0x18/);
    const garbage = await createSigner(pub, async () => Uint8Array.of(1, 2, 3));
    await expect(createCsr(garbage, { subject: 'CN=x' })).rejects.toThrow(/no DER ECDSA-Sig-Value/);
    await expect(createCsr(garbage, { subject: '' })).rejects.toThrow(/the subject is empty/);
    await expect(createCsr(garbage, { subject: 'not a name' })).rejects.toThrow(X509InputError);
  });
});

describe('importing the library sets no global', () => {
  it('Reflect metadata (from @peculiar/x509) appears only once a CSR is made', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appkeys-globals-'));
    try {
      const out = join(dir, 'lib.cjs');
      // CommonJS with require() for packages, so NODE_PATH finds this checkout's node_modules.
      const esbuild = join(REPO_ROOT, 'node_modules/.bin/esbuild');
      await execFileP(esbuild, [join(REPO_ROOT, 'src/tpm/index.ts'), '--bundle', '--platform=node', '--format=cjs', '--packages=external', '--supported:dynamic-import=false', `--outfile=${out}`]);
      const script = `
        const lib = require(${JSON.stringify(out)});
        const { generateKeyPairSync } = require('node:crypto');
        const before = typeof Reflect.getMetadata;
        const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const pub = lib.signingPublicFromSpki(publicKey.export({ type: 'spki', format: 'pem' }));
        lib.createSigner(pub, async ({ data }) => require('node:crypto').sign('sha256', data, privateKey))
          .then((s) => lib.createCsr(s, { subject: 'CN=x' }))
          .then(() => console.log(JSON.stringify({ before, after: typeof Reflect.getMetadata })));
      `;
      const { stdout } = await execFileP(process.execPath, ['-e', script], { env: { ...process.env, NODE_PATH: join(REPO_ROOT, 'node_modules') }, cwd: dir });
      expect(JSON.parse(stdout)).toEqual({ before: 'undefined', after: 'function' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
