/**
 * General app keys on swtpm, checked by stock openssl:
 * - every signature scheme (RSASSA, RSASSA-PSS with the TPM's salt length = digest length,
 *   ECDSA P-256/P-384) verifies with `openssl dgst -verify` and the key's PEM;
 * - `openssl pkeyutl -encrypt` (OAEP SHA-256, with and without label) → rsaDecrypt gives the plaintext;
 * - ECDH: `openssl pkeyutl -derive` with the TPM key's PEM and a software key = ecdhZGen;
 * - a decrypt key is refused for signing (and a sign key for decryption) before the TPM sees it;
 * - crypto-erase: a child's blobs never load again once its app parent's blob is gone.
 */
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AppParentError,
  CreatePrimary,
  KeyUsageError,
  TPM_RH,
  createServicePrimary,
  evictPersistent,
  loadAppParent,
  makePersistent,
  passwordAuth,
  srkRsaTemplate,
  TPM_ALG,
  TPM_RC,
  Tpm,
  TpmError,
  createAppParent,
  createGeneralKey,
  ecdhZGen,
  flush,
  formatSignature,
  generalKeyFromBlobs,
  isSigningKey,
  loadGeneralKey,
  publicToPem,
  rsaDecrypt,
  signDigestWithKey,
  withAppParent,
  withGeneralKey,
  withServicePrimary,
  type CreatedKey,
  type GeneralKey,
  type GeneralKeySpec,
  type LoadedKey,
  type TpmRunner,
} from '../../src/tpm/index.js';
import { HierarchyChangeAuth } from '../helpers/hierarchy.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, withTpmOn, type SwtpmInstance } from '../helpers/swtpm.js';
import { opensslAvailable, run, runOk, workDir } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const ready = swtpmAvailable() && opensslAvailable();

