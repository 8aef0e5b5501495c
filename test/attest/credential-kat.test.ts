/**
 * MakeCredential in software, without a TPM:
 * - known answers: the deterministic part (fixed seed) equals what test/fixtures/credential/kat.sh
 *   computes with openssl commands, and the pinned hex of that script's output;
 * - stock `tpm2_makecredential -T none` to a software key whose private half we hold: its seed
 *   (recovered with that private key) gives, through our code, exactly its credentialBlob; its
 *   file reads and writes back byte for byte;
 * - our makeCredential's encrypted seed decrypts with the private key (RSA-OAEP "IDENTITY";
 *   ECDH + KDFe "IDENTITY") to the seed its blob was made with;
 * - bad inputs and malformed files are clear CredentialErrors.
 */
import { constants, createPublicKey, diffieHellman, generateKeyPairSync, privateDecrypt, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CredentialError,
  TPM_ALG,
  activateCredential,
  credentialBlobFromSeed,
  ekTemplate,
  makeCredential,
  parseIdObject,
  readCredentialFile,
  writeCredentialFile,
  type KeyType,
  type TPMT_PUBLIC,
  type TpmRunner,
} from '../../src/tpm/index.js';
import { kdfe } from '../../src/tpm/session/kdf.js';
import { opensslAvailable, runOk, tpm2ToolsAvailable, workDir } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const KAT_SCRIPT = fileURLToPath(new URL('../fixtures/credential/kat.sh', import.meta.url));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/** Pinned output of kat.sh for the vectors below (regenerate: run the script with these arguments). */
const VECTORS = [
  {
    seed: '11'.repeat(32),
    name: '000b' + '22'.repeat(32),
    secret: hex(Buffer.from('secret')),
    expected: '00208aeb2144d745fa1074fa755393b91090b2ba274e92673cb29ec6aca985818ba0b2ade877f0f48a46',
  },
  {
    seed: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    name: '000b' + 'a5'.repeat(16) + '5a'.repeat(16),
    secret: 'ff'.repeat(32),
    expected: '00204c582394260686ff3693c66a8a3f4054e424e7421dd96f241e8d1626380e298d538f607cdd336b751f1cf09ef819c63dd3792133596abb980e4307b2fe70bf44e9ec',
  },
];

