// Answers carry every header in one writeHead (respond.ts): the request id, the fixed headers
// and a handler's own must all arrive, also when a header was set before (the draining front's
// Connection: close), and on a 204 and an error answer.
import { createServer, request, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendError, sendJson, sendNoContent, setRequestId } from '../../src/service/http/respond.js';
import { serviceBusy } from '../../src/service/protocol/errors.js';

const answers: Record<string, (res: ServerResponse) => void> = {
  '/json': (res) => {
    setRequestId(res, '00112233aabbccdd');
    sendJson(res, 201, { ok: true }, { Location: '/v1/keys/0x81010000' });
  },
  '/after-set-header': (res) => {
    setRequestId(res, '0011223344556677');
    res.setHeader('Connection', 'close');
    sendJson(res, 200, { ok: true });
  },
  '/none': (res) => {
    setRequestId(res, 'ffeeddccbbaa9988');
    sendNoContent(res);
  },
  '/error': (res) => {
    setRequestId(res, '8899aabbccddeeff');
    sendError(res, serviceBusy('busy'));
  },
  '/no-id': (res) => sendJson(res, 200, {}),
};

const server = createServer((req, res) => answers[req.url ?? '']!(res));
let port = 0;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function get(path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('answers', () => {
  it('carry the request id, the fixed headers and the handler’s own', async () => {
    const a = await get('/json');
    expect(a.status).toBe(201);
    expect(a.headers).toMatchObject({
      'x-request-id': '00112233aabbccdd',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(a.body)),
      location: '/v1/keys/0x81010000',
    });
    expect(JSON.parse(a.body)).toEqual({ ok: true });
  });

  it('keep a header set before the answer', async () => {
    const a = await get('/after-set-header');
    expect(a.headers).toMatchObject({ 'x-request-id': '0011223344556677', connection: 'close', 'cache-control': 'no-store' });
  });

  it('carry the request id on a 204 and on an error answer', async () => {
    const none = await get('/none');
    expect(none.status).toBe(204);
    expect(none.headers).toMatchObject({ 'x-request-id': 'ffeeddccbbaa9988', 'cache-control': 'no-store' });
    const err = await get('/error');
    expect(err.status).toBe(503);
    expect(err.headers).toMatchObject({ 'x-request-id': '8899aabbccddeeff', 'retry-after': '1' });
    expect(JSON.parse(err.body).error.code).toBe('BUSY');
  });

  it('have no request id header where none was given', async () => {
    const a = await get('/no-id');
    expect(a.headers['x-request-id']).toBeUndefined();
  });
});
