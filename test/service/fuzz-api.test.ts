/**
 * Every endpoint and every field of the API fed hostile values (fast-check) over real sockets
 * against the real service and swtpm: JSON of every type, deep nesting, objects whose keys are
 * toString/valueOf/constructor/__proto__, odd unicode, numbers like 1e400 and -0, hostile query
 * strings. The answer is never a 5xx and an error is always the JSON of docs/API.md. And with
 * the TPM gone, what a tenant is told names no host path, socket or errno; the host log keeps
 * the reason under the same request id.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { skipUnlessCI } from '../helpers/ci.js';
import { eventually, startEnv, type TestEnv } from './env.js';
import { connectTo } from './raw.js';

interface Answer {
  status: number;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  /** The head as sent (status line and headers). */
  head: string;
  body: string;
}

/** One request with Connection: close; the body as exact bytes; the answer decoded as UTF-8. */
function send(address: string, method: string, target: string, headers: Record<string, string>, body: Uint8Array = new Uint8Array()): Promise<Answer> {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: x', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body.length > 0) lines.push(`Content-Length: ${body.length}`);
  return new Promise((resolve, reject) => {
    const s = connectTo(address);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within 20 s to ${method} ${target.slice(0, 100)}`));
    }, 20_000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {}); // a reset after the answer is fine
    s.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end < 0 ? all.length : end).toString('latin1');
      const [statusLine, ...rest] = head.split('\r\n');
      const h: Record<string, string> = {};
      for (const l of rest) {
        const i = l.indexOf(':');
        if (i > 0) h[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1] ?? 0), headers: h, head, body: end < 0 ? '' : all.subarray(end + 4).toString('utf8') });
    });
    s.write(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]));
  });
}

const STATUS_OF_CODE: Record<string, number[]> = {
  BAD_REQUEST: [400],
  UNAUTHENTICATED: [401],
  FORBIDDEN: [403],
  QUOTA_EXCEEDED: [403],
  NOT_FOUND: [404],
  METHOD_NOT_ALLOWED: [405],
  REQUEST_TIMEOUT: [408],
  CONFLICT: [409],
  PAYLOAD_TOO_LARGE: [413],
  UNSUPPORTED_MEDIA_TYPE: [415],
  UNSUPPORTED: [422],
  BUSY: [429, 503],
};

/** Never a 5xx; an error is `{ error: { code, message } }` with a code that fits the status. */
function expectWellFormed(a: Answer, what: string): void {
  const where = `${what} → ${a.status} ${a.body.slice(0, 300)}`;
  expect(a.status, where).toBeGreaterThanOrEqual(200);
  expect(a.status, where).toBeLessThan(500);
  expect(a.headers['x-request-id'], where).toMatch(/^[0-9a-f]{16}$/);
  if (a.status === 204) return expect(a.body, where).toBe('');
  expect(a.headers['content-type'], where).toBe('application/json; charset=utf-8');
  const parsed = JSON.parse(a.body) as unknown;
  if (a.status < 300) return;
  expect(parsed, where).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  const { code, message } = (parsed as { error: { code: string; message: string } }).error;
  expect(STATUS_OF_CODE[code], where).toContain(a.status);
  expect(message.length, where).toBeGreaterThan(0);
  expect(message.length, where).toBeLessThanOrEqual(300);
}

// ---------------------------------------------------------------------------------------------
// hostile values, as JSON text (a JS value 50 000 arrays deep could not even be stringified)

const ODD_STRINGS = ['', '\u0000', '\ufeffrsa', 'rsa\u0000', 'ｒｓａ', '\ud800', '\udfff\ud800', 'ecc\u200b', 'sha256\u0301', '0x０B', '0xb', '0X23', '１１', 'ﬀ', '\u202eass', '__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty'];
const VALID_WORDS = ['rsa', 'ecc', 'sha1', 'sha256', 'sha384', 'sha512', '0x23', '0x1', '0xB', '11', 'plain', 'der', 'tss', 'pem', 'aGk=', 'AAAAAAAA'];
const ODD_NUMBERS = ['1e400', '-1e400', '-0', '0.0', '1e-400', '35.0', '3.5e1', '11.0', '99999999999999999999999', '-1', '4294967296', '1', '35', '11', '65535', '65536'];
const PROTO_KEYS = ['toString', 'valueOf', 'constructor', '__proto__', 'hasOwnProperty', 'toJSON', 'then', 'length', '0'];

const jsonString = (s: string): string => JSON.stringify(s);
const nested = (open: string, close: string, inner: string) => (n: number): string => open.repeat(n) + inner + close.repeat(n);

/** One JSON value, as text. */
const leaf: fc.Arbitrary<string> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom(...ODD_STRINGS, ...VALID_WORDS).map(jsonString),
  fc.string({ unit: 'binary', maxLength: 20 }).map(jsonString),
  fc.constantFrom(...ODD_NUMBERS, 'true', 'false', 'null', '[]', '{}'),
);

const hostileValue: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    // Objects built by hand so that "__proto__" really is an own key in the text.
    fc.array(fc.tuple(fc.constantFrom(...PROTO_KEYS), fc.oneof(leaf, tie('value'))), { maxLength: 4 }).map((kv) => `{${kv.map(([k, v]) => `${jsonString(k)}:${v}`).join(',')}}`),
    fc.array(tie('value'), { maxLength: 3 }).map((vs) => `[${vs.join(',')}]`),
    fc.integer({ min: 20, max: 50_000 }).map(nested('[', ']', '')),
    fc.integer({ min: 20, max: 20_000 }).map(nested('{"toString":', '}', '1')),
    fc.integer({ min: 1, max: 200 }).map(nested('[', ']', '{"toString":1}')),
  ),
})).value;

/**
 * A JSON body for an endpoint whose fields are `fields`: mostly an object, sometimes not. A
 * valid `lead` field often comes first, so that the fields checked after it are reached too.
 */
function jsonBody(fields: readonly string[], lead: string): fc.Arbitrary<string> {
  const entry = fc.tuple(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...fields) }, fc.constantFrom(...PROTO_KEYS, 'x', '\u0000', '')), hostileValue);
  const object = fc
    .tuple(fc.boolean(), fc.array(entry, { maxLength: 4 }))
    .map(([withLead, kv]) => `{${[...(withLead ? [lead] : []), ...kv.map(([k, v]) => `${jsonString(k)}:${v}`)].join(',')}}`);
  return fc.oneof(
    { weight: 8, arbitrary: object },
    hostileValue,
    fc.integer({ min: 1000, max: 20_000 }).map((n) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`),
    fc.constantFrom('', '{', '{"type":', '{"a":1}}', '{"__proto__":1,"__proto__":2}', '{"type":"rsa",}', '{"type":"rsa"} x', '\ufeff{"type":"ecc"}'),
  );
}

