/**
 * The object cache against a real service on swtpm (3 object slots), counting the TPM commands
 * each request sends: a hot key's sign is Hash + Sign; more keys than slots rotate, saved out
 * and loaded back; delete and purge flush what was cached; a restarted TPM costs a reload, never
 * an error; keys of two tenants never mix; certify and streamed signs still find room.
 */
import { createPublicKey, verify } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadedHandles } from '../helpers/hygiene.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { eventually, failure, startEnv, type TestEnv } from './env.js';

interface Key {
  handle: string;
  pem: string;
}

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('object cache', () => {
  let env: TestEnv;

  beforeAll(async () => {
    env = await startEnv({ config: { objectCache: 4 } });
  });
  afterAll(async () => {
    await env?.stop();
  });

  const cache = () => env.service.core.objectCache;
  /** Transient objects in the TPM now (a queue job: nothing else runs meanwhile). */
  const transients = async (): Promise<number[]> => (await env.onTpm((tpm) => loadedHandles(tpm))).transient;
  const sessions = async (): Promise<number[]> => (await env.onTpm((tpm) => loadedHandles(tpm))).sessions;

  async function signs(tenant: string, key: Key, text: string): Promise<string[]> {
    const msg = new TextEncoder().encode(text);
    const from = env.commands.length;
    const s = await env.client(tenant).sign(key.handle, { message: msg });
    expect(verify('sha256', msg, createPublicKey(key.pem), s.signature), `signature of ${key.handle}`).toBe(true);
    return env.commands.slice(from);
  }

  it('a hot key signs with Hash + Sign; the first sign loads it', async () => {
    const alice = env.client('alice');
    for (const type of ['rsa', 'ecc'] as const) {
      const key = await alice.createKey({ type });
      const cold = await signs('alice', key, 'cold');
      expect(cold).toContain('Load');
      expect(cold.slice(-1)).toEqual(['Sign']); // nothing flushed after: it stays loaded
      for (let i = 0; i < 3; i++) expect(await signs('alice', key, `hot ${i}`)).toEqual(['Hash', 'Sign']);
      await alice.deleteKey(key.handle);
    }
    expect(await transients()).toEqual([]);
    expect(await sessions()).toEqual([]);
  });

  it('more keys than slots rotate (least recently used saved out, loaded back with ContextLoad), every signature verifies', async () => {
    const alice = env.client('alice');
    const keys: Key[] = [];
    for (let i = 0; i < 5; i++) keys.push(await alice.createKey({ type: i % 2 ? 'rsa' : 'ecc' }));
    const slots = cache().slots ?? 3;
    for (let round = 0; round < 3; round++) {
      for (const k of keys) {
        const sent = await signs('alice', k, `round ${round}`);
        expect(sent[0]).toBe('Hash');
        expect(sent.at(-1)).toBe('Sign');
        const loaded = await transients();
        // Between jobs: only cached keys are loaded, leaving one slot free.
        expect(loaded.length).toBeLessThanOrEqual(slots - 1);
        expect(await sessions()).toEqual([]);
      }
    }
    // Round robin over 5 keys with room for 4: keys[1] is remembered, saved out, and comes
    // back from its saved context, not from a Load.
    expect(cache().loadedKeys()).toHaveLength(slots - 1);
    const sent = await signs('alice', keys[1]!, 'again');
    expect(sent).toEqual(expect.arrayContaining(['ContextLoad']));
    expect(sent).not.toContain('Load');
    expect(sent).not.toContain('StartAuthSession');
    for (const k of keys) await alice.deleteKey(k.handle);
    expect(await transients()).toEqual([]);
  });

  it('delete flushes the cached object and the handle is refused afterwards', async () => {
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'ecc' });
    await signs('alice', key, 'warm it');
    expect(await transients()).toHaveLength(1);
    await alice.deleteKey(key.handle);
    expect(await transients()).toEqual([]);
    const e = await failure(alice.sign(key.handle, { message: new Uint8Array(1) }));
    expect(e.status).toBeLessThan(500);
    expect(e.status).toBeGreaterThanOrEqual(400);
  });

  it('a purge of the owner flushes its cached keys', async () => {
    const bob = env.client('bob');
    const k1 = await bob.createKey({ type: 'ecc' });
    const k2 = await bob.createKey({ type: 'rsa' });
    await signs('bob', k1, 'one');
    await signs('bob', k2, 'two');
    expect(await transients()).toHaveLength(2);
    const owner = env.service.core.registry.all().find((e) => e.tenant === 'bob')!.owner;
    const out = await env.service.core.keys.purge(owner);
    expect(out).toMatchObject({ purged: 2, remaining: 0 });
    expect(await transients()).toEqual([]);
    expect(cache().loadedKeys()).toEqual([]);
  });

  it('two tenants interleaving each get their own key', async () => {
    const alice = env.client('alice');
    const bob = env.client('bob');
    const a = await alice.createKey({ type: 'ecc' });
    const b = await bob.createKey({ type: 'ecc' });
    for (let i = 0; i < 3; i++) {
      const [sa, sb] = await Promise.all([alice.sign(a.handle, { message: new Uint8Array([i]) }), bob.sign(b.handle, { message: new Uint8Array([i]) })]);
      expect(verify('sha256', new Uint8Array([i]), createPublicKey(a.pem), sa.signature)).toBe(true);
      expect(verify('sha256', new Uint8Array([i]), createPublicKey(b.pem), sb.signature)).toBe(true);
    }
    // Bob's cached key is not Alice's to use.
    expect((await failure(alice.sign(b.handle, { message: new Uint8Array(1) }))).status).toBeLessThan(500);
    await alice.deleteKey(a.handle);
    await bob.deleteKey(b.handle);
  });

  it('a key deleted and made again under the same handle is never served from the old entry', async () => {
    const alice = env.client('alice');
    const old = await alice.createKey({ type: 'ecc' });
    await signs('alice', old, 'old');
    await alice.deleteKey(old.handle);
    const next = await alice.createKey({ type: 'ecc' });
    expect(next.handle).toBe(old.handle); // the pool hands the lowest free handle out again
    const sent = await signs('alice', next, 'new'); // verified against the new key's PEM
    expect(sent).toContain('Load');
    await alice.deleteKey(next.handle);
  });

  it('certify and a streamed sign find room while keys are cached', async () => {
    const alice = env.client('alice');
    const keys: Key[] = [];
    for (let i = 0; i < 3; i++) keys.push(await alice.createKey({ type: 'ecc' }));
    for (const k of keys) await signs('alice', k, 'warm');
    const big = Buffer.alloc(300_000, 7);
    const s = await alice.sign(keys[0]!.handle, { message: Readable.from([big.subarray(0, 100_000), big.subarray(100_000)]) });
    expect(verify('sha256', big, createPublicKey(keys[0]!.pem), s.signature)).toBe(true);
    const c = await alice.certify(keys[1]!.handle, { object: keys[2]!.handle, nonce: new Uint8Array(8) });
    expect(c).toBeTruthy();
    for (const k of keys) expect(await signs('alice', k, 'after')).toContain('Sign');
    for (const k of keys) await alice.deleteKey(k.handle);
    expect(await transients()).toEqual([]);
    expect(await sessions()).toEqual([]);
  });

  it('after a TPM restart signs keep working (loaded again), never a 5xx', async () => {
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'ecc' });
    await signs('alice', key, 'before');
    expect(await signs('alice', key, 'hot')).toEqual(['Hash', 'Sign']);
    await env.swtpm.restart();
    for (let i = 0; i < 3; i++) await signs('alice', key, `after ${i}`);
    expect(await signs('alice', key, 'hot again')).toEqual(['Hash', 'Sign']);
    await eventually(async () => (await transients()).length <= 1, 10_000, 'nothing but the cached key loaded');
    await alice.deleteKey(key.handle);
    expect(await transients()).toEqual([]);
  });

  it('after a TPM restart a reloaded key reusing another cached key\'s old handle never signs for it', async () => {
    const alice = env.client('alice');
    const a = await alice.createKey({ type: 'ecc' });
    const b = await alice.createKey({ type: 'ecc' });
    await signs('alice', a, 'a');
    await signs('alice', b, 'b');
    expect(cache().loadedKeys()).toHaveLength(2);
    await env.swtpm.restart();
    // b's handle names nothing now: loaded again, under the handle a had before the restart.
    expect(await signs('alice', b, 'b after')).toContain('Load');
    // a's stale handle now names b: the cache saw it handed out again and loads a afresh
    // (`signs` verifies against a's own public key).
    expect(await signs('alice', a, 'a after')).toContain('Load');
    expect(await signs('alice', a, 'a hot')).toEqual(['Hash', 'Sign']);
    await alice.deleteKey(a.handle);
    await alice.deleteKey(b.handle);
    expect(await transients()).toEqual([]);
  });

  it('a key creation finds room when cached keys fill the slots (Create needs one for a moment)', async () => {
    const alice = env.client('alice');
    const keys: Key[] = [];
    for (let i = 0; i < 2; i++) keys.push(await alice.createKey({ type: 'ecc' }));
    for (const k of keys) await signs('alice', k, 'warm');
    expect(cache().loadedKeys()).toHaveLength((cache().slots ?? 3) - 1);
    const from = env.commands.length;
    keys.push(await alice.createKey({ type: 'rsa' }));
    const sent = env.commands.slice(from);
    expect(sent).toContain('Create');
    expect(sent).toContain('ContextSave'); // a cached key saved out to make room
    for (const k of keys) await signs('alice', k, 'after');
    for (const k of keys) await alice.deleteKey(k.handle);
    expect(await transients()).toEqual([]);
    expect(await sessions()).toEqual([]);
  });

  it('a tpm-store key signs with Hash + Sign once its Name was read', async () => {
    await env.restartService({ keyStore: 'tpm' });
    const alice = env.client('alice');
    const key = await alice.createKey({ type: 'ecc' });
    const first = await signs('alice', key, 'first');
    expect(first).toEqual(['Hash', 'ReadPublic', 'Sign']);
    expect(await signs('alice', key, 'hot')).toEqual(['Hash', 'Sign']);
    await alice.deleteKey(key.handle);
    expect((await failure(alice.sign(key.handle, { message: new Uint8Array(1) }))).status).toBeLessThan(500);
  });
});
