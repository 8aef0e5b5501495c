/**
 * Policy sessions (Part 1 §19; Part 3 §11.1 StartAuthSession, §23.4 PolicySecret).
 * Only what an EK-parented key needs: an unsalted, unbound SHA-256 policy session that
 * satisfies PolicySecret(TPM_RH_ENDORSEMENT), always flushed afterwards.
 */
import { randomBytes } from 'node:crypto';
import { PolicySecret, StartAuthSession } from '../commands.js';
import { DIGEST_SIZE, TPM_ALG, TPM_RH, TPM_SE } from '../constants.js';
import { passwordAuth, policyAuth, type Authorization } from '../command.js';
import type { RunOptions, Tpm } from '../tpm.js';
import { flushQuietly } from './objects.js';

export interface PolicySession {
  handle: number;
  hashAlg: number;
  /** The TPM's latest nonce: needed for HMACs and for a fresh authorization. */
  nonceTPM: Uint8Array;
}

/** TPM2_StartAuthSession(policy, tpmKey = bind = TPM_RH_NULL, no salt, no symmetric). */
export async function startPolicySession(tpm: Tpm, hashAlg: number = TPM_ALG.SHA256, opts: RunOptions = {}): Promise<PolicySession> {
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

/** TPM2_PolicySecret with the password of `authHandle` (default empty). */
export async function policySecret(
  tpm: Tpm,
  session: PolicySession,
  authHandle: number,
  opts: RunOptions & { password?: Uint8Array | string } = {},
): Promise<void> {
  const password = typeof opts.password === 'string' ? new TextEncoder().encode(opts.password) : opts.password;
  await tpm.run(
    PolicySecret,
    {
      authHandle,
      policySession: session.handle,
      nonceTPM: new Uint8Array(0),
      cpHashA: new Uint8Array(0),
      policyRef: new Uint8Array(0),
      expiration: 0,
    },
    password === undefined ? opts : { ...opts, auth: { ...opts.auth, authHandle: passwordAuth(password) } },
  );
}

/** An authorization using the policy session (a fresh nonceCaller each use). */
export function sessionAuth(session: PolicySession): Authorization {
  const size = DIGEST_SIZE[session.hashAlg] ?? 32;
  return policyAuth(session.handle, new Uint8Array(randomBytes(size)));
}

/**
 * Runs `fn` with an authorization satisfying PolicySecret(TPM_RH_ENDORSEMENT) — the EK's
 * "policy A" — and flushes the session afterwards, whether `fn` succeeded or not.
 */
export async function withEndorsementPolicy<T>(
  tpm: Tpm,
  fn: (auth: Authorization) => Promise<T>,
  opts: RunOptions & { endorsementAuth?: Uint8Array | string } = {},
): Promise<T> {
  const session = await startPolicySession(tpm, TPM_ALG.SHA256, opts);
  try {
    await policySecret(tpm, session, TPM_RH.ENDORSEMENT, { ...opts, password: opts.endorsementAuth });
    return await fn(sessionAuth(session));
  } finally {
    await flushQuietly(tpm, session.handle);
  }
}
