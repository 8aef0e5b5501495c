/**
 * The allow-list: a tenant may name only a handle it created and that is in use. Everything
 * else is refused before any TPM command, with the same answer whether or not the handle
 * exists (so the refusal tells nothing about other tenants' or EVE's objects); the audit log
 * keeps the precise reason.
 */
import { conflict, forbidden, type ServiceError } from '../protocol/errors.js';
import { formatHandle, isPersistentHandle, isReservedHandle } from '../protocol/handles.js';
import type { HandlePool } from '../keys/pool.js';
import type { KeyEntry, KeyRegistry } from '../keys/registry.js';
import { recordOf, type Tenant } from './tenants.js';

export type Decision = { ok: true; entry: KeyEntry } | { ok: false; reason: string; error: ServiceError };

export function authorizeKey(registry: KeyRegistry, pool: HandlePool, tenant: Tenant, handle: number): Decision {
  const refuse = (reason: string): Decision => ({ ok: false, reason, error: forbidden(`handle ${formatHandle(handle)} is not one of your keys`) });
  if (!isPersistentHandle(handle)) return refuse('not a persistent handle');
  if (isReservedHandle(handle)) return refuse('reserved handle');
  if (!pool.contains(handle)) return refuse('outside the key pool');
  const entry = registry.get(handle);
  if (!entry) return refuse('no such key');
  // The owner is a tenant record: a later tenant with the same name owns nothing of this one.
  if (entry.owner !== recordOf(tenant)) return refuse(`owned by another tenant`);
  if (entry.state !== 'committed') {
    return { ok: false, reason: `key is ${entry.state}`, error: conflict(`key ${formatHandle(handle)} is being ${entry.state === 'pending-create' ? 'created' : 'deleted'}`) };
  }
  return { ok: true, entry };
}
