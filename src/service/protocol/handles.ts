/**
 * TPM handles as the API sees them: strict parsing (one spelling per number, nothing a
 * smuggler could make ambiguous), canonical formatting, and the reserved handles no tenant may
 * ever touch.
 */
import { describeValue } from './describe-value.js';
import { badRequest } from './errors.js';

/** Canonical form: 0x and eight lower-case hex digits, as tpm2-tools prints handles. */
export function formatHandle(h: number): string {
  return '0x' + (h >>> 0).toString(16).padStart(8, '0');
}

const HEX = /^0x(?:[0-9a-fA-F]{8}|[1-9a-fA-F][0-9a-fA-F]{0,6}|0)$/;
const DEC = /^(?:0|[1-9][0-9]{0,9})$/;

/**
 * Parses a handle given as `0x81010000` (lower-case `0x`; eight digits, or no leading zero) or
 * decimal (no sign, no leading zero). Anything else — whitespace, `0X`, `+`, `-`, exponents,
 * fractions, non-ASCII digits, more than 32 bits — is a 400: a handle is never guessed.
 */
export function parseHandle(s: unknown, what = 'handle'): number {
  if (typeof s !== 'string') throw badRequest(`${what} must be a string like 0x81010000, not ${describeValue(s)}`);
  let v: number;
  if (HEX.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (DEC.test(s)) v = Number(s);
  else throw badRequest(`${what} ${describeValue(s)} is not a handle (use 0x81010000 or decimal)`);
  if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) throw badRequest(`${what} is out of the 32-bit range`);
  return v;
}

/** TPM_HT_PERSISTENT: the only handle type a tenant may ever name. */
export function isPersistentHandle(h: number): boolean {
  return h >>> 24 === 0x81;
}

/**
 * Persistent handles that belong to others whatever the pool says: EVE's objects (EK, SRK,
 * AIK, quote key, ECDH key, device key) and the TCG EK Credential Profile's EK handles.
 */
export const RESERVED_HANDLES: ReadonlySet<number> = new Set([
  0x81000001, 0x81000002, 0x81000003, 0x81000004, 0x81000005, 0x817fffff, 0x81010001, 0x81010002,
]);

/** The platform hierarchy's persistent range (TCG handle registry): never ours. */
export const PLATFORM_PERSISTENT_FIRST = 0x81800000;

export function isReservedHandle(h: number): boolean {
  return RESERVED_HANDLES.has(h) || h >= PLATFORM_PERSISTENT_FIRST;
}
