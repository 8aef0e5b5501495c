/**
 * TPM2_Quote by the caller's AK, with the PCR values that were quoted: in the same job the
 * PCRs are read after the quote and their digest (the signature's hash over the values in
 * selection order) must be the quote's pcrDigest; if a PCR was extended in between, quote
 * and read again (3 tries), so the values answered are the ones signed.
 */
import { createHash } from 'node:crypto';
import { NODE_HASH, pcrRead, quote, signatureHash, toPcrSelection, type AttestResult, type PcrBank, type TpmRunner, type TPM_ST_ATTEST } from '../../tpm/index.js';
import { withEntryKey } from '../keys/key-in-tpm.js';
import { conflict, ServiceError } from '../protocol/errors.js';
import type { JobKey } from './key-jobs.js';

export interface QuoteOutcome {
  result: AttestResult<typeof TPM_ST_ATTEST.QUOTE>;
  values: Uint8Array[];
}

function pcrDigest(hashAlg: number | undefined, values: readonly Uint8Array[]): Uint8Array | undefined {
  const name = hashAlg === undefined ? undefined : NODE_HASH[hashAlg];
  if (name === undefined) return undefined;
  const h = createHash(name);
  for (const v of values) h.update(v);
  return h.digest();
}

export async function quoteWithValues(tpm: TpmRunner, key: JobKey, selection: readonly PcrBank[], qualifyingData: Uint8Array): Promise<QuoteOutcome> {
  const pcrs = toPcrSelection(selection);
  return withEntryKey(tpm, key.entry, key, async (handle) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const result = await quote(tpm, handle, { pcrs, qualifyingData });
      const read = await pcrRead(tpm, pcrs);
      const digest = pcrDigest(signatureHash(result.signature), read.values);
      if (digest === undefined) throw new ServiceError(422, 'UNSUPPORTED', 'the quote is signed with a hash this service cannot compute');
      if (Buffer.from(digest).equals(Buffer.from(result.decoded.attested.pcrDigest))) return { result, values: read.values };
    }
    throw conflict('the PCRs kept changing while they were quoted (3 tries); retry');
  });
}
