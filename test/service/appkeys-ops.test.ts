/**
 * The general keys' operations of the real service on swtpm, over its unix socket (issue 12):
 * a digest signed by each signing scheme and verified by stock openssl (RSASSA, RSASSA-PSS with
 * the digest-long salt, ECDSA P-256/P-384); RSA-OAEP ciphertext made by `openssl pkeyutl
 * -encrypt` to the key's PEM, with and without a label, decrypted by the service; ECDH whose Z
 * equals `openssl pkeyutl -derive` with the TPM key's PEM as peer. And the refusals: every
 * usage refusal a 422 before any TPM command, another tenant's key a 403 before any TPM
 * command, malformed bodies 400, garbage ciphertext a 4xx — never a 5xx; nothing left loaded.
 */
import { constants, createHash, createPublicKey, diffieHellman, generateKeyPairSync, publicEncrypt } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceClient } from '../../src/service/client/client.js';
import type { CreateKeyRequest, KeyInfo } from '../../src/service/protocol/messages.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { isCI, skipUnlessCI } from '../helpers/ci.js';
import { opensslAvailable, run, workDir } from '../helpers/tpm-tools.js';
import { eventually, failure, leftLoaded, startEnv, type TestEnv } from './env.js';

const b64 = (b: Uint8Array | Buffer): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');

