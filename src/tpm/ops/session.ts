/**
 * Sessions for the operations (Part 1 §19; Part 3 §11.1 StartAuthSession, §23.4 PolicySecret).
 * - The EK's "policy A": an unsalted, unbound SHA-256 policy session that satisfies
 *   PolicySecret(TPM_RH_ENDORSEMENT), always flushed afterwards.
 * - A hierarchy's password never crosses the bus in clear: an empty one is sent as is (it is no
 *   secret, and costs nothing); a non-empty one authorizes through a salted HMAC session with
 *   parameter encryption (`withHierarchyAuth`), so a bus observer sees only an HMAC keyed with
 *   a salt it cannot recover.
 */
import { randomBytes } from 'node:crypto';
import { CreatePrimary, PolicySecret, StartAuthSession } from '../commands.js';
import { DIGEST_SIZE, TPM_ALG, TPM_RH, TPM_SE } from '../constants.js';
import { passwordAuth, policyAuth, type AuthArg, type Authorization, type HandleArg } from '../command.js';
import { ekEccTemplate } from '../keys/templates.js';
import type { TPMT_PUBLIC } from '../structures.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { flushSession, startAuthSession } from '../session/start.js';
import { flushQuietly } from './objects.js';

export interface PolicySession {
  handle: number;
  hashAlg: number;
  /** The TPM's latest nonce: needed for HMACs and for a fresh authorization. */
  nonceTPM: Uint8Array;
}

/** TPM2_StartAuthSession(policy, tpmKey = bind = TPM_RH_NULL, no salt, no symmetric). */
export async function startPolicySession(tpm: TpmRunner, hashAlg: number = TPM_ALG.SHA256, opts: RunOptions = {}): Promise<PolicySession> {
  const size = DIGEST_SIZE[hashAlg] ?? 32;
  const r = await tpm.run(
    StartAuthSession,
    {
      tpmKey: TPM_RH.NULL,
      bind: TPM_RH.NULL,
      nonceCaller: new Uint8Array(randomBytes(size)),
      encryptedSalt: new Uint8Array(0),
      sessionType: TPM_SE.POLICY,
      symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null },
      authHash: hashAlg,
    },
    opts,
  );
  return { handle: r.sessionHandle, hashAlg, nonceTPM: r.nonceTPM };
}

function bytesOf(v: Uint8Array | string | undefined): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  return typeof v === 'string' ? new TextEncoder().encode(v) : v;
}

/** A decryption key to salt sessions to: its handle and public area. */
export interface SaltKey {
  key: HandleArg;
  public: TPMT_PUBLIC;
}

/**
 * Runs `fn` with an authorization for `hierarchy` (or any permanent handle) whose password is
 * `password`. Empty: the password session, as always. Non-empty: a salted HMAC session with
 * AES-128-CFB parameter encryption both ways, flushed afterwards. The salt is encrypted to
 * `saltKey` when given, else to a P-256 key made for the purpose in the NULL hierarchy (no
 * authorization needed) and flushed as soon as the session is started.
 */
export async function withHierarchyAuth<T>(
  tpm: TpmRunner,
  password: Uint8Array | string | undefined,
  fn: (auth: AuthArg) => Promise<T>,
  opts: RunOptions & { saltKey?: SaltKey } = {},
): Promise<T> {
  const pw = bytesOf(password);
  if (pw.length === 0) return fn(passwordAuth());
  const run: RunOptions = { signal: opts.signal, timeoutMs: opts.timeoutMs };
  let salt = opts.saltKey;
  let temporary: number | undefined;
  if (!salt) {
    const r = await tpm.run(
      CreatePrimary,
      { primaryHandle: TPM_RH.NULL, inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) }, inPublic: ekEccTemplate(), outsideInfo: new Uint8Array(0), creationPCR: [] },
      run,
    );
    temporary = r.objectHandle;
    salt = { key: r.objectHandle, public: r.outPublic };
  }
  let session;
  try {
    session = await startAuthSession(tpm, { ...run, salt, encrypt: 'both' });
  } finally {
    if (temporary !== undefined) await flushQuietly(tpm, temporary);
  }
  try {
    return await fn(session.use(pw));
  } finally {
    await flushSession(tpm, session);
  }
}

/**
 * TPM2_PolicySecret with the password of `authHandle` (default empty): a non-empty password
 * goes through a salted HMAC session (`withHierarchyAuth`), never in clear.
 */
export async function policySecret(
  tpm: TpmRunner,
  session: PolicySession,
  authHandle: number,
  opts: RunOptions & { password?: Uint8Array | string; saltKey?: SaltKey } = {},
): Promise<void> {
  const { password, saltKey, ...rest } = opts;
  const input = {
    authHandle,
    policySession: session.handle,
    nonceTPM: new Uint8Array(0),
    cpHashA: new Uint8Array(0),
    policyRef: new Uint8Array(0),
    expiration: 0,
  };
  if (password === undefined) {
    await tpm.run(PolicySecret, input, rest);
    return;
  }
  await withHierarchyAuth(tpm, password, (auth) => tpm.run(PolicySecret, input, { ...rest, auth: { ...rest.auth, authHandle: auth } }), {
    ...rest,
    ...(saltKey ? { saltKey } : {}),
  });
}

/** An authorization using the policy session (a fresh nonceCaller each use). */
export function sessionAuth(session: PolicySession): Authorization {
  const size = DIGEST_SIZE[session.hashAlg] ?? 32;
  return policyAuth(session.handle, new Uint8Array(randomBytes(size)));
}

/**
 * Runs `fn` with an authorization satisfying PolicySecret(TPM_RH_ENDORSEMENT) — the EK's
 * "policy A" — and flushes the session afterwards, whether `fn` succeeded or not. A non-empty
 * `endorsementAuth` is sent only inside a salted HMAC session (to `saltKey`, e.g. the EK).
 */
export async function withEndorsementPolicy<T>(
  tpm: TpmRunner,
  fn: (auth: Authorization) => Promise<T>,
  opts: RunOptions & { endorsementAuth?: Uint8Array | string; saltKey?: SaltKey } = {},
): Promise<T> {
  const { endorsementAuth, saltKey, ...rest } = opts;
  const session = await startPolicySession(tpm, TPM_ALG.SHA256, rest);
  try {
    await policySecret(tpm, session, TPM_RH.ENDORSEMENT, { ...rest, password: endorsementAuth, ...(saltKey ? { saltKey } : {}) });
    return await fn(sessionAuth(session));
  } finally {
    await flushQuietly(tpm, session.handle);
  }
}
