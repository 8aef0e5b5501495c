/**
 * Sessions against a real TPM (swtpm): salted (RSA EK, ECC EK, RSA storage key), bound, and
 * salted+bound HMAC sessions with parameter encryption both ways, on real commands — GetRandom
 * (encrypted response), Create (encrypted sensitive data), Load and Sign on an object handle
 * authorized by HMAC over its Name — and a tampered response (one byte of the response HMAC
 * or of an encrypted parameter flipped in transit) refused with an error naming the command.
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tpm } from '../../src/tpm/tpm.js';
import { Create, CreatePrimary, FlushContext, GetRandom, Load, PolicySecret, Sign } from '../../src/tpm/commands.js';
import { TPMA_OBJECT, TPM_ALG, TPM_RH, TPM_ST } from '../../src/tpm/constants.js';
import { ekTemplate } from '../../src/tpm/ops/ek.js';
import { akTemplate } from '../../src/tpm/ops/ak.js';
import { srkRsaTemplate } from '../../src/tpm/keys/templates.js';
import { objectName, publicToSpkiDer } from '../../src/tpm/keys/public.js';
import { formatSignature } from '../../src/tpm/keys/signature.js';
import type { TPMT_PUBLIC } from '../../src/tpm/structures.js';
import type { Transport, SendOptions } from '../../src/tpm/transport/types.js';
import { TpmError } from '../../src/tpm/rc.js';
import { AuthSession, TpmSessionError, flushSession, startAuthSession, withSession } from '../../src/tpm/session/index.js';
import { startSwtpm, swtpmAvailable, type SwtpmInstance } from '../helpers/swtpm.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const EMPTY = new Uint8Array(0);

/** A transport that can alter the next response (to prove tampering is caught), and records frames. */
class Tap implements Transport {
  mutate: ((response: Uint8Array) => Uint8Array) | undefined;
  readonly frames: { request: Uint8Array; response: Uint8Array }[] = [];
  readonly description = 'tap';
  constructor(private readonly inner: Transport) {}
  async send(request: Uint8Array, opts?: SendOptions): Promise<Uint8Array> {
    let response = await this.inner.send(request, opts);
    if (this.mutate) {
      response = this.mutate(response);
      this.mutate = undefined;
    }
    this.frames.push({ request, response });
    return response;
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

interface Primary {
  handle: number;
  name: Uint8Array;
  pub: TPMT_PUBLIC;
}

describe.skipIf(!swtpmAvailable())('sessions against swtpm', () => {
  let sw: SwtpmInstance;
  let tap: Tap;
  let tpm: Tpm;
  let srk: Primary;

  const primary = async (hierarchy: number, pub: TPMT_PUBLIC): Promise<Primary> => {
    const r = await tpm.run(CreatePrimary, {
      primaryHandle: hierarchy,
      inSensitive: { userAuth: EMPTY, data: EMPTY },
      inPublic: pub,
      outsideInfo: EMPTY,
      creationPCR: [],
    });
    return { handle: r.objectHandle, name: r.name, pub: r.outPublic };
  };

  beforeAll(async () => {
    sw = await startSwtpm();
    tap = new Tap(sw.transport());
    tpm = new Tpm(tap);
    srk = await primary(TPM_RH.OWNER, srkRsaTemplate());
  }, 60_000);

  afterAll(async () => {
    await sw?.stop();
  });

  /** An unrestricted ECDSA key with a password, created under the SRK through `auth`/`sessions`. */
  const signingTemplate = (): TPMT_PUBLIC => ({ ...akTemplate('ecc'), objectAttributes: akTemplate('ecc').objectAttributes & ~TPMA_OBJECT.restricted });

  async function createSigningKey(userAuth: Uint8Array, s: AuthSession) {
    const r = await tpm.run(
      Create,
      { parentHandle: srk, inSensitive: { userAuth, data: EMPTY }, inPublic: signingTemplate(), outsideInfo: EMPTY, creationPCR: [] },
      { auth: { parentHandle: s.use() } },
    );
    return r;
  }

  /** Runs `fn` with a transient EK of `type`, flushed afterwards (swtpm holds only 3 objects). */
  async function withEk<T>(type: 'rsa' | 'ecc', fn: (ek: Primary) => Promise<T>): Promise<T> {
    const ek = await primary(TPM_RH.ENDORSEMENT, ekTemplate(type));
    try {
      return await fn(ek);
    } finally {
      await tpm.run(FlushContext, { flushHandle: ek.handle });
    }
  }

  const saltCases: [string, (fn: (k: Primary) => Promise<void>) => Promise<void>][] = [
    ['RSA EK', (fn) => withEk('rsa', fn)],
    ['ECC EK', (fn) => withEk('ecc', fn)],
    ['RSA storage key', (fn) => fn(srk)],
  ];

  it.each(saltCases)('salted to the %s: GetRandom with an encrypted response', async (_, withKey) => {
    await withKey(async (k) => withSession(tpm, { salt: { key: k.handle, public: k.pub }, encrypt: 'both' }, async (s) => {
      const before = tap.frames.length;
      const r = await tpm.run(GetRandom, { bytesRequested: 32 }, { sessions: [s.use()] });
      expect(r.randomBytes.length).toBe(32);
      // On the wire the random bytes are ciphertext: what we got back is not what was sent.
      const wire = tap.frames[before]!.response;
      const at = 10 + 4 + 2; // header, parameterSize, TPM2B size
      expect(Buffer.from(wire.subarray(at, at + 32)).equals(Buffer.from(r.randomBytes))).toBe(false);
      // And again: the nonces rolled and both sides still agree.
      expect((await tpm.run(GetRandom, { bytesRequested: 16 }, { sessions: [s.use()] })).randomBytes.length).toBe(16);
    }));
  });

  it('salted (ECC EK) + encrypted: Create carries the new key’s password encrypted; Load and Sign by HMAC on its Name', async () => {
    const s = await withEk('ecc', (ek) => startAuthSession(tpm, { salt: { key: ek.handle, public: ek.pub }, encrypt: 'both' }));
    try {
      const password = enc('correct horse battery');
      const before = tap.frames.length;
      const created = await createSigningKey(password, s);
      const createFrame = tap.frames[before]!.request;
      // The password never appears in the command frame.
      expect(Buffer.from(createFrame).includes(Buffer.from(password))).toBe(false);
      const loaded = await tpm.run(Load, { parentHandle: srk, inPrivate: created.outPrivate, inPublic: created.outPublic }, { auth: { parentHandle: s.use() } });
      const key = { handle: loaded.objectHandle, name: loaded.name };
      expect(Buffer.from(key.name).equals(Buffer.from(objectName(created.outPublic)))).toBe(true);
      try {
        const message = Buffer.from('signed under a salted, encrypted HMAC session');
        const digest = new Uint8Array(createHash('sha256').update(message).digest());
        const sig = await tpm.run(
          Sign,
          { keyHandle: key, digest, inScheme: { scheme: TPM_ALG.NULL, details: null }, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY } },
          { auth: { keyHandle: s.use(password) } },
        );
        const pem = createPublicKey({ key: Buffer.from(publicToSpkiDer(created.outPublic)), format: 'der', type: 'spki' });
        expect(verify('sha256', message, pem, Buffer.from(formatSignature(sig.signature, 'der')))).toBe(true);
        // A wrong password is refused by the TPM (the HMAC does not verify there).
        await expect(
          tpm.run(
            Sign,
            { keyHandle: key, digest, inScheme: { scheme: TPM_ALG.NULL, details: null }, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY } },
            { auth: { keyHandle: s.use('wrong') } },
          ),
        ).rejects.toThrow(/authorization HMAC check failed/);
      } finally {
        await tpm.run(FlushContext, { flushHandle: key.handle });
      }
    } finally {
      await flushSession(tpm, s);
    }
  });

  /** A signing key with a password, created and loaded under the SRK; flushed by the caller. */
  async function loadedSigningKey(password: Uint8Array): Promise<{ handle: number; name: Uint8Array; pub: TPMT_PUBLIC }> {
    const created = await tpm.run(Create, {
      parentHandle: srk.handle,
      inSensitive: { userAuth: password, data: EMPTY },
      inPublic: signingTemplate(),
      outsideInfo: EMPTY,
      creationPCR: [],
    });
    const loaded = await tpm.run(Load, { parentHandle: srk.handle, inPrivate: created.outPrivate, inPublic: created.outPublic });
    return { handle: loaded.objectHandle, name: loaded.name, pub: created.outPublic };
  }

  async function signWith(key: { handle: number; name: Uint8Array; pub: TPMT_PUBLIC }, auth: ReturnType<AuthSession['use']>): Promise<boolean> {
    const message = Buffer.from(`message ${Math.random()}`);
    const digest = new Uint8Array(createHash('sha256').update(message).digest());
    const sig = await tpm.run(
      Sign,
      { keyHandle: key, digest, inScheme: { scheme: TPM_ALG.NULL, details: null }, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY } },
      { auth: { keyHandle: auth } },
    );
    const pem = createPublicKey({ key: Buffer.from(publicToSpkiDer(key.pub)), format: 'der', type: 'spki' });
    return verify('sha256', message, pem, Buffer.from(formatSignature(sig.signature, 'der')));
  }

