/**
 * The library's own DER (src/tpm/keys/der.ts) against node:crypto's: ECDSA-Sig-Value as
 * openssl writes it (r and s with and without a sign octet) reads back and
 * re-encodes byte for byte; SubjectPublicKeyInfo of RSA and ECC keys equals node's export;
 * anything but the one DER encoding is refused.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DerError, ecdsaSigValue, objectIdentifier, readEcdsaSigValue, subjectPublicKeyInfo, NULL, sequence, unsignedInteger } from '../../src/tpm/keys/der.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));

describe('DER', () => {
  it("reads and re-encodes openssl's ECDSA-Sig-Values byte for byte", () => {
    for (const namedCurve of ['P-256', 'P-384']) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve });
      for (let i = 0; i < 300; i++) {
        const der = new Uint8Array(sign('sha256', Buffer.from([i, i >> 8]), privateKey));
        const { r, s } = readEcdsaSigValue(der);
        expect(r[0] === 0 && r.length > 1).toBe(false); // no sign octet left in the magnitude
        expect(Buffer.from(ecdsaSigValue(r, s)).equals(Buffer.from(der))).toBe(true);
      }
    }
  });

  it('refuses every other encoding', () => {
    const good = hex('3006 020101 020102');
    expect(readEcdsaSigValue(good)).toEqual({ r: Uint8Array.of(1), s: Uint8Array.of(2) });
    const bad: Array<[string, RegExp]> = [
      ['3006 020101 020102 00', /extra octets after/],
      ['3007 020101 020102 00', /extra octets inside/],
      ['308106 020101 020102', /non-minimal length/],
      ['3007 02020001 020102', /non-minimal INTEGER/],
      ['3006 020181 020102', /negative/],
      ['3005 020101 0201', /truncated/],
      ['3005 020101 0200', /empty INTEGER/],
      ['3106 020101 020102', /expected tag 0x30/],
      ['3006 030101 020102', /expected tag 0x2/],
      ['30', /truncated/],
      ['', /expected tag/],
    ];
    for (const [h, why] of bad) expect(() => readEcdsaSigValue(hex(h)), h).toThrow(why);
    expect(() => readEcdsaSigValue(hex('3003 020101'))).toThrow(DerError);
  });

  it('encodes INTEGERs minimally, with a sign octet only before a top bit', () => {
    expect(unsignedInteger(hex('0000 7f'))).toEqual(hex('02017f'));
    expect(unsignedInteger(hex('80'))).toEqual(hex('02020080'));
    expect(unsignedInteger(hex('00'))).toEqual(hex('020100'));
    expect(unsignedInteger(new Uint8Array(0))).toEqual(hex('020100'));
    const long = new Uint8Array(300).fill(0x11);
    expect(unsignedInteger(long).subarray(0, 4)).toEqual(hex('0282012c'));
  });

  it("writes SubjectPublicKeyInfo as node exports it (RSA e=65537 and 3, P-256, P-384)", () => {
    const rsa = (e: number) => generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: e }).publicKey;
    for (const [key, e] of [[rsa(65537), 65537], [rsa(3), 3]] as const) {
      const jwk = key.export({ format: 'jwk' });
      const n = Buffer.from(jwk.n!, 'base64url');
      const exp = Buffer.from(jwk.e!, 'base64url');
      expect(exp.readUIntBE(0, exp.length)).toBe(e);
      const ours = subjectPublicKeyInfo('1.2.840.113549.1.1.1', NULL, sequence(unsignedInteger(n), unsignedInteger(exp)));
      expect(Buffer.from(ours).equals(key.export({ type: 'spki', format: 'der' }))).toBe(true);
    }
    for (const [namedCurve, oid] of [['P-256', '1.2.840.10045.3.1.7'], ['P-384', '1.3.132.0.34']] as const) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve });
      const jwk = publicKey.export({ format: 'jwk' });
      const point = Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
      const ours = subjectPublicKeyInfo('1.2.840.10045.2.1', objectIdentifier(oid), point);
      expect(Buffer.from(ours).equals(publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    }
  });
});