/** A query string: keys the endpoint knows and others, values odd, percent-encoded or not. */
function queryString(known: readonly string[]): fc.Arbitrary<string> {
  const pctBytes = (s: string): string => [...Buffer.from(s, 'utf8')].map((b) => '%' + b.toString(16).padStart(2, '0')).join('');
  const value = fc.oneof(
    fc.constantFrom(...VALID_WORDS, ...ODD_NUMBERS).map(encodeURIComponent),
    fc.constantFrom(...ODD_STRINGS).map(pctBytes),
    fc.string({ unit: 'binary', maxLength: 12 }).map(pctBytes),
    fc.constantFrom('%', '%zz', '%ff', '%c0%80', '%ed%a0%80', '%00', 'a+b', '', '=', '%3d'),
  );
  const odd = fc.constantFrom(...PROTO_KEYS, 'HashAlg', 'format%00', '%66ormat', 'x');
  const key = known.length === 0 ? odd : fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, odd);
  const part = fc.oneof({ weight: 8, arbitrary: fc.tuple(key, value).map(([k, v]) => `${k}=${v}`) }, fc.constantFrom('', '=', 'format', '&', '=x'));
  return fc.array(part, { maxLength: 4 }).map((ps) => ps.join('&'));
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('API fuzzing: never a 5xx for bad input', () => {
  let env: TestEnv;
  let key: string;
  const auth = (): Record<string, string> => ({ Authorization: `Bearer ${env.secrets.alice}` });

  beforeAll(async () => {
    // Quota 1 and a key made: a creation that passes parsing is refused by the quota, without
    // TPM work; handle endpoints get past the policy.
    env = await startEnv({ tenants: [{ id: 'alice', maxKeys: 1 }], config: { bodyTimeoutMs: 2000 } });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    key = (await env.client('alice').createKey({ type: 'ecc' })).handle;
  });
  afterAll(async () => {
    await env?.stop();
  });

  /** Statuses answered during the current property (it must reach past parsing, too). */
  const seen = new Set<number>();
  /** Sends, checks the answer, and re-creates the key if a fuzzed DELETE happened to be valid. */
  const check = async (method: string, target: string, headers: Record<string, string>, body?: string | Uint8Array): Promise<Answer> => {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const a = await send(env.tcp, method, target, headers, bytes);
    seen.add(a.status);
    expectWellFormed(a, `${method} ${target.slice(0, 120)} ${typeof body === 'string' ? body.slice(0, 120) : ''}`);
    if (method === 'DELETE' && a.status === 204) key = (await env.client('alice').createKey({ type: 'ecc' })).handle;
    return a;
  };
  const json = { 'Content-Type': 'application/json' };
  const withQuery = (path: string, q: string): string => (q === '' ? path : `${path}?${q}`);

  it('answers the reported bad JSON types with 400, not 500', async () => {
    const deep = '['.repeat(50_000) + ']'.repeat(50_000);
    const cases: Array<[string, string]> = [
      ['/v1/keys', '{"type":{"toString":1}}'],
      ['/v1/keys', '{"type":"ecc","hashAlg":{"toString":1}}'],
      ['/v1/keys', '{"type":{"valueOf":1,"toString":1}}'],
      ['/v1/keys', '{"type":[{"toString":1}]}'],
      ['/v1/keys', `{"type":${deep}}`],
      ['/v1/keys', deep],
      ['/v1/keys', `{"x":${deep}}`],
      [`/v1/keys/${key}/sign`, '{"message":"aGk=","format":{"toString":1}}'],
      [`/v1/keys/${key}/sign`, '{"message":"aGk=","hashAlg":{"toString":1}}'],
      [`/v1/keys/${key}/sign`, `{"message":"aGk=","format":${deep}}`],
    ];
    for (const [path, body] of cases) {
      const a = await check('POST', path, { ...auth(), ...json }, body);
      expect(a.status, `${path} ${body.slice(0, 60)}`).toBe(400);
    }
  });

  const endpoints: Array<{ name: string; runs: number; reaches: number[]; arb: () => fc.Arbitrary<() => Promise<Answer>> }> = [
    {
      name: 'POST /v1/keys',
      reaches: [400, 403],
      runs: 250,
      arb: () =>
        fc
          .tuple(fc.oneof({ weight: 9, arbitrary: jsonBody(['type', 'hashAlg'], '"type":"ecc"') }, fc.uint8Array({ minLength: 1, maxLength: 40 })), queryString([]))
          .map(([b, q]) => () => check('POST', withQuery('/v1/keys', q), { ...auth(), ...json }, b)),
    },
    {
      name: 'GET /v1/keys',
      reaches: [200, 400],
      runs: 80,
      arb: () => queryString(['format']).map((q) => () => check('GET', withQuery('/v1/keys', q), auth())),
    },
    {
      name: 'GET and DELETE /v1/keys/{h}',
      reaches: [200, 204, 400],
      runs: 120,
      arb: () => fc.tuple(fc.constantFrom('GET', 'DELETE'), queryString(['format']), fc.boolean()).map(([m, q, withBody]) => () =>
        check(m, withQuery(`/v1/keys/${key}`, q), { ...auth(), ...(withBody ? json : {}) }, withBody ? '{"type":{"toString":1}}' : undefined)),
    },
    {
      name: 'GET /v1/keys/{h}/public',
      reaches: [200, 400],
      runs: 120,
      arb: () => queryString(['format']).map((q) => () => check('GET', withQuery(`/v1/keys/${key}/public`, q), auth())),
    },
    {
      name: 'POST /v1/keys/{h}/sign (JSON)',
      reaches: [200, 400],
      runs: 250,
      arb: () => fc.tuple(jsonBody(['message', 'hashAlg', 'format'], '"message":"aGk="'), fc.oneof({ weight: 4, arbitrary: fc.constant('') }, queryString(['hashAlg', 'format']))).map(([b, q]) => () =>
        check('POST', withQuery(`/v1/keys/${key}/sign`, q), { ...auth(), ...json }, b)),
    },
    {
      name: 'POST /v1/keys/{h}/sign (octet-stream)',
      reaches: [200, 400],
      runs: 120,
      arb: () => fc.tuple(queryString(['hashAlg', 'format']), fc.uint8Array({ maxLength: 64 })).map(([q, b]) => () =>
        check('POST', withQuery(`/v1/keys/${key}/sign`, q), { ...auth(), 'Content-Type': 'application/octet-stream' }, b.length ? b : Uint8Array.of(0))),
    },
    {
      name: 'GET /v1/health',
      reaches: [200, 400],
      runs: 60,
      arb: () => queryString(['format']).map((q) => () => check('GET', withQuery('/v1/health', q), {})),
    },
    {
      name: 'the Authorization header',
      reaches: [401],
      runs: 80,
      arb: () =>
        fc.oneof(
          fc.string({ unit: 'grapheme-ascii', maxLength: 300 }).map((s) => s.replace(/[\r\n]/g, '')),
          fc.constantFrom('Bearer', 'Bearer ', 'Bearer  x', 'Bearer __proto__', 'Bearer constructor', `Bearer ${'a'.repeat(5000)}`, 'bearer x', 'Basic eDp5'),
        ).map((v) => () => check('GET', '/v1/keys', { Authorization: v })),
    },
  ];

  for (const ep of endpoints) {
    it(`${ep.name}: every hostile field and query gives a well-formed 2xx/4xx`, async () => {
      seen.clear();
      await fc.assert(
        fc.asyncProperty(ep.arb(), async (go) => {
          await go();
        }),
        { numRuns: ep.runs, seed: 0xfa11 },
      );
      for (const status of ep.reaches) expect([...seen], `${ep.name} never answered ${status}`).toContain(status);
      // The service still works for the tenant afterwards.
      expect((await env.client('alice').sign(key, { message: new Uint8Array(4) })).handle).toBe(key);
    });
  }
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('what a tenant is told when the TPM is gone', () => {
  let env: TestEnv;
  let key: string;
  beforeAll(async () => {
    env = await startEnv({ tenants: [{ id: 'alice' }] });
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    key = (await env.client('alice').createKey({ type: 'ecc' })).handle;
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('names no host path, socket or errno to the tenant; the log keeps the reason under the request id', async () => {
    env.swtpm.kill();
    const auth = { Authorization: `Bearer ${env.secrets.alice}` };
    const secretsOfTheHost = [env.swtpm.sockPath, env.swtpm.dir, env.swtpm.stateDir, env.stateDir, env.dir, 'swtpm', 'ECONNREFUSED', 'ENOENT', 'unix:'];
    const requests: Array<[string, string, Record<string, string>, string | Uint8Array]> = [
      ['POST', `/v1/keys/${key}/sign`, { ...auth, 'Content-Type': 'application/json' }, '{"message":"aGk="}'],
      ['POST', `/v1/keys/${key}/sign`, { ...auth, 'Content-Type': 'application/octet-stream' }, new Uint8Array(3000)],
      ['POST', '/v1/keys', { ...auth, 'Content-Type': 'application/json' }, '{"type":"ecc"}'],
    ];
    for (const [method, path, headers, body] of requests) {
      const a = await send(env.unix, method, path, headers, typeof body === 'string' ? Buffer.from(body) : body);
      const id = a.headers['x-request-id']!;
      expect(a.status, a.body).toBe(503);
      const error = (JSON.parse(a.body) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('TPM_UNAVAILABLE');
      // A streamed sign whose hash sequence the outage took says so (no host detail either).
      if (body instanceof Uint8Array && error.message.startsWith('the hash sequence')) {
        expect(error.message).toBe('the hash sequence of your message is gone: the TPM was unreachable while it was being hashed; send the message again');
      } else expect(error.message).toBe(`the TPM is unavailable; retry later (request ${id})`);
      for (const s of secretsOfTheHost) {
        expect(a.head, `headers name ${s}`).not.toContain(s);
        expect(a.body, `body names ${s}`).not.toContain(s);
      }
      // The host log has the real reason (the transport's own words) under the same id.
      await eventually(() => env.logs.some((l) => l.requestId === id && l.event === 'request'), 5000, 'the request line');
      const lines = env.logs.filter((l) => l.requestId === id).map((l) => JSON.stringify(l));
      expect(lines.some((l) => l.includes(env.swtpm.sockPath)), lines.join('\n')).toBe(true);
    }
  });
});
