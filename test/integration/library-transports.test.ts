/**
 * The library's high-level operations against a real TPM (swtpm), the same scenario through
 * each transport: swtpm's unix socket, swtpm chardev on an inherited fd, and a real character
 * device (a socat PTY in front of swtpm) driven by DeviceTransport.
 *
 * Scenario: AKs (RSA and ECC) under the EK, persisted; PEM read back; small and 5 MiB streamed
 * messages signed and verified by node:crypto and by `openssl dgst -verify`. After every test
 * nothing may stay loaded (swtpm has no resource manager) — including after induced failures.
 */
import { createHash, createPublicKey, createVerify, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AK_ATTRIBUTES,
  KeyFormatError,
  RestrictedSignError,
  TPM_ALG,
  TPM_ECC,
  TPM_RC,
  Tpm,
  TpmDecodeError,
  TpmEncodeError,
  TpmTransportError,
  TpmError,
  akTemplate,
  createAk,
  evictPersistent,
  flush,
  startPolicySession,
  HashSequenceStart,
  formatSignature,
  listPersistentHandles,
  loadKey,
  matchesTemplate,
  objectName,
  persistKey,
  publicToPem,
  publicToSpkiDer,
  readPublic,
  signDigest,
  signMessage,
  tpmHash,
  verifyMessageSignature,
  withLoadedKey,
  type CreatedKey,
  type KeyBlobs,
  type KeyType,
  type TPMT_SIGNATURE,
  type Transport,
  DeviceTransport,
  SwtpmSocketTransport,
  openTransport,
} from '../../src/tpm/index.js';
import { expectNothingLoaded, handlesIn, loadedHandles } from '../helpers/hygiene.js';
import { socatAvailable, startPty, startSwtpm, startSwtpmChardev, swtpmAvailable } from '../helpers/swtpm.js';
import {
  messageBytes,
  messageChunks,
  messageDigest,
  messageStream,
  opensslAvailable,
  opensslVerify,
  workDir,
  writeMessageFile,
} from '../helpers/tpm-tools.js';
import { skipUnlessCI } from '../helpers/ci.js';

const haveSwtpm = swtpmAvailable();
const haveSocat = socatAvailable();
const haveOpenssl = opensslAvailable();

/** The three ways to reach a TPM; socket and PTY are opened from a spec string (openTransport). */
interface Target {
  name: string;
  available: boolean;
  start(): Promise<{ transport: Transport; stop(): Promise<void> }>;
}

const TARGETS: Target[] = [
  {
    name: 'swtpm unix socket (SwtpmSocketTransport)',
    available: haveSwtpm,
    async start() {
      const sw = await startSwtpm();
      const transport = openTransport(`swtpm:unix:${sw.sockPath}`);
      expect(transport).toBeInstanceOf(SwtpmSocketTransport);
      return {
        transport,
        async stop() {
          await transport.close();
          await sw.stop();
        },
      };
    },
  },
  {
    name: 'swtpm chardev fd (ChardevTransport)',
    available: haveSwtpm,
    async start() {
      const sw = await startSwtpmChardev();
      return { transport: sw.transport(), stop: () => sw.stop() };
    },
  },
  {
    name: 'PTY character device via socat (DeviceTransport)',
    available: haveSwtpm && haveSocat,
    async start() {
      const sw = await startSwtpm();
      try {
        const pty = await startPty(sw.sockPath);
        const transport = openTransport(pty.devicePath); // a plain path: a character device
        expect(transport).toBeInstanceOf(DeviceTransport);
        return {
          transport,
          async stop() {
            await transport.close();
            await pty.stop();
            await sw.stop();
          },
        };
      } catch (e) {
        await sw.stop();
        throw e;
      }
    },
  },
];

const PERSISTENT: Record<KeyType, number> = { rsa: 0x81010000, ecc: 0x81010020 };
const KEY_TYPES: KeyType[] = ['rsa', 'ecc'];
const BIG = 5 * 1024 * 1024 + 77; // 5 MiB and a tail that is not a whole input buffer
const SMALL = new TextEncoder().encode('hello from an EVE edge container\n');

function spkiKey(pub: CreatedKey['publicArea']): KeyObject {
  return createPublicKey({ key: Buffer.from(publicToSpkiDer(pub)), format: 'der', type: 'spki' });
}

/** A message source that yields `good` bytes in pieces, then fails. */
async function* failingSource(good: number, err: Error): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for (const c of messageChunks(good, 7)) {
    sent += c.length;
    yield c;
  }
  expect(sent).toBe(good);
  throw err;
}

