/**
 * Verifying what a TPM attested, in software (no TPM): a quote (TPM2_Quote, Part 3 §18.4) or a
 * certification (TPM2_Certify, Part 3 §18.2). Each check is reported; the result is `ok` only
 * when every check holds, and anything missing or unreadable is a failed check (fail closed).
 *
 * - signature: over the exact TPMS_ATTEST bytes, with the signing key's scheme and hash (a
 *   restricted key's scheme is fixed in its public area: any other scheme is refused);
 * - magic: TPM_GENERATED_VALUE — the TPM signs data starting with it only when it made it;
 * - type: TPM_ST_ATTEST_QUOTE / TPM_ST_ATTEST_CERTIFY;
 * - nonce: extraData equals the verifier's nonce (freshness);
 * - quote: the PCR digest equals the one given, or the one recomputed (with the signature's
 *   hash, over the selected PCRs in selection order) from the values given, whose PCRs must be
 *   exactly those the quote selected;
 * - certify: the certified Name equals the object's Name.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { DIGEST_SIZE, NODE_HASH, TPM_ALG } from '../constants.js';
import { verifyMessageSignature } from '../keys/verify.js';
import { signatureHash } from '../keys/signature.js';
import {
  TPMS_ATTEST,
  TPMT_SIGNATURE,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST,
  type TPMS_PCR_SELECTION,
  type TPMS_ATTEST as Attest,
  type TPMT_PUBLIC,
  type TPMT_SIGNATURE as Signature,
  type TpmiAlgHash,
} from '../structures.js';
import { decode } from '../wire/codec.js';

export interface AttestCheck {
  name: 'input' | 'structure' | 'signature' | 'magic' | 'type' | 'nonce' | 'pcrSelection' | 'pcrDigest' | 'name';
  ok: boolean;
  detail: string;
}

export interface AttestReport {
  /** True only when every check holds. */
  ok: boolean;
  checks: AttestCheck[];
  /** The decoded TPMS_ATTEST, when it decoded (even if a check failed): for display, not trust. */
  attest?: Attest;
}

/** PCR values by bank (hash TPM_ALG_ID) then PCR index. */
export type PcrValues = Readonly<Record<number, Readonly<Record<number, Uint8Array>>>>;

export interface VerifyQuoteInput {
  /** The AK's public area. */
  akPublic: TPMT_PUBLIC;
  /** TPM2B_ATTEST's buffer: the TPMS_ATTEST bytes the TPM signed (tpm2_quote -m). */
  attestBytes: Uint8Array;
  /** The signature: decoded, or TPMT_SIGNATURE bytes (tpm2_quote -s, default format). */
  signature: Signature | Uint8Array;
  /** The verifier's nonce (qualifying data). */
  nonce: Uint8Array;
  /** The expected PCR digest; or give `pcrValues` to have it recomputed. At least one is required. */
  pcrDigest?: Uint8Array;
  pcrValues?: PcrValues;
}

export interface VerifyCertifyInput {
  signerPublic: TPMT_PUBLIC;
  attestBytes: Uint8Array;
  signature: Signature | Uint8Array;
  /** The Name of the object that should have been certified. */
  objectName: Uint8Array;
  nonce: Uint8Array;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && timingSafeEqual(a, b);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function report(checks: AttestCheck[], attest?: Attest): AttestReport {
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  return attest ? { ok, checks, attest } : { ok, checks };
}

/** The key's own signing scheme, if it has one (a restricted signing key always has). */
export function keyScheme(pub: TPMT_PUBLIC): { scheme: number; hashAlg: TpmiAlgHash } | undefined {
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) return undefined;
  const s = pub.parameters.scheme;
  if (s.scheme === TPM_ALG.NULL || s.details === null || typeof s.details !== 'object' || !('hashAlg' in s.details)) return undefined;
  return { scheme: s.scheme, hashAlg: s.details.hashAlg };
}

/**
 * Why `sig` cannot be the key's own (a key with a fixed scheme signs only with it), or
 * undefined when it may be. Shared with verify-signature.ts.
 */
export function schemeMismatch(pub: TPMT_PUBLIC, sig: Signature): string | undefined {
  const expected = keyScheme(pub);
  const hash = signatureHash(sig);
  if (!expected || (sig.sigAlg === expected.scheme && hash === expected.hashAlg)) return undefined;
  return `scheme 0x${sig.sigAlg.toString(16)}/hash 0x${(hash ?? 0).toString(16)} is not the key's (0x${expected.scheme.toString(16)}/0x${expected.hashAlg.toString(16)})`;
}

