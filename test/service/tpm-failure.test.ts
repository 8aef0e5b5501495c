/**
 * A TPM that disappears: swtpm killed in the middle of requests (they fail with a clear 503 /
 * 502 / 504, health turns degraded) and restarted (later requests succeed, keys still work, the
 * TPM is clean); and a service started while the TPM is down (it starts, reports degraded,
 * and recovers by itself once the TPM is back).
 */
import { createPublicKey, verify } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient, ServiceError } from '../../src/service/client/client.js';
import { loadedHandles } from '../helpers/hygiene.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { eventually, failure, leftLoaded, startEnv, wait, type TestEnv } from './env.js';
import { skipUnlessCI } from '../helpers/ci.js';


describe.skipIf(skipUnlessCI(!swtpmAvailable()))('TPM failures', () => {
  let env: TestEnv;
  let key: { handle: string; pem: string };
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }] });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    key = await env.client('alice').createKey({ type: 'ecc' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  const health = (): Promise<Awaited<ReturnType<ServiceClient['health']>>> => new ServiceClient({ address: env.unix }).health();

  it('fails requests in flight clearly when swtpm dies, and serves again once it is back', async () => {
    const alice = env.client('alice');
    // A streamed sign that is mid-hash when the TPM goes away.
    const from = env.commands.length;
    let feed = true;
    const slow = Readable.from(
      (async function* () {
        for (let i = 0; i < 400 && feed; i++) {
          yield Buffer.alloc(4096, i);
          await wait(10);
        }
      })(),
    );
    const inFlight = failure(alice.sign(key.handle, { message: slow }));
    await eventually(() => env.commands.slice(from).includes('SequenceUpdate'), 5000, 'the hash to start');
    env.swtpm.kill();
    const e = await inFlight;
    feed = false;
    expect([502, 503, 504]).toContain(e.status);
    expect(['TPM_UNAVAILABLE', 'TPM_ERROR', 'DEADLINE']).toContain(e.code);
    expect(e.message).toMatch(/TPM/);

    // Meanwhile: requests fail with 503 TPM_UNAVAILABLE and health says degraded.
    const down = await failure(alice.sign(key.handle, { message: new Uint8Array(4) }));
    expect(down).toMatchObject({ status: 503, code: 'TPM_UNAVAILABLE' });
    expect(down.retryAfter).toBeGreaterThan(0);
    expect(await health()).toMatchObject({ status: 'degraded', tpm: { reachable: false } });
    // Requests that need no TPM still work.
    expect((await alice.listKeys()).map((k) => k.handle)).toEqual([key.handle]);

    await env.swtpm.restart();
    await eventually(async () => (await health()).status === 'ok', 15_000, 'health ok again');
    const msg = new TextEncoder().encode('back again');
    const s = await alice.sign(key.handle, { message: msg });
    expect(verify('sha256', msg, createPublicKey(key.pem), s.signature)).toBe(true);
    expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
  });

  it('fails a key creation cut off by the TPM dying without leaving a half key', async () => {
    const alice = env.client('alice');
    const before = (await alice.listKeys()).map((k) => k.handle);
    const from = env.commands.length;
    const creating = failure(alice.createKey({ type: 'rsa' }));
    await eventually(() => env.commands.slice(from).includes('StartAuthSession'), 5000, 'creation under way');
    env.swtpm.kill();
    expect([502, 503, 504]).toContain((await creating).status);
    await env.swtpm.restart();
    await eventually(async () => (await health()).status === 'ok', 15_000, 'health ok again');
    expect((await alice.listKeys()).map((k) => k.handle)).toEqual(before);
    expect(await leftLoaded(env)).toEqual({ transient: [], sessions: [] });
    const k = await alice.createKey({ type: 'ecc' });
    await alice.deleteKey(k.handle);
  });

  it('starts without a TPM, reports degraded, and recovers when the TPM appears', async () => {
    await env.stopService();
    env.swtpm.kill();
    await env.restartService();
    const alice = env.client('alice');
    expect(await failure(alice.sign(key.handle, { message: new Uint8Array(1) }))).toMatchObject({ status: 503, code: 'TPM_UNAVAILABLE' });
    expect(await health()).toMatchObject({ status: 'degraded', tpm: { reachable: false } });
    await env.swtpm.restart();
    // Nobody asks: the service probes by itself.
    await eventually(async () => (await health()).status === 'ok', 15_000, 'health ok without any request');
    const msg = new Uint8Array(3);
    expect(verify('sha256', msg, createPublicKey(key.pem), (await alice.sign(key.handle, { message: msg })).signature)).toBe(true);
  });
});
