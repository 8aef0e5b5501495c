/**
 * Decode checks on real TPM responses, with openssl as the independent reader:
 * - the PEM from readPublic → publicToPem is what openssl sees: same RSA modulus and exponent /
 *   same EC point and curve, and openssl re-encodes it to the very same PEM and DER;
 * - objectName(publicArea) equals the Name the TPM itself reports (ReadPublic, Load,
 *   CreatePrimary), for AKs and EKs;
 * - an ECDSA 'plain' signature is a DER SEQUENCE of r and s as openssl parses it.
 */
import { createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TPM_ALG,
  Tpm,
  createAk,
  createTransientEk,
  evictPersistent,
  flush,
  formatSignature,
  loadKey,
  objectName,
  persistKey,
  publicToPem,
  publicToSpkiDer,
  readPublic,
  signMessage,
  type CreatedKey,
  type KeyType,
  type TPMT_PUBLIC,
} from '../../src/tpm/index.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { opensslAvailable, opensslPublicKey, opensslVerify, runOk, workDir } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const HANDLE: Record<KeyType, number> = { rsa: 0x81010000, ecc: 0x81010010 };
const KEY_TYPES: KeyType[] = ['rsa', 'ecc'];

/** What openssl must show for a public area: RSA modulus (no leading zeros) or 04‖x‖y. */
function expectedKey(pub: TPMT_PUBLIC): Buffer {
  if (pub.type === TPM_ALG.RSA) {
    let m = Buffer.from(pub.unique);
    while (m[0] === 0) m = m.subarray(1);
    return m;
  }
  if (pub.type !== TPM_ALG.ECC) throw new Error(`not an RSA or ECC key: type 0x${pub.type.toString(16)}`);
  const { x, y } = pub.unique;
  const pad = (b: Uint8Array): Buffer => Buffer.concat([Buffer.alloc(32 - b.length), b]);
  return Buffer.concat([Buffer.of(4), pad(x), pad(y)]);
}

