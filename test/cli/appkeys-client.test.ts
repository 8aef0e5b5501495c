/**
 * The client's app-key methods over a real socket against a scripted peer: the bodies they send
 * (createKey's new members only when given, signDigest, decrypt, ecdh), the answers they accept,
 * and an older service's key summaries (no kind/usage/scheme) read as AKs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceClient } from '../../src/service/client/client.js';

interface Seen {
  method: string;
  url: string;
  body: unknown;
}

const dir = mkdtempSync(join(tmpdir(), 'appkeys-client-'));
const sock = join(dir, 's.sock');
const seen: Seen[] = [];
/** The next answers, by "METHOD path". */
const answers = new Map<string, unknown>();
let server: Server;
let client: ServiceClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, body: text ? JSON.parse(text) : undefined });
      const a = answers.get(`${req.method} ${req.url}`);
      res.writeHead(a === undefined ? 404 : req.method === 'POST' && req.url === '/v1/keys' ? 201 : 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(a ?? { error: { code: 'NOT_FOUND', message: 'no such route' } }));
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  client = new ServiceClient({ address: `unix:${sock}` });
});

afterAll(async () => {
  client?.close();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const OLD_AK = { handle: '0x81010000', type: 'ecc', hashAlg: 'sha256', name: '000b00', createdAt: '2025-01-01T00:00:00.000Z' };
const GENERAL = { handle: '0x81010001', type: 'rsa', hashAlg: 'sha256', kind: 'general', usage: 'decrypt', scheme: 'oaep', bits: 3072, name: '000b01', createdAt: '2025-01-01T00:00:00.000Z' };

describe('key summaries', () => {
  it("an older service's keys (no kind, usage, scheme) are AKs", async () => {
    answers.set('GET /v1/keys', { keys: [OLD_AK, GENERAL] });
    const keys = await client.listKeys();
    expect(keys[0]).toEqual({ ...OLD_AK, kind: 'ak', usage: 'sign', scheme: 'ecdsa' });
    expect(keys[1]).toEqual(GENERAL);
    answers.set('GET /v1/keys/0x81010000', { ...OLD_AK, type: 'rsa', pem: 'PEM' });
    expect(await client.getKey(0x81010000)).toMatchObject({ kind: 'ak', usage: 'sign', scheme: 'rsassa', pem: 'PEM' });
  });
  it('a kind, usage or scheme outside the vocabulary is BAD_RESPONSE', async () => {
    answers.set('GET /v1/keys', { keys: [{ ...GENERAL, usage: 'wrap' }] });
    await expect(client.listKeys()).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: 'the TPM service\'s list-keys answer has key usage "wrap"' });
    answers.set('GET /v1/keys', { keys: 'none' });
    await expect(client.listKeys()).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
  });
  it('createKey sends only the members given', async () => {
    answers.set('POST /v1/keys', { ...GENERAL, pem: 'PEM' });
    seen.length = 0;
    await client.createKey({ type: 'rsa' });
    await client.createKey({ type: 'rsa', kind: 'general', usage: 'decrypt', scheme: 'oaep', bits: 3072, hashAlg: 'sha256' });
    expect(seen.map((s) => s.body)).toEqual([{ type: 'rsa' }, { type: 'rsa', hashAlg: 'sha256', kind: 'general', usage: 'decrypt', scheme: 'oaep', bits: 3072 }]);
  });
});

describe('operations', () => {
  it('signDigest sends the digest inline and decodes the signature', async () => {
    answers.set('POST /v1/keys/0x81010001/sign', { handle: '0x81010001', sigAlg: 'rsapss', hashAlg: 'sha256', format: 'plain', signature: 'AQID', digest: 'aa', messageLength: 0 });
    seen.length = 0;
    const r = await client.signDigest('0x81010001', { digest: new Uint8Array(32).fill(1), hashAlg: 'sha256' });
    expect(r.signature).toEqual(new Uint8Array([1, 2, 3]));
    expect(seen[0]).toEqual({ method: 'POST', url: '/v1/keys/0x81010001/sign', body: { digest: Buffer.alloc(32, 1).toString('base64'), hashAlg: 'sha256' } });
  });
  it('decrypt: ciphertext and label in, plaintext (even empty) out', async () => {
    answers.set('POST /v1/keys/0x81010001/decrypt', { handle: '0x81010001', plaintext: '' });
    seen.length = 0;
    expect(await client.decrypt(0x81010001, { ciphertext: new Uint8Array([9]), label: 'L' })).toEqual(new Uint8Array(0));
    expect(seen[0]!.body).toEqual({ ciphertext: 'CQ==', label: 'L' });
    answers.set('POST /v1/keys/0x81010001/decrypt', { handle: '0x81010001', plaintext: 'not base64!' });
    await expect(client.decrypt(0x81010001, { ciphertext: new Uint8Array([9]) })).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
  });
  it('ecdh: the peer PEM in, Z out; an empty Z is BAD_RESPONSE', async () => {
    answers.set('POST /v1/keys/0x81010002/ecdh', { handle: '0x81010002', z: Buffer.alloc(32, 7).toString('base64') });
    seen.length = 0;
    expect(await client.ecdh('0x81010002', { peer: 'PEM' })).toEqual(new Uint8Array(32).fill(7));
    expect(seen[0]!.body).toEqual({ peer: 'PEM' });
    answers.set('POST /v1/keys/0x81010002/ecdh', { handle: '0x81010002', z: '' });
    await expect(client.ecdh('0x81010002', { peer: 'PEM' })).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: "the TPM service's ecdh answer has an empty z" });
  });
});
