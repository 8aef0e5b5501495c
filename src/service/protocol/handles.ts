/**
 * TPM handles as the API sees them — the one handle grammar of the server, the client and the
 * tools: canonical formatting; two readings (the wire's strict one, one spelling per number,
 * nothing a smuggler could make ambiguous; and the looser one people type); and the reserved
 * handles no tenant may ever touch.
 */
import { describeValue } from './describe-value.js';
import { badRequest } from './errors.js';

/** Canonical form: 0x and eight lower-case hex digits, as tpm2-tools prints handles. */
export function formatHandle(h: number): string {
  return '0x' + (h >>> 0).toString(16).padStart(8, '0');
}

const HEX = /^0x(?:[0-9a-fA-F]{8}|[1-9a-fA-F][0-9a-fA-F]{0,6}|0)$/;
const DEC = /^(?:0|[1-9][0-9]{0,9})$/;
// What people type (tool options, client arguments): 0x or 0X, leading zeros, decimal.
// Octal-looking input is decimal: nobody writes TPM values in octal.
const USER_HEX = /^0[xX][0-9a-fA-F]+$/;
const USER_DEC = /^[0-9]+$/;

/**
 * The handle `s` spells, or undefined. `wire`: the path segment's grammar (parseHandle);
 * `user`: what a tool option or client argument may say, any value up to 32 bits.
 */
export function handleValue(s: string, grammar: 'wire' | 'user'): number | undefined {
  let v: number;
  if (grammar === 'wire' ? HEX.test(s) : USER_HEX.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (grammar === 'wire' ? DEC.test(s) : USER_DEC.test(s)) v = Number(s);
  else return undefined;
  return Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
}

/** A handle given by a caller of the client, as a number or text in the `user` grammar, in canonical form. */
export function handleText(h: number | string): string {
  if (typeof h === 'number') {
    if (!Number.isInteger(h) || h < 0 || h > 0xffffffff) throw new TypeError(`handle out of range: ${String(h)}`);
    return formatHandle(h);
  }
  if (typeof h !== 'string') throw new TypeError(`not a handle: ${String(h)}`);
  const v = handleValue(h, 'user');
  if (v !== undefined) return formatHandle(v);
  throw new TypeError(USER_HEX.test(h) || USER_DEC.test(h) ? `handle out of range: ${h}` : `not a handle: ${JSON.stringify(h)}`);
}

/**
 * Parses a handle given as `0x81010000` (lower-case `0x`; eight digits, or no leading zero) or
 * decimal (no sign, no leading zero). Anything else — whitespace, `0X`, `+`, `-`, exponents,
 * fractions, non-ASCII digits, more than 32 bits — is a 400: a handle is never guessed.
 */
export function parseHandle(s: unknown, what = 'handle'): number {
  if (typeof s !== 'string') throw badRequest(`${what} must be a string like 0x81010000, not ${describeValue(s)}`);
  const v = handleValue(s, 'wire');
  if (v !== undefined) return v;
  if (HEX.test(s) || DEC.test(s)) throw badRequest(`${what} is out of the 32-bit range`);
  throw badRequest(`${what} ${describeValue(s)} is not a handle (use 0x81010000 or decimal)`);
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