  describe('bound sessions', () => {
    const password = enc('bound-key-password');
    let key: { handle: number; name: Uint8Array; pub: TPMT_PUBLIC };
    beforeAll(async () => {
      key = await loadedSigningKey(password);
    });
    afterAll(async () => {
      if (key) await tpm.run(FlushContext, { flushHandle: key.handle });
    });

    it('bound to the key it authorizes (its authValue only in the session key), Sign with an encrypted digest', async () => {
      await withSession(tpm, { bind: { handle: key, authValue: password }, encrypt: 'in' }, async (s) => {
        expect(await signWith(key, s.use(password))).toBe(true);
        expect(await signWith(key, s.use(password))).toBe(true);
      });
    });

    it('bound to the SRK, authorizing the key (its authValue joins the HMAC key)', async () => {
      await withSession(tpm, { bind: { handle: srk, authValue: EMPTY }, encrypt: 'both' }, async (s) => {
        expect(await signWith(key, s.use(password))).toBe(true);
      });
    });

    it('salted (RSA EK) and bound to the key, with AES both ways', async () => {
      await withEk('rsa', async (ek) => {
        await withSession(tpm, { salt: { key: ek.handle, public: ek.pub }, bind: { handle: key, authValue: password }, encrypt: 'both' }, async (s) => {
          expect(await signWith(key, s.use(password))).toBe(true);
          const r = await tpm.run(GetRandom, { bytesRequested: 24 }, { sessions: [s.use()] });
          expect(r.randomBytes.length).toBe(24);
        });
      });
    });

    it('an HMAC authorization with a second, salted session that encrypts the digest (nonceTPM of the decrypt session in the first HMAC)', async () => {
      await withSession(tpm, {}, async (auth) => {
        await withSession(tpm, { salt: { key: srk.handle, public: srk.pub }, encrypt: 'in' }, async (crypt) => {
          const message = Buffer.from('two sessions');
          const digest = new Uint8Array(createHash('sha256').update(message).digest());
          const before = tap.frames.length;
          const sig = await tpm.run(
            Sign,
            { keyHandle: key, digest, inScheme: { scheme: TPM_ALG.NULL, details: null }, validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY } },
            { auth: { keyHandle: auth.use(password) }, sessions: [crypt.use()] },
          );
          expect(Buffer.from(tap.frames[before]!.request).includes(Buffer.from(digest))).toBe(false);
          const pem = createPublicKey({ key: Buffer.from(publicToSpkiDer(key.pub)), format: 'der', type: 'spki' });
          expect(verify('sha256', message, pem, Buffer.from(formatSignature(sig.signature, 'der')))).toBe(true);
        });
      });
    });

    it('a bound session without the right authValue is refused by the TPM', async () => {
      await withSession(tpm, { bind: { handle: key, authValue: 'not the password' } }, async (s) => {
        await expect(signWith(key, s.use('not the password'))).rejects.toBeInstanceOf(TpmError);
      });
    });
  });

  it('SHA-384 session hash with AES-256 both ways, salted to the ECC EK', async () => {
    await withEk('ecc', (ek) =>
      withSession(tpm, { hashAlg: TPM_ALG.SHA384, salt: { key: ek.handle, public: ek.pub }, encrypt: 'both', cipher: { alg: 'aes', keyBits: 256 } }, async (s) => {
        expect(s.nonceTPM.length).toBe(48);
        expect((await tpm.run(GetRandom, { bytesRequested: 40 }, { sessions: [s.use()] })).randomBytes.length).toBe(40);
        expect(await signWithKeyOnce(s)).toBe(true);
      }),
    );
  });

  /** Creates a passworded signing key (password encrypted by `s`), loads it, signs with `s` authorizing it, flushes it. */
  async function signWithKeyOnce(s: AuthSession): Promise<boolean> {
    const password = enc('per-test password');
    const created = await createSigningKey(password, s);
    const loaded = await tpm.run(Load, { parentHandle: srk, inPrivate: created.outPrivate, inPublic: created.outPublic }, { auth: { parentHandle: s.use() } });
    try {
      return await signWith({ handle: loaded.objectHandle, name: loaded.name, pub: created.outPublic }, s.use(password));
    } finally {
      await tpm.run(FlushContext, { flushHandle: loaded.objectHandle });
    }
  }

  it('XOR obfuscation instead of AES', async () => {
    await withSession(tpm, { salt: { key: srk.handle, public: srk.pub }, encrypt: 'both', cipher: { alg: 'xor', hashAlg: TPM_ALG.SHA256 } }, async (s) => {
      const before = tap.frames.length;
      const r = await tpm.run(GetRandom, { bytesRequested: 32 }, { sessions: [s.use()] });
      expect(r.randomBytes.length).toBe(32);
      const wire = tap.frames[before]!.response.subarray(16, 48);
      expect(Buffer.from(wire).equals(Buffer.from(r.randomBytes))).toBe(false);
    });
  });

  it('an encryption-only session beside a password authorization: Create’s sensitive data is not in the frame', async () => {
    await withSession(tpm, { salt: { key: srk.handle, public: srk.pub }, encrypt: 'in' }, async (s) => {
      const secret = enc('sealed-data-that-must-not-cross-the-bus');
      const before = tap.frames.length;
      await tpm.run(
        Create,
        {
          // An HMAC covers every handle's Name, even beside a password: the SRK goes with its Name.
          parentHandle: srk,
          inSensitive: { userAuth: enc('pw'), data: secret },
          // A sealed data object (KEYEDHASH, no scheme): its data is the secret.
          inPublic: {
            type: TPM_ALG.KEYEDHASH,
            nameAlg: TPM_ALG.SHA256,
            objectAttributes: TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA,
            authPolicy: EMPTY,
            parameters: { scheme: { scheme: TPM_ALG.NULL, details: null } },
            unique: EMPTY,
          },
          outsideInfo: EMPTY,
          creationPCR: [],
        },
        { sessions: [s.use()] },
      );
      expect(Buffer.from(tap.frames[before]!.request).includes(Buffer.from(secret))).toBe(false);
    });
  });

  it('a salted policy session (EK policy A) that also encrypts: Create under the EK with its sensitive data encrypted', async () => {
    await withEk('ecc', async (ek) => {
      await withSession(tpm, { type: 'policy', salt: { key: ek.handle, public: ek.pub }, encrypt: 'both' }, async (s) => {
        await tpm.run(PolicySecret, { authHandle: TPM_RH.ENDORSEMENT, policySession: s.handle, nonceTPM: EMPTY, cpHashA: EMPTY, policyRef: EMPTY, expiration: 0 });
        const secret = enc('user-auth-under-a-policy-session');
        const before = tap.frames.length;
        const r = await tpm.run(
          Create,
          { parentHandle: ek, inSensitive: { userAuth: secret, data: EMPTY }, inPublic: akTemplate('ecc'), outsideInfo: EMPTY, creationPCR: [] },
          { auth: { parentHandle: s.use() } },
        );
        expect(r.outPrivate.length).toBeGreaterThan(0);
        expect(Buffer.from(tap.frames[before]!.request).includes(Buffer.from(secret))).toBe(false);
      });
    });
  });

  describe('a response altered in transit is refused', () => {
    const flip = (offsetFromEnd: number) => (r: Uint8Array) => {
      const out = new Uint8Array(r);
      out[out.length - offsetFromEnd]! ^= 0x01;
      return out;
    };
    it.each([
      ['the last byte of the response HMAC', flip(1)],
      ['a byte of the encrypted random bytes', (r: Uint8Array) => { const out = new Uint8Array(r); out[20]! ^= 0x80; return out; }],
      ['the response nonce', (r: Uint8Array) => { const out = new Uint8Array(r); out[r.length - 32 - 2 - 1 - 2]! ^= 0x01; return out; }],
    ])('%s', async (_, mutate) => {
      await withSession(tpm, { salt: { key: srk.handle, public: srk.pub }, encrypt: 'out' }, async (s) => {
        tap.mutate = mutate;
        const err = await tpm.run(GetRandom, { bytesRequested: 32 }, { sessions: [s.use()] }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TpmSessionError);
        expect((err as Error).message).toMatch(/^GetRandom: the response HMAC of session 0x0[23][0-9a-f]{6} does not verify/);
      });
    });
  });
});
