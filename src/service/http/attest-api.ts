/**
 * The attestation endpoints (docs/ATTESTATION.md): PCRs, quote, certify (by the app's AK or by
 * the device's key), credential activation, the EK and its certificate. Each acts only on the
 * caller's own keys. PLACEHOLDER: being written.
 */
import { unsupported } from '../protocol/errors.js';
import type { ApiDeps, Handlers } from './api.js';

export type AttestOp = 'read-pcrs' | 'quote' | 'certify' | 'device-certify' | 'activate-credential' | 'ek-public' | 'ek-certificate';

export function attestHandlers(_d: ApiDeps): Pick<Handlers, AttestOp> {
  const notYet = (): never => {
    throw unsupported('attestation is not available in this build');
  };
  return { 'read-pcrs': notYet, quote: notYet, certify: notYet, 'device-certify': notYet, 'activate-credential': notYet, 'ek-public': notYet, 'ek-certificate': notYet };
}
