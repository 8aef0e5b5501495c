/**
 * File and text formats of the attestation flow, as tpm2-tools uses them:
 * - a PCR selection string as `tpm2_pcrread`/`tpm2_quote -l` take it (`sha256:0,1,2+sha1:0`);
 * - `quote.msg` (the TPM2B_ATTEST's bytes, i.e. the marshalled TPMS_ATTEST the signature covers)
 *   and `quote.sig` (a marshalled TPMT_SIGNATURE): see `quoteFiles`;
 * - `pcrs.out` as `tpm2_quote -o` writes and `tpm2_checkquote -f` reads it (tpm2-tools 5.x
 *   "serialized" form, checked against the stock tools): the C structures dumped in the host's
 *   byte order (little-endian here) — a TPML_PCR_SELECTION (UINT32 count, then 16 slots of
 *   {UINT16 hash, UINT8 sizeofSelect, BYTE pcrSelect[4], 1 pad byte}: 132 bytes), a UINT32
 *   number of TPML_DIGESTs, then each TPML_DIGEST (UINT32 count, then 8 slots of {UINT16 size,
 *   BYTE buffer[64]}: 532 bytes). The digests are the PCR values in selection order, 8 per list.
 */
import { DIGEST_SIZE, TPM_ALG } from '../constants.js';
import { TPMT_SIGNATURE, isHashAlg, type TPMS_PCR_SELECTION, type TpmiAlgHash } from '../structures.js';
import { encode } from '../wire/codec.js';

export class PcrFormatError extends Error {
  override readonly name = 'PcrFormatError';
}

/** Hash names as tpm2-tools spells them. */
const BANK_NAMES: ReadonlyArray<readonly [string, TpmiAlgHash]> = [
  ['sha1', TPM_ALG.SHA1],
  ['sha256', TPM_ALG.SHA256],
  ['sha384', TPM_ALG.SHA384],
  ['sha512', TPM_ALG.SHA512],
  ['sm3_256', TPM_ALG.SM3_256],
  ['sha3_256', TPM_ALG.SHA3_256],
  ['sha3_384', TPM_ALG.SHA3_384],
  ['sha3_512', TPM_ALG.SHA3_512],
];
const DIGEST_LEN = DIGEST_SIZE;

/** The highest PCR index a selection can name (PCR_SELECT_MAX = 4 octets). */
export const MAX_PCR_INDEX = 31;

/** A selection of one bank as numbers: `{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2] }`. */
export interface PcrBank {
  hash: TpmiAlgHash;
  pcrs: number[];
}

/** The tpm2-tools name of a hash bank (`sha256`), or its id in hex if it has none. */
export function bankName(hash: number): string {
  return BANK_NAMES.find(([, a]) => a === hash)?.[0] ?? `0x${hash.toString(16)}`;
}

function bankOf(text: string, whole: string): TpmiAlgHash {
  const t = text.trim().toLowerCase();
  const named = BANK_NAMES.find(([n]) => n === t);
  if (named) return named[1];
  if (/^(0x[0-9a-f]{1,4}|[0-9]{1,5})$/.test(t)) {
    const n = Number(t);
    if (isHashAlg(n)) return n;
  }
  throw new PcrFormatError(`PCR selection "${whole}": unknown hash bank "${text}" (use ${BANK_NAMES.map(([n]) => n).join(', ')})`);
}

function pcrIndex(text: string, whole: string): number {
  const t = text.trim().toLowerCase();
  if (!/^(0x[0-9a-f]{1,2}|[0-9]{1,2})$/.test(t)) throw new PcrFormatError(`PCR selection "${whole}": "${text}" is not a PCR number`);
  const n = Number(t);
  if (n > MAX_PCR_INDEX) throw new PcrFormatError(`PCR selection "${whole}": PCR ${n} is beyond ${MAX_PCR_INDEX}`);
  return n;
}

/**
 * Parses `sha256:0,1,2+sha1:0` (banks joined by `+`, PCRs by `,`, decimal or 0x hex, `all` for
 * PCRs 0–23) into banks, in the order given, PCRs ascending. Refuses an empty string, a bank
 * twice, a PCR twice, an unknown bank and a PCR beyond 31.
 */
