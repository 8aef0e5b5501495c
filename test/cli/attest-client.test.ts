/**
 * The client's attestation methods against a stand-in service on a real unix socket: what
 * they send, and that an answer breaking the contract (bad base64, PCRs out of order, a
 * device certification without its binding) is a BAD_RESPONSE, never bytes for a quote file.
 * The real service is test/cli/attest-e2e.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient, ServiceError } from '../../src/service/client/client.js';

const dir = mkdtempSync(join(tmpdir(), 'attest-client-'));
const sock = join(dir, 's.sock');
let server: Server;
/** What the stand-in answers next (status 200), and what it was asked. */
let answer: unknown;
const asked: Array<{ method: string; url: string; body: unknown }> = [];

async function bodyOf(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    void bodyOf(req).then((body) => {
      asked.push({ method: req.method ?? '', url: req.url ?? '', body });
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const client = (): ServiceClient => new ServiceClient({ address: `unix:${sock}`, secret: 's' });
const b64 = (...b: number[]): string => Buffer.from(b).toString('base64');
const attest = { signer: '0x81010000', attest: b64(0xff, 0x54, 0x43, 0x47), signature: b64(0, 0x14, 0, 0x0b, 0, 1, 9), nonce: '0A0B', qualifyingData: '0a0b' };

async function badResponse(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ServiceError);
  expect((e as ServiceError).code).toBe('BAD_RESPONSE');
  return (e as ServiceError).message;
}

describe('ServiceClient attestation methods', () => {
  it('readPcrs: the selection in the query, values decoded', async () => {
    const c = client();
    try {
      answer = { selection: 'sha256:0,16', updateCounter: 3, pcrs: [{ bank: 'sha256', pcr: 0, value: '00'.repeat(32) }, { bank: 'sha256', pcr: 16, value: 'AB'.repeat(32) }] };
      const r = await c.readPcrs('sha256:0,16');
      expect(asked.at(-1)).toEqual({ method: 'GET', url: '/v1/pcrs?selection=sha256%3A0%2C16', body: undefined });
      expect(r.pcrs.map((p) => [p.bank, p.pcr, Buffer.from(p.value).toString('hex')])).toEqual([
        ['sha256', 0, '00'.repeat(32)],
        ['sha256', 16, 'ab'.repeat(32)],
      ]);
      await c.readPcrs();
      expect(asked.at(-1)!.url).toBe('/v1/pcrs');
      answer = { ...(answer as object), pcrs: [{ bank: 'sha256', pcr: 16, value: '00' }, { bank: 'sha256', pcr: 0, value: '00' }] };
      expect(await badResponse(c.readPcrs())).toBe("the TPM service's read-pcrs answer lists sha256 PCR 0 out of selection order");
      answer = { selection: 'x', updateCounter: 1, pcrs: [{ bank: 'sha1', pcr: 0, value: 'zz' }] };
      expect(await badResponse(c.readPcrs())).toBe("the TPM service's read-pcrs answer has no hex value");
    } finally {
      c.close();
    }
  });

  it('quote: nonce bytes sent as hex, bind only when asked; attest and signature decoded; bad base64 refused', async () => {
    const c = client();
    try {
      answer = { ...attest, selection: 'sha256:0', pcrs: [{ bank: 'sha256', pcr: 0, value: '00'.repeat(32) }] };
      const q = await c.quote('0x81010000', { pcrs: 'sha256:0', nonce: new Uint8Array([10, 11]) });
      expect(asked.at(-1)).toEqual({ method: 'POST', url: '/v1/keys/0x81010000/quote', body: { pcrs: 'sha256:0', nonce: '0a0b' } });
      expect(Buffer.from(q.attest).toString('hex')).toBe('ff544347');
      expect(q.nonce).toBe('0a0b');
      await c.quote(0x81010000, { pcrs: 'sha256:0', nonce: '0a0b', bind: true });
      expect(asked.at(-1)!.body).toEqual({ pcrs: 'sha256:0', nonce: '0a0b', bind: true });
      answer = { ...(answer as object), signature: 'not base64!' };
      expect(await badResponse(c.quote(1, { pcrs: 'sha256:0', nonce: '00' }))).toBe("the TPM service's quote answer has no base64 signature");
      answer = { ...attest, selection: 'sha256:0', pcrs: [] };
      expect(await badResponse(c.quote(1, { pcrs: 'sha256:0', nonce: '00' }))).toBe("the TPM service's quote answer has no PCR values");
    } finally {
      c.close();
    }
  });

  it('deviceCertify needs the binding and a PEM; certify its object Name', async () => {
    const c = client();
    try {
      const pem = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
      answer = { ...attest, signer: '0x81000003', object: '0x81010000', objectName: '000b' + '11'.repeat(32), signerPem: pem, signerName: '000b' + '22'.repeat(32), binding: { identity: 'app', label: 'EVE-APP-KEY' } };
      const d = await c.deviceCertify('0x81010000', { nonce: '0a0b' });
      expect(asked.at(-1)).toEqual({ method: 'POST', url: '/v1/keys/0x81010000/device-certify', body: { nonce: '0a0b' } });
      expect(d.binding).toEqual({ identity: 'app', label: 'EVE-APP-KEY' });
      const { binding: _, ...unbound } = answer as Record<string, unknown>;
      answer = unbound;
      expect(await badResponse(c.deviceCertify(1, { nonce: '00' }))).toBe("the TPM service's device-certify answer has no binding");
      answer = { ...unbound, binding: { identity: 'app', label: 'OTHER' } };
      expect(await badResponse(c.deviceCertify(1, { nonce: '00' }))).toBe("the TPM service's device-certify answer has a binding with an unknown label");
      answer = { ...attest, object: '0x81010001', objectName: 'xyz' };
      expect(await badResponse(c.certify(1, { object: 2, nonce: '00' }))).toBe("the TPM service's certify answer has no hex objectName");
      expect(asked.at(-1)!.body).toEqual({ object: '0x00000002', nonce: '00' });
    } finally {
      c.close();
    }
  });

  it('activateCredential sends both parts in base64; EK answers are checked', async () => {
    const c = client();
    try {
      answer = { handle: '0x81010000', secret: b64(1, 2, 3) };
      const s = await c.activateCredential('0x81010000', { credentialBlob: new Uint8Array([0, 1, 5, 6]), secret: new Uint8Array([7]) });
      expect(asked.at(-1)!.body).toEqual({ credentialBlob: b64(0, 1, 5, 6), secret: b64(7) });
      expect([...s]).toEqual([1, 2, 3]);
      answer = { type: 'ecc', index: '0x01C0000A', der: b64(0x30, 3, 1, 1, 0) };
      expect((await c.ekCertificate('ecc')).der[0]).toBe(0x30);
      expect(asked.at(-1)!.url).toBe('/v1/ek/certificate?type=ecc');
      answer = { type: 'ecc', index: '0x01C0000A', der: b64(0, 0) };
      expect(await badResponse(c.ekCertificate('ecc'))).toBe("the TPM service's ek-certificate answer has a der that is not a DER certificate");
      answer = { type: 'dsa', pem: '-----BEGIN PUBLIC KEY-----\n', name: '00', public: b64(1) };
      expect(await badResponse(c.ekPublic())).toBe('the TPM service\'s ek-public answer has key type "dsa"');
      expect(asked.at(-1)!.url).toBe('/v1/ek');
    } finally {
      c.close();
    }
  });
});
