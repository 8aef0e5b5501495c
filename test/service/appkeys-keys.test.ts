/**
 * General keys (issue 12) through the real service on swtpm: every kind made under the app's
 * own parent, messages signed and verified with openssl, strict creation fields (refusals
 * before the TPM), listing and quota shared with AKs, one parent per record even for concurrent
 * first creations, cross-tenant refusals, restart, the object cache and `store: tpm`.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { opensslAvailable, run } from '../helpers/tpm-tools.js';
import { listHandles, readPublic } from '../../src/tpm/index.js';
import { PARENTS_DIR, parentFileName } from '../../src/service/keys/app-parents.js';
import { rebuildRegistry } from '../../src/service/keys/rebuild.js';
import { eventually, failure, startEnv, type TestEnv } from './env.js';
import type { CreateKeyOptions } from '../../src/service/client/client.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

/** openssl dgst -verify of `sig` over `msg` with the PEM; PSS with the TPM's salt length (the digest's). */
async function opensslVerifies(dir: string, pem: string, msg: Uint8Array, sig: Uint8Array, hash: string, pss = false): Promise<boolean> {
  const work = await mkdtemp(join(dir, 'v-'));
  try {
    await writeFile(join(work, 'pub.pem'), pem);
    await writeFile(join(work, 'msg'), msg);
    await writeFile(join(work, 'sig'), sig);
    const salt = { sha256: 32, sha384: 48 }[hash] ?? 32;
    const opts = pss ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', `rsa_pss_saltlen:${salt}`] : [];
    const r = await run('openssl', ['dgst', `-${hash}`, '-verify', join(work, 'pub.pem'), ...opts, '-signature', join(work, 'sig'), join(work, 'msg')]);
    return r.code === 0 && r.stdout.includes('Verified OK');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !opensslAvailable()))('general keys', () => {
  let env: TestEnv;
  let dir: string;

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice', maxKeys: 12 }, { id: 'bob', maxKeys: 3 }, { id: 'carol' }], config: { objectCache: 4 } });
    // Start-up maintenance done: the commands counted below are the requests' own.
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
    dir = await mkdtemp(join(tmpdir(), 'appkeys-'));
  });
  afterAll(async () => {
    await env?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const parentFiles = async (): Promise<string[]> => (await readdir(join(env.stateDir, PARENTS_DIR))).filter((n) => n.endsWith('.json')).sort();

  const kinds: Array<{ name: string; req: CreateKeyOptions; shape: Record<string, unknown>; hash: string; pss?: boolean }> = [
    { name: 'rsa rsassa 2048', req: { type: 'rsa', kind: 'general' }, shape: { usage: 'sign', scheme: 'rsassa', bits: 2048 }, hash: 'sha256' },
    { name: 'rsa rsapss 2048', req: { type: 'rsa', kind: 'general', scheme: 'rsapss' }, shape: { usage: 'sign', scheme: 'rsapss', bits: 2048 }, hash: 'sha256', pss: true },
    { name: 'rsa rsassa 3072 sha384', req: { type: 'rsa', kind: 'general', bits: 3072, hashAlg: 'sha384' }, shape: { usage: 'sign', scheme: 'rsassa', bits: 3072 }, hash: 'sha384' },
    { name: 'ecc ecdsa P-256', req: { type: 'ecc', kind: 'general', usage: 'sign' }, shape: { usage: 'sign', scheme: 'ecdsa', curve: 'P-256' }, hash: 'sha256' },
    { name: 'ecc ecdsa P-384 sha384', req: { type: 'ecc', kind: 'general', curve: 'P-384', hashAlg: 'sha384' }, shape: { usage: 'sign', scheme: 'ecdsa', curve: 'P-384' }, hash: 'sha384' },
  ];

  it('makes every signing kind under one app parent; openssl verifies their signatures of messages', async () => {
    const alice = env.client('alice');
    expect(await parentFiles()).toEqual([]);
    for (const k of kinds) {
      const key = await alice.createKey(k.req);
      expect(key, k.name).toMatchObject({ kind: 'general', type: k.req.type, hashAlg: k.hash, ...k.shape });
      for (const text of ['hello', '\xffTCG starts like TPM_GENERATED_VALUE? no: this one does']) {
        const msg = b(text);
        const s = await alice.sign(key.handle, { message: msg });
        expect(await opensslVerifies(dir, key.pem, msg, s.signature, k.hash, k.pss), `${k.name}: openssl verifies`).toBe(true);
      }
      // A general key is not restricted: it signs what starts with TPM_GENERATED_VALUE too.
      const generated = Buffer.concat([Buffer.from([0xff, 0x54, 0x43, 0x47]), b('not an attestation')]);
      const s = await alice.sign(key.handle, { message: generated });
      expect(await opensslVerifies(dir, key.pem, generated, s.signature, k.hash, k.pss), `${k.name}: TPM_GENERATED_VALUE message`).toBe(true);
    }
    expect(await parentFiles()).toHaveLength(1);
    const listed = await alice.listKeys();
    expect(listed.map((k) => [k.kind, k.type, k.scheme, k.bits ?? k.curve])).toEqual([
      ['general', 'rsa', 'rsassa', 2048],
      ['general', 'rsa', 'rsapss', 2048],
      ['general', 'rsa', 'rsassa', 3072],
      ['general', 'ecc', 'ecdsa', 'P-256'],
      ['general', 'ecc', 'ecdsa', 'P-384'],
    ]);
    for (const k of listed) await alice.deleteKey(k.handle);
    expect(await parentFiles()).toHaveLength(1); // deleting keys keeps the app's parent; purge destroys it
  }, 120_000);

  it('makes decrypt keys (rsa oaep, ecc ecdh); they refuse to sign, saying why', async () => {
    const alice = env.client('alice');
    const oaep = await alice.createKey({ type: 'rsa', kind: 'general', usage: 'decrypt' });
    expect(oaep).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'oaep', bits: 2048 });
    const ecdh = await alice.createKey({ type: 'ecc', kind: 'general', usage: 'decrypt', curve: 'P-384' });
    expect(ecdh).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-384' });
    expect((await alice.getKey(ecdh.handle))).toMatchObject({ kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-384', pem: ecdh.pem });
    for (const k of [oaep, ecdh]) {
      const from = env.commands.length;
      const e = await failure(alice.sign(k.handle, { message: b('m') }));
      expect(e).toMatchObject({ status: 422 });
      expect(e.message).toMatch(/decrypt key.*cannot sign/);
      expect(env.commands.slice(from)).toEqual([]);
      await alice.deleteKey(k.handle);
    }
  }, 60_000);

  it('refuses bad creation fields with a 400 naming what fits, before the TPM sees a command', async () => {
    const alice = env.client('alice');
    const cases: Array<[CreateKeyOptions, RegExp]> = [
      [{ type: 'rsa', usage: 'sign' }, /general keys only/],
      [{ type: 'ecc', kind: 'ak', curve: 'P-256' }, /general keys only/],
      [{ type: 'rsa', kind: 'general', scheme: 'ecdsa' }, /ecdsa does not fit a rsa sign key: use rsassa or rsapss/],
      [{ type: 'rsa', kind: 'general', usage: 'decrypt', scheme: 'rsassa' }, /use oaep/],
      [{ type: 'ecc', kind: 'general', usage: 'decrypt', scheme: 'oaep' }, /use ecdh/],
      [{ type: 'rsa', kind: 'general', bits: 4096 }, /2048 or 3072/],
      [{ type: 'rsa', kind: 'general', bits: '2048' as unknown as number }, /2048 or 3072/],
      [{ type: 'ecc', kind: 'general', curve: 'P-521' }, /P-256, P-384/],
      [{ type: 'rsa', kind: 'general', curve: 'P-256' }, /RSA key has no curve/],
      [{ type: 'ecc', kind: 'general', bits: 2048 }, /ECC key has no "bits"/],
      [{ type: 'ecc', kind: 'secret' }, /unknown key kind/],
      [{ type: 'ecc', kind: 'general', usage: 'wrap' }, /unknown key usage/],
      [{ type: 'ecc', kind: 'general', scheme: 'schnorr' }, /unknown key scheme/],
    ];
    const from = env.commands.length;
    for (const [req, why] of cases) {
      const e = await failure(alice.createKey(req));
      expect(e, JSON.stringify(req)).toMatchObject({ status: 400 });
      expect(e.message, JSON.stringify(req)).toMatch(why);
    }
    expect(env.commands.slice(from)).toEqual([]);
    expect(await alice.listKeys()).toEqual([]);
  });

  it('shares the quota with AKs; AKs still list as kind ak', async () => {
    const bob = env.client('bob');
    const ak = await bob.createKey({ type: 'ecc' });
    expect(ak).toMatchObject({ kind: 'ak', usage: 'sign', scheme: 'ecdsa', curve: 'P-256' });
    await bob.createKey({ type: 'ecc', kind: 'general' });
    await bob.createKey({ type: 'ecc', kind: 'general', usage: 'decrypt' });
    expect(await failure(bob.createKey({ type: 'ecc', kind: 'general' }))).toMatchObject({ status: 403, code: 'QUOTA_EXCEEDED' });
    expect(await failure(bob.createKey({ type: 'ecc' }))).toMatchObject({ status: 403, code: 'QUOTA_EXCEEDED' });
    expect((await bob.listKeys()).map((k) => k.kind)).toEqual(['ak', 'general', 'general']);
    for (const k of await bob.listKeys()) await bob.deleteKey(k.handle);
  }, 60_000);

  it("refuses another tenant's general key: get, sign and delete are 403", async () => {
    const key = await env.client('alice').createKey({ type: 'ecc', kind: 'general' });
    const bob = env.client('bob');
    for (const call of [() => bob.getKey(key.handle), () => bob.sign(key.handle, { message: b('m') }), () => bob.deleteKey(key.handle)]) {
      expect(await failure(call())).toMatchObject({ status: 403 });
    }
    await env.client('alice').sign(key.handle, { message: b('still mine') });
    await env.client('alice').deleteKey(key.handle);
  }, 60_000);

  it('concurrent first creations of a record make one parent', async () => {
    const carol = env.client('carol');
    const before = await parentFiles();
    const from = env.commands.length;
    const made = await Promise.all([0, 1, 2].map(() => carol.createKey({ type: 'ecc', kind: 'general' })));
    const after = await parentFiles();
    expect(after).toHaveLength(before.length + 1);
    // One service-primary Create for the parent, one per key: the parent was made once.
    const creates = env.commands.slice(from).filter((c) => c === 'Create');
    expect(creates).toHaveLength(4);
    const carolFile = after.find((f) => !before.includes(f))!;
    const j = JSON.parse(await readFile(join(env.stateDir, PARENTS_DIR, carolFile), 'utf8')) as { owner: string };
    expect(parentFileName(j.owner)).toBe(carolFile);
    for (const k of made) await carol.sign(k.handle, { message: b('m') });
  }, 60_000);

  it('a hot general key signs with Hash + Sign (the object cache keeps the key, not its parent)', async () => {
    const alice = env.client('alice');
    for (const req of [{ type: 'ecc', kind: 'general' }, { type: 'rsa', kind: 'general', scheme: 'rsapss' }] as CreateKeyOptions[]) {
      const key = await alice.createKey(req);
      let from = env.commands.length;
      await alice.sign(key.handle, { message: b('cold') });
      const cold = env.commands.slice(from);
      expect(cold).toEqual(expect.arrayContaining(['CreatePrimary', 'Load', 'Sign']));
      expect(cold.filter((c) => c === 'Load')).toHaveLength(2); // parent, then key
      for (let i = 0; i < 3; i++) {
        from = env.commands.length;
        const s = await alice.sign(key.handle, { message: b(`hot ${i}`) });
        expect(env.commands.slice(from)).toEqual(['Hash', 'Sign']);
        expect(await opensslVerifies(dir, key.pem, b(`hot ${i}`), s.signature, 'sha256', req.scheme === 'rsapss')).toBe(true);
      }
      await alice.deleteKey(key.handle);
    }
  }, 60_000);

  it('more general keys than object slots rotate through the cache; each cold load fits (primary, parent, key)', async () => {
    const alice = env.client('alice');
    const keys = [];
    for (let i = 0; i < 4; i++) keys.push(await alice.createKey({ type: 'ecc', kind: 'general' }));
    const slots = env.service.core.objectCache.slots ?? 3;
    for (let round = 0; round < 2; round++) {
      for (const k of keys) {
        const msg = b(`round ${round} ${k.handle}`);
        const s = await alice.sign(k.handle, { message: msg });
        expect(await opensslVerifies(dir, k.pem, msg, s.signature, 'sha256')).toBe(true);
        const loaded = (await env.onTpm((tpm) => loadedHandles(tpm))).transient;
        expect(loaded.length).toBeLessThanOrEqual(slots - 1); // only cached keys, never a parent
        expect(loaded.sort()).toEqual(env.service.core.objectCache.transientHandles().sort());
      }
    }
    for (const k of keys) await alice.deleteKey(k.handle);
    expect((await env.onTpm((tpm) => loadedHandles(tpm))).transient).toEqual([]);
  }, 60_000);

  it("an AK certifies the caller's general key (loaded under its app parent for the job)", async () => {
    const alice = env.client('alice');
    const ak = await alice.createKey({ type: 'ecc' });
    const g = await alice.createKey({ type: 'rsa', kind: 'general', usage: 'decrypt' });
    const r = await alice.certify(ak.handle, { object: g.handle, nonce: Buffer.from('n0nce') });
    expect(r).toMatchObject({ object: g.handle, objectName: g.name });
    await alice.deleteKey(ak.handle);
    await alice.deleteKey(g.handle);
  }, 60_000);

  it("a lost registry is rebuilt with general keys' kind, usage, scheme and size read from their blobs", async () => {
    const alice = env.client('alice');
    const made = [
      await alice.createKey({ type: 'rsa', kind: 'general', scheme: 'rsapss', hashAlg: 'sha384' }),
      await alice.createKey({ type: 'ecc', kind: 'general', usage: 'decrypt', curve: 'P-384' }),
      await alice.createKey({ type: 'ecc' }),
    ];
    const before = await alice.listKeys();
    await env.stopService();
    await rm(join(env.stateDir, 'registry.json'));
    const report = await rebuildRegistry(env.stateDir, 'blobs');
    expect(report.restored.map((e) => e.handle)).toEqual(expect.arrayContaining(made.map((k) => Number(k.handle))));
    expect(report.skipped).toEqual([]);
    await env.restartService();
    const after = await env.client('alice').listKeys();
    const noTime = (ks: typeof before) => ks.map(({ createdAt: _, ...k }) => k);
    expect(noTime(after)).toEqual(noTime(before));
    const s = await env.client('alice').sign(made[0]!.handle, { message: b('rebuilt') });
    expect(await opensslVerifies(dir, made[0]!.pem, b('rebuilt'), s.signature, 'sha384', true)).toBe(true);
    for (const k of made) await env.client('alice').deleteKey(k.handle);
  }, 60_000);

  it('keeps general keys usable across a restart (parents read back at start)', async () => {
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'ecc', kind: 'general', curve: 'P-384', hashAlg: 'sha384' });
    await env.restartService();
    const again = env.client('alice');
    expect((await again.listKeys()).find((k) => k.handle === key.handle)).toMatchObject({ kind: 'general', curve: 'P-384', hashAlg: 'sha384' });
    const s = await again.sign(key.handle, { message: b('after restart') });
    expect(await opensslVerifies(dir, key.pem, b('after restart'), s.signature, 'sha384')).toBe(true);
    expect(await failure(again.sign(key.handle, { message: b('x'), hashAlg: 'sha256' }))).toMatchObject({ status: 422 });
    await again.deleteKey(key.handle);
  }, 60_000);
});

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !opensslAvailable()))('general keys, store: tpm', () => {
  let env: TestEnv;
  let dir: string;

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }], config: { keyStore: 'tpm' } });
    dir = await mkdtemp(join(tmpdir(), 'appkeys-tpm-'));
  });
  afterAll(async () => {
    await env?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('persists a general key, signs with it, re-persists it after it went missing, evicts it on delete', async () => {
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'rsa', kind: 'general', scheme: 'rsapss' });
    const handle = Number(key.handle);
    const info = await env.onTpm((tpm) => readPublic(tpm, handle));
    expect(Buffer.from(info.name).toString('hex')).toBe(key.name);
    let s = await alice.sign(key.handle, { message: b('persistent') });
    expect(await opensslVerifies(dir, key.pem, b('persistent'), s.signature, 'sha256', true)).toBe(true);

    // Evicted behind the service's back: recovery at the next start loads it under its parent again.
    await env.onTpm(async (tpm) => {
      const { evictPersistent } = await import('../../src/tpm/index.js');
      await evictPersistent(tpm, handle);
    });
    await env.restartService();
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM recovery');
    expect(await env.onTpm((tpm) => listHandles(tpm, handle, handle))).toEqual([handle]);
    expect(env.logs.some((l) => l.msg === 're-persisted a committed key that was missing from the TPM')).toBe(true);
    s = await env.client('alice').sign(key.handle, { message: b('re-persisted') });
    expect(await opensslVerifies(dir, key.pem, b('re-persisted'), s.signature, 'sha256', true)).toBe(true);

    await env.client('alice').deleteKey(key.handle);
    expect(await env.onTpm((tpm) => listHandles(tpm, handle, handle))).toEqual([]);
  }, 60_000);
});