/** A software key with the TCG EK's parameters (nameAlg SHA-256, AES-128-CFB): its public area and private key. */
function softwareEk(type: KeyType): { pub: TPMT_PUBLIC; priv: KeyObject; pem: string } {
  if (type === 'rsa') {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url');
    const t = ekTemplate('rsa');
    if (t.type !== TPM_ALG.RSA) throw new Error('unreachable');
    return { pub: { ...t, unique: new Uint8Array(n) }, priv: privateKey, pem: publicKey.export({ format: 'pem', type: 'spki' }).toString() };
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const t = ekTemplate('ecc');
  if (t.type !== TPM_ALG.ECC) throw new Error('unreachable');
  return {
    pub: { ...t, unique: { x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')) } },
    priv: privateKey,
    pem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** What the EK's TPM does first in ActivateCredential: the seed from the encrypted secret. */
function recoverSeed(ek: { pub: TPMT_PUBLIC; priv: KeyObject }, secret: Uint8Array): Uint8Array {
  if (ek.pub.type === TPM_ALG.RSA) {
    return new Uint8Array(
      privateDecrypt({ key: ek.priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, secret),
    );
  }
  if (ek.pub.type !== TPM_ALG.ECC) throw new Error('unreachable');
  // TPMS_ECC_POINT: x and y, each a TPM2B.
  const dv = new DataView(secret.buffer, secret.byteOffset, secret.byteLength);
  const nx = dv.getUint16(0);
  const x = secret.subarray(2, 2 + nx);
  const ny = dv.getUint16(2 + nx);
  const y = secret.subarray(4 + nx, 4 + nx + ny);
  expect(4 + nx + ny).toBe(secret.length);
  const eph = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: Buffer.from(x).toString('base64url'), y: Buffer.from(y).toString('base64url') }, format: 'jwk' });
  const z = new Uint8Array(diffieHellman({ privateKey: ek.priv, publicKey: eph }));
  return kdfe(TPM_ALG.SHA256, z, 'IDENTITY', x, ek.pub.unique.x, 256);
}

describe('credentialBlobFromSeed: known answers', () => {
  it('equals the pinned output of the openssl fixture script', () => {
    const v = VECTORS[0]!;
    expect(hex(credentialBlobFromSeed(ekTemplate('rsa'), unhex(v.name), unhex(v.secret), unhex(v.seed)))).toBe(v.expected);
  });

  it.skipIf(skipUnlessCI(!opensslAvailable(), 'openssl'))('equals what the openssl commands of kat.sh compute', async () => {
    for (const v of VECTORS) {
      const { stdout } = await runOk('bash', [KAT_SCRIPT, v.seed, v.name, v.secret]);
      const ours = hex(credentialBlobFromSeed(ekTemplate('rsa'), unhex(v.name), unhex(v.secret), unhex(v.seed)));
      expect(ours).toBe(stdout.trim());
      if (v.expected) expect(ours).toBe(v.expected);
      // ECC EK: same nameAlg and symmetric, same blob for the same seed.
      expect(hex(credentialBlobFromSeed(ekTemplate('ecc'), unhex(v.name), unhex(v.secret), unhex(v.seed)))).toBe(ours);
    }
  });

  it('has the TPMS_ID_OBJECT layout', () => {
    const v = VECTORS[0]!;
    const id = parseIdObject(credentialBlobFromSeed(ekTemplate('rsa'), unhex(v.name), unhex(v.secret), unhex(v.seed)));
    expect(id.integrityHMAC.length).toBe(32);
    expect(id.encIdentity.length).toBe(2 + 6);
  });
});

describe.each(['rsa', 'ecc'] as KeyType[])('makeCredential (%s EK, software)', (type) => {
  const ek = softwareEk(type);
  const name = unhex('000b' + '3c'.repeat(32));
  const secret = new Uint8Array(Buffer.from('sixteen byte key'));

  it('encrypts a seed that the EK recovers and that made the blob', () => {
    const cred = makeCredential(ek.pub, name, secret);
    const seed = recoverSeed(ek, cred.secret);
    expect(seed.length).toBe(32);
    expect(hex(credentialBlobFromSeed(ek.pub, name, secret, seed))).toBe(hex(cred.credentialBlob));
  });

  it('uses a fresh seed each time', () => {
    expect(hex(makeCredential(ek.pub, name, secret).credentialBlob)).not.toBe(hex(makeCredential(ek.pub, name, secret).credentialBlob));
  });

  it('writes the file tpm2_makecredential writes, and reads it back', () => {
    const cred = makeCredential(ek.pub, name, secret);
    const file = writeCredentialFile(cred);
    expect(hex(file.subarray(0, 8))).toBe('badcc0de00000001');
    const back = readCredentialFile(file);
    expect(hex(back.credentialBlob)).toBe(hex(cred.credentialBlob));
    expect(hex(back.secret)).toBe(hex(cred.secret));
  });
});

describe.skipIf(skipUnlessCI(!tpm2ToolsAvailable(), 'tpm2-tools'))('stock tpm2_makecredential -T none', () => {
  let dir: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, remove } = await workDir('credential-kat-'));
  });
  afterAll(async () => {
    await remove();
  });

  it.each(['rsa', 'ecc'] as KeyType[])('%s: its blob is ours for its seed, and its file reads and writes back exactly', async (type) => {
    const ek = softwareEk(type);
    const name = '000b' + 'c3'.repeat(32);
    const secret = Buffer.from('0123456789abcdef0123456789abcdef');
    await writeFile(join(dir, `${type}.pem`), ek.pem);
    await writeFile(join(dir, 'secret'), secret);
    await runOk('tpm2_makecredential', ['-T', 'none', '-u', `${type}.pem`, '-G', type, '-s', 'secret', '-n', name, '-o', `${type}.blob`], { cwd: dir });
    const bytes = new Uint8Array(await readFile(join(dir, `${type}.blob`)));
    const cred = readCredentialFile(bytes);
    expect(hex(writeCredentialFile(cred))).toBe(hex(bytes));
    const seed = recoverSeed(ek, cred.secret);
    expect(hex(credentialBlobFromSeed(ek.pub, unhex(name), secret, seed))).toBe(hex(cred.credentialBlob));
  });
});

