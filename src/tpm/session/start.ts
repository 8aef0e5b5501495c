/**
 * Starting and ending a session object (Part 3 §11.1 TPM2_StartAuthSession, §28.4 FlushContext):
 * salted to a TPM key (RSA or ECC, e.g. the EK or a storage key), bound to an entity with its
 * authValue, both, or neither; with a cipher for parameter encryption.
 */
import { randomBytes } from 'node:crypto';
import { FlushContext, StartAuthSession } from '../commands.js';
import { DIGEST_SIZE, TPM_ALG, TPM_HT, TPM_RH, TPM_SE, hex32 } from '../constants.js';
import { handleOf, nameOf, type HandleArg } from '../command/descriptor.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { kdfa } from './kdf.js';
import { symDefOf, type SessionCipher } from './param-crypt.js';
import { makeSalt } from './salt.js';
import { AuthSession, TpmSessionError, trimAuth, type EncryptDirection } from './session.js';

export interface StartSessionOptions {
  /** 'hmac' (default) or 'policy'. */
  type?: 'hmac' | 'policy';
  /** The session's hash (authHash); default SHA-256. */
  hashAlg?: number;
  /** Salt the session to this TPM key: its handle and its public area (Part 1 §19.6.10). */
  salt?: { key: HandleArg; public: TPMT_PUBLIC };
  /** Bind the session to this entity (HMAC sessions): its handle (with its Name if it is an object) and authValue. */
  bind?: { handle: HandleArg; authValue?: Uint8Array | string };
  /** Which parameters the session encrypts when a command allows it; default 'none'. */
  encrypt?: EncryptDirection;
  /** The cipher for parameter encryption; default AES-128-CFB when `encrypt` is not 'none'. */
  cipher?: SessionCipher;
}

const AES128: SessionCipher = { alg: 'aes', keyBits: 128 };

function bytesOf(v: Uint8Array | string | undefined): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  return typeof v === 'string' ? new TextEncoder().encode(v) : v;
}

/** The Name of the bind entity: a permanent handle's Name is the handle; an object's must be given. */
function bindName(h: HandleArg): Uint8Array {
  const n = nameOf(h);
  if (n) return n;
  const handle = handleOf(h);
  const ht = handle >>> 24;
  if (ht === TPM_HT.TRANSIENT || ht === TPM_HT.PERSISTENT || ht === TPM_HT.NV_INDEX) {
    throw new TpmSessionError(`binding a session to ${hex32(handle)} needs its Name: pass {handle, name}`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, handle);
  return out;
}

/** TPM2_StartAuthSession with the options above; the session key per Part 1 §19.6.8. */
export async function startAuthSession(tpm: TpmRunner, opts: StartSessionOptions & RunOptions = {}): Promise<AuthSession> {
  const { type = 'hmac', hashAlg = TPM_ALG.SHA256, salt, bind, encrypt = 'none' } = opts;
  const digest = DIGEST_SIZE[hashAlg];
  if (digest === undefined) throw new TpmSessionError(`unknown session hash 0x${hashAlg.toString(16)}`);
  if (bind && type !== 'hmac') throw new TpmSessionError('only HMAC sessions are bound here');
  const cipher = opts.cipher ?? (encrypt === 'none' ? undefined : AES128);
  const s = salt ? makeSalt(salt.public) : undefined;
  const nonceCaller = new Uint8Array(randomBytes(digest));
  const run: RunOptions = { signal: opts.signal, timeoutMs: opts.timeoutMs };
  const r = await tpm.run(
    StartAuthSession,
    {
      tpmKey: salt ? salt.key : TPM_RH.NULL,
      bind: bind ? bind.handle : TPM_RH.NULL,
      nonceCaller,
      encryptedSalt: s ? s.encryptedSalt : new Uint8Array(0),
      sessionType: type === 'hmac' ? TPM_SE.HMAC : TPM_SE.POLICY,
      symmetric: symDefOf(cipher),
      authHash: hashAlg,
    },
    run,
  );
  // sessionKey = KDFa(authHash, bind.authValue ‖ salt, "ATH", nonceTPM, nonceCaller, digest bits),
  // or empty when the session is neither bound nor salted.
  let sessionKey: Uint8Array = new Uint8Array(0);
  if (salt || bind) {
    const auth = trimAuth(bytesOf(bind?.authValue));
    const secret = s?.salt ?? new Uint8Array(0);
    const key = new Uint8Array(auth.length + secret.length);
    key.set(auth);
    key.set(secret, auth.length);
    sessionKey = kdfa(hashAlg, key, 'ATH', r.nonceTPM, nonceCaller, digest * 8);
  }
  return new AuthSession({
    handle: r.sessionHandle,
    type,
    hashAlg,
    sessionKey,
    ...(bind ? { bindName: bindName(bind.handle) } : {}),
    ...(cipher ? { cipher } : {}),
    encrypt,
    nonceCaller,
    nonceTPM: r.nonceTPM,
  });
}

/** Flushes a session unless the TPM already ended it; best effort (on cleanup paths the handle may already be gone). */
export async function flushSession(tpm: TpmRunner, session: AuthSession): Promise<void> {
  if (!session.open) return;
  session.open = false;
  await tpm.run(FlushContext, { flushHandle: session.handle }).catch(() => undefined);
}

/** Runs `fn` with a new session, flushing it afterwards whether `fn` succeeded or not. */
export async function withSession<T>(tpm: TpmRunner, opts: StartSessionOptions & RunOptions, fn: (s: AuthSession) => Promise<T>): Promise<T> {
  const s = await startAuthSession(tpm, opts);
  try {
    return await fn(s);
  } finally {
    await flushSession(tpm, s);
  }
}
