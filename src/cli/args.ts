/**
 * Parsing of the values the tools take: TPM_ALG_IDs (hex, decimal or a name), handles, formats,
 * durations. Each parser throws a usage CliError whose message names the option and lists what
 * is accepted, so a typo never turns into a silent default.
 */
import { formatHandle, handleValue } from '../service/protocol/handles.js';
import { HASH_ALG, KEY_ALG, PUBLIC_FORMATS, SIGN_FORMATS, type HashName, type KeyType, type PublicFormat, type SignFormat } from '../service/protocol/vocabulary.js';
import { usageError } from './errors.js';

export type { HashName, KeyType, PublicFormat };
export type SignatureFormat = SignFormat;

/** The API's algorithms (TPM_ALG_IDs from the shared vocabulary) with the spellings the tools also take. */
const KEY_ALGS: ReadonlyArray<{ id: number; name: KeyType; aliases: string[] }> = [
  { id: KEY_ALG.rsa, name: 'rsa', aliases: ['rsa2048'] },
  { id: KEY_ALG.ecc, name: 'ecc', aliases: ['ecdsa', 'ecc256', 'p256', 'nistp256'] },
];
const HASH_ALGS: ReadonlyArray<{ id: number; name: HashName; aliases: string[] }> = (Object.keys(HASH_ALG) as HashName[]).map((name) => ({
  id: HASH_ALG[name],
  name,
  aliases: [name.replace('sha', 'sha-')],
}));

function oneOf<T extends string>(list: readonly T[], t: string): T | undefined {
  return (list as readonly string[]).includes(t) ? (t as T) : undefined;
}

const hex = (n: number, width = 4): string => `0x${n.toString(16).padStart(width, '0')}`;

/**
 * An unsigned integer written in hex (`0x1F`) or decimal (`31`). Octal-looking input is decimal:
 * tpm2-tools reads `010` as 8, which surprises everyone, and nobody writes TPM values in octal.
 */
export function parseUint(text: string, max = 0xffffffff): number | undefined {
  const t = text.trim();
  let v: number;
  if (/^0x[0-9a-f]+$/i.test(t)) v = Number.parseInt(t.slice(2), 16);
  else if (/^[0-9]+$/.test(t)) v = Number.parseInt(t, 10);
  else return undefined;
  return Number.isSafeInteger(v) && v <= max ? v : undefined;
}

function lookup<T extends { id: number; name: string; aliases: string[] }>(
  table: ReadonlyArray<T>,
  text: string,
  option: string,
  what: string,
): T {
  const t = text.trim().toLowerCase();
  const n = parseUint(t, 0xffff);
  const found = n !== undefined ? table.find((a) => a.id === n) : table.find((a) => a.name === t || a.aliases.includes(t));
  if (found) return found;
  const accepted = table.map((a) => `${hex(a.id)} (${a.name})`).join(', ');
  const why = n !== undefined ? `TPM_ALG_ID ${hex(n)} is not a supported ${what}` : `unknown ${what} '${text}'`;
  throw usageError(`${option}: ${why}; use one of ${accepted}`);
}

/** `-g` of genaik: 0x1 / 1 / rsa → rsa, 0x23 / 35 / ecc → ecc. */
export function parseKeyType(text: string, option = '-g'): KeyType {
  return lookup(KEY_ALGS, text, option, 'key algorithm').name;
}

/** `-g` of sign, `-G` of genaik: 0x4 / 0xB / 0xC / 0xD or sha1 / sha256 / sha384 / sha512. */
export function parseHash(text: string, option = '-g'): HashName {
  return lookup(HASH_ALGS, text, option, 'hash algorithm').name;
}

export function hashAlgId(name: HashName): number {
  return HASH_ALGS.find((a) => a.name === name)!.id;
}

export function keyAlgId(name: KeyType): number {
  return KEY_ALGS.find((a) => a.name === name)!.id;
}

/** The service names hashes as we do; anything else is shown as it came. */
export function isHashName(s: unknown): s is HashName {
  return typeof s === 'string' && HASH_ALGS.some((a) => a.name === s);
}

/** A TPM handle, hex or decimal (the protocol's `user` grammar), as the canonical `0x81010000` string the service uses. */
export function parseHandle(text: string, option = '-k'): string {
  const v = handleValue(text.trim(), 'user');
  if (v === undefined) {
    throw usageError(`${option}: '${text}' is not a handle; give a number such as 0x81010000`);
  }
  return formatHandle(v);
}

export function parsePublicFormat(text: string, option = '--format'): PublicFormat {
  const f = oneOf(PUBLIC_FORMATS, text.trim().toLowerCase());
  if (f) return f;
  throw usageError(`${option}: unknown public key format '${text}'; use pem, der or tss`);
}

export function parseSignatureFormat(text: string, option = '--format'): SignatureFormat {
  const f = oneOf(SIGN_FORMATS, text.trim().toLowerCase());
  if (f) return f;
  throw usageError(`${option}: unknown signature format '${text}'; use plain, der or tss`);
}

/** Seconds (fractions allowed) to milliseconds; must be positive. */
export function parseSeconds(text: string, option = '--timeout'): number {
  const t = text.trim();
  const v = /^[0-9]+(\.[0-9]+)?$/.test(t) ? Number(t) : Number.NaN;
  if (!(v > 0) || !Number.isFinite(v) || v > 86_400) {
    throw usageError(`${option}: '${text}' is not a number of seconds between 0 and 86400`);
  }
  return Math.round(v * 1000);
}

/**
 * Hex bytes as tpm2-tools take them (`-q 0a1b…`, an optional 0x), `min`–`max` bytes long. A
 * nonce in any other spelling is refused rather than guessed at: it is what a verifier checks.
 */
export function parseHexBytes(text: string, option: string, min = 1, max = 64): Uint8Array {
  const t = text.trim().replace(/^0x/i, '');
  if (t === '' || !/^[0-9a-f]+$/i.test(t) || t.length % 2 !== 0) {
    throw usageError(`${option}: '${text}' is not hex; give an even number of hex digits such as 0a1b2c3d`);
  }
  const n = t.length / 2;
  if (n < min || n > max) throw usageError(`${option}: ${n} bytes; give ${min} to ${max} bytes of hex`);
  return new Uint8Array(Buffer.from(t, 'hex'));
}
