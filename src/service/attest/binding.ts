/**
 * The qualifying data an attestation carries: the caller's nonce as it is, or bound to the
 * calling app (its identity as the service knows it: tenant id, and CID when bound to one),
 * so that a verifier can tell which app's key produced it (tpm/attest/app-binding.ts).
 */
import { appIdentity, appQualifyingData, type AppBindingLabel } from '../../tpm/index.js';
import type { AppBinding } from '../protocol/messages.js';
import type { Tenant } from '../tenants/tenants.js';

export interface Qualifying {
  qualifyingData: Uint8Array;
  binding?: AppBinding;
}

export function boundTo(label: AppBindingLabel, tenant: Tenant, nonce: Uint8Array): Required<Qualifying> {
  const identity = appIdentity(tenant.id, tenant.cid);
  return { qualifyingData: appQualifyingData(label, identity, nonce), binding: { identity, label } };
}

/** Quote and certify by the app's AK: the nonce, or with `bind` its EVE-APP binding. */
export function qualifyingFor(tenant: Tenant, nonce: Uint8Array, bind: boolean): Qualifying {
  return bind ? boundTo('EVE-APP', tenant, nonce) : { qualifyingData: nonce };
}