describe.skipIf(skipUnlessCI(!swtpmAvailable() || !opensslAvailable()))('decode checks: real TPM responses vs openssl', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  let dir: string;
  let removeDir: () => Promise<void>;
  const keys = {} as Record<KeyType, CreatedKey>;

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = new Tpm(sw.transport());
    ({ dir, remove: removeDir } = await workDir('tpm-openssl-'));
  });

  afterAll(async () => {
    for (const h of Object.values(HANDLE)) await evictPersistent(tpm, h).catch(() => {});
    await sw?.stop();
    await removeDir?.();
  });

  afterEach(async () => {
    await expectNothingLoaded(tpm);
  });

  it.each(KEY_TYPES)('%s AK: the Name computed from the public area is the Name the TPM reports', async (type) => {
    const k = await createAk(tpm, type);
    keys[type] = k;
    await persistKey(tpm, k, HANDLE[type]);
    const info = await readPublic(tpm, HANDLE[type]);
    expect(hex(objectName(info.publicArea))).toBe(hex(info.name)); // ReadPublic's Name
    expect(hex(info.name)).toBe(hex(k.name));
    const loaded = await loadKey(tpm, k);
    await flush(tpm, loaded.handle);
    expect(hex(loaded.name)).toBe(hex(info.name)); // Load's Name
    expect(info.name.length).toBe(34);
    expect(Buffer.from(info.name).readUInt16BE(0)).toBe(TPM_ALG.SHA256);
    // A qualified Name is also nameAlg ‖ digest, and differs from the Name (parent's Name mixed in).
    expect(info.qualifiedName.length).toBe(34);
    expect(hex(info.qualifiedName)).not.toBe(hex(info.name));
  });

  it.each(KEY_TYPES)('%s EK: CreatePrimary\'s Name is objectName(outPublic) = ReadPublic\'s', async (type) => {
    const ek = await createTransientEk(tpm, type);
    try {
      const info = await readPublic(tpm, ek.handle);
      expect(hex(objectName(info.publicArea))).toBe(hex(ek.name));
      expect(hex(info.name)).toBe(hex(ek.name));
      // and openssl reads its PEM too
      await writeFile(join(dir, `ek-${type}.pem`), publicToPem(info.publicArea));
      const o = await opensslPublicKey(dir, `ek-${type}.pem`);
      expect(o.key.toString('hex')).toBe(expectedKey(info.publicArea).toString('hex'));
    } finally {
      await flush(tpm, ek.handle);
    }
  });

  it.each(KEY_TYPES)('%s AK: openssl pkey -text shows the key of the public area', async (type) => {
    const info = await readPublic(tpm, HANDLE[type]);
    const pem = publicToPem(info.publicArea);
    await writeFile(join(dir, `${type}.pem`), pem);
    const o = await opensslPublicKey(dir, `${type}.pem`);
    expect(o.key.toString('hex')).toBe(expectedKey(info.publicArea).toString('hex'));
    if (type === 'rsa') {
      expect(o.bits).toBe(2048);
      expect(o.exponent).toBe(65537); // the public area says 0: the default exponent
      const pub = info.publicArea;
      expect(pub.type === TPM_ALG.RSA ? pub.parameters.exponent : 'not RSA').toBe(0);
      expect(o.key.length).toBe(256);
    } else {
      expect(o.bits).toBe(256);
      expect(o.curve).toBe('prime256v1');
      expect(o.key.length).toBe(65);
    }
    // node agrees with openssl's reading
    const jwk = createPublicKey(pem).export({ format: 'jwk' });
    if (type === 'rsa') expect(Buffer.from(jwk.n!, 'base64url').toString('hex')).toBe(o.key.toString('hex'));
    else expect(Buffer.concat([Buffer.of(4), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]).toString('hex')).toBe(o.key.toString('hex'));
  });

  it.each(KEY_TYPES)('%s AK: openssl re-encodes our PEM and DER byte for byte', async (type) => {
    const info = await readPublic(tpm, HANDLE[type]);
    const pem = publicToPem(info.publicArea);
    const { stdout } = await runOk('openssl', ['pkey', '-pubin', '-in', `${type}.pem`, '-pubout'], { cwd: dir });
    expect(stdout).toBe(pem);
    await runOk('openssl', ['pkey', '-pubin', '-in', `${type}.pem`, '-outform', 'DER', '-out', `${type}.der`], { cwd: dir });
    expect(hex(await readFile(join(dir, `${type}.der`)))).toBe(hex(publicToSpkiDer(info.publicArea)));
  });

  it('ECDSA plain signature: openssl asn1parse sees SEQUENCE { INTEGER r, INTEGER s }', async () => {
    // Sign several messages: some r or s will have the top bit set (DER then needs a 00 byte).
    for (let i = 0; i < 8; i++) {
      const msg = new TextEncoder().encode(`message ${i}`);
      const sig = await signMessage(tpm, HANDLE.ecc, msg);
      if (sig.sigAlg !== TPM_ALG.ECDSA) throw new Error(`expected an ECDSA signature, got 0x${sig.sigAlg.toString(16)}`);
      const { signatureR: r, signatureS: s } = sig.signature;
      const plain = formatSignature(sig, 'plain');
      await writeFile(join(dir, 'ecdsa.sig'), plain);
      await writeFile(join(dir, 'ecdsa.msg'), msg);
      const { stdout } = await runOk('openssl', ['asn1parse', '-inform', 'DER', '-in', 'ecdsa.sig'], { cwd: dir });
      const ints = [...stdout.matchAll(/INTEGER\s+:([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase());
      const strip = (b: Uint8Array): string => BigInt(`0x${hex(b)}`).toString(16);
      expect(ints.map((x) => BigInt(`0x${x}`).toString(16))).toEqual([strip(r), strip(s)]);
      expect(/SEQUENCE/.test(stdout)).toBe(true);
      expect((await opensslVerify(dir, 'ecc.pem', 'ecdsa.sig', 'ecdsa.msg')).ok).toBe(true);
    }
  });
});
