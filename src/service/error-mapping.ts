/**
 * Library failures → API errors. The TPM's own answer keeps its response code and tpm2-tss
 * text; a TPM that cannot be reached is 503 (retry later), one that does not answer in time
 * 504, one that answers nonsense 502. Anything unforeseen is 500 — never blamed on the caller.
 */
import { RestrictedSignError, TpmDecodeError, TpmError, TpmTransportError, TPM_RC, hex32 } from '../tpm/index.js';
import { internal, deadline, ServiceError, serviceBusy, tpmFailed, tpmUnavailable, unsupported } from './errors.js';

export function toServiceError(e: unknown): ServiceError {
  if (e instanceof ServiceError) return e;
  if (e instanceof TpmError) {
    if (e.is(TPM_RC.OBJECT_MEMORY) || e.is(TPM_RC.SESSION_MEMORY) || e.is(TPM_RC.MEMORY)) {
      return new ServiceError(503, 'BUSY', `the TPM is out of memory for this operation now (${e.message}); retry shortly`, {
        retryAfter: 1,
        tpmRc: hex32(e.rc),
        tpmText: e.message,
      });
    }
    const what = e.command ? `TPM2_${e.command}` : 'a TPM command';
    return tpmFailed(`${what} failed: ${e.message}`, { tpmRc: hex32(e.rc), tpmText: e.message });
  }
  if (e instanceof TpmTransportError) {
    switch (e.code) {
      case 'TIMEOUT':
      case 'ABORTED':
        return deadline(`the TPM did not answer in time: ${e.message}`);
      case 'PROTOCOL':
        return tpmFailed(`the TPM's answer was malformed: ${e.message}`);
      case 'BUSY':
        return serviceBusy(`the TPM device is held by another program: ${e.message}`);
      default:
        return tpmUnavailable(`the TPM is not reachable: ${e.message}`);
    }
  }
  if (e instanceof TpmDecodeError) return tpmFailed(`the TPM's answer could not be decoded: ${e.message}`);
  if (e instanceof RestrictedSignError) return unsupported(e.message);
  return internal();
}

/** Whether `e` says the TPM itself is gone (as opposed to refusing one command). */
export function isTpmUnreachable(e: unknown): boolean {
  return e instanceof TpmTransportError && e.code !== 'PROTOCOL' && e.code !== 'ABORTED';
}
