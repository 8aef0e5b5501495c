/**
 * Policy commands (docs/FIREWALL.md "The policy table"). Each changes only the policy digest of
 * a session of the connection, and a session authorizes nothing but what the app can name (its
 * own objects and NV), so the checks are on the entities and tickets the commands name.
 */
import { TPM_RH, hex32 } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import * as P from './commands-policy.js';
import { atParam, refuse } from './refusal.js';
import type { Rule } from './rule.js';

/**
 * PolicySigned with the app's own key: no ticket (Part 3 §23.3: one is made only when expiration
 * is negative). The chip would stamp it with the key's real hierarchy, owner or endorsement, and
 * PolicyTicket, which could use it, stays refused; so none is minted.
 */
function policySigned(p: Record<string, unknown>): void {
  if ((p.expiration as number) < 0) refuse(atParam(TPM_RC.VALUE, 4), 'PolicySigned: no ticket (expiration must not be negative)');
}

/**
 * PolicyAuthorize's checkTicket comes from VerifySignature with the app's own key (its keys
 * live under its primaries in the real owner or endorsement hierarchy; a NULL-hierarchy key,
 * LoadExternal's, gets a NULL ticket, which the chip does not accept here). The chip checks the
 * ticket's HMAC, so it holds only if that key really signed approvedPolicy ‖ policyRef; and the
 * session it satisfies authorizes only the app's entities. Platform or any other hierarchy:
 * refused, since an app can mint none.
 */
function policyAuthorize(p: Record<string, unknown>): void {
  const h = (p.checkTicket as { hierarchy: number }).hierarchy;
  if (h !== TPM_RH.OWNER && h !== TPM_RH.ENDORSEMENT && h !== TPM_RH.NULL) {
    refuse(atParam(TPM_RC.TICKET, 4), `PolicyAuthorize: checkTicket hierarchy ${hex32(h)}: only owner, endorsement or NULL`);
  }
}

export const policyRules: readonly Rule[] = [
  { cmd: P.PolicyPCR, slots: ['session'] },
  { cmd: P.PolicyCommandCode, slots: ['session'] },
  { cmd: P.PolicyAuthValue, slots: ['session'] },
  { cmd: P.PolicyPassword, slots: ['session'] },
  { cmd: P.PolicyOR, slots: ['session'] },
  { cmd: P.PolicyRestart, slots: ['session'] },
  { cmd: P.PolicyCpHash, slots: ['session'] },
  { cmd: P.PolicyNameHash, slots: ['session'] },
  { cmd: P.PolicyDuplicationSelect, slots: ['session'] },
  { cmd: P.PolicyNV, slots: ['nvAuth', 'nv', 'session'] },
  { cmd: P.PolicySigned, slots: ['object', 'session'], params: policySigned },
  { cmd: P.PolicyAuthorize, slots: ['session'], params: policyAuthorize },
];
