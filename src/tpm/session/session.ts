/**
 * An HMAC or policy session held by the caller (Part 1 §19): its handle, hash, session key,
 * the entity it is bound to, its cipher for parameter encryption and the nonces, which roll
 * with every successful command (§19.6.2). The shape follows go-tpm's tpm2 Session: the
 * session authorizes (command HMAC), validates (response HMAC), encrypts and decrypts.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { DIGEST_SIZE, TPMA_SESSION, hex32 } from '../constants.js';
import { hashName } from '../command/auth.js';
import { paramCrypt, type SessionCipher } from './param-crypt.js';

/** Which parameters a session encrypts when the command allows it (Part 1 §21). */
export type EncryptDirection = 'none' | 'in' | 'out' | 'both';

/** A session's use in one command: which session, and the authValue of the entity it authorizes. */
export interface SessionUse {
  readonly session: AuthSession;
  /** The authValue of the entity this session authorizes (none for an encryption-only session). */
  readonly authValue?: Uint8Array;
  /**
   * The entity's authValue once the command succeeded, when the command changes it
   * (HierarchyChangeAuth: the TPM computes the response HMAC with the new one, Part 3 §24.8).
   */
  readonly responseAuthValue?: Uint8Array;
  /** The session's handle and continueSession bit, as in an Authorization (for who tracks sessions' lifetimes). */
  readonly sessionHandle: number;
  readonly sessionAttributes: number;
}

/** A response HMAC that does not verify, or a session that cannot be used as asked. */
export class TpmSessionError extends Error {
  override readonly name = 'TpmSessionError';
}

export interface AuthSessionInit {
  handle: number;
  type: 'hmac' | 'policy';
  hashAlg: number;
  /** KDFa(…, "ATH", …) of bind authValue ‖ salt; empty for an unbound, unsalted session. */
  sessionKey: Uint8Array;
  /** The Name of the entity the session is bound to (HMAC sessions only). */
  bindName?: Uint8Array;
  cipher?: SessionCipher;
  encrypt: EncryptDirection;
  nonceCaller: Uint8Array;
  nonceTPM: Uint8Array;
}