/** The checks common to quote and certify: inputs, signature, magic, structure, type, nonce. */
function common(
  what: string,
  pub: TPMT_PUBLIC,
  attestBytes: unknown,
  signature: unknown,
  nonce: unknown,
  type: number,
  checks: AttestCheck[],
): { attest: Attest; sig: Signature } | undefined {
  const missing: string[] = [];
  if (pub === null || typeof pub !== 'object') missing.push('the signing key public area');
  if (!isBytes(attestBytes) || attestBytes.length === 0) missing.push('the attestation bytes');
  if (!isBytes(signature) && (signature === null || typeof signature !== 'object')) missing.push('the signature');
  if (missing.length > 0) {
    checks.push({ name: 'input', ok: false, detail: `${what}: missing ${missing.join(', ')}` });
    return undefined;
  }
  // Without a nonce nothing says the attestation is fresh: reported as a failed input, but the
  // other checks still run (so a report shows all that holds).
  const haveNonce = isBytes(nonce) && nonce.length > 0;
  if (!haveNonce) checks.push({ name: 'input', ok: false, detail: `${what}: missing the nonce (without one, a replayed attestation would pass)` });
  const bytes = attestBytes as Uint8Array;
  let sig: Signature;
  try {
    sig = isBytes(signature) ? decode(TPMT_SIGNATURE, signature) : (signature as Signature);
  } catch (e) {
    checks.push({ name: 'signature', ok: false, detail: `the signature is not a TPMT_SIGNATURE: ${(e as Error).message}` });
    return undefined;
  }
  // Signature first: nothing in unsigned bytes deserves belief.
  const mismatch = schemeMismatch(pub, sig);
  if (mismatch !== undefined) {
    checks.push({ name: 'signature', ok: false, detail: mismatch });
  } else {
    let ok = false;
    let detail = 'does not verify with the key';
    try {
      ok = verifyMessageSignature(pub, bytes, sig);
    } catch (e) {
      detail = `cannot be verified: ${(e as Error).message}`;
    }
    checks.push({ name: 'signature', ok, detail: ok ? 'verifies over the attestation bytes with the key' : detail });
  }
  const magic = bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0) : undefined;
  const magicOk = magic === TPM_GENERATED_VALUE;
  checks.push({
    name: 'magic',
    ok: magicOk,
    detail: magicOk ? 'TPM_GENERATED_VALUE' : `0x${(magic ?? 0).toString(16).padStart(8, '0')} is not TPM_GENERATED_VALUE (0xff544347): not made by a TPM`,
  });
  if (!magicOk) return undefined;
  let attest: Attest;
  try {
    attest = decode(TPMS_ATTEST, bytes);
  } catch (e) {
    checks.push({ name: 'structure', ok: false, detail: `not a TPMS_ATTEST: ${(e as Error).message}` });
    return undefined;
  }
  const typeOk = attest.type === type;
  checks.push({ name: 'type', ok: typeOk, detail: typeOk ? `${what}` : `type 0x${attest.type.toString(16)}, expected 0x${type.toString(16)} (${what})` });
  if (!haveNonce) return { attest, sig };
  const nonceOk = same(attest.extraData, nonce);
  checks.push({ name: 'nonce', ok: nonceOk, detail: nonceOk ? 'extraData equals the nonce' : `extraData ${hex(attest.extraData) || '(empty)'} is not the nonce` });
  return { attest, sig };
}

/** The selected PCR indices of one TPMS_PCR_SELECTION bitmap, ascending. */
function selected(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) out.push(i);
  return out;
}

