/**
 * Tenant isolation: every attempt at another tenant's key, at EVE's or the TCG's objects, at
 * any handle outside the pool or of another type — in any spelling, in any field — is refused
 * (403, or 400 when the spelling itself is ambiguous) before a single TPM command runs, and
 * every refusal is in the audit log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swtpmAvailable } from '../helpers/swtpm.js';
import { auditSince, eventually, startEnv, type TestEnv } from './env.js';
import { httpText, rawRequest } from './raw.js';
import { skipUnlessCI } from '../helpers/ci.js';

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('isolation between tenants and from EVE', () => {
  let env: TestEnv;
  let aliceKey: string;
  let bobKey: string;
  let bobDecimal: string;

  const auth = (t: string): Record<string, string> => ({ Authorization: `Bearer ${env.secrets[t]}` });

  /** The three operations on `handle` as tenant `t`, in raw HTTP. */
  const attempts = (t: string, handle: string): string[] => [
    httpText('GET', `/v1/keys/${handle}`, auth(t)),
    httpText('GET', `/v1/keys/${handle}/public?format=pem`, auth(t)),
    httpText('POST', `/v1/keys/${handle}/sign`, { ...auth(t), 'Content-Type': 'application/json' }, JSON.stringify({ message: 'aGVsbG8=' })),
    httpText('POST', `/v1/keys/${handle}/sign?hashAlg=sha256`, { ...auth(t), 'Content-Type': 'application/octet-stream' }, 'hello'),
    httpText('DELETE', `/v1/keys/${handle}`, auth(t)),
  ];

  beforeAll(async () => {
    env = await startEnv();
    await eventually(() => env.service.core.supervisor.healthy, 10_000, 'TPM maintenance');
    aliceKey = (await env.client('alice').createKey({ type: 'ecc' })).handle;
    bobKey = (await env.client('bob').createKey({ type: 'ecc' })).handle;
    bobDecimal = String(Number.parseInt(bobKey, 16));
  });
  afterAll(async () => {
    await env?.stop();
  });

  it("refuses another tenant's key with 403, in hex and decimal, with no TPM command", async () => {
    const before = env.commands.length;
    const logFrom = env.logs.length;
    for (const h of [bobKey, bobDecimal, bobKey.toUpperCase().replace('0X', '0x')]) {
      for (const req of attempts('alice', h)) {
        const r = await rawRequest(env.tcp, req);
        expect(r.status, `${req.split('\r\n')[0]}`).toBe(403);
        expect(JSON.parse(r.body).error.code).toBe('FORBIDDEN');
      }
    }
    expect(env.commands.slice(before)).toEqual([]);
    const denials = auditSince(env, logFrom).filter((l) => l.decision === 'deny');
    expect(denials.length).toBe(15);
    expect(denials.every((l) => l.tenant === 'alice' && l.handle === bobKey && l.reason === 'owned by another tenant')).toBe(true);
    // Bob's key still works for Bob.
    expect((await env.client('bob').sign(bobKey, { message: new Uint8Array(1) })).handle).toBe(bobKey);
  });

  it("refuses EVE's objects, the EK handles, NV indexes and every non-persistent or out-of-pool handle with 403", async () => {
    const handles = [
      0x81000001, 0x81000002, 0x81000003, 0x81000004, 0x81000005, 0x817fffff, // EVE
      0x81010001, 0x81010002, // TCG EK
      0x01500000, 0x01600000, 0x01700000, 0x01800000, 0x01900000, 0x01c00002, // NV
      0x80000000, 0x80ffffff, 0x02000000, 0x03000000, 0x40000001, 0x4000000b, 0x00000000, 0x00000017, // other types
      0x81000000, 0x8100ffff, 0x81020000, 0x81800000, 0x81ffffff, 0xffffffff, // outside the pool
      0x81010005, // in the pool but nobody's
    ];
    const before = env.commands.length;
    const logFrom = env.logs.length;
    for (const h of handles) {
      for (const spelled of ['0x' + h.toString(16).padStart(8, '0'), String(h)]) {
        for (const req of attempts('alice', spelled)) {
          const r = await rawRequest(env.unix, req);
          expect(r.status, `${req.split('\r\n')[0]}`).toBe(403);
        }
      }
    }
    expect(env.commands.slice(before)).toEqual([]);
    const reasons = new Set(auditSince(env, logFrom).map((l) => l.reason));
    expect([...reasons].sort()).toEqual(['no such key', 'not a persistent handle', 'outside the key pool', 'reserved handle']);
  });

  it('refuses ambiguous spellings of a handle with 400 — even of the caller\'s own key', async () => {
    const own = Number.parseInt(aliceKey, 16);
    const bad = [
      '0X' + own.toString(16),
      '+' + aliceKey,
      '-1',
      '-0',
      '0x0' + own.toString(16),
      '00' + String(own),
      '0' + String(own),
      String(own) + '.0',
      '2.1643264e9',
      '1e3',
      '0x',
      '0b1',
      '0o7',
      'NaN',
      'Infinity',
      'null',
      '4294967296',
      '99999999999999999999',
      '0x100000000',
      '0x' + own.toString(16) + '0',
      aliceKey + '%20',
      '%20' + aliceKey,
      '0x8101%30000',
      aliceKey.replace('8', '\uff18'), // fullwidth digit
      '\u0668\u0661', // Arabic-Indic digits
      '0x81_010000',
    ];
    const before = env.commands.length;
    for (const h of bad) {
      for (const req of attempts('alice', h)) {
        const r = await rawRequest(env.tcp, Buffer.from(req, 'utf8'));
        expect([400], `${JSON.stringify(h)}: ${req.split('\r\n')[0]} → ${r.text.slice(0, 120)}`).toContain(r.status);
      }
    }
    // whitespace inside the request line is not even a valid request target
    for (const h of [' ' + aliceKey, aliceKey + '\t']) {
      const r = await rawRequest(env.tcp, httpText('GET', `/v1/keys/${h}`, auth('alice')));
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    expect(env.commands.slice(before)).toEqual([]);
    // The canonical spellings work.
    for (const h of [aliceKey, String(own), '0x' + own.toString(16).toUpperCase()]) {
      expect((await rawRequest(env.tcp, httpText('GET', `/v1/keys/${h}`, auth('alice')))).status).toBe(200);
    }
  });

  it('refuses handles smuggled in query parameters, JSON fields and duplicates with 400', async () => {
    const json = (body: string, path = `/v1/keys/${aliceKey}/sign`): string => httpText('POST', path, { ...auth('alice'), 'Content-Type': 'application/json' }, body);
    const cases = [
      httpText('GET', `/v1/keys?handle=${bobKey}`, auth('alice')),
      httpText('GET', `/v1/keys?tenant=bob`, auth('alice')),
      httpText('GET', `/v1/keys/${aliceKey}?handle=${bobKey}`, auth('alice')),
      httpText('GET', `/v1/keys/${aliceKey}/public?format=pem&format=der`, auth('alice')),
      httpText('GET', `/v1/keys/${aliceKey}/public?format=pem&handle=${bobKey}`, auth('alice')),
      httpText('POST', `/v1/keys/${aliceKey}/sign?hashAlg=sha256&hashAlg=sha1`, { ...auth('alice'), 'Content-Type': 'application/octet-stream' }, 'x'),
      httpText('POST', `/v1/keys/${aliceKey}/sign?handle=${bobKey}`, { ...auth('alice'), 'Content-Type': 'application/octet-stream' }, 'x'),
      httpText('DELETE', `/v1/keys/${aliceKey}?handle=${bobKey}`, auth('alice')),
      json(JSON.stringify({ message: 'aGk=', handle: bobKey })),
      json(JSON.stringify({ message: 'aGk=', keyHandle: Number.parseInt(bobKey, 16) })),
      json('{"message":"aGk=","message":"aGk="}'),
      json('{"message":"aGk=","\\u006dessage":"aGk="}'),
      json('{"message":"aGk=","__proto__":{"handle":"0x81000001"}}'),
      json(JSON.stringify({ message: 'aGk=' }), `/v1/keys/${aliceKey}/sign?hashAlg=sha256`),
      json(JSON.stringify({ type: 'ecc', handle: '0x81000001' }), '/v1/keys'),
      json(JSON.stringify({ type: 'ecc', persistentHandle: 0x81000001 }), '/v1/keys'),
      json('{"type":"ecc","type":"rsa"}', '/v1/keys'),
      json(JSON.stringify({ type: 'ecc' }), `/v1/keys?handle=${bobKey}`),
      json('[{"type":"ecc"}]', '/v1/keys'),
      // two Authorization headers: which one counts would be a guess
      httpText('GET', `/v1/keys/${aliceKey}`, { ...auth('alice'), 'X-Pad': `1\r\nAuthorization: Bearer ${env.secrets.bob}` }),
    ];
    const before = env.commands.length;
    for (const req of cases) {
      const r = await rawRequest(env.tcp, req);
      expect(r.status, req.split('\r\n')[0]).toBe(400);
      expect(JSON.parse(r.body).error.code).toBe('BAD_REQUEST');
    }
    expect(env.commands.slice(before)).toEqual([]);
  });

  it("keeps paths that try to escape the key's path out (404/400), with no TPM command", async () => {
    const before = env.commands.length;
    for (const p of [
      `/v1/keys/${aliceKey}/../${bobKey}/sign`,
      `/v1/keys/${aliceKey}/sign/../../${bobKey}`,
      `/v1/keys//${bobKey}`,
      `//v1/keys/${bobKey}`,
      `/v1/keys/${bobKey}/`,
      `/v1/./keys/${bobKey}`,
      `/V1/keys/${bobKey}`,
      `/v1/keys/%2e%2e/${bobKey}`,
      `http://host/v1/keys/${bobKey}`,
      `*`,
    ]) {
      const r = await rawRequest(env.tcp, httpText('GET', p, auth('alice')));
      expect([400, 404], p).toContain(r.status);
    }
    expect(env.commands.slice(before)).toEqual([]);
  });
});
