/**
 * The library's refusals in attestation, as the API's 4xx: each says what the caller sent that
 * cannot be done (a bad selection, a credential for another key, an unallocated bank), so none
 * of them becomes a 5xx. Anything else passes on to the common mapping (tpm/error-mapping.ts).
 */
import { hex32 } from '../../tpm/constants.js';
import { AppBindingError, AttestError, CredentialError, NvError, PcrFormatError, TpmError } from '../../tpm/index.js';
import { badRequest, ServiceError } from '../protocol/errors.js';

export function explainAttestError(e: unknown): unknown {
  if (e instanceof ServiceError) return e;
  // A credential the TPM refused (made for another Name or EK) is well formed: this key cannot
  // activate it (422, the tools' "unsupported"); a credential that does not parse is a 400.
  if (e instanceof CredentialError && e.cause instanceof TpmError) return new ServiceError(422, 'UNSUPPORTED', e.message, { cause: e });
  if (e instanceof PcrFormatError || e instanceof AppBindingError || e instanceof CredentialError) return badRequest(e.message);
  if (e instanceof AttestError || e instanceof NvError) return new ServiceError(422, 'UNSUPPORTED', e.message);
  // A TPM parameter error is the TPM refusing a value the request chose (a scheme, a PCR).
  if (e instanceof TpmError && e.kind === 'parameter') {
    return new ServiceError(422, 'UNSUPPORTED', `the TPM refused TPM2_${e.command ?? 'command'}: ${e.message}`, { tpmRc: hex32(e.rc), tpmText: e.message, cause: e });
  }
  return e;
}
