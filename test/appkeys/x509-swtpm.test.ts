/**
 * CSRs and self-signed certificates made with @peculiar/x509, signed in swtpm, checked by openssl:
 * - for general keys (RSASSA, RSASSA-PSS, ECDSA P-256/P-384) and for AKs (restricted: the TBS
 *   is hashed by the TPM, signed with the ticket);
 * - `openssl req -verify` accepts the CSR, whose public key is the TPM key's, subject and SANs as asked;
 * - `openssl verify -CAfile cert.pem cert.pem` accepts the self-signed certificate.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TPM_ALG,
  Tpm,
  createAk,
  createAppParent,
  createCsr,
  createGeneralKey,
  createSelfSignedCertificate,
  isSigningKey,
  parseBlobs,
  publicToPem,
  signerForAk,
  signerForKey,
  withAppParent,
  withGeneralKey,
  withLoadedKey,
  type CreatedKey,
  type GeneralKeySpec,
  type TpmSigner,
  type X509Output,
} from '../../src/tpm/index.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, withTpmOn, type SwtpmInstance } from '../helpers/swtpm.js';
import { opensslAvailable, run, runOk, workDir } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const ready = swtpmAvailable() && opensslAvailable();
const SUBJECT = 'CN=app1, O=Acme';
const SANS = 'DNS:a.example,IP:10.0.0.1';

describe.skipIf(skipUnlessCI(!ready))('X.509 requests and certificates signed in swtpm, checked by openssl', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let parent: CreatedKey;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  /** As withLib, also listing the commands the TPM carried out. */
  const withCounted = async <T>(fn: (tpm: Tpm) => Promise<T>): Promise<{ result: T; commands: string[] }> => {
    const commands: string[] = [];
    const transport = sw.transport();
    try {
      // Only exchanges the TPM answered with success: a TPM_RC_TESTING/RETRY is re-sent by the executor.
      const ok = (r: Uint8Array | undefined): boolean => r !== undefined && r.length >= 10 && Buffer.from(r).readUInt32BE(6) === 0;
      return { result: await fn(new Tpm(transport, { onExchange: (e) => ok(e.response) && commands.push(e.command) })), commands };
    } finally {
      await transport.close();
    }
  };
  const file = (name: string): string => join(dir, name);

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('appkeys-x509-'));
    parent = await withLib((tpm) => createAppParent(tpm));
  }, 60_000);

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
  });

  afterEach(async () => {
    await withLib((tpm) => expectNothingLoaded(tpm));
  });

  /** Checks a CSR and a certificate with openssl; `pem` is the key's SubjectPublicKeyInfo. */
  async function checkWithOpenssl(base: string, pem: string, csr: X509Output, cert: X509Output, sigAlgText: RegExp): Promise<void> {
    await writeFile(file(`${base}.req.pem`), csr.pem);
    await writeFile(file(`${base}.cert.pem`), cert.pem);
    const req = await run('openssl', ['req', '-in', `${base}.req.pem`, '-verify', '-noout', '-text'], { cwd: dir });
    expect(req.code, req.stderr).toBe(0);
    expect(req.stdout + req.stderr).toMatch(/verify OK/);
    expect(req.stdout).toMatch(/Subject: CN ?= ?app1, O ?= ?Acme/);
    expect(req.stdout).toMatch(/DNS:a\.example, IP Address:10\.0\.0\.1/);
    expect(req.stdout).toMatch(sigAlgText);
    const { stdout: reqKey } = await runOk('openssl', ['req', '-in', `${base}.req.pem`, '-pubkey', '-noout'], { cwd: dir });
    expect(reqKey).toBe(pem);
    // The DER and the PEM are the same request.
    const der = await runOk('openssl', ['req', '-in', `${base}.req.pem`, '-outform', 'DER', '-out', `${base}.req.der`], { cwd: dir });
    expect(der.code).toBe(0);
    expect(Buffer.from(await readFile(file(`${base}.req.der`))).equals(Buffer.from(csr.der))).toBe(true);

    const v = await run('openssl', ['verify', '-CAfile', `${base}.cert.pem`, `${base}.cert.pem`], { cwd: dir });
    expect(v.stdout + v.stderr).toMatch(new RegExp(`${base}\\.cert\\.pem: OK`));
    expect(v.code).toBe(0);
    const { stdout: text } = await runOk('openssl', ['x509', '-in', `${base}.cert.pem`, '-noout', '-text', '-pubkey'], { cwd: dir });
    expect(text).toContain(pem);
    expect(text).toMatch(/DNS:a\.example, IP Address:10\.0\.0\.1/);
    expect(text).toMatch(sigAlgText);
  }

  async function makeBoth(signer: TpmSigner): Promise<{ csr: X509Output; cert: X509Output }> {
    const csr = await createCsr(signer, { subject: SUBJECT, subjectAltNames: SANS });
    const cert = await createSelfSignedCertificate(signer, { subject: SUBJECT, subjectAltNames: SANS, days: 30 });
    return { csr, cert };
  }

  const cases: Array<{ label: string; spec: GeneralKeySpec; alg: RegExp }> = [
    { label: 'rsassa', spec: { type: 'rsa', usage: 'sign', scheme: 'rsassa' }, alg: /sha256WithRSAEncryption/ },
    { label: 'rsapss', spec: { type: 'rsa', usage: 'sign', scheme: 'rsapss' }, alg: /rsassaPss[\s\S]*Salt Length: 0x20/ },
    { label: 'p256', spec: { type: 'ecc', usage: 'sign', scheme: 'ecdsa' }, alg: /ecdsa-with-SHA256/ },
    { label: 'p384', spec: { type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-384', hashAlg: TPM_ALG.SHA384 }, alg: /ecdsa-with-SHA384/ },
  ];

  for (const c of cases) {
    it(`general key ${c.label}: CSR and self-signed certificate verify with openssl`, async () => {
      const key = await withLib((tpm) => withAppParent(tpm, parent, (p) => createGeneralKey(tpm, p, c.spec)));
      if (!isSigningKey(key)) throw new Error('not a signing key');
      const { result, commands } = await withCounted((tpm) => withGeneralKey(tpm, parent, key, async (k) => makeBoth(await signerForKey(tpm, k))));
      const { csr, cert } = result;
      // Hashed here, signed with a NULL ticket: the TPM hashes nothing.
      expect(commands.filter((c) => c === 'Sign' || c === 'Hash')).toEqual(['Sign', 'Sign']);
      await checkWithOpenssl(c.label, publicToPem(key.publicArea), csr, cert, c.alg);
    }, 60_000);
  }

  for (const type of ['rsa', 'ecc'] as const) {
    it(`AK (${type}, restricted): the TPM hashes the TBS and signs with the ticket; openssl accepts both`, async () => {
      const ak = await withLib((tpm) => createAk(tpm, type));
      const { publicArea } = parseBlobs(ak);
      const { result, commands } = await withCounted((tpm) => withLoadedKey(tpm, ak, async (_h, named) => makeBoth(await signerForAk(tpm, { ...named, publicArea }))));
      const { csr, cert } = result;
      // Each TBS hashed by the TPM (ticket), then signed.
      expect(commands.filter((c) => c === 'Sign' || c === 'Hash')).toEqual(['Hash', 'Sign', 'Hash', 'Sign']);
      await checkWithOpenssl(`ak-${type}`, publicToPem(publicArea), csr, cert, type === 'rsa' ? /sha256WithRSAEncryption/ : /ecdsa-with-SHA256/);
    }, 60_000);
  }
});