export function parsePcrBanks(text: string): PcrBank[] {
  if (typeof text !== 'string' || text.trim() === '') throw new PcrFormatError('PCR selection is empty (expected e.g. sha256:0,1,2)');
  const out: PcrBank[] = [];
  for (const part of text.split('+')) {
    const colon = part.indexOf(':');
    if (colon < 0) throw new PcrFormatError(`PCR selection "${text}": "${part}" has no ":" (expected BANK:PCR,PCR,...)`);
    const hash = bankOf(part.slice(0, colon), text);
    if (out.some((b) => b.hash === hash)) throw new PcrFormatError(`PCR selection "${text}": bank ${bankName(hash)} is given twice`);
    const list = part.slice(colon + 1);
    let pcrs: number[];
    if (list.trim().toLowerCase() === 'all') pcrs = Array.from({ length: 24 }, (_, i) => i);
    else {
      if (list.trim() === '') throw new PcrFormatError(`PCR selection "${text}": bank ${bankName(hash)} has no PCRs`);
      pcrs = list.split(',').map((p) => pcrIndex(p, text));
      if (new Set(pcrs).size !== pcrs.length) throw new PcrFormatError(`PCR selection "${text}": a PCR of bank ${bankName(hash)} is given twice`);
      pcrs.sort((a, b) => a - b);
    }
    out.push({ hash, pcrs });
  }
  return out;
}

/** Banks → TPML_PCR_SELECTION items (sizeofSelect 3, or 4 when a PCR above 23 is selected). */
export function toPcrSelection(banks: readonly PcrBank[]): TPMS_PCR_SELECTION[] {
  return banks.map((b) => {
    const top = b.pcrs.reduce((m, p) => Math.max(m, p), 0);
    const select = new Uint8Array(top >= 24 ? 4 : 3);
    for (const p of b.pcrs) {
      if (!Number.isInteger(p) || p < 0 || p > MAX_PCR_INDEX) throw new PcrFormatError(`PCR ${String(p)} is not a PCR number 0..${MAX_PCR_INDEX}`);
      select[p >> 3]! |= 1 << (p & 7);
    }
    return { hash: b.hash, pcrSelect: select };
  });
}

/** TPML_PCR_SELECTION items → banks (PCRs ascending). */
export function fromPcrSelection(sel: readonly TPMS_PCR_SELECTION[]): PcrBank[] {
  return sel.map((s) => {
    const pcrs: number[] = [];
    s.pcrSelect.forEach((byte, i) => {
      for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) pcrs.push(i * 8 + bit);
    });
    return { hash: s.hash, pcrs };
  });
}

/** `sha256:0,1,2+sha1:0` → TPML_PCR_SELECTION items, ready for PCR_Read and Quote. */
export function parsePcrSelection(text: string): TPMS_PCR_SELECTION[] {
  return toPcrSelection(parsePcrBanks(text));
}

/** TPML_PCR_SELECTION items (or banks) → `sha256:0,1,2+sha1:0`. */
export function formatPcrSelection(sel: readonly TPMS_PCR_SELECTION[] | readonly PcrBank[]): string {
  const banks = sel.map((s) => ('pcrs' in s ? s : fromPcrSelection([s])[0]!));
  return banks.map((b) => `${bankName(b.hash)}:${b.pcrs.join(',')}`).join('+');
}

// ---------------------------------------------------------------- tpm2_quote's files

const SEL_SLOT = 8;
const SEL_SIZE = 4 + 16 * SEL_SLOT;
const DIGEST_SLOT = 2 + 64;
const DIGEST_LIST_SIZE = 4 + 8 * DIGEST_SLOT;

/**
 * `pcrs.out` as `tpm2_quote -o` writes it: the selection and the PCR values, given in selection
 * order (banks as selected, PCRs ascending) — what `pcrRead(...).values` is.
 */
