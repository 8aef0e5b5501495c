/**
 * The small vocabulary of request values (key type, hash, output formats), parsed strictly:
 * names or TPM_ALG_ID numbers, one meaning each, everything else a 400.
 */
import { badRequest } from './errors.js';
import { describeValue } from './describe-value.js';
import {
  ECC_CURVES,
  GENERAL_SCHEMES,
  HASH_ALG,
  KEY_ALG,
  KEY_KINDS,
  KEY_SCHEMES,
  KEY_USAGES,
  PUBLIC_FORMATS,
  RSA_BITS,
  SIGN_FORMATS,
  type EccCurve,
  type HashName,
  type KeyKind,
  type KeyScheme,
  type KeyType,
  type KeyUsage,
  type PublicFormat,
  type RsaBits,
  type SignFormat,
} from './vocabulary.js';

export { HASH_ALG, type HashName, type KeyType, type PublicFormat, type SignFormat };

/** An algorithm id as a JSON number or a string: decimal, or 0x with up to 4 hex digits. */
function algNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffff ? v : undefined;
  if (typeof v !== 'string') return undefined;
  if (/^0x[0-9a-fA-F]{1,4}$/.test(v)) return Number.parseInt(v.slice(2), 16);
  if (/^(?:0|[1-9][0-9]{0,4})$/.test(v)) return Number(v);
  return undefined;
}

// Every value is type-checked before anything else looks at it: a JSON body can put an
// object or array anywhere, and those are named by their kind, never turned into text.
function byNameOrId<N extends string>(v: unknown, table: Readonly<Record<N, number>>, what: string): N {
  const names = Object.keys(table).join(', ');
  if (typeof v !== 'string' && typeof v !== 'number') throw badRequest(`${what} must be a name (${names}) or a TPM_ALG_ID number, not ${describeValue(v)}`);
  if (typeof v === 'string' && Object.hasOwn(table, v)) return v as N;
  const n = algNumber(v);
  for (const [name, id] of Object.entries(table) as [N, number][]) if (id === n) return name;
  throw badRequest(`unknown ${what} ${describeValue(v)}: use one of ${names} (or its TPM_ALG_ID)`);
}

export function parseKeyType(v: unknown): KeyType {
  return byNameOrId(v, KEY_ALG, 'key type');
}

export function parseHashAlg(v: unknown): HashName {
  return byNameOrId(v, HASH_ALG, 'hash algorithm');
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], what: string): T {
  if (typeof v !== 'string') throw badRequest(`${what} must be a string (${allowed.join(', ')}), not ${describeValue(v)}`);
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw badRequest(`unknown ${what} ${describeValue(v)}: use one of ${allowed.join(', ')}`);
}

export function parseSignFormat(v: unknown): SignFormat {
  return oneOf(v, SIGN_FORMATS, 'signature format');
}

export function parsePublicFormat(v: unknown): PublicFormat {
  return oneOf(v, PUBLIC_FORMATS, 'public key format');
}

export function parseKeyKind(v: unknown): KeyKind {
  return oneOf(v, KEY_KINDS, 'key kind');
}

export function parseKeyUsage(v: unknown): KeyUsage {
  return oneOf(v, KEY_USAGES, 'key usage');
}

/** A scheme that exists and fits the key's type and usage (the 400 names the ones that do). */
export function parseKeyScheme(v: unknown, type: KeyType, usage: KeyUsage): KeyScheme {
  const scheme = oneOf(v, KEY_SCHEMES, 'key scheme');
  const fits = GENERAL_SCHEMES[type][usage];
  if (!fits.includes(scheme)) throw badRequest(`scheme ${scheme} does not fit a ${type} ${usage} key: use ${fits.join(' or ')}`);
  return scheme;
}

export function parseRsaBits(v: unknown): RsaBits {
  if (typeof v === 'number' && (RSA_BITS as readonly number[]).includes(v)) return v as RsaBits;
  throw badRequest(`RSA key size ${describeValue(v)}: use ${RSA_BITS.join(' or ')} (a number)`);
}

export function parseEccCurve(v: unknown): EccCurve {
  return oneOf(v, ECC_CURVES, 'curve');
}

export function hashName(alg: number): HashName | undefined {
  return (Object.entries(HASH_ALG) as [HashName, number][]).find(([, id]) => id === alg)?.[0];
}
