/**
 * Checks of the attestation answers (protocol/messages.ts) before the client hands their bytes
 * to a caller: base64 and hex are decoded strictly, PCR lists must be in selection order. An
 * answer that breaks the contract is a ServiceError BAD_RESPONSE, never a half-decoded value
 * that a tool would write into a quote file. No dependencies: bundled into the tools.
 */
import { ServiceError } from '../protocol/errors.js';
import type { AppBinding, KeySummary } from '../protocol/messages.js';
import { KEY_KINDS, KEY_SCHEMES, KEY_USAGES } from '../protocol/vocabulary.js';

/** One PCR's value, decoded. */
export interface PcrReading {
  /** Hash name (sha256) or 0x… for another TPM_ALG_ID. */
  bank: string;
  pcr: number;
  value: Uint8Array;
}

/** What Quote and Certify return, bytes decoded. */
export interface AttestResult {
  signer: string;
  /** The TPMS_ATTEST bytes the TPM signed (quote.msg, tpm2_certify -o). */
  attest: Uint8Array;
  /** The marshalled TPMT_SIGNATURE (quote.sig, tpm2_certify -s). */
  signature: Uint8Array;
  /** hex */
  nonce: string;
  /** hex: the nonce itself, or its binding to the app. */
  qualifyingData: string;
  binding?: AppBinding;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

export function badAnswer(op: string, why: string): ServiceError {
  return new ServiceError(200, 'BAD_RESPONSE', `the TPM service's ${op} answer ${why}`);
}

/** The answer as a JSON object, or BAD_RESPONSE. */
export function object(op: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badAnswer(op, 'is not a JSON object');
  return v as Record<string, unknown>;
}

export function text(op: string, o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '') throw badAnswer(op, `has no ${field}`);
  return v;
}

/** A base64 member, decoded; `empty` allows zero bytes. */
export function bytes(op: string, o: Record<string, unknown>, field: string, empty = false): Uint8Array {
  const v = o[field];
  if (typeof v !== 'string' || !BASE64.test(v)) throw badAnswer(op, `has no base64 ${field}`);
  const b = new Uint8Array(Buffer.from(v, 'base64'));
  if (b.length === 0 && !empty) throw badAnswer(op, `has an empty ${field}`);
  return b;
}

/** A hex member, lower-cased. */
export function hex(op: string, o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v === '' || !HEX.test(v)) throw badAnswer(op, `has no hex ${field}`);
  return v.toLowerCase();
}

function binding(op: string, v: unknown): AppBinding {
  const b = object(op, v);
  const label = b.label;
  if (label !== 'EVE-APP' && label !== 'EVE-APP-KEY') throw badAnswer(op, 'has a binding with an unknown label');
  return { identity: text(op, b, 'identity'), label };
}

/** The members every attestation answer has. */
export function attestResult(op: string, v: unknown, mustBind = false): AttestResult & { raw: Record<string, unknown> } {
  const o = object(op, v);
  const out: AttestResult = {
    signer: text(op, o, 'signer'),
    attest: bytes(op, o, 'attest'),
    signature: bytes(op, o, 'signature'),
    nonce: hex(op, o, 'nonce'),
    qualifyingData: hex(op, o, 'qualifyingData'),
  };
  if (o.binding !== undefined) out.binding = binding(op, o.binding);
  else if (mustBind) throw badAnswer(op, 'has no binding');
  return { ...out, raw: o };
}

/**
 * PCR values in selection order: each bank's PCRs together and ascending, as pcrs.out and the
 * quote's digest take them.
 */
export function pcrReadings(op: string, v: unknown): PcrReading[] {
  if (!Array.isArray(v)) throw badAnswer(op, 'has no list of PCR values');
  const seen = new Set<string>();
  let last: { bank: string; pcr: number } | undefined;
  const list: unknown[] = v;
  return list.map((item) => {
    const o = object(op, item);
    const bank = text(op, o, 'bank');
    const pcr = o.pcr;
    if (typeof pcr !== 'number' || !Number.isInteger(pcr) || pcr < 0 || pcr > 31) throw badAnswer(op, `has PCR number ${String(pcr)}`);
    if (last?.bank === bank ? pcr <= last.pcr : seen.has(bank)) throw badAnswer(op, `lists ${bank} PCR ${pcr} out of selection order`);
    seen.add(bank);
    last = { bank, pcr };
    return { bank, pcr, value: new Uint8Array(Buffer.from(hex(op, o, 'value'), 'hex')) };
  });
}

/**
 * A key's summary with its kind, usage and scheme: a service from before issue 12 sends none of
 * them, and all its keys are AKs (RSASSA or ECDSA). A value outside the vocabulary is
 * BAD_RESPONSE: the tools decide what a key may do from these.
 */
export function keyShape<K extends KeySummary>(op: string, v: unknown): K {
  const o = object(op, v) as Partial<KeySummary> & Record<string, unknown>;
  if (o.kind === undefined && o.usage === undefined && o.scheme === undefined) {
    return { ...o, kind: 'ak', usage: 'sign', scheme: o.type === 'ecc' ? 'ecdsa' : 'rsassa' } as K;
  }
  if (!(KEY_KINDS as readonly unknown[]).includes(o.kind)) throw badAnswer(op, `has key kind ${JSON.stringify(o.kind)}`);
  if (!(KEY_USAGES as readonly unknown[]).includes(o.usage)) throw badAnswer(op, `has key usage ${JSON.stringify(o.usage)}`);
  if (!(KEY_SCHEMES as readonly unknown[]).includes(o.scheme)) throw badAnswer(op, `has key scheme ${JSON.stringify(o.scheme)}`);
  return o as K;
}
