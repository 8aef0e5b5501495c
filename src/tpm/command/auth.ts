/**
 * The authorization area's entries (Part 1 §18.6, §19.6): password and policy authorizations,
 * the command HMAC and cpHash.
 */
import { createHash, createHmac } from 'node:crypto';
import { NODE_HASH, TPM_RH, TPMA_SESSION } from '../constants.js';
import { TpmEncodeError } from '../wire/errors.js';

/**
 * One entry of a command's authorization area (Part 1 §18.6, TPMS_AUTH_COMMAND).
 * A password session is TPM_RS_PW with the password as hmac; a policy session is the
 * session's handle with a fresh nonceCaller and an empty hmac (no PolicyAuthValue here).
 */
export interface Authorization {
  sessionHandle: number;
  nonceCaller: Uint8Array;
  sessionAttributes: number;
  hmac: Uint8Array;
  /** When set, `hmac` is computed over the command (cpHash) instead of taken as is. */
  hmacFor?: SessionHmac;
}

/** What a session HMAC needs (Part 1 §19.6): for an unbound, unsalted session the key is empty. */
export interface SessionHmac {
  hashAlg: number;
  /** The TPM's latest nonce for this session (nonceOlder). */
  nonceTPM: Uint8Array;
  sessionKey?: Uint8Array;
  authValue?: Uint8Array;
}

/** The password session TPM_RS_PW with the given (default empty) password. */
export function passwordAuth(password: Uint8Array = new Uint8Array(0)): Authorization {
  return { sessionHandle: TPM_RH.RS_PW, nonceCaller: new Uint8Array(0), sessionAttributes: 0, hmac: password };
}

/**
 * A policy session's authorization. continueSession is set so the caller stays in charge of
 * flushing it (the TPM would otherwise flush it only when the command succeeds).
 */
export function policyAuth(
  sessionHandle: number,
  nonceCaller: Uint8Array,
  opts: { continueSession?: boolean; hmacFor?: SessionHmac } = {},
): Authorization {
  return {
    sessionHandle,
    nonceCaller,
    sessionAttributes: opts.continueSession === false ? 0 : TPMA_SESSION.continueSession,
    hmac: new Uint8Array(0),
    ...(opts.hmacFor ? { hmacFor: opts.hmacFor } : {}),
  };
}

/** The default authorization (empty password), shared: marshalCommand only reads it. */
const EMPTY_PASSWORD: Authorization = passwordAuth();

/** TPMS_AUTH_RESPONSE (Part 2 §10.13.3). */
export interface AuthResponse {
  nonceTPM: Uint8Array;
  sessionAttributes: number;
  hmac: Uint8Array;
}

/** cpHash (Part 1 §18.7): H(commandCode ‖ Name1 ‖ … ‖ parameters). */
export function cpHash(hashAlg: number, code: number, handleNames: Uint8Array[], params: Uint8Array): Uint8Array {
  const h = createHash(hashName(hashAlg));
  const cc = new Uint8Array(4);
  new DataView(cc.buffer).setUint32(0, code);
  h.update(cc);
  for (const n of handleNames) h.update(n);
  h.update(params);
  return new Uint8Array(h.digest());
}

/** Command HMAC (Part 1 §19.6.5): HMAC(sessionKey ‖ authValue, pHash ‖ nonceNewer ‖ nonceOlder ‖ attrs). */
export function sessionHmac(s: SessionHmac, pHash: Uint8Array, nonceCaller: Uint8Array, attrs: number): Uint8Array {
  const key = Buffer.concat([s.sessionKey ?? new Uint8Array(0), s.authValue ?? new Uint8Array(0)]);
  return new Uint8Array(
    createHmac(hashName(s.hashAlg), key).update(pHash).update(nonceCaller).update(s.nonceTPM).update(Uint8Array.of(attrs)).digest(),
  );
}

export function hashName(alg: number): string {
  const n = NODE_HASH[alg];
  if (!n) throw new TpmEncodeError(`hash algorithm 0x${alg.toString(16)} is not available for session HMACs`, '');
  return n;
}