/** The authValue as the TPM uses it in HMAC keys: trailing zero octets removed (Part 1 §19.6.4.3). */
export function trimAuth(a: Uint8Array | undefined): Uint8Array {
  if (!a) return new Uint8Array(0);
  let n = a.length;
  while (n > 0 && a[n - 1] === 0) n--;
  return a.subarray(0, n);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export class AuthSession {
  readonly handle: number;
  readonly type: 'hmac' | 'policy';
  readonly hashAlg: number;
  readonly cipher: SessionCipher | undefined;
  readonly encrypt: EncryptDirection;
  /** Whether the session stays loaded after each command (TPMA_SESSION.continueSession). */
  continueSession = true;
  /** The latest nonces: nonceCaller of the last command sent, nonceTPM of the last response. */
  nonceCaller: Uint8Array;
  nonceTPM: Uint8Array;
  /** False once the TPM has ended the session (a command without continueSession succeeded). */
  open = true;
  /** For a policy session after PolicyAuthValue: the authValue joins the HMAC key (Part 1 §19.6.4.3). */
  policyAuthValue = false;
  private readonly sessionKey: Uint8Array;
  private readonly bindName: Uint8Array | undefined;

  constructor(init: AuthSessionInit) {
    this.handle = init.handle;
    this.type = init.type;
    this.hashAlg = init.hashAlg;
    this.sessionKey = init.sessionKey;
    this.bindName = init.bindName;
    this.cipher = init.cipher;
    this.encrypt = init.cipher ? init.encrypt : 'none';
    this.nonceCaller = init.nonceCaller;
    this.nonceTPM = init.nonceTPM;
  }

  /** This session used for one command, authorizing an entity with `authValue` (or for encryption only). */
  use(authValue?: Uint8Array | string, opts: { responseAuthValue?: Uint8Array | string } = {}): SessionUse {
    const bytes = (v: Uint8Array | string | undefined) => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
    const a = bytes(authValue);
    const after = bytes(opts.responseAuthValue);
    const session = this;
    return {
      session,
      ...(a === undefined ? {} : { authValue: a }),
      ...(after === undefined ? {} : { responseAuthValue: after }),
      sessionHandle: session.handle,
      get sessionAttributes() {
        return session.continueSession ? TPMA_SESSION.continueSession : 0;
      },
    };
  }

  get wantsDecrypt(): boolean {
    return this.encrypt === 'in' || this.encrypt === 'both';
  }

  get wantsEncrypt(): boolean {
    return this.encrypt === 'out' || this.encrypt === 'both';
  }

  /** A fresh nonceCaller for the next command (Part 1 §19.6.2). */
  rollCaller(): Uint8Array {
    if (!this.open) throw new TpmSessionError(`session ${hex32(this.handle)} has ended (a command was sent without continueSession)`);
    this.nonceCaller = new Uint8Array(randomBytes(Math.max(16, DIGEST_SIZE[this.hashAlg] ?? 32)));
    return this.nonceCaller;
  }

  /** The attributes this session sends, given whether it en/decrypts this command's parameters. */
  attributes(decrypt: boolean, encrypt: boolean): number {
    return (this.continueSession ? TPMA_SESSION.continueSession : 0) | (decrypt ? TPMA_SESSION.decrypt : 0) | (encrypt ? TPMA_SESSION.encrypt : 0);
  }

  /**
   * The HMAC key (Part 1 §19.6.4.3): sessionKey ‖ authValue. The authValue is left out when
   * the session only encrypts, when it is bound to the entity it authorizes (the authValue is
   * already in the session key), and for a policy session unless PolicyAuthValue was used.
   */
  hmacKey(use: { authValue?: Uint8Array; entityName?: Uint8Array }): Uint8Array {
    if (this.bindName && use.entityName && sameBytes(this.bindName, use.entityName)) return this.sessionKey;
    return this.withAuth(use.authValue);
  }

  /**
   * The parameter-encryption value (Part 1 §21.1): sessionKey ‖ authValue of the entity the
   * session authorizes — bound to it or not (checked against swtpm) — or sessionKey alone
   * for an encryption-only session.
   */
  cryptKey(use: { authValue?: Uint8Array }): Uint8Array {
    return this.withAuth(use.authValue);
  }

  private withAuth(authValue: Uint8Array | undefined): Uint8Array {
    const auth = this.type === 'policy' && !this.policyAuthValue ? new Uint8Array(0) : trimAuth(authValue);
    if (auth.length === 0) return this.sessionKey;
    const out = new Uint8Array(this.sessionKey.length + auth.length);
    out.set(this.sessionKey);
    out.set(auth, this.sessionKey.length);
    return out;
  }

  /** HMAC(key, pHash ‖ nonceNewer ‖ nonceOlder ‖ extra nonces ‖ attributes) — Part 1 §19.6.5, §19.6.6. */
  hmac(key: Uint8Array, pHash: Uint8Array, nonceNewer: Uint8Array, nonceOlder: Uint8Array, extra: readonly Uint8Array[], attrs: number): Uint8Array {
    const h = createHmac(hashName(this.hashAlg), key).update(pHash).update(nonceNewer).update(nonceOlder);
    for (const n of extra) h.update(n);
    return new Uint8Array(h.update(Uint8Array.of(attrs)).digest());
  }

  /** Parameter encryption of a command's first TPM2B (nonceNewer = that command's nonceCaller, nonceOlder = nonceTPM). */
  encryptCommandParam(value: Uint8Array, nonceCaller: Uint8Array, data: Uint8Array): Uint8Array {
    return paramCrypt(this.needCipher(), this.hashAlg, value, nonceCaller, this.nonceTPM, data, true);
  }

  /** Parameter decryption of a response's first TPM2B (nonceNewer = the response's nonceTPM, nonceOlder = the command's nonceCaller). */
  decryptResponseParam(value: Uint8Array, nonceTPM: Uint8Array, nonceCaller: Uint8Array, data: Uint8Array): Uint8Array {
    return paramCrypt(this.needCipher(), this.hashAlg, value, nonceTPM, nonceCaller, data, false);
  }

  private needCipher(): SessionCipher {
    if (!this.cipher) throw new TpmSessionError(`session ${hex32(this.handle)} was started without a cipher: it cannot encrypt parameters`);
    return this.cipher;
  }
}