/** Recomputes the PCR digest; or says why it cannot (a failed pcrSelection check). */
function pcrDigestOf(selection: readonly TPMS_PCR_SELECTION[], values: PcrValues, digestAlg: number): { digest?: Uint8Array; problem?: string } {
  const h = NODE_HASH[digestAlg];
  if (!h) return { problem: `no hash for the signature's algorithm 0x${digestAlg.toString(16)}` };
  const hash = createHash(h);
  const want = new Set<string>();
  for (const sel of selection) {
    for (const pcr of selected(sel.pcrSelect)) {
      want.add(`${sel.hash}:${pcr}`);
      const v = values[sel.hash]?.[pcr];
      if (!isBytes(v)) return { problem: `the quote selects PCR ${pcr} of bank 0x${sel.hash.toString(16)} and no value was given for it` };
      if (v.length !== DIGEST_SIZE[sel.hash]) return { problem: `the value given for PCR ${pcr} of bank 0x${sel.hash.toString(16)} has ${v.length} octets, not the bank's digest size` };
      hash.update(v);
    }
  }
  for (const [bank, pcrs] of Object.entries(values)) {
    for (const pcr of Object.keys(pcrs ?? {})) {
      if (!want.has(`${Number(bank)}:${Number(pcr)}`)) return { problem: `a value was given for PCR ${pcr} of bank 0x${Number(bank).toString(16)}, which the quote does not cover` };
    }
  }
  if (want.size === 0) return { problem: 'the quote selects no PCR' };
  return { digest: new Uint8Array(hash.digest()) };
}

/** Verifies a quote; see the module comment for the checks. Never throws on bad input: fails the report. */
export function verifyQuote(input: VerifyQuoteInput): AttestReport {
  const checks: AttestCheck[] = [];
  if (input === null || typeof input !== 'object') return report([{ name: 'input', ok: false, detail: 'quote: no input' }]);
  const { akPublic, attestBytes, signature, nonce, pcrDigest, pcrValues } = input;
  if (pcrDigest === undefined && pcrValues === undefined) {
    checks.push({ name: 'input', ok: false, detail: 'quote: missing the PCR digest or the PCR values to check it against' });
  } else if ((pcrDigest !== undefined && !isBytes(pcrDigest)) || (pcrValues !== undefined && (pcrValues === null || typeof pcrValues !== 'object'))) {
    checks.push({ name: 'input', ok: false, detail: 'quote: pcrDigest must be bytes and pcrValues an object of banks' });
  }
  const r = common('quote', akPublic, attestBytes, signature, nonce, TPM_ST_ATTEST.QUOTE, checks);
  if (!r) return report(checks);
  const { attest, sig } = r;
  if (attest.type !== TPM_ST_ATTEST.QUOTE) return report(checks, attest);
  const quoted = attest.attested.pcrDigest;
  if (isBytes(pcrDigest)) {
    const ok = same(quoted, pcrDigest);
    checks.push({ name: 'pcrDigest', ok, detail: ok ? 'equals the digest given' : `quoted ${hex(quoted)}, given ${hex(pcrDigest)}` });
  }
  if (pcrValues !== undefined && pcrValues !== null && typeof pcrValues === 'object') {
    const alg = signatureHash(sig);
    const { digest, problem } = alg === undefined ? { digest: undefined, problem: 'the signature has no hash' } : pcrDigestOf(attest.attested.pcrSelect, pcrValues, alg);
    checks.push({ name: 'pcrSelection', ok: problem === undefined, detail: problem ?? 'the values given are exactly the PCRs quoted' });
    if (digest) {
      const ok = same(quoted, digest);
      checks.push({ name: 'pcrDigest', ok, detail: ok ? 'equals the digest of the values given' : `quoted ${hex(quoted)}, values give ${hex(digest)}` });
    }
  }
  return report(checks, attest);
}

/** Verifies a certification (TPM2_Certify); see the module comment. Never throws on bad input. */
export function verifyCertify(input: VerifyCertifyInput): AttestReport {
  const checks: AttestCheck[] = [];
  if (input === null || typeof input !== 'object') return report([{ name: 'input', ok: false, detail: 'certify: no input' }]);
  const { signerPublic, attestBytes, signature, objectName, nonce } = input;
  if (!isBytes(objectName) || objectName.length === 0) checks.push({ name: 'input', ok: false, detail: 'certify: missing the object Name' });
  const r = common('certify', signerPublic, attestBytes, signature, nonce, TPM_ST_ATTEST.CERTIFY, checks);
  if (!r) return report(checks);
  const { attest } = r;
  if (attest.type !== TPM_ST_ATTEST.CERTIFY || !isBytes(objectName)) return report(checks, attest);
  const name = attest.attested.name;
  const ok = same(name, objectName);
  checks.push({ name: 'name', ok, detail: ok ? 'the certified Name is the object Name' : `certified ${hex(name)}, expected ${hex(objectName)}` });
  return report(checks, attest);
}
