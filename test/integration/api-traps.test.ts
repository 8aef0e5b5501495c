/**
 * The library's API traps (issue 10, item 6), each pinned by a test that failed before the fix:
 * key types refused unless known; signMessage hashing with the key's own hash; TPM_GENERATED_VALUE
 * refused from the first 4 bytes; other NULL tickets reported as what they are; `raw` ECDSA
 * signatures always two whole coordinates; a persisted EK must be a primary of the endorsement
 * hierarchy (qualified name); an endorsement password option; streamed software verification.
 */
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CreatePrimary,
  EK_PERSISTENT_HANDLES,
  KeyFormatError,
  RestrictedSignError,
  TPM_ALG,
  TPM_ECC,
  TPM_RH,
  Tpm,
  TpmError,
  akEccTemplate,
  akTemplate,
  createAk,
  ekTemplate,
  evictPersistent,
  findPersistedEk,
  formatSignature,
  makePersistent,
  passwordAuth,
  readPublic,
  flush,
  signMessage,
  verifyMessageSignature,
  withLoadedKey,
  type CreatedKey,
  type KeyType,
  type TPMT_SIGNATURE,
} from '../../src/tpm/index.js';
import { primaryQualifiedName } from '../../src/tpm/ops/ek.js';
import { expectNothingLoaded } from '../helpers/hygiene.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';
import { HierarchyChangeAuth } from '../helpers/hierarchy.js';
import { messageBytes, messageChunks } from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const HASHING = new Set(['Hash', 'HashSequenceStart', 'SequenceUpdate', 'SequenceComplete']);

function ecdsa(r: number, s: number): TPMT_SIGNATURE {
  return {
    sigAlg: TPM_ALG.ECDSA,
    signature: { hash: TPM_ALG.SHA256, signatureR: new Uint8Array(r).fill(0x11), signatureS: new Uint8Array(s).fill(0x22) },
  } as TPMT_SIGNATURE;
}

describe('formatSignature raw: always two whole coordinates', () => {
  it.each([
    ['short r (P-256)', 31, 32, 64],
    ['short r and s (P-256)', 31, 30, 64],
    ['short r and s (P-384)', 47, 46, 96],
    ['P-521, both without their top zero byte', 65, 65, 132],
    ['whole (P-256)', 32, 32, 64],
  ] as const)('%s', (_, r, s, length) => {
    const raw = formatSignature(ecdsa(r, s), 'raw');
    expect(raw.length).toBe(length);
    // right-aligned: the leading bytes are zero padding, the value ends each half
    const half = length / 2;
    expect(raw[half - 1]).toBe(0x11);
    expect(raw[length - 1]).toBe(0x22);
    expect(raw.subarray(0, half - r).every((b) => b === 0)).toBe(true);
  });

  it('the size comes from a key public area or a number when given', () => {
    const p256 = akEccTemplate();
    const p384 = { ...p256, parameters: { ...p256.parameters, curveID: TPM_ECC.NIST_P384 } };
    expect(formatSignature(ecdsa(31, 31), 'raw', p384).length).toBe(96);
    expect(formatSignature(ecdsa(31, 31), 'raw', 48).length).toBe(96);
    expect(() => formatSignature(ecdsa(31, 31), 'raw', akTemplate('rsa'))).toThrow(KeyFormatError);
    expect(() => formatSignature(ecdsa(33, 31), 'raw', 32)).toThrow(KeyFormatError);
  });
});

describe('key types', () => {
  it.each(['RSA', 'ECC', 'ec', '', 'rsa '])('%j is refused before the TPM is asked', async (type) => {
    const never = new Tpm({
      send: () => Promise.reject(new Error('the TPM must not be asked')),
      close: () => Promise.resolve(),
    } as unknown as ConstructorParameters<typeof Tpm>[0]);
    await expect(createAk(never, type as KeyType)).rejects.toThrow(TypeError);
    await expect(createAk(never, 'rsa', { ekType: type as KeyType })).rejects.toThrow(TypeError);
    expect(() => akTemplate(type as KeyType)).toThrow(/unknown key type/);
    expect(() => ekTemplate(type as KeyType)).toThrow(TypeError);
  });
});

