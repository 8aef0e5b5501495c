/**
 * Connection reuse: a ServiceClient keeps its connection alive between requests, closes it
 * after an error answer to an upload (and still sees the answer, not a broken pipe), and
 * close() ends it. The front makes room from idle kept-alive connections at its limit.
 */
import type { Agent } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient, ServiceError } from '../../src/service/client/client.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { eventually, startEnv, type TestEnv } from './env.js';
import { skipUnlessCI } from '../helpers/ci.js';

const agentOf = (c: ServiceClient): Agent => (c as unknown as { agent: Agent }).agent;
const count = (m: NodeJS.ReadOnlyDict<unknown[]>): number => Object.values(m).reduce((n, l) => n + (l?.length ?? 0), 0);
/** Sockets the client's agent holds, in use or idle. */
const sockets = (c: ServiceClient): number => count(agentOf(c).sockets) + count(agentOf(c).freeSockets);
/**
 * The connections the client's agent opens from now on, each with a promise of its close:
 * reuse is a count of connections made, and an ended connection is its 'close' event.
 */
function watch(c: ServiceClient): Array<{ socket: Socket; closed: Promise<void> }> {
  const agent = agentOf(c) as unknown as { createConnection: (...args: unknown[]) => Socket | undefined };
  const made: Array<{ socket: Socket; closed: Promise<void> }> = [];
  const create = agent.createConnection;
  agent.createConnection = (...args: unknown[]) => {
    const socket = create.apply(agent, args);
    if (socket) made.push({ socket, closed: new Promise<void>((r) => socket.once('close', () => r())) });
    return socket;
  };
  return made;
}
/** Lets the agent file a finished request's socket as free (its 'free' event follows the response's end). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('connection reuse', () => {
  let env: TestEnv;
  let key: string;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }], config: { maxConnections: 4 } });
    const c = env.client('alice');
    key = (await c.createKey({ type: 'ecc' })).handle;
    c.close();
  });
  afterAll(async () => {
    await env?.stop();
  });

  for (const via of ['unix', 'tcp'] as const) {
    it(`reuses one connection for successive requests and errors (${via})`, async () => {
      const c = env.client('alice', via);
      const made = watch(c);
      await c.health();
      await c.sign(key, { message: new Uint8Array([1, 2, 3]) });
      await expect(c.getKey('0x81017777')).rejects.toBeInstanceOf(ServiceError);
      await c.listKeys();
      expect(made).toHaveLength(1); // four requests, one connection
      await settle();
      expect(sockets(c)).toBe(1);
      c.close();
      await made[0]!.closed;
      expect(sockets(c)).toBe(0);
    });
  }

  it('sees an early error answer to a streamed upload, closes that connection, and goes on', async () => {
    const c = env.client('alice', 'tcp');
    const made = watch(c);
    await c.health();
    // A large upload to a key that does not exist: answered 403 before the body is sent.
    const piece = Buffer.alloc(256 * 1024, 7);
    let n = 0;
    const src = Readable.from(
      (function* () {
        while (n++ < 256) yield piece; // 64 MiB, never sent in full
      })(),
    );
    const e = await c.sign('0x81017777', { message: src }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ServiceError);
    expect((e as ServiceError).status).toBe(403);
    expect(n).toBeLessThan(256);
    expect(made).toHaveLength(1);
    await made[0]!.closed;
    expect(sockets(c)).toBe(0);
    // A Uint8Array upload with an error answer (unknown hash) does not leave its connection either.
    await expect(c.sign(key, { message: new Uint8Array(100 * 1024), hashAlg: 'md5' })).rejects.toBeInstanceOf(ServiceError);
    expect(made).toHaveLength(2);
    await made[1]!.closed;
    expect(sockets(c)).toBe(0);
    const ok = await c.sign(key, { message: new Uint8Array(100 * 1024) });
    expect(ok.messageLength).toBe(100 * 1024);
    expect(made).toHaveLength(3);
    await settle();
    expect(sockets(c)).toBe(1);
    c.close();
  });

  it('makes room from idle kept-alive connections at the connection limit', async () => {
    // maxConnections is 4: six clients that each keep a connection open all get served.
    const clients = Array.from({ length: 6 }, () => env.client('alice', 'tcp'));
    try {
      for (const c of clients) expect((await c.health()).version).toEqual(expect.any(String));
      // And again: the evicted ones reconnect (or retry a connection closed under them).
      for (const c of clients) await c.listKeys();
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('still refuses with 503 when every connection has a request in flight', async () => {
    // A connection that has sent nothing is closed to make room now (admission.test.ts); only
    // complete requests being answered hold their place. Four signs wait for a held TPM.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const held = env.onTpm(() => gate);
    const clients = Array.from({ length: 4 }, () => env.client('alice', 'tcp'));
    const signs: Array<Promise<unknown>> = [];
    const inFlight = (): number => env.logs.filter((l) => l.event === 'audit' && l.op === 'sign' && l.decision === 'grant').length;
    const before = inFlight();
    try {
      for (const [i, c] of clients.entries()) {
        signs.push(c.sign(key, { message: new Uint8Array([i]) }));
        await eventually(() => inFlight() === before + i + 1, 10_000, 'the sign to be in flight');
      }
      // All four hold their connection with a request being answered: no room to make.
      const c = new ServiceClient({ address: env.tcp });
      await expect(c.health()).rejects.toMatchObject({ status: 503, code: 'BUSY' });
      c.close();
    } finally {
      open();
      await held;
    }
    await Promise.all(signs);
    for (const c of clients) c.close();
  });
});
