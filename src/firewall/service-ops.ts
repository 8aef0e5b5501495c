/**
 * Commands the firewall never forwards as they are, because their effect must stay inside the
 * app (docs/FIREWALL.md "What is virtualized"): CreatePrimary in the owner or endorsement
 * hierarchy (the app's own primary, never the chip's — so never EVE's SRK, attack 1) and
 * EvictControl (the app's virtual persistent handles, kept in the service's registry and quota,
 * not chip NV, attack 9). The service performs them; the decision says exactly what.
 */
import { TPM_HT, TPM_RH, hex32 } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import type { Authorization } from '../tpm/command.js';
import type { TPM2B_SENSITIVE_CREATE, TPMT_PUBLIC, TPML_PCR_SELECTION } from '../tpm/structures.js';
import { type Infer } from '../tpm/wire/codec.js';
import { APP_PERSISTENT, EVE_PERSISTENT, inRange, isUnkeyed, type Connection } from './app.js';
import { checkVirtualAuth } from './auths.js';
import type { ResponsePlan } from './response.js';
import { atHandle, atParam, refuse } from './refusal.js';
import { resolveSlot, typeOf } from './slots.js';

export type ServiceOp =
  | {
      readonly op: 'CreatePrimary';
      /** TPM_RH_OWNER or TPM_RH_ENDORSEMENT: which of the app's virtual hierarchies. */
      readonly hierarchy: number;
      readonly inSensitive: Infer<typeof TPM2B_SENSITIVE_CREATE>;
      readonly inPublic: TPMT_PUBLIC;
      readonly outsideInfo: Uint8Array;
      readonly creationPCR: Infer<typeof TPML_PCR_SELECTION>;
      /** How the service performs it: the app's template, the authorization checked (decide.ts). */
      readonly forward: { readonly kind: 'forward'; readonly command: Uint8Array; readonly plan: ResponsePlan; readonly ownerAuth: readonly number[] };
    }
  /**
   * Make the object at `real` the app's persistent `persistent` (registry + quota). `session`:
   * the app's unkeyed HMAC session authorizing it, whose HMAC covers the object's Name, which
   * only the service can read: the service checks it (absent: the empty password, checked here).
   */
  | { readonly op: 'Persist'; readonly real: number; readonly persistent: number; readonly session?: Authorization }
  /** Remove the app's persistent `persistent`. */
  | { readonly op: 'Evict'; readonly persistent: number; readonly session?: Authorization };

/**
 * CreatePrimary (Part 3 §24.1) from an app: the NULL hierarchy is forwarded, owner/endorsement
 * are the service's (both with the app's template, decide.ts); any other hierarchy is refused.
 */
export function createPrimaryOp(primaryHandle: number, params: Record<string, unknown>): Omit<ServiceOpOf<'CreatePrimary'>, 'forward'> | 'forward' {
  if (primaryHandle === TPM_RH.NULL) return 'forward';
  if (primaryHandle !== TPM_RH.OWNER && primaryHandle !== TPM_RH.ENDORSEMENT) {
    refuse(atHandle(TPM_RC.HIERARCHY, 1), `primaryHandle ${hex32(primaryHandle)}: only the owner, endorsement or NULL hierarchy`);
  }
  return {
    op: 'CreatePrimary',
    hierarchy: primaryHandle,
    inSensitive: params.inSensitive as ServiceOpOf<'CreatePrimary'>['inSensitive'],
    inPublic: params.inPublic as TPMT_PUBLIC,
    outsideInfo: params.outsideInfo as Uint8Array,
    creationPCR: params.creationPCR as ServiceOpOf<'CreatePrimary'>['creationPCR'],
  };
}

type ServiceOpOf<K extends ServiceOp['op']> = Extract<ServiceOp, { op: K }>;

/** EvictControl (Part 3 §28.5) from an app: persist into, or evict from, its virtual range. */
export function evictControlOp(conn: Connection, handles: readonly number[], auth: Authorization, persistentHandle: number): ServiceOp {
  const [authHandle, objectHandle] = handles as [number, number];
  if (authHandle !== TPM_RH.OWNER) refuse(atHandle(TPM_RC.HIERARCHY, 1), `auth ${hex32(authHandle)}: only the app's owner`);
  const password = auth.sessionHandle === TPM_RH.RS_PW;
  if (password) checkVirtualAuth(auth, 1);
  else if (!isUnkeyed(conn, auth)) refuse(TPM_RC.AUTH_TYPE, 'session 1: only a password or an unsalted, unbound HMAC session of this connection authorizes the virtual owner');
  const session = password ? {} : { session: auth };
  const app = conn.app;
  if (!inRange(persistentHandle, APP_PERSISTENT) || EVE_PERSISTENT.includes(persistentHandle)) {
    refuse(atParam(TPM_RC.RANGE, 1), `persistentHandle ${hex32(persistentHandle)} is not in the app's range`);
  }
  if (typeOf(objectHandle) === TPM_HT.PERSISTENT) {
    // Evicting needs only the record, not the object made again.
    if (!app.persistents.has(objectHandle)) refuse(atHandle(TPM_RC.HANDLE, 2), `handle 2 (${hex32(objectHandle)}): not a persistent handle of this app`);
    if (objectHandle !== persistentHandle) refuse(atParam(TPM_RC.HANDLE, 1), 'evicting: persistentHandle must equal objectHandle');
    return { op: 'Evict', persistent: persistentHandle, ...session };
  }
  const real = resolveSlot(conn, 'object', objectHandle, 2);
  if (app.persistents.has(persistentHandle)) refuse(TPM_RC.NV_DEFINED, `${hex32(persistentHandle)} is in use`);
  if (app.persistents.size >= app.limits.persistents) refuse(TPM_RC.NV_SPACE, `quota of ${app.limits.persistents} persistent handles`);
  return { op: 'Persist', real, persistent: persistentHandle, ...session };
}