export function writePcrsOut(sel: readonly TPMS_PCR_SELECTION[], values: readonly Uint8Array[]): Uint8Array {
  if (sel.length > 16) throw new PcrFormatError(`pcrs.out: ${sel.length} banks, at most 16`);
  const banks = fromPcrSelection(sel);
  const expected = banks.flatMap((b) => b.pcrs.map(() => b.hash));
  if (expected.length !== values.length) throw new PcrFormatError(`pcrs.out: the selection names ${expected.length} PCRs but ${values.length} values are given`);
  values.forEach((v, i) => {
    const want = DIGEST_LEN[expected[i]!];
    if (v.length !== want) throw new PcrFormatError(`pcrs.out: value ${i} has ${v.length} bytes, its bank ${bankName(expected[i]!)} has ${want}`);
  });
  const lists = Math.ceil(values.length / 8);
  const out = new Uint8Array(SEL_SIZE + 4 + lists * DIGEST_LIST_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, sel.length, true);
  sel.forEach((s, i) => {
    const at = 4 + i * SEL_SLOT;
    if (s.pcrSelect.length > 4) throw new PcrFormatError(`pcrs.out: bank ${i} selects ${s.pcrSelect.length} octets, at most 4`);
    dv.setUint16(at, s.hash, true);
    out[at + 2] = s.pcrSelect.length;
    out.set(s.pcrSelect, at + 3);
  });
  dv.setUint32(SEL_SIZE, lists, true);
  for (let l = 0; l < lists; l++) {
    const base = SEL_SIZE + 4 + l * DIGEST_LIST_SIZE;
    const chunk = values.slice(l * 8, l * 8 + 8);
    dv.setUint32(base, chunk.length, true);
    chunk.forEach((v, j) => {
      const at = base + 4 + j * DIGEST_SLOT;
      dv.setUint16(at, v.length, true);
      out.set(v, at + 2);
    });
  }
  return out;
}

/** Reads a `pcrs.out` (tpm2_quote -o): the selection and the values in selection order. */
export function readPcrsOut(bytes: Uint8Array): { selection: TPMS_PCR_SELECTION[]; values: Uint8Array[] } {
  const fail = (m: string): never => {
    throw new PcrFormatError(`pcrs.out: ${m}`);
  };
  if (bytes.length < SEL_SIZE + 4) fail(`${bytes.length} bytes is too short (at least ${SEL_SIZE + 4})`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = dv.getUint32(0, true);
  if (count > 16) fail(`selection count ${count} is more than 16`);
  const selection: TPMS_PCR_SELECTION[] = [];
  for (let i = 0; i < count; i++) {
    const at = 4 + i * SEL_SLOT;
    const hash = dv.getUint16(at, true);
    if (!isHashAlg(hash)) fail(`bank ${i} has unknown hash 0x${hash.toString(16)}`);
    const size = bytes[at + 2]!;
    if (size > 4) fail(`bank ${i} has sizeofSelect ${size}, at most 4`);
    selection.push({ hash: hash as TpmiAlgHash, pcrSelect: bytes.slice(at + 3, at + 3 + size) });
  }
  const lists = dv.getUint32(SEL_SIZE, true);
  if (bytes.length !== SEL_SIZE + 4 + lists * DIGEST_LIST_SIZE) fail(`${bytes.length} bytes, but ${lists} digest lists need ${SEL_SIZE + 4 + lists * DIGEST_LIST_SIZE}`);
  const values: Uint8Array[] = [];
  for (let l = 0; l < lists; l++) {
    const base = SEL_SIZE + 4 + l * DIGEST_LIST_SIZE;
    const n = dv.getUint32(base, true);
    if (n > 8) fail(`digest list ${l} has count ${n}, at most 8`);
    for (let j = 0; j < n; j++) {
      const at = base + 4 + j * DIGEST_SLOT;
      const size = dv.getUint16(at, true);
      if (size > 64) fail(`digest ${j} of list ${l} has size ${size}, at most 64`);
      values.push(bytes.slice(at + 2, at + 2 + size));
    }
  }
  const banks = fromPcrSelection(selection);
  const expected = banks.flatMap((b) => b.pcrs.map(() => b.hash));
  if (expected.length !== values.length) fail(`the selection names ${expected.length} PCRs but the file holds ${values.length} values`);
  values.forEach((v, i) => {
    if (v.length !== DIGEST_LEN[expected[i]!]) fail(`value ${i} has ${v.length} bytes, its bank ${bankName(expected[i]!)} has ${DIGEST_LEN[expected[i]!]}`);
  });
  return { selection, values };
}

/** The bytes of `quote.msg` and `quote.sig` (tpm2_quote -m, -s): the attest bytes, the marshalled TPMT_SIGNATURE. */
export function quoteFiles(attest: Uint8Array, signature: TPMT_SIGNATURE): { msg: Uint8Array; sig: Uint8Array } {
  return { msg: Uint8Array.from(attest), sig: encode(TPMT_SIGNATURE, signature) };
}
