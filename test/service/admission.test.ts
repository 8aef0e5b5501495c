/**
 * Admission under slow peers: an honest tenant keeps being served while another peer floods
 * the service with connections that trickle their headers (and reconnect when dropped) or an
 * authenticated tenant trickles request bodies. Also the pieces one by one: the header
 * deadline (silent, trickling, and kept-alive connections), the minimum body rate, the
 * per-peer cap and the reserve for authenticated connections.
 *
 * tcp peers are told apart by source address: the attacker binds 127.0.0.2, the honest tenant
 * dials from 127.0.0.1. On unix every caller is the same peer (Node gives no peer credentials).
 */
import type { IncomingMessage } from 'node:http';
import { connect, createConnection, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Peer } from '../../src/service/tenants/auth.js';
import type { ServiceClient } from '../../src/service/client/client.js';
import { Admission, type Conn } from '../../src/service/http/admission.js';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { eventually, startEnv, type LogLine, type TestEnv } from './env.js';
import { parseResponse } from './raw.js';

type Via = 'unix' | 'tcp';
const ATTACKER = '127.0.0.2';
const MAX = 10;
const PER_PEER = 6;
const RESERVED = 4;
const HONEST_REQUESTS = 100;

function dial(env: TestEnv, via: Via, localAddress?: string): Socket {
  if (via === 'unix') return createConnection({ path: env.unix.slice('unix:'.length) });
  const m = /^tcp:([^:]+):(\d+)$/.exec(env.tcp)!;
  return connect({ host: m[1]!, port: Number(m[2]), ...(localAddress ? { localAddress } : {}) });
}