describe('bad inputs are CredentialErrors', () => {
  const ek = ekTemplate('rsa');
  const name = unhex('000b' + '00'.repeat(32));
  const seed = new Uint8Array(32);

  it.each([
    ['an empty secret', () => makeCredential(ek, name, new Uint8Array(0)), /secret: empty/],
    ['a secret longer than the digest', () => makeCredential(ek, name, new Uint8Array(33)), /at most 32/],
    ['a short name', () => makeCredential(ek, unhex('000b'), new Uint8Array(1)), /0 digest octets/],
    ['a name of an unknown algorithm', () => makeCredential(ek, unhex('1234' + '00'.repeat(32)), new Uint8Array(1)), /not a hash we know/],
    ['a name with a digest of the wrong size', () => makeCredential(ek, unhex('000b' + '00'.repeat(20)), new Uint8Array(1)), /expected 32/],
    ['a seed of the wrong size', () => credentialBlobFromSeed(ek, name, new Uint8Array(1), new Uint8Array(16)), /seed: expected 32/],
    ['a signing key as EK', () => makeCredential({ ...ek, parameters: { ...ek.parameters, symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null } } } as TPMT_PUBLIC, name, new Uint8Array(1)), /not AES-CFB/],
    ['a keyedhash key as EK', () => credentialBlobFromSeed({ ...ek, type: TPM_ALG.KEYEDHASH } as unknown as TPMT_PUBLIC, name, new Uint8Array(1), seed), /RSA or ECC only/],
  ])('%s', (_what, f, message) => {
    expect(f).toThrow(CredentialError);
    expect(f).toThrow(message);
  });

  it.each([
    ['too short', unhex('badcc0de'), /too short/],
    ['a wrong magic', unhex('badcc0df00000001'), /magic 0xbadcc0df/],
    ['a wrong version', unhex('badcc0de00000002'), /version 2/],
    ['no secret', unhex('badcc0de00000001' + '0004' + '0001aa' + '00'), /truncated/],
    ['an empty integrity HMAC', unhex('badcc0de00000001' + '0004' + '0000aaaa' + '0001ff'), /integrityHMAC of 0 octets/],
    ['trailing octets', unhex('badcc0de00000001' + '0005' + '0001aa' + 'bbbb' + '0001ff' + '00'), /1 trailing octets/],
  ])('a credential file with %s', (_what, bytes, message) => {
    expect(() => readCredentialFile(bytes)).toThrow(CredentialError);
    expect(() => readCredentialFile(bytes)).toThrow(message);
  });
});

it('an EK public area that is no usable key is a CredentialError', () => {
  const ek = ekTemplate('rsa'); // all-zero modulus
  expect(() => makeCredential(ek, unhex('000b' + '00'.repeat(32)), new Uint8Array(1))).toThrow(/EK public area: cannot encrypt a seed/);
});

describe('activateCredential refuses bad input before the TPM is asked', () => {
  const tpm = {
    connection: {},
    run: () => Promise.reject(new Error('the TPM must not be asked')),
    runWithAuths: () => Promise.reject(new Error('the TPM must not be asked')),
  } as unknown as TpmRunner;
  const blob = unhex('0020' + '00'.repeat(32) + '0001aa');

  it.each([
    ['a blob without encIdentity', { key: 0x81000000, credentialBlob: unhex('0002aaaa'), secret: new Uint8Array(1) }, CredentialError, /no encIdentity/],
    ['an empty secret', { key: 0x81000000, credentialBlob: blob, secret: new Uint8Array(0) }, CredentialError, /secret: expected the encrypted seed/],
    ['a blob that is no bytes', { key: 0x81000000, credentialBlob: 'x', secret: new Uint8Array(1) }, CredentialError, /credentialBlob: expected bytes/],
    ['an unknown EK type', { key: 0x81000000, ek: 'RSA', credentialBlob: blob, secret: new Uint8Array(1) }, TypeError, /unknown key type "RSA"/],
    ['a key that is neither blobs nor a handle', { key: 'ak', credentialBlob: blob, secret: new Uint8Array(1) }, TypeError, /key must be key blobs/],
  ])('%s', async (_what, input, type, message) => {
    const err = await activateCredential(tpm, input as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(type);
    expect(String((err as Error).message)).toMatch(message);
  });
});
