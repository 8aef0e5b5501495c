/**
 * The handle area, slot by slot: what kind of entity each slot of an allowed command may name
 * for an app, and the real handle it stands for. Anything else is answered as the TPM answers
 * a handle that does not exist or has the wrong type, so an app learns nothing about handles
 * that are not its own (Part 2 §6.6.3: TPM_RC_HANDLE, TPM_RC_VALUE, TPM_RC_REFERENCE_Hn).
 */
import { TPM_HT, TPM_RH, hex32 } from '../tpm/constants.js';
import { TPM_RC } from '../tpm/rc.js';
import { EVE_PERSISTENT, inRange, type Connection } from './app.js';
import { atHandle, notLoaded, refuse } from './refusal.js';

/**
 * - object: the app's transient object or sequence (virtual 0x80…) or virtual persistent (0x81…)
 * - saveable: the app's transient object or session (ContextSave)
 * - objectOrNull: an object, or TPM_RH_NULL (StartAuthSession tpmKey)
 * - bind: an object, the app's NV index, or TPM_RH_NULL (StartAuthSession bind)
 * - entity: an object or the app's NV index
 * - secret: an entity, or TPM_RH_ENDORSEMENT standing for the app's virtual endorsement
 *   hierarchy (PolicySecret authHandle: the policy of the app's virtual EK, docs/FIREWALL.md "The EK")
 * - session: the app's HMAC or policy session
 * - nv: an NV index in the app's range
 * - nvAuth: an NV index in the app's range, or TPM_RH_OWNER standing for the app's virtual owner
 * - owner: TPM_RH_OWNER standing for the app's virtual owner (NV_DefineSpace/UndefineSpace)
 */
export type Slot = 'object' | 'saveable' | 'objectOrNull' | 'bind' | 'entity' | 'secret' | 'session' | 'nv' | 'nvAuth' | 'owner';

/** The handle type: the most significant octet (Part 2 §7.2); division keeps UINT32 exact. */
export const typeOf = (h: number): number => Math.floor(h / 0x1000000);

const isSession = (h: number): boolean => typeOf(h) === TPM_HT.HMAC_SESSION || typeOf(h) === TPM_HT.POLICY_SESSION;

/** The real handle for handle n (1-based) in a slot, or a refusal. */
export function resolveSlot(conn: Connection, slot: Slot, h: number, n: number): number {
  const t = typeOf(h);
  const what = `handle ${n} (${hex32(h)})`;
  if (t === TPM_HT.PERMANENT) {
    if (h === TPM_RH.NULL && (slot === 'objectOrNull' || slot === 'bind')) return h;
    if (h === TPM_RH.OWNER && (slot === 'owner' || slot === 'nvAuth')) return h;
    if (h === TPM_RH.ENDORSEMENT && slot === 'secret') return h;
    refuse(atHandle(TPM_RC.HIERARCHY, n), `${what}: no hierarchy or permanent handle is allowed here`);
  }
  if (slot === 'owner') refuse(atHandle(TPM_RC.VALUE, n), `${what}: must be TPM_RH_OWNER`);
  if (t === TPM_HT.NV_INDEX && (slot === 'nv' || slot === 'nvAuth' || slot === 'bind' || slot === 'entity' || slot === 'secret')) {
    if (!inRange(h, conn.app.nvRange)) refuse(atHandle(TPM_RC.HANDLE, n), `${what}: not an NV index of this app`);
    return h;
  }
  if (isSession(h) && (slot === 'session' || slot === 'saveable')) {
    if (!conn.sessions.has(h)) refuse(notLoaded(n), `${what}: not a session of this connection`);
    return h;
  }
  const objects = slot === 'object' || slot === 'objectOrNull' || slot === 'bind' || slot === 'entity' || slot === 'secret' || slot === 'saveable';
  if (t === TPM_HT.TRANSIENT && objects) {
    const real = conn.transients.get(h);
    if (real === undefined) refuse(notLoaded(n), `${what}: not an object of this connection`);
    return real;
  }
  if (t === TPM_HT.PERSISTENT && objects && slot !== 'saveable') {
    const real = EVE_PERSISTENT.includes(h) ? undefined : conn.app.persistents.get(h);
    if (real === undefined) refuse(atHandle(TPM_RC.HANDLE, n), `${what}: not a persistent handle of this app`);
    return real;
  }
  refuse(atHandle(TPM_RC.VALUE, n), `${what}: wrong kind of handle for this command`);
}
