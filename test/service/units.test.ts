import { execFileSync } from 'node:child_process';
/**
 * The service's small parts on their own: handle and parameter grammars (fast-check: exactly
 * one spelling per meaning), identity rules for every listener kind (including vsock, whose
 * listener needs kernel support this machine may not have), the queue's round-robin order,
 * strict JSON, addresses, configuration, and the client's errors.
 */
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../src/service/protocol/address.js';
import { authenticate, bearerSecret } from '../../src/service/tenants/auth.js';
import { ServiceClient, ServiceUnreachableError, handleText } from '../../src/service/client/client.js';
import { ConfigError, resolveConfig } from '../../src/service/config.js';
import { ServiceError } from '../../src/service/protocol/errors.js';
import { formatHandle, handleValue, isReservedHandle, parseHandle } from '../../src/service/protocol/handles.js';
import { parseHandle as parseToolHandle } from '../../src/cli/args.js';
import { OPS, ROUTES, targetOf } from '../../src/service/protocol/routes.js';
import { duplicateKey, decodeBase64, parseJsonObject } from '../../src/service/http/strict-json.js';
import { parseQuery, splitTarget } from '../../src/service/http/query.js';
import { route } from '../../src/service/http/router.js';
import { requestHandler } from '../../src/service/http/lifecycle.js';
import type { Handlers, OpenContext, RequestContext } from '../../src/service/http/api.js';
import { sendJson } from '../../src/service/http/respond.js';
import { eventually } from './env.js';
import { parseHashAlg, parseKeyType, parsePublicFormat, parseSignFormat } from '../../src/service/protocol/params.js';
import { describeValue } from '../../src/service/protocol/describe-value.js';
import { hostReason, toServiceError } from '../../src/service/tpm/error-mapping.js';
import { HandlePool } from '../../src/service/keys/pool.js';
import { TpmQueue } from '../../src/service/tpm/queue.js';
import { generateSecret, hashSecret, parseTenants, TenantDirectory } from '../../src/service/tenants/tenants.js';
import { TpmDecodeError, TpmError, TpmTransportError, TPM_RC, type Tpm } from '../../src/tpm/index.js';

const status = (f: () => unknown): number | 'ok' => {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof ServiceError) return e.status;
    throw e;
  }
};

