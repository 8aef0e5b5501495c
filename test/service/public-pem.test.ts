/**
 * The service makes a key's PEM once and keeps it with the key's stored public area
 * (keys.ts): a key deleted and made again under the same handle must answer its own public
 * key, never the one of the key that held the handle before.
 */
import { createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { startEnv, type TestEnv } from './env.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('public key PEM', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }] });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('is the current key of a reused handle, and the same on every read', async () => {
    const c = env.client('alice');
    const first = await c.createKey({ type: 'ecc' });
    expect((await c.getPublic(first.handle)).pem).toBe(first.pem);
    await c.deleteKey(first.handle);
    const second = await c.createKey({ type: 'ecc' });
    expect(second.handle).toBe(first.handle); // the freed handle is given out again
    expect(second.pem).not.toBe(first.pem);
    for (let i = 0; i < 2; i++) {
      expect((await c.getPublic(second.handle)).pem).toBe(second.pem);
      expect((await c.getKey(second.handle)).pem).toBe(second.pem);
    }
    // And it is the key that signs under that handle.
    const message = new Uint8Array(32).fill(7);
    const s = await c.sign(second.handle, { message, hashAlg: 'sha256', format: 'der' });
    expect(verify('sha256', message, createPublicKey(second.pem), s.signature)).toBe(true);
  });
});