/** Flips one bit at `offset` (negative: from the end). */
function flipped(b: Uint8Array, offset: number): Uint8Array {
  const out = b.slice();
  const i = offset < 0 ? out.length + offset : offset;
  out[i]! ^= 0x01;
  return out;
}

for (const target of TARGETS) {
  describe.skipIf(skipUnlessCI(!target.available))(`library over ${target.name}`, () => {
    let transport: Transport;
    let stopTarget: (() => Promise<void>) | undefined;
    let tpm: Tpm;
    let files: Awaited<ReturnType<typeof workDir>>;
    const keys = {} as Record<KeyType, CreatedKey>;
    const pems = {} as Record<KeyType, string>;

    beforeAll(async () => {
      const started = await target.start();
      transport = started.transport;
      stopTarget = started.stop;
      tpm = new Tpm(transport);
      files = await workDir('tpm-lib-');
      await writeMessageFile(join(files.dir, 'big.msg'), BIG, 1);
      await writeFile(join(files.dir, 'small.msg'), SMALL);
    });

    afterAll(async () => {
      if (tpm) {
        const present = await listPersistentHandles(tpm).catch(() => [] as number[]);
        for (const h of Object.values(PERSISTENT)) if (present.includes(h)) await evictPersistent(tpm, h).catch(() => {});
      }
      await stopTarget?.();
      await files?.remove();
    });

    afterEach(async () => {
      await expectNothingLoaded(tpm);
    });

    it('starts clean, and the hygiene check sees sequences and sessions', async () => {
      expect(await loadedHandles(tpm)).toEqual({ transient: [], sessions: [] });
      // The check itself must see what a leak would leave: a hash sequence and a policy session.
      const seq = await tpm.run(HashSequenceStart, { auth: new Uint8Array(0), hashAlg: TPM_ALG.SHA256 });
      const session = await startPolicySession(tpm);
      try {
        expect(await loadedHandles(tpm)).toEqual({ transient: [seq.sequenceHandle], sessions: [session.handle] });
      } finally {
        await flush(tpm, seq.sequenceHandle);
        await flush(tpm, session.handle);
      }
    });

    it.each(KEY_TYPES)('creates a %s AK under the EK, as tpm2_createak does', async (type) => {
      const k = await createAk(tpm, type);
      keys[type] = k;
      expect(matchesTemplate(k.publicArea, akTemplate(type))).toBe(true);
      expect(k.publicArea.objectAttributes).toBe(AK_ATTRIBUTES);
      expect(k.name).toEqual(objectName(k.publicArea));
      // Blobs are TPM2B: a 2-byte size then exactly that many bytes.
      for (const blob of [k.public, k.private]) expect(Buffer.from(blob).readUInt16BE(0)).toBe(blob.length - 2);
      const pub = k.publicArea;
      expect(pub.type).toBe(type === 'rsa' ? TPM_ALG.RSA : TPM_ALG.ECC);
      if (pub.type === TPM_ALG.RSA) expect(pub.unique.length).toBe(256);
      if (pub.type === TPM_ALG.ECC) expect(pub.parameters.curveID).toBe(TPM_ECC.NIST_P256);
    });

    it.each(KEY_TYPES)('persists the %s AK and reads back the same Name and PEM', async (type) => {
      const k = keys[type];
      const handle = PERSISTENT[type];
      await persistKey(tpm, k, handle);
      expect(await listPersistentHandles(tpm)).toContain(handle);
      expect(await handlesIn(tpm, 0x81, 0x81000000, 0x81ffffff)).toContain(handle);

      const info = await readPublic(tpm, handle);
      expect(Buffer.from(info.name).toString('hex')).toBe(Buffer.from(k.name).toString('hex'));
      expect(objectName(info.publicArea)).toEqual(info.name);
      const pem = publicToPem(info.publicArea);
      expect(pem).toBe(publicToPem(k.publicArea));
      expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END PUBLIC KEY-----\n$/);
      const key = createPublicKey(pem);
      if (type === 'rsa') {
        expect(key.asymmetricKeyType).toBe('rsa');
        expect(key.asymmetricKeyDetails).toMatchObject({ modulusLength: 2048, publicExponent: 65537n });
      } else {
        expect(key.asymmetricKeyType).toBe('ec');
        expect(key.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
      }
      pems[type] = pem;
      await writeFile(join(files.dir, `${type}.pem`), pem);
    });

    it('loading the same blobs again gives the same Name; the key is flushed afterwards', async () => {
      for (const type of KEY_TYPES) {
        const { handle, name } = await loadKey(tpm, keys[type]);
        try {
          expect(handle >>> 24).toBe(0x80);
          expect(name).toEqual(keys[type].name);
          expect((await loadedHandles(tpm)).transient).toEqual([handle]);
        } finally {
          await flush(tpm, handle);
        }
      }
    });

    describe.each(KEY_TYPES)('%s AK signatures', (type) => {
      async function checkAll(sig: TPMT_SIGNATURE, message: Uint8Array | undefined, msgFile: string, expectDigest: Buffer): Promise<void> {
        const k = keys[type];
        expect(sig.sigAlg).toBe(type === 'rsa' ? TPM_ALG.RSASSA : TPM_ALG.ECDSA);
        expect(sig.sigAlg === TPM_ALG.NULL ? undefined : sig.signature.hash).toBe(TPM_ALG.SHA256);
        const plain = formatSignature(sig, 'plain');
        // node:crypto, two ways: the library's helper, and a plain verify against the PEM.
        if (message) {
          expect(verifyMessageSignature(k.publicArea, message, sig)).toBe(true);
          expect(cryptoVerify('sha256', message, pems[type]!, plain)).toBe(true);
          const tampered = Buffer.from(message);
          tampered[tampered.length - 1]! ^= 1;
          expect(verifyMessageSignature(k.publicArea, tampered, sig)).toBe(false);
        }
        const v = createVerify('sha256');
        for (const c of message ? [message] : messageChunks(BIG, 1)) v.update(c);
        expect(v.verify(pems[type]!, plain)).toBe(true);
        if (type === 'ecc') {
          const raw = formatSignature(sig, 'raw', 32);
          expect(raw.length).toBe(64);
          const v2 = createVerify('sha256');
          for (const c of message ? [message] : messageChunks(BIG, 1)) v2.update(c);
          expect(v2.verify({ key: spkiKey(k.publicArea), dsaEncoding: 'ieee-p1363' }, raw)).toBe(true);
        } else {
          expect(plain.length).toBe(256);
        }
        expect(Buffer.from((sig as { digest?: Uint8Array }).digest ?? []).toString('hex')).toBe(expectDigest.toString('hex'));
        if (haveOpenssl) {
          const sigFile = `${type}-${msgFile}.sig`;
          await writeFile(join(files.dir, sigFile), plain);
          const r = await opensslVerify(files.dir, `${type}.pem`, sigFile, msgFile);
          expect(r.output).toBe('Verified OK');
          expect(r.ok).toBe(true);
        }
      }

      it('signs a small message with the persisted key (TPM2_Hash path)', async () => {
        const sig = await signMessage(tpm, PERSISTENT[type], SMALL);
        await checkAll(sig, SMALL, 'small.msg', messageDigestOf(SMALL));
      });

      it('signs a small message with the key loaded from its blobs', async () => {
        const sig = await withLoadedKey(tpm, keys[type], (h) => signMessage(tpm, h, SMALL));
        await checkAll(sig, SMALL, 'small.msg', messageDigestOf(SMALL));
      });

      it('signs a 5 MiB message streamed from a Readable (hash sequence path)', async () => {
        let progress = 0;
        const sig = await signMessage(tpm, PERSISTENT[type], messageStream(BIG, 1), { onProgress: (n) => (progress = n) });
        expect(progress).toBe(BIG);
        const whole = type === 'rsa' ? messageBytes(BIG, 1) : undefined; // one of them also checks the one-buffer APIs
        await checkAll(sig, whole, 'big.msg', messageDigest(BIG, 1));
      });

      it('signs messages around the 1024-byte input buffer boundary', async () => {
        for (const n of [0, 1, 1023, 1024, 1025, 2048, 2049]) {
          const msg = messageBytes(n, 3);
          const sig = await signMessage(tpm, PERSISTENT[type], Readable.from([msg.subarray(0, n >> 1), msg.subarray(n >> 1)]));
          expect(verifyMessageSignature(keys[type].publicArea, msg, sig), `${n} bytes`).toBe(true);
        }
      });
    });

    // -------------------------------------------------------------------------------------------
    // induced failures: each must leave nothing loaded (checked by afterEach)

    describe('induced failures leave nothing loaded', () => {
      it.each([
        ['small', 100],
        ['streamed', 5000],
      ] as const)('signMessage with a hash that does not match the key scheme (%s message)', async (_, size) => {
        for (const type of KEY_TYPES) {
          // The persisted key: signMessage reads the key's SHA-256 scheme and refuses SHA-384 up front.
          const e1 = await signMessage(tpm, PERSISTENT[type], messageStream(size, 2), { hashAlg: TPM_ALG.SHA384 }).catch((e: unknown) => e);
          expect(e1).toBeInstanceOf(RestrictedSignError);
          expect((e1 as Error).message).toMatch(/SHA256.*SHA384/);
          await expectNothingLoaded(tpm, `${type} persisted, SHA-384`);
          // A loaded key: withLoadedKey must flush it although the signing failed.
          const e2 = await withLoadedKey(tpm, keys[type], (h) => signMessage(tpm, h, messageStream(size, 2), { hashAlg: TPM_ALG.SHA384 })).catch(
            (e: unknown) => e,
          );
          expect(e2).toBeInstanceOf(RestrictedSignError);
          // Past that check, the TPM itself still refuses a SHA-384 ticket for the key's scheme.
          const d = await tpmHash(tpm, messageStream(size, 2), TPM_ALG.SHA384);
          const e3 = await signDigest(tpm, PERSISTENT[type], d.digest, d.validation).catch((e: unknown) => e);
          expect(e3).toBeInstanceOf(TpmError);
          expect((e3 as TpmError).command).toBe('Sign');
          expect((e3 as TpmError).is(TPM_RC.TICKET) || (e3 as TpmError).is(TPM_RC.SCHEME), (e3 as Error).message).toBe(true);
        }
      });

      it('signMessage with a scheme the key refuses (RSAPSS on an RSASSA key)', async () => {
        const e = await signMessage(tpm, PERSISTENT.rsa, SMALL, { scheme: { scheme: TPM_ALG.RSAPSS, details: { hashAlg: TPM_ALG.SHA256 } } }).catch(
          (x: unknown) => x,
        );
        expect(e).toBeInstanceOf(TpmError);
        expect((e as TpmError).is(TPM_RC.SCHEME), (e as Error).message).toBe(true);
      });

      it('signMessage with a handle that holds no key', async () => {
        const e = await signMessage(tpm, 0x81010030, messageStream(3000, 4)).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(TpmError);
        expect((e as TpmError).is(TPM_RC.HANDLE)).toBe(true);
      });

      it('a message starting with TPM_GENERATED_VALUE gets no ticket: RestrictedSignError', async () => {
        for (const size of [16, 4000]) {
          const msg = messageBytes(size, 5);
          msg.set([0xff, 0x54, 0x43, 0x47], 0);
          const e = await signMessage(tpm, PERSISTENT.ecc, Readable.from([msg.subarray(0, 2), msg.subarray(2)])).catch((x: unknown) => x);
          expect(e).toBeInstanceOf(RestrictedSignError);
        }
      });

      it.each([
        ['an async generator', 'inside the first input buffer', 500],
        ['an async generator', 'after more than one input buffer', 3000],
        ['a Readable', 'after more than one input buffer', 70_000],
      ] as const)('the message source (%s) throws %s: the hash sequence is flushed', async (kind, _, good) => {
        const boom = new Error(`source failed after ${good} bytes`);
        const source = kind === 'a Readable' ? Readable.from(failingSource(good, boom)) : failingSource(good, boom);
        let hashed = 0;
        await expect(signMessage(tpm, PERSISTENT.rsa, source, { onProgress: (n) => (hashed = n) })).rejects.toBe(boom);
        // with more than one input buffer before the failure, a sequence had been started and updated
        if (good > 2048) expect(hashed).toBeGreaterThan(0);
        else expect(hashed).toBe(0);
        await expectNothingLoaded(tpm, 'failed source, persisted key');
        const source2 = kind === 'a Readable' ? Readable.from(failingSource(good, boom)) : failingSource(good, boom);
        await expect(withLoadedKey(tpm, keys.ecc, (h) => signMessage(tpm, h, source2))).rejects.toBe(boom);
      });

      it('a Readable destroyed with an error mid-way (after ~40 KiB)', async () => {
        const boom = new Error('stream destroyed');
        const chunks = messageChunks(BIG, 6);
        let sent = 0;
        const r = new Readable({
          read() {
            if (sent > 10_000) {
              this.destroy(boom);
              return;
            }
            const c = chunks.next();
            if (c.done) this.push(null);
            else {
              sent += c.value.length;
              this.push(c.value);
            }
          },
        });
        let hashed = 0;
        await expect(signMessage(tpm, PERSISTENT.ecc, r, { onProgress: (n) => (hashed = n) })).rejects.toBe(boom);
        expect(hashed).toBeGreaterThan(0); // SequenceUpdate had run: there was a sequence to flush
      });

      it('loadKey with a truncated public blob: typed decode error before the TPM is asked', async () => {
        const k = keys.rsa;
        const bad: KeyBlobs = { public: k.public.subarray(0, k.public.length - 1), private: k.private };
        await expect(loadKey(tpm, bad)).rejects.toBeInstanceOf(TpmDecodeError);
        const trailing: KeyBlobs = { public: Buffer.concat([k.public, Buffer.of(0)]), private: k.private };
        await expect(loadKey(tpm, trailing)).rejects.toBeInstanceOf(TpmDecodeError);
      });

      it.each([
        ['a flipped bit in the encrypted private part', (k: KeyBlobs): KeyBlobs => ({ public: k.public, private: flipped(k.private, -5) })],
        ['a flipped bit in the integrity HMAC', (k: KeyBlobs): KeyBlobs => ({ public: k.public, private: flipped(k.private, 6) })],
        ['a flipped bit in the public key', (k: KeyBlobs): KeyBlobs => ({ public: flipped(k.public, -3), private: k.private })],
        ['the private blob of the other key', (k: KeyBlobs, other: KeyBlobs): KeyBlobs => ({ public: k.public, private: other.private })],
      ] as const)('loadKey with %s: TPM error, EK and session flushed', async (_, corrupt) => {
        for (const type of KEY_TYPES) {
          const other = keys[type === 'rsa' ? 'ecc' : 'rsa'];
          const e = await loadKey(tpm, corrupt(keys[type], other)).catch((x: unknown) => x);
          expect(e).toBeInstanceOf(TpmError);
          expect((e as TpmError).command).toBe('Load');
          expect((e as TpmError).is(TPM_RC.INTEGRITY), (e as Error).message).toBe(true);
          await expectNothingLoaded(tpm, `corrupt ${type} blobs`);
          await expect(withLoadedKey(tpm, corrupt(keys[type], other), async () => 1)).rejects.toBeInstanceOf(TpmError);
        }
      });

      it('signMessage aborted (AbortSignal) in the middle of a hash sequence', async () => {
        const ctl = new AbortController();
        const p = signMessage(tpm, PERSISTENT.rsa, messageStream(BIG, 8), {
          signal: ctl.signal,
          onProgress: (n) => {
            if (n >= 20 * 1024) ctl.abort(new Error('user gave up'));
          },
        });
        const e = await p.catch((x: unknown) => x);
        expect(e).toBeInstanceOf(TpmTransportError);
        expect((e as TpmTransportError).code).toBe('ABORTED');
        // the transport is still usable (afterEach asks the TPM what is loaded)
      });

      it.each([
        ['a hash the TPM does not support (SHA3-256)', TPM_ALG.SHA3_256, TpmError],
        ['a hash that is not a hash (NULL): refused by the encoder', TPM_ALG.NULL, TpmEncodeError],
      ] as const)('createAk with %s: EK and session flushed', async (_, hashAlg, type) => {
        for (const kt of KEY_TYPES) await expect(createAk(tpm, kt, { hashAlg })).rejects.toBeInstanceOf(type);
      });

      it('withLoadedKey: the callback fails, the key is flushed anyway', async () => {
        const boom = new Error('callback failed');
        await expect(withLoadedKey(tpm, keys.rsa, async () => Promise.reject(boom))).rejects.toBe(boom);
      });

      it('publicToPem of a template (no key yet) is refused', () => {
        expect(() => publicToPem(akTemplate('rsa'))).toThrow(KeyFormatError);
        expect(() => publicToPem(akTemplate('ecc'))).toThrow(KeyFormatError);
      });

      it('the library still works after all the failures', async () => {
        const sig = await signMessage(tpm, PERSISTENT.rsa, SMALL);
        expect(verifyMessageSignature(keys.rsa.publicArea, SMALL, sig)).toBe(true);
      });
    });

    it('evicts the persisted keys', async () => {
      for (const type of KEY_TYPES) await evictPersistent(tpm, PERSISTENT[type]);
      const left = await listPersistentHandles(tpm);
      for (const type of KEY_TYPES) expect(left).not.toContain(PERSISTENT[type]);
      const e = await readPublic(tpm, PERSISTENT.rsa).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(TpmError);
      expect((e as TpmError).is(TPM_RC.HANDLE)).toBe(true);
    });
  });
}

function messageDigestOf(m: Uint8Array): Buffer {
  return createHash('sha256').update(m).digest();
}
