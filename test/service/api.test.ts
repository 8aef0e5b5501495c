/**
 * The whole API for two tenants against a real swtpm, over unix and tcp: create (RSA and ECC),
 * list, read (pem/der/tss), sign inline and streamed (verified with node:crypto), delete,
 * quotas, identity, and keys surviving a service restart.
 */
import { createPublicKey, createHash, verify } from 'node:crypto';
import { statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, TPMT_SIGNATURE, TPM2B_PUBLIC, TPM_PT, getTpmProperty, listPersistentHandles, publicToPem } from '../../src/tpm/index.js';
import { ServiceClient, ServiceError } from '../../src/service/client/client.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { eventually, startEnv, type TestEnv } from './env.js';
import { skipUnlessCI } from '../helpers/ci.js';

const verifyPlain = (pem: string, hash: string, message: Uint8Array, sig: Uint8Array): boolean =>
  verify(hash, message, createPublicKey(pem), sig);

async function rejects(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ServiceError) return e;
    throw e;
  }
  throw new Error('expected a ServiceError');
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('service API, two tenants', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice', maxKeys: 3 }, { id: 'bob' }] });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('health needs no identity and reports the TPM and the queue', async () => {
    const c = new ServiceClient({ address: env.unix });
    await eventually(async () => (await c.health()).status === 'ok', 10_000, 'health ok');
    const h = await c.health();
    expect(h).toMatchObject({ tpm: { reachable: true }, queue: { capacity: 256 }, version: expect.any(String) });
    expect(['ok', 'degraded']).toContain(h.status);
  });

  it('listens on a unix socket that only the owner may use', () => {
    expect(statSync(env.unix.slice(5)).mode & 0o777).toBe(0o600);
  });

  it('creates, lists, reads, signs with and deletes keys, separately per tenant', async () => {
    const alice = env.client('alice');
    const bob = env.client('bob', 'tcp');
    const a1 = await alice.createKey({ type: 'rsa' });
    const a2 = await alice.createKey({ type: 0x23 });
    const b1 = await bob.createKey({ type: 'ecc', hashAlg: 'sha256' });
    expect(a1).toMatchObject({ handle: '0x81010000', type: 'rsa', hashAlg: 'sha256' });
    expect(a2).toMatchObject({ handle: '0x81010003', type: 'ecc' }); // 0x81010001/2 are the TCG EK handles
    expect(b1.handle).toBe('0x81010004');
    expect(a1.pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(a1.name).toMatch(/^000b[0-9a-f]{64}$/);

    expect((await alice.listKeys()).map((k) => k.handle)).toEqual(['0x81010000', '0x81010003']);
    expect((await bob.listKeys()).map((k) => k.handle)).toEqual(['0x81010004']);
    expect(await alice.getKey(0x81010000)).toEqual(a1);

    // Public parts: pem = SPKI of der = the TPM2B_PUBLIC of tss.
    const der = await alice.getPublic('0x81010003', 'der');
    const tss = await alice.getPublic('2164326403', 'tss');
    const pem = await alice.getPublic(a2.handle, 'pem');
    expect(pem.pem).toBe(a2.pem);
    expect(createPublicKey({ key: Buffer.from(der.data!), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' })).toBe(a2.pem);
    expect(publicToPem(decode(TPM2B_PUBLIC, tss.data!))).toBe(a2.pem);

    // Inline signatures, each format.
    const msg = new TextEncoder().encode('attest me');
    for (const k of [a1, a2]) {
      const plain = await alice.sign(k.handle, { message: msg });
      expect(plain).toMatchObject({ handle: k.handle, hashAlg: 'sha256', format: 'plain', messageLength: msg.length });
      expect(plain.sigAlg).toBe(k.type === 'rsa' ? 'rsassa' : 'ecdsa');
      expect(plain.digest).toBe(createHash('sha256').update(msg).digest('hex'));
      expect(verifyPlain(k.pem, 'sha256', msg, plain.signature)).toBe(true);
      const derSig = await alice.sign(k.handle, { message: msg, format: 'der', hashAlg: 0x0b });
      expect(verifyPlain(k.pem, 'sha256', msg, derSig.signature)).toBe(true);
      const tssSig = await alice.sign(k.handle, { message: msg, format: 'tss', hashAlg: '0xB' });
      expect(decode(TPMT_SIGNATURE, tssSig.signature).sigAlg).toBe(k.type === 'rsa' ? 0x14 : 0x18);
    }
    const bs = await bob.sign(b1.handle, { message: msg });
    expect(verifyPlain(b1.pem, 'sha256', msg, bs.signature)).toBe(true);

    await alice.deleteKey(a2.handle);
    expect((await alice.listKeys()).map((k) => k.handle)).toEqual(['0x81010000']);
    expect((await rejects(alice.getKey(a2.handle))).status).toBe(403);
    await alice.deleteKey(a1.handle);
    await bob.deleteKey(b1.handle);
  });

  it('signs a 5 MiB stream and a large inline message, verifiably', async () => {
    const alice = env.client('alice');
    const k = await alice.createKey({ type: 'ecc' });
    const big = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 10)) & 0xff;
    let progress = 0;
    const streamed = await alice.sign(k.handle, {
      message: Readable.from((function* () {
        for (let off = 0; off < big.length; off += 100_000) yield Buffer.from(big.subarray(off, off + 100_000));
      })()),
      onProgress: (n) => (progress = n),
    });
    expect(streamed.messageLength).toBe(big.length);
    expect(progress).toBe(big.length);
    expect(streamed.digest).toBe(createHash('sha256').update(big).digest('hex'));
    expect(verifyPlain(k.pem, 'sha256', big, streamed.signature)).toBe(true);
    // A Uint8Array above the inline limit goes streamed with a Content-Length.
    const mid = big.subarray(0, 300_000);
    const s2 = await alice.sign(k.handle, { message: mid });
    expect(verifyPlain(k.pem, 'sha256', mid, s2.signature)).toBe(true);
    // Inline, more than one TPM input buffer (hash sequence through the queue).
    const s3 = await alice.sign(k.handle, { message: big.subarray(0, 50_000) });
    expect(verifyPlain(k.pem, 'sha256', big.subarray(0, 50_000), s3.signature)).toBe(true);
    // The empty message.
    const s4 = await alice.sign(k.handle, { message: new Uint8Array(0) });
    expect(verifyPlain(k.pem, 'sha256', new Uint8Array(0), s4.signature)).toBe(true);
    await alice.deleteKey(k.handle);
  });

  it('refuses a hash the key cannot sign with (422) and TPM_GENERATED data (422), without a 5xx', async () => {
    const alice = env.client('alice');
    const k = await alice.createKey({ type: 'rsa' });
    expect(await rejects(alice.sign(k.handle, { message: new Uint8Array(3), hashAlg: 'sha384' }))).toMatchObject({ status: 422, code: 'UNSUPPORTED' });
    expect(await rejects(alice.sign(k.handle, { message: Uint8Array.of(0xff, 0x54, 0x43, 0x47, 1) }))).toMatchObject({ status: 422 });
    const sha1 = await alice.createKey({ type: 'ecc', hashAlg: 'sha1' });
    const r = await alice.sign(sha1.handle, { message: new Uint8Array(10) });
    expect(r.hashAlg).toBe('sha1');
    expect(verifyPlain(sha1.pem, 'sha1', new Uint8Array(10), r.signature)).toBe(true);
    await alice.deleteKey(k.handle);
    await alice.deleteKey(sha1.handle);
  });

  it('enforces the key quota per tenant (403 QUOTA_EXCEEDED, audited)', async () => {
    const alice = env.client('alice');
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await alice.createKey({ type: 'ecc' }));
    const before = env.commands.length;
    expect(await rejects(alice.createKey({ type: 'ecc' }))).toMatchObject({ status: 403, code: 'QUOTA_EXCEEDED' });
    expect(env.commands.length).toBe(before);
    expect(env.logs.some((l) => l.event === 'audit' && l.tenant === 'alice' && l.decision === 'deny' && String(l.reason).includes('quota'))).toBe(true);
    // Bob is not affected by Alice's quota.
    const b = await env.client('bob').createKey({ type: 'ecc' });
    for (const k of made) await alice.deleteKey(k.handle);
    await env.client('bob').deleteKey(b.handle);
  });

  it('answers 401 to a missing or wrong secret and never runs a TPM command for it', async () => {
    const before = env.commands.length;
    for (const secret of [undefined, 'wrong', env.secrets.alice + 'x', 'a'.repeat(300)]) {
      const c = new ServiceClient({ address: env.tcp, ...(secret === undefined ? {} : { secret }) });
      expect(await rejects(c.listKeys())).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
      expect(await rejects(c.createKey({ type: 'rsa' }))).toMatchObject({ status: 401 });
    }
    expect(env.commands.length).toBe(before);
  });

  it('keeps keys across a service restart (blobs in the state dir)', async () => {
    const alice = env.client('alice');
    const k = await alice.createKey({ type: 'ecc' });
    await env.restartService();
    const again = env.client('alice');
    expect((await again.listKeys()).map((x) => x.handle)).toContain(k.handle);
    const msg = new TextEncoder().encode('after restart');
    expect(verifyPlain(k.pem, 'sha256', msg, (await again.sign(k.handle, { message: msg })).signature)).toBe(true);
    await again.deleteKey(k.handle);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('service API, tpm key store', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }, { id: 'bob' }], config: { keyStore: 'tpm' } });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('behaves as the blobs store for the application, with real persistent objects', async () => {
    const alice = env.client('alice');
    const k = await alice.createKey({ type: 'rsa' });
    expect(k.handle).toBe('0x81010000');
    const inTpm = await env.onTpm((tpm) => listPersistentHandles(tpm));
    expect(inTpm).toContain(0x81010000);
    const msg = new TextEncoder().encode('persistent');
    expect(verifyPlain(k.pem, 'sha256', msg, (await alice.sign(k.handle, { message: msg })).signature)).toBe(true);
    const big = new Uint8Array(200_000).fill(3);
    expect(verifyPlain(k.pem, 'sha256', big, (await alice.sign(k.handle, { message: big })).signature)).toBe(true);
    expect((await rejects(env.client('bob').sign(k.handle, { message: msg }))).status).toBe(403);
    await alice.deleteKey(k.handle);
    expect(await env.onTpm((tpm) => listPersistentHandles(tpm))).not.toContain(0x81010000);
  });

  it('keeps a floor of free persistent slots for EVE (409 before going below it)', async () => {
    const avail = (await env.onTpm((tpm) => getTpmProperty(tpm, TPM_PT.HR_PERSISTENT_AVAIL)))!;
    await env.restartService({ tpmFreeFloor: avail - 2 });
    const alice = env.client('alice');
    const a = await alice.createKey({ type: 'ecc' });
    const b = await alice.createKey({ type: 'ecc' });
    const e = await rejects(alice.createKey({ type: 'ecc' }));
    expect(e).toMatchObject({ status: 409, code: 'CONFLICT' });
    expect(e.message).toMatch(/must stay free for EVE/);
    expect((await alice.listKeys()).map((x) => x.handle)).toEqual([a.handle, b.handle]);
    await alice.deleteKey(a.handle);
    await alice.deleteKey(b.handle);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('single-tenant development mode', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ config: { singleTenant: true } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('serves without identity and says so loudly, on start and per request', async () => {
    const anyone = new ServiceClient({ address: env.tcp });
    const k = await anyone.createKey({ type: 'ecc' });
    expect((await anyone.listKeys()).map((x) => x.handle)).toEqual([k.handle]);
    expect(env.logs.some((l) => l.event === 'single-tenant' && (l.level as number) >= 40)).toBe(true);
    const perRequest = env.logs.filter((l) => l.event === 'request' && l.op === 'create-key');
    expect(perRequest.length).toBeGreaterThan(0);
    expect(perRequest.every((l) => (l.level as number) >= 40 && String(l.msg).includes('SINGLE-TENANT'))).toBe(true);
    // Still no access to EVE's objects.
    expect((await rejects(anyone.getKey(0x81000001))).status).toBe(403);
  });

  it('names the handle in the request log line of every key operation, also the synchronous ones', async () => {
    const c = new ServiceClient({ address: env.tcp });
    const k = await c.createKey({ type: 'ecc' });
    await c.getKey(k.handle);
    await c.getPublic(k.handle, 'der');
    await c.sign(k.handle, { message: new Uint8Array([1, 2, 3]) });
    for (const op of ['get-key', 'get-public', 'sign']) {
      const lines = env.logs.filter((l) => l.event === 'request' && l.op === op);
      expect(lines.length, op).toBeGreaterThan(0);
      expect(lines.at(-1)!.handle, op).toBe(k.handle);
    }
  });
});
