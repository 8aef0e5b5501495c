/**
 * Attestation operations: reading PCRs (TPM2_PCR_Read, Part 3 §22.4), quoting them
 * (TPM2_Quote, §18.4), certifying an object (TPM2_Certify, §18.2) and reading the clock
 * (TPM2_ReadClock, §29.1). Quote and Certify return the attest bytes exactly as signed, their
 * decoded TPMS_ATTEST (narrowed to its type) and the signature.
 */
import { Certify, PCR_Read, Quote, ReadClock } from '../commands.js';
import { DIGEST_SIZE, TPM_ALG } from '../constants.js';
import { nameOf, type HandleArg } from '../command.js';
import { TPMS_ATTEST, TPM_ST_ATTEST, type AttestOf, type TPMS_PCR_SELECTION, type TPMS_TIME_INFO, type TPMT_SIG_SCHEME, type TPMT_SIGNATURE } from '../structures.js';
import { decode } from '../wire/codec.js';
import type { RunOptions, TpmRunner } from '../tpm.js';
import { fromPcrSelection, parsePcrSelection, toPcrSelection, bankName, type PcrBank } from '../attest/formats.js';

export class AttestError extends Error {
  override readonly name = 'AttestError';
}

/** A PCR selection as a tpm2-tools string (`sha256:0,1,2+sha1:0`), banks, or TPML_PCR_SELECTION items. */
export type PcrSelectionArg = string | readonly PcrBank[] | readonly TPMS_PCR_SELECTION[];

const DIGEST_LEN = DIGEST_SIZE;

/** Any selection argument → TPML_PCR_SELECTION items (a string is parsed; banks are encoded). */
export function pcrSelectionOf(sel: PcrSelectionArg): TPMS_PCR_SELECTION[] {
  if (typeof sel === 'string') return parsePcrSelection(sel);
  if (!Array.isArray(sel) || sel.length === 0) throw new AttestError('PCR selection is empty');
  return (sel as readonly (PcrBank | TPMS_PCR_SELECTION)[]).map((s) => ('pcrs' in s ? toPcrSelection([s])[0]! : s));
}

export interface PcrReadResult {
  /** The selection asked for (TPML_PCR_SELECTION items). */
  selection: TPMS_PCR_SELECTION[];
  /** pcrUpdateCounter of the (last) response; all values were read under this one counter. */
  updateCounter: number;
  /** The values in selection order (banks as selected, PCRs ascending): what pcrs.out and the quote digest use. */
  values: Uint8Array[];
  /** The values by bank (hash algorithm) and PCR index. */
  banks: Map<number, Map<number, Uint8Array>>;
}

/**
 * TPM2_PCR_Read of a whole selection. The TPM may return fewer PCRs than asked (at most 8
 * digests per response): the rest is asked for again until all came back. If the PCRs change
 * meanwhile (pcrUpdateCounter moves), the read starts over (3 tries). A PCR the TPM does not
 * return at all (bank not allocated) is an error naming it.
 */
export async function pcrRead(tpm: TpmRunner, selection: PcrSelectionArg, opts: RunOptions = {}): Promise<PcrReadResult> {
  const asked = pcrSelectionOf(selection);
  const askedBanks = fromPcrSelection(asked);
  for (const b of askedBanks) if (b.pcrs.length === 0) throw new AttestError(`PCR selection: bank ${bankName(b.hash)} selects no PCR`);
  for (let attempt = 0; attempt < 3; attempt++) {
    const got = new Map<number, Map<number, Uint8Array>>(askedBanks.map((b) => [b.hash, new Map()]));
    let counter: number | undefined;
    let restart = false;
    for (let round = 0; round < 1000; round++) {
      const remaining: PcrBank[] = askedBanks.map((b) => ({ hash: b.hash, pcrs: b.pcrs.filter((p) => !got.get(b.hash)!.has(p)) })).filter((b) => b.pcrs.length > 0);
      if (remaining.length === 0) break;
      const r = await tpm.run(PCR_Read, { pcrSelectionIn: toPcrSelection(remaining) }, opts);
      if (counter !== undefined && r.pcrUpdateCounter !== counter) {
        restart = true;
        break;
      }
      counter = r.pcrUpdateCounter;
      const outBanks = fromPcrSelection(r.pcrSelectionOut);
      const pairs = outBanks.flatMap((b) => b.pcrs.map((p) => [b.hash, p] as const));
      if (pairs.length !== r.pcrValues.length) {
        throw new AttestError(`PCR_Read returned ${r.pcrValues.length} values for a selection of ${pairs.length} PCRs`);
      }
      if (pairs.length === 0) {
        const missing = remaining.map((b) => `${bankName(b.hash)}:${b.pcrs.join(',')}`).join('+');
        throw new AttestError(`the TPM returned no value for PCRs ${missing} (is the bank allocated?)`);
      }
      pairs.forEach(([hash, pcr], i) => {
        const bank = remaining.find((b) => b.hash === hash);
        if (!bank || !bank.pcrs.includes(pcr)) throw new AttestError(`PCR_Read returned ${bankName(hash)}:${pcr}, which was not asked for`);
        const v = r.pcrValues[i]!;
        if (v.length !== DIGEST_LEN[hash]) throw new AttestError(`PCR_Read returned ${v.length} bytes for ${bankName(hash)}:${pcr}, not ${DIGEST_LEN[hash]}`);
        got.get(hash)!.set(pcr, v);
      });
    }
    if (restart) continue;
    const values = askedBanks.flatMap((b) => b.pcrs.map((p) => got.get(b.hash)!.get(p)!));
    return { selection: asked, updateCounter: counter ?? 0, values, banks: got };
  }
  throw new AttestError('the PCRs kept changing while they were read (pcrUpdateCounter moved 3 times)');
}

