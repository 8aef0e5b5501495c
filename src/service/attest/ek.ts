/**
 * The TCG Endorsement Key and its certificate, read only. The EK is the persisted one that
 * matches the TCG template, else made again (CreatePrimary is deterministic) and flushed. The
 * certificate is read from its TCG NV index only (0x01C00002 RSA, 0x01C0000A ECC): no other NV
 * index is ever read here.
 */
import { TPM2B_PUBLIC, TPM_RC, TPM_RH, TpmError, encode, nvRead, nvReadPublic, publicToPem, readPublic, withEk, type TpmRunner } from '../../tpm/index.js';
import { notFound } from '../protocol/errors.js';
import type { EkCertificateAnswer, EkPublicAnswer } from '../protocol/messages.js';
import type { KeyType } from '../protocol/vocabulary.js';

/** TCG EK Credential Profile: where a TPM's EK certificates are. */
export const EK_CERT_INDEX: Readonly<Record<KeyType, number>> = { rsa: 0x01c00002, ecc: 0x01c0000a };

/** TPMA_NV_AUTHREAD (Part 2 §13.4): the index's own (empty) auth may read it; else the owner's. */
const TPMA_NV_AUTHREAD = 0x00040000;

const indexText = (h: number): string => `0x${h.toString(16).toUpperCase().padStart(8, '0')}`;

export async function ekPublic(tpm: TpmRunner, type: KeyType): Promise<EkPublicAnswer> {
  const info = await withEk(tpm, (ek) => readPublic(tpm, ek), { ekType: type });
  return {
    type,
    pem: publicToPem(info.publicArea),
    name: Buffer.from(info.name).toString('hex'),
    public: Buffer.from(encode(TPM2B_PUBLIC, info.publicArea)).toString('base64'),
  };
}

export async function ekCertificate(tpm: TpmRunner, type: KeyType): Promise<EkCertificateAnswer> {
  const index = EK_CERT_INDEX[type];
  let attributes: number;
  try {
    attributes = (await nvReadPublic(tpm, index)).nvPublic.attributes;
  } catch (e) {
    if (e instanceof TpmError && e.is(TPM_RC.HANDLE)) throw notFound(`this TPM has no ${type.toUpperCase()} EK certificate (NV index ${indexText(index)})`);
    throw e;
  }
  const stored = await nvRead(tpm, index, (attributes & TPMA_NV_AUTHREAD) !== 0 ? {} : { authHandle: TPM_RH.OWNER });
  return { type, index: indexText(index), der: Buffer.from(derOnly(stored)).toString('base64') };
}

/**
 * The certificate as stored, except that zeros after a complete DER SEQUENCE are dropped (some
 * TPMs store the certificate in a larger index padded with zeros).
 */
export function derOnly(bytes: Uint8Array): Uint8Array {
  const total = derLength(bytes);
  if (total === undefined || total >= bytes.length) return bytes;
  return bytes.subarray(total).every((b) => b === 0) ? bytes.subarray(0, total) : bytes;
}

/** Header plus content length of a DER SEQUENCE at the start of `b`, if it is one. */
function derLength(b: Uint8Array): number | undefined {
  if (b.length < 2 || b[0] !== 0x30) return undefined;
  const first = b[1]!;
  if (first < 0x80) return 2 + first;
  const n = first - 0x80;
  if (n < 1 || n > 3 || b.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return 2 + n + len;
}