/** Everything a socket received until it closed (it must close within `ms`). */
function answerOf(s: Socket, ms = 15_000): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the connection was not closed: ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`)), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

const opened = (s: Socket): Promise<void> => new Promise((r) => s.once('connect', () => r()));

interface Flood {
  /** Answers the slow connections got before they were closed, by status (0: none). */
  statuses: Map<number, number>;
  closed: number;
  stop(): Promise<void>;
}

/**
 * `n` connections that each send `head` and then `drip()` every `everyMs`, and open a new one
 * when one is closed — what a slowloris client does. The new one waits 25 ms: the attacker
 * runs in this process and would otherwise take the CPU from the service it attacks, which a
 * VM cannot do.
 */
function flood(open: () => Socket, n: number, head: string, drip: () => string, everyMs = 100): Flood {
  const live = new Set<Socket>();
  let stopped = false;
  const f: Flood = {
    statuses: new Map(),
    closed: 0,
    async stop() {
      stopped = true;
      for (const s of live) s.destroy();
      await eventually(() => live.size === 0, 10_000, 'the slow connections to close');
    },
  };
  const slot = (): void => {
    if (stopped) return;
    const s = open();
    live.add(s);
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    s.on('connect', () => {
      s.write(head);
      timer = setInterval(() => s.writable && s.write(drip()), everyMs);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      live.delete(s);
      if (stopped) return;
      f.closed++;
      const status = parseResponse(Buffer.concat(chunks).toString('latin1')).status;
      f.statuses.set(status, (f.statuses.get(status) ?? 0) + 1);
      setTimeout(slot, 25);
    });
  };
  for (let i = 0; i < n; i++) slot();
  return f;
}

/** `HONEST_REQUESTS` sequential requests (list and sign by turns); how many were answered 2xx. */
async function honestRun(c: ServiceClient, key: string): Promise<{ ok: number; failures: string[] }> {
  let ok = 0;
  const failures: string[] = [];
  for (let i = 0; i < HONEST_REQUESTS; i++) {
    try {
      if (i % 2 === 0) await c.listKeys();
      else await c.sign(key, { message: new Uint8Array([i & 0xff, 1, 2, 3]) });
      ok++;
    } catch (e) {
      failures.push(`${i}: ${(e as Error).message}`);
    }
  }
  return { ok, failures };
}

const evictions = (logs: LogLine[], from: number): LogLine[] => logs.slice(from).filter((l) => l.event === 'connection-evicted');

describe('admission policy (which connection makes room)', () => {
  const tcp = (address: string): Peer => ({ listener: 'tcp', address });
  const setup = (limits: { maxConnections: number; maxConnectionsPerPeer: number; reservedTenantConnections: number }) => {
    const evicted: Array<[string, string, string]> = [];
    const a = new Admission(limits, (c, reason, state) => {
      evicted.push([c.key, reason, state]);
      c.duplex.destroy();
    });
    const add = (peer: Peer, shape: 'headers' | 'body' | 'busy' | 'idle' = 'headers'): Conn => {
      const c = a.admit(new PassThrough(), peer);
      if (typeof c === 'string') throw new Error(`refused: ${c}`);
      if (shape === 'body' || shape === 'busy') {
        c.active = 1;
        c.req = { complete: shape === 'busy' } as IncomingMessage;
      } else if (shape === 'idle') {
        c.served = 1;
      }
      return c;
    };
    return { a, evicted, add };
  };

  it("closes the peer's own oldest slow connection at its cap, its idle one if none, and refuses when all are busy", () => {
    const { a, evicted, add } = setup({ maxConnections: 10, maxConnectionsPerPeer: 2, reservedTenantConnections: 0 });
    const first = add(tcp('10.0.0.1'));
    add(tcp('10.0.0.1'), 'busy');
    add(tcp('10.0.0.2'));
    add(tcp('10.0.0.1'), 'idle');
    expect(first.duplex.destroyed).toBe(true);
    expect(evicted).toEqual([['tcp:10.0.0.1', 'peer-limit', 'headers']]);
    add(tcp('10.0.0.1'), 'busy');
    expect(evicted[1]).toEqual(['tcp:10.0.0.1', 'peer-limit', 'idle']);
    expect(a.admit(new PassThrough(), tcp('10.0.0.1'))).toBe('peer-limit');
    expect(evicted).toHaveLength(2);
    expect(a.size).toBe(3);
  });

  it('at the total limit takes from the peer holding the most slow connections, not the oldest overall', () => {
    const { a, evicted, add } = setup({ maxConnections: 4, maxConnectionsPerPeer: 4, reservedTenantConnections: 2 });
    // Authenticated connections (a tenant trickling bodies), so the total is the limit reached.
    const tenant = (address: string): Conn => {
      const c = add(tcp(address), 'body');
      a.authenticated(c.duplex);
      return c;
    };
    const lone = tenant('10.0.0.9');
    const crowd = [tenant('10.0.0.1'), tenant('10.0.0.1'), tenant('10.0.0.1')];
    add(tcp('10.0.0.5'));
    expect(lone.duplex.destroyed).toBe(false);
    expect(crowd.map((c) => c.duplex.destroyed)).toEqual([true, false, false]);
    expect(evicted).toEqual([['tcp:10.0.0.1', 'connection-limit', 'body']]);
  });

  it('frees finished connections quietly before closing anyone', () => {
    const { evicted, add } = setup({ maxConnections: 2, maxConnectionsPerPeer: 2, reservedTenantConnections: 0 });
    const done = add(tcp('10.0.0.1'), 'idle');
    add(tcp('10.0.0.1'));
    done.duplex.end();
    add(tcp('10.0.0.2'));
    expect(done.duplex.destroyed).toBe(true);
    expect(evicted).toEqual([]);
  });

  it('keeps the reserve for connections that authenticated; unix callers are one peer under the total only', () => {
    const { a, evicted, add } = setup({ maxConnections: 4, maxConnectionsPerPeer: 1, reservedTenantConnections: 10 });
    expect(a.unauthenticatedLimit).toBe(2);
    const tenant = add({ listener: 'unix' }, 'idle');
    a.authenticated(tenant.duplex);
    add({ listener: 'unix' });
    add({ listener: 'unix' });
    add({ listener: 'unix' });
    // The third unauthenticated one displaced the oldest unauthenticated one, not the tenant's.
    expect(evicted).toEqual([['unix', 'unauthenticated-limit', 'headers']]);
    expect(tenant.duplex.destroyed).toBe(false);
    expect(a.size).toBe(3);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('admission under slow peers', () => {
  let env: TestEnv;
  let aliceKey: string;
  let malloryKey: string;

  beforeAll(async () => {
    env = await startEnv({
      tenants: [{ id: 'alice' }, { id: 'mallory' }],
      config: {
        maxConnections: MAX,
        maxConnectionsPerPeer: PER_PEER,
        reservedTenantConnections: RESERVED,
        headersTimeoutMs: 600,
        bodyTimeoutMs: 5000,
        minBodyBytesPerSec: 1024,
        bodyRateGraceMs: 500,
        keepAliveTimeoutMs: 5000,
      },
    });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    const a = env.client('alice');
    aliceKey = (await a.createKey({ type: 'ecc' })).handle;
    a.close();
    const m = env.client('mallory');
    malloryKey = (await m.createKey({ type: 'ecc' })).handle;
    m.close();
  });
  afterAll(async () => {
    await env?.stop();
  });

  const headerFlood = (via: Via): Flood => {
    let i = 0;
    return flood(() => dial(env, via, via === 'tcp' ? ATTACKER : undefined), 10 * MAX, 'GET /v1/keys HTTP/1.1\r\nHost: x\r\n', () => `X-Slow-${i++}: a\r\n`);
  };
  const bodyFlood = (via: Via): Flood =>
    flood(
      () => dial(env, via, via === 'tcp' ? ATTACKER : undefined),
      10 * MAX,
      `POST /v1/keys/${malloryKey}/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.secrets.mallory}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"message":"`,
      () => 'A',
    );

  for (const via of ['unix', 'tcp'] as const) {
    it(`cuts a connection that sends nothing at the header deadline with a 408 (${via})`, async () => {
      const s = dial(env, via);
      const answer = answerOf(s);
      await opened(s);
      const res = parseResponse(await answer);
      expect(res.status).toBe(408);
      expect(JSON.parse(res.body).error.code).toBe('REQUEST_TIMEOUT');
    });

    it(`cuts a connection that trickles header lines at the header deadline with a 408 (${via})`, async () => {
      const s = dial(env, via);
      const answer = answerOf(s);
      await opened(s);
      s.write('GET /v1/keys HTTP/1.1\r\nHost: x\r\n');
      let i = 0;
      const drip = setInterval(() => s.writable && s.write(`X-Slow-${i++}: a\r\n`), 100);
      const res = parseResponse(await answer.finally(() => clearInterval(drip)));
      expect(res.status).toBe(408);
      // It was cut by the deadline, not by running out of header room.
      expect(i * 14).toBeLessThan(8192);
    });

    it(`cuts a kept-alive connection whose next request trickles its headers (${via})`, async () => {
      const s = dial(env, via);
      const answer = answerOf(s);
      await opened(s);
      const first = new Promise<void>((r) => s.once('data', () => r()));
      s.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
      await first;
      s.write('GET /v1/keys HTTP/1.1\r\n');
      let i = 0;
      const drip = setInterval(() => s.writable && s.write(`X-Slow-${i++}: a\r\n`), 100);
      const text = await answer.finally(() => clearInterval(drip));
      // The health answer, then a 408 for the trickled request.
      const second = text.slice(text.indexOf('HTTP/1.1', 1));
      expect(parseResponse(text).status).toBe(200);
      expect(parseResponse(second).status).toBe(408);
    });

    for (const kind of ['json', 'octet-stream'] as const) {
      it(`ends a ${kind} body that keeps below the minimum rate with a 408 and closes the connection (${via})`, async () => {
        const before = env.commands.length;
        const s = dial(env, via);
        const answer = answerOf(s);
        await opened(s);
        const body = kind === 'json' ? '{"message":"' : '';
        s.write(`POST /v1/keys/${malloryKey}/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.secrets.mallory}\r\nContent-Type: application/${kind}\r\nContent-Length: 4096\r\n\r\n${body}`);
        // 10 bytes/s: never a pause as long as the idle limit (5 s), far below 1024 bytes/s.
        const drip = setInterval(() => s.writable && s.write('A'), 100);
        const res = parseResponse(await answer.finally(() => clearInterval(drip)));
        expect(res.status).toBe(408);
        expect(JSON.parse(res.body).error.message).toMatch(/too slowly/);
        if (kind === 'json') expect(env.commands.slice(before)).toEqual([]);
      });
    }

    it(`does not let a burst buy a pause: the next window without its share ends the body (${via})`, async () => {
      const s = dial(env, via);
      const answer = answerOf(s);
      await opened(s);
      s.write(`POST /v1/keys/${malloryKey}/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.secrets.mallory}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
      // Two windows' share at once, then silence (shorter than the 5 s idle limit would need).
      s.write(Buffer.alloc(1100, 1));
      const res = parseResponse(await answer);
      expect(res.status).toBe(408);
      expect(JSON.parse(res.body).error.message).toMatch(/too slowly: 0 bytes in 500 ms/);
    });

    it(`takes a body sent in pieces above the minimum rate (${via})`, async () => {
      const s = dial(env, via);
      const answer = answerOf(s);
      await opened(s);
      const message = Buffer.alloc(12_000, 3);
      s.write(`POST /v1/keys/${malloryKey}/sign HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${env.secrets.mallory}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${message.length}\r\n\r\n`);
      // 1000 bytes every 50 ms: about 20 times the minimum, over more than two rate windows.
      for (let at = 0; at < message.length; at += 1000) {
        s.write(message.subarray(at, at + 1000));
        await new Promise((r) => setTimeout(r, 50));
      }
      const res = parseResponse(await answer);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).messageLength).toBe(message.length);
    });
  }

  it('keeps unauthenticated connections to maxConnections − reserve: the oldest silent ones make room', async () => {
    const from = env.logs.length;
    const socks: Socket[] = [];
    const answers: Array<Promise<string>> = [];
    for (let i = 0; i < MAX; i++) {
      const s = dial(env, 'unix');
      answers.push(answerOf(s));
      socks.push(s);
      await opened(s);
    }
    const statuses = (await Promise.all(answers)).map((t) => parseResponse(t).status);
    // Four (the reserve) were closed to make room, the oldest first; the six kept reached the deadline.
    expect(statuses).toEqual([503, 503, 503, 503, 408, 408, 408, 408, 408, 408]);
    const ev = evictions(env.logs, from);
    expect(ev.map((l) => [l.reason, l.state, l.peer])).toEqual(Array(4).fill(['unauthenticated-limit', 'headers', 'unix']));
  });

  it('keeps the places of connections that authenticated while silent ones come and go', async () => {
    const from = env.logs.length;
    const tenants = Array.from({ length: RESERVED }, () => env.client('alice'));
    for (const c of tenants) await c.listKeys();
    const answers: Array<Promise<string>> = [];
    for (let i = 0; i < MAX; i++) {
      const s = dial(env, 'unix');
      answers.push(answerOf(s));
      await opened(s);
    }
    // Kept-alive tenant connections are still there and serve again; only silent ones were closed.
    for (const c of tenants) await c.listKeys();
    for (const c of tenants) c.close();
    const statuses = (await Promise.all(answers)).map((t) => parseResponse(t).status);
    expect(statuses.filter((s) => s === 503)).toHaveLength(RESERVED);
    const ev = evictions(env.logs, from);
    expect(ev).toHaveLength(RESERVED);
    for (const l of ev) expect(l.state).toBe('headers');
    const served = env.logs.slice(from).filter((l) => l.event === 'request' && l.tenant === 'alice');
    expect(served.map((l) => l.status)).toEqual(Array(2 * RESERVED).fill(200));
  });

  it('closes the slow connections of the peer that holds the most of them first (tcp)', async () => {
    const from = env.logs.length;
    const lone = dial(env, 'tcp', '127.0.0.3');
    const loneAnswer = answerOf(lone);
    await opened(lone);
    const crowd: Array<Promise<string>> = [];
    for (let i = 0; i < 5; i++) {
      const s = dial(env, 'tcp', ATTACKER);
      crowd.push(answerOf(s));
      await opened(s);
    }
    // Six unauthenticated connections are all the service keeps: a seventh, from a third peer,
    // closes the crowd's oldest, not the lone peer's (older) one.
    const third = dial(env, 'tcp', '127.0.0.4');
    const thirdAnswer = answerOf(third);
    await opened(third);
    const crowdStatuses = (await Promise.all(crowd)).map((t) => parseResponse(t).status);
    expect(crowdStatuses).toEqual([503, 408, 408, 408, 408]);
    expect(parseResponse(await loneAnswer).status).toBe(408);
    expect(parseResponse(await thirdAnswer).status).toBe(408);
    expect(evictions(env.logs, from).map((l) => l.peer)).toEqual([`tcp:${ATTACKER}`]);
  });

  it('refuses a peer at its cap when all its connections are busy, and still serves the others (tcp)', async () => {
    const from = env.logs.length;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const held = env.onTpm(() => gate);
    const busy: Array<Promise<string>> = [];
    try {
      const body = JSON.stringify({ message: Buffer.from('hold').toString('base64') });
      for (let i = 0; i < PER_PEER; i++) {
        const s = dial(env, 'tcp', ATTACKER);
        busy.push(answerOf(s, 30_000));
        await opened(s);
        s.write(`POST /v1/keys/${malloryKey}/sign HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${env.secrets.mallory}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
      // All six are waiting for the TPM, each with a complete request: none may be closed.
      await eventually(() => env.logs.slice(from).filter((l) => l.event === 'audit' && l.tenant === 'mallory' && l.op === 'sign').length === PER_PEER, 10_000, 'six signs in flight');
      const extra = dial(env, 'tcp', ATTACKER);
      const refused = parseResponse(await answerOf(extra));
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body).error.message).toMatch(/from this peer/);
      const refusals = env.logs.slice(from).filter((l) => l.event === 'connection-refused');
      expect(refusals.map((l) => [l.peer, l.reason])).toEqual([[`tcp:${ATTACKER}`, 'peer-limit']]);
      // Another peer is served meanwhile.
      const c = env.client('alice', 'tcp');
      expect((await c.listKeys()).length).toBeGreaterThan(0);
      c.close();
    } finally {
      open();
      await held;
    }
    expect((await Promise.all(busy)).map((t) => parseResponse(t).status)).toEqual(Array(PER_PEER).fill(200));
  });

  for (const via of ['unix', 'tcp'] as const) {
    for (const [shape, start] of [
      ['header trickle with reconnect', headerFlood],
      ['body trickle by an authenticated tenant', bodyFlood],
    ] as const) {
      it(`serves an honest tenant through a ${shape} of 10 × maxConnections (${via})`, async () => {
        const from = env.logs.length;
        const f = start(via);
        let run: { ok: number; failures: string[] };
        try {
          // The flood is on: the service has turned away or closed at least as many slow
          // connections as the flood holds.
          await eventually(() => f.closed >= 10 * MAX, 20_000, 'the flood to fill the service');
          const c = env.client('alice', via);
          run = await honestRun(c, aliceKey);
          c.close();
        } finally {
          await f.stop();
        }
        expect(run.failures.length, run.failures.slice(0, 5).join('\n')).toBeLessThanOrEqual(1);
        expect(run.ok).toBeGreaterThanOrEqual(HONEST_REQUESTS - 1);
        // The slow connections never got anything but a 408 or a 503 (or a plain close).
        for (const status of f.statuses.keys()) expect([0, 408, 503]).toContain(status);
        const ev = evictions(env.logs, from);
        expect(ev.length).toBeGreaterThan(0);
        for (const l of ev) {
          expect(l.reason).toEqual(expect.any(String));
          expect(['headers', 'body', 'idle']).toContain(l.state);
        }
        // Over tcp the honest tenant's own connections were never the ones closed.
        if (via === 'tcp') for (const l of ev) expect(l.peer).toBe(`tcp:${ATTACKER}`);
        // And the service is itself again.
        const after = env.client('alice', via);
        expect((await after.listKeys()).length).toBeGreaterThan(0);
        after.close();
      });
    }
  }
});
