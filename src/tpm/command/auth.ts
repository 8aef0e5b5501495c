/**
 * The authorization area (Part 1 §18.6–18.8, §19.6): TPMS_AUTH_COMMAND and TPMS_AUTH_RESPONSE
 * as codecs — the only place their bytes are written or read — plus password and policy
 * authorizations, cpHash and the command HMAC.
 */
import { createHash, createHmac } from 'node:crypto';
import { NODE_HASH, TPM_RH, TPMA_SESSION } from '../constants.js';
import { TPM2B_AUTH, TPM2B_NONCE } from '../structures.js';
import { u8, u32, type Codec } from '../wire/codec.js';
import { TpmEncodeError } from '../wire/errors.js';
import type { Reader } from '../wire/reader.js';
import type { Writer } from '../wire/writer.js';

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

/** TPMS_AUTH_RESPONSE (Part 2 §10.13.3). */
export interface AuthResponse {
  nonceTPM: Uint8Array;
  sessionAttributes: number;
  hmac: Uint8Array;
}

/**
 * TPMS_AUTH_COMMAND (Part 2 §10.13.2). Written out by hand rather than with `struct` because
 * every authorized command goes through it (the hot path); `meta` describes the same shape.
 */
export const TPMS_AUTH_COMMAND: Codec<Authorization> = {
  meta: { kind: 'struct', name: 'TPMS_AUTH_COMMAND', fields: { sessionHandle: u32, nonceCaller: TPM2B_NONCE, sessionAttributes: u8, hmac: TPM2B_AUTH } },
  encode(w, a) {
    w.u32(a.sessionHandle);
    TPM2B_NONCE.encode(w, a.nonceCaller);
    w.u8(a.sessionAttributes);
    TPM2B_AUTH.encode(w, a.hmac);
  },
  decode(r) {
    const sessionHandle = r.u32();
    const nonceCaller = TPM2B_NONCE.decode(r);
    const sessionAttributes = r.u8();
    const hmac = TPM2B_AUTH.decode(r);
    return { sessionHandle, nonceCaller, sessionAttributes, hmac };
  },
};

/** TPMS_AUTH_RESPONSE (Part 2 §10.13.3), by hand for the same reason. */
export const TPMS_AUTH_RESPONSE: Codec<AuthResponse> = {
  meta: { kind: 'struct', name: 'TPMS_AUTH_RESPONSE', fields: { nonceTPM: TPM2B_NONCE, sessionAttributes: u8, hmac: TPM2B_AUTH } },
  encode(w, a) {
    TPM2B_NONCE.encode(w, a.nonceTPM);
    w.u8(a.sessionAttributes);
    TPM2B_AUTH.encode(w, a.hmac);
  },
  decode(r) {
    const nonceTPM = TPM2B_NONCE.decode(r);
    const sessionAttributes = r.u8();
    const hmac = TPM2B_AUTH.decode(r);
    return { nonceTPM, sessionAttributes, hmac };
  },
};

/** The most sessions a command may carry (Part 1 §18.6). */
export const MAX_SESSIONS = 3;

/**
 * Writes a command's authorization area: authorizationSize (UINT32) then the entries.
 * `entry(i)` gives the i-th entry; `label(i)` names it in error messages.
 */
export function writeAuthArea(w: Writer, count: number, entry: (i: number) => Authorization, label: (i: number) => string): void {
  const at = w.length;
  w.u32(0);
  for (let i = 0; i < count; i++) {
    w.path.push(label(i));
    TPMS_AUTH_COMMAND.encode(w, entry(i));
    w.path.pop();
  }
  w.patchU32(at, w.length - at - 4);
}

/**
 * Reads a command's authorization area: its size must be exactly filled by 1 to 3 entries
 * (Part 1 §18.6).
 */
export function readAuthArea(r: Reader): Authorization[] {
  const at = r.offset;
  const authSize = r.u32();
  if (authSize > r.remaining) r.fail(`authorizationSize ${authSize} is more than the ${r.remaining} bytes left`, at);
  const auths: Authorization[] = [];
  r.exactly(authSize, 'authorization area', (sub) => {
    while (sub.remaining > 0) {
      if (auths.length >= MAX_SESSIONS) sub.fail(`more than ${MAX_SESSIONS} sessions`);
      sub.path.push(`authorization[${auths.length}]`);
      auths.push(TPMS_AUTH_COMMAND.decode(sub));
      sub.path.pop();
    }
  });
  if (auths.length === 0) r.fail('TPM_ST_SESSIONS with an empty authorization area', at);
  return auths;
}

/** Reads the `count` TPMS_AUTH_RESPONSEs that end a response with sessions. */
export function readAuthResponses(r: Reader, count: number): AuthResponse[] {
  const out: AuthResponse[] = [];
  for (let i = 0; i < count; i++) {
    r.path.push(`authResponse[${i}]`);
    out.push(TPMS_AUTH_RESPONSE.decode(r));
    r.path.pop();
  }
  return out;
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

/** rpHash (Part 1 §18.8): H(responseCode ‖ commandCode ‖ parameters); only successes carry one. */
export function rpHash(hashAlg: number, code: number, params: Uint8Array): Uint8Array {
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(4, code); // responseCode 0 then commandCode
  return new Uint8Array(createHash(hashName(hashAlg)).update(head).update(params).digest());
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