describe.skipIf(skipUnlessCI(!swtpmAvailable()))('API traps against swtpm', () => {
  let sw: SwtpmInstance;
  let tpm: Tpm;
  const sent: string[] = [];
  const keys = {} as Record<'ecc384' | 'rsa', CreatedKey>;

  beforeAll(async () => {
    sw = await startSwtpm();
    tpm = new Tpm(sw.transport(), { onExchange: (e) => sent.push(e.command) });
    keys.ecc384 = await createAk(tpm, 'ecc', { hashAlg: TPM_ALG.SHA384 });
    keys.rsa = await createAk(tpm, 'rsa');
  }, 60_000);

  afterAll(async () => {
    await sw?.stop();
  });

  afterEach(async () => {
    await expectNothingLoaded(tpm);
  });

  it.each([
    ['small', 100],
    ['streamed', 5000],
  ] as const)('signMessage signs with a SHA-384 key without being told the hash (%s message)', async (_, size) => {
    const msg = messageBytes(size, 3);
    const sig = await withLoadedKey(tpm, keys.ecc384, (h) => signMessage(tpm, h, Readable.from([msg])));
    expect(sig.sigAlg === TPM_ALG.NULL ? undefined : sig.signature.hash).toBe(TPM_ALG.SHA384);
    expect(verifyMessageSignature(keys.ecc384.publicArea, msg, sig)).toBe(true);
    // given the public area, no ReadPublic is needed
    const sig2 = await withLoadedKey(tpm, keys.ecc384, (h) => {
      sent.length = 0; // the EK look-up reads public areas too: count only signMessage's
      return signMessage(tpm, h, msg, { publicArea: keys.ecc384.publicArea });
    });
    expect(verifyMessageSignature(keys.ecc384.publicArea, msg, sig2)).toBe(true);
    expect(sent).not.toContain('ReadPublic');
  });

  it('a hash that disagrees with the key is a clear error before anything is hashed', async () => {
    sent.length = 0;
    const e = await withLoadedKey(tpm, keys.ecc384, (h) => signMessage(tpm, h, messageBytes(3000, 1), { hashAlg: TPM_ALG.SHA256 })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RestrictedSignError);
    expect((e as Error).message).toMatch(/SHA384.*SHA256/);
    expect(sent.filter((c) => HASHING.has(c))).toEqual([]);
  });

  it('TPM_GENERATED_VALUE is refused from the first 4 bytes: the rest is neither read nor sent', async () => {
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      const first = messageBytes(4096, 7);
      first.set([0xff, 0x54, 0x43, 0x47], 0);
      pulled++;
      yield first.subarray(0, 2); // the prefix split across pieces
      pulled++;
      yield first.subarray(2);
      for (const c of messageChunks(1024 * 1024, 8)) {
        pulled++;
        yield c;
      }
    }
    sent.length = 0;
    const e = await withLoadedKey(tpm, keys.rsa, (h) => signMessage(tpm, h, source())).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RestrictedSignError);
    expect((e as Error).message).toMatch(/TPM_GENERATED_VALUE/);
    expect(pulled).toBe(2);
    expect(sent.filter((c) => HASHING.has(c))).toEqual([]);
  });

  it('a NULL ticket for another cause is reported as that cause', async () => {
    const e = await withLoadedKey(tpm, keys.rsa, (h) => signMessage(tpm, h, messageBytes(100, 2), { hierarchy: TPM_RH.NULL })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RestrictedSignError);
    expect((e as Error).message).toMatch(/TPM_RH_NULL/);
    expect((e as Error).message).not.toMatch(/TPM_GENERATED_VALUE/);
  });

  it('verifyMessageSignature takes a stream or an async iterable', async () => {
    const size = 200_000;
    const sig = await withLoadedKey(tpm, keys.rsa, (h) => signMessage(tpm, h, Readable.from(messageChunks(size, 4))));
    await expect(verifyMessageSignature(keys.rsa.publicArea, Readable.from(messageChunks(size, 4)), sig)).resolves.toBe(true);
    async function* gen(): AsyncGenerator<Uint8Array> {
      yield* messageChunks(size, 4);
    }
    await expect(verifyMessageSignature(keys.rsa.publicArea, gen(), sig)).resolves.toBe(true);
    await expect(verifyMessageSignature(keys.rsa.publicArea, Readable.from(messageChunks(size, 5)), sig)).resolves.toBe(false);
    expect(verifyMessageSignature(keys.rsa.publicArea, messageBytes(size, 4), sig)).toBe(true);
  });

  it('a persisted EK look-alike outside the endorsement hierarchy is not taken for the EK', async () => {
    const slot = EK_PERSISTENT_HANDLES.rsa[0]!;
    const make = async (hierarchy: number): Promise<void> => {
      const r = await tpm.run(CreatePrimary, {
        primaryHandle: hierarchy,
        inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
        inPublic: ekTemplate('rsa'),
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      });
      try {
        await makePersistent(tpm, r.objectHandle, slot);
      } finally {
        await flush(tpm, r.objectHandle);
      }
    };
    await make(TPM_RH.OWNER);
    try {
      expect(await findPersistedEk(tpm, 'rsa', [slot])).toBeUndefined();
      // the TPM's own qualified name is the oracle of the computation
      const info = await readPublic(tpm, slot);
      expect(Buffer.from(primaryQualifiedName(TPM_RH.OWNER, info.name)!)).toEqual(Buffer.from(info.qualifiedName));
      // an AK is still made, under the real (transient) EK: loadable without the look-alike
      const ak = await createAk(tpm, 'rsa', { ekHandles: [slot] });
      await evictPersistent(tpm, slot);
      await withLoadedKey(tpm, ak, async () => undefined, { ekHandles: [] });
      await make(TPM_RH.ENDORSEMENT);
      const ek = await findPersistedEk(tpm, 'rsa', [slot]);
      expect(ek?.handle).toBe(slot);
      expect(Buffer.from(primaryQualifiedName(TPM_RH.ENDORSEMENT, ek!.name)!)).toEqual(Buffer.from((await readPublic(tpm, slot)).qualifiedName));
    } finally {
      await evictPersistent(tpm, slot).catch(() => undefined);
    }
  });

  it.each([
    ['transient EK (CreatePrimary)', false],
    ['persisted EK (PolicySecret only)', true],
  ] as const)('an endorsement password: createAk and loading work with it, %s', async (_, persisted) => {
    const slot = EK_PERSISTENT_HANDLES.rsa[0]!;
    const password = 'endorse-me';
    await tpm.run(HierarchyChangeAuth, { authHandle: TPM_RH.ENDORSEMENT, newAuth: new TextEncoder().encode(password) });
    try {
      if (persisted) {
        const r = await tpm.run(
          CreatePrimary,
          {
            primaryHandle: TPM_RH.ENDORSEMENT,
            inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
            inPublic: ekTemplate('rsa'),
            outsideInfo: new Uint8Array(0),
            creationPCR: [],
          },
          { auth: { primaryHandle: passwordAuth(new TextEncoder().encode(password)) } },
        );
        await makePersistent(tpm, r.objectHandle, slot).finally(() => flush(tpm, r.objectHandle));
      }
      const opts = { ekHandles: [slot] };
      await expect(createAk(tpm, 'ecc', opts)).rejects.toBeInstanceOf(TpmError);
      await expectNothingLoaded(tpm, 'createAk without the password');
      const ak = await createAk(tpm, 'ecc', { ...opts, endorsementAuth: password });
      const msg = messageBytes(64, 9);
      const sig = await withLoadedKey(tpm, ak, (h) => signMessage(tpm, h, msg), { ...opts, endorsementAuth: new TextEncoder().encode(password) });
      expect(verifyMessageSignature(ak.publicArea, msg, sig)).toBe(true);
    } finally {
      await evictPersistent(tpm, slot).catch(() => undefined);
      await tpm.run(
        HierarchyChangeAuth,
        { authHandle: TPM_RH.ENDORSEMENT, newAuth: new Uint8Array(0) },
        { auth: { authHandle: passwordAuth(new TextEncoder().encode(password)) } },
      );
    }
  });
});