describe.skipIf(skipUnlessCI(!ready))('general app keys on swtpm, with openssl', () => {
  let sw: SwtpmInstance;
  let dir: string;
  let removeDir: () => Promise<void>;
  let parent: CreatedKey;
  const withLib = <T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> => withTpmOn(sw, fn);
  const file = (name: string): string => join(dir, name);
  const make = <S extends GeneralKeySpec>(spec: S): Promise<GeneralKey<S['usage']>> =>
    withLib((tpm) => withAppParent(tpm, parent, (p) => createGeneralKey(tpm, p, spec)));

  beforeAll(async () => {
    sw = await startSwtpm();
    ({ dir, remove: removeDir } = await workDir('appkeys-'));
    parent = await withLib((tpm) => createAppParent(tpm));
  }, 60_000);

  afterAll(async () => {
    await sw?.stop();
    await removeDir?.();
  });

  afterEach(async () => {
    await withLib((tpm) => expectNothingLoaded(tpm));
  });

  const signCases: Array<{ label: string; spec: GeneralKeySpec; hash: string; sigopts: string[] }> = [
    { label: 'RSASSA RSA-2048 SHA-256', spec: { type: 'rsa', usage: 'sign', scheme: 'rsassa' }, hash: 'sha256', sigopts: [] },
    // The TPM's PSS salt is as long as the digest: openssl is told exactly that, not "auto".
    {
      label: 'RSASSA-PSS RSA-2048 SHA-256',
      spec: { type: 'rsa', usage: 'sign', scheme: 'rsapss' },
      hash: 'sha256',
      sigopts: ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'],
    },
    {
      label: 'RSASSA-PSS RSA-3072 SHA-384',
      spec: { type: 'rsa', usage: 'sign', scheme: 'rsapss', bits: 3072, hashAlg: TPM_ALG.SHA384 },
      hash: 'sha384',
      sigopts: ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:48'],
    },
    { label: 'ECDSA P-256 SHA-256', spec: { type: 'ecc', usage: 'sign', scheme: 'ecdsa' }, hash: 'sha256', sigopts: [] },
    { label: 'ECDSA P-384 SHA-384', spec: { type: 'ecc', usage: 'sign', scheme: 'ecdsa', curve: 'P-384', hashAlg: TPM_ALG.SHA384 }, hash: 'sha384', sigopts: [] },
  ];

  for (const c of signCases) {
    it(`${c.label}: a TPM signature of a digest verifies with openssl`, async () => {
      const key = await make(c.spec);
      if (!isSigningKey(key)) throw new Error('not a signing key'); // narrows GeneralKey to SigningKey
      const message = randomBytes(300);
      const digest = new Uint8Array(createHash(c.hash).update(message).digest());
      const sig = await withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => signDigestWithKey(tpm, k, digest)));
      const base = c.label.replace(/\W+/g, '-');
      await writeFile(file(`${base}.pem`), publicToPem(key.publicArea));
      await writeFile(file(`${base}.msg`), message);
      await writeFile(file(`${base}.sig`), formatSignature(sig, 'plain'));
      const args = ['dgst', `-${c.hash}`, ...c.sigopts, '-verify', `${base}.pem`, '-signature', `${base}.sig`, `${base}.msg`];
      const ok = await run('openssl', args, { cwd: dir });
      expect(ok.stdout + ok.stderr).toMatch(/Verified OK/);
      // Another message: refused (the check is real).
      await writeFile(file(`${base}.msg`), randomBytes(300));
      const bad = await run('openssl', args, { cwd: dir });
      expect(bad.code).not.toBe(0);
    }, 60_000);
  }

  it('the TPM signs PSS with a digest-long salt, not the maximum', async () => {
    const key = await make({ type: 'rsa', usage: 'sign', scheme: 'rsapss' });
    const message = randomBytes(64);
    const digest = new Uint8Array(createHash('sha256').update(message).digest());
    const sig = await withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => signDigestWithKey(tpm, k, digest)));
    await writeFile(file('pss.pem'), publicToPem(key.publicArea));
    await writeFile(file('pss.msg'), message);
    await writeFile(file('pss.sig'), formatSignature(sig, 'plain'));
    const verify = (saltlen: string) =>
      run('openssl', ['dgst', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${saltlen}`, '-verify', 'pss.pem', '-signature', 'pss.sig', 'pss.msg'], { cwd: dir });
    expect((await verify('32')).code).toBe(0);
    expect((await verify('max')).code).not.toBe(0); // 222 for RSA-2048/SHA-256
  }, 60_000);

  for (const label of [undefined, 'app1 secret label']) {
    it(`RSA-OAEP SHA-256 ${label ? 'with' : 'without'} a label: openssl encrypts, the TPM decrypts`, async () => {
      const key = await make({ type: 'rsa', usage: 'decrypt', scheme: 'oaep' });
      expect(key.usage).toBe('decrypt');
      await writeFile(file('oaep.pem'), publicToPem(key.publicArea));
      const plain = randomBytes(100);
      await writeFile(file('oaep.in'), plain);
      const opts = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256'];
      // The TPM's label ends in a zero octet, which is part of what is hashed.
      if (label) opts.push('-pkeyopt', `rsa_oaep_label:${Buffer.from(label + '\0').toString('hex')}`);
      await runOk('openssl', ['pkeyutl', '-encrypt', '-pubin', '-inkey', 'oaep.pem', '-in', 'oaep.in', '-out', 'oaep.bin', ...opts], { cwd: dir });
      const cipher = new Uint8Array(await readFile(file('oaep.bin')));
      const out = await withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => rsaDecrypt(tpm, k, cipher, { label })));
      expect(Buffer.from(out).equals(plain)).toBe(true);
      // The wrong label: the TPM refuses (it cannot unpad), nothing is returned.
      const wrong = withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => rsaDecrypt(tpm, k, cipher, { label: label ? 'other' : 'x' })));
      await expect(wrong).rejects.toBeInstanceOf(TpmError);
    }, 60_000);
  }

  for (const curve of ['P-256', 'P-384'] as const) {
    it(`ECDH ${curve}: openssl pkeyutl -derive gives the Z of ECDH_ZGen`, async () => {
      const key = await make({ type: 'ecc', usage: 'decrypt', scheme: 'ecdh', curve });
      await writeFile(file('ecdh.pem'), publicToPem(key.publicArea));
      await runOk('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', 'peer.key'], { cwd: dir });
      await runOk('openssl', ['pkey', '-in', 'peer.key', '-pubout', '-out', 'peer.pem'], { cwd: dir });
      await runOk('openssl', ['pkeyutl', '-derive', '-inkey', 'peer.key', '-peerkey', 'ecdh.pem', '-out', 'z.bin'], { cwd: dir });
      const theirs = await readFile(file('z.bin'));
      const peerPem = await readFile(file('peer.pem'), 'utf8');
      const ours = await withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => ecdhZGen(tpm, k, peerPem)));
      expect(theirs.length).toBe(curve === 'P-256' ? 32 : 48);
      expect(Buffer.from(ours).toString('hex')).toBe(theirs.toString('hex'));
      // The same peer as a KeyObject, as DER, and as the TPM's point: the same Z.
      const peerKey = createPublicKey(peerPem);
      const der = new Uint8Array(peerKey.export({ type: 'spki', format: 'der' }));
      const jwk = peerKey.export({ format: 'jwk' });
      const point = { x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')) };
      const others = await withLib((tpm) =>
        withGeneralKey(tpm, parent, key, async (k) => [await ecdhZGen(tpm, k, peerKey), await ecdhZGen(tpm, k, der), await ecdhZGen(tpm, k, point)]),
      );
      for (const z of others) expect(Buffer.from(z).toString('hex')).toBe(theirs.toString('hex'));
    }, 60_000);
  }

  it('ECDH refuses a peer on another curve, before the TPM sees it', async () => {
    const key = await make({ type: 'ecc', usage: 'decrypt', scheme: 'ecdh' });
    await runOk('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'p384.key'], { cwd: dir });
    const { stdout: pem } = await runOk('openssl', ['pkey', '-in', 'p384.key', '-pubout'], { cwd: dir });
    await expect(withLib((tpm) => withGeneralKey(tpm, parent, key, (k) => ecdhZGen(tpm, k, pem)))).rejects.toThrow(/peer key is on P-384; this key is on P-256/);
  }, 60_000);

  it('a decrypt key is refused for signing, and a sign key for decryption, at run time, before any TPM command', async () => {
    const dec = await make({ type: 'rsa', usage: 'decrypt', scheme: 'oaep' });
    const sig = await make({ type: 'ecc', usage: 'sign', scheme: 'ecdsa' });
    const digest = new Uint8Array(32);
    await withLib(async (tpm) => {
      // The types forbid these calls (see types.test.ts); a plain-JS caller gets a clear error.
      const d = await withAppParent(tpm, parent, (p) => loadGeneralKey(tpm, p, dec));
      const s = await withAppParent(tpm, parent, (p) => loadGeneralKey(tpm, p, sig));
      try {
        const commands: string[] = [];
        const spy: TpmRunner = {
          connection: tpm.connection,
          run: ((cmd, input, opts) => (commands.push(cmd.name), tpm.run(cmd, input, opts))) as TpmRunner['run'],
          runWithAuths: ((cmd, input, opts) => (commands.push(cmd.name), tpm.runWithAuths(cmd, input, opts))) as TpmRunner['runWithAuths'],
        };
        await expect(signDigestWithKey(spy, d as unknown as LoadedKey<'sign'>, digest)).rejects.toThrow(/this key cannot sign: it is a decrypt key/);
        await expect(rsaDecrypt(spy, s as unknown as LoadedKey<'decrypt'>, new Uint8Array(256))).rejects.toThrow(/this key cannot decrypt: it is a sign key/);
        // A label that lies: usage 'sign' on a decrypt key's public area.
        await expect(signDigestWithKey(spy, { ...d, usage: 'sign' } as LoadedKey<'sign'>, digest)).rejects.toBeInstanceOf(KeyUsageError);
        expect(commands).toEqual([]);
      } finally {
        await flush(tpm, d.handle);
        await flush(tpm, s.handle);
      }
    });
    // Stored blobs: the usage is read back from the key's own attributes.
    expect(generalKeyFromBlobs({ public: dec.public, private: dec.private }).usage).toBe('decrypt');
    expect(generalKeyFromBlobs({ public: sig.public, private: sig.private }).usage).toBe('sign');
  }, 60_000);

  it('the service primary: the same key transient or persisted; a persisted look-alike is refused; an owner password is honoured', async () => {
    const PERSISTENT = 0x81018100;
    await withLib(async (tpm) => {
      const primary = await createServicePrimary(tpm);
      try {
        await makePersistent(tpm, primary, PERSISTENT);
      } finally {
        await flush(tpm, primary.handle);
      }
      try {
        // A parent made under the derived primary loads under the persisted one: it is the same key.
        const loaded = await loadAppParent(tpm, parent, { servicePrimaryHandle: PERSISTENT });
        await flush(tpm, loaded.handle);
      } finally {
        await evictPersistent(tpm, PERSISTENT);
      }
      // An SRK persisted where the service primary was expected: refused before any use.
      const srk = await tpm.run(CreatePrimary, {
        primaryHandle: TPM_RH.OWNER,
        inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
        inPublic: srkRsaTemplate(),
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      });
      try {
        await makePersistent(tpm, srk.objectHandle, PERSISTENT);
      } finally {
        await flush(tpm, srk.objectHandle);
      }
      try {
        await expect(loadAppParent(tpm, parent, { servicePrimaryHandle: PERSISTENT })).rejects.toThrow(AppParentError);
      } finally {
        await evictPersistent(tpm, PERSISTENT);
      }
      // An owner password: without it CreatePrimary is refused; with it (salted session) all works.
      await tpm.run(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth: new TextEncoder().encode('owner-pw') });
      try {
        await expect(createAppParent(tpm)).rejects.toSatisfy((e: unknown) => e instanceof TpmError && e.is(TPM_RC.BAD_AUTH));
        const p2 = await createAppParent(tpm, { ownerAuth: 'owner-pw' });
        const key = await withAppParent(tpm, p2, (p) => createGeneralKey(tpm, p, { type: 'ecc', usage: 'sign', scheme: 'ecdsa' }), { ownerAuth: 'owner-pw' });
        const sig = await withGeneralKey(tpm, p2, key, (k) => signDigestWithKey(tpm, k, new Uint8Array(32)), { ownerAuth: 'owner-pw' });
        expect(sig.sigAlg).toBe(TPM_ALG.ECDSA);
      } finally {
        await tpm.run(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth: new Uint8Array(0) }, { auth: { authHandle: passwordAuth(new TextEncoder().encode('owner-pw')) } });
      }
    });
  }, 60_000);

  it('crypto-erase: once the app parent blob is gone, its children never load again', async () => {
    const app = await withLib((tpm) => createAppParent(tpm));
    const child = await withLib((tpm) => withAppParent(tpm, app, (p) => createGeneralKey(tpm, p, { type: 'ecc', usage: 'sign', scheme: 'ecdsa' })));
    const stray = { public: child.public.slice(), private: child.private.slice() }; // a backup copy
    // While the parent exists, the copy is a working key.
    const digest = new Uint8Array(32).fill(7);
    const restored = generalKeyFromBlobs(stray);
    if (!isSigningKey(restored)) throw new Error('not a signing key');
    const ok = await withLib((tpm) => withGeneralKey(tpm, app, restored, (k) => signDigestWithKey(tpm, k, digest)));
    expect(ok.sigAlg).toBe(TPM_ALG.ECDSA);
    // Destroy the parent: its blob is all there was of its seed. A new app parent (same template) is another key.
    const erased = { public: app.public, private: app.private };
    erased.private.fill(0);
    const again = await withLib((tpm) => createAppParent(tpm));
    expect(Buffer.from(again.name).equals(Buffer.from(app.name))).toBe(false);
    const loadUnder = (tpm: Tpm, p: Parameters<typeof loadGeneralKey>[1]) => loadGeneralKey(tpm, p, generalKeyFromBlobs(stray));
    const underNew = withLib((tpm) => withAppParent(tpm, again, (p) => loadUnder(tpm, p)));
    await expect(underNew).rejects.toSatisfy((e: unknown) => e instanceof TpmError && e.is(TPM_RC.INTEGRITY));
    // Nor under the service primary itself (re-derivable, but not the child's parent).
    const underPrimary = withLib((tpm) => withServicePrimary(tpm, (p) => loadUnder(tpm, p)));
    await expect(underPrimary).rejects.toSatisfy((e: unknown) => e instanceof TpmError && e.is(TPM_RC.INTEGRITY));
    // The zeroed parent blob itself is refused too: nothing of it survives.
    await expect(withLib((tpm) => withAppParent(tpm, erased, async () => 1))).rejects.toBeInstanceOf(Error);
  }, 60_000);
});