/** openssl is the independent check: under CI it must be there. */
const haveOpenssl = opensslAvailable() || isCI();

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; tpmRc?: string } } & Record<string, unknown>;
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !haveOpenssl))('general keys: digest sign, decrypt, ecdh', () => {
  let env: TestEnv;
  let alice: ServiceClient;
  let bob: ServiceClient;
  let work: { dir: string; remove(): Promise<void> };
  const k: Record<string, KeyInfo> = {};

  /** One JSON POST with any body (the typed client would refuse the malformed ones). */
  const post = (tenant: string, path: string, body: unknown, contentType = 'application/json'): Promise<Answer> => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(text)), Authorization: `Bearer ${env.secrets[tenant]!}` };
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: env.unix.slice(5), method: 'POST', path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Answer['body'] }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(text);
    });
  };
  const op = (key: string, what: 'sign' | 'decrypt' | 'ecdh'): string => `/v1/keys/${k[key]!.handle}/${what}`;
  const file = (name: string): string => join(work.dir, name);
  const openssl = async (...args: string[]): Promise<string> => {
    const r = await run('openssl', args);
    expect(r.code, `openssl ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /** Which TPM commands `fn` caused. */
  const commandsOf = async (fn: () => Promise<unknown>): Promise<string[]> => {
    const from = env.commands.length;
    await fn();
    return env.commands.slice(from);
  };

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice', maxKeys: 16 }, { id: 'bob' }] });
    work = await workDir('appkeys-ops-');
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
    alice = env.client('alice');
    bob = env.client('bob');
    const specs: Array<[string, ServiceClient, CreateKeyRequest]> = [
      ['ak', alice, { type: 'rsa' }],
      ['rsassa', alice, { type: 'rsa', kind: 'general' }],
      ['rsapss', alice, { type: 'rsa', kind: 'general', scheme: 'rsapss' }],
      ['p256', alice, { type: 'ecc', kind: 'general' }],
      ['p384', alice, { type: 'ecc', kind: 'general', curve: 'P-384', hashAlg: 'sha384' }],
      ['oaep', alice, { type: 'rsa', kind: 'general', usage: 'decrypt' }],
      ['ecdh', alice, { type: 'ecc', kind: 'general', usage: 'decrypt' }],
      ['ecdh384', alice, { type: 'ecc', kind: 'general', usage: 'decrypt', curve: 'P-384' }],
      ['bobSign', bob, { type: 'ecc', kind: 'general' }],
      ['bobOaep', bob, { type: 'rsa', kind: 'general', usage: 'decrypt' }],
      ['bobEcdh', bob, { type: 'ecc', kind: 'general', usage: 'decrypt' }],
    ];
    for (const [label, c, body] of specs) {
      k[label] = await c.request('create-key', {}, { body });
      await writeFile(file(`${label}.pem`), k[label]!.pem);
    }
  }, 180_000);
  afterAll(async () => {
    await work?.remove();
    await env?.stop();
  });

  it('the keys are what was asked for', () => {
    expect(k.ak).toMatchObject({ kind: 'ak', usage: 'sign', scheme: 'rsassa' });
    expect(k.rsapss).toMatchObject({ kind: 'general', usage: 'sign', scheme: 'rsapss', bits: 2048 });
    expect(k.p384).toMatchObject({ kind: 'general', usage: 'sign', scheme: 'ecdsa', curve: 'P-384', hashAlg: 'sha384' });
    expect(k.oaep).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'oaep' });
    expect(k.ecdh).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-256' });
  });

  it('digest sign: openssl verifies RSASSA, RSASSA-PSS (salt = digest length) and ECDSA P-256/P-384, in every format', async () => {
    const cases: Array<[string, 'sha256' | 'sha384', string, string[]]> = [
      ['rsassa', 'sha256', 'rsassa', []],
      ['rsapss', 'sha256', 'rsapss', ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest']],
      ['p256', 'sha256', 'ecdsa', []],
      ['p384', 'sha384', 'ecdsa', []],
    ];
    for (const [label, hash, sigAlg, sigopts] of cases) {
      const message = Buffer.from(`a message of ${label}, hashed by the caller`);
      const digest = createHash(hash).update(message).digest();
      await writeFile(file(`${label}.msg`), message);
      const r = await alice.request('sign', { handle: k[label]!.handle }, { body: { digest: b64(digest) } });
      expect(r).toMatchObject({ handle: k[label]!.handle, sigAlg, hashAlg: hash, format: 'plain', digest: digest.toString('hex'), messageLength: 0 });
      await writeFile(file(`${label}.sig`), unb64(r.signature));
      await openssl('dgst', `-${hash}`, '-verify', file(`${label}.pem`), '-signature', file(`${label}.sig`), ...sigopts, file(`${label}.msg`));
      // The same check on the digest itself (pkeyutl), and a wrong message fails.
      await writeFile(file(`${label}.dig`), digest);
      await openssl('pkeyutl', '-verify', '-pubin', '-inkey', file(`${label}.pem`), '-in', file(`${label}.dig`), '-sigfile', file(`${label}.sig`), '-pkeyopt', `digest:${hash}`, ...sigopts.map((o) => o.replace('-sigopt', '-pkeyopt')));
      await writeFile(file(`${label}.other`), Buffer.concat([message, Buffer.from('!')]));
      const bad = await run('openssl', ['dgst', `-${hash}`, '-verify', file(`${label}.pem`), '-signature', file(`${label}.sig`), ...sigopts, file(`${label}.other`)]);
      expect(bad.code).not.toBe(0);
      // der is plain; tss is the marshalled TPMT_SIGNATURE, longer than plain.
      const der = await alice.request('sign', { handle: k[label]!.handle }, { body: { digest: b64(digest), format: 'der', hashAlg: hash } });
      expect(der.format).toBe('der');
      const tss = await alice.request('sign', { handle: k[label]!.handle }, { body: { digest: b64(digest), format: 'tss' } });
      expect(unb64(tss.signature).length).toBeGreaterThan(unb64(r.signature).length - 8);
    }
  });

  it('digest sign is one Sign job with a NULL ticket: no TPM hash', async () => {
    const digest = createHash('sha256').update('x').digest();
    const cmds = await commandsOf(() => alice.request('sign', { handle: k.p256!.handle }, { body: { digest: b64(digest) } }));
    expect(cmds).toContain('Sign');
    expect(cmds.filter((c) => c === 'Hash' || c.startsWith('HashSequence') || c.startsWith('Sequence'))).toEqual([]);
  });

  it('decrypt: what openssl encrypted to the key\'s PEM with OAEP-SHA256, without and with a label', async () => {
    const plain = Buffer.from('the secret an app was sent');
    await writeFile(file('plain'), plain);
    const enc = (out: string, ...opts: string[]): Promise<string> =>
      openssl('pkeyutl', '-encrypt', '-pubin', '-inkey', file('oaep.pem'), '-in', file('plain'), '-out', file(out), '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', ...opts);
    await enc('ct');
    const r = await alice.request('decrypt', { handle: k.oaep!.handle }, { body: { ciphertext: b64(await readFile(file('ct'))) } });
    expect(r.handle).toBe(k.oaep!.handle);
    expect(unb64(r.plaintext)).toEqual(plain);
    // A label is text; the TPM hashes its bytes and a zero, so openssl gets both.
    const label = 'app1 key-wrap';
    await enc('ct-label', '-pkeyopt', `rsa_oaep_label:${Buffer.from(label).toString('hex')}00`);
    const ctLabel = b64(await readFile(file('ct-label')));
    const l = await alice.request('decrypt', { handle: k.oaep!.handle }, { body: { ciphertext: ctLabel, label } });
    expect(unb64(l.plaintext)).toEqual(plain);
    // The wrong label, no label, or a ciphertext for no label given one: the caller's fault, a 400 with the TPM's code.
    for (const body of [{ ciphertext: ctLabel, label: 'another' }, { ciphertext: ctLabel }, { ciphertext: b64(await readFile(file('ct'))), label }]) {
      const e = await post('alice', op('oaep', 'decrypt'), body);
      expect(e.status, JSON.stringify(e.body)).toBe(400);
      expect(e.body.error!.message).toMatch(/does not decrypt with this key/);
      expect(e.body.error!.tpmRc).toMatch(/^0x[0-9a-f]{8}$/);
    }
  });

  it('decrypt of garbage, or of a ciphertext of the wrong size, is a 400; the key still works after', async () => {
    const garbage = Buffer.alloc(256, 0x5a);
    const e = await post('alice', op('oaep', 'decrypt'), { ciphertext: b64(garbage) });
    expect(e.status).toBe(400);
    const before = env.commands.length;
    for (const n of [0, 255, 257, 512]) {
      const s = await post('alice', op('oaep', 'decrypt'), { ciphertext: b64(Buffer.alloc(n, 1)) });
      expect(s.status, String(n)).toBe(400);
      expect(s.body.error!.message).toMatch(/RSA-2048 ciphertext is exactly 256/);
    }
    for (const label of ['a\u0000b', 'x'.repeat(66)]) expect((await post('alice', op('oaep', 'decrypt'), { ciphertext: b64(garbage), label })).status).toBe(400);
    expect(env.commands.length).toBe(before); // refused before the TPM
    const r = await alice.request('decrypt', { handle: k.oaep!.handle }, { body: { ciphertext: b64(await readFile(file('ct'))) } });
    expect(unb64(r.plaintext).toString()).toBe('the secret an app was sent');
  });

  it('ecdh: Z equals openssl pkeyutl -derive with the TPM key\'s PEM as peer (P-256 and P-384)', async () => {
    for (const [label, curve, size] of [
      ['ecdh', 'P-256', 32],
      ['ecdh384', 'P-384', 48],
    ] as const) {
      await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', file(`${label}-peer.key`));
      await openssl('pkey', '-in', file(`${label}-peer.key`), '-pubout', '-out', file(`${label}-peer.pem`));
      await openssl('pkeyutl', '-derive', '-inkey', file(`${label}-peer.key`), '-peerkey', file(`${label}.pem`), '-out', file(`${label}-z.bin`));
      const r = await alice.request('ecdh', { handle: k[label]!.handle }, { body: { peer: await readFile(file(`${label}-peer.pem`), 'utf8') } });
      const z = unb64(r.z);
      expect(z.length).toBe(size);
      expect(z).toEqual(await readFile(file(`${label}-z.bin`)));
    }
  });

  it('ecdh refuses a peer that is not a PEM public key on the key\'s curve: 400 before the TPM', async () => {
    await openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', file('rsa-peer.key'));
    const peers = [
      await readFile(file('ecdh384-peer.pem'), 'utf8'), // P-384 for a P-256 key
      k.oaep!.pem, // RSA
      await readFile(file('ecdh-peer.key'), 'utf8'), // a private key
      await readFile(file('rsa-peer.key'), 'utf8'),
      '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n',
      'not a key',
      '',
    ];
    const before = env.commands.length;
    for (const peer of peers) {
      const e = await post('alice', op('ecdh', 'ecdh'), { peer });
      expect(e.status, peer.slice(0, 40)).toBe(400);
      expect(e.body.error!.code).toBe('BAD_REQUEST');
    }
    expect(env.commands.length).toBe(before);
  });

  it('every usage refusal is a 422 saying why, before any TPM command', async () => {
    const digest = b64(createHash('sha256').update('m').digest());
    const ct = b64(Buffer.alloc(256, 1));
    const peer = await readFile(file('ecdh-peer.pem'), 'utf8');
    const cases: Array<[string, 'sign' | 'decrypt' | 'ecdh', unknown, RegExp]> = [
      ['ak', 'sign', { digest }, /attestation key signs only what the TPM hashed; send the message/],
      ['oaep', 'sign', { digest }, /decrypt key .*cannot sign/],
      ['ecdh', 'sign', { digest }, /decrypt key .*cannot sign/],
      ['oaep', 'sign', { message: 'AA==' }, /decrypt key .*cannot sign/],
      ['rsassa', 'decrypt', { ciphertext: ct }, /signing key .*cannot decrypt/],
      ['ak', 'decrypt', { ciphertext: ct }, /signing key .*cannot decrypt/],
      ['ecdh', 'decrypt', { ciphertext: ct }, /use ecdh/],
      ['oaep', 'ecdh', { peer }, /RSA key.*use decrypt/],
      ['rsassa', 'ecdh', { peer }, /RSA key/],
      ['p256', 'ecdh', { peer }, /signing key .*ECDH needs an ECC decrypt key/],
      ['ak', 'ecdh', { peer }, /RSA key/],
    ];
    const before = env.commands.length;
    for (const [label, what, body, why] of cases) {
      const e = await post('alice', op(label, what), body);
      expect(e.status, `${what} with ${label}`).toBe(422);
      expect(e.body.error!.code).toBe('UNSUPPORTED');
      expect(e.body.error!.message, `${what} with ${label}`).toMatch(why);
    }
    // A digest in another hash than the key's: 422; of the wrong length: 400.
    expect((await post('alice', op('rsassa', 'sign'), { digest, hashAlg: 'sha384' })).status).toBe(422);
    expect((await post('alice', op('rsassa', 'sign'), { digest: b64(Buffer.alloc(31)) })).status).toBe(400);
    expect((await post('alice', op('p384', 'sign'), { digest })).status).toBe(400); // a sha256 digest for a sha384 key
    expect(env.commands.length).toBe(before);
  });

  it('another tenant\'s key (or EVE\'s handle) is a 403 for digest, decrypt and ecdh, before any TPM command', async () => {
    const digest = b64(createHash('sha256').update('m').digest());
    const peer = await readFile(file('ecdh-peer.pem'), 'utf8');
    const before = env.commands.length;
    for (const [path, body] of [
      [op('bobSign', 'sign'), { digest }],
      [op('bobOaep', 'decrypt'), { ciphertext: b64(Buffer.alloc(256, 1)) }],
      [op('bobEcdh', 'ecdh'), { peer }],
      ['/v1/keys/0x81000002/decrypt', { ciphertext: b64(Buffer.alloc(256, 1)) }],
      ['/v1/keys/0x81000001/ecdh', { peer }],
      ['/v1/keys/0x81000003/sign', { digest }],
    ] as const) {
      const e = await post('alice', path, body);
      expect(e.status, path).toBe(403);
      expect(e.body.error!.code).toBe('FORBIDDEN');
    }
    expect(env.commands.length).toBe(before);
    // bob's own keys work for bob.
    const r = await bob.request('ecdh', { handle: k.bobEcdh!.handle }, { body: { peer } });
    expect(unb64(r.z).length).toBe(32);
  });

  it('malformed bodies are 400: unknown member, wrong types, bad base64, message and digest together, missing fields', async () => {
    const digest = b64(createHash('sha256').update('m').digest());
    const cases: Array<[string, unknown]> = [
      [op('rsassa', 'sign'), { digest, extra: 1 }],
      [op('rsassa', 'sign'), { digest: 12 }],
      [op('rsassa', 'sign'), { digest: 'not base64!' }],
      [op('rsassa', 'sign'), { digest: digest.slice(0, -1) }],
      [op('rsassa', 'sign'), { digest, message: 'AA==' }],
      [op('rsassa', 'sign'), { digest, format: 'pem' }],
      [op('rsassa', 'sign'), { digest, hashAlg: 'md5' }],
      [op('rsassa', 'sign'), {}],
      [op('oaep', 'decrypt'), {}],
      [op('oaep', 'decrypt'), { ciphertext: b64(Buffer.alloc(256)), extra: true }],
      [op('oaep', 'decrypt'), { ciphertext: ['AA=='] }],
      [op('oaep', 'decrypt'), { ciphertext: '@@@@' }],
      [op('oaep', 'decrypt'), { ciphertext: b64(Buffer.alloc(256)), label: 5 }],
      [op('oaep', 'decrypt'), { ciphertext: b64(Buffer.alloc(256)), label: null }],
      [op('ecdh', 'ecdh'), {}],
      [op('ecdh', 'ecdh'), { peer: { pem: 'x' } }],
      [op('ecdh', 'ecdh'), { peer: 'x', z: 'y' }],
      [op('ecdh', 'ecdh'), '[]'],
      [op('ecdh', 'ecdh'), '{"peer":'],
    ];
    const before = env.commands.length;
    for (const [path, body] of cases) {
      const e = await post('alice', path, body);
      expect(e.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(e.body.error!.code).toBe('BAD_REQUEST');
    }
    // Not JSON at all: 400 (decrypt and ecdh take JSON only).
    expect((await post('alice', op('oaep', 'decrypt'), 'x', 'application/octet-stream')).status).toBe(400);
    expect((await post('alice', op('ecdh', 'ecdh'), '{}', 'text/plain')).status).toBe(415);
    expect(env.commands.length).toBe(before);
  });

  it('hostile values in every field (fast-check) and random ciphertexts the TPM sees: never a 5xx, always the error JSON', async () => {
    const value = fc.oneof(fc.jsonValue(), fc.base64String(), fc.string(), fc.uint8Array({ minLength: 256, maxLength: 256 }).map(b64));
    const peerText = fc.oneof(fc.string(), fc.constant('-----BEGIN PUBLIC KEY-----\n'), fc.base64String().map((s) => `-----BEGIN PUBLIC KEY-----\n${s}\n-----END PUBLIC KEY-----\n`));
    const body = fc.oneof(
      fc.record({ ciphertext: value, label: fc.option(value, { nil: undefined }) }, { requiredKeys: [] }).map((b) => [op('oaep', 'decrypt'), b] as const),
      fc.record({ peer: fc.oneof(value, peerText) }, { requiredKeys: [] }).map((b) => [op('ecdh', 'ecdh'), b] as const),
      fc.record({ digest: value, hashAlg: fc.option(value, { nil: undefined }), format: fc.option(value, { nil: undefined }) }, { requiredKeys: [] }).map((b) => [op('p256', 'sign'), b] as const),
    );
    await fc.assert(
      fc.asyncProperty(body, async ([path, b]) => {
        const a = await post('alice', path, b);
        expect(a.status, `${path} ${JSON.stringify(b).slice(0, 200)}`).toBeLessThan(500);
        if (a.status >= 400) expect(a.body.error?.message).toEqual(expect.any(String));
      }),
      { numRuns: 80 },
    );
  }, 120_000);

  it('a deleted key: 403 afterwards; nothing was left loaded by any of the operations', async () => {
    const e = await failure(alice.request('decrypt', { handle: k.bobOaep!.handle }, { body: { ciphertext: b64(Buffer.alloc(256, 1)) } }));
    expect(e.status).toBe(403);
    const extra = await alice.request('create-key', {}, { body: { type: 'ecc', kind: 'general', usage: 'decrypt' } });
    await alice.request('delete-key', { handle: extra.handle });
    const gone = await post('alice', `/v1/keys/${extra.handle}/ecdh`, { peer: await readFile(file('ecdh-peer.pem'), 'utf8') });
    expect(gone.status).toBe(403);
    expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
  });
});

/** The same operations without the object cache (load, use, flush each time) and in the tpm key store (persistent objects). */
for (const [what, config] of [
  ['without the object cache', { objectCache: 0 }],
  ['in the tpm key store', { keyStore: 'tpm' as const }],
] as const) {
  describe.skipIf(skipUnlessCI(!swtpmAvailable() || !haveOpenssl))(`general keys' operations ${what}`, () => {
    let env: TestEnv;
    afterAll(async () => {
      await env?.stop();
    });

    it('digest sign, decrypt and ecdh answer, each one queue job; nothing stays loaded', async () => {
      env = await startEnv({ tenants: [{ id: 'alice' }], config });
      await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
      const alice = env.client('alice');
      const create = (body: CreateKeyRequest): Promise<KeyInfo> => alice.request('create-key', {}, { body });
      const signer = await create({ type: 'ecc', kind: 'general' });
      const oaep = await create({ type: 'rsa', kind: 'general', usage: 'decrypt' });
      const ecdh = await create({ type: 'ecc', kind: 'general', usage: 'decrypt' });
      const from = env.commands.length;
      const digest = createHash('sha256').update('m').digest();
      const s = await alice.request('sign', { handle: signer.handle }, { body: { digest: b64(digest) } });
      expect(s.sigAlg).toBe('ecdsa');
      const ct = publicEncrypt({ key: oaep.pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from('x'));
      const d = await alice.request('decrypt', { handle: oaep.handle }, { body: { ciphertext: b64(ct) } });
      expect(unb64(d.plaintext).toString()).toBe('x');
      const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const z = await alice.request('ecdh', { handle: ecdh.handle }, { body: { peer: peer.publicKey.export({ type: 'spki', format: 'pem' }) as string } });
      const ours = diffieHellman({ privateKey: peer.privateKey, publicKey: createPublicKey(ecdh.pem) });
      expect(unb64(z.z)).toEqual(ours);
      // A command the TPM answered RETRY or TESTING (a fresh swtpm's first ECDSA) is sent again at once: counted once.
      const sent = env.commands.slice(from).filter((c, i, all) => c !== all[i - 1]);
      for (const c of ['Sign', 'RSA_Decrypt', 'ECDH_ZGen']) expect(sent.filter((x) => x === c), c).toHaveLength(1);
      // Without the cache each key is loaded (under its app's parent) and flushed; persistent keys are never loaded.
      if ('objectCache' in config) expect(sent.filter((x) => x === 'Load').length).toBeGreaterThanOrEqual(3);
      else expect(sent.filter((x) => x === 'Load')).toEqual([]);
      expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
    }, 120_000);
  });
}
