/**
 * Known answers for the session crypto (KDFa, KDFe, AES-CFB and XOR parameter encryption).
 * The expected values in test/fixtures/sessions/kat.json were computed by openssl 3 (KBKDF,
 * SSKDF, `openssl enc -aes-N-cfb`), not by this code: scripts/session-kat.mjs regenerates them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kdfa, kdfe } from '../../src/tpm/session/kdf.js';
import { paramCrypt, type SessionCipher } from '../../src/tpm/session/param-crypt.js';
import type { TpmiAlgHash } from '../../src/tpm/structures.js';

interface Kat {
  kdfa: { hash: string; hashAlg: number; key: string; label: string; contextU: string; contextV: string; bits: number; expected: string }[];
  kdfe: { hash: string; hashAlg: number; z: string; label: string; partyU: string; partyV: string; bits: number; expected: string }[];
  paramCrypt: { name: string; alg: 'aes' | 'xor'; keyBits: number; authHash: number; sessionValue: string; nonceNewer: string; nonceOlder: string; plaintext: string; ciphertext: string }[];
}

const kat = JSON.parse(readFileSync(new URL('../fixtures/sessions/kat.json', import.meta.url), 'utf8')) as Kat;
const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('session crypto known answers (computed by openssl)', () => {
  it('the fixture has cases of every kind', () => {
    expect(kat.kdfa.length).toBeGreaterThanOrEqual(5);
    expect(kat.kdfe.length).toBeGreaterThanOrEqual(2);
    expect(kat.paramCrypt.map((c) => c.alg).sort()).toEqual(['aes', 'aes', 'aes', 'xor']);
  });

  it.each(kat.kdfa.map((c) => [`${c.hash} ${c.label} ${c.bits} bits`, c] as const))('KDFa %s', (_, c) => {
    expect(hex(kdfa(c.hashAlg, h(c.key), c.label, h(c.contextU), h(c.contextV), c.bits))).toBe(c.expected);
  });

  it.each(kat.kdfe.map((c) => [`${c.hash} ${c.bits} bits`, c] as const))('KDFe %s', (_, c) => {
    expect(hex(kdfe(c.hashAlg, h(c.z), c.label, h(c.partyU), h(c.partyV), c.bits))).toBe(c.expected);
  });

  it.each(kat.paramCrypt.map((c) => [c.name, c] as const))('parameter encryption: %s', (_, c) => {
    const cipher: SessionCipher = c.alg === 'xor' ? { alg: 'xor', hashAlg: c.authHash as TpmiAlgHash } : { alg: 'aes', keyBits: c.keyBits as 128 | 256 };
    const args = [cipher, c.authHash, h(c.sessionValue), h(c.nonceNewer), h(c.nonceOlder)] as const;
    expect(hex(paramCrypt(...args, h(c.plaintext), true))).toBe(c.ciphertext);
    expect(hex(paramCrypt(...args, h(c.ciphertext), false))).toBe(c.plaintext);
  });

  it('KDFa refuses a zero or fractional output size', () => {
    expect(() => kdfa(0x000b, new Uint8Array(1), 'ATH', new Uint8Array(0), new Uint8Array(0), 0)).toThrow(/0 bits is not a valid output size/);
  });
});
