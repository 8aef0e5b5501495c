/**
 * The authorization area (Part 1 §18.6): every session named must be TPM_RS_PW or a session of
 * this connection, and no authorization the app supplies ever reaches a hierarchy of the chip:
 * TPM_RH_OWNER in an app's command stands for the app's virtual owner, whose authorization is
 * the empty password; the service authorizes the real command itself.
 */
import { TPM_RH, TPMA_SESSION } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { passwordAuth, type AnyCommand, type Authorization } from '../tpm/command.js';
import { isUnkeyed, type Connection } from './app.js';
import { atSession, refuse } from './refusal.js';

/** The authorizations to forward, and which of them the service must fill with the real authorization of the hierarchy in that slot (owner or endorsement). */
export interface CheckedAuths {
  readonly auths: Authorization[];
  readonly ownerAuth: number[];
  /** Unkeyed HMAC sessions authorizing the virtual owner: followed if the parameters are rewritten. */
  readonly ownerHmac: number[];
  /** Sessions the TPM flushes when the command succeeds (no continueSession, Part 2 §8.4). */
  readonly ending: number[];
}

/** The app's authorization of a virtual hierarchy: the empty password, nothing else. */
export function checkVirtualAuth(a: Authorization, n: number): void {
  if (a.sessionHandle !== TPM_RH.RS_PW) refuse(TPM_RC.AUTH_TYPE, `session ${n}: a virtual hierarchy takes password authorization only`);
  // A password "session" may set continueSession only (Part 1 §19.8.4); no decrypt or audit here.
  if (a.sessionAttributes > TPMA_SESSION.continueSession) refuse(atSession(TPM_RC.ATTRIBUTES, n), `session ${n}: password authorization with session attributes`);
  // Owner authorization is not DA-protected: BAD_AUTH, as the TPM answers it.
  if (a.hmac.length !== 0) refuse(atSession(TPM_RC.BAD_AUTH, n), `session ${n}: the app's virtual hierarchy has an empty password`);
}

/** Checks the authorization area against the resolved handles. */
export function checkAuths(conn: Connection, cmd: AnyCommand, real: readonly number[], auths: readonly Authorization[]): CheckedAuths {
  const authIndex: number[] = [];
  cmd.handles.forEach((h, i) => {
    if (h.auth === 'auth') authIndex.push(i);
  });
  const out: Authorization[] = [];
  const ownerAuth: number[] = [];
  const ownerHmac: number[] = [];
  const ending: number[] = [];
  let usesObjectAuth = false;
  auths.forEach((a, k) => {
    const n = k + 1;
    const slot = authIndex[k];
    // OWNER: the app's virtual owner; ENDORSEMENT: its virtual endorsement hierarchy, which only
    // PolicySecret's slot admits (slots.ts 'secret': the app's virtual EK policy).
    if (slot !== undefined && (real[slot] === TPM_RH.OWNER || real[slot] === TPM_RH.ENDORSEMENT)) {
      // tpm2-tools authorize the owner with an unkeyed HMAC session (primary-auth.ts): its key is
      // the hierarchy's empty authValue, so it proves no more than the empty password does. The chip
      // checks it against the real authorization, EVE's empty one (followed where decide rewrites).
      if (a.sessionHandle !== TPM_RH.RS_PW && isUnkeyed(conn, a)) {
        ownerHmac.push(k);
        if (Math.floor(a.sessionAttributes / TPMA_SESSION.continueSession) % 2 === 0) ending.push(a.sessionHandle);
        out.push(a);
        return;
      }
      checkVirtualAuth(a, n);
      ownerAuth.push(k);
      out.push(passwordAuth());
      return;
    }
    if (slot !== undefined) usesObjectAuth = true;
    if (a.sessionHandle !== TPM_RH.RS_PW) {
      if (!conn.sessions.has(a.sessionHandle)) refuse(TPM_RC.REFERENCE_S0 + k, `session ${n}: not a session of this connection`);
      if (Math.floor(a.sessionAttributes / TPMA_SESSION.continueSession) % 2 === 0) ending.push(a.sessionHandle);
    }
    out.push({ sessionHandle: a.sessionHandle, nonceCaller: a.nonceCaller, sessionAttributes: a.sessionAttributes, hmac: a.hmac });
  });
  // The per-app throttle and the total of all apps (attack 5): stop long before the chip's lockout.
  if (usesObjectAuth && conn.app.daStopped()) {
    refuse(TPM_RC.LOCKOUT, `${conn.app.app} had ${conn.app.daFailures} authorization failures, all apps ${conn.app.daTotal?.failures() ?? conn.app.daFailures}`);
  }
  return { auths: out, ownerAuth, ownerHmac, ending };
}