export interface QuoteOptions extends RunOptions {
  /** The PCRs to quote. */
  pcrs: PcrSelectionArg;
  /** The verifier's nonce (TPMS_ATTEST.extraData), up to the size of a digest of the key's name hash. */
  qualifyingData: Uint8Array;
  /** Signing scheme; default TPM_ALG_NULL = the key's own scheme. */
  scheme?: TPMT_SIG_SCHEME;
}

export interface AttestResult<T extends TPMS_ATTEST['type']> {
  /** The TPM2B_ATTEST's bytes: the marshalled TPMS_ATTEST the signature is over (quote.msg). */
  attest: Uint8Array;
  /** `attest` decoded. */
  decoded: AttestOf<T>;
  signature: TPMT_SIGNATURE;
}

function requireData(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new AttestError(`${what} is required (a Uint8Array)`);
  if (v.length > 64) throw new AttestError(`${what} has ${v.length} bytes, at most 64`);
  return v;
}

const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

function decodeAttest<T extends TPMS_ATTEST['type']>(bytes: Uint8Array, type: T, extraData: Uint8Array, what: string): AttestOf<T> {
  const a = decode(TPMS_ATTEST, bytes);
  if (a.type !== type) throw new AttestError(`${what}: the TPM returned an attestation of type 0x${a.type.toString(16)}, not 0x${type.toString(16)}`);
  if (!eq(a.extraData, extraData)) throw new AttestError(`${what}: the attestation's extraData is not the qualifying data given`);
  return a as AttestOf<T>;
}

/**
 * TPM2_Quote: `key` (a restricted signing key; its USER auth in `opts.auth.signHandle`, default
 * empty password) signs the selected PCRs' digest with the nonce. Returns the attest bytes, the
 * decoded TPMS_ATTEST (type QUOTE) and the signature. The TPM's pcrSelect must be the one asked.
 */
export async function quote(tpm: TpmRunner, key: HandleArg, opts: QuoteOptions): Promise<AttestResult<typeof TPM_ST_ATTEST.QUOTE>> {
  if (!opts || typeof opts !== 'object') throw new AttestError('quote: options { pcrs, qualifyingData } are required');
  const qualifyingData = requireData(opts.qualifyingData, 'quote: qualifyingData (the nonce)');
  const PCRselect = pcrSelectionOf(opts.pcrs);
  const inScheme = opts.scheme ?? { scheme: TPM_ALG.NULL, details: null };
  const r = await tpm.run(Quote, { signHandle: key, qualifyingData, inScheme, PCRselect }, opts);
  const decoded = decodeAttest(r.quoted, TPM_ST_ATTEST.QUOTE, qualifyingData, 'quote');
  const same =
    decoded.attested.pcrSelect.length === PCRselect.length &&
    decoded.attested.pcrSelect.every((s, i) => s.hash === PCRselect[i]!.hash && eq(fromPcrSelectionBits(s), fromPcrSelectionBits(PCRselect[i]!)));
  if (!same) throw new AttestError('quote: the TPM quoted another PCR selection than asked (is every bank allocated?)');
  return { attest: r.quoted, decoded, signature: r.signature };
}

/** The selected PCRs of one bank as a normalised bit set (trailing zero octets ignored). */
function fromPcrSelectionBits(s: TPMS_PCR_SELECTION): Uint8Array {
  return Uint8Array.from(fromPcrSelection([s])[0]!.pcrs);
}

export interface CertifyOptions extends RunOptions {
  /** The verifier's nonce (TPMS_ATTEST.extraData). */
  qualifyingData: Uint8Array;
  /** Signing scheme; default TPM_ALG_NULL = the signer's own scheme. */
  scheme?: TPMT_SIG_SCHEME;
}

/**
 * TPM2_Certify: `signer` signs that `object` is loaded in this TPM (its Name and qualified
 * Name). Both handles take an authorization: `opts.auth.objectHandle` (ADMIN role) and
 * `opts.auth.signHandle` (USER), default empty passwords. When `object` carries its Name, the
 * certified Name must be it.
 */
export async function certify(tpm: TpmRunner, signer: HandleArg, object: HandleArg, opts: CertifyOptions): Promise<AttestResult<typeof TPM_ST_ATTEST.CERTIFY>> {
  if (!opts || typeof opts !== 'object') throw new AttestError('certify: options { qualifyingData } are required');
  const qualifyingData = requireData(opts.qualifyingData, 'certify: qualifyingData (the nonce)');
  const inScheme = opts.scheme ?? { scheme: TPM_ALG.NULL, details: null };
  const r = await tpm.run(Certify, { objectHandle: object, signHandle: signer, qualifyingData, inScheme }, opts);
  const decoded = decodeAttest(r.certifyInfo, TPM_ST_ATTEST.CERTIFY, qualifyingData, 'certify');
  const name = nameOf(object);
  if (name && !eq(decoded.attested.name, name)) throw new AttestError('certify: the TPM certified another Name than the object given');
  return { attest: r.certifyInfo, decoded, signature: r.signature };
}

/** TPM2_ReadClock: time since the TPM started, and its clock, reset and restart counts. */
export async function readClock(tpm: TpmRunner, opts: RunOptions = {}): Promise<TPMS_TIME_INFO> {
  const r = await tpm.run(ReadClock, {}, opts);
  return r.currentTime;
}
