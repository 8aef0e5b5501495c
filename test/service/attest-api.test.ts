/**
 * The attestation endpoints of the real service on swtpm, over its unix socket: read-pcrs,
 * quote (checked by the library's verifyQuote and by stock tpm2_checkquote on the files),
 * certify and device-certify (verifyCertify, the bound qualifying data recomputed),
 * activate-credential (credentials from stock tpm2_makecredential -T none and from the
 * library), the EK; and the refusals: other tenants' keys, EVE's handles, credentials for
 * another Name, malformed bodies — each a 4xx.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TPM2B_PUBLIC,
  appQualifyingData,
  createAk,
  createTransientEk,
  decode,
  evictPersistent,
  flush,
  listHandles,
  makePersistent,
  makeCredential,
  parsePcrSelection,
  pcrRead,
  persistKey,
  quoteFiles,
  readCredentialFile,
  readPublic,
  verifyCertify,
  verifyQuote,
  writePcrsOut,
  TPMT_SIGNATURE,
  type TPMT_PUBLIC,
  type PcrValues,
} from '../../src/tpm/index.js';
import type { ServiceClient } from '../../src/service/client/client.js';
import type { PcrValue } from '../../src/service/protocol/messages.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { isCI, skipUnlessCI } from '../helpers/ci.js';
import { run, tpm2ToolsAvailable, workDir } from '../helpers/tpm-tools.js';
import { auditSince, eventually, failure, startEnv, type TestEnv } from './env.js';

/** Stock tpm2-tools as the independent check (under CI they must be there: a missing one fails). */
const stockTools = tpm2ToolsAvailable() || isCI();

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/** The answer's PCR values as the verifier's map: bank → PCR → value. */
function pcrMap(pcrs: PcrValue[]): PcrValues {
  const ids: Record<string, number> = { sha1: 0x04, sha256: 0x0b, sha384: 0x0c, sha512: 0x0d };
  const out: Record<number, Record<number, Uint8Array>> = {};
  for (const p of pcrs) (out[ids[p.bank]!] ??= {})[p.pcr] = unhex(p.value);
  return out;
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('attestation endpoints', () => {
  let env: TestEnv;
  let alice: ServiceClient;
  let bob: ServiceClient;
  let carol: ServiceClient;
  const keys: Record<string, { handle: string; name: string; pub: TPMT_PUBLIC; pem: string }> = {};
  let work: { dir: string; remove(): Promise<void> };
  const swept: string[] = [];

  const publicOf = async (c: ServiceClient, handle: string): Promise<TPMT_PUBLIC> => decode(TPM2B_PUBLIC, (await c.getPublic(handle, 'tss')).data!);

  beforeAll(async () => {
    // No minimum body rate: one test holds a streamed sign open while it certifies.
    env = await startEnv({ tenants: [{ id: 'alice' }, { id: 'bob' }, { id: 'carol', cid: 7 }], config: { minBodyBytesPerSec: 0 } });
    work = await workDir('attest-api-');
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
    // Every job must flush what it loaded itself: the queue's sweep of leftovers is a safety net, not the way.
    env.service.core.queue.events.on('swept', (e: { label: string; handles: number[] }) => swept.push(`${e.label}: ${e.handles.join(',')}`));
    alice = env.client('alice');
    bob = env.client('bob');
    carol = env.client('carol');
    for (const [label, c, type] of [
      ['a1', alice, 'rsa'],
      ['a2', alice, 'ecc'],
      ['b1', bob, 'ecc'],
      ['c1', carol, 'ecc'],
    ] as const) {
      const k = await c.createKey({ type });
      keys[label] = { handle: k.handle, name: k.name, pem: k.pem, pub: await publicOf(c, k.handle) };
    }
  }, 120_000);
  afterAll(async () => {
    await work?.remove();
    await env?.stop();
  });

  it('read-pcrs: every allocated bank by default; a selection in its order; the library reads the same', async () => {
    const all = await alice.request('read-pcrs', {});
    expect(all.selection).toMatch(/sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23/);
    const sel = 'sha256:16,0,1+sha1:0';
    const r = await alice.request('read-pcrs', {}, { query: { selection: sel } });
    expect(r.selection).toBe('sha256:0,1,16+sha1:0');
    expect(r.pcrs.map((p) => `${p.bank}:${p.pcr}`)).toEqual(['sha256:0', 'sha256:1', 'sha256:16', 'sha1:0']);
    const lib = await env.onTpm((tpm) => pcrRead(tpm, parsePcrSelection(sel)));
    expect(r.pcrs.map((p) => p.value)).toEqual(lib.values.map(hex));
    expect(r.updateCounter).toBe(lib.updateCounter);
    for (const bad of ['sha256', 'md5:0', 'sha256:0,99', 'sha256:0,0', '']) {
      expect((await failure(alice.request('read-pcrs', {}, { query: { selection: bad } }))).status, bad).toBe(400);
    }
  });

  it('quote: verified by verifyQuote and by stock tpm2_checkquote; the answer\'s PCRs are the quoted ones', async () => {
    for (const label of ['a1', 'a2']) {
      const k = keys[label]!;
      const nonce = '00112233445566778899aabbccddeeff';
      const q = await alice.request('quote', { handle: k.handle }, { body: { pcrs: 'sha256:0,1,2,16+sha1:0', nonce } });
      expect(q).toMatchObject({ signer: k.handle, nonce, qualifyingData: nonce, selection: 'sha256:0,1,2,16+sha1:0' });
      expect(q.binding).toBeUndefined();
      expect(q.pcrs.length).toBe(5);
      const report = verifyQuote({ akPublic: k.pub, attestBytes: b64(q.attest), signature: b64(q.signature), nonce: unhex(nonce), pcrValues: pcrMap(q.pcrs) });
      expect(report.ok, JSON.stringify(report.checks)).toBe(true);
      expect(verifyQuote({ akPublic: k.pub, attestBytes: b64(q.attest), signature: b64(q.signature), nonce: unhex('ff' + nonce.slice(2)), pcrValues: pcrMap(q.pcrs) }).ok).toBe(false);
      if (!stockTools) continue;
      const f = (n: string): string => join(work.dir, `${label}-${n}`);
      const files = quoteFiles(b64(q.attest), decode(TPMT_SIGNATURE, b64(q.signature)));
      await writeFile(f('quote.msg'), files.msg);
      await writeFile(f('quote.sig'), files.sig);
      await writeFile(f('pcrs.out'), writePcrsOut(parsePcrSelection(q.selection), q.pcrs.map((p) => unhex(p.value))));
      await writeFile(f('ak.pem'), k.pem);
      const args = ['-u', f('ak.pem'), '-m', f('quote.msg'), '-s', f('quote.sig'), '-f', f('pcrs.out'), '-g', 'sha256'];
      const ok = await run('tpm2_checkquote', [...args, '-q', nonce]);
      expect(ok.code, ok.stderr).toBe(0);
      const bad = await run('tpm2_checkquote', [...args, '-q', 'ff' + nonce.slice(2)]);
      expect(bad.code).not.toBe(0);
    }
  });

  it('quote with bind: the qualifying data binds the nonce to the app (and its CID when bound to one)', async () => {
    const nonce = 'ab'.repeat(64); // bound: up to 64 bytes, whatever the key's name hash
    const q = await alice.request('quote', { handle: keys.a2!.handle }, { body: { pcrs: 'sha256:0', nonce, bind: true } });
    expect(q.binding).toEqual({ identity: 'alice', label: 'EVE-APP' });
    const qd = appQualifyingData('EVE-APP', 'alice', unhex(nonce));
    expect(q.qualifyingData).toBe(hex(qd));
    expect(verifyQuote({ akPublic: keys.a2!.pub, attestBytes: b64(q.attest), signature: b64(q.signature), nonce: qd, pcrValues: pcrMap(q.pcrs) }).ok).toBe(true);
    // Another app's identity gives another value: a verifier expecting bob refuses it.
    expect(verifyQuote({ akPublic: keys.a2!.pub, attestBytes: b64(q.attest), signature: b64(q.signature), nonce: appQualifyingData('EVE-APP', 'bob', unhex(nonce)), pcrValues: pcrMap(q.pcrs) }).ok).toBe(false);
    const c = await carol.request('quote', { handle: keys.c1!.handle }, { body: { pcrs: 'sha256:0', nonce: '01', bind: true } });
    expect(c.binding).toEqual({ identity: 'carol/cid=7', label: 'EVE-APP' });
    expect(c.qualifyingData).toBe(hex(appQualifyingData('EVE-APP', 'carol/cid=7', unhex('01'))));
  });

  it('quote: bad bodies are 400 before the TPM; another tenant\'s key and EVE\'s handles are 403', async () => {
    const h = keys.a1!.handle;
    const before = env.commands.length;
    const bodies: unknown[] = [
      {},
      { pcrs: 'sha256:0' },
      { nonce: '00' },
      { pcrs: 'sha256:0', nonce: '0' },
      { pcrs: 'sha256:0', nonce: 'zz' },
      { pcrs: 'sha256:0', nonce: '' },
      { pcrs: 'sha256:0', nonce: 'ab'.repeat(65), bind: true },
      { pcrs: 'sha256:0', nonce: 'ab'.repeat(33) }, // unbound: longer than a SHA-256 digest
      { pcrs: 'sha256:0', nonce: '00', bind: 'yes' },
      { pcrs: 'sha256:0', nonce: '00', extra: 1 },
      { pcrs: 'sha256:99', nonce: '00' },
      { pcrs: 5, nonce: '00' },
    ];
    for (const body of bodies) {
      const e = await failure(alice.request('quote', { handle: h }, { body: body as never }));
      expect(e.status, JSON.stringify(body)).toBe(400);
    }
    const long = await failure(alice.request('quote', { handle: h }, { body: { pcrs: 'sha256:0', nonce: 'ab'.repeat(33) } }));
    expect(long.message).toMatch(/at most 32/);
    expect(env.commands.length, 'TPM commands sent for bad bodies').toBe(before);
    const from = env.logs.length;
    expect((await failure(bob.request('quote', { handle: h }, { body: { pcrs: 'sha256:0', nonce: '00' } }))).status).toBe(403);
    for (let eve = 0x81000001; eve <= 0x81000005; eve++) {
      const e = await failure(alice.request('quote', { handle: `0x${eve.toString(16)}` }, { body: { pcrs: 'sha256:0', nonce: '00' } }));
      expect(e.status).toBe(403);
    }
    expect(auditSince(env, from).filter((l) => l.decision === 'deny').length).toBe(6);
    expect(env.commands.length, 'TPM commands sent for refused handles').toBe(before);
  });

  it('certify: the AK certifies another key of the caller; verified; another tenant\'s or EVE\'s object is 403', async () => {
    const nonce = 'c0ffee';
    for (const [signer, object] of [
      ['a1', 'a2'],
      ['a2', 'a1'],
    ] as const) {
      const c = await alice.request('certify', { handle: keys[signer]!.handle }, { body: { object: keys[object]!.handle, nonce } });
      expect(c).toMatchObject({ signer: keys[signer]!.handle, object: keys[object]!.handle, objectName: keys[object]!.name, qualifyingData: nonce });
      const report = verifyCertify({ signerPublic: keys[signer]!.pub, attestBytes: b64(c.attest), signature: b64(c.signature), objectName: unhex(keys[object]!.name), nonce: unhex(nonce) });
      expect(report.ok, JSON.stringify(report.checks)).toBe(true);
      expect(verifyCertify({ signerPublic: keys[signer]!.pub, attestBytes: b64(c.attest), signature: b64(c.signature), objectName: unhex(keys.b1!.name), nonce: unhex(nonce) }).ok).toBe(false);
    }
    const bound = await alice.request('certify', { handle: keys.a1!.handle }, { body: { object: keys.a2!.handle, nonce, bind: true } });
    expect(bound.binding).toEqual({ identity: 'alice', label: 'EVE-APP' });
    expect(bound.qualifyingData).toBe(hex(appQualifyingData('EVE-APP', 'alice', unhex(nonce))));
    const before = env.commands.length;
    for (const object of [keys.b1!.handle, '0x81000001', '0x81000003', '0x81000005']) {
      expect((await failure(alice.request('certify', { handle: keys.a1!.handle }, { body: { object, nonce } }))).status, object).toBe(403);
    }
    expect((await failure(bob.request('certify', { handle: keys.a1!.handle }, { body: { object: keys.b1!.handle, nonce } }))).status).toBe(403);
    expect((await failure(alice.request('certify', { handle: keys.a1!.handle }, { body: { object: '0X81010000', nonce } }))).status).toBe(400);
    expect((await failure(alice.request('certify', { handle: keys.a1!.handle }, { body: { nonce } as never }))).status).toBe(400);
    expect(env.commands.length).toBe(before);
    // Nothing stays loaded: a certify of two transient keys leaves no transient object behind.
    const left = await env.onTpm(async (tpm) => listHandles(tpm, 0x80000000, 0x80ffffff));
    expect(left).toEqual([]);
  });

  it('certify of two transient keys works while a streamed sign keeps a hash sequence loaded (swtpm: 3 object slots)', async () => {
    const body = new PassThrough();
    const signing = alice.sign(keys.a2!.handle, { message: body });
    signing.catch(() => {}); // awaited below; a failure before must not go unhandled
    body.write(Buffer.alloc(4096, 7));
    await eventually(() => env.service.core.sequences.stats().loaded === 1, 10_000, 'a loaded hash sequence');
    const nonce = '0a0b';
    const c = await alice.request('certify', { handle: keys.a1!.handle }, { body: { object: keys.a2!.handle, nonce } });
    expect(verifyCertify({ signerPublic: keys.a1!.pub, attestBytes: b64(c.attest), signature: b64(c.signature), objectName: unhex(keys.a2!.name), nonce: unhex(nonce) }).ok).toBe(true);
    expect(env.service.core.sequences.stats().loaded).toBe(1);
    body.end(Buffer.alloc(10, 1));
    expect((await signing).messageLength).toBe(4106);
  });

  it('device-certify: 409 while the device key is absent; then it certifies the app key, bound to the app', async () => {
    const nonce = '5eed';
    const absent = await failure(alice.request('device-certify', { handle: keys.a1!.handle }, { body: { nonce } }));
    expect(absent.status).toBe(409);
    expect(absent.message).toBe('the device attestation key 0x81000003 is not in the TPM');
    const device = await env.onTpm(async (tpm) => {
      const k = await createAk(tpm, 'rsa');
      await persistKey(tpm, k, 0x81000003);
      return k;
    });
    const d = await alice.request('device-certify', { handle: keys.a1!.handle }, { body: { nonce } });
    const qd = appQualifyingData('EVE-APP-KEY', 'alice', unhex(nonce));
    expect(d).toMatchObject({ signer: '0x81000003', object: keys.a1!.handle, objectName: keys.a1!.name, signerName: hex(device.name), qualifyingData: hex(qd) });
    expect(d.binding).toEqual({ identity: 'alice', label: 'EVE-APP-KEY' });
    const report = verifyCertify({ signerPublic: device.publicArea, attestBytes: b64(d.attest), signature: b64(d.signature), objectName: unhex(keys.a1!.name), nonce: qd });
    expect(report.ok, JSON.stringify(report.checks)).toBe(true);
    const c = await carol.request('device-certify', { handle: keys.c1!.handle }, { body: { nonce } });
    expect(c.qualifyingData).toBe(hex(appQualifyingData('EVE-APP-KEY', 'carol/cid=7', unhex(nonce))));
    expect((await failure(alice.request('device-certify', { handle: keys.b1!.handle }, { body: { nonce } }))).status).toBe(403);
    expect((await failure(alice.request('device-certify', { handle: keys.a1!.handle }, { body: { nonce, bind: true } as never }))).status).toBe(400);
  });

  it('activate-credential: credentials of stock tpm2_makecredential and of the library recover the secret; one for another Name is a 422', async () => {
    const ek = await alice.request('ek-public', {});
    expect(ek.type).toBe('rsa');
    const ekPublic = decode(TPM2B_PUBLIC, b64(ek.public));
    const secret = new Uint8Array(Buffer.from('the verifier\'s secret 0123456789'));
    const send = (c: ServiceClient, handle: string, cred: { credentialBlob: Uint8Array; secret: Uint8Array }) =>
      c.request('activate-credential', { handle }, { body: { credentialBlob: Buffer.from(cred.credentialBlob).toString('base64'), secret: Buffer.from(cred.secret).toString('base64') } });
    for (const label of ['a1', 'a2']) {
      const cred = makeCredential(ekPublic, unhex(keys[label]!.name), secret);
      const r = await send(alice, keys[label]!.handle, cred);
      expect(r).toEqual({ handle: keys[label]!.handle, secret: Buffer.from(secret).toString('base64') });
    }
    if (stockTools) {
      await writeFile(join(work.dir, 'ek.pub'), b64(ek.public));
      await writeFile(join(work.dir, 'secret'), secret);
      const made = await run('tpm2_makecredential', ['-T', 'none', '-e', 'ek.pub', '-s', 'secret', '-n', keys.a1!.name, '-o', 'cred.blob'], { cwd: work.dir });
      expect(made.code, made.stderr).toBe(0);
      const cred = readCredentialFile(new Uint8Array(await readFile(join(work.dir, 'cred.blob'))));
      expect((await send(alice, keys.a1!.handle, cred)).secret).toBe(Buffer.from(secret).toString('base64'));
    }
    // Made for EVE's AIK (the device key) or another app's key, activated with the caller's key: refused by the TPM's check.
    const device = await env.onTpm(async (tpm) => readPublic(tpm, 0x81000003));
    for (const name of [device.name, unhex(keys.b1!.name)]) {
      const e = await failure(send(alice, keys.a1!.handle, makeCredential(ekPublic, name, secret)));
      expect([e.status, e.code]).toEqual([422, 'UNSUPPORTED']);
      expect(e.message).toMatch(/made for another key Name/);
    }
    // And the other app's own handle is refused before the TPM.
    expect((await failure(send(alice, keys.b1!.handle, makeCredential(ekPublic, unhex(keys.b1!.name), secret)))).status).toBe(403);
    for (const body of [{ credentialBlob: 'AAAA' }, { credentialBlob: 'not base64!', secret: 'AAAA' }, { credentialBlob: 'AAAA', secret: 'AAAA', x: 1 }, { credentialBlob: 'AAAA', secret: 'AAAA' }]) {
      expect((await failure(alice.request('activate-credential', { handle: keys.a1!.handle }, { body: body as never }))).status, JSON.stringify(body)).toBe(400);
    }
  });

  it('ek-public and ek-certificate: the EK as the library derives it; no certificate on this swtpm is a 404', async () => {
    for (const type of ['rsa', 'ecc'] as const) {
      const ek = await bob.request('ek-public', {}, { query: { type } });
      expect(ek.type).toBe(type);
      expect(ek.pem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
      expect(ek.name).toMatch(/^000b[0-9a-f]{64}$/);
      const e = await failure(bob.request('ek-certificate', {}, { query: { type } }));
      expect(e.status).toBe(404);
      expect(e.message).toBe(type === 'rsa' ? 'this TPM has no RSA EK certificate (NV index 0x01C00002)' : 'this TPM has no ECC EK certificate (NV index 0x01C0000A)');
    }
    expect((await failure(bob.request('ek-public', {}, { query: { type: 'RSA' } }))).status).toBe(400);
    expect((await failure(bob.request('ek-certificate', {}, { query: { type: 'ec' } }))).status).toBe(400);
  });

  it('no job left anything loaded for the queue to sweep', () => {
    expect(swept).toEqual([]);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('attestation endpoints with the tpm key store, and hostile bodies', () => {
  let env: TestEnv;
  let alice: ServiceClient;
  const keys: Record<string, { handle: string; name: string; pub: TPMT_PUBLIC }> = {};

  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }], config: { keyStore: 'tpm' } });
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
    alice = env.client('alice');
    for (const [label, type] of [
      ['r', 'rsa'],
      ['e', 'ecc'],
    ] as const) {
      const k = await alice.createKey({ type });
      keys[label] = { handle: k.handle, name: k.name, pub: decode(TPM2B_PUBLIC, (await alice.getPublic(k.handle, 'tss')).data!) };
    }
  }, 120_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('quote, certify and activate-credential use the persistent objects', async () => {
    const nonce = '1234';
    const q = await alice.request('quote', { handle: keys.r!.handle }, { body: { pcrs: 'sha1:0,7', nonce } });
    expect(verifyQuote({ akPublic: keys.r!.pub, attestBytes: b64(q.attest), signature: b64(q.signature), nonce: unhex(nonce), pcrValues: pcrMap(q.pcrs) }).ok).toBe(true);
    const c = await alice.request('certify', { handle: keys.e!.handle }, { body: { object: keys.r!.handle, nonce } });
    expect(verifyCertify({ signerPublic: keys.e!.pub, attestBytes: b64(c.attest), signature: b64(c.signature), objectName: unhex(keys.r!.name), nonce: unhex(nonce) }).ok).toBe(true);
    const ek = decode(TPM2B_PUBLIC, b64((await alice.request('ek-public', {})).public));
    const cred = makeCredential(ek, unhex(keys.e!.name), new Uint8Array([9, 9, 9]));
    const a = await alice.request('activate-credential', { handle: keys.e!.handle }, { body: { credentialBlob: Buffer.from(cred.credentialBlob).toString('base64'), secret: Buffer.from(cred.secret).toString('base64') } });
    expect(a.secret).toBe('CQkJ');
  });

  it('never answers a hostile member with a 5xx: every one is a 4xx error body', async () => {
    const hostile: unknown[] = [null, true, 0, -0, 1e308, '', 'x', '00', 'ab'.repeat(200), [], ['00'], {}, { toString: 1 }, { __proto__: 1 }, '\u0000', '\ud800', 'sha256:0\u0000', '0x81010000'];
    const bodies: Array<[string, string, Record<string, unknown>]> = [
      ['quote', keys.r!.handle, { pcrs: 'sha256:0', nonce: '00' }],
      ['certify', keys.r!.handle, { object: keys.e!.handle, nonce: '00' }],
      ['device-certify', keys.r!.handle, { nonce: '00' }],
      ['activate-credential', keys.r!.handle, { credentialBlob: 'AAAA', secret: 'AAAA' }],
    ];
    let tried = 0;
    for (const [op, handle, good] of bodies) {
      for (const field of Object.keys(good)) {
        for (const v of hostile) {
          const e = await alice.request(op as 'quote', { handle }, { body: { ...good, [field]: v } as never }).then(
            () => undefined,
            (x: unknown) => x as { status?: number },
          );
          tried++;
          if (e) expect(e.status, `${op} ${field}=${JSON.stringify(v)}`).toBeGreaterThanOrEqual(400);
          if (e) expect(e.status, `${op} ${field}=${JSON.stringify(v)}`).toBeLessThan(500);
        }
      }
    }
    for (const selection of ['', '+', ':', 'sha256:0,', 'sha256:-1', 'sha256:0x20', 'sha384:0', 'sha3_256:0', '0xffff:0', 'sha256:0'.repeat(50)]) {
      const e = await failure(alice.request('read-pcrs', {}, { query: { selection } })).catch(() => undefined);
      if (e) expect(e.status, selection).toBeLessThan(500);
      tried++;
    }
    expect(tried).toBe(7 * hostile.length + 10); // 7 members of the 4 bodies, 10 selections
  });

  it('a key missing from the TPM is told as sign tells it, naming that key, not the other one of a certify', async () => {
    await env.onTpm(async (tpm) => evictPersistent(tpm, await readPublic(tpm, Number(keys.r!.handle))));
    const e = await failure(alice.request('certify', { handle: keys.e!.handle }, { body: { object: keys.r!.handle, nonce: '01' } }));
    expect(e.status).toBe(409);
    expect(e.message).toMatch(new RegExp(`^key ${keys.r!.handle} is not in the TPM right now`));
    // Recovery puts it back from its blobs; the key attests again.
    await eventually(
      async () => (await alice.request('quote', { handle: keys.r!.handle }, { body: { pcrs: 'sha256:0', nonce: '01' } }).then(() => true, () => false)),
      30_000,
      'the key restored',
    );
  });

  it('device-certify refuses a device key that is not a restricted signing key (here: an EK, a decryption key)', async () => {
    await env.onTpm(async (tpm) => {
      const ek = await createTransientEk(tpm, 'rsa');
      await makePersistent(tpm, ek, 0x81000009);
      await flush(tpm, ek.handle);
    });
    await env.restartService({ deviceAk: 0x81000009 });
    await eventually(() => env.service.core.supervisor.healthy, 20_000, 'TPM ready');
    const e = await failure(env.client('alice').request('device-certify', { handle: keys.e!.handle }, { body: { nonce: '01' } }));
    expect(e.status).toBe(409);
    expect(e.message).toBe('the object at 0x81000009 is not a restricted signing key, so it is not used as the device attestation key');
  });
});
