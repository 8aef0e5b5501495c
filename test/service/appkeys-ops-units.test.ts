/**
 * The general keys' operations without a TPM: which key may do what (each refusal's sentence,
 * an AK read from an entry without kind as the registry does), and the peer key of ECDH taken
 * only as a PEM public EC key on the key's curve.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parsePeerPem, refusal, type GeneralOp } from '../../src/service/keys/general-ops.js';
import type { KeyEntry } from '../../src/service/keys/registry.js';
import { ServiceError } from '../../src/service/protocol/errors.js';

const base: KeyEntry = { handle: 0x81010000, owner: 'u1', tenant: 'app1', type: 'rsa', hashAlg: 'sha256', name: '000b', createdAt: '', state: 'committed', store: 'blobs' };
const entry = (e: Partial<KeyEntry>): KeyEntry => ({ ...base, ...e });

describe('refusal: what each kind and usage of key may do', () => {
  const keys: Record<string, KeyEntry> = {
    'rsa AK': entry({}),
    'ecc AK': entry({ type: 'ecc' }),
    'rsassa': entry({ kind: 'general', usage: 'sign', scheme: 'rsassa', bits: 2048 }),
    'rsapss': entry({ kind: 'general', usage: 'sign', scheme: 'rsapss', bits: 3072 }),
    'ecdsa': entry({ type: 'ecc', kind: 'general', usage: 'sign', scheme: 'ecdsa', curve: 'P-384' }),
    'oaep': entry({ kind: 'general', usage: 'decrypt', scheme: 'oaep', bits: 2048 }),
    'ecdh': entry({ type: 'ecc', kind: 'general', usage: 'decrypt', scheme: 'ecdh', curve: 'P-256' }),
  };
  const allowed: Record<GeneralOp, string[]> = { 'sign-digest': ['rsassa', 'rsapss', 'ecdsa'], decrypt: ['oaep'], ecdh: ['ecdh'] };

  for (const op of ['sign-digest', 'decrypt', 'ecdh'] as const) {
    it(`${op}: only ${allowed[op].join(', ')}`, () => {
      for (const [label, e] of Object.entries(keys)) {
        const why = refusal(e, op);
        if (allowed[op].includes(label)) expect(why, label).toBeUndefined();
        else expect(why, `${op} with ${label}`).toMatch(/^key 0x81010000 is /);
      }
    });
  }

  it('says why, in the words of docs/API.md', () => {
    expect(refusal(keys['rsa AK']!, 'sign-digest')).toMatch(/an attestation key signs only what the TPM hashed; send the message/);
    expect(refusal(keys.oaep!, 'sign-digest')).toBe('key 0x81010000 is a decrypt key (oaep): it cannot sign');
    expect(refusal(keys.rsassa!, 'decrypt')).toBe('key 0x81010000 is a signing key (rsassa): it cannot decrypt');
    expect(refusal(keys.ecdh!, 'decrypt')).toMatch(/use ecdh$/);
    expect(refusal(keys.oaep!, 'ecdh')).toMatch(/RSA key: ECDH needs an ECC decrypt key \(scheme ecdh\); use decrypt$/);
    expect(refusal(keys.ecdsa!, 'ecdh')).toMatch(/signing key \(ecdsa\): it cannot agree on a secret/);
    expect(refusal(keys['ecc AK']!, 'ecdh')).toMatch(/signing key \(ecdsa\)/);
  });
});

describe('parsePeerPem: a PEM public EC key on the key\'s curve, or a 400', () => {
  const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve });
  const p256 = ec('P-256');
  const pem = p256.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const status = (f: () => unknown): number | undefined => {
    try {
      f();
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(ServiceError);
      return (e as ServiceError).status;
    }
  };

  it('takes a P-256 SPKI for a P-256 key (also with CRLF line ends)', () => {
    expect(parsePeerPem(pem, 'P-256').asymmetricKeyType).toBe('ec');
    expect(parsePeerPem(pem.replace(/\n/g, '\r\n'), 'P-256').asymmetricKeyType).toBe('ec');
  });

  it('refuses another curve, an RSA key, a private key, DER, damaged PEM, text', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const cases: Array<[string, string, RegExp]> = [
      ['P-384 for a P-256 key', pem, /peer is on P-256; this key is on P-384/],
      ['RSA', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string, /peer is a rsa key/],
      ['a private key', p256.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, /must be a PEM public key/],
      ['base64 DER only', (p256.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'), /must be a PEM public key/],
      ['damaged', pem.replace(/[A-Za-z]{8}/, 'AAAAAAAA'), /not a valid public key/],
      ['text', 'hello', /must be a PEM public key/],
      ['empty', '', /must be a PEM public key/],
    ];
    for (const [label, text, why] of cases) {
      const curve = label.startsWith('P-384') ? 'P-384' : 'P-256';
      expect(status(() => parsePeerPem(text, curve)), label).toBe(400);
      expect(() => parsePeerPem(text, curve), label).toThrow(why);
    }
  });
});