describe('handle grammar', () => {
  it('accepts exactly the canonical hex and plain decimal spellings', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (h) => {
        expect(parseHandle(formatHandle(h))).toBe(h);
        expect(parseHandle(String(h))).toBe(h);
        expect(parseHandle('0x' + h.toString(16))).toBe(h);
        expect(parseHandle('0x' + h.toString(16).toUpperCase())).toBe(h);
      }),
    );
  });

  it.each([
    ['0', 0],
    ['1', 1],
    ['10', 10],
    ['4294967295', 0xffffffff],
    ['2164326400', 0x81010000],
    ['0x0', 0],
    ['0x1', 1],
    ['0xa', 10],
    ['0xA', 10],
    ['0x81010000', 0x81010000],
    ['0x81010001', 0x81010001],
    ['0xAbCdEf01', 0xabcdef01],
    ['0xffffffff', 0xffffffff],
    ['0xFFFFFFFF', 0xffffffff],
    ['0x00000001', 1], // eight digits: the canonical width, zeros allowed
    ['0x0000000a', 10],
    ['0x1234567', 0x1234567],
  ] as const)('accepts %j as %i', (spelling, value) => {
    expect(parseHandle(spelling)).toBe(value);
  });

  it.each([
    '', ' 1', '1 ', '\n1', '+1', '-1', '-0', '1.0', '1e3', '1_0', '00', '01', '007', '4294967296', '99999999999',
    '0x', '0X81010000', '0x81010000 ', ' 0x81010000', '0x00', '0x01', '0x0000001', '0x000000001', '0x100000000',
    '0xg', '0x-1', '0x+1', 'x1', '0b1', '0o1', '81010000h', '٨١', '０x81010000', '0x８1010000', 'NaN', 'Infinity',
  ])('refuses %j with a 400', (spelling) => {
    expect(status(() => parseHandle(spelling))).toBe(400);
  });

  it('never gives a number for a string that does not spell it', () => {
    // The oracle comes from the number returned, not from the grammar: decimal as String(n),
    // hex as 0x plus its digits (any case), bare or at the full eight-digit width.
    const spells = (s: string, n: number): boolean => {
      const hex = n.toString(16);
      return s === String(n) || (s.startsWith('0x') && ['0x' + hex, '0x' + hex.padStart(8, '0')].includes('0x' + s.slice(2).toLowerCase()));
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 14 }),
          fc.integer().map((n) => ` ${n}`),
          fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0X${n.toString(16)}`),
          fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0x0${n.toString(16).padStart(8, '0')}`),
          fc.integer({ min: 1, max: 0xffffffff }).map((n) => `0${n}`),
          fc.double().map(String),
          fc.integer().map((n) => `${n}e1`),
          fc.integer({ min: -0xffffffff, max: -1 }).map(String),
          fc.integer({ min: 0, max: 0xffffffff }).map(String),
          fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0x${n.toString(16)}`),
        ),
        (s) => {
          let n: number;
          try {
            n = parseHandle(s);
          } catch (e) {
            expect(e, JSON.stringify(s)).toBeInstanceOf(ServiceError);
            expect((e as ServiceError).status, JSON.stringify(s)).toBe(400);
            return;
          }
          expect(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, JSON.stringify(s)).toBe(true);
          expect(spells(s, n), `${JSON.stringify(s)} → ${n}`).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
    expect(status(() => parseHandle(0x81010000))).toBe(400); // a JSON number is not a handle string
  });

  it("knows EVE's and the TCG's reserved handles and skips them in the pool", () => {
    for (const h of [0x81000001, 0x81000005, 0x817fffff, 0x81010001, 0x81010002, 0x81800000]) expect(isReservedHandle(h)).toBe(true);
    expect(isReservedHandle(0x81010000)).toBe(false);
    const pool = new HandlePool(0x81010000, 8);
    const taken = new Set<number>();
    const got: number[] = [];
    for (let h = pool.allocate((x) => taken.has(x)); h !== undefined; h = pool.allocate((x) => taken.has(x))) {
      taken.add(h);
      got.push(h);
    }
    expect(got.map(formatHandle)).toEqual(['0x81010000', '0x81010003', '0x81010004', '0x81010005', '0x81010006', '0x81010007']);
    expect(() => new HandlePool(0x817fff00, 0x200)).toThrow();
    expect(() => new HandlePool(0x01500000, 1)).toThrow();
  });
});

describe('request vocabulary', () => {
  it('parses key types, hashes and formats by name or TPM_ALG_ID, nothing else', () => {
    expect([parseKeyType('rsa'), parseKeyType(1), parseKeyType('0x1'), parseKeyType('0x0001'), parseKeyType(35), parseKeyType('0x23')]).toEqual([
      'rsa',
      'rsa',
      'rsa',
      'rsa',
      'ecc',
      'ecc',
    ]);
    expect([parseHashAlg('sha1'), parseHashAlg(11), parseHashAlg('0xB'), parseHashAlg('0x000C'), parseHashAlg('13')]).toEqual(['sha1', 'sha256', 'sha256', 'sha384', 'sha512']);
    for (const bad of ['RSA', 'dsa', 2, 1.5, -1, '1e0', '0x10000', null, true, {}, [], ' rsa', 'rsa\n']) expect(status(() => parseKeyType(bad))).toBe(400);
    for (const bad of ['SHA256', 'md5', 0x10, '0xB ', 11.5, '0b1011']) expect(status(() => parseHashAlg(bad))).toBe(400);
    expect(status(() => parseSignFormat('raw'))).toBe(400);
  });

  it('finds duplicate keys in JSON, escaped spellings included, at any depth', () => {
    expect(duplicateKey('{"a":1,"a":2}')).toBe('a');
    expect(duplicateKey('{"a":1,"\\u0061":2}')).toBe('a');
    expect(duplicateKey('{"x":{"b":[1,{"c":1,"c":2}]},"y":"\\"a\\":"}')).toBe('c');
    expect(duplicateKey('{"a":"a","b":["a","a"],"c":{"a":1}}')).toBeUndefined();
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })), (o) => {
        expect(duplicateKey(JSON.stringify(o))).toBeUndefined();
      }),
    );
    expect(status(() => parseJsonObject(new TextEncoder().encode('{"message":"aGk="}'), ['message']))).toBe('ok');
    expect(status(() => parseJsonObject(Uint8Array.of(0x7b, 0xff, 0x7d), ['message']))).toBe(400);
    expect(status(() => decodeBase64('aGk', 'm'))).toBe(400);
    expect(status(() => decodeBase64('a Gk=', 'm'))).toBe(400);
    expect(status(() => decodeBase64('aGk-', 'm'))).toBe(400);
    expect(decodeBase64('aGk=', 'm')).toEqual(new TextEncoder().encode('hi'));
  });

  it('parses targets and queries strictly and routes to 404/405', () => {
    expect(splitTarget('/v1/keys/0x81010000/sign?format=der')).toEqual({ segments: ['v1', 'keys', '0x81010000', 'sign'], query: 'format=der' });
    for (const bad of ['v1/keys', '/v1/keys/%30', '/v1/keys/a b', '/v1/ké', '/' + 'a'.repeat(3000)]) expect(status(() => splitTarget(bad))).toBe(400);
    expect(status(() => parseQuery('a=1&a=2', ['a']))).toBe(400);
    expect(status(() => parseQuery('b=1', ['a']))).toBe(400);
    expect(status(() => parseQuery('a', ['a']))).toBe(400);
    expect(status(() => parseQuery('a=%zz', ['a']))).toBe(400);
    expect(status(() => parseQuery('__proto__=1', ['a']))).toBe(400);
    expect(parseQuery('a=x%2By', ['a']).a).toBe('x+y');
    expect(route('GET', ['v1', 'keys', '0x81010000'])).toEqual({ op: 'get-key', params: { handle: '0x81010000' } });
    expect(status(() => route('PUT', ['v1', 'keys']))).toBe(405);
    expect(status(() => route('GET', ['v1', 'keys', '0x81010000', 'sign']))).toBe(405);
    expect(status(() => route('GET', ['v1', 'keys', '']))).toBe(404);
    expect(status(() => route('GET', ['v2', 'keys']))).toBe(404);
  });
});

describe('identity', () => {
  const s5 = generateSecret();
  const sFree = generateSecret();
  const sUnix = generateSecret();
  const dir = new TenantDirectory(
    parseTenants({
      tenants: [
        { id: 'vm5', cid: 5, secretHash: hashSecret(s5) },
        { id: 'vm7', cid: 7 },
        { id: 'free', secretHash: hashSecret(sFree) },
        { id: 'dev', secretHash: hashSecret(sUnix), maxKeys: 2 },
      ],
    }),
  );
  const who = (peer: Parameters<typeof authenticate>[1], secret?: string): string | number => {
    try {
      return authenticate(dir, peer, secret).id;
    } catch (e) {
      return (e as ServiceError).status;
    }
  };

  it('on vsock: the CID names the tenant, and its secret must match when it has one', () => {
    expect(who({ listener: 'vsock', cid: 5 }, s5)).toBe('vm5');
    expect(who({ listener: 'vsock', cid: 5 })).toBe(401);
    expect(who({ listener: 'vsock', cid: 5 }, sFree)).toBe(401);
    expect(who({ listener: 'vsock', cid: 6 }, s5)).toBe(401); // vm5's secret from another VM
    expect(who({ listener: 'vsock', cid: 7 })).toBe('vm7');
    expect(who({ listener: 'vsock', cid: 7 }, s5)).toBe('vm7');
    expect(who({ listener: 'vsock', cid: 9 }, sFree)).toBe('free'); // a CID-less tenant by its secret
    expect(who({ listener: 'vsock', cid: 7 }, sFree)).toBe('vm7'); // the CID wins
    expect(who({ listener: 'vsock', cid: 9 })).toBe(401);
    expect(who({ listener: 'vsock' }, sFree)).toBe(401);
  });

  it('on unix and tcp: the secret alone', () => {
    for (const listener of ['unix', 'tcp'] as const) {
      expect(who({ listener }, sUnix)).toBe('dev');
      expect(who({ listener }, s5)).toBe('vm5');
      expect(who({ listener })).toBe(401);
      expect(who({ listener }, sUnix.slice(1))).toBe(401);
      expect(who({ listener, cid: 7 })).toBe(401);
    }
  });

  it('reads exactly one well-formed Bearer header', () => {
    expect(bearerSecret(['Host', 'x', 'authorization', 'Bearer abc'])).toBe('abc');
    expect(bearerSecret(['Host', 'x'])).toBeUndefined();
    for (const v of ['Basic abc', 'Bearer', 'Bearer  abc', 'bearer abc', 'Bearer a b', `Bearer ${'a'.repeat(257)}`]) {
      expect(status(() => bearerSecret(['Authorization', v]))).toBe(401);
    }
    expect(status(() => bearerSecret(['Authorization', 'Bearer a', 'AUTHORIZATION', 'Bearer a']))).toBe(400);
  });

  it('validates the tenants file strictly', () => {
    const bad = [
      {},
      { tenants: {} },
      { tenants: [{ id: 'a' }] },
      { tenants: [{ id: 'a', cid: 2 }] },
      { tenants: [{ id: 'a', cid: 5 }, { id: 'b', cid: 5 }] },
      { tenants: [{ id: 'a', cid: 5 }, { id: 'a', cid: 6 }] },
      { tenants: [{ id: 'a', secretHash: 'plain' }] },
      { tenants: [{ id: 'a', cid: 5, secret: 'x' }] },
      { tenants: [{ id: '../a', cid: 5 }] },
      { tenants: [{ id: 'a', cid: 5, maxKeys: -1 }] },
      { tenants: [], extra: 1 },
    ];
    for (const b of bad) expect(() => parseTenants(b), JSON.stringify(b)).toThrow(TypeError);
  });
});

describe('TPM queue order', () => {
  const tpm = {} as Tpm; // the jobs below never touch it: this is the scheduler alone

  it('serves tenants round-robin, cleanups first, and withdraws aborted jobs', async () => {
    const q = new TpmQueue(tpm, { capacity: 100, perTenant: 50 });
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const job = (name: string, wait?: Promise<void>) => async (): Promise<void> => {
      order.push(name);
      await wait;
    };
    const all: Promise<unknown>[] = [q.submit('a', 'x', job('a0', gate))];
    for (let i = 1; i <= 5; i++) all.push(q.submit('a', 'x', job(`a${i}`)));
    all.push(q.submit('b', 'x', job('b1')), q.submit('b', 'x', job('b2')), q.submit('c', 'x', job('c1')));
    const ctl = new AbortController();
    const withdrawn = q.submit('c', 'x', job('c2'), { signal: ctl.signal });
    all.push(q.submit('a', 'flush', job('cleanup'), { lane: 'cleanup' }));
    ctl.abort(new Error('gone'));
    await expect(withdrawn).rejects.toThrow('gone');
    expect(q.depth).toBe(10);
    release();
    await Promise.all(all);
    expect(order).toEqual(['a0', 'cleanup', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a5']);
    await q.idle();
  });

  it('refuses beyond the per-tenant cap (429) and the global cap (503)', async () => {
    const q = new TpmQueue(tpm, { capacity: 3, perTenant: 2 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = q.submit('a', 'x', () => gate);
    const waiting = [q.submit('a', 'x', async () => {}), q.submit('a', 'x', async () => {})];
    await expect(q.submit('a', 'x', async () => {})).rejects.toMatchObject({ status: 429, retryAfter: 1 });
    waiting.push(q.submit('b', 'x', async () => {}));
    await expect(q.submit('c', 'x', async () => {})).rejects.toMatchObject({ status: 503, code: 'BUSY' });
    const cleanup = q.submit('c', 'x', async () => 'cleanup', { lane: 'cleanup' }); // never refused
    release();
    await Promise.all([running, ...waiting]);
    await expect(cleanup).resolves.toBe('cleanup');
  });
});

describe('addresses, configuration, cloud-init', () => {
  it('parses listen and connect addresses', () => {
    expect(parseAddress('vsock:8877', 'listen')).toEqual({ kind: 'vsock', cid: undefined, port: 8877 });
    expect(parseAddress('vsock:2:8877', 'connect')).toEqual({ kind: 'vsock', cid: 2, port: 8877 });
    expect(parseAddress('tcp:[::1]:80', 'connect')).toEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseAddress('unix:/run/x.sock', 'connect')).toEqual({ kind: 'unix', path: '/run/x.sock' });
    for (const bad of ['vsock:2:8877', 'tcp:1.2.3.4', 'udp:1:2', 'unix:', 'tcp:h:99999']) expect(() => parseAddress(bad, 'listen')).toThrow(TypeError);
    expect(() => parseAddress('vsock:8877', 'connect')).toThrow(TypeError);
  });

  it('validates configuration, refusing non-loopback tcp unless forced', () => {
    const base = { stateDir: '/tmp/x', tenants: '/tmp/t.json' };
    expect(resolveConfig({}, { ...base, listen: ['tcp:127.0.0.1:0'] }).listen).toEqual(['tcp:127.0.0.1:0']);
    expect(() => resolveConfig({}, { ...base, listen: ['tcp:0.0.0.0:1'] })).toThrow(/loopback/);
    expect(resolveConfig({}, { ...base, listen: ['tcp:0.0.0.0:1'], allowNonLoopback: true }).listen).toEqual(['tcp:0.0.0.0:1']);
    expect(resolveConfig({ poolStart: '0x81020000', keyStore: 'tpm' }, { ...base, keyStore: 'blobs' })).toMatchObject({ poolStart: 0x81020000, keyStore: 'blobs' });
    for (const bad of [{ keyStore: 'nv' }, { poolStart: '0x01000000' }, { deadlineMs: 0 }, { bogus: 1 }, { listen: [] }, { logLevel: 'loud' }]) {
      expect(() => resolveConfig(bad, base), JSON.stringify(bad)).toThrow(ConfigError);
    }
    expect(() => resolveConfig({}, { stateDir: '/tmp/x' })).toThrow(/tenants/);
    expect(resolveConfig({}, { stateDir: '/tmp/x', singleTenant: true }).singleTenant).toBe(true);
  });

  // cloud-init user-data: test/cli/user-data.test.ts.
});

describe('client errors', () => {
  it('names the address when the service cannot be reached', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'svc-cli-'));
    try {
      const missing = new ServiceClient({ address: `unix:${join(dir, 'none.sock')}` });
      const e1 = await missing.health().catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(ServiceUnreachableError);
      expect(e1).toMatchObject({ reason: 'ENOENT' });
      expect((e1 as Error).message).toContain(join(dir, 'none.sock'));
      const srv = createServer();
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as { port: number }).port;
      await new Promise<void>((r) => srv.close(() => r()));
      const e2 = await new ServiceClient({ address: `tcp:127.0.0.1:${port}` }).health().catch((e: unknown) => e);
      expect(e2).toMatchObject({ name: 'ServiceUnreachableError', reason: 'ECONNREFUSED' });
      // A server that accepts and never answers: a timeout, with the address.
      const accepted: Socket[] = [];
      const mute = createServer((sock) => void accepted.push(sock));
      await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
      const mp = (mute.address() as { port: number }).port;
      const e3 = await new ServiceClient({ address: `tcp:127.0.0.1:${mp}`, timeoutMs: 200 }).health().catch((e: unknown) => e);
      expect(e3).toMatchObject({ name: 'ServiceUnreachableError', reason: 'ETIMEDOUT' });
      expect((e3 as Error).message).toContain(`tcp:127.0.0.1:${mp}`);
      for (const sock of accepted) sock.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('formats handles canonically and refuses non-handles before sending', () => {
    expect(handleText(0x81010000)).toBe('0x81010000');
    expect(handleText('0x81010000')).toBe('0x81010000');
    expect(handleText('2164326400')).toBe('0x81010000');
    expect(() => handleText('0x81010000; rm')).toThrow(TypeError);
    expect(() => handleText(-1)).toThrow(TypeError);
    expect(() => handleText('4294967296')).toThrow(/out of range/);
  });

  it('the client and the tools read a handle the same way, and every spelling the server takes means the same to them', () => {
    const tool = (s: string): string | undefined => {
      try {
        return parseToolHandle(s);
      } catch {
        return undefined;
      }
    };
    const client = (s: string): string | undefined => {
      try {
        return handleText(s);
      } catch (e) {
        expect(e).toBeInstanceOf(TypeError);
        return undefined;
      }
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 12 }),
          fc.integer({ min: 0, max: 0xffffffff }).map((n) => `0X${n.toString(16).toUpperCase()}`),
          fc.integer({ min: 0, max: 0xffffffff }).map((n) => `00${n}`),
          fc.integer({ min: 0, max: 2 ** 40 }).map((n) => `0x${n.toString(16)}`),
          fc.integer({ min: 0, max: 0xffffffff }).map(String),
        ),
        (s) => {
          // The tools trim their option first; the client takes the text as given.
          if (s.trim() === s) expect(client(s), JSON.stringify(s)).toBe(tool(s));
          const wire = handleValue(s, 'wire');
          if (wire !== undefined) expect(client(s), JSON.stringify(s)).toBe(formatHandle(wire));
        },
      ),
      { numRuns: 2000 },
    );
    expect(client('0X8101000A')).toBe('0x8101000a');
    expect(client('0x0081010000')).toBe('0x81010000');
  });

  it('keeps its error codes closed: an answer that is not the service\'s, or a code it does not know, gets its own', async () => {
    const answers: Array<[number, string, string]> = [
      [404, 'text/html', '<h1>nope</h1>'],
      [418, 'application/json', JSON.stringify({ error: { code: 'TEAPOT', message: 'short and stout' } })],
      [200, 'text/plain', 'hello'],
      [403, 'application/json', JSON.stringify({ error: { code: 'FORBIDDEN', message: 'not yours' } })],
    ];
    let next = 0;
    const srv = createHttpServer((_req, res) => {
      const [status, type, body] = answers[next++]!;
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const client = new ServiceClient({ address: `tcp:127.0.0.1:${(srv.address() as { port: number }).port}` });
    try {
      const got: unknown[] = [];
      for (let i = 0; i < answers.length; i++) got.push(await client.listKeys().catch((e: unknown) => e));
      expect(got.map((e) => e instanceof ServiceError && [e.status, e.code, e.sentCode])).toEqual([
        [404, 'NOT_THE_SERVICE', undefined],
        [418, 'UNKNOWN_CODE', 'TEAPOT'],
        [200, 'BAD_RESPONSE', undefined],
        [403, 'FORBIDDEN', undefined],
      ]);
      expect((got[1] as ServiceError).message).toBe('short and stout');
    } finally {
      client.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('client over vsock', () => {
  it('dials through the vsock adapter (never a TCP fallback) and reports a missing addon clearly', async () => {
    const saved = process.env.EVE_TOOLS_VSOCK_ADDON;
    process.env.EVE_TOOLS_VSOCK_ADDON = '/nonexistent/node-vsock.node';
    try {
      const e = await new ServiceClient({ address: 'vsock:2:8877', timeoutMs: 2000 }).health().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ServiceUnreachableError);
      expect((e as Error).message).toMatch(/^cannot reach the TPM service at vsock:2:8877: vsock is not available: cannot load the vsock addon/);
    } finally {
      if (saved === undefined) delete process.env.EVE_TOOLS_VSOCK_ADDON;
      else process.env.EVE_TOOLS_VSOCK_ADDON = saved;
    }
  });
});

describe('hostile request values', () => {
  /** A value whose every property read, conversion or inspection throws. */
  const booby = new Proxy({}, { get: () => { throw new Error('touched'); }, getPrototypeOf: () => { throw new Error('touched'); } });
  const deep = JSON.parse('['.repeat(50_000) + ']'.repeat(50_000)) as unknown;
  const hostile = [{ toString: 1 }, { toString: 1, valueOf: 1 }, [{ toString: 1 }], deep, booby, { __proto__: null }, Symbol('s'), 10n, () => 1];

  it('are described without touching them: kind only, strings escaped and cut short', () => {
    expect(hostile.map(describeValue)).toEqual(['an object', 'an object', 'an array', 'an array', 'an object', 'an object', 'a symbol', 'a bigint', 'a function']);
    expect([describeValue(-0), describeValue(1e400), describeValue(11), describeValue(null), describeValue(true), describeValue(undefined)]).toEqual([
      '-0', 'a number out of range', '11', 'null', 'true', 'nothing',
    ]);
    expect(describeValue('ｒｓａ')).toBe('"\\uff52\\uff53\\uff41"');
    expect(describeValue('rsa\u200b"\\\ud800')).toBe('"rsa\\u200b\\"\\\\\\ud800"');
    expect(describeValue('a'.repeat(10_000))).toBe(`"${'a'.repeat(40)}"…`);
  });

  it('are refused with a 400 by every parameter parser, whatever their type', () => {
    for (const v of hostile) {
      for (const parse of [parseKeyType, parseHashAlg, parseSignFormat, parsePublicFormat, (x: unknown) => parseHandle(x)]) expect(status(() => parse(v))).toBe(400);
    }
    expect(() => parseKeyType({ toString: 1 })).toThrow('key type must be a name (rsa, ecc) or a TPM_ALG_ID number, not an object');
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withObjectString: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true }), (v) => {
        for (const parse of [parseKeyType, parseHashAlg, parseSignFormat, parsePublicFormat]) {
          try {
            parse(v);
          } catch (e) {
            expect(e).toBeInstanceOf(ServiceError);
            expect((e as ServiceError).status).toBe(400);
            expect((e as ServiceError).message.length).toBeLessThanOrEqual(200);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('bounds JSON bodies before parsing: depth, number of values, own keys only', () => {
    const body = (t: string): Uint8Array => new TextEncoder().encode(t);
    const nest = (n: number): string => `{"type":${'['.repeat(n)}${']'.repeat(n)}}`;
    expect(status(() => parseJsonObject(body(nest(31)), ['type']))).toBe('ok');
    expect(() => parseJsonObject(body(nest(32)), ['type'])).toThrow('nested more than 32 levels deep');
    expect(status(() => parseJsonObject(body('['.repeat(50_000) + ']'.repeat(50_000)), ['type']))).toBe(400);
    expect(status(() => parseJsonObject(body('{"a":"' + '[{,'.repeat(5000) + '"}'), ['a']))).toBe('ok'); // inside a string: text
    expect(() => parseJsonObject(body(`{"type":[${'0,'.repeat(1100)}0]}`), ['type'])).toThrow('more than 1024 JSON values');
    expect(status(() => parseJsonObject(body(']]]]' + '['.repeat(40)), ['type']))).toBe(400);
    expect(() => parseJsonObject(body('{"__proto__":{"type":"rsa"}}'), ['type'])).toThrow('unknown field "__proto__"');
    const parsed = parseJsonObject(body('{"type":"rsa"}'), ['type', 'toString', 'constructor']);
    expect([parsed.type, parsed.toString, parsed.constructor]).toEqual(['rsa', undefined, undefined]);
    expect(duplicateKey('{"a":"unterminated')).toBeUndefined();
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.json({ maxDepth: 40 })), (t) => {
        const r = status(() => parseJsonObject(body(t), ['type', 'hashAlg']));
        expect([400, 'ok']).toContain(r);
      }),
      { numRuns: 300 },
    );
  });

  // The /v1 contract as docs/API.md states it, written out here (not read from the table): the
  // router made from the table must give exactly these, and 405's Allow must list them in order.
  const CONTRACT: ReadonlyArray<[string, string, string]> = [
    ['GET', '/v1/health', 'health'],
    ['GET', '/v1/capabilities', 'capabilities'],
    ['GET', '/v1/keys', 'list-keys'],
    ['POST', '/v1/keys', 'create-key'],
    ['GET', '/v1/keys/{h}', 'get-key'],
    ['DELETE', '/v1/keys/{h}', 'delete-key'],
    ['GET', '/v1/keys/{h}/public', 'get-public'],
    ['POST', '/v1/keys/{h}/sign', 'sign'],
    ['POST', '/v1/keys/{h}/decrypt', 'decrypt'],
    ['POST', '/v1/keys/{h}/ecdh', 'ecdh'],
    ['GET', '/v1/pcrs', 'read-pcrs'],
    ['POST', '/v1/keys/{h}/quote', 'quote'],
    ['POST', '/v1/keys/{h}/certify', 'certify'],
    ['POST', '/v1/keys/{h}/device-certify', 'device-certify'],
    ['POST', '/v1/keys/{h}/activate-credential', 'activate-credential'],
    ['GET', '/v1/ek', 'ek-public'],
    ['GET', '/v1/ek/certificate', 'ek-certificate'],
    ['GET', '/v1/usage', 'usage'],
    ['GET', '/v1/tpm', 'raw-tpm'],
  ];
  const segs = (path: string, h = '0x81010000'): string[] => path.replace('{h}', h).slice(1).split('/');

  it('routes every endpoint of the contract, and nothing else, from the table', () => {
    expect(OPS.length).toBe(CONTRACT.length);
    for (const [method, path, op] of CONTRACT) {
      const r = route(method, segs(path));
      expect(r.op, `${method} ${path}`).toBe(op);
      expect(r.params).toEqual(path.includes('{h}') ? { handle: '0x81010000' } : {});
      expect(`${ROUTES[r.op].method} ${ROUTES[r.op].path.replace('{handle}', '{h}')}`).toBe(`${method} ${path}`);
    }
    const allow = (method: string, path: string): string | undefined => {
      try {
        route(method, segs(path));
      } catch (e) {
        expect((e as ServiceError).status).toBe(405);
        return (e as { allow?: string }).allow;
      }
      return undefined;
    };
    expect(allow('PUT', '/v1/keys')).toBe('GET, POST');
    expect(allow('POST', '/v1/keys/{h}')).toBe('GET, DELETE');
    expect(allow('DELETE', '/v1/keys/{h}/sign')).toBe('POST');
    expect(allow('POST', '/v1/health')).toBe('GET');
    for (const path of ['/v1', '/v1/keys/{h}/sign/x', '/v1/health/x', '/v1/key', '/keys/{h}', '/v1/keys/{h}/Public']) {
      expect(status(() => route('GET', segs(path))), path).toBe(404);
    }
  });

  it('builds request targets from the table: parameters in the path, the query encoded, unset values left out', () => {
    expect(targetOf('list-keys', {})).toBe('/v1/keys');
    expect(targetOf('get-public', { handle: '0x81010000' }, { format: 'der' })).toBe('/v1/keys/0x81010000/public?format=der');
    expect(targetOf('sign', { handle: '0x81010000' }, { hashAlg: 11, format: undefined })).toBe('/v1/keys/0x81010000/sign?hashAlg=11');
    expect(targetOf('sign', { handle: '0x81010000' }, { hashAlg: 'a b&c=d', format: 'tss' })).toBe('/v1/keys/0x81010000/sign?hashAlg=a%20b%26c%3Dd&format=tss');
    // What the client builds, the server's router and query parser read back.
    const t = targetOf('sign', { handle: '0x81010000' }, { hashAlg: 'a b&c=d', format: 'tss' });
    const split = splitTarget(t);
    expect(route('POST', split.segments)).toEqual({ op: 'sign', params: { handle: '0x81010000' } });
    expect({ ...parseQuery(split.query, ROUTES.sign.query) }).toEqual({ hashAlg: 'a b&c=d', format: 'tss' });
  });

  it('routes only own method names', () => {
    for (const m of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) expect(status(() => route(m, ['v1', 'health']))).toBe(405);
  });
});

describe('what tenants are told about failures', () => {
  const path = '/tmp/swtpm-x1/swtpm.sock';
  it('names no host path or errno for transport failures, and keeps the reason for the log', () => {
    const cases: Array<[TpmTransportError, number, string, string]> = [
      [new TpmTransportError('IO', `cannot connect to swtpm:unix:${path}: ECONNREFUSED`), 503, 'TPM_UNAVAILABLE', 'the TPM is unavailable; retry later (request 0123)'],
      [new TpmTransportError('CLOSED', `connection to swtpm:unix:${path} closed`), 503, 'TPM_UNAVAILABLE', 'the TPM is unavailable; retry later (request 0123)'],
      [new TpmTransportError('TIMEOUT', `no response from /dev/tpmrm0 within 5 ms`), 504, 'DEADLINE', 'the TPM did not answer in time (request 0123)'],
      [new TpmTransportError('PROTOCOL', `swtpm:unix:${path} sent bytes after the response`), 502, 'TPM_ERROR', "the TPM's answer was malformed (request 0123)"],
      [new TpmTransportError('BUSY', '/dev/tpmrm0 still holds an unread response (EBUSY on write)'), 503, 'BUSY', 'the TPM is in use by another program; retry later (request 0123)'],
    ];
    for (const [e, st, code, message] of cases) {
      const se = toServiceError(e, '0123');
      expect({ status: se.status, code: se.code, message: se.message }).toEqual({ status: st, code, message });
      expect(JSON.stringify(se.toJSON())).not.toMatch(/\/tmp|\/dev|ECONN|EBUSY|swtpm/);
      expect(hostReason(e)).toContain(e.message);
    }
    const bug = new Error(`ENOSPC: no space left on device, open '/var/lib/eve-tpm-service/registry.json.tmp'`);
    expect(toServiceError(bug, '0123')).toMatchObject({ status: 500, message: 'internal error (request 0123)' });
    expect(hostReason(bug)).toContain('/var/lib/eve-tpm-service');
  });

  it("shows the TPM's own answer: response code text and decode offsets", () => {
    const rc = new TpmError(TPM_RC.HASH | 0x1c0, { name: 'Sign', code: 0x15d });
    expect(toServiceError(rc, '0123')).toMatchObject({ status: 502, tpmText: rc.message, message: `TPM2_Sign failed: ${rc.message}` });
    expect(hostReason(rc)).toBeUndefined();
    const dec = new TpmDecodeError('size 9000 over 1024', 'TPM2B_DIGEST.size', 12);
    expect(toServiceError(dec).message).toBe("the TPM's answer could not be decoded: TPM2B_DIGEST.size: size 9000 over 1024 (at byte 12)");
    expect(toServiceError(new ServiceError(400, 'BAD_REQUEST', 'x'), '0123').message).toBe('x');
  });
});

describe('the request lifecycle (http/lifecycle.ts), with stand-in handlers', () => {
  const secret = generateSecret();
  const tenants = new TenantDirectory(parseTenants({ tenants: [{ id: 'dev', secretHash: hashSecret(secret) }] }));

  async function withLifecycle(
    handlers: Partial<Record<string, (ctx: RequestContext & OpenContext) => void | Promise<void>>>,
    body: (call: (method: string, path: string, auth?: boolean) => Promise<{ status: number; headers: IncomingHttpHeaders; json: any }>, seen: { lines: any[]; authed: number; gate: { draining: boolean } }) => Promise<void>,
  ): Promise<void> {
    const lines: any[] = [];
    const put = (level: string) => (o: object, msg: string) => void lines.push({ level, ...o, msg });
    const log = { info: put('info'), warn: put('warn'), error: put('error') } as unknown as Logger;
    const seen = { lines, authed: 0, gate: { draining: false } };
    const unused = (): never => {
      throw new Error('not called in this test');
    };
    const all = Object.fromEntries(OPS.map((op) => [op, handlers[op] ?? unused])) as unknown as Handlers;
    const handle = requestHandler({
      log,
      config: { singleTenant: false, deadlineMs: 50, streamDeadlineMs: 50 },
      handlers: all,
      tenants: () => tenants,
      front: () => ({ draining: seen.gate.draining, authenticated: () => void seen.authed++ }),
    });
    const srv = createHttpServer((req, res) => handle(req, res, { listener: 'tcp', address: '127.0.0.1' }));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const call = (method: string, path: string, auth = true) =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; json: any }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: auth ? { Authorization: `Bearer ${secret}` } : {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          // The request line is written on 'close' of the response, around when the client has it.
          res.once('end', () => {
            const id = res.headers['x-request-id'];
            const answer = { status: res.statusCode!, headers: res.headers, json: chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined };
            eventually(() => lines.some((l) => l.event === 'request' && l.requestId === id), 5000, `the request line of ${id}`).then(() => resolve(answer), reject);
          });
        });
        req.once('error', reject);
        req.end();
      });
    try {
      await body(call, seen);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }

  const requestLine = (lines: any[], id: unknown) => lines.find((l) => l.event === 'request' && l.requestId === id);

  it('asks no identity for an open route, refuses a tenant route without one (audited), and runs the handler with the tenant', async () => {
    await withLifecycle(
      {
        health: (ctx) => sendJson(ctx.res, 200, { up: true }),
        'list-keys': (ctx) => {
          ctx.audit('grant', 'own keys only');
          sendJson(ctx.res, 200, { tenant: ctx.tenant.id });
        },
      },
      async (call, seen) => {
        const h = await call('GET', '/v1/health', false);
        expect([h.status, h.json]).toEqual([200, { up: true }]);
        expect(requestLine(seen.lines, h.headers['x-request-id'])).toMatchObject({ op: 'health', tenant: null, outcome: 'ok', status: 200 });
        expect(seen.authed).toBe(0);

        const no = await call('GET', '/v1/keys', false);
        expect([no.status, no.json.error.code]).toEqual([401, 'UNAUTHENTICATED']);
        const id = no.headers['x-request-id'];
        expect(seen.lines.filter((l) => l.requestId === id).map((l) => [l.event, l.decision ?? l.outcome, l.op])).toEqual([
          ['audit', 'deny', 'list-keys'],
          ['request', 'UNAUTHENTICATED', 'list-keys'],
        ]);

        const yes = await call('GET', '/v1/keys');
        expect([yes.status, yes.json]).toEqual([200, { tenant: 'dev' }]);
        expect(seen.lines.filter((l) => l.requestId === yes.headers['x-request-id']).map((l) => [l.event, l.tenant, l.decision ?? l.outcome])).toEqual([
          ['audit', 'dev', 'grant'],
          ['request', 'dev', 'ok'],
        ]);
        expect(seen.authed).toBe(1);
      },
    );
  });

  it('aborts a handler at its deadline (504), maps a thrown bug to a 500 naming the request, and refuses everything while draining', async () => {
    await withLifecycle(
      {
        health: (ctx) => sendJson(ctx.res, 200, {}),
        'get-key': async (ctx) => {
          ctx.handle = 0x81010000;
          await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
        },
        'list-keys': () => {
          throw new Error('a bug');
        },
      },
      async (call, seen) => {
        const late = await call('GET', '/v1/keys/0x81010000');
        expect([late.status, late.json.error.code, late.json.error.message]).toEqual([504, 'DEADLINE', 'the request did not complete within its deadline of 50 ms']);
        expect(requestLine(seen.lines, late.headers['x-request-id'])).toMatchObject({ op: 'get-key', handle: '0x81010000', outcome: 'DEADLINE', status: 504 });

        const bug = await call('GET', '/v1/keys');
        const id = bug.headers['x-request-id'] as string;
        expect([bug.status, bug.json.error.code]).toEqual([500, 'INTERNAL']);
        expect(bug.json.error.message).toContain(id);
        expect(bug.json.error.message).not.toContain('a bug');
        expect(seen.lines.find((l) => l.event === 'internal-error' && l.requestId === id)).toBeDefined();

        const wrong = await call('PUT', '/v1/keys');
        expect([wrong.status, wrong.headers.allow]).toEqual([405, 'GET, POST']);
        expect(requestLine(seen.lines, wrong.headers['x-request-id'])).toMatchObject({ op: null, outcome: 'METHOD_NOT_ALLOWED' });

        seen.gate.draining = true;
        for (const path of ['/v1/health', '/v1/keys']) {
          const busy = await call('GET', path);
          expect([busy.status, busy.json.error.code, busy.headers['retry-after']], path).toEqual([503, 'BUSY', '1']);
        }
      },
    );
  });
});
