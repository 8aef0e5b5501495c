/**
 * Library failures → API errors. The TPM's own answer keeps its response code and tpm2-tss
 * text; a TPM that cannot be reached is 503 (retry later), one that does not answer in time
 * 504, one that answers nonsense 502. Anything unforeseen is 500 — never blamed on the caller.
 *
 * What a tenant reads names nothing of the host: transport errors carry device and socket
 * paths, addresses and errno texts, so tenants get a fixed sentence with the request id and
 * the host log gets the real reason (hostReason) under the same id. TPM response code texts
 * and decode errors (structure field names, byte offsets) describe the TPM's answer, not the
 * host, and are shown.
 */
import { hex32 } from '../../tpm/constants.js';
import { RestrictedSignError, TpmDecodeError, TpmError, TpmTransportError, TPM_RC } from '../../tpm/index.js';
import { internal, deadline, ServiceError, serviceBusy, tpmFailed, tpmUnavailable, unsupported } from '../protocol/errors.js';

/** ` (request <id>)`, so a tenant can quote it to the operator, who finds the reason in the log. */
const ref = (requestId: string | undefined): string => (requestId === undefined ? '' : ` (request ${requestId})`);

/** The tenant's view of `e`; `requestId` is quoted in messages whose details stay in the log. */
export function toServiceError(e: unknown, requestId?: string): ServiceError {
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
        return deadline(`the TPM did not answer in time${ref(requestId)}`);
      case 'PROTOCOL':
        return tpmFailed(`the TPM's answer was malformed${ref(requestId)}`);
      case 'BUSY':
        return serviceBusy(`the TPM is in use by another program; retry later${ref(requestId)}`);
      default:
        return tpmUnavailable(`the TPM is unavailable; retry later${ref(requestId)}`);
    }
  }
  if (e instanceof TpmDecodeError) return tpmFailed(`the TPM's answer could not be decoded: ${e.message}`);
  if (e instanceof RestrictedSignError) return unsupported(e.message);
  return internal(`internal error${ref(requestId)}`);
}

/**
 * What toServiceError kept from the tenant, for the host log: the transport's own words (paths,
 * errno) or, for a bug, the error itself. undefined when the tenant was told everything.
 */
export function hostReason(e: unknown): string | undefined {
  // A tenant-safe error made from a host failure keeps that failure as its cause.
  if (e instanceof ServiceError) return e.cause === undefined ? undefined : hostReason(e.cause);
  if (e instanceof TpmError || e instanceof TpmDecodeError || e instanceof RestrictedSignError) return undefined;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return typeof e === 'string' ? e : `a thrown ${e === null ? 'null' : typeof e}`;
}

/** Whether `e` says the TPM itself is gone (as opposed to refusing one command). */
export function isTpmUnreachable(e: unknown): boolean {
  return e instanceof TpmTransportError && e.code !== 'PROTOCOL' && e.code !== 'ABORTED';
}
