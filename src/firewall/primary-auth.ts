/**
 * The authorization of an app's CreatePrimary, whose template the firewall rewrites
 * (primary.ts). A password is the virtual hierarchy's empty one. tpm2-tools authorize the
 * hierarchy with an HMAC session instead (for parameter encryption); when that session is
 * unsalted and unbound its key is empty — only the nonces go in — so the firewall can check the
 * app's HMAC over the template the app sent and compute the one for the rewritten template. The
 * chip's response HMAC covers only the response (rpHash), so the app's check of it still holds,
 * and parameter encryption does not depend on the parameters' contents. Any other session
 * (salted, bound, policy) is refused: its HMAC could not follow the rewrite.
 */
import { TPMA_SESSION, TPM_RH } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { cpHash, sessionHmac, type Authorization } from '../tpm/command.js';
import { CreatePrimary } from '../tpm/commands.js';
import type { Connection } from './app.js';
import { checkVirtualAuth } from './auths.js';
import { atSession, refuse } from './refusal.js';

const EMPTY = new Uint8Array(0);
/** Attributes an app's HMAC session may set here: no audit (the service keeps no audit digest). */
const ALLOWED = TPMA_SESSION.continueSession + TPMA_SESSION.decrypt + TPMA_SESSION.encrypt;

const handleName = (h: number): Uint8Array => {
  const n = new Uint8Array(4);
  new DataView(n.buffer).setUint32(0, h);
  return n;
};

const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The authorization to send with the rewritten parameters (`sent`: as the app sent them,
 * `rewritten`: as the chip gets them), after checking the app's.
 */
export function primaryAuth(conn: Connection, hierarchy: number, auth: Authorization, sent: Uint8Array, rewritten: Uint8Array): Authorization {
  if (auth.sessionHandle === TPM_RH.RS_PW) {
    checkVirtualAuth(auth, 1);
    return auth;
  }
  return followHmac(conn, CreatePrimary.code, [handleName(hierarchy)], auth, 1, sent, rewritten);
}

/**
 * An unkeyed HMAC session authorizing a virtual hierarchy (empty authValue) over parameters the
 * firewall rewrote: the app's HMAC checked over what it sent, the chip's computed over what the
 * chip gets. `names`: the Names of the handle area; `n`: the session's place (1-based).
 */
export function followHmac(conn: Connection, code: number, names: Uint8Array[], auth: Authorization, n: number, sent: Uint8Array, rewritten: Uint8Array): Authorization {
  const s = conn.unkeyed.get(auth.sessionHandle);
  if (!s || !conn.sessions.has(auth.sessionHandle)) refuse(TPM_RC.AUTH_TYPE, `session ${n}: only a password or an unsalted, unbound HMAC session of this connection authorizes a virtual hierarchy`);
  let rest = auth.sessionAttributes;
  for (const bit of [TPMA_SESSION.encrypt, TPMA_SESSION.decrypt, TPMA_SESSION.continueSession]) if (rest >= bit && Math.floor(rest / bit) % 2 === 1) rest -= bit;
  if (rest !== 0 || auth.sessionAttributes > ALLOWED) refuse(atSession(TPM_RC.ATTRIBUTES, n), `session ${n}: audit is not available here`);
  const key = { hashAlg: s.hashAlg, nonceTPM: s.nonceTPM, sessionKey: EMPTY, authValue: EMPTY };
  const theirs = sessionHmac(key, cpHash(s.hashAlg, code, names, sent), auth.nonceCaller, auth.sessionAttributes);
  // The virtual hierarchy's authValue is empty: any other HMAC is a wrong password (no DA effect).
  if (!same(theirs, auth.hmac)) refuse(atSession(TPM_RC.BAD_AUTH, n), `session ${n}: the virtual hierarchy has an empty password`);
  const hmac = sessionHmac(key, cpHash(s.hashAlg, code, names, rewritten), auth.nonceCaller, auth.sessionAttributes);
  return { ...auth, hmac };
}

export { handleName };
