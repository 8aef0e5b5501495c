/**
 * PCR selections checked against the banks the TPM has allocated (TPM2_GetCapability
 * TPM_CAP_PCRS), so that a bank or PCR it lacks is a clear refusal rather than a TPM error
 * mid-read; and PCR values as the API answers them.
 */
import {
  GetCapability,
  TPM_CAP,
  bankName,
  fromPcrSelection,
  type PcrBank,
  type TpmRunner,
} from '../../tpm/index.js';
import { ServiceError } from '../protocol/errors.js';
import type { PcrValue } from '../protocol/messages.js';

/** The default selection reaches PCRs 0–23 (the PC Client platform's). */
const DEFAULT_PCRS = 24;

/** The allocated banks with their PCRs (TPML_PCR_SELECTION of TPM_CAP_PCRS). */
export async function allocatedBanks(tpm: TpmRunner): Promise<PcrBank[]> {
  const r = await tpm.run(GetCapability, { capability: TPM_CAP.PCRS, property: 0, propertyCount: 1 });
  const d = r.capabilityData;
  if (d.capability !== TPM_CAP.PCRS) throw new ServiceError(502, 'TPM_ERROR', 'the TPM answered TPM_CAP_PCRS with another capability');
  return fromPcrSelection(d.data).filter((b) => b.pcrs.length > 0);
}

/** Every allocated bank with PCRs 0–23: what read-pcrs reads when no selection is given. */
export function defaultSelection(allocated: readonly PcrBank[]): PcrBank[] {
  return allocated.map((b) => ({ hash: b.hash, pcrs: b.pcrs.filter((p) => p < DEFAULT_PCRS) })).filter((b) => b.pcrs.length > 0);
}

/** Refuses (422) a bank the TPM has not allocated, or a PCR it does not have. */
export function checkAllocated(selection: readonly PcrBank[], allocated: readonly PcrBank[]): void {
  const have = allocated.map((b) => bankName(b.hash)).join(', ') || 'none';
  for (const b of selection) {
    const a = allocated.find((x) => x.hash === b.hash);
    if (!a) throw new ServiceError(422, 'UNSUPPORTED', `PCR bank ${bankName(b.hash)} is not allocated in this TPM (allocated: ${have})`);
    const missing = b.pcrs.filter((p) => !a.pcrs.includes(p));
    if (missing.length) throw new ServiceError(422, 'UNSUPPORTED', `this TPM has no PCR ${missing.join(', ')} in bank ${bankName(b.hash)}`);
  }
}

/** Values in selection order (banks as selected, PCRs ascending) → the answer's list. */
export function pcrValues(selection: readonly PcrBank[], values: readonly Uint8Array[]): PcrValue[] {
  const slots = selection.flatMap((b) => b.pcrs.map((pcr) => ({ bank: bankName(b.hash), pcr })));
  return slots.map((s, i) => ({ ...s, value: Buffer.from(values[i]!).toString('hex') }));
}

